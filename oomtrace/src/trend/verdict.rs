//! Leak or small limit? A cautious reading of a kill's evidence: the OOM
//! domain's usage trend before it, and how long the workload ran before
//! each of its kills. Every reading names its evidence in words and
//! numbers; with too little evidence it says so instead of guessing.

use super::summary::{Basis, HEADROOM, Summary};
use crate::{enrich::history::duration, output::bytes};

/// Killed this soon after starting: it did not fit from the start.
pub const YOUNG_NS: u64 = 60 * NS_PER_SEC;
/// Ran at least this long: growth or a spike, not start-up.
pub const SETTLED_NS: u64 = 5 * 60 * NS_PER_SEC;
/// Times to OOM this close (longest / shortest) read as one rate.
const SIMILAR: f64 = 1.5;
/// A climb this large a share of the limit, this steady, is a leak.
const CLIMB_SHARE: f64 = 0.25;
const STEADY_FIT: f64 = 0.8;
const MOSTLY_RISING: f64 = 0.6;
/// A plateau moves less than this share of the limit.
const FLAT_SHARE: f64 = 0.1;
/// The last sample of a spike sits this far below the limit.
const SPIKE_BELOW: f64 = 0.8;
/// Samples needed before the trend counts as evidence.
const MIN_SAMPLES: usize = 4;
const NS_PER_SEC: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Memory grows at a steady rate until the limit stops it: a leak, or
    /// a cache without bound.
    SteadyGrowth,
    /// What it needs does not fit the limit.
    Undersized,
    /// Flat, then a sudden jump: a load spike or one large allocation.
    Spike,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// `None`: not enough evidence for a reading.
    pub reading: Option<Reading>,
    pub evidence: String,
}

/// What is known about a kill.
#[derive(Debug, Clone, Default)]
pub struct Evidence<'a> {
    /// The OOM domain's samples during the victim's life, summarized.
    pub trend: Option<&'a Summary>,
    /// The victim's age at this kill.
    pub age_ns: Option<u64>,
    /// Victim ages at the workload's earlier kills, oldest first (this
    /// one excluded): the time to OOM after each restart.
    pub earlier_ages_ns: &'a [u64],
    /// Reclaim stalls of the limit's cgroup in the last 10 s and since it
    /// was first watched, when tracked; with `watched_ns`, how long.
    pub stalls_last_10s: Option<u64>,
    pub stalls_total: Option<u64>,
    pub watched_ns: u64,
}

pub fn read(e: &Evidence) -> Verdict {
    let restarts = restart_clause(e);
    if let Some(trend) = e.trend.filter(|t| t.samples >= MIN_SAMPLES)
        && let Some(verdict) = from_trend(trend, &restarts)
    {
        return verdict;
    }
    let mut ages: Vec<u64> = e.earlier_ages_ns.to_vec();
    let Some(age) = e.age_ns else {
        return unclear("the victim's age is unknown and no usage trend was recorded".into());
    };
    ages.push(age);
    let listed = |ages: &[u64]| {
        ages.iter()
            .map(|a| duration(*a))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let recent: Vec<u64> = ages.iter().rev().take(3).rev().copied().collect();
    if recent.len() >= 2 && recent.iter().all(|a| *a < YOUNG_NS) {
        return Verdict {
            reading: Some(Reading::Undersized),
            evidence: format!(
                "killed {} after it started, and as soon after each of its last {} starts ({}): what it needs from the start does not fit the limit",
                duration(age),
                recent.len(),
                listed(&recent)
            ),
        };
    }
    if recent.len() >= 2 && recent.iter().all(|a| *a >= SETTLED_NS) && similar(&recent) {
        return Verdict {
            reading: Some(Reading::SteadyGrowth),
            evidence: format!(
                "the last {} runs each lasted about as long before their OOM kill ({}): memory grows at one rate to the limit (a leak, or a cache without bound); no usage trend was recorded",
                recent.len(),
                listed(&recent)
            ),
        };
    }
    if let (Some(last_10s), Some(total)) = (e.stalls_last_10s, e.stalls_total)
        && age >= SETTLED_NS
        && e.watched_ns >= SETTLED_NS
        && last_10s > 0
        && total == last_10s
    {
        return Verdict {
            reading: Some(Reading::Spike),
            evidence: format!(
                "ran {} with no reclaim stalls, then {last_10s} in its last 10 s: a load spike or one large allocation",
                duration(age)
            ),
        };
    }
    if age < YOUNG_NS {
        return unclear(format!(
            "killed {} after it started, before any usage sample: it needed more than the limit at once, or grew without bound that fast; one kill is no pattern{restarts}",
            duration(age)
        ));
    }
    unclear(format!(
        "the victim had run {}; too few usage samples of its limit for a trend{restarts}",
        duration(age)
    ))
}

fn from_trend(t: &Summary, restarts: &str) -> Option<Verdict> {
    let limit = t.limit.max(1) as f64;
    let what = match t.basis {
        Basis::Anon => "anonymous memory",
        Basis::Usage => "usage",
    };
    let span = duration(
        u64::try_from(t.span_ms())
            .unwrap_or(0)
            .saturating_mul(1_000_000),
    );
    let climb = t.basis_last.saturating_sub(t.basis_start) as f64;
    let headroom = match t.last_headroom_ms {
        Some(ms) if ms == t.to_ms => "; it still had headroom at the last sample".to_string(),
        Some(ms) => format!(
            "; it last had headroom (below {:.0}% of the limit) {} before the last sample",
            HEADROOM * 100.0,
            duration(
                u64::try_from(t.to_ms - ms)
                    .unwrap_or(0)
                    .saturating_mul(1_000_000)
            )
        ),
        None => format!(
            "; never below {:.0}% of the limit in that time",
            HEADROOM * 100.0
        ),
    };
    if climb >= CLIMB_SHARE * limit && t.fit >= STEADY_FIT && t.rising >= MOSTLY_RISING {
        return Some(Verdict {
            reading: Some(Reading::SteadyGrowth),
            evidence: format!(
                "{what} climbed from {} to {} in {span} at {}/h (a straight line fits it: r² {:.2}; rose in {:.0}% of {} samples) toward the limit {}{headroom}{restarts}: a leak, or a cache without bound",
                bytes(t.basis_start),
                bytes(t.basis_last),
                bytes(t.slope_per_hour.max(0.0) as u64),
                t.fit,
                t.rising * 100.0,
                t.samples,
                bytes(t.limit)
            ),
        });
    }
    let flat = (t.basis_max_before_last - t.basis_min_before_last) as f64 <= FLAT_SHARE * limit;
    if flat && (t.min as f64) >= HEADROOM * limit {
        return Some(Verdict {
            reading: Some(Reading::Undersized),
            evidence: format!(
                "usage sat at {}-{} of the limit {} for {span} without growing: its working set does not fit{restarts}",
                bytes(t.min),
                bytes(t.max),
                bytes(t.limit)
            ),
        });
    }
    if flat && (t.last as f64) < SPIKE_BELOW * limit {
        return Some(Verdict {
            reading: Some(Reading::Spike),
            evidence: format!(
                "{what} was flat at {}-{} for {span}, {} at the last sample, then reached the limit {} before the next: a load spike or one large allocation{restarts}",
                bytes(t.basis_min_before_last),
                bytes(t.basis_max_before_last),
                bytes(t.basis_last),
                bytes(t.limit)
            ),
        });
    }
    None
}

/// ", after each restart ..." when earlier kills of the workload say more.
fn restart_clause(e: &Evidence) -> String {
    let Some(age) = e.age_ns else {
        return String::new();
    };
    if e.earlier_ages_ns.is_empty() {
        return String::new();
    }
    let mut ages: Vec<u64> = e
        .earlier_ages_ns
        .iter()
        .rev()
        .take(2)
        .rev()
        .copied()
        .collect();
    ages.push(age);
    let listed: Vec<String> = ages.iter().map(|a| duration(*a)).collect();
    let how = if similar(&ages) {
        "similar"
    } else {
        "different"
    };
    format!(
        "; {how} times to OOM after its last starts: {}",
        listed.join(", ")
    )
}

fn similar(ages: &[u64]) -> bool {
    let (min, max) = (ages.iter().min().copied(), ages.iter().max().copied());
    matches!((min, max), (Some(min), Some(max)) if min > 0 && max as f64 / min as f64 <= SIMILAR)
}

fn unclear(evidence: String) -> Verdict {
    Verdict {
        reading: None,
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trend::sample::Sample;

    const MIB: u64 = 1 << 20;
    const MIN: u64 = 60 * NS_PER_SEC;

    fn samples(usage_mib: &[u64], anon: bool) -> Vec<Sample> {
        usage_mib
            .iter()
            .enumerate()
            .map(|(i, u)| Sample {
                time_ms: i as i64 * 30_000,
                usage: u * MIB,
                anon: anon.then_some(u * MIB),
                file: anon.then_some(0),
                limit: 64 * MIB,
            })
            .collect()
    }

    fn verdict(usage_mib: &[u64], age_ns: u64, earlier: &[u64]) -> Verdict {
        let summary = Summary::of(&samples(usage_mib, true));
        read(&Evidence {
            trend: summary.as_ref(),
            age_ns: Some(age_ns),
            earlier_ages_ns: earlier,
            ..Evidence::default()
        })
    }

    #[test]
    fn a_steady_climb_reads_as_growth_with_its_numbers() {
        let v = verdict(&[8, 16, 24, 32, 40, 48, 56], 4 * MIN, &[]);
        assert_eq!(v.reading, Some(Reading::SteadyGrowth));
        assert!(
            v.evidence.contains("from 8.0 MiB to 56.0 MiB in 3m00s"),
            "{}",
            v.evidence
        );
        assert!(v.evidence.contains("r² 1.00"), "{}", v.evidence);
    }

    #[test]
    fn growth_says_whether_restarts_die_after_similar_times() {
        let v = verdict(
            &[8, 16, 24, 32, 40, 48, 56],
            50 * MIN,
            &[48 * MIN, 52 * MIN],
        );
        assert_eq!(v.reading, Some(Reading::SteadyGrowth));
        assert!(
            v.evidence
                .contains("similar times to OOM after its last starts: 48m00s, 52m00s, 50m00s"),
            "{}",
            v.evidence
        );
    }

    #[test]
    fn a_young_victim_alone_is_not_called_undersized() {
        // What the old hint got wrong: one kill 0.2 s after start says
        // nothing about whether it needed more or grew without bound.
        let v = verdict(&[], NS_PER_SEC / 5, &[]);
        assert_eq!(v.reading, None);
        assert!(
            v.evidence.contains("killed 0.2s after it started"),
            "{}",
            v.evidence
        );
        assert!(v.evidence.contains("one kill is no pattern"));
    }

    #[test]
    fn killed_soon_after_every_start_is_undersized() {
        let v = verdict(&[], NS_PER_SEC / 5, &[NS_PER_SEC / 4, NS_PER_SEC / 3]);
        assert_eq!(v.reading, Some(Reading::Undersized));
        assert!(
            v.evidence.contains("last 3 starts (0.2s, 0.3s, 0.2s)"),
            "{}",
            v.evidence
        );
    }

    #[test]
    fn sitting_at_the_limit_is_undersized_and_a_late_jump_is_a_spike() {
        let at_limit = verdict(&[60, 61, 60, 62, 61, 60], 30 * MIN, &[]);
        assert_eq!(
            at_limit.reading,
            Some(Reading::Undersized),
            "{}",
            at_limit.evidence
        );
        let jump = verdict(&[20, 21, 20, 21, 20, 21], 30 * MIN, &[]);
        assert_eq!(jump.reading, Some(Reading::Spike), "{}", jump.evidence);
        assert!(
            jump.evidence.contains("flat at 20.0 MiB-21.0 MiB"),
            "{}",
            jump.evidence
        );
    }

    #[test]
    fn noise_without_a_shape_is_unclear() {
        let v = verdict(&[10, 40, 15, 50, 12, 45], 30 * MIN, &[]);
        assert_eq!(v.reading, None, "{}", v.evidence);
    }

    #[test]
    fn without_a_trend_long_similar_runs_are_growth() {
        let v = verdict(&[], 55 * MIN, &[50 * MIN]);
        assert_eq!(v.reading, Some(Reading::SteadyGrowth));
        let v = verdict(&[], 170 * MIN, &[50 * MIN]);
        assert_eq!(v.reading, None);
    }

    #[test]
    fn quiet_until_the_last_seconds_is_a_spike_only_when_watched_long_enough() {
        let e = |watched_ns| Evidence {
            age_ns: Some(20 * MIN),
            stalls_last_10s: Some(40),
            stalls_total: Some(40),
            watched_ns,
            ..Evidence::default()
        };
        assert_eq!(read(&e(30 * MIN)).reading, Some(Reading::Spike));
        assert_eq!(read(&e(MIN)).reading, None);
    }
}
