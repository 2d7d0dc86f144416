//! `cargo xtask fuzz`: builds the fuzz targets of fuzz/ (cargo-fuzz,
//! libFuzzer, nightly with AddressSanitizer and debug assertions) and runs
//! each for a given time. Corpora grow under target/fuzz/corpus (not
//! committed), starting from fuzz/seeds; a crash fails the run and names
//! its reproducer.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    setup,
    sh::{Cmd, workspace_root},
};

/// Every target in fuzz/Cargo.toml.
pub const TARGETS: [&str; 6] = [
    "tracefs_format",
    "kmsg_line",
    "cgroup_path",
    "proc_status",
    "runtime_cmdline",
    "ring_entry",
];

/// Largest input per target: a ring buffer entry is a kill record plus up
/// to 16 KiB of command line; the others are text files of a few KiB.
fn max_len(target: &str) -> usize {
    if target == "ring_entry" {
        24_576
    } else {
        8_192
    }
}

/// What one target's run did.
struct Outcome {
    target: &'static str,
    executions: Option<u64>,
    corpus: usize,
    crash: Option<PathBuf>,
    log: PathBuf,
}

pub fn fuzz(only: Option<String>, seconds: u64) -> Result<()> {
    let targets: Vec<&'static str> =
        match &only {
            Some(name) => vec![*TARGETS.iter().find(|t| *t == name).with_context(|| {
                format!("no fuzz target {name}; targets: {}", TARGETS.join(", "))
            })?],
            None => TARGETS.to_vec(),
        };
    ensure_tools()?;
    eprintln!("xtask: checking the fuzz crate's formatting and lints");
    Cmd::new("cargo")
        .args(["fmt", "--manifest-path", "fuzz/Cargo.toml", "--check"])
        .run()
        .context("run `cargo fmt --manifest-path fuzz/Cargo.toml` to fix")?;
    Cmd::new("cargo")
        .args([
            "+nightly",
            "clippy",
            "--manifest-path",
            "fuzz/Cargo.toml",
            "--all-targets",
        ])
        .args(["--target-dir", "target/fuzz-check", "--", "-D", "warnings"])
        .run()?;
    eprintln!("xtask: building the fuzz targets");
    // All of them (cargo-fuzz builds one or all): they share every crate.
    Cmd::new("cargo")
        .args(["+nightly", "fuzz", "build", "--debug-assertions"])
        .args(["--target-dir", "target/fuzz"])
        .run()?;

    let root = workspace_root();
    let mut outcomes = Vec::new();
    for target in targets {
        eprintln!("xtask: fuzzing {target} for {seconds} s");
        outcomes.push(run_target(&root, target, seconds)?);
    }
    eprintln!("xtask: fuzz summary ({seconds} s per target)");
    for o in &outcomes {
        let executions = o.executions.map_or("?".to_string(), |n| n.to_string());
        let verdict = match &o.crash {
            Some(path) => format!("CRASH {}", path.display()),
            None => "ok".to_string(),
        };
        eprintln!(
            "xtask:   {:<16} {executions:>10} executions, corpus {:>5} inputs, {verdict}",
            o.target, o.corpus
        );
    }
    let crashed: Vec<&Outcome> = outcomes.iter().filter(|o| o.crash.is_some()).collect();
    if crashed.is_empty() {
        return Ok(());
    }
    for o in &crashed {
        if let Some(path) = &o.crash {
            eprintln!(
                "xtask: {} crashed; log {}; reproduce with\n  {} {}",
                o.target,
                o.log.display(),
                binary(&root, o.target).display(),
                path.display()
            );
        }
    }
    bail!(
        "{} fuzz target(s) crashed: {}",
        crashed.len(),
        crashed
            .iter()
            .map(|o| o.target)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// cargo-fuzz (0.13 builds with stable 1.95 and drives our nightly) and a
/// C++ compiler for libFuzzer itself.
fn ensure_tools() -> Result<()> {
    setup::nightly()?;
    setup::install_missing(&["g++"]).context("installing a C++ compiler for libFuzzer")?;
    if !Cmd::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .succeeds()
    {
        Cmd::new("cargo")
            .args(["install", "--locked", "cargo-fuzz@0.13.2"])
            .run()
            .context("installing cargo-fuzz")?;
    }
    Ok(())
}

fn binary(root: &Path, target: &str) -> PathBuf {
    root.join("target/fuzz/x86_64-unknown-linux-gnu/release")
        .join(target)
}

fn run_target(root: &Path, target: &'static str, seconds: u64) -> Result<Outcome> {
    let dir = root.join("target/fuzz");
    let corpus = dir.join("corpus").join(target);
    let artifacts = dir.join("artifacts").join(target);
    let logs = dir.join("logs");
    for d in [&corpus, &artifacts, &logs] {
        fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let before = files(&artifacts)?;
    let log = logs.join(format!("{target}.log"));
    let log_file =
        fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    // New inputs go to the first directory; the seeds are only read.
    let status = Command::new(binary(root, target))
        .current_dir(root)
        .arg(&corpus)
        .arg(root.join("fuzz/seeds").join(target))
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-max_len={}", max_len(target)))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        // Bounded: a slow input or a leak fails instead of eating the host.
        .args(["-timeout=10", "-rss_limit_mb=1024", "-print_final_stats=1"])
        .env("ASAN_OPTIONS", "detect_odr_violation=0")
        .stdout(Stdio::null())
        .stderr(log_file)
        .status()
        .with_context(|| format!("cannot run the fuzz target {target}"))?;
    let text = fs::read_to_string(&log).unwrap_or_default();
    let executions = text
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|n| n.trim().parse().ok());
    let crash = files(&artifacts)?
        .into_iter()
        .find(|f| !before.contains(f))
        .or_else(|| (!status.success()).then(|| log.clone()));
    Ok(Outcome {
        target,
        executions,
        corpus: files(&corpus)?.len(),
        crash,
        log,
    })
}

fn files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        out.push(
            entry
                .with_context(|| format!("cannot read {}", dir.display()))?
                .path(),
        );
    }
    Ok(out)
}
