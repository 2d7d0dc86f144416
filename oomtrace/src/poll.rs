//! poll(2) with a deadline, for the two places that wait on descriptors
//! without an async runtime: the event loop (ring buffer, wakeup eventfd)
//! and a bounded child process's stdout.

use std::{io, time::Instant};

/// Waits until one of `fds` is ready or `until` passes (`None`: no
/// deadline). The number ready; 0 at the deadline or when a signal cut
/// the wait short, which callers treat alike: look again.
pub fn wait(fds: &mut [libc::pollfd], until: Option<Instant>) -> io::Result<usize> {
    let timeout = until.map_or(-1, |until| {
        let left = until.saturating_duration_since(Instant::now());
        // Rounded up: a wait cut short would spin until the deadline.
        i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
    });
    let len = libc::nfds_t::try_from(fds.len()).map_err(io::Error::other)?;
    // SAFETY: `fds` is a valid slice of `len` pollfd structs.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), len, timeout) };
    if rc >= 0 {
        return Ok(rc as usize);
    }
    let error = io::Error::last_os_error();
    match error.kind() {
        io::ErrorKind::Interrupted => Ok(0),
        _ => Err(error),
    }
}

/// A pollfd asking whether `fd` is readable.
pub fn readable(fd: std::os::fd::RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}
