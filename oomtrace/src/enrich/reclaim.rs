//! Charge-path reclaim history per memcg: how much tasks in a cgroup's
//! subtree stalled in direct reclaim before a kill. The kernel side takes
//! the numbers at the kill; this remembers each cgroup's totals between its
//! kills to say what happened since the previous one.

use std::collections::HashMap;

use crate::{
    decode::Reclaim,
    report::{ReclaimReport, ReclaimTotals, ReclaimWindow},
};

#[derive(Default)]
pub struct ReclaimHistory {
    previous: HashMap<u64, Reclaim>,
}

impl ReclaimHistory {
    /// Reports the snapshot of memcg `id`, then remembers it for the
    /// cgroup's next kill. One record can name the same memcg twice (victim
    /// and OOM memcg): `seen` holds this record's reports so both get the
    /// same one.
    pub fn report(
        &mut self,
        id: u64,
        snapshot: &Reclaim,
        page_size: u64,
        seen: &mut HashMap<u64, ReclaimReport>,
    ) {
        if seen.contains_key(&id) {
            return;
        }
        let bytes = |pages: u64| pages.saturating_mul(page_size);
        let report = ReclaimReport {
            last_10s: ReclaimWindow {
                stalls: snapshot.window_stalls,
                stall_ns: snapshot.window_stall_ns,
                reclaimed_bytes: bytes(snapshot.window_reclaimed_pages),
            },
            since_previous_kill: self
                .previous
                .get(&id)
                .map(|before| since(before, snapshot, page_size)),
            total: ReclaimTotals {
                stalls: snapshot.stalls,
                stall_ns: snapshot.stall_ns,
                max_stall_ns: snapshot.max_stall_ns,
                reclaimed_bytes: bytes(snapshot.reclaimed_pages),
            },
        };
        self.previous.insert(id, *snapshot);
        seen.insert(id, report);
    }
}

fn since(before: &Reclaim, now: &Reclaim, page_size: u64) -> ReclaimWindow {
    // An entry evicted and recreated starts from zero again.
    let base = if now.stalls < before.stalls {
        Reclaim::default()
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
    use super::*;

    fn snapshot(stalls: u64, window: u64) -> Reclaim {
        Reclaim {
            stalls,
            stall_ns: stalls * 1000,
            max_stall_ns: 1000,
            reclaimed_pages: stalls,
            window_stalls: window,
            window_stall_ns: window * 1000,
            window_reclaimed_pages: window,
        }
    }

    #[test]
    fn since_the_previous_kill_diffs_totals_and_survives_eviction() {
        let mut history = ReclaimHistory::default();
        let mut report = |snapshot: Reclaim, seen: &mut HashMap<u64, ReclaimReport>| {
            history.report(7, &snapshot, 4096, seen);
            seen.get(&7).copied().expect("reported")
        };
        let mut seen = HashMap::new();
        let first = report(snapshot(5, 5), &mut seen);
        assert_eq!(first.since_previous_kill, None, "no earlier kill seen");
        assert_eq!(
            (first.total.stalls, first.last_10s.reclaimed_bytes),
            (5, 5 * 4096)
        );
        // The same memcg again in the same record: the same report.
        assert_eq!(report(snapshot(99, 99), &mut seen), first);

        let second = report(snapshot(12, 7), &mut HashMap::new());
        assert_eq!(
            second.since_previous_kill.map(|s| (s.stalls, s.stall_ns)),
            Some((7, 7000))
        );

        let evicted = report(snapshot(2, 2), &mut HashMap::new());
        assert_eq!(evicted.since_previous_kill.map(|s| s.stalls), Some(2));
    }
}
