//! `oomtrace-bench`: the measurements behind README.md's table, run by
//! `cargo xtask bench` as root. Every figure comes from one run on one
//! machine, side by side; only cgroups it creates (`oomtrace-test-*`,
//! at most 64 MiB) ever see an OOM kill, every loop is bounded, and
//! everything it creates is removed, also on error. oomtrace runs as the
//! kernel tests run it (`oomtrace_tests::Tracer`, ready line awaited with a
//! timeout).
//!
//!   oomtrace-bench [--json FILE] [--kills N] [--storm N] [--storm-cgroups N]
//!                  [--exits N] [--rounds N] [--idle-secs S]
//!                  [--only latency|storm|overhead|exits|idle|start[,...]]
//!   oomtrace-bench workload SECONDS FILE   (internal: the overhead load)
//!
//! `OOMTRACE_BENCH_ARGS` adds oomtrace flags to the latency runs (e.g.
//! `--candidates 0`, to see what the /proc candidate scan costs the line).

mod bpf_stats; // the kernel's run time and count per BPF program
mod exits; // fork/exit storm: what an exit oomtrace ignores costs it
mod floor; // an empty program and a map miss: bpf_stats' floor
mod idle; // wakeups, CPU and memory of an idle oomtrace
mod latency; // kernel capture to the JSON line read
mod overhead; // throughput of a reclaim-heavy workload with and without
mod start; // spawn to ready, oomtrace vs bpftrace
mod storm; // records vs the kernel's count in a kill storm

use std::{fs, path::PathBuf, process::Command, thread, time::Duration};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

const MIB: u64 = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(30);

/// A line of the table: measure, result, goal.
type Row = (String, String, String);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("workload") => overhead::workload(&args[1..]),
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
    storm_cgroups: usize,
    idle_secs: u64,
    exits: usize,
    /// Interleaved rounds of the overhead workload.
    rounds: usize,
    /// Only these measurements (comma-separated; all when `None`).
    only: Option<String>,
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

const MEASUREMENTS: [&str; 6] = ["latency", "storm", "overhead", "exits", "idle", "start"];

fn bench(args: &[String]) -> Result<()> {
    let options = Options {
        json: args
            .iter()
            .position(|a| a == "--json")
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from),
        kills: flag(args, "--kills", 200)?,
        storm: flag(args, "--storm", 10_000)?,
        storm_cgroups: flag(args, "--storm-cgroups", 500)?,
        idle_secs: flag(args, "--idle-secs", 60)?,
        exits: flag(args, "--exits", 20_000)?,
        rounds: flag(args, "--rounds", 5)?,
        only: args
            .iter()
            .position(|a| a == "--only")
            .and_then(|i| args.get(i + 1))
            .cloned(),
    };
    if let Some(only) = &options.only
        && let Some(bad) = only.split(',').find(|m| !MEASUREMENTS.contains(m))
    {
        bail!("--only takes some of {MEASUREMENTS:?}, not {bad:?}");
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("needs root (BPF and cgroups): run `sudo cargo xtask bench`");
    }
    let _ = oomtrace_tests::cgroup::remove_leftovers();
    // bpftrace, the peer in the latency and start rows, attaches through it.
    oomtrace_tests::tracefs::ensure_mounted()?;
    let mut results = serde_json::Map::new();
    let mut table = Vec::new();
    let wanted = |name: &str| {
        options
            .only
            .as_deref()
            .is_none_or(|only| only.split(',').any(|m| m == name))
    };

    if wanted("latency") {
        eprintln!("bench: latency over {} kills", options.kills);
        let (result, rows) = latency::measure(options.kills)?;
        table.extend(rows);
        results.insert("latency".into(), result);
    }
    if wanted("storm") {
        eprintln!(
            "bench: storm of {} kills across {} cgroups",
            options.storm, options.storm_cgroups
        );
        let (result, rows) = storm::measure(options.storm, options.storm_cgroups)?;
        table.extend(rows);
        results.insert("storm".into(), result);
    }
    if wanted("overhead") {
        eprintln!("bench: overhead on an allocation- and reclaim-heavy workload");
        let (result, rows) = overhead::measure(options.rounds)?;
        table.extend(rows);
        results.insert("overhead".into(), result);
    }
    if wanted("exits") {
        eprintln!("bench: fork/exit storm of {} processes", options.exits);
        let (result, rows) = exits::measure(options.exits)?;
        table.extend(rows);
        results.insert("exits".into(), result);
    }
    if wanted("idle") {
        eprintln!("bench: idle for {} s", options.idle_secs);
        let (result, rows) = idle::measure(options.idle_secs)?;
        table.extend(rows);
        results.insert("idle".into(), result);
        let size = fs::metadata(oomtrace_tests::system::oomtrace_bin())?.len();
        table.push(row("release binary", mib(Some(size)), "<= 10 MiB"));
        results.insert("binary_bytes".into(), size.into());
    }
    if wanted("start") {
        eprintln!("bench: start to ready, oomtrace vs bpftrace");
        let (result, rows) = start::measure()?;
        table.extend(rows);
        results.insert("start_to_ready".into(), result);
    }

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

fn row(name: &str, result: String, goal: &str) -> Row {
    (name.to_string(), result, goal.to_string())
}

fn us(ns: Option<u64>) -> String {
    ns.map_or("?".into(), |ns| format!("{:.0} us", ns as f64 / 1000.0))
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("?".into(), |b| format!("{:.1} MiB", b as f64 / MIB as f64))
}

/// User + system clock ticks of process `pid` so far.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_comm = stat.rsplit_once(") ").context("stat")?.1;
    let fields: Vec<&str> = after_comm.split(' ').collect();
    // utime and stime are fields 14 and 15 of stat: 11 and 12 after the comm.
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    Ok(tick(11).context("utime")? + tick(12).context("stime")?)
}

/// Waits (at most 5 s) until process `pid` has used no CPU for 300 ms:
/// oomtrace is ready before it has finished starting (about 0.1 s of
/// CPU after its ready line), and a run measured then would be charged
/// for its start on a 2-core machine.
fn settle(pid: u32) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut last = cpu_ticks(pid)?;
    while std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(300));
        let now = cpu_ticks(pid)?;
        if now == last {
            return Ok(());
        }
        last = now;
    }
    Ok(())
}

/// The middle value (the upper one of an even count), sorting `values`.
fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied()
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
