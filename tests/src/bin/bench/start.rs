//! Start-up: spawn to ready, alternating run by run so that the host's
//! load hits all three alike: oomtrace cold (an empty BTF cache: it parses
//! the kernel's BTF), oomtrace warm (the cache a previous start filled),
//! and bpftrace's `Attaching 1 probe...` for the same tracepoint. oomtrace's
//! ready line is awaited by the test library's tracer, with its timeout.

use std::{
    fs,
    io::{BufRead as _, BufReader},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};
use oomtrace_tests::{Tracer, system::oomtrace_bin};
use serde_json::{Value, json};

use crate::{Row, TIMEOUT, median, row};

/// Runs of each.
const RUNS: usize = 7;

/// Spawn to ready of oomtrace (`--store none`) with its BTF cache in
/// `cache`, in ms.
fn oomtrace_start(cache: &Path) -> Result<f64> {
    let started = Instant::now();
    let mut tracer = Tracer::spawn(
        Command::new(oomtrace_bin())
            .args(["--format", "json", "--store", "none"])
            .env("OOMTRACE_CACHE", cache),
    )?;
    tracer.wait_ready(TIMEOUT)?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    tracer.stop()?;
    Ok(ms)
}

/// Spawn to `Attaching 1 probe...`, in ms.
fn bpftrace_start() -> Result<f64> {
    let started = Instant::now();
    // -B line: its stdout is a pipe here, which it would buffer.
    let mut child = Command::new("bpftrace")
        .args(["-B", "line", "-e"])
        .arg("tracepoint:oom:mark_victim { printf(\"%d\\n\", args->pid); }")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let (tx, first) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = first.recv_timeout(TIMEOUT).unwrap_or_default();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    // Only its start is measured; SIGINT can land on a thread that never
    // looks at it.
    let _ = child.kill();
    let _ = child.wait();
    if !line.starts_with("Attaching") {
        bail!("bpftrace was not ready within {TIMEOUT:?}: {line:?}");
    }
    Ok(ms)
}

pub fn measure() -> Result<(Value, Vec<Row>)> {
    let base = std::env::temp_dir().join(format!("oomtrace-bench-cache-{}", std::process::id()));
    let result = measure_in(&base);
    let _ = fs::remove_dir_all(&base);
    result
}

fn measure_in(base: &Path) -> Result<(Value, Vec<Row>)> {
    let warm_dir = base.join("warm");
    // Fills the warm cache.
    oomtrace_start(&warm_dir)?;
    let bpftrace = which("bpftrace").is_some();
    let (mut cold, mut warm, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        let cold_dir = base.join(format!("cold-{run}"));
        cold.push(oomtrace_start(&cold_dir)?);
        let _ = fs::remove_dir_all(&cold_dir);
        warm.push(oomtrace_start(&warm_dir)?);
        if bpftrace {
            theirs.push(bpftrace_start()?);
        }
    }
    let (cold_ms, warm_ms, bpftrace_ms) =
        (median(&mut cold), median(&mut warm), median(&mut theirs));
    let result = json!({
        "runs": RUNS,
        "oomtrace_cold_ms": cold_ms,
        "oomtrace_warm_ms": warm_ms,
        "bpftrace_ms": bpftrace_ms,
        "oomtrace_cold_all_ms": cold,
        "oomtrace_warm_all_ms": warm,
        "bpftrace_all_ms": theirs,
    });
    let (cold_ms, warm_ms) = (cold_ms.unwrap_or(0.0), warm_ms.unwrap_or(0.0));
    let rows = vec![row(
        &format!("start to ready (median of {RUNS}, alternating)"),
        match bpftrace_ms {
            Some(bpftrace) => format!(
                "oomtrace cold {cold_ms:.0} ms ({:.2}x bpftrace), warm {warm_ms:.0} ms \
                 ({:.2}x), bpftrace {bpftrace:.0} ms",
                cold_ms / bpftrace.max(1e-9),
                warm_ms / bpftrace.max(1e-9)
            ),
            None => format!(
                "oomtrace cold {cold_ms:.0} ms, warm {warm_ms:.0} ms (bpftrace not installed)"
            ),
        },
        "<= 1/3 of bpftrace's (0.33x)",
    )];
    Ok((result, rows))
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.is_file())
}
