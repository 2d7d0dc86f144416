//! Victims on command: the `oomtrace-test-hog` helper, started stopped at
//! a prompt, placed in a cgroup, then let go.

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    os::unix::process::{CommandExt, ExitStatusExt},
    path::Path,
    process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use crate::{system::hog_bin, wait};

/// Where the hog finds its orders when its command line is for show.
pub const ORDERS_VAR: &str = "OOMTRACE_HOG_ORDERS";

pub struct Hog {
    child: Child,
    stdin: Option<ChildStdin>,
    held: Option<mpsc::Receiver<()>>,
    pub pid: u32,
}

#[derive(Default, Clone)]
pub struct HogOptions {
    /// Run as this uid (and gid).
    pub uid: Option<u32>,
    /// Task name bytes (set with prctl, so any bytes).
    pub comm: Option<Vec<u8>>,
    /// A command line to show instead of the hog's own (argv[0], then the
    /// arguments), as a JVM or Node would have; the hog then takes its
    /// orders from the environment.
    pub command_line: Option<Vec<String>>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl Hog {
    /// `alloc`: allocate `mib` MiB then exit; `hold`: allocate, then sleep.
    pub fn spawn(
        mode: &str,
        mib: u64,
        cgroup_dir: &Path,
        oom_score_adj: Option<i32>,
        options: &HogOptions,
    ) -> Result<Hog> {
        let mut command = Command::new(hog_bin());
        let mut orders = vec![mode.to_string(), mib.to_string()];
        if let Some(comm) = &options.comm {
            let hex: String = comm.iter().map(|b| format!("{b:02x}")).collect();
            orders.extend(["--comm".to_string(), hex]);
        }
        match &options.command_line {
            Some(argv) => {
                let (arg0, args) = argv.split_first().context("empty command line")?;
                command
                    .arg0(arg0)
                    .args(args)
                    .env(ORDERS_VAR, orders.join(" "));
            }
            None => {
                command.args(&orders);
            }
        }
        command.envs(options.env.iter().map(|(k, v)| (k, v)));
        if let Some(uid) = options.uid {
            command.uid(uid).gid(uid);
        }
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().context("spawn oomtrace-test-hog")?;
        let pid = child.id();
        let stdin = child.stdin.take();
        let held = child.stdout.take().map(watch_for_held);
        let hog = Hog {
            child,
            stdin,
            held,
            pid,
        };
        // Placed and adjusted before it allocates anything.
        fs::write(cgroup_dir.join("cgroup.procs"), pid.to_string())
            .with_context(|| format!("move {pid} into {}", cgroup_dir.display()))?;
        if let Some(adj) = oom_score_adj {
            fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string())
                .context("set oom_score_adj")?;
        }
        Ok(hog)
    }

    /// Lets it allocate.
    pub fn go(&mut self) -> Result<()> {
        let mut stdin = self.stdin.take().context("already started")?;
        stdin.write_all(b"go\n").context("start hog")?;
        Ok(())
    }

    /// Waits until a `hold` hog has all its memory.
    pub fn wait_held(&mut self, timeout: Duration) -> Result<()> {
        let held = self.held.as_ref().context("no stdout")?;
        if held.recv_timeout(timeout).is_ok() {
            return Ok(());
        }
        let status = self.child.try_wait().ok().flatten();
        bail!(
            "hog {} did not report its memory held in time (exit: {status:?})",
            self.pid
        )
    }

    /// Waits for the hog to exit.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        wait::exit_of(&mut self.child, timeout)?
            .with_context(|| format!("hog {} still running after {timeout:?}", self.pid))
    }

    /// Waits for the hog to die of SIGKILL (the OOM killer's, in a test
    /// cgroup); any other end is an error.
    pub fn wait_sigkilled(&mut self, timeout: Duration) -> Result<()> {
        let status = self.wait(timeout)?;
        if !Self::was_sigkilled(&status) {
            bail!("hog {} was not SIGKILLed: {status:?}", self.pid);
        }
        Ok(())
    }

    /// Lets it allocate and waits for its SIGKILL.
    pub fn go_until_sigkilled(&mut self, timeout: Duration) -> Result<()> {
        self.go()?;
        self.wait_sigkilled(timeout)
    }

    pub fn was_sigkilled(status: &ExitStatus) -> bool {
        status.signal() == Some(libc::SIGKILL)
    }
}

/// Starts an `alloc` hog of `mib` MiB in `cgroup_dir` (which must be
/// limited below that) and waits for the OOM killer's SIGKILL; its pid.
pub fn oom_kill(
    cgroup_dir: &Path,
    mib: u64,
    oom_score_adj: Option<i32>,
    options: &HogOptions,
    timeout: Duration,
) -> Result<u32> {
    let mut hog = Hog::spawn("alloc", mib, cgroup_dir, oom_score_adj, options)?;
    hog.go_until_sigkilled(timeout)?;
    Ok(hog.pid)
}

fn watch_for_held(stdout: ChildStdout) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(line) if line.trim() == "held" => {
                    let _ = tx.send(());
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    rx
}

impl Drop for Hog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
