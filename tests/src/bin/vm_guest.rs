//! The test driver inside a `cargo xtask vm-test` VM: it is started by the
//! initramfs's /init, runs every scenario with every capture path asked
//! for, and writes one JSON line of evidence per run to the file named by
//! its first argument (a serial port the host reads). It judges nothing:
//! the host compares the records with the guest's kernel log.
//!
//!   oomtrace-vm-guest OUT CAPTURE...
//!
//! The first line is `oomtrace check`'s ({"scenario": "check", "kernel",
//! "exit", "text", "btf_names"}); then one per run: {"scenario",
//! "capture", "ready", "records", "kmsg", "victims" (the chosen one
//! first), "vmstat_delta", "domain", "memory_events", "tracer_exit",
//! "error"}; the `earlyoom` and `oomkill` scenarios' lines have their own
//! fields (see [`earlyoom`] and [`oomkill_peer`]).

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use oomtrace_tests::{
    Hog, KernelLog, TestCgroup, Tracer,
    cgroup::Hierarchy,
    hog::{self, HogOptions},
    kmsg,
    oomkill::Oomkill,
    system::{oomtrace_bin, vmstat_oom_kill},
    verify::DomainFiles,
    wait::Deadline,
};
use serde_json::{Value, json};

const MIB: u64 = 1 << 20;
/// Software emulation is slow: generous, but bounded.
const TIMEOUT: Duration = Duration::from_secs(120);

/// What a scenario leaves for the evidence line.
#[derive(Default)]
struct Outcome {
    /// Every pid the OOM killer must kill, the chosen one first.
    victims: Vec<u32>,
    /// The cgroup whose limit is hit (none for a global OOM).
    domain: Option<DomainFiles>,
    /// Its memory.events, raw.
    memory_events: Option<String>,
}

/// A scenario: sets up, kills, and says who must have died.
type Scenario = fn() -> Result<Outcome>;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next() else {
        eprintln!("usage: oomtrace-vm-guest OUT CAPTURE...");
        std::process::exit(2);
    };
    let captures: Vec<String> = args.collect();
    let mut out = match fs::OpenOptions::new().append(true).open(&out) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("vm-guest: cannot open {out}: {e}");
            std::process::exit(1);
        }
    };
    // No protection for the driver itself: in the global OOM the hog is by
    // far the biggest, and what it starts must not inherit a low score.

    // What `oomtrace check` says, and what the kernel's BTF holds by
    // name (read here, without oomtrace), for the judge to hold them up
    // against each other and against the runs.
    write_line(&mut out, &check());

    let scenarios: [(&str, Scenario); 3] =
        [("leaf", leaf), ("parent", parent), ("oom_group", oom_group)];
    for capture in &captures {
        for (name, scenario) in scenarios {
            let line = run(name, capture, scenario);
            write_line(&mut out, &line);
        }
    }
    // A kernel without BTF: an empty file mounted over it. oomtrace must
    // fall back to the tracepoint, and `check` must say so.
    let line = without_btf(|| {
        let mut line = run("no_btf", "auto", leaf);
        line["check"] = std::process::Command::new("oomtrace")
            .arg("check")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
            .into();
        line
    });
    write_line(&mut out, &line);
    // The C peer (libbpf-tools oomkill) beside oomtrace: who is tracing
    // first, whether both see every kill, and how soon oomtrace's line is
    // read after the kill.
    let line = oomkill_peer();
    write_line(&mut out, &line);
    // A userspace OOM killer (Debian's earlyoom) exhausting the guest's
    // memory before the kernel would: --sigkill must name it.
    let line = earlyoom();
    write_line(&mut out, &line);
    // Last, a global OOM on every path, then with the path oomtrace picks
    // itself (which `check` must have named).
    for capture in captures.iter().map(String::as_str).chain(["auto"]) {
        let line = run("global", capture, global);
        write_line(&mut out, &line);
    }
}

/// Kernel functions and structs the judge asks about, by name.
const BTF_NAMES: [&str; 3] = ["bpf_loop", "bpf_oom_ops", "bpf_oom_kill_process"];

/// `oomtrace check`'s output and exit, the kernel release, and whether
/// each of [`BTF_NAMES`] is a name in the kernel's BTF string table (every
/// type and function name is one, NUL-terminated).
fn check() -> Value {
    let output = std::process::Command::new("oomtrace").arg("check").output();
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let btf = fs::read("/sys/kernel/btf/vmlinux").unwrap_or_default();
    let names: serde_json::Map<String, Value> = BTF_NAMES
        .iter()
        .map(|name| {
            let needle = [b"\0", name.as_bytes(), b"\0"].concat();
            let found = btf.windows(needle.len()).any(|w| w == needle);
            (name.to_string(), found.into())
        })
        .collect();
    match output {
        Ok(output) => json!({
            "scenario": "check",
            "kernel": release.trim(),
            "exit": output.status.code(),
            "text": String::from_utf8_lossy(&output.stdout),
            "btf_names": names,
        }),
        Err(e) => json!({
            "scenario": "check", "kernel": release.trim(),
            "error": format!("cannot run oomtrace check: {e}"),
        }),
    }
}

fn write_line(out: &mut fs::File, line: &Value) {
    eprintln!(
        "vm-guest: {} via {}: {}",
        line["scenario"],
        line["capture"],
        if line["error"].is_null() {
            "ran".to_string()
        } else {
            line["error"].to_string()
        }
    );
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs one scenario under an oomtrace started with `--capture capture`
/// and gathers the evidence, whatever happens.
fn run(scenario: &str, capture: &str, body: Scenario) -> Value {
    let mut line = json!({"scenario": scenario, "capture": capture});
    let result = (|| -> Result<()> {
        kmsg::wait_for_oom_report_budget()?;
        let mut tracer = Tracer::start(&["--capture", capture, "--candidates", "3"])?;
        line["ready"] = tracer.stderr_lines.last().cloned().into();
        // oomtrace protects itself from the OOM killer by default.
        line["tracer_oom_score_adj"] =
            fs::read_to_string(format!("/proc/{}/oom_score_adj", tracer.pid()))
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .into();
        let mut log = KernelLog::open()?;
        let before = vmstat_oom_kill()?;
        let outcome = body();
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                line["kmsg"] = log.collect(Duration::from_secs(1), |_| false).into();
                return Err(e);
            }
        };
        let mut records = tracer.records_for(&outcome.victims, TIMEOUT);
        let mut lines = log.killed(&outcome.victims, TIMEOUT);
        // The rest of the report, and the victims' exits.
        lines.extend(log.collect(Duration::from_secs(1), |_| false));
        line["vmstat_delta"] = (vmstat_oom_kill()? - before).into();
        let (status, rest, stderr) = tracer.stop()?;
        records.extend(rest);
        line["records"] = records.into();
        line["kmsg"] = lines.into();
        line["victims"] = outcome.victims.into();
        line["domain"] = outcome.domain.map(|d| d.to_json()).into();
        line["memory_events"] = outcome.memory_events.into();
        line["tracer_exit"] = json!({"success": status.success(), "stderr": stderr});
        Ok(())
    })();
    if let Err(e) = result {
        line["error"] = format!("{e:#}").into();
    }
    line
}

/// Runs `body` with /sys/kernel/btf/vmlinux hidden behind an empty file.
fn without_btf(body: impl FnOnce() -> Value) -> Value {
    let hide = fs::write("/tmp/no-btf", "").and_then(|()| {
        let status = std::process::Command::new("mount")
            .args(["--bind", "/tmp/no-btf", "/sys/kernel/btf/vmlinux"])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("mount --bind: {status}")))
        }
    });
    if let Err(e) = hide {
        return json!({"scenario": "no_btf", "capture": "auto", "error": format!("cannot hide BTF: {e}")});
    }
    let line = body();
    let _ = std::process::Command::new("umount")
        .arg("/sys/kernel/btf/vmlinux")
        .status();
    line
}

/// Starts an `alloc` hog of `mib` MiB in `dir` and waits for its SIGKILL.
fn kill_in(dir: &Path, mib: u64) -> Result<u32> {
    hog::oom_kill(dir, mib, None, &HogOptions::default(), TIMEOUT)
}

fn memory_events(dir: &Path) -> Option<String> {
    fs::read_to_string(dir.join("memory.events")).ok()
}

/// A memcg OOM in the cgroup that holds the limit.
fn leaf() -> Result<Outcome> {
    let cgroup = TestCgroup::new("leaf", 64 * MIB)?;
    let pid = kill_in(&cgroup.dir, 200)?;
    Ok(Outcome {
        victims: vec![pid],
        domain: Some(DomainFiles::read(&cgroup)?),
        memory_events: memory_events(&cgroup.dir),
    })
}

/// A memcg OOM two levels below the cgroup that holds the limit.
fn parent() -> Result<Outcome> {
    let mut cgroup = TestCgroup::new("parent", 64 * MIB)?;
    let dir = cgroup.child("app/worker")?;
    let pid = kill_in(&dir, 200)?;
    Ok(Outcome {
        victims: vec![pid],
        domain: Some(DomainFiles::read(&cgroup)?),
        memory_events: memory_events(&cgroup.dir),
    })
}

/// `memory.oom.group`: the allocator is chosen, and the two idle members
/// of its group die with it.
fn oom_group() -> Result<Outcome> {
    let mut cgroup = TestCgroup::new("group", 96 * MIB)?;
    fs::write(cgroup.dir.join("memory.oom.group"), "1").context("set memory.oom.group")?;
    let dir = cgroup.child("job")?;
    let mut members = Vec::new();
    for _ in 0..2 {
        let mut hog = Hog::spawn("hold", 8, &dir, None, &HogOptions::default())?;
        hog.go()?;
        hog.wait_held(TIMEOUT)?;
        members.push(hog);
    }
    let chosen = kill_in(&dir, 300)?;
    for member in &mut members {
        member
            .wait_sigkilled(TIMEOUT)
            .context("a memory.oom.group member")?;
    }
    let mut victims = vec![chosen];
    victims.extend(members.iter().map(|m| m.pid));
    Ok(Outcome {
        victims,
        domain: Some(DomainFiles::read(&cgroup)?),
        memory_events: memory_events(&cgroup.dir),
    })
}

/// A host-level OOM: a hog in the root cgroup takes more than the VM has.
/// Only ever run inside the VM.
fn global() -> Result<Outcome> {
    if !Path::new("/oomtrace-vm").exists() {
        bail!("refusing a global OOM outside an oomtrace test VM (/oomtrace-vm is missing)");
    }
    let root: PathBuf = Hierarchy::find()?.root;
    let pid = kill_in(&root, 4096)?;
    Ok(Outcome {
        victims: vec![pid],
        domain: None,
        memory_events: None,
    })
}

/// Where the initramfs puts Debian's earlyoom.
const EARLYOOM: &str = "/usr/bin/earlyoom";
/// earlyoom sends SIGTERM below this much available memory (percent of
/// the total), SIGKILL below the second: far above the kernel's OOM.
const EARLYOOM_PERCENTS: &str = "30,15";

/// earlyoom against a hog that grows 8 MiB every 100 ms in the root
/// cgroup and ignores SIGTERM: earlyoom sends SIGTERM, then SIGKILL once
/// memory falls further. oomtrace runs with --sigkill. The line: {"scenario":
/// "earlyoom", "capture": "auto", "ready", "records", "hog_pid",
/// "hog_signal", "earlyoom_pid", "earlyoom_log", "vmstat_delta",
/// "tracer_exit", "seconds", "error"}.
fn earlyoom() -> Value {
    let started = std::time::Instant::now();
    let mut line = json!({"scenario": "earlyoom", "capture": "auto"});
    let log_path = Path::new("/tmp/earlyoom.log");
    let result = (|| -> Result<()> {
        if !Path::new("/oomtrace-vm").exists() {
            bail!(
                "refusing to exhaust memory outside an oomtrace test VM (/oomtrace-vm is missing)"
            );
        }
        // Not in every guest (x86_64 ones only): say so before starting.
        if !Path::new(EARLYOOM).exists() {
            bail!("{EARLYOOM} is not in this guest");
        }
        let mut tracer = Tracer::start(&["--sigkill"])?;
        line["ready"] = tracer.stderr_lines.last().cloned().into();
        let before = vmstat_oom_kill()?;
        let log = fs::File::create(log_path).context("create the earlyoom log")?;
        let mut earlyoom = std::process::Command::new(EARLYOOM)
            .args(["-m", EARLYOOM_PERCENTS, "-s", "100,100", "-r", "60"])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {EARLYOOM}"))?;
        let earlyoom_pid = earlyoom.id();
        line["earlyoom_pid"] = earlyoom_pid.into();
        let body = (|| -> Result<()> {
            // Watching once it has printed its limits.
            let deadline = std::time::Instant::now() + TIMEOUT;
            while !fs::read_to_string(log_path).is_ok_and(|l| l.contains("SIGKILL when")) {
                if std::time::Instant::now() > deadline {
                    bail!("earlyoom did not start");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let root: PathBuf = Hierarchy::find()?.root;
            let mut hog = spawn_ignoring_sigterm(|| {
                Hog::spawn("grow", 8, &root, None, &HogOptions::default())
            })?;
            line["hog_pid"] = hog.pid.into();
            hog.go()?;
            let status = hog.wait(TIMEOUT)?;
            line["hog_signal"] = std::os::unix::process::ExitStatusExt::signal(&status).into();
            let pid = hog.pid;
            let mut records = tracer.read_until(TIMEOUT, |r| {
                r.iter()
                    .any(|x| x["type"] == "sigkill_outcome" && x["victim"]["pid"] == pid)
            });
            records.extend(tracer.drain(Duration::from_millis(500)));
            line["records"] = records.into();
            Ok(())
        })();
        let _ = earlyoom.kill();
        let _ = earlyoom.wait();
        line["earlyoom_log"] = fs::read_to_string(log_path).unwrap_or_default().into();
        line["vmstat_delta"] = (vmstat_oom_kill()? - before).into();
        let (status, rest, stderr) = tracer.stop()?;
        if let Some(records) = line["records"].as_array_mut() {
            records.extend(rest);
        }
        line["tracer_exit"] = json!({"success": status.success(), "stderr": stderr});
        body
    })();
    if let Err(e) = result {
        line["error"] = format!("{e:#}").into();
    }
    line["seconds"] = started.elapsed().as_secs_f64().into();
    line
}

/// Runs `spawn` with SIGTERM ignored, so the process it starts inherits
/// SIG_IGN across exec (as a container init without a handler ignores
/// it); the driver's own disposition is put back at once.
fn spawn_ignoring_sigterm<T>(spawn: impl FnOnce() -> Result<T>) -> Result<T> {
    // SAFETY: signal(2) with a valid signal and SIG_IGN/SIG_DFL.
    if unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) } == libc::SIG_ERR {
        bail!("ignore SIGTERM: {}", std::io::Error::last_os_error());
    }
    let spawned = spawn();
    // SAFETY: as above.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_DFL) };
    spawned
}

/// Where the initramfs puts Debian's libbpf-tools oomkill (the package's
/// own path).
const OOMKILL: &str = "/usr/sbin/oomkill";
/// Starts of each of oomkill and oomtrace warm, one after the other so
/// that whatever slows the VM hits both alike (oomtrace cold once, first).
const START_RUNS: usize = 3;
/// Kills both see at once, one after the other, unless the kernel's
/// command line asks for more with `oomtrace_vm_kills=N` (the VM that
/// measures latency: see xtask's vm module).
const PEER_KILLS: usize = 5;
const KILLS_PARAMETER: &str = "oomtrace_vm_kills=";
/// The peer scenario's cgroup and hog: small, so that a kill is quick
/// under emulation.
const PEER_LIMIT: u64 = 16 * MIB;
const PEER_HOG_MIB: u64 = 48;
/// How long a kill's record (or oomkill's line) may take before it counts
/// as missed; after this many misses by oomtrace the kills stop.
const LINE_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_MISSES: usize = 3;
/// Where the scenario's oomtrace keeps its BTF cache (empty at first).
const PEER_CACHE: &str = "/tmp/oomtrace-peer-cache";

/// libbpf-tools oomkill beside oomtrace. First start to ready: oomtrace
/// with an empty BTF cache (cold, filling it), one warm start with
/// OOMTRACE_VERBOSE=1 for its phases (not timed), then [`START_RUNS`] times
/// oomkill (spawn to its `Tracing OOM kills` line) and oomtrace with that
/// cache (warm; spawn to the ready line); the last two stay. Then, with
/// the console quiet (`dmesg -n 1`: the kernel logs its OOM reports but
/// does not print them to the serial console), kills in a limited cgroup
/// one after the other: each victim's pid, oomtrace's record's `boot_ns`
/// and when its line was read (CLOCK_BOOTTIME, the same clock), when
/// oomkill's line was read. The line: {"scenario": "oomkill", "capture":
/// "auto", "starts": {"oomkill_ms", "oomtrace_cold_ms", "oomtrace_warm_ms",
/// "oomkill_error", "oomtrace_verbose_ms", "oomtrace_warm_phases" (one more
/// warm start's, verbose: "NAME 12.3 ms (at 4.5 ms)")}, "kills": [{"pid", "boot_ns", "oomtrace_read_ns",
/// "oomkill_read_ns"}], "oomtrace_victims", "oomkill_victims" (every kill
/// each reported), "oomkill_error", "oomkill_other_lines",
/// "console_loglevel", "vmstat_delta", "tracer_exit", "seconds", "error"}.
fn oomkill_peer() -> Value {
    let started = std::time::Instant::now();
    let mut line = json!({"scenario": "oomkill", "capture": "auto"});
    let result = (|| -> Result<()> {
        // Not in every guest (x86_64 ones only): say so before starting.
        if !Path::new(OOMKILL).exists() {
            bail!("{OOMKILL} is not in this guest");
        }
        let _ = fs::remove_dir_all(PEER_CACHE);
        let (starts, tracer, peer) = starts()?;
        line["oomkill_error"] = starts["oomkill_error"].clone();
        line["starts"] = starts;
        peer_kills(&mut line, tracer, peer)
    })();
    let _ = fs::remove_dir_all(PEER_CACHE);
    if let Err(e) = result {
        line["error"] = format!("{e:#}").into();
    }
    line["seconds"] = started.elapsed().as_secs_f64().into();
    line
}

fn ms_since(started: std::time::Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

/// oomtrace started with the scenario's cache, and its spawn to ready in
/// ms; `verbose`: with OOMTRACE_VERBOSE=1 (its start's phases on stderr).
fn timed_oomtrace(verbose: bool) -> Result<(Tracer, f64)> {
    let begun = std::time::Instant::now();
    let mut command = std::process::Command::new(oomtrace_bin());
    command
        .args(["--format", "json", "--store", "none"])
        .env("OOMTRACE_CACHE", PEER_CACHE);
    if verbose {
        command.env("OOMTRACE_VERBOSE", "1");
    }
    let mut tracer = Tracer::spawn(&mut command)?;
    tracer.wait_ready(TIMEOUT)?;
    Ok((tracer, ms_since(begun)))
}

/// What OOMTRACE_VERBOSE=1 says of a start: its `oomtrace: start: ...`
/// lines (printed after the ready line, so read at the stop).
const PHASE_PREFIX: &str = "oomtrace: start: ";

/// The starts' times, and the last run's oomtrace and oomkill, still
/// running (no oomkill if it did not start: the peer's failure, noted,
/// after which it is not started again; oomtrace's is an error).
fn starts() -> Result<(Value, Tracer, Option<Oomkill>)> {
    let (mut peer_ms, mut warm) = (Vec::new(), Vec::new());
    let (tracer, cold) = timed_oomtrace(false)?;
    tracer.stop()?;
    // One more warm start, verbose (its extra syscalls kept out of the
    // timed ones): where a warm start's time goes.
    let (tracer, verbose_ms) = timed_oomtrace(true)?;
    let (_, _, stderr) = tracer.stop()?;
    let phases: Vec<&str> = stderr
        .iter()
        .filter_map(|line| line.strip_prefix(PHASE_PREFIX))
        .collect();
    let mut peer_error = None;
    let mut last: Option<(Tracer, Option<Oomkill>)> = None;
    for _ in 0..START_RUNS {
        // The previous run's go first: each start runs alone.
        if let Some((tracer, peer)) = last.take() {
            drop(peer);
            tracer.stop()?;
        }
        let mut peer = None;
        if peer_error.is_none() {
            let begun = std::time::Instant::now();
            match Oomkill::spawn(Path::new(OOMKILL)).and_then(|mut oomkill| {
                oomkill.wait_tracing(TIMEOUT)?;
                Ok(oomkill)
            }) {
                Ok(oomkill) => {
                    peer_ms.push(ms_since(begun));
                    peer = Some(oomkill);
                }
                Err(e) => peer_error = Some(format!("{e:#}")),
            }
        }
        // oomkill (idle: it polls 10 times a second) keeps running while
        // oomtrace starts, as it will trace beside it.
        let (tracer, ms) = timed_oomtrace(false)?;
        warm.push(ms);
        last = Some((tracer, peer));
    }
    let (tracer, peer) = last.context("no start ran")?;
    let times = json!({
        "oomkill_ms": peer_ms,
        "oomtrace_cold_ms": [cold],
        "oomtrace_warm_ms": warm,
        "oomkill_error": peer_error,
        "oomtrace_verbose_ms": verbose_ms,
        "oomtrace_warm_phases": phases,
    });
    Ok((times, tracer, peer))
}

/// How many kills: [`PEER_KILLS`], or what the kernel's command line says.
fn requested_kills() -> usize {
    fs::read_to_string("/proc/cmdline")
        .ok()
        .and_then(|cmdline| {
            cmdline
                .split_whitespace()
                .find_map(|p| p.strip_prefix(KILLS_PARAMETER)?.parse().ok())
        })
        .unwrap_or(PEER_KILLS)
}

/// Both attached, the console quiet, kill after kill.
fn peer_kills(line: &mut Value, mut tracer: Tracer, mut peer: Option<Oomkill>) -> Result<()> {
    let quiet = QuietConsole::set()?;
    line["console_loglevel"] = console_loglevel()?.into();
    let cgroup = TestCgroup::new("peer", PEER_LIMIT)?;
    let before = vmstat_oom_kill()?;
    let (mut kills, mut ours, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    let mut misses = 0;
    for _ in 0..requested_kills() {
        let pid = hog::oom_kill(
            &cgroup.dir,
            PEER_HOG_MIB,
            None,
            &HogOptions::default(),
            TIMEOUT,
        )?;
        let mut kill = json!({"pid": pid});
        let deadline = Deadline::after(LINE_TIMEOUT);
        while let Some((read_at, record)) = tracer.next_record_read_at(deadline.left()) {
            if record["type"] != "oom_kill" {
                continue;
            }
            let victim = record["victim"]["pid"].as_u64();
            ours.push(victim);
            if victim == Some(u64::from(pid)) {
                kill["boot_ns"] = record["boot_ns"].clone();
                kill["oomtrace_read_ns"] = read_at.into();
                break;
            }
        }
        if let Some(oomkill) = &mut peer {
            let deadline = Deadline::after(LINE_TIMEOUT);
            while let Some((read_at, seen)) = oomkill.next_kill(deadline.left()) {
                theirs.push(seen.victim_pid);
                if seen.victim_pid == pid {
                    kill["oomkill_read_ns"] = read_at.into();
                    break;
                }
            }
        }
        if kill["oomtrace_read_ns"].is_null() {
            misses += 1;
        }
        kills.push(kill);
        if misses >= MAX_MISSES {
            break;
        }
    }
    // Late arrivals still count as seen.
    for record in tracer.drain(Duration::from_millis(300)) {
        if record["type"] == "oom_kill" {
            ours.push(record["victim"]["pid"].as_u64());
        }
    }
    if let Some(oomkill) = &mut peer {
        while let Some((_, seen)) = oomkill.next_kill(Duration::from_millis(300)) {
            theirs.push(seen.victim_pid);
        }
        line["oomkill_other_lines"] = oomkill.other_lines.clone().into();
    }
    line["vmstat_delta"] = (vmstat_oom_kill()? - before).into();
    drop(peer);
    let (status, rest, stderr) = tracer.stop()?;
    drop(quiet);
    for record in rest {
        if record["type"] == "oom_kill" {
            ours.push(record["victim"]["pid"].as_u64());
        }
    }
    line["kills"] = kills.into();
    line["oomtrace_victims"] = ours.into();
    line["oomkill_victims"] = theirs.into();
    line["tracer_exit"] = json!({"success": status.success(), "stderr": stderr});
    Ok(())
}

const PRINTK: &str = "/proc/sys/kernel/printk";

/// The console log level (the first of kernel.printk's four numbers).
fn console_loglevel() -> Result<String> {
    let text = fs::read_to_string(PRINTK).context("read kernel.printk")?;
    text.split_whitespace()
        .next()
        .map(str::to_string)
        .context("kernel.printk is empty")
}

/// `dmesg -n 1` while this lives (OOM reports logged, not printed to the
/// serial console, which the kernel does with interrupts off); the level
/// before comes back on drop.
struct QuietConsole {
    was: String,
}

impl QuietConsole {
    fn set() -> Result<QuietConsole> {
        let was = console_loglevel()?;
        fs::write(PRINTK, "1").context("set the console log level")?;
        if console_loglevel()? != "1" {
            bail!("the console log level did not change");
        }
        Ok(QuietConsole { was })
    }
}

impl Drop for QuietConsole {
    fn drop(&mut self) {
        if let Err(error) = fs::write(PRINTK, &self.was) {
            eprintln!(
                "vm-guest: cannot restore the console log level {}: {error}",
                self.was
            );
        }
    }
}
