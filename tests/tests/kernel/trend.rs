//! The memory trend behind the leak-vs-small-limit reading: the store's
//! usage samples (`--trend-interval`, shortened here, the logic not) give a
//! steady leak and a victim killed at start different readings.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use oomtrace_tests::{Hog, TestCgroup, Tracer, hog::HogOptions, kmsg};
use serde_json::Value;

use crate::common::{MIB, TIMEOUT, record_for, setup};

/// A scratch directory for the test's database, removed at the end.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("oomtrace-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).context("scratch dir")?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_steady_leak_and_a_victim_killed_at_start_get_different_readings() -> Result<()> {
    let _serial = setup();
    let scratch = Scratch::new("trend")?;
    let db = scratch.0.join("trend.db");
    let db_arg = db.to_string_lossy().into_owned();
    let mut tracer = Tracer::start(&["--store", &db_arg, "--trend-interval", "500ms"])?;

    // A leak: 1 MiB every 100 ms into 64 MiB, about 6 s to the limit. The
    // test writes down the cgroup's usage itself as it climbs.
    let leak = TestCgroup::new("trend-leak", 64 * MIB)?;
    kmsg::wait_for_oom_report_budget()?;
    let mut hog = Hog::spawn("grow", 1, &leak.dir, None, &HogOptions::default())?;
    hog.go()?;
    let started = Instant::now();
    let mut seen: Vec<(f64, u64)> = Vec::new();
    let status = loop {
        if let Ok(status) = hog.wait(Duration::from_millis(250)) {
            break status;
        }
        seen.push((started.elapsed().as_secs_f64(), leak.usage()?));
        anyhow::ensure!(started.elapsed() < TIMEOUT, "the leak was never killed");
    };
    anyhow::ensure!(Hog::was_sigkilled(&status), "leak ended with {status:?}");
    let record = record_for(&mut tracer, hog.pid)?;
    let trend = &record["trend"];
    assert_eq!(trend["memcg_path"], leak.path(), "{trend}");
    let samples = trend["samples"].as_u64().context("trend.samples")?;
    assert!(
        samples >= 4,
        "{samples} samples over a 6 s climb at 500 ms: {trend}"
    );
    // The slope against the test's own readings (its first and last
    // quarter of a second apart from the hog's start and end).
    let (&(t0, u0), &(t1, u1)) = (
        seen.first().context("readings")?,
        seen.last().context("readings")?,
    );
    let ours = (u1 as f64 - u0 as f64) / (t1 - t0) * 3600.0;
    let theirs = trend["slope_bytes_per_hour"].as_f64().context("slope")?;
    assert!(
        (theirs / ours - 1.0).abs() < 0.4,
        "slope {theirs:.0} B/h, the test saw {ours:.0} B/h ({seen:?})"
    );
    let max = trend["max_bytes"].as_u64().context("max_bytes")?;
    assert!(max <= 64 * MIB && max >= u0, "{trend}");
    assert_eq!(trend["limit_bytes"], 64 * MIB);
    let history = &record["history"];
    assert_eq!(history["hint"], "steady_growth", "{history}");
    let evidence = history["evidence"].as_str().unwrap_or_default();
    assert!(evidence.starts_with("first kill here; "), "{evidence}");
    assert!(evidence.contains("climbed"), "{evidence}");
    // `oomtrace show PID` tells it from the database, chart and verdict
    // included (the store commits on its own thread: give it a moment).
    let leak_pid = hog.pid.to_string();
    let shown =
        oomtrace_tests::wait::poll(Duration::from_secs(10), Duration::from_millis(100), || {
            let out = std::process::Command::new(oomtrace_tests::system::oomtrace_bin())
                .args(["show", "--store", &db_arg, &leak_pid])
                .output()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            Ok(text.contains("verdict").then_some(text))
        })?
        .context("show never found the leak's kill")?;
    assert!(shown.contains(&format!("pid {leak_pid} ")), "{shown}");
    assert!(
        shown.contains(&format!("  trend    usage of {}", leak.path())),
        "{shown}"
    );
    assert!(shown.contains('✕'), "the kill marked on the chart: {shown}");
    assert!(
        shown.contains("  verdict  steady growth: first kill here; "),
        "{shown}"
    );

    // Killed at start: 200 MiB at once into 64 MiB, twice in one cgroup.
    let small = TestCgroup::new("trend-small", 64 * MIB)?;
    let mut readings: Vec<Value> = Vec::new();
    for _ in 0..2 {
        kmsg::wait_for_oom_report_budget()?;
        let mut hog = Hog::spawn("alloc", 200, &small.dir, None, &HogOptions::default())?;
        hog.go_until_sigkilled(TIMEOUT)?;
        readings.push(record_for(&mut tracer, hog.pid)?);
    }
    let (first, second) = (&readings[0]["history"], &readings[1]["history"]);
    assert_eq!(
        first["hint"],
        Value::Null,
        "one young victim is no pattern: {first}"
    );
    let first_evidence = first["evidence"].as_str().unwrap_or_default();
    assert!(
        first_evidence.contains("one kill is no pattern"),
        "{first_evidence}"
    );
    assert_eq!(second["hint"], "undersized", "{second}");
    for r in &readings {
        let trend = &r["trend"];
        assert!(
            trend.is_null() || trend["samples"].as_u64().is_some_and(|n| n < 4),
            "a victim that lived well under a second has no trend to speak of: {trend}"
        );
    }
    let times = second["times_to_oom_ns"]
        .as_array()
        .context("times_to_oom_ns")?;
    assert_eq!(times.len(), 2, "{second}");
    for age in times {
        assert!(age.as_u64().is_some_and(|a| a < 10_000_000_000), "{second}");
    }
    tracer.stop()?;
    Ok(())
}
