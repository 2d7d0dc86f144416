//! `--sigkill`: a SIGKILL that is not the OOM killer's is reported with its
//! sender; an OOM kill is reported once, as an oom_kill.

use std::{
    os::unix::process::CommandExt as _,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use oomtrace_tests::{
    Hog, TestCgroup, Tracer, hog::HogOptions, schema, system::ScratchDir, tracer::victim_record,
};
use serde_json::Value;

use crate::common::{MIB, TIMEOUT, oom_kill, setup};

#[test]
fn a_kill_dash_9_is_a_sigkill_record_naming_its_sender() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&["--sigkill"])?;
    let cgroup = TestCgroup::new("sigkill", 64 * MIB)?;
    let mut hog = Hog::spawn("hold", 4, &cgroup.dir, None, &HogOptions::default())?;
    hog.go()?;
    hog.wait_held(TIMEOUT)?;
    // SAFETY: gettid has no preconditions; kill targets our own child.
    let sender_tid = unsafe { libc::gettid() } as u32;
    assert_eq!(unsafe { libc::kill(hog.pid as i32, libc::SIGKILL) }, 0);
    hog.wait_sigkilled(TIMEOUT)?;

    let pid = hog.pid;
    let records = tracer.read_until(TIMEOUT, |r| {
        r.iter()
            .any(|x| x["type"] == "sigkill_outcome" && x["victim"]["pid"] == pid)
    });
    let kill = records
        .iter()
        .find(|r| r["type"] == "sigkill" && r["target"]["pid"] == pid)
        .with_context(|| format!("no sigkill record for {pid}: {records:#?}"))?;
    assert_eq!(kill["target"]["tgid"], pid);
    assert_eq!(kill["target"]["comm"], "oomtrace-test-h");
    assert_eq!(kill["target"]["memcg"]["path"], cgroup.path());
    assert_eq!(
        kill["sender"]["tgid"],
        std::process::id(),
        "the test process sent it"
    );
    assert_eq!(kill["sender"]["pid"], sender_tid, "from this thread");
    assert_eq!(kill["code"], "SI_USER", "kill(2)");
    assert_eq!(kill["sent_by"], "process");
    assert_eq!(kill["group"], true);
    // The test binary is no program we know, and it sent no SIGTERM.
    assert_eq!(kill["killer"]["kind"], "unknown");
    assert_eq!(kill["killer"]["basis"], "nothing");
    assert_eq!(kill["killer"]["name"], Value::Null);
    assert_eq!(kill["killer"]["program"], own_exe()?);
    assert_eq!(kill["sigterm"], Value::Null);
    assert_eq!(schema::validate(kill), Ok(()), "{kill}");

    let outcome = records
        .iter()
        .find(|r| r["type"] == "sigkill_outcome" && r["victim"]["pid"] == pid)
        .context("outcome")?;
    assert_eq!(outcome["kill_boot_ns"], kill["boot_ns"]);
    assert_eq!(outcome["exit_signal"], 9);
    assert!(
        records.iter().all(|r| r["type"] != "oom_kill"),
        "no OOM here"
    );
    Ok(())
}

#[test]
fn an_oom_kill_is_one_oom_kill_record_and_no_sigkill() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&["--sigkill"])?;
    let cgroup = TestCgroup::new("sigkill-oom", 64 * MIB)?;
    let pid = oom_kill(&cgroup.dir, None, &HogOptions::default())?;

    let mut records = tracer.read_until(TIMEOUT, |r| {
        r.iter()
            .any(|x| x["type"] == "oom_outcome" && x["victim"]["pid"] == pid)
    });
    // Past the hold on kernel SIGKILLs, so a duplicate would have shown.
    records.extend(tracer.drain(Duration::from_millis(300)));
    assert!(
        victim_record(&records, pid).is_some(),
        "the oom_kill record"
    );
    let duplicates: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "sigkill" && r["target"]["tgid"] == pid)
        .collect();
    assert!(
        duplicates.is_empty(),
        "reported once, as oom_kill: {duplicates:#?}"
    );
    assert_eq!(
        records.iter().filter(|r| r["type"] == "oom_kill").count(),
        1
    );
    Ok(())
}

fn own_exe() -> Result<String> {
    Ok(std::fs::read_link("/proc/self/exe")?
        .to_string_lossy()
        .into_owned())
}

/// A child that ignores SIGTERM (as a container's init without a handler
/// does), killed on drop.
struct Target(Child);

impl Target {
    fn spawn() -> Result<Target> {
        let mut command = Command::new("sleep");
        command.arg("60").stdin(Stdio::null());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::signal(libc::SIGTERM, libc::SIG_IGN) == libc::SIG_ERR {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().context("spawn sleep")?;
        let target = Target(child);
        // Up once it is sleep, not the forked test binary.
        let deadline = Instant::now() + TIMEOUT;
        while std::fs::read_to_string(format!("/proc/{}/comm", target.pid()))
            .is_ok_and(|c| c.trim() != "sleep")
        {
            ensure!(Instant::now() < deadline, "sleep did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(target)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits for its death; the signal that ended it.
    fn wait_signal(&mut self) -> Result<Option<i32>> {
        use std::os::unix::process::ExitStatusExt as _;
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.0.try_wait()? {
                return Ok(status.signal());
            }
            ensure!(Instant::now() < deadline, "target {} lives on", self.pid());
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sigkill_record(tracer: &mut Tracer, pid: u32) -> Result<Value> {
    let records = tracer.read_until(TIMEOUT, |r| {
        r.iter()
            .any(|x| x["type"] == "sigkill" && x["target"]["pid"] == pid)
    });
    let record = records
        .into_iter()
        .find(|r| r["type"] == "sigkill" && r["target"]["pid"] == pid)
        .with_context(|| format!("no sigkill record for {pid}"))?;
    assert_eq!(schema::validate(&record), Ok(()), "{record}");
    Ok(record)
}

fn kill(pid: u32, signal: i32) -> Result<()> {
    // SAFETY: kill has no memory preconditions; pid is our own child.
    ensure!(
        unsafe { libc::kill(pid as i32, signal) } == 0,
        "kill({pid}, {signal}): {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

#[test]
fn a_sigkill_after_a_sigterm_and_a_grace_is_a_stop_with_its_sigterm_and_grace() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&["--sigkill"])?;
    let mut target = Target::spawn()?;
    let pid = target.pid();
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() } as u32;
    const GRACE: Duration = Duration::from_millis(300);
    let term = Instant::now();
    kill(pid, libc::SIGTERM)?;
    std::thread::sleep(GRACE);
    let grace = term.elapsed();
    kill(pid, libc::SIGKILL)?;
    assert_eq!(
        target.wait_signal()?,
        Some(libc::SIGKILL),
        "it ignored the SIGTERM"
    );

    let record = sigkill_record(&mut tracer, pid)?;
    assert_eq!(record["sender"]["tgid"], std::process::id());
    let killer = &record["killer"];
    assert_eq!(killer["kind"], "runtime_stop", "{record}");
    assert_eq!(killer["basis"], "sigterm_first");
    assert_eq!(killer["name"], Value::Null, "no runtime we know");
    assert_eq!(killer["program"], own_exe()?);
    let sigterm = &record["sigterm"];
    assert_eq!(sigterm["sender"]["tgid"], std::process::id(), "{record}");
    assert_eq!(sigterm["sender"]["pid"], tid, "from this thread");
    let comm = std::fs::read_to_string("/proc/thread-self/comm")?;
    assert_eq!(sigterm["sender"]["comm"], comm.trim());
    // The kernel's clock between the two signals vs ours around the
    // sleep: ours starts before the SIGTERM and ends before the SIGKILL.
    let grace_us = sigterm["grace_us"].as_u64().context("grace_us")?;
    let ours_us = grace.as_micros() as u64;
    assert!(
        grace_us + 1_000 >= ours_us && grace_us <= ours_us + 20_000,
        "grace {grace_us} us, measured {ours_us} us around the sleep"
    );
    let kill_ns = record["boot_ns"].as_u64().context("boot_ns")?;
    let term_ns = sigterm["boot_ns"].as_u64().context("sigterm boot_ns")?;
    assert_eq!(
        grace_us,
        (kill_ns - term_ns) / 1000,
        "the grace is the two times apart"
    );
    Ok(())
}

#[test]
fn a_kill_dash_9_from_a_shell_is_a_plain_kill_without_a_sigterm() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&["--sigkill"])?;
    let mut target = Target::spawn()?;
    let pid = target.pid();
    // The shell's builtin kill; the shell stays a while, so its exe is
    // still there to read.
    let mut shell = Command::new("/bin/sh")
        .args(["-c", &format!("kill -9 {pid}; sleep 3")])
        .spawn()
        .context("spawn /bin/sh")?;
    let shell_pid = shell.id();
    assert_eq!(target.wait_signal()?, Some(libc::SIGKILL));
    let record = sigkill_record(&mut tracer, pid);
    let _ = shell.kill();
    let _ = shell.wait();
    let record = record?;
    assert_eq!(record["sender"]["tgid"], shell_pid, "{record}");
    let killer = &record["killer"];
    assert_eq!(killer["kind"], "plain_kill", "{record}");
    assert_eq!(killer["basis"], "sender_program");
    let sh = std::fs::canonicalize("/bin/sh")?;
    assert_eq!(killer["program"], sh.to_string_lossy().as_ref());
    assert_eq!(
        killer["name"],
        sh.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    assert_eq!(record["sigterm"], Value::Null, "no SIGTERM came first");
    Ok(())
}

#[test]
fn a_shell_kill_dash_9_after_our_sigterm_is_still_plain_and_names_our_sigterm() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&["--sigkill"])?;
    let mut target = Target::spawn()?;
    let pid = target.pid();
    kill(pid, libc::SIGTERM)?;
    let status = Command::new("/bin/sh")
        .args(["-c", &format!("kill -9 {pid}")])
        .status()?;
    ensure!(status.success(), "sh: {status}");
    assert_eq!(target.wait_signal()?, Some(libc::SIGKILL));
    let record = sigkill_record(&mut tracer, pid)?;
    assert_eq!(record["killer"]["kind"], "plain_kill", "{record}");
    assert_eq!(
        record["sigterm"]["sender"]["tgid"],
        std::process::id(),
        "the SIGTERM's sender is not the SIGKILL's"
    );
    assert_ne!(record["sender"]["tgid"], std::process::id());
    Ok(())
}

#[test]
fn a_reused_tgid_does_not_inherit_a_dead_process_sigterm() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&["--sigkill"])?;
    // A SIGTERM to one process, which then dies: its note stays in the
    // kernel's map under its tgid.
    let mut first = Target::spawn()?;
    let pid = first.pid();
    kill(pid, libc::SIGTERM)?;
    kill(pid, libc::SIGKILL)?;
    first.wait_signal()?;
    drop(first);
    let record = sigkill_record(&mut tracer, pid)?;
    ensure!(!record["sigterm"].is_null(), "{record}");
    // The next process gets the same pid (ns_last_pid: the kernel's pid
    // allocator starts after the number written; another process may take
    // it first, so try a few times).
    let mut second = None;
    for _ in 0..50 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
            .context("write ns_last_pid")?;
        let target = Target::spawn()?;
        if target.pid() == pid {
            second = Some(target);
            break;
        }
    }
    let mut second = second.with_context(|| format!("pid {pid} was never given again"))?;
    kill(pid, libc::SIGKILL)?;
    second.wait_signal()?;
    let record = sigkill_record(&mut tracer, pid)?;
    assert_eq!(record["sigterm"], Value::Null, "another process: {record}");
    Ok(())
}

/// A runc container of ours: a busybox rootfs whose init is `sleep`, in
/// the cgroup `/oomtrace-test-sigkill-runc` of every hierarchy; deleted
/// (with its cgroups) on drop.
struct RuncContainer {
    id: String,
    cgroup: String,
    _bundle: ScratchDir,
}

impl RuncContainer {
    fn run() -> Result<RuncContainer> {
        let bundle = ScratchDir::new("sigkill-runc")?;
        let bin = bundle.path.join("rootfs/bin");
        std::fs::create_dir_all(&bin)?;
        std::fs::copy("/bin/busybox", bin.join("busybox")).context("busybox-static")?;
        std::os::unix::fs::symlink("busybox", bin.join("sleep"))?;
        runc(Command::new("runc").arg("spec").current_dir(&bundle.path))?;
        let id = format!("oomtrace-test-sigkill-{}", std::process::id());
        let cgroup = format!("/{id}");
        let config_path = bundle.path.join("config.json");
        let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&config_path)?)?;
        config["process"]["args"] = serde_json::json!(["/bin/sleep", "60"]);
        config["process"]["terminal"] = false.into();
        // This machine refuses setrlimit even to the current value.
        if let Some(process) = config["process"].as_object_mut() {
            process.remove("rlimits");
        }
        config["linux"]["cgroupsPath"] = cgroup.clone().into();
        std::fs::write(&config_path, config.to_string())?;
        let container = RuncContainer {
            id,
            cgroup,
            _bundle: bundle,
        };
        // Without pipes: the detached container would hold them open, and
        // a reader would wait for their end.
        let mut run = Command::new("runc")
            .args(["run", "--detach", &container.id])
            .current_dir(&container._bundle.path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("runc run")?;
        let status = oomtrace_tests::wait::exit_of(&mut run, TIMEOUT)?;
        if status.is_none() {
            let _ = run.kill();
            let _ = run.wait();
        }
        let status = status.context("runc run did not finish in time")?;
        ensure!(status.success(), "runc run: {status}");
        Ok(container)
    }

    /// runc's own state of it.
    fn state(&self) -> Result<Value> {
        let state = runc(Command::new("runc").args(["state", &self.id]))?;
        serde_json::from_slice(&state).context("runc state")
    }

    /// Its init's pid, as the host sees it, from runc's own state.
    fn pid(&self) -> Result<u32> {
        let state = self.state()?;
        state["pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .with_context(|| format!("runc state: {state}"))
    }

    fn status(&self) -> Result<String> {
        Ok(self.state()?["status"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// `runc kill ID SIGNAL`; runc's own pid.
    fn kill(&self, signal: &str) -> Result<u32> {
        let mut runc = Command::new("runc")
            .args(["kill", &self.id, signal])
            .spawn()
            .context("runc kill")?;
        let pid = runc.id();
        let Some(status) = oomtrace_tests::wait::exit_of(&mut runc, TIMEOUT)? else {
            let _ = runc.kill();
            let _ = runc.wait();
            anyhow::bail!("runc kill {signal} did not finish within {TIMEOUT:?}");
        };
        ensure!(status.success(), "runc kill {signal}: {status}");
        Ok(pid)
    }
}

/// A runc command that must succeed within [`TIMEOUT`]; its stdout.
fn runc(command: &mut Command) -> Result<Vec<u8>> {
    let out = oomtrace_tests::docker::output_within(command, TIMEOUT)?;
    ensure!(
        out.status.success(),
        "{command:?}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out.stdout)
}

impl Drop for RuncContainer {
    fn drop(&mut self) {
        let _ = oomtrace_tests::docker::output_within(
            Command::new("runc").args(["delete", "--force", &self.id]),
            TIMEOUT,
        );
        // runc removes them; a failed run may not have, and may have left
        // its `sleep` in them: killed first.
        for hierarchy in oomtrace_tests::docker::cgroup_hierarchies() {
            oomtrace_tests::docker::remove_cgroup_tree(&hierarchy.join(&self.cgroup[1..]));
        }
    }
}

#[test]
fn runc_stopping_a_container_is_a_runtime_stop_with_runcs_sigterm_and_grace() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&["--sigkill"])?;
    let container = RuncContainer::run()?;
    let pid = container.pid()?;
    // As containerd's shim stops a container: SIGTERM, a grace, SIGKILL.
    // The container's init has no handler, so the kernel drops the SIGTERM.
    let term = Instant::now();
    let term_runc = container.kill("TERM")?;
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(container.status()?, "running", "the SIGTERM was ignored");
    let kill_runc = container.kill("KILL")?;
    let elapsed = term.elapsed();
    let record = sigkill_record(&mut tracer, pid)?;
    assert_eq!(record["target"]["tgid"], pid, "{record}");
    assert_eq!(record["sender"]["tgid"], kill_runc, "the second runc");
    assert_eq!(record["sender"]["comm"], "runc");
    let killer = &record["killer"];
    assert_eq!(killer["kind"], "runtime_stop", "{record}");
    assert_eq!(killer["name"], "runc");
    assert_eq!(killer["basis"], "sender_program");
    let sigterm = &record["sigterm"];
    assert_eq!(
        sigterm["sender"]["tgid"], term_runc,
        "the first runc: {record}"
    );
    assert_eq!(sigterm["sender"]["comm"], "runc");
    let grace_us = sigterm["grace_us"].as_u64().context("grace_us")?;
    assert!(
        (500_000..=elapsed.as_micros() as u64).contains(&grace_us),
        "grace {grace_us} us: at least the 500 ms sleep, at most the {elapsed:?} around both runc kills"
    );
    Ok(())
}
