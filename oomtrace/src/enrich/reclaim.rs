//! Charge-path reclaim history per memcg, from the kernel side's map: how
//! much tasks in a cgroup's subtree stalled in direct reclaim before a kill.

use std::collections::HashMap;

use oomtrace_common::{RECLAIM_BUCKETS, RECLAIM_WINDOW_SECS, ReclaimStats};

use crate::{
    capture::ReclaimMap,
    report::{ReclaimReport, ReclaimTotals, ReclaimWindow},
};

/// Reads the map and remembers, per memcg, the totals at its last kill.
pub struct ReclaimHistory {
    source: Box<dyn Fn(u64) -> Option<ReclaimStats>>,
    previous: HashMap<u64, ReclaimStats>,
    page_size: u64,
}

impl ReclaimHistory {
    pub fn new(map: ReclaimMap, page_size: u64) -> ReclaimHistory {
        Self::with_source(Box::new(move |id| map.get(&id, 0).ok()), page_size)
    }

    pub fn with_source(
        source: Box<dyn Fn(u64) -> Option<ReclaimStats>>,
        page_size: u64,
    ) -> ReclaimHistory {
        ReclaimHistory {
            source,
            previous: HashMap::new(),
            page_size,
        }
    }

    /// History of each memcg in `ids` up to a kill at `kill_boot_ns`. A
    /// memcg without an entry had no reclaim while oomtrace watched (or
    /// its entry was evicted among the least recently used). Each id's
    /// totals are then remembered for its next kill.
    pub fn reports(&mut self, ids: &[u64], kill_boot_ns: u64) -> HashMap<u64, ReclaimReport> {
        let mut out = HashMap::new();
        for &id in ids {
            if out.contains_key(&id) {
                continue;
            }
            let stats = (self.source)(id).unwrap_or_default();
            let report = ReclaimReport {
                last_10s: window(&stats, kill_boot_ns, self.page_size),
                since_previous_kill: self
                    .previous
                    .get(&id)
                    .map(|before| since(before, &stats, self.page_size)),
                total: ReclaimTotals {
                    stalls: stats.stalls,
                    stall_ns: stats.stall_ns,
                    max_stall_ns: stats.max_stall_ns,
                    reclaimed_bytes: stats.reclaimed_pages.saturating_mul(self.page_size),
                },
            };
            out.insert(id, report);
            self.previous.insert(id, stats);
        }
        out
    }
}

/// Sums the one-second buckets of the RECLAIM_WINDOW_SECS seconds up to
/// and including the kill's.
fn window(stats: &ReclaimStats, kill_boot_ns: u64, page_size: u64) -> ReclaimWindow {
    let kill_second = kill_boot_ns / 1_000_000_000;
    let first = kill_second.saturating_sub(RECLAIM_WINDOW_SECS - 1);
    let mut sum = ReclaimWindow::default();
    for bucket in &stats.buckets[..RECLAIM_BUCKETS] {
        if bucket.stalls > 0 && (first..=kill_second).contains(&bucket.second) {
            sum.stalls += bucket.stalls;
            sum.stall_ns += bucket.stall_ns;
            sum.reclaimed_bytes += bucket.reclaimed_pages.saturating_mul(page_size);
        }
    }
    sum
}

fn since(before: &ReclaimStats, now: &ReclaimStats, page_size: u64) -> ReclaimWindow {
    // An entry evicted and recreated starts from zero again.
    let fresh = now.stalls < before.stalls;
    let base = if fresh {
        ReclaimStats::default()
    } else {
        *before
    };
    ReclaimWindow {
        stalls: now.stalls - base.stalls,
        stall_ns: now.stall_ns.saturating_sub(base.stall_ns),
        reclaimed_bytes: now
            .reclaimed_pages
            .saturating_sub(base.reclaimed_pages)
            .saturating_mul(page_size),
    }
}

#[cfg(test)]
mod tests {
    use std::{cell::RefCell, rc::Rc};

    use oomtrace_common::ReclaimBucket;

    use super::*;

    const S: u64 = 1_000_000_000;

    fn stats_at(seconds: &[(u64, u64)]) -> ReclaimStats {
        let mut stats = ReclaimStats::default();
        for &(second, stalls) in seconds {
            let bucket = &mut stats.buckets[(second as usize) % RECLAIM_BUCKETS];
            *bucket = ReclaimBucket {
                second,
                stalls,
                stall_ns: stalls * 1000,
                reclaimed_pages: stalls,
            };
            stats.stalls += stalls;
            stats.stall_ns += stalls * 1000;
            stats.reclaimed_pages += stalls;
        }
        stats.max_stall_ns = 1000;
        stats
    }

    #[test]
    fn the_window_is_the_ten_seconds_up_to_the_kill() {
        let stats = stats_at(&[(89, 100), (90, 1), (95, 2), (99, 3), (100, 50)]);
        let w = window(&stats, 99 * S + 500_000_000, 4096);
        assert_eq!(
            (w.stalls, w.stall_ns, w.reclaimed_bytes),
            (6, 6000, 6 * 4096)
        );
    }

    #[test]
    fn since_the_previous_kill_diffs_totals_and_survives_eviction() {
        let shared = Rc::new(RefCell::new(stats_at(&[(10, 5)])));
        let reader = shared.clone();
        let mut history =
            ReclaimHistory::with_source(Box::new(move |_| Some(*reader.borrow())), 4096);

        let first = history.reports(&[7, 7], 10 * S);
        assert_eq!(first.len(), 1, "one report per memcg");
        assert_eq!(first[&7].since_previous_kill, None, "no earlier kill seen");
        assert_eq!(first[&7].total.stalls, 5);

        *shared.borrow_mut() = stats_at(&[(10, 5), (20, 7)]);
        let second = history.reports(&[7], 20 * S);
        assert_eq!(second[&7].since_previous_kill.map(|s| s.stalls), Some(7));
        assert_eq!(second[&7].last_10s.stalls, 7);

        *shared.borrow_mut() = stats_at(&[(30, 2)]);
        let evicted = history.reports(&[7], 30 * S);
        assert_eq!(evicted[&7].since_previous_kill.map(|s| s.stalls), Some(2));
    }

    #[test]
    fn a_memcg_that_never_reclaimed_has_zeroes() {
        let mut history = ReclaimHistory::with_source(Box::new(|_| None), 4096);
        let report = &history.reports(&[1], 5 * S)[&1];
        assert_eq!(
            (
                report.last_10s.stalls,
                report.total.stalls,
                report.total.max_stall_ns
            ),
            (0, 0, 0)
        );
    }
}
