//! Start-up: spawn to ready, five times each: oomtrace's ready line
//! (awaited by the test library's tracer, with its timeout), bpftrace's
//! `Attaching 1 probe...` for the same tracepoint.

use std::{
    io::{BufRead as _, BufReader},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};
use oomtrace_tests::Tracer;
use serde_json::{Value, json};

use crate::{Row, TIMEOUT, median, row};

/// Spawn to ready, five times each: oomtrace's ready line, bpftrace's
/// `Attaching 1 probe...` for the same tracepoint.
pub fn measure() -> Result<(Value, Vec<Row>)> {
    let mut ours = Vec::new();
    for _ in 0..5 {
        let spawned = Instant::now();
        let tracer = Tracer::start(&[])?;
        ours.push(spawned.elapsed().as_secs_f64() * 1000.0);
        tracer.stop()?;
    }
    let mut theirs = Vec::new();
    if which("bpftrace").is_some() {
        for _ in 0..5 {
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
            if !line.starts_with("Attaching") {
                let _ = child.kill();
                let _ = child.wait();
                bail!("bpftrace was not ready within {TIMEOUT:?}: {line:?}");
            }
            theirs.push(started.elapsed().as_secs_f64() * 1000.0);
            // Only its start is measured; SIGINT can land on a thread
            // that never looks at it.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    let (oomtrace_ms, bpftrace_ms) = (median(&mut ours), median(&mut theirs));
    let result = json!({
        "oomtrace_ms": oomtrace_ms,
        "bpftrace_ms": bpftrace_ms,
        "oomtrace_all_ms": ours,
        "bpftrace_all_ms": theirs,
    });
    let oomtrace_ms = oomtrace_ms.unwrap_or(0.0);
    let rows = vec![row(
        "start to ready (median of 5)",
        match bpftrace_ms {
            Some(bpftrace) => format!(
                "oomtrace {oomtrace_ms:.0} ms, bpftrace {bpftrace:.0} ms ({:.1}x)",
                bpftrace / oomtrace_ms.max(1e-9)
            ),
            None => format!("oomtrace {oomtrace_ms:.0} ms (bpftrace not installed)"),
        },
        ">= 10x faster than bpftrace",
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
