//! A kill storm: `kills` OOM kills as fast as six workers can cause them,
//! round-robin over `cgroups` cgroups of 8 MiB, for at most four minutes;
//! oomtrace's records against the kernel's own count, and what the kernel
//! log kept. The cgroups are removed when dropped, also on failure.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::Result;
use oomtrace_tests::{
    KernelLog, TestCgroup, Tracer, hog, hog::HogOptions, system::vmstat_oom_kill,
};
use serde_json::{Value, json};

use crate::{MIB, Row, TIMEOUT, row};

pub fn measure(kills: usize, cgroup_count: usize) -> Result<(Value, Vec<Row>)> {
    const WORKERS: usize = 6;
    const BOUND: Duration = Duration::from_secs(240);
    let cgroup_count = cgroup_count.max(1);
    let cgroups: Vec<TestCgroup> = (0..cgroup_count)
        .map(|i| TestCgroup::new(&format!("bench-storm-{i}"), 8 * MIB))
        .collect::<Result<_>>()?;
    let tracer = Tracer::start(&[])?;
    crate::settle(tracer.pid())?;
    let done = AtomicUsize::new(0);
    let mut log = KernelLog::open()?;
    let before = vmstat_oom_kill()?;
    let started = Instant::now();
    thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (cgroups, done) = (&cgroups, &done);
                scope.spawn(move || -> Result<()> {
                    for k in (w..kills).step_by(WORKERS) {
                        if started.elapsed() > BOUND {
                            break;
                        }
                        let dir = &cgroups[k % cgroup_count].dir;
                        hog::oom_kill(dir, 32, None, &HogOptions::default(), TIMEOUT)?;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("storm worker panicked"))??;
        }
        Ok(())
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let vmstat = vmstat_oom_kill()? - before;
    // Everything the kernel counted has had its chance to reach the line.
    let (_, records, _) = tracer.stop()?;
    drop(cgroups);
    let count = |kind: &str| records.iter().filter(|r| r["type"] == kind).count();
    let lost: u64 = records
        .iter()
        .filter(|r| r["type"] == "lost")
        .filter_map(|r| r["count"].as_u64())
        .sum();
    let lines = log.collect(Duration::from_secs(2), |_| false);
    let suppressed: u64 = lines
        .iter()
        .filter_map(|l| l.split_once(" callbacks suppressed").map(|(head, _)| head))
        .filter_map(|head| head.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    let result = json!({
        "kills_asked": kills,
        "kills": done.load(Ordering::Relaxed),
        "bound_s": BOUND.as_secs(),
        "cgroups": cgroup_count,
        "seconds": seconds,
        "vmstat_oom_kill": vmstat,
        "records": count("oom_kill"),
        "lost": lost,
        "kmsg_killed_lines": lines.iter().filter(|l| l.contains("Killed process")).count(),
        "kmsg_reports": lines.iter().filter(|l| l.contains("invoked oom-killer")).count(),
        "kmsg_suppressed": suppressed,
    });
    let rows = vec![
        row(
            "storm: oomtrace records / kernel's oom_kill count",
            format!(
                "{} / {} ({} lost), {} kills across {} cgroups in {:.0} s ({:.0} kills/s)",
                result["records"],
                result["vmstat_oom_kill"],
                result["lost"],
                result["kills"],
                cgroup_count,
                seconds,
                vmstat as f64 / seconds
            ),
            "100 %",
        ),
        row(
            "storm: what the kernel log kept",
            format!(
                "{} `Killed process` lines, {} OOM reports (`invoked oom-killer`), {} messages suppressed by printk ratelimits",
                result["kmsg_killed_lines"], result["kmsg_reports"], result["kmsg_suppressed"]
            ),
            "",
        ),
    ];
    Ok((result, rows))
}
