//! Running commands, loudly.

use std::{
    ffi::{OsStr, OsString},
    path::PathBuf,
    process::Command,
};

use anyhow::{Context as _, Result, bail};

pub struct Cmd {
    command: Command,
    shown: Vec<OsString>,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        let mut command = Command::new(program.as_ref());
        command.current_dir(workspace_root());
        Cmd {
            command,
            shown: vec![program.as_ref().to_owned()],
        }
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Cmd {
        self.command.arg(arg.as_ref());
        self.shown.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&mut self, args: I) -> &mut Cmd {
        for arg in args {
            self.arg(arg);
        }
        self
    }

    pub fn env(&mut self, key: &str, value: impl AsRef<OsStr>) -> &mut Cmd {
        self.command.env(key, value);
        self
    }

    fn display(&self) -> String {
        self.shown
            .iter()
            .map(|s| s.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs it; a non-zero exit is an error.
    pub fn run(&mut self) -> Result<()> {
        eprintln!("xtask: $ {}", self.display());
        let status = self
            .command
            .status()
            .with_context(|| format!("cannot run {}", self.display()))?;
        if !status.success() {
            bail!("`{}` failed ({status})", self.display());
        }
        Ok(())
    }

    /// Runs it and exits with its status (for `xtask run`).
    pub fn run_passing_status(&mut self) -> Result<()> {
        let status = self
            .command
            .status()
            .with_context(|| format!("cannot run {}", self.display()))?;
        std::process::exit(status.code().unwrap_or(1));
    }

    /// Whether it runs and exits 0, quietly.
    pub fn succeeds(&mut self) -> bool {
        self.command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn stdout(&mut self) -> Result<String> {
        let output = self
            .command
            .output()
            .with_context(|| format!("cannot run {}", self.display()))?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|u| u.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A shell pipeline that fails when any of its commands does.
pub fn pipeline(script: &str) -> Result<()> {
    Cmd::new("bash")
        .args(["-o", "pipefail", "-c", script])
        .run()
}
