//! oomtrace under test, as a child process.

use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{
    system::{boot_ns, oomtrace_bin},
    wait::{self, Deadline},
};

pub struct Tracer {
    child: Child,
    /// Stdout lines, each with the boot-clock time it was read at.
    stdout: Receiver<(u64, String)>,
    stderr: Receiver<(u64, String)>,
    /// Every stderr line seen so far.
    pub stderr_lines: Vec<String>,
}

impl Tracer {
    /// Starts `oomtrace --format json ARGS...` and waits for its ready line.
    /// Without `--store` in ARGS it runs with `--store none`: as root the
    /// default is the machine's own history, which no test may write to
    /// (nor let earlier runs' kills into its counts).
    pub fn start(args: &[&str]) -> Result<Tracer> {
        let store: &[&str] = if args.iter().any(|a| a.starts_with("--store")) {
            &[]
        } else {
            &["--store", "none"]
        };
        let mut tracer = Self::spawn(
            Command::new(oomtrace_bin())
                .arg("--format")
                .arg("json")
                .args(store)
                .args(args),
        )?;
        tracer.wait_ready(ready_timeout())?;
        Ok(tracer)
    }

    /// Starts oomtrace with exactly `command`'s arguments; no waiting.
    pub fn spawn(command: &mut Command) -> Result<Tracer> {
        // Its own process group, so a test's signal reaches only it.
        command.process_group(0);
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .context("spawn oomtrace")?;
        let stdout = lines(child.stdout.take().context("stdout")?);
        let stderr = lines(child.stderr.take().context("stderr")?);
        Ok(Tracer {
            child,
            stdout,
            stderr,
            stderr_lines: Vec::new(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn wait_ready(&mut self, timeout: Duration) -> Result<String> {
        let deadline = Deadline::after(timeout);
        loop {
            match self.stderr.recv_timeout(deadline.left()) {
                Ok((_, line)) => {
                    self.stderr_lines.push(line.clone());
                    if line.starts_with("oomtrace: ready") {
                        return Ok(line);
                    }
                }
                Err(_) => bail!(
                    "oomtrace was not ready within {timeout:?}; stderr: {:?}",
                    self.stderr_lines
                ),
            }
        }
    }

    /// Next JSON record, or `None` after `timeout`.
    pub fn next_record(&mut self, timeout: Duration) -> Option<Value> {
        self.next_record_read_at(timeout).map(|(_, record)| record)
    }

    /// Next JSON record and when this process read it (CLOCK_BOOTTIME ns,
    /// the clock of the records' `boot_ns`), or `None` after `timeout`.
    pub fn next_record_read_at(&mut self, timeout: Duration) -> Option<(u64, Value)> {
        match self.stdout.recv_timeout(timeout) {
            Ok((read_at, line)) => Some((
                read_at,
                serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}")),
            )),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// `oom_kill` records until one exists for each of `pids`, or `timeout`.
    /// Returns every record read (any type), in order.
    pub fn records_for(&mut self, pids: &[u32], timeout: Duration) -> Vec<Value> {
        self.read_until(timeout, |records| {
            pids.iter()
                .all(|pid| victim_record(records, *pid).is_some())
        })
    }

    /// Records until `done` accepts those read so far, or `timeout`.
    /// Returns every record read, in order.
    pub fn read_until(&mut self, timeout: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Deadline::after(timeout);
        let mut records = Vec::new();
        while !done(&records) && !deadline.passed() {
            match self.next_record(deadline.left()) {
                Some(record) => records.push(record),
                None => break,
            }
        }
        records
    }

    /// Every record that arrives within `quiet` of the previous one.
    pub fn drain(&mut self, quiet: Duration) -> Vec<Value> {
        std::iter::from_fn(|| self.next_record(quiet)).collect()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: our own child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Sends SIGTERM and waits for the exit; returns the status and any
    /// records written on the way out.
    pub fn stop(mut self) -> Result<(ExitStatus, Vec<Value>, Vec<String>)> {
        self.signal(libc::SIGTERM);
        self.finish(Duration::from_secs(10))
    }

    /// Waits for oomtrace to end by itself.
    pub fn finish(&mut self, timeout: Duration) -> Result<(ExitStatus, Vec<Value>, Vec<String>)> {
        let status = wait::exit_of(&mut self.child, timeout)?
            .with_context(|| format!("oomtrace did not exit within {timeout:?}"))?;
        let records = self.drain(Duration::from_millis(200));
        let mut stderr = std::mem::take(&mut self.stderr_lines);
        stderr.extend(std::iter::from_fn(|| {
            self.stderr
                .recv_timeout(Duration::from_millis(200))
                .ok()
                .map(|(_, line)| line)
        }));
        Ok((status, records, stderr))
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stream's lines, stamped with the boot-clock time each was read.
fn lines(stream: impl std::io::Read + Send + 'static) -> Receiver<(u64, String)> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send((boot_ns(), line)).is_err() {
                break;
            }
        }
    });
    rx
}

/// The `oom_kill` record whose victim is `pid`.
pub fn victim_record(records: &[Value], pid: u32) -> Option<&Value> {
    records
        .iter()
        .find(|r| r["type"] == "oom_kill" && r["victim"]["pid"] == pid)
}

/// How long [`Tracer::start`] waits for the ready line: 20 s, or
/// OOMTRACE_READY_SECS (the arm64 VMs' software emulation verifies and
/// attaches programs several times slower than the host).
fn ready_timeout() -> Duration {
    std::env::var("OOMTRACE_READY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(20), Duration::from_secs)
}
