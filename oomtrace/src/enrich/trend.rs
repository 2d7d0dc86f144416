//! A kill's `trend`: the OOM domain's usage samples from the store, during
//! the victim's life, summarized.

use std::path::PathBuf;

use super::clock;
use crate::{
    report::{TrendBasis, TrendReport},
    store::Store,
    trend::{
        sample::Sample,
        summary::{Basis, Summary},
    },
};

/// How far back a trend looks at most.
const WINDOW_MS: i64 = 6 * 3600 * 1000;
/// Points a record carries for a chart.
const POINTS: usize = 60;

/// The store's samples, read on a connection of its own (WAL: never in
/// the writer's way), opened at the first kill that needs it.
pub struct TrendSource {
    path: PathBuf,
    store: Option<Store>,
}

impl TrendSource {
    pub fn new(path: PathBuf) -> TrendSource {
        TrendSource { path, store: None }
    }

    /// The summary of `memcg_path`'s samples from `start_ms` (the victim's
    /// start, when known) to `kill_ms`, and the record's view of it.
    pub fn read(
        &mut self,
        memcg_path: &str,
        start_ms: Option<i64>,
        kill_ms: i64,
    ) -> Option<(Summary, TrendReport)> {
        if self.store.is_none() {
            self.store = Store::open_read_only(&self.path).ok();
        }
        let from = start_ms.unwrap_or(i64::MIN).max(kill_ms - WINDOW_MS);
        let samples = self
            .store
            .as_ref()?
            .samples(memcg_path, from, kill_ms)
            .ok()?;
        let summary = Summary::of(&samples)?;
        let report = report(memcg_path, &summary, &samples);
        Some((summary, report))
    }
}

fn report(memcg_path: &str, s: &Summary, samples: &[Sample]) -> TrendReport {
    TrendReport {
        memcg_path: memcg_path.to_string(),
        samples: s.samples,
        from: rfc3339_ms(s.from_ms),
        to: rfc3339_ms(s.to_ms),
        limit_bytes: s.limit,
        start_bytes: s.start,
        min_bytes: s.min,
        max_bytes: s.max,
        last_bytes: s.last,
        basis: match s.basis {
            Basis::Anon => TrendBasis::Anon,
            Basis::Usage => TrendBasis::Usage,
        },
        basis_start_bytes: s.basis_start,
        basis_last_bytes: s.basis_last,
        slope_bytes_per_hour: round(s.slope_per_hour, 0),
        fit: round(s.fit, 3),
        rising_share: round(s.rising, 3),
        last_headroom: s.last_headroom_ms.map(rfc3339_ms),
        points: thin(samples, POINTS),
    }
}

/// At most `n` points, evenly spaced by index, the last always kept.
fn thin(samples: &[Sample], n: usize) -> Vec<(i64, u64)> {
    if samples.len() <= n {
        return samples.iter().map(|s| (s.time_ms, s.usage)).collect();
    }
    let last = samples.len() - 1;
    (0..n)
        .map(|i| &samples[i * last / (n - 1)])
        .map(|s| (s.time_ms, s.usage))
        .collect()
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

fn rfc3339_ms(ms: i64) -> String {
    let since_epoch = std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    clock::rfc3339(std::time::UNIX_EPOCH + since_epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_the_ends_and_the_count() {
        let samples: Vec<Sample> = (0..500)
            .map(|i| Sample {
                time_ms: i,
                usage: i as u64,
                anon: None,
                file: None,
                limit: 1000,
            })
            .collect();
        let points = thin(&samples, 60);
        assert_eq!(points.len(), 60);
        assert_eq!((points[0], points[59]), ((0, 0), (499, 499)));
        assert_eq!(thin(&samples[..3], 60).len(), 3);
    }
}
