//! Overhead: throughput of an allocation- and reclaim-heavy workload in a
//! 64 MiB memcg, without a tracer and with each tracer configuration, in
//! interleaved runs.

use std::{
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

use crate::{MIB, Row, median, row};

/// Interleaved runs of the workload without a tracer and with each
/// tracer configuration; the median throughput of each.
pub fn measure() -> Result<(Value, Vec<Row>)> {
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
            let tracer = args.map(Tracer::start).transpose()?;
            runs[i].push(run_workload(&cgroup.dir, SECONDS, &file)?);
            if let Some(tracer) = tracer {
                tracer.stop()?;
            }
        }
    }
    let base = median(&mut runs[0]).context("no run without a tracer")?;
    let mut out = serde_json::Map::new();
    out.insert(
        "workload".into(),
        "64 MiB memcg: map, touch and unmap 16 MiB of anonymous memory, then read 8 MiB of a 256 MiB file (charges, faults, direct reclaim)".into(),
    );
    out.insert("none_ops_per_s".into(), base.into());
    for (i, (name, _)) in modes.iter().enumerate().skip(1) {
        let with = median(&mut runs[i]).context("no run")?;
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
    .collect();
    Ok((Value::Object(out), rows))
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
pub fn workload(args: &[String]) -> Result<()> {
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
