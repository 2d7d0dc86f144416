//! The victim's fate: its pid in its own pid namespace, read in kernel
//! space at the kill, against what /proc/PID/status said before it and what
//! became of the namespace's pid 1 afterwards.

use std::{
    fs,
    io::Write as _,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use oomtrace_tests::{
    KernelLog, TestCgroup, Tracer, cgroup::Version, hog::HogOptions, kmsg, system::hog_bin,
    tracer::victim_record,
};
use serde_json::Value;

use crate::common::{MIB, TIMEOUT, oom_kill, setup, truth};

/// The pids of `pid` in each of its pid namespaces, the host's first.
fn ns_pids(pid: u32) -> Result<Vec<u32>> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .context("no NSpid line")?;
    Ok(line
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect())
}

/// Alive, and not a zombie waiting for its parent.
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("State:"))
            .is_some_and(|state| !state.trim_start().starts_with('Z'))
    })
}

/// A pid namespace started by the test in `cgroup`: a shell that waits for
/// a line (so it is in the cgroup before anything forks), then `unshare
/// --pid --fork --mount-proc` runs `inner` as the namespace's pid 1. The
/// hog inside waits for the next line on the same stdin.
struct Namespace {
    child: Child,
}

impl Namespace {
    fn start(cgroup: &Path, inner: &[&str]) -> Result<Namespace> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("read line && exec unshare --pid --fork --mount-proc \"$@\"")
            .arg("sh")
            .args(inner)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn unshare (util-linux)")?;
        fs::write(cgroup.join("cgroup.procs"), child.id().to_string())
            .context("move the namespace's parent into the cgroup")?;
        child
            .stdin
            .as_mut()
            .context("stdin")?
            .write_all(b"\n")
            .context("start the namespace")?;
        Ok(Namespace { child })
    }

    /// Lets the hog allocate.
    fn go(&mut self) -> Result<()> {
        let stdin = self.child.stdin.as_mut().context("stdin")?;
        stdin.write_all(b"go\n").context("start the hog")
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The process of `cgroup` whose NSpid matches `want` (its host pid first),
/// within the timeout.
fn find_in(cgroup: &Path, want: impl Fn(u32, &[u32]) -> bool) -> Result<(u32, Vec<u32>)> {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        let procs = fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if let Ok(nspid) = ns_pids(pid)
                && want(pid, &nspid)
                && !comm.is_empty()
            {
                return Ok((pid, nspid));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("no such process in {} in time", cgroup.display())
}

fn is_hog(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "oomtrace-test-h")
}

/// What the kernel says of memory.oom.group for `dir`, a cgroup of the
/// test's: the file on cgroup v2; v1 has no such interface, and the
/// kernel's flag stays false.
fn oom_group_file(cgroup: &TestCgroup, dir: &Path) -> Result<bool> {
    match cgroup.hierarchy.version {
        Version::V2 => Ok(fs::read_to_string(dir.join("memory.oom.group"))?.trim() == "1"),
        Version::V1 => Ok(false),
    }
}

/// The record of `pid`'s kill, valid against the published schema.
fn record_of(tracer: &mut Tracer, pid: u32) -> Result<Value> {
    let records = tracer.records_for(&[pid], TIMEOUT);
    let record = victim_record(&records, pid)
        .cloned()
        .with_context(|| format!("no record for victim {pid}: {records:?}"))?;
    oomtrace_tests::schema::validate(&record).map_err(|e| anyhow::anyhow!("{e}: {record}"))?;
    Ok(record)
}

/// Where a child kill's namespace runs.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// Pid 1 and the victim in the test cgroup.
    Plain,
    /// The same in Docker's cgroupfs layout (`/docker/<id>`): the unit is
    /// the container.
    Docker,
    /// Pid 1 in the test cgroup, the victim moved into a limited child
    /// cgroup of it: the main process is still pid 1, wherever it runs, as
    /// the kernel knows it (`child_reaper`).
    VictimInChildCgroup,
}

#[test]
fn a_child_killed_in_a_pid_namespace_leaves_its_pid_1_running() -> Result<()> {
    child_kill(Layout::Plain)
}

#[test]
fn a_child_killed_in_a_container_leaves_the_container_running() -> Result<()> {
    child_kill(Layout::Docker)
}

#[test]
fn the_main_process_is_pid_1_of_the_namespace_even_in_another_cgroup() -> Result<()> {
    child_kill(Layout::VictimInChildCgroup)
}

fn child_kill(layout: Layout) -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&[])?;
    let mut log = KernelLog::open()?;
    let mut cgroup = TestCgroup::new("fate-child", 64 * MIB)?;
    let dir = match layout {
        Layout::Docker => cgroup.child(&format!("docker/{}", "c0ffee".repeat(10) + "c0ff"))?,
        Layout::Plain | Layout::VictimInChildCgroup => cgroup.dir.clone(),
    };
    kmsg::wait_for_oom_report_budget()?;
    let hog = hog_bin();
    let hog = hog.to_str().context("hog path")?;
    // pid 1 is a shell that runs the hog as its child, then lives on.
    let script = format!("\"{hog}\" alloc 200; sleep 30");
    let mut ns = Namespace::start(&dir, &["sh", "-c", &script])?;
    let (init, init_nspid) = find_in(&dir, |_, nspid| {
        nspid.len() >= 2 && nspid.last() == Some(&1)
    })?;
    let (victim, nspid) = find_in(&dir, |pid, nspid| {
        nspid.len() >= 2 && nspid.last() != Some(&1) && is_hog(pid)
    })?;
    assert_eq!(
        nspid.len(),
        init_nspid.len(),
        "the hog shares pid 1's namespace"
    );
    let oom_dir = if layout == Layout::VictimInChildCgroup {
        let work = cgroup.child("work")?;
        cgroup.set_child_limit(&work, 32 * MIB)?;
        // Before it allocates: its OOM is the child cgroup's.
        fs::write(work.join("cgroup.procs"), victim.to_string())
            .context("move the hog into the child cgroup")?;
        work
    } else {
        dir
    };
    ns.go()?;
    let record = record_of(&mut tracer, victim)?;
    let truth = truth(&mut log, victim);
    assert_eq!(truth.killed.pid, victim, "the kernel killed the hog");
    if layout == Layout::VictimInChildCgroup {
        assert_eq!(
            truth.context.oom_memcg.as_deref(),
            Some(cgroup.relative(&oom_dir).as_str()),
            "the child cgroup hit its limit"
        );
    }

    let v = &record["victim"];
    assert_eq!(v["ns_pid"], *nspid.last().context("NSpid")?, "vs NSpid");
    assert_eq!(v["pid_ns_level"], nspid.len() - 1, "vs NSpid's length");
    // The victim's own memcg's flag.
    assert_eq!(v["memcg_oom_group"], oom_group_file(&cgroup, &oom_dir)?);
    let fate = &record["fate"];
    assert_eq!(fate["killed"], "child_process", "{fate}");
    let unit = match layout {
        Layout::Docker => "container",
        Layout::Plain | Layout::VictimInChildCgroup => "pid_namespace",
    };
    assert_eq!(fate["unit"], unit);
    assert_eq!(fate["basis"], "pid_namespace");
    assert_eq!(fate["unit_exits"], false);
    assert_eq!(fate["main_pid"], init, "the namespace's pid 1, by NSpid");
    // The fate, checked on the processes themselves.
    let gone = oomtrace_tests::wait::poll(TIMEOUT, Duration::from_millis(10), || {
        Ok((!alive(victim)).then_some(()))
    })?;
    assert!(gone.is_some(), "the killed child ({victim}) is gone");
    assert!(alive(init), "pid 1 ({init}) runs on after its child's kill");
    Ok(())
}

#[test]
fn the_pid_1_of_a_namespace_killed_is_its_main_process() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&[])?;
    let mut log = KernelLog::open()?;
    let cgroup = TestCgroup::new("fate-main", 64 * MIB)?;
    kmsg::wait_for_oom_report_budget()?;
    let hog = hog_bin();
    let hog = hog.to_str().context("hog path")?;
    let mut ns = Namespace::start(&cgroup.dir, &[hog, "alloc", "200"])?;
    let (victim, nspid) = find_in(&cgroup.dir, |pid, nspid| {
        nspid.len() >= 2 && nspid.last() == Some(&1) && is_hog(pid)
    })?;
    ns.go()?;
    let record = record_of(&mut tracer, victim)?;
    assert_eq!(truth(&mut log, victim).killed.pid, victim);

    let v = &record["victim"];
    assert_eq!(v["ns_pid"], 1);
    assert_eq!(v["pid_ns_level"], nspid.len() - 1);
    let fate = &record["fate"];
    assert_eq!(fate["killed"], "main_process", "{fate}");
    assert_eq!(fate["unit"], "pid_namespace");
    assert_eq!(fate["basis"], "pid_namespace");
    assert_eq!(fate["unit_exits"], true);
    assert_eq!(fate["main_pid"], victim);
    // The namespace ended with its init: nothing of it is left.
    let status = oomtrace_tests::wait::exit_of(&mut ns.child, TIMEOUT)?
        .context("the namespace's parent did not end with its init")?;
    assert!(!status.success(), "unshare reports its child's kill");
    Ok(())
}

#[test]
fn a_host_process_has_level_0_and_an_unknown_fate() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&[])?;
    let mut log = KernelLog::open()?;
    let cgroup = TestCgroup::new("fate-host", 64 * MIB)?;
    let own = ns_pids(std::process::id())?;
    let pid = oom_kill(&cgroup.dir, None, &HogOptions::default())?;
    let record = record_of(&mut tracer, pid)?;
    assert_eq!(truth(&mut log, pid).killed.pid, pid);
    let v = &record["victim"];
    // The test's own namespace is the hog's: the host's when it has one
    // level only.
    assert_eq!(v["pid_ns_level"], own.len() - 1);
    if own.len() == 1 {
        assert_eq!(v["ns_pid"], pid, "in the host's namespace: the pid");
        // No container, no systemd service: nothing more is known.
        assert_eq!(
            record["fate"],
            serde_json::json!({"killed": "unknown", "unit": null, "main_pid": null,
                               "basis": null, "unit_exits": null})
        );
    }
    assert_eq!(v["memcg_oom_group"], oom_group_file(&cgroup, &cgroup.dir)?);
    // One kill, one incident of one victim, on whatever path.
    let incident = &record["incident"];
    assert_eq!(incident["victims"], 1, "{incident}");
    assert_eq!(incident["seq"], 1);
    assert_eq!(incident["chosen_pid"], pid);
    assert_eq!(incident["group_member"], false);
    assert_eq!(incident["basis"], "mark_victim_sequence", "no fentry here");
    Ok(())
}

/// The classic tracepoint has no task: no namespace, no flag, no fate;
/// still an incident of one, from the sequence of its events.
#[test]
fn the_tracepoint_path_knows_no_namespace_and_says_so() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&["--capture", "tracepoint"])?;
    let cgroup = TestCgroup::new("fate-tracepoint", 64 * MIB)?;
    let pid = oom_kill(&cgroup.dir, None, &HogOptions::default())?;
    let record = record_of(&mut tracer, pid)?;
    assert_eq!(record["capture"], "tracepoint");
    for field in ["ns_pid", "pid_ns_level", "memcg_oom_group"] {
        assert_eq!(record["victim"][field], Value::Null, "{field}");
    }
    assert_eq!(record["fate"]["killed"], "unknown");
    let incident = &record["incident"];
    assert_eq!(
        (
            &incident["victims"],
            &incident["seq"],
            &incident["chosen_pid"]
        ),
        (&Value::from(1), &Value::from(1), &Value::from(pid)),
        "{incident}"
    );
    Ok(())
}
