//! libbpf-tools `oomkill` (the C, CO-RE peer) as a child process, on a
//! pseudo-terminal as a user runs it: its stdout is a stdio stream that a
//! pipe would fully buffer (nothing until 4 KiB or its exit), a terminal
//! only by line. Each line comes stamped with the boot-clock time it was
//! read at, as oomtrace's are in [`crate::Tracer`].
//!
//! It prints `Tracing OOM kills... Ctrl-C to stop.` once its kprobe is
//! attached, then one line per kill: `HH:MM:SS Triggered by PID 1 ("sh"),
//! OOM kill of PID 2 ("hog"), 16384 pages, loadavg: ...`.

use std::{
    fs::File,
    io::{BufRead as _, BufReader},
    os::{
        fd::{FromRawFd as _, OwnedFd},
        unix::process::CommandExt as _,
    },
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc::{self, Receiver},
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use crate::{system::boot_ns, wait::Deadline};

/// What oomkill prints once it traces.
pub const TRACING: &str = "Tracing OOM kills";

pub struct Oomkill {
    child: Child,
    /// Its terminal's lines (stdout and stderr), each with the boot-clock
    /// time it was read at.
    lines: Receiver<(u64, String)>,
    /// Every line read so far that was not a kill.
    pub other_lines: Vec<String>,
}

/// One kill as oomkill prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillLine {
    pub trigger_pid: u32,
    pub victim_pid: u32,
    pub victim_comm: String,
    pub pages: u64,
}

impl KillLine {
    pub fn parse(line: &str) -> Option<KillLine> {
        let pid_after = |key: &str| -> Option<(u32, &str)> {
            let rest = &line[line.find(key)? + key.len()..];
            let (pid, rest) = rest.split_once(' ')?;
            Some((pid.parse().ok()?, rest))
        };
        let (trigger_pid, _) = pid_after("Triggered by PID ")?;
        let (victim_pid, rest) = pid_after("OOM kill of PID ")?;
        let comm = rest.strip_prefix("(\"")?;
        let (victim_comm, rest) = comm.rsplit_once("\"), ")?;
        let pages = rest.split_whitespace().next()?.parse().ok()?;
        Some(KillLine {
            trigger_pid,
            victim_pid,
            victim_comm: victim_comm.to_string(),
            pages,
        })
    }
}

impl Oomkill {
    /// Starts `program` (no arguments) on a new pseudo-terminal; no waiting.
    pub fn spawn(program: &Path) -> Result<Oomkill> {
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: out pointers to two ints; no name, termios or size.
        let opened = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        if opened != 0 {
            bail!("openpty: {}", std::io::Error::last_os_error());
        }
        // SAFETY: openpty returned two new descriptors, owned here alone.
        let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let mut command = Command::new(program);
        // Its own process group, so a signal to it reaches only it.
        command.process_group(0);
        let child = command
            .stdin(Stdio::null())
            .stdout(slave.try_clone().context("dup the terminal")?)
            .stderr(slave)
            .spawn()
            .with_context(|| format!("start {}", program.display()))?;
        // The command dropped its copies of the slave: once the child is
        // gone, reading the master ends (EIO).
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(master).lines() {
                let Ok(line) = line else { break };
                // The terminal turns `\n` into `\r\n`.
                let line = line.trim_end_matches('\r').to_string();
                if tx.send((boot_ns(), line)).is_err() {
                    break;
                }
            }
        });
        Ok(Oomkill {
            child,
            lines,
            other_lines: Vec::new(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for its `Tracing OOM kills` line; when it was read.
    pub fn wait_tracing(&mut self, timeout: Duration) -> Result<u64> {
        let deadline = Deadline::after(timeout);
        loop {
            match self.lines.recv_timeout(deadline.left()) {
                Ok((at, line)) => {
                    let tracing = line.starts_with(TRACING);
                    self.other_lines.push(line);
                    if tracing {
                        return Ok(at);
                    }
                }
                Err(_) => bail!(
                    "oomkill was not tracing within {timeout:?}; it printed: {:?}",
                    self.other_lines
                ),
            }
        }
    }

    /// The next kill line within `timeout`, and when it was read; other
    /// lines go to [`Oomkill::other_lines`].
    pub fn next_kill(&mut self, timeout: Duration) -> Option<(u64, KillLine)> {
        let deadline = Deadline::after(timeout);
        loop {
            let (at, line) = self.lines.recv_timeout(deadline.left()).ok()?;
            match KillLine::parse(&line) {
                Some(kill) => return Some((at, kill)),
                None => self.other_lines.push(line),
            }
        }
    }
}

impl Drop for Oomkill {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_lines_give_both_pids_the_comm_and_the_pages() {
        let line = "20:31:07 Triggered by PID 412 (\"oomtrace-test-h\"), OOM kill of PID 412 \
                    (\"oomtrace-test-h\"), 4096 pages, loadavg: 0.52 0.21 0.08 2/61 415";
        assert_eq!(
            KillLine::parse(line),
            Some(KillLine {
                trigger_pid: 412,
                victim_pid: 412,
                victim_comm: "oomtrace-test-h".to_string(),
                pages: 4096,
            })
        );
        // Without /proc/loadavg it ends after the pages.
        let bare =
            "20:31:07 Triggered by PID 1 (\"a b\"), OOM kill of PID 9 (\"x\"), y\"), 7 pages";
        let kill = KillLine::parse(bare).unwrap();
        assert_eq!(
            (kill.victim_pid, kill.victim_comm.as_str(), kill.pages),
            (9, "x\"), y", 7)
        );
        assert_eq!(
            KillLine::parse("Tracing OOM kills... Ctrl-C to stop."),
            None
        );
    }
}
