//! A kill storm: `kills` OOM kills as fast as two workers can cause them,
//! round-robin over 50 cgroups of 16 MiB; oomtrace's records against the
//! kernel's own count, and what the kernel log kept.

use std::{thread, time::Duration, time::Instant};

use anyhow::Result;
use oomtrace_tests::{
    KernelLog, TestCgroup, Tracer, hog, hog::HogOptions, system::vmstat_oom_kill,
};
use serde_json::{Value, json};

use crate::{MIB, Row, TIMEOUT, row};

pub fn measure(kills: usize) -> Result<(Value, Vec<Row>)> {
    const CGROUPS: usize = 50;
    const WORKERS: usize = 2;
    let tracer = Tracer::start(&[])?;
    let cgroups: Vec<TestCgroup> = (0..CGROUPS)
        .map(|i| TestCgroup::new(&format!("bench-storm-{i}"), 16 * MIB))
        .collect::<Result<_>>()?;
    let mut log = KernelLog::open()?;
    let before = vmstat_oom_kill()?;
    let started = Instant::now();
    thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let cgroups = &cgroups;
                scope.spawn(move || -> Result<()> {
                    for k in (w..kills).step_by(WORKERS) {
                        let dir = &cgroups[k % CGROUPS].dir;
                        hog::oom_kill(dir, 64, None, &HogOptions::default(), TIMEOUT)?;
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
    let (_, records, _) = tracer.stop()?;
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
        "kills": kills,
        "cgroups": CGROUPS,
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
                "{} / {} ({} lost), in {:.0} s",
                result["records"], result["vmstat_oom_kill"], result["lost"], seconds
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
