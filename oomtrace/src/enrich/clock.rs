//! Kernel boot-clock timestamps to wall-clock time.

use std::time::{Duration, SystemTime};

fn now(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and a valid out pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// Nanoseconds since boot, including suspend: the clock of
/// `bpf_ktime_get_boot_ns()`.
pub fn boot_ns_now() -> u64 {
    u64::try_from(now(libc::CLOCK_BOOTTIME).as_nanos()).unwrap_or(u64::MAX)
}

/// Wall-clock time of a boot-clock instant, using the current offset
/// between the two clocks (so a clock step after the event shifts it).
pub fn wall_time(boot_ns: u64) -> SystemTime {
    let realtime = now(libc::CLOCK_REALTIME);
    let boottime = now(libc::CLOCK_BOOTTIME);
    let event = Duration::from_nanos(boot_ns);
    let age = boottime.saturating_sub(event);
    SystemTime::UNIX_EPOCH + realtime.saturating_sub(age)
}

/// ns since the epoch (0 before it).
pub fn epoch_ns(time: SystemTime) -> u64 {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
}

/// RFC 3339 UTC with microseconds, e.g. `2026-11-26T10:50:07.123456Z`.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_micros(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_has_microseconds_and_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_795_000_000, 123_456_789);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40.123456Z");
    }

    #[test]
    fn an_event_now_maps_to_about_now() {
        let wall = wall_time(boot_ns_now());
        let skew = SystemTime::now()
            .duration_since(wall)
            .unwrap_or_else(|e| e.duration());
        assert!(skew < Duration::from_secs(1), "skew {skew:?}");
    }

    #[test]
    fn an_older_event_is_that_much_earlier() {
        let now = boot_ns_now();
        let earlier = wall_time(now.saturating_sub(60_000_000_000));
        let later = wall_time(now);
        let gap = later.duration_since(earlier).expect("ordered");
        assert!((gap.as_secs_f64() - 60.0).abs() < 1.0, "gap {gap:?}");
    }
}
