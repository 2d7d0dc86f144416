//! Kills per workload (since oomtrace started, and from the store across
//! restarts), and the reading of them with the OOM domain's usage trend
//! (`trend::verdict`): a leak, a limit too small, or a spike. Each hint
//! names the figures it rests on; with too little evidence there is none.

use std::collections::{HashMap, VecDeque};

use crate::{
    report::{Hint, HistoryReport},
    trend::{
        summary::Summary,
        verdict::{self, Evidence, Reading},
    },
};

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
        self.record(workload, kill, None);
    }

    /// Adds a kill of `workload` and reads the history so far, with the
    /// OOM domain's usage `trend` during the victim's life when sampled.
    pub fn record(
        &mut self,
        workload: String,
        kill: Kill,
        trend: Option<&Summary>,
    ) -> HistoryReport {
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
        let (hint, evidence) = read(seen.kills, &seen.recent, self.watching_since_ns, trend);
        HistoryReport {
            times_to_oom_ns: seen.recent.iter().filter_map(|k| k.age_ns).collect(),
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
    trend: Option<&Summary>,
) -> (Option<Hint>, Option<String>) {
    let Some(latest) = kills.back() else {
        return (None, None);
    };
    let times = if count == 1 {
        "first kill here".to_string()
    } else {
        format!("kill {count} here")
    };
    let earlier: Vec<u64> = kills
        .iter()
        .take(kills.len() - 1)
        .filter_map(|k| k.age_ns)
        .collect();
    let verdict = verdict::read(&Evidence {
        trend,
        age_ns: latest.age_ns,
        earlier_ages_ns: &earlier,
        stalls_last_10s: latest.stalls_last_10s,
        stalls_total: latest.stalls_total,
        watched_ns: latest.at_ns.saturating_sub(watching_since_ns),
    });
    let hint = verdict.reading.map(|r| match r {
        Reading::SteadyGrowth => Hint::SteadyGrowth,
        Reading::Undersized => Hint::Undersized,
        Reading::Spike => Hint::Spike,
    });
    (hint, Some(format!("{times}; {}", verdict.evidence)))
}

/// `45s`, `12m30s`, `6h05m`, `3d04h`.
pub fn duration(ns: u64) -> String {
    let s = ns / NS_PER_SEC;
    match s {
        // Tenths, ties to even as `{:.1}` rounds them, in integers: float
        // formatting is a large piece of cold code on the way to a line.
        0..60 => {
            let (tenth, half) = (NS_PER_SEC / 10, NS_PER_SEC / 20);
            let (mut tenths, rest) = (ns / tenth, ns % tenth);
            if rest > half || (rest == half && tenths % 2 == 1) {
                tenths += 1;
            }
            format!("{}.{}s", tenths / 10, tenths % 10)
        }
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
    fn one_young_victim_is_no_pattern_but_every_restart_dying_young_is() {
        let mut h = History::new(0);
        let young = |at| Kill {
            age_ns: Some(3 * NS_PER_SEC),
            ..kill(at, None)
        };
        let r = h.record("w".into(), young(10), None);
        assert_eq!((r.kills, r.hint), (1, None));
        let evidence = r.evidence.unwrap_or_default();
        assert!(
            evidence.starts_with("first kill here; killed 3.0s after it started"),
            "{evidence}"
        );
        assert_eq!(r.since_previous_kill_ns, None);
        let r = h.record("w".into(), young(11), None);
        assert_eq!((r.kills, r.hint), (2, Some(Hint::Undersized)));
        assert!(
            r.evidence
                .unwrap_or_default()
                .starts_with("kill 2 here; killed 3.0s")
        );
    }

    #[test]
    fn a_steady_usage_climb_is_growth_from_the_first_kill() {
        use crate::trend::sample::Sample;
        let samples: Vec<Sample> = (0..6)
            .map(|i| Sample {
                time_ms: i * 30_000,
                usage: (8 + 10 * i as u64) << 20,
                anon: Some((8 + 10 * i as u64) << 20),
                file: Some(0),
                limit: 64 << 20,
            })
            .collect();
        let summary = Summary::of(&samples);
        let r = History::new(0).record("w".into(), kill(10, Some(3)), summary.as_ref());
        assert_eq!(r.hint, Some(Hint::SteadyGrowth), "{:?}", r.evidence);
    }

    #[test]
    fn regular_long_lives_read_as_steady_growth_only_after_two_kills() {
        let mut h = History::new(0);
        let first = h.record("w".into(), kill(60, Some(50)), None);
        assert_eq!(first.hint, None, "one kill is no pattern");
        let second = h.record("w".into(), kill(120, Some(55)), None);
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
        assert_eq!(h.record("other".into(), kill(121, Some(55)), None).kills, 1);
        // Irregular lives are not steady growth.
        let irregular = h.record("w".into(), kill(300, Some(170)), None);
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
            History::new(0)
                .record("w".into(), quiet_until_now, None)
                .hint,
            Some(Hint::Spike)
        );
        let long_pressure = Kill {
            stalls_total: Some(900),
            ..quiet_until_now
        };
        assert_eq!(
            History::new(0).record("w".into(), long_pressure, None).hint,
            None
        );
        // oomtrace started a minute ago: it cannot know the past was quiet.
        assert_eq!(
            History::new(29 * MIN)
                .record("w".into(), quiet_until_now, None)
                .hint,
            None
        );
        let untracked = Kill {
            stalls_last_10s: None,
            stalls_total: None,
            ..quiet_until_now
        };
        assert_eq!(
            History::new(0).record("w".into(), untracked, None).hint,
            None
        );
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
        let third = h.record("w".into(), kill(180, Some(52)), None);
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
        let r = History::new(0).record("w".into(), kill(1, None), None);
        assert_eq!(r.hint, None);
        assert!(r.evidence.unwrap_or_default().contains("unknown"));
    }

    #[test]
    fn memory_stays_bounded() {
        let mut h = History::new(0);
        for i in 0..(KEEP_WORKLOADS as u64 + 10) {
            h.record(format!("w{i}"), kill(i, Some(1)), None);
        }
        assert_eq!(h.workloads.len(), KEEP_WORKLOADS);
        assert!(!h.workloads.contains_key("w0"), "the oldest goes first");
        for i in 0..40 {
            h.record("busy".into(), kill(10_000 + i, Some(1)), None);
        }
        let busy = h.workloads.get("busy");
        assert_eq!(busy.map(|w| w.recent.len()), Some(KEEP_KILLS));
        assert_eq!(busy.map(|w| w.kills), Some(40), "all kills counted");
    }

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(duration(1_500_000_000), "1.5s");
        assert_eq!(duration(34_701_345), "0.0s");
        assert_eq!(duration(250_000_000), "0.2s", "ties to even");
        assert_eq!(duration(350_000_000), "0.4s", "ties to even");
        assert_eq!(duration(59_960_000_000), "60.0s");
        assert_eq!(duration(750 * NS_PER_SEC), "12m30s");
        assert_eq!(duration(6 * 3600 * NS_PER_SEC + 300 * NS_PER_SEC), "6h05m");
        assert_eq!(
            duration(3 * 86400 * NS_PER_SEC + 4 * 3600 * NS_PER_SEC),
            "3d04h"
        );
    }
}
