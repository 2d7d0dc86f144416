//! How the stream thread waits: poll(2) on the ring buffer and on an
//! eventfd that a signal or a failed output writes to. No async runtime
//! sits between the kernel's wakeup and the records' decoding.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
    time::Instant,
};

use crate::poll;

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
    let mut fds = [poll::readable(events), poll::readable(waker.0.as_raw_fd())];
    if poll::wait(&mut fds, until)? > 0 && fds[1].revents != 0 {
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
        // Never readable: a pipe whose write end stays open.
        let (read, _write) = std::io::pipe().expect("pipe");
        waker.wake();
        let started = Instant::now();
        let bound = Some(Instant::now() + Duration::from_secs(10));
        wait(read.as_raw_fd(), &waker, bound).expect("wait");
        assert!(started.elapsed() < Duration::from_secs(5), "woken at once");
        // Taken: the next wait lasts until its deadline.
        let started = Instant::now();
        let soon = Some(Instant::now() + Duration::from_millis(30));
        wait(read.as_raw_fd(), &waker, soon).expect("wait");
        assert!(
            started.elapsed() >= Duration::from_millis(30),
            "not woken again"
        );
    }
}
