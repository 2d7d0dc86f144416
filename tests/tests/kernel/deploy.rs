//! deploy/: the manifests against the Kubernetes API schemas
//! (kubernetes-validate), the systemd unit against systemd itself, and the
//! least set of capabilities the DaemonSet and the unit grant.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result};
use oomtrace_tests::{
    KernelLog, TestCgroup, Tracer,
    hog::HogOptions,
    system::{ScratchDir, oomtrace_bin},
    verify,
};

use crate::common::{MIB, TIMEOUT, oom_domain_matches, oom_kill, record_for, setup, truth};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

#[test]
fn the_manifests_pass_kubernetes_validate() {
    let tool = std::env::var_os("KUBERNETES_VALIDATE").unwrap_or_else(|| {
        panic!(
            "KUBERNETES_VALIDATE is not set: `cargo xtask test` installs kubernetes-validate \
             (PyPI) and points the tests at it"
        )
    });
    let out = Command::new(&tool)
        .arg("--strict")
        .arg(deploy("daemonset.yaml"))
        .arg(deploy("sidecar.yaml"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool:?}: {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    // Namespace + DaemonSet + Pod, each validated.
    assert_eq!(text.matches(" passed for resource ").count(), 3, "{text}");
}

#[test]
fn the_unit_passes_systemd_analyze_verify_without_a_warning() -> Result<()> {
    let unit = std::fs::read_to_string(deploy("oomtrace.service"))?;
    assert!(unit.contains("Type=notify"), "uses the ready notification");
    // systemd checks that ExecStart's binary exists: point it at ours.
    let dir = ScratchDir::new("unit")?;
    let copy = dir.path.join("oomtrace.service");
    let bin = oomtrace_bin();
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/oomtrace", bin.to_str().context("utf8")?),
    )?;
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .context("run systemd-analyze (package systemd)")?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // Unknown keys and bad values are only warnings to systemd: none allowed.
    assert!(out.status.success() && text.trim().is_empty(), "{text}");

    // Its command line is one oomtrace accepts.
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .context("ExecStart")?;
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    let out = Command::new(&bin).args(&args).arg("--help").output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// oomtrace as root, but with only `caps` (setpriv, util-linux).
fn with_caps(caps: &str) -> Command {
    let mut command = Command::new("setpriv");
    command
        .arg(format!("--bounding-set=-all,{caps}"))
        .arg(oomtrace_bin());
    command
}

#[test]
fn cap_bpf_and_cap_perfmon_are_enough_for_every_field() -> Result<()> {
    let _serial = setup();
    let mut command = with_caps("+bpf,+perfmon");
    command.args(["--format", "json", "--oom-score-adj", "keep"]);
    let mut tracer = Tracer::spawn(&mut command)?;
    let ready = tracer.wait_ready(TIMEOUT)?;
    for missing in [
        "OOM killer context unavailable",
        "reclaim history unavailable",
        "victim exits not followed",
    ] {
        assert!(!ready.contains(missing), "{ready}");
    }

    let mut log = KernelLog::open()?;
    let cgroup = TestCgroup::new("caps", 64 * MIB)?;
    let pid = oom_kill(&cgroup.dir, None, &HogOptions::default())?;
    let record = &record_for(&mut tracer, pid)?;
    let truth = truth(&mut log, pid);
    verify::victim_matches_log(record, &truth)?;
    oom_domain_matches(record, &truth, &cgroup)?;
    assert!(!record["candidates"].is_null(), "the candidate table");
    Ok(())
}

#[test]
fn without_cap_perfmon_it_says_which_capabilities_it_needs() -> Result<()> {
    let _serial = setup();
    let out = with_caps("+bpf")
        .args(["--oom-score-adj", "keep"])
        .stdin(Stdio::null())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("CAP_BPF and CAP_PERFMON") && stderr.contains("this process has CAP_BPF"),
        "{stderr}"
    );
    Ok(())
}
