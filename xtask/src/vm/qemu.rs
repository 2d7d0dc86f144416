//! One VM run under qemu (software emulation), and the evidence lines the
//! guest wrote to its second serial port.

use std::{
    fs,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use serde_json::Value;

use super::Kernel;

/// Boots `image` and returns the evidence lines the guest wrote, and how
/// long the VM ran.
pub fn boot(
    kernel: &Kernel,
    image: &Path,
    initrd: &Path,
    work: &Path,
) -> Result<(Vec<Value>, Duration)> {
    let console = work.join(format!("console-{}.log", kernel.name));
    let results = work.join(format!("results-{}.jsonl", kernel.name));
    fs::write(&results, "")?;
    eprintln!(
        "xtask: booting {} ({}); console in {}",
        kernel.name,
        image.display(),
        console.display()
    );
    let started = Instant::now();
    let arch = kernel.arch;
    let status = Command::new("timeout")
        .arg(kernel.arch.vm_timeout().as_secs().to_string())
        .arg(arch.qemu())
        .args(arch.machine())
        .args(["-display", "none", "-monitor", "none", "-no-reboot"])
        .arg("-kernel")
        .arg(image)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", &command_line(kernel)])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .args(arch.evidence_port(&results))
        .status()
        .with_context(|| format!("run {}", arch.qemu()))?;
    let took = started.elapsed();
    eprintln!(
        "xtask: {} ran for {:.0} s ({status})",
        kernel.name,
        took.as_secs_f64()
    );
    let lines = evidence(kernel, work)?;
    let console_text = fs::read_to_string(&console).unwrap_or_default();
    if console_text.contains("Oops") || console_text.contains("Kernel panic") {
        eprintln!(
            "xtask: the {} guest kernel crashed; see {}",
            kernel.name,
            console.display()
        );
    }
    // The guest's last run: the global OOM with `--capture auto`.
    let finished = lines
        .iter()
        .any(|l| l["scenario"] == "global" && l["capture"] == "auto");
    if !status.success() || !finished {
        eprintln!(
            "xtask: {} did not finish; its console:\n{}",
            kernel.name,
            fs::read_to_string(&console).unwrap_or_default()
        );
    }
    Ok((lines, took))
}

/// The guest kernel's command line: its console, and for the latency
/// VM the number of kills its driver makes beside libbpf-tools oomkill
/// (read from /proc/cmdline; the kernel hands the unknown parameter to
/// /init's environment, where nothing reads it).
fn command_line(kernel: &Kernel) -> String {
    let (console, _) = kernel.arch.ttys();
    let mut line = format!("console={console} quiet panic=-1");
    if kernel.name == super::LATENCY_KERNEL {
        line.push_str(&format!(" oomtrace_vm_kills={}", super::LATENCY_KILLS));
    }
    line
}

/// The evidence lines the kernel's last run left in `work`.
pub fn evidence(kernel: &Kernel, work: &Path) -> Result<Vec<Value>> {
    let path = work.join(format!("results-{}.jsonl", kernel.name));
    let text = fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l.trim_matches('\r')).ok())
        .collect())
}
