//! Basic kill records: every figure of a memcg kill against the kernel's
//! log, the victim's own uid and oom_score_adj, any comm bytes, and one
//! record per kill as /proc/vmstat counts them.

use std::time::{Duration, SystemTime};

use anyhow::Result;
use oomtrace_tests::{
    KernelLog, TestCgroup, Tracer,
    hog::HogOptions,
    kernel,
    system::{self, boot_ns, hostname, vmstat_oom_kill},
    verify::{comm_bytes, victim_matches_log},
};
use serde_json::Value;

use crate::common::{MIB, TIMEOUT, oom_domain_matches, oom_kill, record_for, setup, truth};

/// The exact sums may exceed or trail the kernel's counters by the
/// per-CPU batches not yet folded in, never by more.
fn assert_exact_rss_is_close(record: &Value) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let batch_pages = (2 * cpus).max(32);
    let slack = cpus * batch_pages * 4096;
    for kind in ["anon", "file", "shmem"] {
        let approx = record["victim"][format!("rss_{kind}_bytes")]
            .as_u64()
            .expect("rss");
        let exact = record["victim"][format!("rss_{kind}_exact_bytes")]
            .as_u64()
            .expect("exact rss");
        assert!(
            approx.abs_diff(exact) <= slack,
            "{kind}: {approx} vs exact {exact}"
        );
    }
}

#[test]
fn a_memcg_kill_is_reported_with_every_figure_the_kernel_logged() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&[])?;
    let ready = tracer.stderr_lines.last().cloned().unwrap_or_default();
    let mut log = KernelLog::open()?;
    let cgroup = TestCgroup::new("figures", 64 * MIB)?;
    let (vmstat_before, cgroup_before) = (vmstat_oom_kill()?, cgroup.oom_kills()?);
    let started = boot_ns();

    let pid = oom_kill(&cgroup.dir, None, &HogOptions::default())?;
    let record = &record_for(&mut tracer, pid)?;
    let truth = truth(&mut log, pid);
    victim_matches_log(record, &truth)?;
    assert_exact_rss_is_close(record);
    oom_domain_matches(record, &truth, &cgroup)?;

    assert_eq!(record["type"], "oom_kill");
    assert_eq!(record["schema"], 1);
    assert_eq!(record["host"], hostname());
    // The path the kernel's own answers call for, in record and ready line.
    let expected = kernel::expected_capture_path();
    assert_eq!(record["capture"], expected, "capture");
    assert!(
        ready.contains(&format!("via {expected}")),
        "the kernel offers {expected}, ready line: {ready}"
    );
    assert_eq!(
        record["victim"]["tgid"], pid,
        "single-threaded: tgid == pid"
    );
    assert_eq!(record["victim"]["memcg"]["path"], cgroup.path());
    assert_eq!(
        record["victim"]["memcg"]["id"],
        cgroup.id(),
        "memcg id is the directory's inode"
    );

    // The hog ran into its own limit: it is the trigger.
    let trigger = &record["trigger"];
    assert_eq!(trigger["is_victim"], true);
    assert_eq!(
        (trigger["pid"].clone(), trigger["tgid"].clone()),
        (pid.into(), pid.into())
    );
    assert_eq!(comm_bytes(&trigger["comm"]), truth.killed.comm);
    assert_eq!(trigger["memcg"], record["victim"]["memcg"]);

    let boot = record["boot_ns"].as_u64().expect("boot_ns");
    assert!(
        boot > started && boot < boot_ns(),
        "boot_ns {boot} outside the test's window"
    );
    let time =
        system::parse_rfc3339_utc(record["time"].as_str().expect("time")).expect("RFC 3339 UTC");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_secs_f64();
    assert!(
        (now - time).abs() < 30.0,
        "time {} is not now",
        record["time"]
    );
    assert_eq!(
        record["time"]
            .as_str()
            .map(|t| t.split('.').nth(1).map(str::len)),
        Some(Some(7)),
        "microseconds + Z"
    );

    assert_eq!(
        vmstat_oom_kill()? - vmstat_before,
        1,
        "/proc/vmstat oom_kill"
    );
    assert_eq!(
        cgroup.oom_kills()? - cgroup_before,
        1,
        "the cgroup's oom_kill counter"
    );
    let (status, rest, stderr) = tracer.stop()?;
    assert!(
        status.success(),
        "SIGTERM ends oomtrace with 0, got {status:?}; stderr {stderr:?}"
    );
    assert!(
        rest.iter().all(|r| r["type"] != "lost"),
        "nothing lost: {rest:?}"
    );
    Ok(())
}

#[test]
fn uid_and_oom_score_adj_of_the_victim_are_its_own() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&[])?;
    let mut log = KernelLog::open()?;
    let cgroup = TestCgroup::new("uid", 64 * MIB)?;
    let options = HogOptions {
        uid: Some(65534),
        ..Default::default()
    };
    let pid = oom_kill(&cgroup.dir, Some(567), &options)?;
    let record = &record_for(&mut tracer, pid)?;
    assert_eq!(record["victim"]["uid"], 65534);
    assert_eq!(record["victim"]["oom_score_adj"], 567);
    victim_matches_log(record, &truth(&mut log, pid))?;
    Ok(())
}

#[test]
fn any_comm_bytes_give_valid_json_and_the_same_bytes_back() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&[])?;
    let mut log = KernelLog::open()?;
    let cgroup = TestCgroup::new("comm", 64 * MIB)?;
    let comm: &[u8] = b"a\"b\\c\x01\xff{\n}\xc3";
    let options = HogOptions {
        comm: Some(comm.to_vec()),
        ..Default::default()
    };
    let pid = oom_kill(&cgroup.dir, None, &options)?;
    // Tracer::records_for parses every line as JSON: invalid JSON fails here.
    let record = &record_for(&mut tracer, pid)?;
    assert_eq!(comm_bytes(&record["victim"]["comm"]), comm);
    assert_eq!(
        truth(&mut log, pid).killed.comm,
        comm,
        "the kernel log agrees"
    );
    Ok(())
}

#[test]
fn n_kills_give_exactly_n_records_and_vmstat_agrees() -> Result<()> {
    const KILLS: usize = 5;
    let _serial = setup();
    let mut tracer = Tracer::start(&[])?;
    let cgroup = TestCgroup::new("count", 48 * MIB)?;
    let (vmstat_before, cgroup_before) = (vmstat_oom_kill()?, cgroup.oom_kills()?);

    let mut pids = Vec::new();
    for _ in 0..KILLS {
        pids.push(oom_kill(&cgroup.dir, None, &HogOptions::default())?);
    }
    let mut records = tracer.records_for(&pids, TIMEOUT);
    let vmstat_delta = vmstat_oom_kill()? - vmstat_before;
    records.extend(tracer.drain(Duration::from_millis(500)));

    let kills: Vec<&Value> = records.iter().filter(|r| r["type"] == "oom_kill").collect();
    for pid in &pids {
        assert_eq!(
            kills.iter().filter(|r| r["victim"]["pid"] == *pid).count(),
            1,
            "one record for {pid}"
        );
    }
    assert_eq!(
        vmstat_delta, KILLS as u64,
        "/proc/vmstat oom_kill rose by the kills we made"
    );
    assert_eq!(
        kills.len() as u64,
        vmstat_delta,
        "one record per kernel kill, no more, no fewer"
    );
    assert_eq!(cgroup.oom_kills()? - cgroup_before, KILLS as u64);
    assert!(records.iter().all(|r| r["type"] != "lost"));
    Ok(())
}
