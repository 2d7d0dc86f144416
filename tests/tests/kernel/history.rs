//! The victim's age and its workload's kill history.

use anyhow::{Context as _, Result};
use oomtrace_tests::{Hog, TestCgroup, Tracer, hog::HogOptions, kmsg, system};
use serde_json::Value;

use crate::common::{MIB, TIMEOUT, record_for, setup};

#[test]
fn the_victims_age_and_its_workloads_kill_history() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&[])?;
    let cgroup = TestCgroup::new("history", 64 * MIB)?;
    let mut records = Vec::new();
    // When each hog was let go and when it was dead, on the test's own
    // boot clock: its kill lies in between.
    let mut windows = Vec::new();
    for _ in 0..2 {
        kmsg::wait_for_oom_report_budget()?;
        let mut hog = Hog::spawn("alloc", 200, &cgroup.dir, None, &HogOptions::default())?;
        let started_ticks = system::proc_start_ticks(hog.pid)?;
        let let_go = system::boot_ns();
        hog.go_until_sigkilled(TIMEOUT)?;
        windows.push((let_go, system::boot_ns()));
        let record = record_for(&mut tracer, hog.pid)?;
        // Its start, back from the record, is /proc's to the tick.
        let victim = &record["victim"];
        let age = victim["age_ns"].as_u64().context("age_ns")?;
        let boot = record["boot_ns"].as_u64().context("boot_ns")?;
        let tick_ns = 1_000_000_000 / system::ticks_per_second();
        assert_eq!(
            (boot - age) / tick_ns,
            started_ticks,
            "start vs /proc/PID/stat"
        );
        records.push(record);
    }
    let (first, second) = (&records[0]["history"], &records[1]["history"]);
    assert_eq!(first["workload"], format!("memcg {}", cgroup.path()));
    assert_eq!(
        second["workload"], first["workload"],
        "same limit, same workload"
    );
    assert_eq!(
        (first["kills"].clone(), second["kills"].clone()),
        (1.into(), 2.into())
    );
    assert_eq!(first["since_previous_kill_ns"], Value::Null);
    let since = second["since_previous_kill_ns"]
        .as_u64()
        .context("since_previous_kill_ns")?;
    let ((go_1, dead_1), (go_2, dead_2)) = (windows[0], windows[1]);
    assert!(
        (go_2 - dead_1..=dead_2 - go_1).contains(&since),
        "{since} ns between kills, the test saw {} to {} ns",
        go_2 - dead_1,
        dead_2 - go_1
    );
    // Killed within a second of starting: once is no pattern (it needed
    // more at once, or grew without bound that fast); twice reads as a
    // limit too small for what it needs from the start.
    assert_eq!(first["hint"], Value::Null, "{first}");
    assert_eq!(second["hint"], "undersized", "{second}");
    Ok(())
}
