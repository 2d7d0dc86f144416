//! Overhead: throughput of an allocation- and reclaim-heavy workload in a
//! 64 MiB memcg, without a tracer and with each tracer configuration, in
//! interleaved runs; and, exactly, what the kernel counted for each of
//! oomtrace's programs meanwhile (`bpf_stats`): ns per event, events per
//! second, and their sum as a share of the workload's own CPU time.

use std::{
    collections::BTreeMap,
    fs,
    io::Read as _,
    os::unix::fs::FileExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use oomtrace_tests::{TestCgroup, Tracer};
use serde_json::{Value, json};

use crate::{
    MIB, Row,
    bpf_stats::{self, Counters, StatsOn},
    median, row, settle,
};

/// Interleaved runs of the workload without a tracer and with each
/// tracer configuration; the median throughput of each.
pub fn measure(rounds: usize) -> Result<(Value, Vec<Row>)> {
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
    let stats = StatsOn::enable()?;
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut programs: Vec<BTreeMap<String, Counters>> = vec![BTreeMap::new(); modes.len()];
    let mut cpu_ns = vec![0u64; modes.len()];
    let mut wall_ns = vec![0u64; modes.len()];
    for _ in 0..rounds {
        for (i, (_, args)) in modes.iter().enumerate() {
            let tracer = args.map(Tracer::start).transpose()?;
            let before = match &tracer {
                Some(t) => {
                    settle(t.pid())?;
                    bpf_stats::programs_of(t.pid())?
                }
                None => BTreeMap::new(),
            };
            let started = Instant::now();
            let run = run_workload(&cgroup.dir, SECONDS, &file)?;
            wall_ns[i] += started.elapsed().as_nanos() as u64;
            cpu_ns[i] += run.cpu_ns;
            runs[i].push(run.ops_per_s);
            if let Some(tracer) = tracer {
                let after = bpf_stats::programs_of(tracer.pid())?;
                bpf_stats::accumulate(&mut programs[i], &bpf_stats::delta(&before, &after));
                tracer.stop()?;
            }
        }
    }
    let stats_were = stats.was.clone();
    drop(stats);
    let base = median(&mut runs[0]).context("no run without a tracer")?;
    let mut out = serde_json::Map::new();
    out.insert(
        "workload".into(),
        "64 MiB memcg: map, touch and unmap 16 MiB of anonymous memory, then read 8 MiB of a 256 MiB file (charges, faults, direct reclaim)".into(),
    );
    out.insert("none_ops_per_s".into(), base.into());
    for (i, (name, _)) in modes.iter().enumerate().skip(1) {
        let with = median(&mut runs[i]).context("no run")?;
        let exact = exact(&programs[i], cpu_ns[i], wall_ns[i]);
        out.insert(
            (*name).into(),
            json!({
                "ops_per_s": with,
                "change_percent": (with / base - 1.0) * 100.0,
                "runs": rounds,
                "all_ops_per_s": runs[i],
                "bpf_stats": exact,
            }),
        );
    }
    out.insert(
        "bpf_stats_enabled".into(),
        json!({"before": stats_were, "after": bpf_stats::sysctl()}),
    );
    out.insert("none_all_ops_per_s".into(), json!(runs[0]));
    let rows = [
        ("default", "all kill probes"),
        ("pressure", "with --pressure"),
        ("sigkill", "with --sigkill"),
    ]
    .into_iter()
    .map(|(mode, label)| {
        row(
            &format!("overhead, {label}"),
            format!(
                "{:+.2} % throughput (median of {} interleaved runs)",
                out[mode]["change_percent"].as_f64().unwrap_or(0.0),
                out[mode]["runs"]
            ),
            "<= 1 % loss",
        )
    })
    .collect::<Vec<_>>();
    let mut rows = rows;
    for (mode, label) in [
        ("default", "default probes"),
        ("pressure", "--pressure"),
        ("sigkill", "--sigkill"),
    ] {
        let exact = &out[mode]["bpf_stats"];
        let programs = exact["programs"]
            .as_object()
            .map(|programs| {
                programs
                    .iter()
                    .filter(|(_, p)| p["events"].as_u64().unwrap_or(0) > 0)
                    .map(|(name, p)| {
                        format!(
                            "`{name}` {:.0} ns x {:.0}/s",
                            p["ns_per_event"].as_f64().unwrap_or(0.0),
                            p["events_per_s"].as_f64().unwrap_or(0.0)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        rows.push(row(
            &format!("overhead, exactly (bpf_stats), {label}"),
            format!(
                "{:.3} % of the workload's CPU: {programs}",
                exact["cpu_share_percent"].as_f64().unwrap_or(f64::NAN)
            ),
            "<= 1 %",
        ));
    }
    Ok((Value::Object(out), rows))
}

/// Per program: ns per run, runs per second of the workload's wall time;
/// and all programs' time as a share of the workload's CPU time. Programs
/// on machine-wide hooks (exits, signals) count every process's events,
/// not only the workload's, which overstates the share.
fn exact(programs: &BTreeMap<String, Counters>, cpu_ns: u64, wall_ns: u64) -> Value {
    let seconds = wall_ns as f64 / 1e9;
    let total: u64 = programs.values().map(|c| c.run_time_ns).sum();
    let per_program: serde_json::Map<String, Value> = programs
        .iter()
        .map(|(name, c)| {
            (
                name.clone(),
                json!({
                    "events": c.run_cnt,
                    "run_time_ns": c.run_time_ns,
                    "ns_per_event": (c.run_cnt > 0).then(|| c.run_time_ns as f64 / c.run_cnt as f64),
                    "events_per_s": c.run_cnt as f64 / seconds,
                }),
            )
        })
        .collect();
    json!({
        "programs": per_program,
        "bpf_ns": total,
        "workload_cpu_ns": cpu_ns,
        "workload_wall_ns": wall_ns,
        "cpu_share_percent": total as f64 / cpu_ns.max(1) as f64 * 100.0,
    })
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

struct Run {
    ops_per_s: f64,
    /// The workload's own CPU time (user + system), kernel work for it included.
    cpu_ns: u64,
}

/// Runs `oomtrace-bench workload` inside `cgroup`.
fn run_workload(cgroup: &Path, seconds: u64, file: &Path) -> Result<Run> {
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
    let mut fields = out.split_whitespace();
    let ops: f64 = fields
        .next()
        .and_then(|v| v.parse().ok())
        .context("workload output")?;
    let cpu_ns: u64 = fields
        .next()
        .and_then(|v| v.parse().ok())
        .context("workload output: CPU time")?;
    Ok(Run {
        ops_per_s: ops / seconds as f64,
        cpu_ns,
    })
}

/// The overhead workload, inside its cgroup: prints the iterations done and
/// its CPU time in ns.
pub fn workload(args: &[String]) -> Result<()> {
    let seconds: u64 = args.first().context("seconds")?.parse()?;
    let file = fs::File::open(args.get(1).context("file")?)?;
    let size = file.metadata()?.len();
    let mut go = String::new();
    std::io::stdin().read_line(&mut go)?;
    // The file was written (and so cached) outside this cgroup: dropped
    // from the page cache, every read charges the 64 MiB memcg again, and
    // reading 256 MiB through it keeps the charge path reclaiming.
    // SAFETY: advice on our own open file.
    unsafe {
        libc::posix_fadvise(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            0,
            0,
            libc::POSIX_FADV_DONTNEED,
        )
    };
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
    // SAFETY: getrusage fills the struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    println!("{iterations} {}", ns(usage.ru_utime) + ns(usage.ru_stime));
    Ok(())
}
