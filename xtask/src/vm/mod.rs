//! `cargo xtask vm-test`: boots each kernel of tests/vm/kernels under qemu
//! with an initramfs holding static oomtrace, the test hog and the guest
//! driver, and judges what comes back (records + the guest's kernel log)
//! with the host tests' own checks (`oomtrace_tests::verify::vm`).

mod initramfs; // the guest's root: busybox, the static binaries, /init
mod kernels; // the matrix, and kernel images from Debian's archive
mod qemu; // one boot, and the evidence lines it brings back

use std::{fmt::Write as _, fs};

use anyhow::{Context as _, Result, bail};
use oomtrace_tests::verify::vm::{Offers, judge, judge_check};
use serde_json::Value;

use crate::{setup, sh::workspace_root};

const MUSL: &str = "x86_64-unknown-linux-musl";
/// Capture paths each VM runs every scenario with (the global OOM also
/// with `auto`).
const CAPTURES: [&str; 3] = ["fentry", "btf", "tracepoint"];

/// A kernel of the matrix.
struct Kernel {
    name: String,
    source: String,
}

pub fn vm_test(only: Option<String>) -> Result<()> {
    let rejudge = std::env::var_os("OOMTRACE_VM_REJUDGE").is_some();
    if !crate::sh::is_root() && !rejudge {
        bail!(
            "the VM test installs packages and downloads kernels with apt: run `sudo -E cargo xtask vm-test`"
        );
    }
    let work = workspace_root().join("target/vm");
    let initrd = if rejudge {
        work.join("initrd.gz")
    } else {
        setup::ensure()?;
        setup::install_missing(&["qemu-system-x86", "busybox-static", "cpio"])
            .context("installing qemu and busybox for the VMs")?;
        // The guests run the dist artifact itself (built with the hog and guest).
        crate::dist::ensure_tools()?;
        crate::dist::static_binary()?;
        fs::create_dir_all(&work)?;
        initramfs::build(&work)?
    };
    let mut kernels = kernels::read_matrix(&workspace_root().join("tests/vm/kernels"))?;
    if let Some(only) = &only {
        kernels.retain(|k| &k.name == only);
        if kernels.is_empty() {
            bail!("no kernel named {only} in tests/vm/kernels");
        }
    }

    let mut table = String::from("| kernel | scenario |");
    for capture in CAPTURES {
        write!(table, " --capture {capture} |")?;
    }
    table.push_str("\n|---|---|");
    table.push_str(&"---|".repeat(CAPTURES.len()));
    table.push('\n');
    let mut failures = Vec::new();
    for kernel in &kernels {
        // OOMTRACE_VM_REJUDGE=1: judge the last run's evidence again
        // (after a change to the judge), without booting.
        let (results, took) = if rejudge {
            (qemu::evidence(kernel, &work)?, std::time::Duration::ZERO)
        } else {
            let image = kernels::image(kernel, &work)?;
            qemu::boot(kernel, &image, &initrd, &work)?
        };
        report(kernel, &results, took, &mut table, &mut failures);
    }
    println!("{table}");
    fs::write(work.join("report.md"), &table)?;
    if !failures.is_empty() {
        for failure in &failures {
            eprintln!("xtask: FAIL {failure}");
        }
        bail!("{} VM scenario(s) failed", failures.len());
    }
    eprintln!("xtask: every VM scenario passed");
    Ok(())
}

/// Adds the kernel's rows to the table, and its failures.
fn report(
    kernel: &Kernel,
    results: &[Value],
    took: std::time::Duration,
    table: &mut String,
    failures: &mut Vec<String>,
) {
    let check = results.iter().find(|r| r["scenario"] == "check");
    let release = check
        .and_then(|r| r["kernel"].as_str())
        .unwrap_or("did not boot");
    let label = format!("{} ({release})", kernel.name);
    // `oomtrace check` in the guest, against the BTF's names; what it says
    // the kernel offers is what the runs are judged against.
    let offers = match check.map(judge_check) {
        Some(Ok(offers)) => {
            let _ = writeln!(
                table,
                "| {label} | check ({:.0} s in all) | pass (auto: {}; stack search: {}; BPF OOM policy: {}) |{}",
                took.as_secs_f64(),
                offers.auto_path,
                if offers.stack_search { "yes" } else { "no" },
                if offers.bpf_oom_policy {
                    "present"
                } else {
                    "absent"
                },
                " |".repeat(CAPTURES.len() - 1)
            );
            offers
        }
        failed => {
            let why = match failed {
                Some(Err(e)) => format!("{e:#}").replace('\n', " "),
                _ => "no check line came back from the VM".to_string(),
            };
            failures.push(format!("{label} check: {why}"));
            let _ = writeln!(
                table,
                "| {label} | check ({:.0} s in all) | FAIL ({}) |{}",
                took.as_secs_f64(),
                why.chars().take(60).collect::<String>(),
                " |".repeat(CAPTURES.len() - 1)
            );
            // Judge the runs as on a kernel that offers everything.
            Offers {
                stack_search: true,
                auto_path: "fentry".to_string(),
                bpf_oom_policy: false,
            }
        }
    };
    for scenario in ["leaf", "parent", "oom_group", "global"] {
        let _ = write!(table, "| {label} | {scenario} |");
        for capture in CAPTURES {
            let cell = cell(
                results,
                scenario,
                capture,
                &offers,
                &format!("{label} {scenario} --capture {capture}"),
                failures,
            );
            let _ = write!(table, " {cell} |");
        }
        table.push('\n');
    }
    let no_btf = cell(
        results,
        "no_btf",
        "auto",
        &offers,
        &format!("{label} leaf without BTF --capture auto"),
        failures,
    );
    let _ = writeln!(
        table,
        "| {label} | leaf, no BTF (auto) | {no_btf} |{}",
        " |".repeat(CAPTURES.len() - 1)
    );
    let cell = cell(
        results,
        "global",
        "auto",
        &offers,
        &format!("{label} global --capture auto"),
        failures,
    );
    let _ = writeln!(
        table,
        "| {label} | global (auto) | {cell} |{}",
        " |".repeat(CAPTURES.len() - 1)
    );
}

fn cell(
    results: &[Value],
    scenario: &str,
    capture: &str,
    offers: &Offers,
    what: &str,
    failures: &mut Vec<String>,
) -> String {
    let Some(evidence) = results
        .iter()
        .find(|r| r["scenario"] == scenario && r["capture"] == capture)
    else {
        failures.push(format!("{what}: no result came back from the VM"));
        return "FAIL (no result)".to_string();
    };
    match judge(evidence, offers) {
        Ok(path) => format!("pass ({path})"),
        Err(why) => {
            let why = format!("{why:#}").replace('\n', " ");
            failures.push(format!("{what}: {why}"));
            format!("FAIL ({})", why.chars().take(60).collect::<String>())
        }
    }
}
