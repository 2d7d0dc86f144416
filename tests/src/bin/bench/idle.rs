//! Idle cost: wakeups (context switches of all its threads), CPU and
//! memory of an oomtrace that sees no kill.

use std::{fs, thread, time::Duration};

use anyhow::{Context as _, Result};
use oomtrace_tests::{
    Tracer,
    system::{status_bytes, ticks_per_second},
};
use serde_json::{Value, json};

use crate::{Row, mib, row};

/// Context switches of all of oomtrace's threads, and its CPU ticks.
fn idle_counters(pid: u32) -> Result<(u64, u64)> {
    let mut switches = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let status = fs::read_to_string(task?.path().join("status"))?;
        for line in status.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                switches += v.trim().parse::<u64>()?;
            }
        }
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("stat")?
        .1
        .split_whitespace()
        .collect();
    // utime and stime: fields 14 and 15, 12th and 13th after the comm.
    let field =
        |n: usize| -> Result<u64> { Ok(fields.get(n).context("short stat")?.parse::<u64>()?) };
    let ticks = field(11)? + field(12)?;
    Ok((switches, ticks))
}

/// One idle run of `oomtrace ARGS`: wakeups per second, CPU share, RSS
/// now and at its peak.
fn idle_run(args: &[&str], seconds: u64) -> Result<Value> {
    let tracer = Tracer::start(args)?;
    let pid = tracer.pid();
    thread::sleep(Duration::from_secs(2));
    let (switches_before, ticks_before) = idle_counters(pid)?;
    thread::sleep(Duration::from_secs(seconds));
    let (switches_after, ticks_after) = idle_counters(pid)?;
    let rss = status_bytes(pid, "VmRSS:")?;
    let peak = status_bytes(pid, "VmHWM:")?;
    tracer.stop()?;
    let hz = ticks_per_second().max(1) as f64;
    let cpu_seconds = (ticks_after - ticks_before) as f64 / hz;
    Ok(json!({
        "seconds": seconds,
        "wakeups_per_s": (switches_after - switches_before) as f64 / seconds as f64,
        "cpu_percent": cpu_seconds / seconds as f64 * 100.0,
        "rss_bytes": rss,
        "peak_rss_bytes": peak,
    }))
}

fn rows(label: &str, r: &Value, seconds: u64, goal: &str) -> Vec<Row> {
    let bytes = |k: &str| r[k].as_u64();
    vec![
        row(
            &format!("idle{label}: wakeups, CPU"),
            format!(
                "{:.2} wakeups/s, {:.3} % of a CPU over {seconds} s",
                r["wakeups_per_s"].as_f64().unwrap_or(0.0),
                r["cpu_percent"].as_f64().unwrap_or(0.0),
            ),
            goal,
        ),
        row(
            &format!("resident memory (idle{label}) / peak at start"),
            format!(
                "{} / {}",
                mib(bytes("rss_bytes")),
                mib(bytes("peak_rss_bytes"))
            ),
            "<= 16 MiB",
        ),
    ]
}

/// The default flags (as the tests run it: `--store none`), then with
/// the store and its trend sampling on (every limited cgroup each 30 s).
pub fn measure(seconds: u64) -> Result<(Value, Vec<Row>)> {
    let plain = idle_run(&[], seconds)?;
    let dir = std::env::temp_dir().join(format!("oomtrace-bench-store-{}", std::process::id()));
    let db = dir.join("bench.db");
    let db_arg = db.to_string_lossy().into_owned();
    let stored = idle_run(&["--store", &db_arg], seconds);
    let _ = fs::remove_dir_all(&dir);
    let stored = stored?;
    let mut table = rows("", &plain, seconds, "0 wakeups, ~0 CPU");
    table.extend(rows(
        " with store + 30 s trend",
        &stored,
        seconds,
        "one wakeup per trend interval, ~0 CPU",
    ));
    Ok((json!({"default": plain, "store_and_trend": stored}), table))
}
