//! Readings of a kill's figures against each other, for the record: the
//! kubelet's QoS arithmetic on oom_score_adj, a runtime's heap cap against
//! the cgroup limit.

use crate::report::{KubeletAdjReport, Qos, RequestBound, RuntimeReport};

/// The kubelet's -997 / 1000 / `1000 - 1000 * request / node memory`.
pub fn kubelet_adj(qos: Qos, adj: i16) -> KubeletAdjReport {
    let (set_by_kubelet, request) = match (qos, adj) {
        (Qos::Guaranteed, -997) | (Qos::Besteffort, 1000) => (true, None),
        (Qos::Burstable, 3..=999) => {
            let bound = match adj {
                3 => RequestBound::AtLeast,
                999 => RequestBound::AtMost,
                _ => RequestBound::About,
            };
            // 3..=999, so 1..=997.
            (true, u16::try_from(1000 - adj).ok().map(|p| (p, bound)))
        }
        _ => (false, None),
    };
    KubeletAdjReport {
        qos,
        set_by_kubelet,
        memory_request_permille: request.map(|(p, _)| p),
        request_bound: request.map(|(_, b)| b),
    }
}

/// Fills the cap-vs-limit fields of `runtime` for a memcg `limit`.
/// Arithmetic is checked: the cap comes from the victim's own argv.
pub fn heap_against_limit(runtime: &mut RuntimeReport, limit: Option<u64>) {
    runtime.limit_bytes = limit;
    let Some(limit) = limit else {
        return;
    };
    let cap = runtime.heap_limit_bytes.or_else(|| {
        runtime
            .heap_limit_percent
            .map(|percent| (limit as f64 * percent / 100.0) as u64)
    });
    runtime.heap_cap_bytes = cap;
    let Some(cap) = cap else {
        return;
    };
    runtime.heap_outgrows_limit = Some(cap >= limit);
    runtime.heap_percent_of_limit =
        u64::try_from(u128::from(cap) * 100 / u128::from(limit.max(1))).ok();
    runtime.non_heap_bytes = limit.checked_sub(cap).filter(|_| cap < limit);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::CapturedAt;

    #[test]
    fn oom_score_adj_is_read_against_the_kubelets_qos_policy() {
        let read = |qos, adj| {
            let r = kubelet_adj(qos, adj);
            (r.set_by_kubelet, r.memory_request_permille, r.request_bound)
        };
        assert_eq!(
            read(Qos::Burstable, 994),
            (true, Some(6), Some(RequestBound::About))
        );
        assert_eq!(
            read(Qos::Burstable, 750),
            (true, Some(250), Some(RequestBound::About))
        );
        assert_eq!(
            read(Qos::Burstable, 3),
            (true, Some(997), Some(RequestBound::AtLeast))
        );
        assert_eq!(
            read(Qos::Burstable, 999),
            (true, Some(1), Some(RequestBound::AtMost))
        );
        assert_eq!(read(Qos::Guaranteed, -997), (true, None, None));
        assert_eq!(read(Qos::Besteffort, 1000), (true, None, None));
        for (qos, adj) in [
            (Qos::Guaranteed, 0),
            (Qos::Besteffort, 999),
            (Qos::Burstable, 1000),
            (Qos::Burstable, -997),
        ] {
            assert_eq!(read(qos, adj), (false, None, None), "{qos:?} {adj}");
        }
    }

    fn runtime(cap: Option<u64>, percent: Option<f64>) -> RuntimeReport {
        RuntimeReport {
            heap_limit_bytes: cap,
            heap_limit_percent: percent,
            ..RuntimeReport::new(None, CapturedAt::Kill)
        }
    }

    #[test]
    fn a_heap_cap_is_weighed_against_the_limit() {
        let mut r = runtime(Some(48 << 20), None);
        heap_against_limit(&mut r, Some(64 << 20));
        assert_eq!(
            (
                r.heap_cap_bytes,
                r.heap_percent_of_limit,
                r.heap_outgrows_limit,
                r.non_heap_bytes
            ),
            (Some(48 << 20), Some(75), Some(false), Some(16 << 20))
        );
        let mut r = runtime(Some(128 << 20), None);
        heap_against_limit(&mut r, Some(64 << 20));
        assert_eq!(
            (r.heap_outgrows_limit, r.non_heap_bytes),
            (Some(true), None)
        );
        let mut r = runtime(None, Some(25.0));
        heap_against_limit(&mut r, Some(64 << 20));
        assert_eq!(
            (r.heap_cap_bytes, r.heap_percent_of_limit),
            (Some(16 << 20), Some(25))
        );
        let mut r = runtime(Some(1 << 20), None);
        heap_against_limit(&mut r, None);
        assert_eq!((r.limit_bytes, r.heap_cap_bytes), (None, None));
    }

    #[test]
    fn an_absurd_heap_cap_from_argv_does_not_overflow() {
        // -Xmx1000000t under cgroup v1's "no limit" (PAGE_COUNTER_MAX
        // pages): `cap * 100` overflowed u64 and panicked in debug builds.
        let mut r = runtime(Some(1_000_000 << 40), None);
        heap_against_limit(&mut r, Some(0x7fff_ffff_ffff_f000));
        assert_eq!(r.heap_outgrows_limit, Some(false));
        assert_eq!(r.heap_percent_of_limit, Some(11));
    }
}
