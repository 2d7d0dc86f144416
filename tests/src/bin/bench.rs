//! `oomtrace-bench`: the measurements behind README.md's table, run by
//! `cargo xtask bench` as root. Every figure comes from one run on one
//! machine, side by side; only cgroups it creates (`oomtrace-test-*`,
//! at most 64 MiB) ever see an OOM kill, every loop is bounded, and
//! everything it creates is removed, also on error.
//!
//!   oomtrace-bench [--json FILE] [--kills N] [--storm N] [--idle-secs S]
//!   oomtrace-bench workload SECONDS FILE   (internal: the overhead load)

use std::{
    fs,
    io::{BufRead, BufReader, Read as _},
    os::unix::{fs::FileExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc::{self, Receiver},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use oomtrace_tests::{
    Hog, KernelLog, TestCgroup,
    hog::HogOptions,
    system::{boot_ns, oomtrace_bin, vmstat_oom_kill},
};
use serde_json::{Value, json};

const MIB: u64 = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(30);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("workload") => workload(&args[1..]),
        _ => bench(&args),
    };
    if let Err(error) = result {
        eprintln!("oomtrace-bench: {error:#}");
        std::process::exit(1);
    }
}

struct Options {
    json: Option<PathBuf>,
    kills: usize,
    storm: usize,
    idle_secs: u64,
}

fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{name} needs a value")),
        None => Ok(default),
    }
}

fn bench(args: &[String]) -> Result<()> {
    let options = Options {
        json: args
            .iter()
            .position(|a| a == "--json")
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from),
        kills: flag(args, "--kills", 200)?,
        storm: flag(args, "--storm", 1000)?,
        idle_secs: flag(args, "--idle-secs", 60)?,
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("needs root (BPF and cgroups): run `sudo cargo xtask bench`");
    }
    let _ = oomtrace_tests::cgroup::remove_leftovers();
    let mut results = serde_json::Map::new();
    let mut table = Vec::new();

    eprintln!("bench: latency over {} kills", options.kills);
    let latency = latency(options.kills)?;
    table.push(row(
        "kill -> JSON line read (p50 / p99 / max)",
        format!(
            "{} / {} / {} over {} kills",
            us(latency["p50_ns"].as_u64()),
            us(latency["p99_ns"].as_u64()),
            us(latency["max_ns"].as_u64()),
            latency["kills"]
        ),
        "p50 <= 200 us, p99 <= 1 ms",
    ));
    results.insert("latency".into(), latency);

    eprintln!("bench: storm of {} kills across 50 cgroups", options.storm);
    let storm = storm(options.storm)?;
    table.push(row(
        "storm: oomtrace records / kernel's oom_kill count",
        format!(
            "{} / {} ({} lost), in {:.0} s",
            storm["records"],
            storm["vmstat_oom_kill"],
            storm["lost"],
            storm["seconds"].as_f64().unwrap_or(0.0)
        ),
        "100 %",
    ));
    table.push(row(
        "storm: what the kernel log kept",
        format!(
            "{} `Killed process` lines, {} OOM reports (`invoked oom-killer`), {} messages suppressed by printk ratelimits",
            storm["kmsg_killed_lines"], storm["kmsg_reports"], storm["kmsg_suppressed"]
        ),
        "",
    ));
    results.insert("storm".into(), storm);

    eprintln!("bench: overhead on an allocation- and reclaim-heavy workload");
    let overhead = overhead()?;
    for (mode, label) in [
        ("default", "all kill probes"),
        ("pressure", "with --pressure"),
        ("sigkill", "with --sigkill"),
    ] {
        table.push(row(
            &format!("overhead, {label}"),
            format!(
                "{:+.2} % throughput (median of {} interleaved runs)",
                overhead[mode]["change_percent"].as_f64().unwrap_or(0.0),
                overhead[mode]["runs"]
            ),
            "<= 1 % loss",
        ));
    }
    results.insert("overhead".into(), overhead);

    eprintln!("bench: idle for {} s", options.idle_secs);
    let idle = idle(options.idle_secs)?;
    table.push(row(
        "idle: wakeups, CPU",
        format!(
            "{:.2} wakeups/s, {:.3} % of a CPU over {} s",
            idle["wakeups_per_s"].as_f64().unwrap_or(0.0),
            idle["cpu_percent"].as_f64().unwrap_or(0.0),
            idle["seconds"]
        ),
        "0 wakeups, ~0 CPU",
    ));
    table.push(row(
        "resident memory (idle) / peak at start",
        format!(
            "{} / {}",
            mib(idle["rss_bytes"].as_u64()),
            mib(idle["peak_rss_bytes"].as_u64())
        ),
        "<= 16 MiB",
    ));
    let size = fs::metadata(oomtrace_bin())?.len();
    table.push(row("release binary", mib(Some(size)), "<= 10 MiB"));
    results.insert("idle".into(), idle);
    results.insert("binary_bytes".into(), size.into());

    eprintln!("bench: start to ready, oomtrace vs bpftrace");
    let start = start_to_ready()?;
    table.push(row(
        "start to ready (median of 5)",
        match start["bpftrace_ms"].as_f64() {
            Some(bpftrace) => format!(
                "oomtrace {:.0} ms, bpftrace {bpftrace:.0} ms ({:.1}x)",
                start["oomtrace_ms"].as_f64().unwrap_or(0.0),
                bpftrace / start["oomtrace_ms"].as_f64().unwrap_or(1.0).max(1e-9)
            ),
            None => format!(
                "oomtrace {:.0} ms (bpftrace not installed)",
                start["oomtrace_ms"].as_f64().unwrap_or(0.0)
            ),
        },
        ">= 10x faster than bpftrace",
    ));
    results.insert("start_to_ready".into(), start);

    let machine = machine();
    println!(
        "oomtrace benchmark, {} on {}",
        machine["date"].as_str().unwrap_or(""),
        machine["description"].as_str().unwrap_or("")
    );
    println!();
    println!("| measure | result | goal |");
    println!("|---|---|---|");
    for (name, result, goal) in &table {
        println!("| {name} | {result} | {goal} |");
    }
    results.insert("machine".into(), machine);
    if let Some(path) = options.json {
        fs::write(
            &path,
            serde_json::to_string_pretty(&Value::Object(results))?,
        )
        .with_context(|| format!("write {}", path.display()))?;
        eprintln!("bench: wrote {}", path.display());
    }
    Ok(())
}

fn row(name: &str, result: String, goal: &str) -> (String, String, String) {
    (name.to_string(), result, goal.to_string())
}

fn us(ns: Option<u64>) -> String {
    ns.map_or("?".into(), |ns| format!("{:.0} us", ns as f64 / 1000.0))
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("?".into(), |b| format!("{:.1} MiB", b as f64 / MIB as f64))
}

/// oomtrace with its stdout lines stamped (boot clock) as they arrive.
struct Traced {
    child: Child,
    lines: Receiver<(u64, String)>,
    /// From spawn to the ready line.
    ready_after: Duration,
}

impl Traced {
    fn start(args: &[&str]) -> Result<Traced> {
        let spawned = Instant::now();
        let mut child = Command::new(oomtrace_bin())
            .args(["--format", "json"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .context("spawn oomtrace")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut stderr = BufReader::new(child.stderr.take().context("stderr")?);
        let mut line = String::new();
        loop {
            line.clear();
            if stderr.read_line(&mut line)? == 0 {
                bail!("oomtrace ended before it was ready");
            }
            if line.starts_with("oomtrace: ready") {
                break;
            }
        }
        let ready_after = spawned.elapsed();
        thread::spawn(move || for _ in stderr.lines() {});
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((boot_ns(), line)).is_err() {
                    break;
                }
            }
        });
        Ok(Traced {
            child,
            lines,
            ready_after,
        })
    }

    fn records(&self, quiet: Duration) -> Vec<(u64, Value)> {
        std::iter::from_fn(|| self.lines.recv_timeout(quiet).ok())
            .filter_map(|(at, line)| Some((at, serde_json::from_str(&line).ok()?)))
            .collect()
    }

    fn stop(mut self) -> Result<Vec<(u64, Value)>> {
        // SAFETY: our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + TIMEOUT;
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("oomtrace did not stop");
            }
            thread::sleep(Duration::from_millis(10));
        }
        Ok(self.records(Duration::from_millis(300)))
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kill_one(cgroup: &Path, mib: u64) -> Result<u32> {
    let mut hog = Hog::spawn("alloc", mib, cgroup, None, &HogOptions::default())?;
    hog.go()?;
    if !Hog::was_sigkilled(&hog.wait(TIMEOUT)?) {
        bail!("hog {} was not OOM-killed", hog.pid);
    }
    Ok(hog.pid)
}

fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted.get(rank).copied()
}

/// Kernel capture time (the record's boot_ns) to the line arriving here.
fn latency(kills: usize) -> Result<Value> {
    let traced = Traced::start(&[])?;
    let cgroup = TestCgroup::new("bench-latency", 32 * MIB)?;
    let mut latencies = Vec::new();
    for _ in 0..kills {
        let pid = kill_one(&cgroup.dir, 200)?;
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, line) = traced
                .lines
                .recv_timeout(left)
                .with_context(|| format!("no record for {pid}"))?;
            let record: Value = serde_json::from_str(&line)?;
            if record["type"] == "oom_kill" && record["victim"]["pid"] == pid {
                let captured = record["boot_ns"].as_u64().context("boot_ns")?;
                latencies.push(at.saturating_sub(captured));
                break;
            }
        }
    }
    traced.stop()?;
    latencies.sort_unstable();
    Ok(json!({
        "kills": latencies.len(),
        "p50_ns": percentile(&latencies, 50.0),
        "p90_ns": percentile(&latencies, 90.0),
        "p99_ns": percentile(&latencies, 99.0),
        "max_ns": latencies.last(),
    }))
}

/// `kills` OOM kills as fast as two workers can cause them, round-robin
/// over 50 cgroups of 16 MiB.
fn storm(kills: usize) -> Result<Value> {
    const CGROUPS: usize = 50;
    const WORKERS: usize = 2;
    let traced = Traced::start(&[])?;
    let cgroups: Vec<TestCgroup> = (0..CGROUPS)
        .map(|i| TestCgroup::new(&format!("bench-storm-{i}"), 16 * MIB))
        .collect::<Result<_>>()?;
    let mut log = KernelLog::open()?;
    let before = vmstat_oom_kill()?;
    let started = Instant::now();
    thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let cgroups = &cgroups;
                scope.spawn(move || -> Result<()> {
                    for k in (w..kills).step_by(WORKERS) {
                        kill_one(&cgroups[k % CGROUPS].dir, 64)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("storm worker panicked"))??;
        }
        Ok(())
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let vmstat = vmstat_oom_kill()? - before;
    let records = traced.stop()?;
    let count = |kind: &str| records.iter().filter(|(_, r)| r["type"] == kind).count();
    let lost: u64 = records
        .iter()
        .filter(|(_, r)| r["type"] == "lost")
        .filter_map(|(_, r)| r["count"].as_u64())
        .sum();
    let lines = log.collect(Duration::from_secs(2), |_| false);
    let suppressed: u64 = lines
        .iter()
        .filter_map(|l| l.split_once(" callbacks suppressed").map(|(head, _)| head))
        .filter_map(|head| head.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    Ok(json!({
        "kills": kills,
        "cgroups": CGROUPS,
        "seconds": seconds,
        "vmstat_oom_kill": vmstat,
        "records": count("oom_kill"),
        "lost": lost,
        "kmsg_killed_lines": lines.iter().filter(|l| l.contains("Killed process")).count(),
        "kmsg_reports": lines.iter().filter(|l| l.contains("invoked oom-killer")).count(),
        "kmsg_suppressed": suppressed,
    }))
}

/// Interleaved runs of the workload without a tracer and with each
/// tracer configuration; the median throughput of each.
fn overhead() -> Result<Value> {
    const ROUNDS: usize = 5;
    const SECONDS: u64 = 3;
    let file = std::env::temp_dir().join(format!("oomtrace-bench-{}.data", std::process::id()));
    let _cleanup = RemoveOnDrop(file.clone());
    {
        let chunk = vec![0x5au8; MIB as usize];
        let mut out = fs::File::create(&file)?;
        for _ in 0..256 {
            std::io::Write::write_all(&mut out, &chunk)?;
        }
    }
    let cgroup = TestCgroup::new("bench-overhead", 64 * MIB)?;
    let modes: [(&str, Option<&[&str]>); 4] = [
        ("none", None),
        ("default", Some(&[])),
        ("pressure", Some(&["--pressure"])),
        ("sigkill", Some(&["--sigkill"])),
    ];
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for _ in 0..ROUNDS {
        for (i, (_, args)) in modes.iter().enumerate() {
            let traced = args.map(Traced::start).transpose()?;
            runs[i].push(run_workload(&cgroup.dir, SECONDS, &file)?);
            if let Some(traced) = traced {
                traced.stop()?;
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let base = median(&mut runs[0]);
    let mut out = serde_json::Map::new();
    out.insert(
        "workload".into(),
        "64 MiB memcg: map, touch and unmap 16 MiB of anonymous memory, then read 8 MiB of a 256 MiB file (charges, faults, direct reclaim)".into(),
    );
    out.insert("none_ops_per_s".into(), base.into());
    for (i, (name, _)) in modes.iter().enumerate().skip(1) {
        let with = median(&mut runs[i]);
        out.insert(
            (*name).into(),
            json!({
                "ops_per_s": with,
                "change_percent": (with / base - 1.0) * 100.0,
                "runs": ROUNDS,
                "all_ops_per_s": runs[i],
            }),
        );
    }
    out.insert("none_all_ops_per_s".into(), json!(runs[0]));
    Ok(Value::Object(out))
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Runs `oomtrace-bench workload` inside `cgroup`; iterations per second.
fn run_workload(cgroup: &Path, seconds: u64, file: &Path) -> Result<f64> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("workload")
        .arg(seconds.to_string())
        .arg(file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    fs::write(cgroup.join("cgroup.procs"), child.id().to_string())?;
    // Go: it waits for a line so it starts inside the cgroup.
    if let Some(mut stdin) = child.stdin.take() {
        std::io::Write::write_all(&mut stdin, b"go\n")?;
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .context("stdout")?
        .read_to_string(&mut out)?;
    if !child.wait()?.success() {
        bail!("the workload failed");
    }
    let ops: f64 = out.trim().parse().context("workload output")?;
    Ok(ops / seconds as f64)
}

/// The overhead workload, inside its cgroup: prints the iterations done.
fn workload(args: &[String]) -> Result<()> {
    let seconds: u64 = args.first().context("seconds")?.parse()?;
    let file = fs::File::open(args.get(1).context("file")?)?;
    let size = file.metadata()?.len();
    let mut go = String::new();
    std::io::stdin().read_line(&mut go)?;
    let chunk = 8 * MIB as usize;
    let mut buf = vec![0u8; chunk];
    let mut offset = 0u64;
    let mut iterations = 0u64;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        let len = 16 * MIB as usize;
        // SAFETY: a private anonymous mapping we unmap below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            bail!("mmap failed");
        }
        for page in (0..len).step_by(4096) {
            // SAFETY: inside the mapping.
            unsafe { *map.cast::<u8>().add(page) = 1 };
        }
        // SAFETY: the mapping made above.
        unsafe { libc::munmap(map, len) };
        file.read_exact_at(&mut buf, offset)?;
        offset = (offset + chunk as u64) % size;
        iterations += 1;
    }
    println!("{iterations}");
    Ok(())
}

/// Context switches of all of oomtrace's threads, and its CPU ticks.
fn idle_counters(pid: u32) -> Result<(u64, u64)> {
    let mut switches = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let status = fs::read_to_string(task?.path().join("status"))?;
        for line in status.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                switches += v.trim().parse::<u64>()?;
            }
        }
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("stat")?
        .1
        .split_whitespace()
        .collect();
    // utime and stime: fields 14 and 15, 12th and 13th after the comm.
    let ticks = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok((switches, ticks))
}

fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let value = status.lines().find_map(|l| l.strip_prefix(key))?;
    value
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}

fn idle(seconds: u64) -> Result<Value> {
    let traced = Traced::start(&[])?;
    let pid = traced.child.id();
    thread::sleep(Duration::from_secs(2));
    let (switches_before, ticks_before) = idle_counters(pid)?;
    thread::sleep(Duration::from_secs(seconds));
    let (switches_after, ticks_after) = idle_counters(pid)?;
    let rss = status_kb(pid, "VmRSS:");
    let peak = status_kb(pid, "VmHWM:");
    traced.stop()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu_seconds = (ticks_after - ticks_before) as f64 / hz;
    Ok(json!({
        "seconds": seconds,
        "wakeups_per_s": (switches_after - switches_before) as f64 / seconds as f64,
        "cpu_percent": cpu_seconds / seconds as f64 * 100.0,
        "rss_bytes": rss,
        "peak_rss_bytes": peak,
    }))
}

/// Spawn to ready, five times each: oomtrace's ready line, bpftrace's
/// `Attaching 1 probe...` for the same tracepoint.
fn start_to_ready() -> Result<Value> {
    let mut ours = Vec::new();
    for _ in 0..5 {
        let traced = Traced::start(&[])?;
        ours.push(traced.ready_after.as_secs_f64() * 1000.0);
        traced.stop()?;
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
    let median = |v: &mut Vec<f64>| -> Option<f64> {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied()
    };
    Ok(json!({
        "oomtrace_ms": median(&mut ours),
        "bpftrace_ms": median(&mut theirs),
        "oomtrace_all_ms": ours,
        "bpftrace_all_ms": theirs,
    }))
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.is_file())
}

fn machine() -> Value {
    let read = |path: &str| {
        fs::read_to_string(path)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let memory = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    let model = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|v| v.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_default();
    let kernel = read("/proc/sys/kernel/osrelease");
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    json!({
        "date": date,
        "kernel": kernel,
        "cpus": cpus,
        "cpu_model": model,
        "memory": memory,
        "description": format!("Linux {kernel}, {cpus} vCPUs ({model}), {memory} RAM"),
    })
}
