//! Bounded waiting: every loop in the tests and tools ends at a deadline.

use std::{
    process::{Child, ExitStatus},
    thread,
    time::{Duration, Instant},
};

use anyhow::Result;

/// A point in time a wait must not pass.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    pub fn after(timeout: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + timeout,
        }
    }

    /// Time left, zero once passed.
    pub fn left(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }
}

/// Calls `ready` every `interval` until it gives a value; `None` once
/// `timeout` has passed (`ready` runs at least once). Errors end the wait.
pub fn poll<T>(
    timeout: Duration,
    interval: Duration,
    mut ready: impl FnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    let deadline = Deadline::after(timeout);
    loop {
        if let Some(value) = ready()? {
            return Ok(Some(value));
        }
        if deadline.passed() {
            return Ok(None);
        }
        thread::sleep(interval.min(deadline.left()));
    }
}

/// `child`'s exit status, or `None` if it still runs after `timeout`.
pub fn exit_of(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    poll(timeout, Duration::from_millis(10), || Ok(child.try_wait()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_returns_the_first_value_and_gives_up_at_the_deadline() -> Result<()> {
        let mut calls = 0;
        let found = poll(Duration::from_secs(5), Duration::ZERO, || {
            calls += 1;
            Ok((calls == 3).then_some(calls))
        })?;
        assert_eq!(found, Some(3));
        let started = Instant::now();
        let never = poll(Duration::from_millis(50), Duration::from_millis(5), || {
            Ok(None::<()>)
        })?;
        assert_eq!(never, None);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(50) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        Ok(())
    }

    #[test]
    fn poll_stops_at_an_error() {
        let result = poll(
            Duration::from_secs(5),
            Duration::ZERO,
            || -> Result<Option<()>> { anyhow::bail!("broken") },
        );
        assert_eq!(
            result.map_err(|e| e.to_string()).err().as_deref(),
            Some("broken")
        );
    }
}
