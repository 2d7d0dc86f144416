//! `cargo xtask`: the commands README.md gives a new user.
//!
//!   cargo xtask setup   install what building needs (idempotent)
//!   cargo xtask run     build oomtrace and run it (as root)
//!   cargo xtask test    lint, then every test, unit and kernel
//!   cargo xtask bench   the measurements behind README.md's table
//!   cargo xtask vm-test the kernel matrix in qemu VMs (tests/vm/kernels)
//!   cargo xtask fuzz    the fuzz targets of fuzz/, each for a given time
//!   cargo xtask dist    the static binary, .deb and OCI image in target/dist

mod dist;
mod fuzz;
mod setup;
mod sh;
mod vm;

use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

use crate::sh::{Cmd, workspace_root};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "oomtrace developer commands")]
struct Xtask {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what a fresh machine lacks to build oomtrace: LLVM 22
    /// development packages, bpf-linker, and rust-src for nightly.
    Setup,
    /// Set up, build oomtrace (release) and run it with the given arguments.
    Run {
        /// Arguments for oomtrace, e.g. `-- --format json`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, check formatting and lints, then run every test: unit tests
    /// and the kernel tests (real OOM kills in test cgroups; needs root).
    Test {
        /// Only tests whose name contains this.
        filter: Option<String>,
    },
    /// Set up (and install bpftrace to compare with), build release
    /// binaries, and measure latency (beside bpftrace), a kill storm,
    /// overhead (bpf_stats per program), a fork/exit storm, idle cost and
    /// start-up; prints a table and writes target/bench.json. Needs root;
    /// takes about ten minutes (`-- --only overhead,exits` runs a part).
    Bench {
        /// Arguments for oomtrace-bench, e.g. `-- --kills 500 --idle-secs 30`
        /// or `-- --only latency,storm`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, build static (musl) binaries, and boot each kernel of
    /// tests/vm/kernels under qemu: memcg OOMs in a leaf and under a parent's
    /// limit, memory.oom.group and a global OOM, with every capture path,
    /// each record checked against the guest's kernel log. Needs root.
    VmTest {
        /// Only the kernel of this name.
        kernel: Option<String>,
    },
    /// Install cargo-fuzz if missing, build the fuzz targets of fuzz/
    /// (nightly, AddressSanitizer, debug assertions) and run each for
    /// `--seconds`, from fuzz/seeds into target/fuzz/corpus. Fails when a
    /// target crashes and prints the reproducer. Needs no root.
    Fuzz {
        /// Only this target (default: all but those with a known crash).
        target: Option<String>,
        /// How long each target runs.
        #[arg(long, default_value_t = 180)]
        seconds: u64,
    },
    /// Set up (musl target, musl-tools, cargo-deb), then build into
    /// target/dist the static binary, the .deb, the OCI image (a
    /// docker-archive tarball) and SHA256SUMS. `cargo xtask test` builds
    /// them too and tests each one.
    Dist,
}

fn main() -> ExitCode {
    match run(Xtask::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(xtask: Xtask) -> Result<()> {
    match xtask.command {
        Task::Setup => setup::ensure(),
        Task::Run { args } => {
            setup::ensure()?;
            Cmd::new("cargo")
                .args(["build", "--release", "--package", "oomtrace"])
                .run()?;
            let binary = workspace_root().join("target/release/oomtrace");
            let mut cmd = if sh::is_root() {
                Cmd::new(binary.as_os_str())
            } else {
                eprintln!("xtask: oomtrace needs root; running it with sudo");
                let mut sudo = Cmd::new("sudo");
                sudo.arg(binary.as_os_str());
                sudo
            };
            cmd.args(args).run_passing_status()
        }
        Task::Test { filter } => test(filter),
        Task::Bench { args } => bench(args),
        Task::VmTest { kernel } => vm::vm_test(kernel),
        Task::Fuzz { target, seconds } => fuzz::fuzz(target, seconds),
        Task::Dist => dist::dist(),
    }
}

fn test(filter: Option<String>) -> Result<()> {
    setup::ensure()?;
    eprintln!("xtask: checking formatting and lints");
    Cmd::new("cargo")
        .args(["fmt", "--all", "--check"])
        .run()
        .context("run `cargo fmt --all` to fix")?;
    Cmd::new("cargo")
        .args(["clippy", "--all-targets", "--", "-D", "warnings"])
        .run()?;
    Cmd::new("cargo")
        .args([
            "+nightly",
            "clippy",
            "--package",
            "oomtrace-ebpf",
            "--release",
        ])
        .args([
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--",
            "-D",
            "warnings",
        ])
        .run()?;

    if !sh::is_root() {
        bail!(
            "the kernel tests create cgroups and load BPF programs: run `sudo -E cargo xtask test`"
        );
    }
    // The metrics tests scrape oomtrace with a real Prometheus server; the
    // deploy tests validate manifests and the unit with the real tools.
    setup::install_missing(&["prometheus", "python3-venv", "systemd"])
        .context("installing prometheus, python3-venv and systemd for the tests")?;
    // The artifact tests install the .deb (lintian, man-db to check it) and
    // run the image in a dockerd of their own; the docker tests import an
    // image of busybox-static and the hog, and run a task with containerd's
    // ctr (docker.io depends on containerd).
    setup::install_missing(&["lintian", "man-db", "docker.io", "busybox-static"])
        .context("installing lintian, man-db, docker.io and busybox-static for the artifact and docker tests")?;
    // The --sigkill tests stop a runc container (a busybox rootfs) as a
    // runtime does: SIGTERM, a grace, SIGKILL.
    setup::install_missing(&["runc"]).context("installing runc for the sigkill tests")?;
    eprintln!("xtask: building the artifacts (cargo xtask dist)");
    let artifacts = dist::build()?;
    let kubernetes_validate = setup::kubernetes_validate()?;
    eprintln!("xtask: building oomtrace for the kernel tests");
    build_bins(&[])?;
    let binary = workspace_root().join("target/debug/oomtrace");
    remove_leftover_cgroups()?;

    // Start from no BTF cache, so the first oomtrace starts cold.
    let btf_cache = workspace_root().join("target/test-btf-cache");
    if btf_cache.exists() {
        std::fs::remove_dir_all(&btf_cache)
            .with_context(|| format!("remove {}", btf_cache.display()))?;
    }
    eprintln!("xtask: running unit and kernel tests");
    let mut cmd = Cmd::new("cargo");
    cmd.args(["test", "--no-fail-fast"])
        .env("OOMTRACE_BIN", binary.as_os_str())
        .env("KUBERNETES_VALIDATE", kubernetes_validate.as_os_str())
        .env("OOMTRACE_DIST", dist::dir().as_os_str())
        .env("OOMTRACE_DEB", artifacts.deb.as_os_str())
        .env("OOMTRACE_IMAGE", artifacts.image.as_os_str())
        // As root every oomtrace defaults to the machine's own history; no
        // test may write it (those that test the store pass --store).
        .env("OOMTRACE_STORE", "none")
        // Nor the machine's BTF cache: the tests' oomtraces share one of
        // their own, so both cold and warm starts are exercised.
        .env("OOMTRACE_CACHE", btf_cache.as_os_str());
    if let Some(filter) = filter {
        cmd.arg("--").arg(filter);
    }
    cmd.run()
}

fn bench(args: Vec<String>) -> Result<()> {
    setup::ensure()?;
    if !sh::is_root() {
        bail!("the benchmark causes OOM kills in its own cgroups: run `sudo -E cargo xtask bench`");
    }
    setup::install_missing(&["bpftrace"]).context("installing bpftrace to compare with")?;
    build_bins(&["--release"])?;
    remove_leftover_cgroups()?;
    let release = workspace_root().join("target/release");
    let json = workspace_root().join("target/bench.json");
    Cmd::new(release.join("oomtrace-bench").as_os_str())
        .arg("--json")
        .arg(json.as_os_str())
        .args(&args)
        .env("OOMTRACE_BIN", release.join("oomtrace").as_os_str())
        .run()?;
    // `-- --only X`: that measurement alone (e.g. `--only start` to
    // iterate on start-up), without the store's.
    if args.iter().any(|a| a == "--only") {
        return Ok(());
    }
    // The store's cost, on its own code: a write per record in the
    // writer's batches, and `list` over 100,000 stored kills.
    eprintln!("xtask: measuring the store (100,000 records)");
    Cmd::new("cargo")
        .args([
            "test",
            "--release",
            "--package",
            "oomtrace",
            "--lib",
            "store_cost",
        ])
        .args(["--", "--ignored", "--nocapture"])
        .run()
}

/// Builds oomtrace and the test binaries (hog, bench, VM guest) with
/// `extra` cargo arguments (profile, target).
fn build_bins(extra: &[&str]) -> Result<()> {
    Cmd::new("cargo")
        .arg("build")
        .args(extra)
        .args([
            "--package",
            "oomtrace",
            "--package",
            "oomtrace-tests",
            "--bins",
        ])
        .run()
}

/// A run killed mid-test can leave `oomtrace-test-*` cgroups behind; they
/// are ours by name, and only those are removed (with the hogs inside).
fn remove_leftover_cgroups() -> Result<()> {
    let removed = oomtrace_tests::cgroup::remove_leftovers()
        .context("cleaning up oomtrace-test-* cgroups left by an earlier run")?;
    if removed > 0 {
        eprintln!("xtask: removed {removed} leftover oomtrace-test-* cgroup(s)");
    }
    Ok(())
}
