//! Kills per workload since oomtrace started, and a cautious reading of
//! them: was the limit too small from the start, did memory grow steadily
//! to it (a leak, or a cache without bound), or did it jump at the end (a
//! load spike)? Each hint names the figures it rests on; with too little
//! evidence there is none.

use std::collections::{HashMap, VecDeque};

use crate::report::{Hint, HistoryReport};

/// Killed this soon after starting: the workload does not fit at all.
const YOUNG_NS: u64 = 60 * NS_PER_SEC;
/// Ran at least this long before dying: growth or a spike, not startup.
const SETTLED_NS: u64 = 5 * 60 * NS_PER_SEC;
/// Victim ages this close (max / min) read as one steady growth rate.
const STEADY_RATIO: f64 = 1.5;
/// Kills remembered per workload, and workloads remembered.
const KEEP_KILLS: usize = 16;
const KEEP_WORKLOADS: usize = 4096;
const NS_PER_SEC: u64 = 1_000_000_000;

/// What one kill says about its workload.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kill {
    /// Wall-clock ns since the epoch: unlike the boot clock, comparable
    /// with kills from before a reboot (rebuilt from the store).
    pub at_ns: u64,
    /// The kill's boot clock, for kills of this run: exact intervals,
    /// immune to clock steps. `None` for kills replayed from the store.
    pub boot_ns: Option<u64>,
    /// How long the victim process had run.
    pub age_ns: Option<u64>,
    /// Reclaim stalls in the limit's cgroup in the last 10 s and since
    /// oomtrace started; `None` when reclaim is not tracked.
    pub stalls_last_10s: Option<u64>,
    pub stalls_total: Option<u64>,
}

#[derive(Default)]
struct Workload {
    /// Kills seen, all of them.
    kills: u64,
    /// The latest [`KEEP_KILLS`].
    recent: VecDeque<Kill>,
}

#[derive(Default)]
pub struct History {
    workloads: HashMap<String, Workload>,
    /// When oomtrace started watching (wall clock, ns since the epoch).
    pub watching_since_ns: u64,
}

impl History {
    pub fn new(watching_since_ns: u64) -> History {
        History {
            workloads: HashMap::new(),
            watching_since_ns,
        }
    }

    /// Adds a kill seen by an earlier run (from the store), oldest first,
    /// so the counts and hints go on across restarts.
    pub fn replay(&mut self, workload: String, kill: Kill) {
        self.record(workload, kill);
    }

    /// Adds a kill of `workload` and reads the history so far.
    pub fn record(&mut self, workload: String, kill: Kill) -> HistoryReport {
        if !self.workloads.contains_key(&workload) && self.workloads.len() >= KEEP_WORKLOADS {
            self.forget_oldest();
        }
        let seen = self.workloads.entry(workload.clone()).or_default();
        let previous = seen.recent.back().copied();
        seen.kills += 1;
        seen.recent.push_back(kill);
        if seen.recent.len() > KEEP_KILLS {
            seen.recent.pop_front();
        }
        let (hint, evidence) = read(seen.kills, &seen.recent, self.watching_since_ns);
        HistoryReport {
            workload,
            kills: seen.kills,
            since_previous_kill_ns: previous.map(|p| interval(&p, &kill)),
            hint,
            evidence,
        }
    }

    fn forget_oldest(&mut self) {
        let oldest = self
            .workloads
            .iter()
            .min_by_key(|(_, seen)| seen.recent.back().map_or(0, |k| k.at_ns))
            .map(|(key, _)| key.clone());
        if let Some(key) = oldest {
            self.workloads.remove(&key);
        }
    }
}

/// From `earlier` to `later`: by the boot clock when both are of this run.
fn interval(earlier: &Kill, later: &Kill) -> u64 {
    match (earlier.boot_ns, later.boot_ns) {
        (Some(earlier), Some(later)) => later.saturating_sub(earlier),
        _ => later.at_ns.saturating_sub(earlier.at_ns),
    }
}

/// The hint and the facts behind it, for the latest kill.
fn read(
    count: u64,
    kills: &VecDeque<Kill>,
    watching_since_ns: u64,
) -> (Option<Hint>, Option<String>) {
    let Some(latest) = kills.back() else {
        return (None, None);
    };
    let times = if count == 1 {
        "first kill here".to_string()
    } else {
        format!("kill {count} here")
    };
    let Some(age) = latest.age_ns else {
        return (None, Some(format!("{times}; the victim's age is unknown")));
    };
    if age < YOUNG_NS {
        return (
            Some(Hint::Undersized),
            Some(format!(
                "{times}; killed {} after it started: what it needs from the start does not fit the limit",
                duration(age)
            )),
        );
    }
    let ages: Vec<u64> = kills.iter().filter_map(|k| k.age_ns).collect();
    let settled: Vec<u64> = ages.iter().rev().take(3).copied().collect();
    if settled.len() >= 2 && settled.iter().all(|a| *a >= SETTLED_NS) {
        let (min, max) = (
            settled.iter().min().copied().unwrap_or(0),
            settled.iter().max().copied().unwrap_or(0),
        );
        if min > 0 && max as f64 / min as f64 <= STEADY_RATIO {
            let listed: Vec<String> = settled.iter().rev().map(|a| duration(*a)).collect();
            return (
                Some(Hint::SteadyGrowth),
                Some(format!(
                    "{times}; the last victims ran {} each before dying: memory grows steadily to the limit (a leak, or a cache without bound)",
                    listed.join(", ")
                )),
            );
        }
    }
    // Quiet until the last seconds: only meaningful if oomtrace watched
    // long enough to have seen earlier pressure.
    if let (Some(recent), Some(total)) = (latest.stalls_last_10s, latest.stalls_total)
        && age >= SETTLED_NS
        && latest.at_ns.saturating_sub(watching_since_ns) >= SETTLED_NS
        && recent > 0
        && total == recent
    {
        return (
            Some(Hint::Spike),
            Some(format!(
                "{times}; ran {} with no reclaim stalls, then {recent} in its last 10 s: a load spike or one large allocation",
                duration(age)
            )),
        );
    }
    (
        None,
        Some(format!("{times}; the victim had run {}", duration(age))),
    )
}

/// `45s`, `12m30s`, `6h05m`, `3d04h`.
pub fn duration(ns: u64) -> String {
    let s = ns / NS_PER_SEC;
    match s {
        0..60 => format!("{:.1}s", ns as f64 / NS_PER_SEC as f64),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60 * NS_PER_SEC;

    fn kill(at_min: u64, age_min: Option<u64>) -> Kill {
        Kill {
            at_ns: at_min * MIN,
            boot_ns: Some(at_min * MIN),
            age_ns: age_min.map(|a| a * MIN),
            stalls_last_10s: None,
            stalls_total: None,
        }
    }

    #[test]
    fn young_victims_mean_the_limit_is_too_small() {
        let mut h = History::new(0);
        let r = h.record(
            "w".into(),
            Kill {
                age_ns: Some(3 * NS_PER_SEC),
                ..kill(10, None)
            },
        );
        assert_eq!((r.kills, r.hint), (1, Some(Hint::Undersized)));
        assert!(
            r.evidence
                .unwrap_or_default()
                .contains("killed 3.0s after it started")
        );
        assert_eq!(r.since_previous_kill_ns, None);
    }

    #[test]
    fn regular_long_lives_read_as_steady_growth_only_after_two_kills() {
        let mut h = History::new(0);
        let first = h.record("w".into(), kill(60, Some(50)));
        assert_eq!(first.hint, None, "one kill is no pattern");
        let second = h.record("w".into(), kill(120, Some(55)));
        assert_eq!(second.hint, Some(Hint::SteadyGrowth));
        assert_eq!(second.kills, 2);
        assert_eq!(second.since_previous_kill_ns, Some(60 * MIN));
        assert!(
            second
                .evidence
                .unwrap_or_default()
                .contains("50m00s, 55m00s"),
            "names the ages"
        );
        // Another workload has its own history.
        assert_eq!(h.record("other".into(), kill(121, Some(55))).kills, 1);
        // Irregular lives are not steady growth.
        let irregular = h.record("w".into(), kill(300, Some(170)));
        assert_eq!(irregular.hint, None);
    }

    #[test]
    fn sudden_pressure_after_a_quiet_life_reads_as_a_spike() {
        let quiet_until_now = Kill {
            stalls_last_10s: Some(40),
            stalls_total: Some(40),
            ..kill(30, Some(20))
        };
        assert_eq!(
            History::new(0).record("w".into(), quiet_until_now).hint,
            Some(Hint::Spike)
        );
        let long_pressure = Kill {
            stalls_total: Some(900),
            ..quiet_until_now
        };
        assert_eq!(History::new(0).record("w".into(), long_pressure).hint, None);
        // oomtrace started a minute ago: it cannot know the past was quiet.
        assert_eq!(
            History::new(29 * MIN)
                .record("w".into(), quiet_until_now)
                .hint,
            None
        );
        let untracked = Kill {
            stalls_last_10s: None,
            stalls_total: None,
            ..quiet_until_now
        };
        assert_eq!(History::new(0).record("w".into(), untracked).hint, None);
    }

    #[test]
    fn kills_replayed_from_the_store_continue_the_count() {
        let mut h = History::new(200 * MIN);
        let stored = |at, age| Kill {
            boot_ns: None,
            ..kill(at, age)
        };
        h.replay("w".into(), stored(60, Some(50)));
        h.replay("w".into(), stored(120, Some(55)));
        let third = h.record("w".into(), kill(180, Some(52)));
        assert_eq!(third.kills, 3);
        assert_eq!(third.since_previous_kill_ns, Some(60 * MIN));
        assert_eq!(
            third.hint,
            Some(Hint::SteadyGrowth),
            "evidence from before the restart"
        );
        assert!(
            third
                .evidence
                .unwrap_or_default()
                .starts_with("kill 3 here")
        );
    }

    #[test]
    fn unknown_age_gives_no_hint() {
        let r = History::new(0).record("w".into(), kill(1, None));
        assert_eq!(r.hint, None);
        assert!(r.evidence.unwrap_or_default().contains("unknown"));
    }

    #[test]
    fn memory_stays_bounded() {
        let mut h = History::new(0);
        for i in 0..(KEEP_WORKLOADS as u64 + 10) {
            h.record(format!("w{i}"), kill(i, Some(1)));
        }
        assert_eq!(h.workloads.len(), KEEP_WORKLOADS);
        assert!(!h.workloads.contains_key("w0"), "the oldest goes first");
        for i in 0..40 {
            h.record("busy".into(), kill(10_000 + i, Some(1)));
        }
        let busy = h.workloads.get("busy");
        assert_eq!(busy.map(|w| w.recent.len()), Some(KEEP_KILLS));
        assert_eq!(busy.map(|w| w.kills), Some(40), "all kills counted");
    }

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(duration(1_500_000_000), "1.5s");
        assert_eq!(duration(750 * NS_PER_SEC), "12m30s");
        assert_eq!(duration(6 * 3600 * NS_PER_SEC + 300 * NS_PER_SEC), "6h05m");
        assert_eq!(
            duration(3 * 86400 * NS_PER_SEC + 4 * 3600 * NS_PER_SEC),
            "3d04h"
        );
    }
}
