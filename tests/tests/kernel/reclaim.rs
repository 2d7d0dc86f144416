//! Reclaim history and `--pressure` warnings against the kernel's own
//! vmscan trace.

use std::time::Duration;

use anyhow::{Context as _, Result};
use oomtrace_tests::{Hog, TestCgroup, Tracer, hog::HogOptions, kmsg, tracer::victim_record};
use serde_json::Value;

use crate::common::{MIB, TIMEOUT, oom_kill, record_for, setup};

#[test]
fn reclaim_stalls_before_a_kill_match_the_kernels_own_trace() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&[])?;
    let cgroup = TestCgroup::new("reclaim", 64 * MIB)?;
    kmsg::wait_for_oom_report_budget()?;
    let mut hog = Hog::spawn("alloc", 200, &cgroup.dir, None, &HogOptions::default())?;
    // The kernel's own record of the hog's reclaim, up to its kill.
    let trace = oomtrace_tests::tracefs::TraceInstance::new(
        &[
            "vmscan/mm_vmscan_memcg_reclaim_begin",
            "vmscan/mm_vmscan_memcg_reclaim_end",
            "oom/mark_victim",
        ],
        hog.pid,
    )?;
    hog.go_until_sigkilled(TIMEOUT)?;
    let record = record_for(&mut tracer, hog.pid)?;
    let events = trace.events()?;
    let killed_at = events
        .iter()
        .position(|(_, name, _)| name == "mark_victim")
        .context("no mark_victim in the trace")?;
    let mut stalls = 0u64;
    let mut stall_ns = 0u64;
    let mut reclaimed_pages = 0u64;
    let mut begin = None;
    for (ns, name, fields) in &events[..killed_at] {
        match name.as_str() {
            "mm_vmscan_memcg_reclaim_begin" => begin = Some(*ns),
            "mm_vmscan_memcg_reclaim_end" => {
                stalls += 1;
                stall_ns += ns - begin.take().context("end without begin")?;
                reclaimed_pages += fields
                    .strip_prefix("nr_reclaimed=")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .context("nr_reclaimed")?;
            }
            _ => {}
        }
    }
    assert!(
        stalls > 0,
        "a 64 MiB cgroup filled with 200 MiB reclaims: {events:?}"
    );

    // Alone in its cgroup and traced from its first charge: the victim's
    // memcg history is exactly the hog's reclaim.
    let reclaim = &record["victim"]["memcg"]["reclaim"];
    assert_eq!(reclaim["total"]["stalls"], stalls, "stalls");
    assert_eq!(
        reclaim["total"]["reclaimed_bytes"],
        reclaimed_pages * 4096,
        "reclaimed"
    );
    assert_eq!(
        reclaim["last_10s"]["stalls"], stalls,
        "all within the last 10 s"
    );
    assert_eq!(
        reclaim["since_previous_kill"],
        Value::Null,
        "the cgroup's first kill"
    );
    // ftrace prints microseconds, and its probe and ours read the clock
    // one after the other on the same tracepoint: an interrupt between them
    // (a busy 2-core machine) moves an edge by tens of us. Allow 2 us of
    // rounding and 10 us of skew per stall, and 5%: a unit or a missed
    // stall is still far outside.
    let ours = reclaim["total"]["stall_ns"].as_u64().context("stall_ns")?;
    assert!(
        ours.abs_diff(stall_ns) <= stalls * 12_000 + stall_ns / 20,
        "stall time {ours} vs trace {stall_ns}"
    );
    let max = reclaim["total"]["max_stall_ns"].as_u64().context("max")?;
    assert!(
        max <= ours && max * stalls >= ours,
        "max {max} of {stalls} stalls totalling {ours}"
    );
    // The limit's cgroup is the victim's here: the same history.
    assert_eq!(record["oom_memcg"]["reclaim"], *reclaim);
    Ok(())
}

#[test]
fn pressure_warns_before_the_kill_once_per_cgroup() -> Result<()> {
    let _serial = setup();
    // 1 us: the first reclaim pass crosses it, well before the kill.
    let mut tracer = Tracer::start(&["--pressure", "1us"])?;
    let cgroup = TestCgroup::new("pressure", 64 * MIB)?;
    let pid = oom_kill(&cgroup.dir, None, &HogOptions::default())?;
    let mut records = tracer.records_for(&[pid], TIMEOUT);
    records.extend(tracer.drain(Duration::from_millis(300)));

    let mine: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "memcg_pressure" && r["memcg"]["id"] == cgroup.id())
        .collect();
    assert_eq!(
        mine.len(),
        1,
        "one warning per cgroup per 10 s: {records:#?}"
    );
    let warning = mine[0];
    let kill = victim_record(&records, pid).context("the kill")?;
    assert_eq!(warning["memcg"]["path"], cgroup.path());
    assert_eq!(warning["threshold_ns"], 1_000);
    let stalled = warning["stall_ns"].as_u64().context("stall_ns")?;
    assert!(
        stalled >= 1_000,
        "warned at {stalled} ns, under the threshold"
    );
    let stalls = warning["stalls"].as_u64().context("stalls")?;
    let total = kill["victim"]["memcg"]["reclaim"]["total"]["stalls"]
        .as_u64()
        .context("total")?;
    assert!(
        stalls >= 1 && stalls <= total,
        "{stalls} stalls of {total} before the kill"
    );
    let position = |r: &Value| records.iter().position(|x| x == r);
    assert!(
        position(warning) < position(kill),
        "the warning comes first"
    );
    let at = |r: &Value| r["boot_ns"].as_u64().context("boot_ns");
    assert!(at(warning)? < at(kill)?, "warned before the kill");
    Ok(())
}
