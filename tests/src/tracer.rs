//! oomtrace under test, as a child process.

use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::system::oomtrace_bin;

pub struct Tracer {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Every stderr line seen so far.
    pub stderr_lines: Vec<String>,
}

impl Tracer {
    /// Starts `oomtrace --format json ARGS...` and waits for its ready line.
    pub fn start(args: &[&str]) -> Result<Tracer> {
        let mut tracer = Self::spawn(
            Command::new(oomtrace_bin())
                .arg("--format")
                .arg("json")
                .args(args),
        )?;
        tracer.wait_ready(Duration::from_secs(20))?;
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
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
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
        match self.stdout.recv_timeout(timeout) {
            Ok(line) => Some(
                serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}")),
            ),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// `oom_kill` records until one exists for each of `pids`, or `timeout`.
    /// Returns every record read (any type), in order.
    pub fn records_for(&mut self, pids: &[u32], timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut records = Vec::new();
        while !pids
            .iter()
            .all(|pid| victim_record(&records, *pid).is_some())
        {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.next_record(left) {
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
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                bail!("oomtrace did not exit within {timeout:?}");
            }
            thread::sleep(Duration::from_millis(10));
        };
        let records = self.drain(Duration::from_millis(200));
        let mut stderr = std::mem::take(&mut self.stderr_lines);
        stderr.extend(std::iter::from_fn(|| {
            self.stderr.recv_timeout(Duration::from_millis(200)).ok()
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

fn lines(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
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
