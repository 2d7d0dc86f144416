//! How the stream thread waits: poll(2) on the ring buffer and on an
//! eventfd that a signal or a failed output writes to. No async runtime
//! sits between the kernel's wakeup and the records' decoding.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
    time::Instant,
};

/// An eventfd: [`Waker::wake`] makes the stream thread's wait return.
pub struct Waker(OwnedFd);

impl Waker {
    pub fn new() -> io::Result<Waker> {
        // SAFETY: no pointers; the descriptor returned is owned below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: just opened, owned by nobody else.
        Ok(Waker(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64. A full counter (never,
        // at 2^64 - 1) would only mean a wakeup is already pending.
        let _ = unsafe { libc::write(self.0.as_raw_fd(), (&raw const one).cast(), 8) };
    }

    /// Takes the pending wakeups, so the next wait blocks again.
    fn clear(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64; non-blocking.
        let _ = unsafe { libc::read(self.0.as_raw_fd(), (&raw mut count).cast(), 8) };
    }
}

/// Waits until `events` is readable, `waker` was woken, or `until` passes;
/// a signal interrupting the wait is a return too. Level-triggered: a
/// record left in the ring buffer makes the next wait return at once.
pub fn wait(events: RawFd, waker: &Waker, until: Option<Instant>) -> io::Result<()> {
    let timeout = until.map_or(-1, |until| {
        let left = until.saturating_duration_since(Instant::now());
        // Rounded up: a wait cut short would spin until the deadline.
        i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
    });
    let mut fds = [
        libc::pollfd {
            fd: events,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: waker.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: two valid pollfd structs.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
    if rc < 0 {
        let error = io::Error::last_os_error();
        return match error.kind() {
            io::ErrorKind::Interrupted => Ok(()),
            _ => Err(error),
        };
    }
    if fds[1].revents != 0 {
        waker.clear();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_wake_ends_the_wait_and_is_taken_by_it() {
        let waker = Waker::new().expect("eventfd");
        // A descriptor that never becomes readable: the read end of a pipe
        // whose write end is kept open.
        let mut pipe = [0; 2];
        // SAFETY: a valid array of two ints.
        assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
        // SAFETY: just opened, owned here.
        let (read, _write) =
            unsafe { (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1])) };
        waker.wake();
        let started = Instant::now();
        wait(read.as_raw_fd(), &waker, None).expect("wait");
        assert!(started.elapsed() < Duration::from_secs(5), "woken at once");
        // Taken: the next wait lasts until its deadline.
        let started = Instant::now();
        wait(
            read.as_raw_fd(),
            &waker,
            Some(Instant::now() + Duration::from_millis(30)),
        )
        .expect("wait");
        assert!(
            started.elapsed() >= Duration::from_millis(30),
            "not woken again"
        );
    }
}
