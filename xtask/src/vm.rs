//! `cargo xtask vm-test`: boots each kernel of tests/vm/kernels under qemu
//! with an initramfs holding static oomtrace, the test hog and the guest
//! driver, and judges what comes back (records + the guest's kernel log)
//! with the host tests' own checks.

use std::{
    fmt::Write as _,
    fs,
    panic::{self, AssertUnwindSafe},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use oomtrace_tests::{
    cgroup::Version,
    kmsg::KilledProcess,
    verify::{self, DomainFiles, Truth},
};
use serde_json::Value;

use crate::{
    setup,
    sh::{Cmd, workspace_root},
};

const MUSL: &str = "x86_64-unknown-linux-musl";
/// Capture paths each VM runs every memcg scenario with.
const CAPTURES: [&str; 3] = ["fentry", "btf", "tracepoint"];
/// One VM's whole run, boot to power-off, under software emulation.
const VM_TIMEOUT: Duration = Duration::from_secs(600);

/// A kernel of the matrix.
struct Kernel {
    name: String,
    source: String,
}

pub fn vm_test(only: Option<String>) -> Result<()> {
    if !crate::sh::is_root() {
        bail!(
            "the VM test installs packages and downloads kernels with apt: run `sudo -E cargo xtask vm-test`"
        );
    }
    setup::ensure()?;
    setup::install_missing(&["qemu-system-x86", "busybox-static", "cpio"])
        .context("installing qemu and busybox for the VMs")?;
    Cmd::new("rustup")
        .args(["target", "add", MUSL, "--toolchain", "stable"])
        .run()?;
    crate::build_bins(&["--release", "--target", MUSL])?;

    let work = workspace_root().join("target/vm");
    fs::create_dir_all(&work)?;
    let initrd = build_initramfs(&work)?;
    let mut kernels = read_matrix(&workspace_root().join("tests/vm/kernels"))?;
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
        let image = kernel_image(kernel, &work)?;
        let results = boot(kernel, &image, &initrd, &work)?;
        // Failed checks go into the table, not out as panic messages; any
        // other panic keeps the usual report.
        let hook = panic::take_hook();
        panic::set_hook(Box::new(|_| {}));
        report(kernel, &results, &mut table, &mut failures);
        panic::set_hook(hook);
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

/// `name source` per line; `#` starts a comment.
fn read_matrix(path: &Path) -> Result<Vec<Kernel>> {
    let text = fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut fields = l.split_whitespace();
            match (fields.next(), fields.next()) {
                (Some(name), Some(source)) => Ok(Kernel {
                    name: name.to_string(),
                    source: source.to_string(),
                }),
                _ => bail!("{}: `{l}` is not `name source`", path.display()),
            }
        })
        .collect()
}

/// The kernel image: a path as given, or the newest Debian package whose
/// name matches `debian:REGEX`, downloaded once into target/vm/cache.
fn kernel_image(kernel: &Kernel, work: &Path) -> Result<PathBuf> {
    let Some(pattern) = kernel.source.strip_prefix("debian:") else {
        let path = workspace_root().join(&kernel.source);
        if !path.is_file() {
            bail!("kernel {}: {} does not exist", kernel.name, path.display());
        }
        return Ok(path);
    };
    let search = || {
        Cmd::new("apt-cache")
            .args(["search", "--names-only", pattern])
            .stdout()
    };
    let mut found = search()?;
    if found.trim().is_empty() {
        Cmd::new("apt-get").args(["update", "-qq"]).run()?;
        found = search()?;
    }
    let mut packages: Vec<&str> = found.lines().filter_map(|l| l.split(' ').next()).collect();
    packages.sort_by_key(|p| version_key(p));
    let package = packages.last().with_context(|| {
        format!(
            "kernel {}: no Debian package matches {pattern}",
            kernel.name
        )
    })?;
    let dir = work.join("cache").join(package);
    let image = dir.join("vmlinuz");
    if image.is_file() {
        return Ok(image);
    }
    fs::create_dir_all(&dir)?;
    eprintln!("xtask: downloading {package}");
    // As root into a directory _apt cannot write: no sandbox user.
    let status = Command::new("apt-get")
        .args(["-o", "APT::Sandbox::User=root", "download", package])
        .current_dir(&dir)
        .status()
        .context("apt-get download")?;
    if !status.success() {
        bail!("apt-get download {package} failed ({status})");
    }
    let deb = fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb")?;
    // Only the image: the modules are not needed (BPF, memcg, tracefs and
    // the serial console are built in).
    // Into a temporary file first: a failed extraction must not leave an
    // empty image that the next run takes for a cached one.
    let partial = dir.join("vmlinuz.partial");
    let script = format!(
        "dpkg-deb --fsys-tarfile '{}' | tar -xO --wildcards './boot/vmlinuz-*' > '{}'",
        deb.display(),
        partial.display()
    );
    pipeline(&script)?;
    fs::rename(&partial, &image)?;
    fs::remove_file(&deb)?;
    Ok(image)
}

/// Orders package names by their numbers (6.1.0-9 before 6.1.0-56).
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin OOMTRACE_BIN=/bin/oomtrace
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tracefs tracefs /sys/kernel/tracing
echo +memory > /sys/fs/cgroup/cgroup.subtree_control
hostname oomtrace-vm
echo "oomtrace-vm: $(uname -r)"
oomtrace check > /tmp/check.txt 2>&1
echo "{\"scenario\":\"check\",\"kernel\":\"$(uname -r)\",\"exit\":$?}" >> /dev/ttyS1
cat /tmp/check.txt
oomtrace-vm-guest /dev/ttyS1 CAPTURES
echo "oomtrace-vm: done"
poweroff -f
"#;

fn build_initramfs(work: &Path) -> Result<PathBuf> {
    let root = work.join("initramfs");
    if root.exists() {
        fs::remove_dir_all(&root)?;
    }
    for dir in ["bin", "proc", "sys", "dev", "tmp"] {
        fs::create_dir_all(root.join(dir))?;
    }
    fs::copy("/bin/busybox", root.join("bin/busybox")).context("busybox-static")?;
    let release = workspace_root().join("target").join(MUSL).join("release");
    for bin in ["oomtrace", "oomtrace-test-hog", "oomtrace-vm-guest"] {
        fs::copy(release.join(bin), root.join("bin").join(bin))
            .with_context(|| format!("copy {bin}"))?;
    }
    // The guest driver provokes a global OOM only where this exists.
    fs::write(root.join("oomtrace-vm"), "")?;
    let init = root.join("init");
    fs::write(&init, INIT.replace("CAPTURES", &CAPTURES.join(" ")))?;
    Cmd::new("chmod").args(["+x"]).arg(&init).run()?;
    let initrd = work.join("initrd.gz");
    let script = format!(
        "cd '{}' && find . | cpio -o -H newc --quiet | gzip -1 > '{}'",
        root.display(),
        initrd.display()
    );
    pipeline(&script)?;
    Ok(initrd)
}

/// A shell pipeline that fails when any of its commands does.
fn pipeline(script: &str) -> Result<()> {
    Cmd::new("bash")
        .args(["-o", "pipefail", "-c", script])
        .run()
}

/// Boots `image` and returns the evidence lines the guest wrote.
fn boot(kernel: &Kernel, image: &Path, initrd: &Path, work: &Path) -> Result<Vec<Value>> {
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
    // KVM is not usable on these machines: software emulation.
    let status = Command::new("timeout")
        .arg(VM_TIMEOUT.as_secs().to_string())
        .arg("qemu-system-x86_64")
        // Two vCPUs on one host thread: multi-threaded TCG let a guest
        // CPU run code the other was patching (an int3 oops in 6.12).
        .args([
            "-accel",
            "tcg,thread=single",
            "-cpu",
            "max",
            "-smp",
            "2",
            "-m",
            "512",
        ])
        .args(["-display", "none", "-monitor", "none", "-no-reboot"])
        .arg("-kernel")
        .arg(image)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 quiet panic=-1"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-serial")
        .arg(format!("file:{}", results.display()))
        .status()
        .context("run qemu-system-x86_64")?;
    eprintln!(
        "xtask: {} ran for {:.0} s ({status})",
        kernel.name,
        started.elapsed().as_secs_f64()
    );
    let text = fs::read_to_string(&results)?;
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l.trim_matches('\r')).ok())
        .collect();
    let console_text = fs::read_to_string(&console).unwrap_or_default();
    if console_text.contains("Oops") || console_text.contains("Kernel panic") {
        eprintln!(
            "xtask: the {} guest kernel crashed; see {}",
            kernel.name,
            console.display()
        );
    }
    if !status.success() || !text.contains("\"global\"") {
        eprintln!(
            "xtask: {} did not finish; its console:\n{}",
            kernel.name,
            fs::read_to_string(&console).unwrap_or_default()
        );
    }
    Ok(lines)
}

/// Adds the kernel's rows to the table, and its failures.
fn report(kernel: &Kernel, results: &[Value], table: &mut String, failures: &mut Vec<String>) {
    let release = results
        .iter()
        .find(|r| r["scenario"] == "check")
        .and_then(|r| r["kernel"].as_str())
        .unwrap_or("did not boot");
    let label = format!("{} ({release})", kernel.name);
    for scenario in ["leaf", "parent", "oom_group"] {
        let _ = write!(table, "| {label} | {scenario} |");
        for capture in CAPTURES {
            let cell = cell(
                results,
                scenario,
                capture,
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
    match judge(evidence) {
        Ok(path) => format!("pass ({path})"),
        Err(why) => {
            failures.push(format!("{what}: {why}"));
            format!("FAIL ({})", why.chars().take(60).collect::<String>())
        }
    }
}

/// The host tests' checks on one run's evidence; the capture path used.
fn judge(evidence: &Value) -> Result<String, String> {
    if let Some(error) = evidence["error"].as_str() {
        return Err(error.to_string());
    }
    let victims: Vec<u32> = evidence["victims"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|p| p.as_u64())
                .map(|p| p as u32)
                .collect()
        })
        .unwrap_or_default();
    let records: Vec<&Value> = evidence["records"]
        .as_array()
        .map(|r| r.iter().collect())
        .unwrap_or_default();
    let kills: Vec<&Value> = records
        .iter()
        .copied()
        .filter(|r| r["type"] == "oom_kill")
        .collect();
    let lines: Vec<String> = evidence["kmsg"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let domain = DomainFiles::from_json(&evidence["domain"]);
    let ready = evidence["ready"].as_str().unwrap_or("");

    if records.iter().any(|r| r["type"] == "lost") {
        return Err("records were lost".to_string());
    }
    if evidence["tracer_exit"]["success"] != true {
        return Err(format!(
            "oomtrace did not end cleanly: {}",
            evidence["tracer_exit"]["stderr"]
        ));
    }
    if evidence["tracer_oom_score_adj"] != -1000 {
        return Err(format!(
            "oomtrace's oom_score_adj is {}, not -1000",
            evidence["tracer_oom_score_adj"]
        ));
    }
    // The kernel counts (and logs) every __oom_kill_process() call; with
    // memory.oom.group it kills the chosen victim a second time as a group
    // member (mark_victim fires once per task). One record per task that
    // died; /proc/vmstat agrees with the `Killed process` lines.
    let killed: Vec<u32> = lines
        .iter()
        .filter_map(|l| KilledProcess::parse(l))
        .map(|k| k.pid)
        .collect();
    let mut distinct = killed.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let mut expected = victims.clone();
    expected.sort_unstable();
    let vmstat = evidence["vmstat_delta"].as_u64().unwrap_or(0);
    if kills.len() != victims.len() || distinct != expected || vmstat != killed.len() as u64 {
        return Err(format!(
            "{} oom_kill records for {} victims started; the log killed {killed:?}, \
             /proc/vmstat counted {vmstat}",
            kills.len(),
            victims.len()
        ));
    }
    let path = kills
        .first()
        .and_then(|r| r["capture"].as_str())
        .unwrap_or("?")
        .to_string();
    let no_btf = evidence["scenario"] == "no_btf";
    if no_btf {
        let check = evidence["check"].as_str().unwrap_or("");
        let says = |key: &str, value: &str| {
            check.lines().any(|l| {
                l.strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with(value))
            })
        };
        if !(says("BTF", "no") && says("capture path", "tracepoint")) || path != "tracepoint" {
            return Err(format!("without BTF: ran via {path}; check said:\n{check}"));
        }
    }
    let expected = match evidence["capture"].as_str() {
        Some("btf") => Some("tp_btf"),
        Some("tracepoint") => Some("tracepoint"),
        Some("fentry") => Some("fentry"),
        _ => None,
    };
    if expected.is_some_and(|e| e != path) {
        return Err(format!("asked for {}, got {path}", evidence["capture"]));
    }
    // The memcg's oom_kill counter as the nth record's kill left it: the
    // file counts every kill line, the chosen victim's second one last.
    let at_kill = |after: u64, nth: usize| after - killed.len() as u64 + nth as u64 + 1;
    if !ready.contains(&format!("via {path}")) {
        return Err(format!("records say {path}, the ready line: {ready}"));
    }
    // Every kernel of the matrix is 5.17+ with BTF: both BTF paths must
    // bring the OOM killer's context (whatever the ready line says).
    let has_context = path != "tracepoint";

    // Kills in the order the kernel made them: the chosen one, then the
    // rest of its memory.oom.group.
    let mut ordered = kills.clone();
    ordered.sort_by_key(|r| r["boot_ns"].as_u64());
    let chosen = victims[0];
    for (nth, record) in ordered.iter().enumerate() {
        let pid = record["victim"]["pid"].as_u64().unwrap_or(0) as u32;
        if !victims.contains(&pid) {
            return Err(format!("a record for {pid}, which the test did not start"));
        }
        let truth = if pid == chosen {
            Truth::of(&lines, pid)?
        } else {
            Truth::of_member(&lines, pid, chosen)?
        };
        let checked = panic::catch_unwind(AssertUnwindSafe(|| {
            // Figures the kernel could not give oomtrace, or that moved
            // after the tracepoint, are checked here; the rest as on the host.
            let mut known = (*record).clone();
            if pid != chosen {
                // A member wakes to its SIGKILL before the log's line is
                // printed and, before 6.2, flushes its cached RSS updates
                // on the way out: the line may show up to 64 pages more.
                for (kind, kb) in [
                    ("anon", truth.killed.anon_rss_kb),
                    ("file", truth.killed.file_rss_kb),
                    ("shmem", truth.killed.shmem_rss_kb),
                ] {
                    let key = format!("rss_{kind}_bytes");
                    let read = record["victim"][&key].as_u64().unwrap_or(u64::MAX);
                    let logged = kb * 1024;
                    assert!(
                        read <= logged && logged - read <= verify::SPLIT_RSS_EVENTS * 4096,
                        "{key} {read} vs the log's {logged}"
                    );
                    known["victim"][&key] = logged.into();
                }
            }
            // The event names no cgroup unless the victim is the trigger,
            // and without BTF no cgroup can be read at all.
            if no_btf || (path == "tracepoint" && pid != chosen) {
                assert!(record["victim"]["memcg"].is_null(), "an unknowable memcg");
                known["victim"]["memcg"]["path"] = truth.context.task_memcg.clone().into();
            }
            verify::assert_victim_matches_log(&known, &truth);
            if path == "tp_btf" && pid != chosen {
                // The stack search looks for the chosen victim's context.
                assert!(record["oom_control"].is_null(), "member's context");
                return;
            }
            if !has_context {
                assert!(record["constraint"].is_null(), "constraint without context");
                return;
            }
            match &domain {
                // The memcg's oom_kill counter had counted this kill and
                // those before it, not the group members killed after.
                Some(files) if pid == chosen => {
                    let mut files = files.clone();
                    files.oom_kills = at_kill(files.oom_kills, nth);
                    verify::assert_oom_domain_matches(record, &truth, &files);
                }
                Some(files) => {
                    verify::assert_oom_context_matches(record, &truth);
                    assert_eq!(record["oom_memcg"]["path"], files.path, "oom_memcg");
                    assert_eq!(record["oom_memcg"]["id"], files.id, "oom_memcg id");
                    assert_eq!(
                        record["oom_memcg"]["oom_kills"],
                        at_kill(files.oom_kills, nth),
                        "oom_kill counter at this member's kill"
                    );
                }
                None => {
                    verify::assert_oom_context_matches(record, &truth);
                    assert!(record["oom_memcg"].is_null(), "a global OOM has no memcg");
                }
            }
        }));
        if let Err(panic) = checked {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            return Err(format!("victim {pid}: {}", message.replace('\n', " ")));
        }
    }
    if path == "fentry" {
        // One incident: the same id, the right count, the chosen one first.
        for (nth, record) in ordered.iter().enumerate() {
            let incident = &record["incident"];
            let pid = &record["victim"]["pid"];
            if incident["id"] != ordered[0]["incident"]["id"]
                || incident["victims"] != victims.len()
                || incident["seq"] != nth + 1
                || incident["chosen_pid"] != chosen
                || incident["group_member"] != (nth > 0)
            {
                return Err(format!("victim {pid}: incident {incident}"));
            }
        }
    }
    if let (Some(files), Some(events)) = (&domain, evidence["memory_events"].as_str()) {
        let counter = |name: &str| {
            events.lines().find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
        };
        if files.version == Version::V2 && counter("oom_kill") != Some(killed.len() as u64) {
            return Err(format!("memory.events says {events:?}"));
        }
        if victims.len() > 1 && counter("oom_group_kill") != Some(1) {
            return Err(format!("memory.events has no group kill: {events:?}"));
        }
    }
    Ok(path)
}
