//! Kernel capture time to the line being read here, kill after kill, for
//! oomtrace (its full JSON record; capture time = the record's boot_ns)
//! and for bpftrace on the same kills (`tracepoint:oom:mark_victim`
//! printing the pid and its own `nsecs`), both attached at once. Twice:
//! with the console's log level as it is (on this VM every OOM report is
//! printed to a serial console, with interrupts off) and with `dmesg -n 1`
//! (reports still logged, not printed), restored after, also on error.

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc::{self, Receiver},
    thread,
};

use anyhow::{Context as _, Result, bail};
use oomtrace_tests::{TestCgroup, Tracer, hog, hog::HogOptions, wait::Deadline};
use serde_json::{Value, json};

use crate::{MIB, Row, TIMEOUT, row, us};

pub fn measure(kills: usize) -> Result<(Value, Vec<Row>)> {
    let mut result = serde_json::Map::new();
    let mut rows = Vec::new();
    for (console, label) in [("default", "console as set"), ("quiet", "`dmesg -n 1`")] {
        let _quiet = (console == "quiet").then(QuietConsole::set).transpose()?;
        let (oomtrace, bpftrace) = both(kills)?;
        let summary = json!({
            "oomtrace": summary(oomtrace),
            "bpftrace": summary(bpftrace),
        });
        for tool in ["oomtrace", "bpftrace"] {
            let s = &summary[tool];
            rows.push(row(
                &format!("kill -> line read, {tool}, {label} (p50 / p99 / max)"),
                format!(
                    "{} / {} / {} over {} kills",
                    us(s["p50_ns"].as_u64()),
                    us(s["p99_ns"].as_u64()),
                    us(s["max_ns"].as_u64()),
                    s["kills"]
                ),
                if tool == "oomtrace" {
                    "p50 <= bpftrace's, p99 <= 1 ms"
                } else {
                    ""
                },
            ));
        }
        result.insert(console.into(), summary);
    }
    result.insert("console_loglevel_now".into(), json!(console_loglevel()?));
    Ok((Value::Object(result), rows))
}

fn summary(mut latencies: Vec<u64>) -> Value {
    latencies.sort_unstable();
    json!({
        "kills": latencies.len(),
        "p50_ns": percentile(&latencies, 50.0),
        "p90_ns": percentile(&latencies, 90.0),
        "p99_ns": percentile(&latencies, 99.0),
        "max_ns": latencies.last(),
    })
}

/// `kills` kills seen by oomtrace and bpftrace at once; each one's
/// latencies.
fn both(kills: usize) -> Result<(Vec<u64>, Vec<u64>)> {
    let extra = std::env::var("OOMTRACE_BENCH_ARGS").unwrap_or_default();
    let extra: Vec<&str> = extra.split_whitespace().collect();
    let mut tracer = Tracer::start(&extra)?;
    crate::settle(tracer.pid())?;
    let mut bpftrace = Bpftrace::start()?;
    let cgroup = TestCgroup::new("bench-latency", 32 * MIB)?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..kills {
        let pid = hog::oom_kill(&cgroup.dir, 200, None, &HogOptions::default(), TIMEOUT)?;
        let deadline = Deadline::after(TIMEOUT);
        loop {
            let (read_at, record) = tracer
                .next_record_read_at(deadline.left())
                .with_context(|| format!("no record for {pid}"))?;
            if record["type"] == "oom_kill" && record["victim"]["pid"] == pid {
                let captured = record["boot_ns"].as_u64().context("boot_ns")?;
                ours.push(read_at.saturating_sub(captured));
                break;
            }
        }
        theirs.push(bpftrace.latency_of(pid, &deadline)?);
    }
    tracer.stop()?;
    Ok((ours, theirs))
}

/// bpftrace printing `pid nsecs` at each mark_victim, line-buffered; each
/// line read with the monotonic clock its `nsecs` counts in.
struct Bpftrace {
    child: Child,
    lines: Receiver<(u64, String)>,
}

impl Bpftrace {
    fn start() -> Result<Bpftrace> {
        let mut child = Command::new("bpftrace")
            .args(["-B", "line", "-e"])
            .arg(r#"tracepoint:oom:mark_victim { printf("%d %llu\n", args->pid, nsecs); }"#)
            .stdout(Stdio::piped())
            // Its complaints (a missing tracefs, say) say why it stopped.
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawn bpftrace (installed by `cargo xtask bench`)")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((monotonic_ns(), line)).is_err() {
                    break;
                }
            }
        });
        let bpftrace = Bpftrace { child, lines };
        let deadline = Deadline::after(TIMEOUT);
        loop {
            let (_, line) = bpftrace
                .lines
                .recv_timeout(deadline.left())
                .context("bpftrace did not attach")?;
            if line.starts_with("Attaching") {
                return Ok(bpftrace);
            }
        }
    }

    fn latency_of(&mut self, pid: u32, deadline: &Deadline) -> Result<u64> {
        loop {
            let (read_at, line) = self
                .lines
                .recv_timeout(deadline.left())
                .with_context(|| format!("bpftrace printed nothing for {pid}"))?;
            let mut fields = line.split_whitespace();
            let (Some(seen), Some(at)) = (fields.next(), fields.next()) else {
                continue;
            };
            if seen.parse::<u32>().ok() == Some(pid) {
                let at: u64 = at.parse().context("bpftrace's nsecs")?;
                return Ok(read_at.saturating_sub(at));
            }
        }
    }
}

impl Drop for Bpftrace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock and out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

const PRINTK: &str = "/proc/sys/kernel/printk";

/// The console log level (the first of kernel.printk's four numbers).
fn console_loglevel() -> Result<String> {
    let text = std::fs::read_to_string(PRINTK).context("read kernel.printk")?;
    text.split_whitespace()
        .next()
        .map(str::to_string)
        .context("kernel.printk is empty")
}

/// `dmesg -n 1` while this lives; the level before comes back on drop.
struct QuietConsole {
    was: String,
}

impl QuietConsole {
    fn set() -> Result<QuietConsole> {
        let was = console_loglevel()?;
        std::fs::write(PRINTK, "1").context("set the console log level")?;
        if console_loglevel()? != "1" {
            bail!("the console log level did not change");
        }
        Ok(QuietConsole { was })
    }
}

impl Drop for QuietConsole {
    fn drop(&mut self) {
        if let Err(error) = std::fs::write(PRINTK, &self.was) {
            eprintln!(
                "oomtrace-bench: cannot restore the console log level {}: {error}",
                self.was
            );
        }
    }
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
