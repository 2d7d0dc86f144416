//! Kernel capture time (the record's boot_ns) to the JSON line being read
//! here, kill after kill.

use anyhow::{Context as _, Result};
use oomtrace_tests::{TestCgroup, Tracer, hog, hog::HogOptions, wait::Deadline};
use serde_json::{Value, json};

use crate::{MIB, Row, TIMEOUT, row, us};

pub fn measure(kills: usize) -> Result<(Value, Vec<Row>)> {
    let mut tracer = Tracer::start(&[])?;
    let cgroup = TestCgroup::new("bench-latency", 32 * MIB)?;
    let mut latencies = Vec::new();
    for _ in 0..kills {
        let pid = hog::oom_kill(&cgroup.dir, 200, None, &HogOptions::default(), TIMEOUT)?;
        let deadline = Deadline::after(TIMEOUT);
        loop {
            let (read_at, record) = tracer
                .next_record_read_at(deadline.left())
                .with_context(|| format!("no record for {pid}"))?;
            if record["type"] == "oom_kill" && record["victim"]["pid"] == pid {
                let captured = record["boot_ns"].as_u64().context("boot_ns")?;
                latencies.push(read_at.saturating_sub(captured));
                break;
            }
        }
    }
    tracer.stop()?;
    latencies.sort_unstable();
    let result = json!({
        "kills": latencies.len(),
        "p50_ns": percentile(&latencies, 50.0),
        "p90_ns": percentile(&latencies, 90.0),
        "p99_ns": percentile(&latencies, 99.0),
        "max_ns": latencies.last(),
    });
    let rows = vec![row(
        "kill -> JSON line read (p50 / p99 / max)",
        format!(
            "{} / {} / {} over {} kills",
            us(result["p50_ns"].as_u64()),
            us(result["p99_ns"].as_u64()),
            us(result["max_ns"].as_u64()),
            result["kills"]
        ),
        "p50 <= 200 us, p99 <= 1 ms",
    )];
    Ok((result, rows))
}

/// Nearest-rank percentile `p` of `sorted`.
fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted.get(rank).copied()
}

#[cfg(test)]
mod tests {
    #[test]
    fn percentiles_by_nearest_rank() {
        let sorted: Vec<u64> = (1..=101).collect();
        assert_eq!(super::percentile(&sorted, 50.0), Some(51));
        assert_eq!(super::percentile(&sorted, 99.0), Some(100));
        assert_eq!(super::percentile(&[], 50.0), None);
    }
}
