//! The artifacts of `cargo xtask dist`, used the way a user would: the
//! static binary, the .deb installed into this machine with dpkg (and
//! removed again), the OCI image loaded into a real dockerd started here,
//! run like deploy/daemonset.yaml runs it, recording a real kill.
//! `cargo xtask test` builds them and sets OOMTRACE_DIST, OOMTRACE_DEB and
//! OOMTRACE_IMAGE.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, ensure};
use oomtrace_tests::{
    KernelLog, TestCgroup, Tracer,
    docker::{DOCKER_CGROUP, Dockerd},
    hog::HogOptions,
    system::require_root,
    tracer::victim_record,
    verify,
};
use serde_json::Value;

use crate::common::{MIB, TIMEOUT, oom_domain_matches, oom_kill, record_for, setup, truth};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const PACKAGE: &str = "oomtrace";

fn artifact(var: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "{var} is not set: `cargo xtask test` builds the artifacts and points the tests at them"
        )
    });
    assert!(path.exists(), "{var}={} does not exist", path.display());
    path
}

fn output(command: &mut Command) -> Result<(bool, String, String)> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// stdout of a command that must succeed.
fn run(command: &mut Command) -> Result<String> {
    let (ok, stdout, stderr) = output(command)?;
    ensure!(ok, "{command:?} failed: {stdout}{stderr}");
    Ok(stdout)
}

#[test]
fn every_artifact_matches_sha256sums() -> Result<()> {
    let dist = artifact("OOMTRACE_DIST");
    // coreutils checks the sums, not our own hashing.
    let checked = run(Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(&dist))?;
    for name in [
        format!("oomtrace-{VERSION}-x86_64-linux-musl"),
        format!("oomtrace-{VERSION}-aarch64-linux-musl"),
        format!("oomtrace_{VERSION}_amd64.deb"),
        format!("oomtrace-{VERSION}-image.tar"),
    ] {
        assert!(checked.contains(&format!("{name}: OK")), "{checked}");
    }
    Ok(())
}

#[test]
fn the_binary_is_static_stripped_and_within_ten_mib() -> Result<()> {
    let binary = artifact("OOMTRACE_DIST").join(format!("oomtrace-{VERSION}-x86_64-linux-musl"));
    let kind = run(Command::new("file").arg("-b").arg(&binary))?;
    // static-pie (the musl target's default, kept for ASLR) is what `file`
    // 5.44 calls a static position-independent executable.
    assert!(kind.contains("static-pie linked"), "{kind}");
    assert!(kind.contains(", stripped"), "{kind}");
    // Static by the ELF itself: no program interpreter, no shared library.
    let elf = run(Command::new("readelf")
        .args(["--program-headers", "--dynamic", "--wide"])
        .arg(&binary))?;
    assert!(!elf.contains("INTERP"), "{elf}");
    assert!(!elf.contains("(NEEDED)"), "{elf}");
    let size = fs::metadata(&binary)?.len();
    assert!(size <= 10 * MIB, "{size} bytes");
    // Without any environment or library path it still runs.
    let version = run(Command::new(&binary).env_clear().arg("--version"))?;
    assert_eq!(version.trim(), format!("oomtrace {VERSION}"));
    Ok(())
}

/// The arm64 binary (cross-built; `cargo xtask vm-test` runs it in arm64
/// VMs): static for aarch64, stripped, within the same goal.
#[test]
fn the_aarch64_binary_is_static_stripped_and_within_ten_mib() -> Result<()> {
    let binary = artifact("OOMTRACE_DIST").join(format!("oomtrace-{VERSION}-aarch64-linux-musl"));
    let kind = run(Command::new("file").arg("-b").arg(&binary))?;
    assert!(kind.contains("ARM aarch64"), "{kind}");
    assert!(
        kind.contains("statically linked") || kind.contains("static-pie linked"),
        "{kind}"
    );
    assert!(kind.contains(", stripped"), "{kind}");
    let elf = run(Command::new("readelf")
        .args(["--program-headers", "--dynamic", "--wide"])
        .arg(&binary))?;
    assert!(!elf.contains("INTERP"), "{elf}");
    assert!(!elf.contains("(NEEDED)"), "{elf}");
    let size = fs::metadata(&binary)?.len();
    assert!(size <= 10 * MIB, "{size} bytes");
    Ok(())
}

/// Purges the package on drop, so a failed test leaves nothing installed
/// (and so no enabled unit).
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        if !is_installed() {
            return;
        }
        let _ = Command::new("dpkg")
            .args(["--purge", PACKAGE])
            .stdout(Stdio::null())
            .status();
    }
}

fn is_installed() -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", PACKAGE]))
        .is_ok_and(|(ok, status, _)| ok && status.contains("installed"))
}

/// Processes running the packaged binary (from /proc, not from oomtrace).
fn running_packaged_binary() -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|exe| exe.starts_with("/usr/bin/oomtrace"))
        })
        .collect()
}

/// Lintian warnings accepted, each with the reason.
const ACCEPTED_LINTIAN_WARNINGS: [(&str, &str); 2] = [
    (
        // Debian's archive wants an ITP bug closed by the first upload;
        // this package is not uploaded there.
        "initial-upload-closes-no-bugs",
        "no ITP bug outside Debian's archive",
    ),
    (
        // The musl target links static-pie: ET_DYN without an interpreter,
        // which lintian takes for a library without its libc dependency.
        // Linking non-PIE instead trades this for the error
        // statically-linked-binary and loses ASLR for the binary.
        "shared-library-lacks-prerequisites",
        "static-pie binary taken for a library",
    ),
];

#[test]
fn lintian_reports_no_errors_and_only_accepted_warnings_on_the_deb() -> Result<()> {
    let deb = artifact("OOMTRACE_DEB");
    // Exit status 1 means errors (or worse); warnings are listed for review.
    let (ok, stdout, stderr) = output(
        Command::new("lintian")
            .args([
                "--fail-on",
                "error",
                "--allow-root",
                "--tag-display-limit",
                "0",
            ])
            .arg(&deb),
    )?;
    assert!(ok, "lintian: {stdout}{stderr}");
    for line in stdout.lines() {
        assert!(!line.starts_with("E: "), "{stdout}");
        if let Some(warning) = line.strip_prefix("W: oomtrace: ") {
            let tag = warning.split_whitespace().next().unwrap_or_default();
            assert!(
                ACCEPTED_LINTIAN_WARNINGS
                    .iter()
                    .any(|(accepted, _)| *accepted == tag),
                "lintian warning not accepted: {line}"
            );
        }
    }
    Ok(())
}

#[test]
fn the_deb_installs_enables_the_unit_without_starting_it_and_purges_cleanly() -> Result<()> {
    require_root();
    let deb = artifact("OOMTRACE_DEB");
    assert!(
        !is_installed(),
        "the {PACKAGE} package is installed already: this test would remove it; \
         `dpkg --purge {PACKAGE}` first"
    );
    let _installed = Installed;
    run(Command::new("dpkg").arg("-i").arg(&deb))?;

    // The package's own file list, and what it says each file is.
    let listed = run(Command::new("dpkg").args(["-L", PACKAGE]))?;
    let files: Vec<&Path> = listed.lines().map(Path::new).collect();
    for expected in [
        "/usr/bin/oomtrace",
        "/usr/lib/systemd/system/oomtrace.service",
        "/usr/share/man/man1/oomtrace.1.gz",
        "/usr/share/bash-completion/completions/oomtrace",
        "/usr/share/zsh/vendor-completions/_oomtrace",
        "/usr/share/fish/vendor_completions.d/oomtrace.fish",
        "/usr/share/doc/oomtrace/copyright",
        "/usr/share/doc/oomtrace/README.md",
        "/usr/lib/systemd/system-preset/80-oomtrace.preset",
    ] {
        assert!(files.contains(&Path::new(expected)), "{expected}: {listed}");
        assert!(Path::new(expected).exists(), "{expected} not on disk");
    }
    // The installed binary is the standalone artifact, byte for byte.
    let standalone =
        artifact("OOMTRACE_DIST").join(format!("oomtrace-{VERSION}-x86_64-linux-musl"));
    assert!(fs::read("/usr/bin/oomtrace")? == fs::read(&standalone)?);
    let state = fs::metadata("/var/lib/oomtrace").context("/var/lib/oomtrace")?;
    assert!(state.is_dir());

    // The unit: the packaged binary, enabled the way deb-systemd-helper
    // does it (a wants/ link), and systemd accepts it.
    let unit = fs::read_to_string("/usr/lib/systemd/system/oomtrace.service")?;
    assert!(unit.contains("ExecStart=/usr/bin/oomtrace "), "{unit}");
    let wants = Path::new("/etc/systemd/system/multi-user.target.wants/oomtrace.service");
    fs::read_link(wants).context("the unit is not enabled")?;
    // The link names /lib/...; with merged /usr that is the same file.
    assert_eq!(
        fs::canonicalize(wants)?,
        fs::canonicalize("/usr/lib/systemd/system/oomtrace.service")?
    );
    let (ok, stdout, stderr) = output(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg("/usr/lib/systemd/system/oomtrace.service"),
    )?;
    assert!(
        ok && (stdout.trim().is_empty() && stderr.trim().is_empty()),
        "{stdout}{stderr}"
    );
    // Not started: systemd is not PID 1 here (like a chroot), and the
    // postinst only starts it where /run/systemd/system says it is.
    if !Path::new("/run/systemd/system").exists() {
        assert_eq!(running_packaged_binary(), Vec::<u32>::new());
    }

    // man renders the page, with every long flag --help lists.
    let page = run(Command::new("man")
        .args(["-P", "cat", "oomtrace"])
        .env("MANWIDTH", "200")
        .env("LANG", "C.UTF-8"))?;
    let help = run(Command::new("/usr/bin/oomtrace").arg("--help"))?;
    let flags: Vec<&str> = help
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(|w| w.trim_end_matches([',', '.', ')', '=']))
        .filter(|w| w.len() > 2 && w[2..].chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .collect();
    assert!(flags.len() > 5, "{help}");
    for flag in &flags {
        assert!(
            page.contains(flag),
            "{flag} missing from `man oomtrace`:\n{page}"
        );
    }
    assert!(page.contains("check"), "the check subcommand: {page}");

    // bash loads the completion and completes the subcommand.
    let complete = run(Command::new("bash").arg("-c").arg(
        "source /usr/share/bash-completion/completions/oomtrace && complete -p oomtrace && \
         COMP_WORDS=(oomtrace ch) COMP_CWORD=1 && _oomtrace oomtrace ch oomtrace && \
         printf '%s\\n' \"${COMPREPLY[@]}\"",
    ))?;
    assert!(complete.contains("-F _oomtrace oomtrace"), "{complete}");
    assert!(complete.lines().any(|l| l == "check"), "{complete}");

    // Purge: every file it listed is gone, the directories it listed are
    // gone or still someone else's, and so are its link and state dir.
    run(Command::new("dpkg").args(["--purge", PACKAGE]))?;
    assert!(!is_installed());
    for path in &files {
        if path.is_dir() {
            let owner = output(Command::new("dpkg").arg("-S").arg(path))?;
            let empty = fs::read_dir(path)?.next().is_none();
            assert!(owner.0 || !empty, "{} left behind", path.display());
        } else {
            assert!(
                fs::symlink_metadata(path).is_err(),
                "{} left behind",
                path.display()
            );
        }
    }
    assert!(fs::symlink_metadata(wants).is_err(), "enable link left");
    assert!(!Path::new("/var/lib/oomtrace").exists(), "state dir left");
    Ok(())
}

/// Capabilities Debian 12's docker.io (20.10) does not know by name; its
/// runc (1.1) does. The test's runtime adds them to the OCI config, as
/// containerd does for a Kubernetes pod that asks for them.
const UNKNOWN_TO_DOCKER: [&str; 2] = ["BPF", "PERFMON"];
/// Bit numbers (include/uapi/linux/capability.h) of what the DaemonSet adds.
const CAPABILITY_BITS: [(&str, u32); 3] = [("SYS_RESOURCE", 24), ("PERFMON", 38), ("BPF", 39)];
const CAPS_RUNTIME: &str = "runc-with-caps";

/// runc, after adding UNKNOWN_TO_DOCKER to the container's bounding,
/// effective and permitted sets when the shim creates it.
const CAPS_RUNTIME_SCRIPT: &str = r#"#!/usr/bin/python3
import json, os, sys
args = sys.argv[1:]
if "--bundle" in args and ("create" in args or "run" in args):
    path = os.path.join(args[args.index("--bundle") + 1], "config.json")
    with open(path) as f:
        config = json.load(f)
    caps = config["process"].setdefault("capabilities", {})
    for kind in ("bounding", "effective", "permitted"):
        caps[kind] = sorted(set(caps.get(kind) or []) | set([{ADD}]))
    with open(path, "w") as f:
        json.dump(config, f)
os.execv("/usr/sbin/runc", ["runc"] + args)
"#;

/// A capability set (`CapEff`, `CapBnd`, ...) of a /proc/PID/status file.
fn capability_set(status: &str, set: &str) -> Result<u64> {
    fs::read_to_string(status)?
        .lines()
        .find_map(|l| l.strip_prefix(set)?.strip_prefix(':'))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .with_context(|| format!("{set} in {status}"))
}

fn bit_of(cap: &str) -> Result<u64> {
    CAPABILITY_BITS
        .iter()
        .find(|(name, _)| *name == cap)
        .map(|(_, bit)| 1u64 << bit)
        .with_context(|| format!("capability {cap} not in CAPABILITY_BITS"))
}

/// The DaemonSet's oomtrace container: its args and added capabilities,
/// read from deploy/daemonset.yaml so the test runs what ships.
struct DaemonSetContainer {
    image: String,
    args: Vec<String>,
    caps: Vec<String>,
}

fn daemonset_container() -> Result<DaemonSetContainer> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/daemonset.yaml");
    let text = fs::read_to_string(&path)?;
    let image = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("image: "))
        .context("image:")?
        .to_owned();
    let args = text
        .lines()
        .skip_while(|l| l.trim() != "args:")
        .skip(1)
        .map_while(|l| l.trim().strip_prefix("- "))
        .map(str::to_owned)
        .collect();
    let caps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("add: "))
        .context("capabilities add:")?
        .trim_matches(['[', ']'])
        .split(',')
        .map(|c| c.trim().trim_matches('"').to_owned())
        .collect();
    Ok(DaemonSetContainer { image, args, caps })
}

#[test]
fn the_daemonset_and_sidecar_name_the_built_image() -> Result<()> {
    let container = daemonset_container()?;
    assert_eq!(container.image, format!("oomtrace:{VERSION}"));
    let sidecar =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/sidecar.yaml"))?;
    assert!(
        sidecar.contains(&format!("image: oomtrace:{VERSION}\n")),
        "{sidecar}"
    );
    Ok(())
}

#[test]
fn the_image_runs_like_the_daemonset_and_records_a_kill_checked_against_the_kernel_log()
-> Result<()> {
    let _serial = setup();
    let image = artifact("OOMTRACE_IMAGE");
    let mut container = daemonset_container()?;
    // A container gets no capability its host lacks: this machine's
    // bounding set has no CAP_SYS_RESOURCE (runc fails with EPERM). Grant
    // what the host can, and keep oomtrace's oom_score_adj as the deploy
    // tests do when SYS_RESOURCE is not among them.
    let host = capability_set("/proc/self/status", "CapBnd")?;
    container
        .caps
        .retain(|cap| bit_of(cap).is_ok_and(|bit| host & bit != 0));
    if !container.caps.iter().any(|c| c == "SYS_RESOURCE") {
        eprintln!("dist: the host has no CAP_SYS_RESOURCE; running with --oom-score-adj=keep");
        container.args.push("--oom-score-adj=keep".into());
    }
    assert!(
        container.caps.iter().any(|c| c == "BPF") && container.caps.iter().any(|c| c == "PERFMON"),
        "the host lacks CAP_BPF or CAP_PERFMON"
    );
    let dockerd = Dockerd::start(&format!("/{DOCKER_CGROUP}"), |dir| {
        let runtime = dir.join(CAPS_RUNTIME);
        let add = UNKNOWN_TO_DOCKER
            .iter()
            .map(|c| format!("\"CAP_{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        fs::write(&runtime, CAPS_RUNTIME_SCRIPT.replace("{ADD}", &add))?;
        fs::set_permissions(
            &runtime,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        Ok(vec![format!(
            "--add-runtime={CAPS_RUNTIME}={}",
            runtime.display()
        )])
    })?;
    let loaded = dockerd.docker(&["load", "--input", image.to_str().context("utf8")?])?;
    assert!(
        loaded.contains(&format!("Loaded image: {}", container.image)),
        "{loaded}"
    );
    let inspect: Value =
        serde_json::from_str(&dockerd.docker(&["image", "inspect", &container.image])?)?;
    let config = &inspect[0]["Config"];
    assert_eq!(
        config["Labels"]["org.opencontainers.image.version"],
        VERSION
    );
    assert_eq!(
        config["Labels"]["org.opencontainers.image.licenses"],
        // oomtrace/Cargo.toml's, and oomtrace-ebpf/Cargo.toml's (embedded).
        "(MIT OR Apache-2.0) AND GPL-2.0-only"
    );
    assert!(config["Labels"]["org.opencontainers.image.source"].is_string());
    // From scratch: one layer, the binary alone.
    assert_eq!(
        inspect[0]["RootFS"]["Layers"].as_array().map(Vec::len),
        Some(1)
    );

    // As the DaemonSet runs it: host pid namespace, every capability
    // dropped but the ones it adds, read-only root and host mounts, no
    // privilege escalation, its memory limit.
    let mut command = dockerd.command();
    command.args(["run", "--name", "oomtrace", "--pid=host", "--network=none"]);
    command.arg(format!("--runtime={CAPS_RUNTIME}"));
    command.args(["--read-only", "--security-opt=no-new-privileges"]);
    command.args([
        "--security-opt=seccomp=unconfined",
        "--cap-drop=ALL",
        "--memory=160m",
    ]);
    for cap in container
        .caps
        .iter()
        .filter(|c| !UNKNOWN_TO_DOCKER.contains(&c.as_str()))
    {
        command.arg(format!("--cap-add={cap}"));
    }
    command.args([
        "-v",
        "/sys/kernel:/sys/kernel:ro",
        "-v",
        "/sys/fs/cgroup:/sys/fs/cgroup:ro",
    ]);
    command.args(["-v", "/var/log:/host/var/log:ro"]);
    command.arg(&container.image).args(&container.args);
    let mut tracer = Tracer::spawn(&mut command)?;
    let ready = tracer
        .wait_ready(TIMEOUT)
        .map_err(|e| anyhow::anyhow!("{e:#}; dockerd: {}", dockerd.log()))?;
    for missing in [
        "OOM killer context unavailable",
        "reclaim history unavailable",
    ] {
        assert!(!ready.contains(missing), "{ready}");
    }
    // What the kernel says the container holds: exactly the DaemonSet's set.
    let pid = dockerd.docker(&["inspect", "--format={{.State.Pid}}", "oomtrace"])?;
    let effective = capability_set(&format!("/proc/{}/status", pid.trim()), "CapEff")?;
    let wanted = container
        .caps
        .iter()
        .map(|cap| bit_of(cap))
        .sum::<Result<u64>>()?;
    assert_eq!(
        effective, wanted,
        "CapEff {effective:#x}, the DaemonSet adds {wanted:#x}"
    );

    let mut log = KernelLog::open()?;
    let cgroup = TestCgroup::new("image", 64 * MIB)?;
    let pid = oom_kill(&cgroup.dir, None, &HogOptions::default())?;
    let record = &record_for(&mut tracer, pid)?;
    let truth = truth(&mut log, pid);
    verify::victim_matches_log(record, &truth)?;
    oom_domain_matches(record, &truth, &cgroup)?;

    // What `docker logs` (and so a cluster's log pipeline) reads: JSON
    // lines on stdout, the victim among them.
    let logs = dockerd.docker(&["logs", "oomtrace"])?;
    let parsed: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("not JSON: {l:?}")))
        .collect::<Result<_>>()?;
    assert!(victim_record(&parsed, pid).is_some(), "{logs}");
    dockerd.docker(&["stop", "--time=10", "oomtrace"])?;
    let (status, _, _) = tracer.finish(TIMEOUT)?;
    assert!(
        status.success(),
        "SIGTERM from docker stop is a normal end: {status}"
    );
    Ok(())
}
