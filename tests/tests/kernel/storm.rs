//! Many kills: ring-buffer loss counted, storms across cgroups, a soak.

use std::time::Duration;

use anyhow::{Context as _, Result};
use oomtrace_tests::{
    TestCgroup, Tracer,
    hog::{self, HogOptions},
    system::{self, vmstat_oom_kill},
    tracer::victim_record,
};
use serde_json::Value;

use crate::common::{MIB, TIMEOUT, oom_kill, setup};

#[test]
fn records_the_ring_buffer_cannot_take_are_reported_as_lost() -> Result<()> {
    const KILLS: u64 = 12;
    let _serial = setup();
    // The smallest ring (32 KiB) holds a few kill records of 4.3 KiB and
    // more; twelve cannot all fit while oomtrace is stopped.
    let mut tracer = Tracer::start(&["--ring-buffer-size", "32K"])?;
    let cgroup = TestCgroup::new("lost", 48 * MIB)?;
    let vmstat_before = vmstat_oom_kill()?;
    tracer.signal(libc::SIGSTOP);
    let mut pids = Vec::new();
    for _ in 0..KILLS {
        pids.push(oom_kill(&cgroup.dir, None, &HogOptions::default())?);
    }
    tracer.signal(libc::SIGCONT);
    let mut records = tracer.records_for(&pids[..1], TIMEOUT);
    records.extend(tracer.drain(Duration::from_secs(1)));

    let count = |kind: &str| records.iter().filter(|r| r["type"] == kind).count() as u64;
    let lost: u64 = records
        .iter()
        .filter(|r| r["type"] == "lost")
        .filter_map(|r| r["count"].as_u64())
        .sum();
    assert_eq!(vmstat_oom_kill()? - vmstat_before, KILLS);
    let summary: Vec<String> = records
        .iter()
        .map(|r| format!("{} {}", r["type"], r["count"]))
        .collect();
    assert!(
        count("oom_kill") < KILLS && lost > 0,
        "the ring overflowed: {summary:?}"
    );
    // Each victim gives a kill and an exit record: every one of them was
    // either delivered or counted as lost in the kernel.
    assert_eq!(
        count("oom_kill") + count("oom_outcome") + lost,
        2 * KILLS,
        "delivered + lost == sent: {summary:?}"
    );
    for record in records.iter().filter(|r| r["type"] == "lost") {
        assert_eq!(record["stage"], "ring_buffer");
        assert_eq!(record["schema"], 1);
        assert!(system::parse_rfc3339_utc(record["time"].as_str().unwrap_or("")).is_some());
    }
    Ok(())
}

#[test]
fn a_storm_across_many_cgroups_is_reported_kill_by_kill() -> Result<()> {
    const CGROUPS: usize = 8;
    const KILLS_EACH: u64 = 3;
    let _serial = setup();
    let mut tracer = Tracer::start(&[])?;
    let cgroups: Vec<TestCgroup> = (0..CGROUPS)
        .map(|i| TestCgroup::new(&format!("storm{i}"), 32 * MIB))
        .collect::<Result<_>>()?;
    let vmstat_before = vmstat_oom_kill()?;

    // Each cgroup gets its kills one after the other; the cgroups run at
    // once, so the kills interleave across CPUs.
    let pids: Vec<(usize, u32)> = std::thread::scope(|scope| {
        let workers: Vec<_> = cgroups
            .iter()
            .enumerate()
            .map(|(i, cgroup)| {
                scope.spawn(move || -> Result<Vec<(usize, u32)>> {
                    let mut pids = Vec::new();
                    for _ in 0..KILLS_EACH {
                        let pid =
                            hog::oom_kill(&cgroup.dir, 100, None, &HogOptions::default(), TIMEOUT)?;
                        pids.push((i, pid));
                    }
                    Ok(pids)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect::<Result<Vec<_>>>()
    })?
    .into_iter()
    .flatten()
    .collect();
    let all: Vec<u32> = pids.iter().map(|(_, pid)| *pid).collect();
    let mut records = tracer.records_for(&all, TIMEOUT);
    records.extend(tracer.drain(Duration::from_millis(500)));

    let kills: Vec<&Value> = records.iter().filter(|r| r["type"] == "oom_kill").collect();
    assert!(records.iter().all(|r| r["type"] != "lost"), "nothing lost");
    assert_eq!(
        vmstat_oom_kill()? - vmstat_before,
        (CGROUPS as u64) * KILLS_EACH
    );
    assert_eq!(kills.len(), all.len(), "one record per kill");
    for (i, cgroup) in cgroups.iter().enumerate() {
        let mine: Vec<&Value> = pids
            .iter()
            .filter(|(c, _)| *c == i)
            .map(|(_, pid)| victim_record(&records, *pid).expect("a record per victim"))
            .collect();
        for record in &mine {
            assert_eq!(record["victim"]["memcg"]["path"], cgroup.path());
            assert_eq!(record["constraint"], "memcg");
            assert_eq!(record["oom_memcg"]["path"], cgroup.path());
            assert_eq!(record["oom_memcg"]["id"], cgroup.id());
            assert_eq!(record["oom_memcg"]["limit_bytes"], cgroup.limit()?);
            assert_eq!(record["trigger"]["is_victim"], true);
        }
        // The cgroup's own counter, kill by kill: 1st, 2nd, 3rd.
        let mut counts: Vec<u64> = mine
            .iter()
            .filter_map(|r| r["oom_memcg"]["oom_kills"].as_u64())
            .collect();
        counts.sort_unstable();
        assert_eq!(
            counts,
            (1..=KILLS_EACH).collect::<Vec<_>>(),
            "{}",
            cgroup.path()
        );
        assert_eq!(cgroup.oom_kills()?, KILLS_EACH);
    }
    Ok(())
}

#[test]
fn a_soak_of_steady_kills_keeps_counts_exact_and_memory_flat() -> Result<()> {
    // One minute in CI; the benchmark runs it longer (OOMTRACE_SOAK_SECS).
    let seconds: u64 = std::env::var("OOMTRACE_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let _serial = setup();
    let mut tracer = Tracer::start(&["--pressure", "--sigkill"])?;
    let cgroups = [
        TestCgroup::new("soak-a", 32 * MIB)?,
        TestCgroup::new("soak-b", 48 * MIB)?,
    ];
    let vmstat_before = vmstat_oom_kill()?;
    let started = std::time::Instant::now();
    let warm = Duration::from_secs(seconds / 4);
    let mut rss_warm = None;
    let mut pids = Vec::new();
    let mut records = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        let cgroup = &cgroups[pids.len() % 2];
        pids.push(hog::oom_kill(
            &cgroup.dir,
            200,
            None,
            &HogOptions::default(),
            TIMEOUT,
        )?);
        // Keep reading so the pipe never fills.
        records.extend(tracer.drain(Duration::from_millis(5)));
        if rss_warm.is_none() && started.elapsed() >= warm {
            rss_warm = Some(system::status_bytes(tracer.pid(), "VmRSS:")?);
        }
    }
    records.extend(tracer.drain(Duration::from_secs(1)));
    let rss_end = system::status_bytes(tracer.pid(), "VmRSS:")?;

    let kills: Vec<&Value> = records.iter().filter(|r| r["type"] == "oom_kill").collect();
    assert_eq!(vmstat_oom_kill()? - vmstat_before, pids.len() as u64);
    assert_eq!(kills.len(), pids.len(), "one record per kill, exactly");
    for pid in &pids {
        assert!(victim_record(&records, *pid).is_some(), "{pid}");
    }
    assert!(records.iter().all(|r| r["type"] != "lost"));
    for record in &records {
        oomtrace_tests::schema::validate(record).map_err(|e| anyhow::anyhow!("{e}: {record}"))?;
    }
    let rss_warm = rss_warm.context("ran long enough to warm up")?;
    eprintln!(
        "soak: {} kills in {seconds} s, oomtrace RSS {} KiB after warm-up, {} KiB at the end",
        pids.len(),
        rss_warm / 1024,
        rss_end / 1024
    );
    assert!(
        rss_end <= rss_warm + 4 * MIB,
        "memory grew from {rss_warm} to {rss_end} bytes over {} kills",
        pids.len()
    );
    Ok(())
}
