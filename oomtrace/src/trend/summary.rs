//! A cgroup's usage samples before a kill, summarized as an SRE reads a
//! graph: where it started, how fast and how steadily it climbed, and when
//! it last had room.

use super::sample::Sample;

/// Below this share of the limit a cgroup still had room.
pub const HEADROOM: f64 = 0.9;

const MS_PER_HOUR: f64 = 3_600_000.0;

/// What the climb is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Anonymous memory: page cache fills any room and is given back, so
    /// it would make every cgroup look like it grows.
    Anon,
    /// The usage counter, where the kernel does not split it.
    Usage,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub samples: usize,
    pub from_ms: i64,
    pub to_ms: i64,
    pub limit: u64,
    /// Usage (what the limit is checked against).
    pub start: u64,
    pub min: u64,
    pub max: u64,
    pub last: u64,
    pub basis: Basis,
    /// The basis at the first and the last sample.
    pub basis_start: u64,
    pub basis_last: u64,
    /// Least-squares slope of the basis, bytes per hour.
    pub slope_per_hour: f64,
    /// How well a straight line explains the basis (r², 0..=1): near 1 is a
    /// steady climb at one rate, near 0 a plateau or noise.
    pub fit: f64,
    /// Share of the steps between samples in which the basis rose.
    pub rising: f64,
    /// The latest sample below [`HEADROOM`] of the limit.
    pub last_headroom_ms: Option<i64>,
    /// The range of the basis before the last sample, for telling a
    /// plateau followed by a jump.
    pub basis_min_before_last: u64,
    pub basis_max_before_last: u64,
}

impl Summary {
    /// `samples` in time order, all of one cgroup; `None` for fewer than two.
    pub fn of(samples: &[Sample]) -> Option<Summary> {
        let (first, last) = (samples.first()?, samples.last()?);
        if samples.len() < 2 {
            return None;
        }
        let basis = if samples.iter().all(|s| s.anon.is_some()) {
            Basis::Anon
        } else {
            Basis::Usage
        };
        let value = |s: &Sample| match basis {
            Basis::Anon => s.anon.unwrap_or(s.usage),
            Basis::Usage => s.usage,
        };
        let usages = samples.iter().map(|s| s.usage);
        let (slope_per_hour, fit) = line(samples, value);
        let rises = samples
            .windows(2)
            .filter(|w| value(&w[1]) > value(&w[0]))
            .count();
        let before_last = &samples[..samples.len() - 1];
        let limit = last.limit;
        Some(Summary {
            samples: samples.len(),
            from_ms: first.time_ms,
            to_ms: last.time_ms,
            limit,
            start: first.usage,
            min: usages.clone().min().unwrap_or(0),
            max: usages.max().unwrap_or(0),
            last: last.usage,
            basis,
            basis_start: value(first),
            basis_last: value(last),
            slope_per_hour,
            fit,
            rising: rises as f64 / (samples.len() - 1) as f64,
            last_headroom_ms: samples
                .iter()
                .rev()
                .find(|s| (s.usage as f64) < HEADROOM * s.limit as f64)
                .map(|s| s.time_ms),
            basis_min_before_last: before_last.iter().map(value).min().unwrap_or(0),
            basis_max_before_last: before_last.iter().map(value).max().unwrap_or(0),
        })
    }

    pub fn span_ms(&self) -> i64 {
        self.to_ms - self.from_ms
    }
}

/// Least squares over (time, value): the slope per hour and r².
fn line(samples: &[Sample], value: impl Fn(&Sample) -> u64) -> (f64, f64) {
    let t0 = samples.first().map_or(0, |s| s.time_ms);
    let points: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| ((s.time_ms - t0) as f64 / MS_PER_HOUR, value(s) as f64))
        .collect();
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - mean_y).powi(2)).sum();
    if sxx <= 0.0 {
        return (0.0, 0.0);
    }
    let slope = sxy / sxx;
    // A flat line explains nothing to explain: no steadiness to claim.
    let fit = if syy > 0.0 {
        (sxy * sxy / (sxx * syy)).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (slope, fit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    pub(crate) fn at(seconds: i64, usage_mib: u64, anon_mib: Option<u64>) -> Sample {
        Sample {
            time_ms: seconds * 1000,
            usage: usage_mib * MIB,
            anon: anon_mib.map(|a| a * MIB),
            file: anon_mib.map(|a| (usage_mib - a) * MIB),
            limit: 64 * MIB,
        }
    }

    #[test]
    fn a_linear_climb_has_its_rate_and_a_perfect_fit() {
        // 10 MiB every 30 s: 1200 MiB an hour.
        let samples: Vec<Sample> = (0..6)
            .map(|i| at(i * 30, 5 + 10 * i as u64, None))
            .collect();
        let s = Summary::of(&samples).expect("summary");
        assert_eq!(s.basis, Basis::Usage);
        assert!(
            (s.slope_per_hour - 1200.0 * MIB as f64).abs() < 1.0,
            "{}",
            s.slope_per_hour
        );
        assert!((s.fit - 1.0).abs() < 1e-9);
        assert_eq!(s.rising, 1.0);
        assert_eq!(
            (s.start, s.min, s.max, s.last),
            (5 * MIB, 5 * MIB, 55 * MIB, 55 * MIB)
        );
        // 55 MiB is 86% of 64 MiB: the last sample still had room.
        assert_eq!(s.last_headroom_ms, Some(150_000));
        assert_eq!(s.span_ms(), 150_000);
    }

    #[test]
    fn page_cache_filling_the_limit_is_not_growth() {
        // Usage climbs with cache while anon stays flat.
        let samples: Vec<Sample> = (0..6)
            .map(|i| at(i * 30, 20 + 8 * i as u64, Some(20)))
            .collect();
        let s = Summary::of(&samples).expect("summary");
        assert_eq!(s.basis, Basis::Anon);
        assert_eq!(s.slope_per_hour, 0.0);
        assert_eq!(s.fit, 0.0, "a flat line claims no steadiness");
        assert_eq!(s.rising, 0.0);
    }

    #[test]
    fn a_plateau_then_a_jump_keeps_the_range_before_the_last_sample() {
        let mut samples: Vec<Sample> = (0..10)
            .map(|i| at(i * 30, 20 + (i % 2) as u64, None))
            .collect();
        samples.push(at(300, 63, None));
        let s = Summary::of(&samples).expect("summary");
        assert_eq!(
            (s.basis_min_before_last, s.basis_max_before_last),
            (20 * MIB, 21 * MIB)
        );
        assert_eq!(s.last_headroom_ms, Some(270_000), "63 MiB is past 90%");
        assert!(s.fit < 0.5);
    }

    #[test]
    fn one_sample_is_no_trend() {
        assert_eq!(Summary::of(&[at(0, 1, None)]), None);
        assert_eq!(Summary::of(&[]), None);
    }
}
