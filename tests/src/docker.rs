//! A real dockerd of the test's own (Debian's docker.io 20.10 with runc):
//! own socket, data and exec roots, containers under the
//! `oomtrace-test-docker` cgroup in every hierarchy. Dropping it removes its
//! containers, stops it and its containerd, unmounts and deletes its
//! directories and removes the cgroups it made, also when the test fails.
//! Only one runs at a time on a host: hold the host kernel lock.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};

use crate::system::{ScratchDir, hog_bin};

/// Debian's docker.io, not whatever `docker` comes first on PATH.
pub const DOCKER: &str = "/usr/bin/docker";
pub const DOCKERD: &str = "/usr/sbin/dockerd";
/// The cgroup (in every hierarchy) our dockerd puts its containers under:
/// a test name, so `cargo xtask test`'s leftover cleanup knows it too.
pub const DOCKER_CGROUP: &str = "oomtrace-test-docker";
/// How long dockerd may take to answer, and to stop.
const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Dockerd {
    child: Child,
    pub dir: ScratchDir,
    /// Hierarchies that had no `docker` cgroup before we started.
    fresh_docker_cgroups: Vec<PathBuf>,
}

/// Every mounted cgroup hierarchy (v1 controllers, the v2 unified one).
pub fn cgroup_hierarchies() -> Vec<PathBuf> {
    fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            matches!(fields.get(2), Some(&"cgroup" | &"cgroup2")).then(|| PathBuf::from(fields[1]))
        })
        .collect()
}

/// Runs `command` to its end, or kills it after `timeout` (an error):
/// a hung runtime client must fail the test, not hang it past its cleanup.
pub fn output_within(command: &mut Command, timeout: Duration) -> Result<std::process::Output> {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {command:?}"))?;
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    let waiter = thread::spawn(move || {
        let output = child.wait_with_output();
        let _ = done.send(());
        output
    });
    if finished.recv_timeout(timeout).is_err() {
        // SAFETY: our own child, not yet reaped (the waiter still waits).
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        let _ = waiter.join();
        bail!("{command:?} did not finish within {timeout:?}");
    }
    let output = waiter
        .join()
        .map_err(|_| anyhow::anyhow!("waiter panicked"))?
        .context("wait")?;
    Ok(output)
}

/// stdout of a command that must succeed.
fn run(command: &mut Command) -> Result<String> {
    let out = output_within(command, TIMEOUT)?;
    ensure!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Dockerd {
    /// Starts dockerd with containers under `cgroup_parent` (which must be
    /// `/oomtrace-test-docker` or below it) and waits until it answers.
    /// `extra` gets the scratch directory (to write files there) and gives
    /// more arguments.
    pub fn start(
        cgroup_parent: &str,
        extra: impl FnOnce(&Path) -> Result<Vec<String>>,
    ) -> Result<Dockerd> {
        ensure!(
            Path::new(DOCKERD).is_file(),
            "no {DOCKERD}: install docker.io"
        );
        ensure!(
            Path::new(cgroup_parent).starts_with(format!("/{DOCKER_CGROUP}")),
            "{cgroup_parent} is not under /{DOCKER_CGROUP}, which is what gets removed"
        );
        let dir = ScratchDir::new("dockerd")?;
        let fresh_docker_cgroups = cgroup_hierarchies()
            .into_iter()
            .filter(|h| !h.join("docker").exists())
            .collect();
        let log = fs::File::create(dir.path.join("dockerd.log"))?;
        let extra = extra(&dir.path)?;
        let child = Command::new(DOCKERD)
            .arg(format!("--host=unix://{}/docker.sock", dir.path.display()))
            .arg(format!("--data-root={}/data", dir.path.display()))
            .arg(format!("--exec-root={}/exec", dir.path.display()))
            .arg(format!("--pidfile={}/docker.pid", dir.path.display()))
            .arg(format!("--cgroup-parent={cgroup_parent}"))
            // No registry, no bridge, no iptables on this machine: see
            // ../shared/notes/toolchain.md.
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args([
                "--storage-driver=vfs",
                "--exec-opt",
                "native.cgroupdriver=cgroupfs",
            ])
            .args(["--default-ulimit", "nofile=20000:20000"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start dockerd")?;
        let dockerd = Dockerd {
            child,
            dir,
            fresh_docker_cgroups,
        };
        let deadline = Instant::now() + TIMEOUT;
        while dockerd.docker(&["version"]).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "dockerd did not answer within {TIMEOUT:?}: {}",
                    dockerd.log()
                );
            }
            thread::sleep(Duration::from_millis(250));
        }
        Ok(dockerd)
    }

    /// Its API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path.join("docker.sock")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path.join("dockerd.log")).unwrap_or_default()
    }

    /// `docker` pointed at this daemon.
    pub fn command(&self) -> Command {
        let mut command = Command::new(DOCKER);
        command.arg(format!("--host=unix://{}", self.socket().display()));
        command
    }

    /// stdout of `docker ARGS`, which must succeed.
    pub fn docker(&self, args: &[&str]) -> Result<String> {
        run(self.command().args(args))
    }

    /// `docker inspect NAME` as JSON (the first and only object).
    pub fn inspect(&self, name: &str) -> Result<serde_json::Value> {
        let text = self.docker(&["inspect", name])?;
        let mut all: Vec<serde_json::Value> =
            serde_json::from_str(&text).with_context(|| format!("docker inspect: {text}"))?;
        ensure!(all.len() == 1, "docker inspect {name}: {text}");
        Ok(all.remove(0))
    }

    /// Imports `name` (e.g. `shop/api:1.4`) from a tarball of a root file
    /// system made here: busybox-static as `/bin/sh` (and its applets), and
    /// the test hog as `/hog` with the shared libraries it links. No
    /// registry involved.
    pub fn import_hog_image(&self, name: &str) -> Result<()> {
        let root = self.dir.path.join("rootfs");
        fs::create_dir_all(root.join("bin"))?;
        let busybox = Path::new("/bin/busybox");
        ensure!(busybox.is_file(), "no /bin/busybox: install busybox-static");
        fs::copy(busybox, root.join("bin/busybox"))?;
        for applet in ["sh", "sleep", "cat", "echo"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
        }
        let hog = hog_bin();
        fs::copy(&hog, root.join("hog"))?;
        // ldd's `lib => /path (addr)` and `/lib64/ld-linux... (addr)` lines.
        let ldd = run(Command::new("ldd").arg(&hog))?;
        for library in ldd
            .lines()
            .filter_map(|l| {
                let l = l.trim();
                let path = l.split_once("=> ").map_or(l, |(_, p)| p);
                path.split_whitespace().next()
            })
            .filter(|p| p.starts_with('/'))
        {
            let inside = root.join(library.trim_start_matches('/'));
            fs::create_dir_all(inside.parent().context("library dir")?)?;
            fs::copy(library, &inside).with_context(|| format!("copy {library}"))?;
        }
        let tarball = self.dir.path.join("rootfs.tar");
        run(Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tarball)
            .arg("."))?;
        self.docker(&["import", tarball.to_str().context("utf8")?, name])?;
        Ok(())
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if let Ok(ids) = self.docker(&["ps", "-aq"]) {
            for id in ids.split_whitespace() {
                let _ = self.docker(&["rm", "-f", id]);
            }
        }
        let containerd_pid =
            fs::read_to_string(self.dir.path.join("exec/containerd/containerd.pid"))
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok());
        // SAFETY: signalling our own child, then its containerd by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + TIMEOUT;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(pid) = containerd_pid {
            let is_ours = fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|exe| exe.to_string_lossy().contains("containerd"));
            if is_ours {
                // SAFETY: a pid read from our own dockerd's exec root.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        for shim in our_shims(&self.dir.path) {
            // SAFETY: a shim of our own containerd (its socket is ours).
            unsafe { libc::kill(shim, libc::SIGKILL) };
        }
        // Mounts under our directory (netns files, overlay of the vfs
        // driver's init layer), deepest first, before deleting it.
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<&str> = mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| Path::new(m).starts_with(&self.dir.path))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in mounts {
            if let Ok(path) = std::ffi::CString::new(mount) {
                // SAFETY: a valid C string; detaching our own mounts.
                unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
            }
        }
        for hierarchy in cgroup_hierarchies() {
            remove_cgroup_tree(&hierarchy.join(DOCKER_CGROUP));
        }
        for hierarchy in &self.fresh_docker_cgroups {
            remove_cgroup_tree(&hierarchy.join("docker"));
        }
    }
}

/// rmdir children first; cgroup files cannot be unlinked, only the dirs.
/// Only for trees the test made (`oomtrace-test-*`): what still runs in
/// one (a container whose runtime was killed) is killed first.
pub fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.path().is_dir() {
                remove_cgroup_tree(&entry.path());
            }
        }
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: a process in a test-made cgroup: the test's own.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while fs::remove_dir(dir).is_err() && dir.exists() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// containerd shims started by our containerd (their `-address` is our
/// socket), which outlive it when it is killed.
fn our_shims(dir: &Path) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let ours = dir.to_string_lossy().into_owned();
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            cmdline.starts_with("/usr/bin/containerd-shim") && cmdline.contains(&ours)
        })
        .collect()
}
