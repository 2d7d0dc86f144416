//! The kill to the line being read here, kill after kill, for oomtrace
//! (its full JSON record) and for bpftrace on the same kills
//! (`tracepoint:oom:mark_victim` printing the pid and its own `nsecs`),
//! both attached at once. bpftrace attaches first, so its program runs
//! first at each kill and nothing of oomtrace's delays its line; both are
//! timed from the earlier of the two tools' timestamps of the kill
//! (bpftrace's, on the same clock as the record's `boot_ns`). oomtrace
//! runs with OOMTRACE_VERBOSE=1, which prints each kill's way to its line
//! after the line is written: the bench reports its phases. Twice: with
//! the console's log level as it is (on this VM every OOM report is
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
        let (oomtrace, bpftrace, phases) = both(kills)?;
        let summary = json!({
            "oomtrace": summary(oomtrace),
            "bpftrace": summary(bpftrace),
            "oomtrace_phases_p50_us": phases,
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
        rows.push(row(
            &format!("oomtrace's way to the line, {label} (p50, us after the kill)"),
            PHASES
                .iter()
                .map(|(key, what)| format!("{what} {}", summary["oomtrace_phases_p50_us"][key]))
                .collect::<Vec<_>>()
                .join(", "),
            "",
        ));
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

/// The phases OOMTRACE_VERBOSE=1 prints per kill (`... read at N us,
/// decoded at N, record at N, ..., written at N`), as the bench names them.
const PHASES: [(&str, &str); 4] = [
    ("read", "ring buffer read"),
    ("decoded", "decoded"),
    ("record", "record built"),
    ("written", "line written"),
];

/// `kills` kills seen by oomtrace and bpftrace at once; each one's
/// latencies from the kill's first timestamp, and oomtrace's phases (p50).
fn both(kills: usize) -> Result<(Vec<u64>, Vec<u64>, Value)> {
    let extra = std::env::var("OOMTRACE_BENCH_ARGS").unwrap_or_default();
    let extra: Vec<&str> = extra.split_whitespace().collect();
    let mut bpftrace = Bpftrace::start()?;
    let mut tracer = Tracer::spawn(
        Command::new(oomtrace_tests::system::oomtrace_bin())
            .args(["--format", "json", "--store", "none"])
            .args(&extra)
            .env("OOMTRACE_VERBOSE", "1"),
    )?;
    tracer.wait_ready(TIMEOUT)?;
    crate::settle(tracer.pid())?;
    // bpftrace's nsecs is CLOCK_MONOTONIC, the record's CLOCK_BOOTTIME:
    // they differ by the time the machine was suspended, constant here.
    let boot_minus_mono = boot_ns().saturating_sub(monotonic_ns());
    let cgroup = TestCgroup::new("bench-latency", 32 * MIB)?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..kills {
        let pid = hog::oom_kill(&cgroup.dir, 200, None, &HogOptions::default(), TIMEOUT)?;
        let deadline = Deadline::after(TIMEOUT);
        let (our_read, captured) = loop {
            let (read_at, record) = tracer
                .next_record_read_at(deadline.left())
                .with_context(|| format!("no record for {pid}"))?;
            if record["type"] == "oom_kill" && record["victim"]["pid"] == pid {
                break (read_at, record["boot_ns"].as_u64().context("boot_ns")?);
            }
        };
        let (their_read, their_at) = bpftrace.line_of(pid, &deadline)?;
        let (their_read, their_at) = (their_read + boot_minus_mono, their_at + boot_minus_mono);
        let kill = captured.min(their_at);
        ours.push(our_read.saturating_sub(kill));
        theirs.push(their_read.saturating_sub(kill));
    }
    let (_, _, stderr) = tracer.stop()?;
    Ok((ours, theirs, phases(&stderr)))
}

/// The p50 of each of [`PHASES`] over the kills `stderr` timed.
fn phases(stderr: &[String]) -> Value {
    let timed: Vec<&str> = stderr
        .iter()
        .filter(|l| l.starts_with("oomtrace: kill of ") && l.contains("written at"))
        .map(String::as_str)
        .collect();
    let mut p50 = serde_json::Map::new();
    for (key, _) in PHASES {
        let mut at: Vec<u64> = timed
            .iter()
            .filter_map(|line| phase_at(line, key))
            .collect();
        at.sort_unstable();
        p50.insert(key.into(), json!(percentile(&at, 50.0)));
    }
    Value::Object(p50)
}

/// The number after `KEY at ` in an OOMTRACE_VERBOSE kill line.
fn phase_at(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(&format!("{key} at "))? + key.len() + 4..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
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

    /// When this process read `pid`'s line and bpftrace's `nsecs` in it.
    fn line_of(&mut self, pid: u32, deadline: &Deadline) -> Result<(u64, u64)> {
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
                return Ok((read_at, at));
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
    clock_ns(libc::CLOCK_MONOTONIC)
}

fn boot_ns() -> u64 {
    clock_ns(libc::CLOCK_BOOTTIME)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock and out pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
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

    #[test]
    fn phases_are_read_from_the_verbose_kill_lines() {
        let line = "oomtrace: kill of 42: read at 97 us, decoded at 109, record at 369, candidates at 131, written at 442";
        assert_eq!(super::phase_at(line, "read"), Some(97));
        assert_eq!(super::phase_at(line, "record"), Some(369));
        assert_eq!(super::phase_at(line, "written"), Some(442));
        assert_eq!(
            super::phase_at(
                "oomtrace: kill of 42: read at 9 us, held for correlation",
                "written"
            ),
            None
        );
    }
}
