//! `oomtrace check`: what this kernel offers, and the capture path a run
//! would use. It mounts nothing; it loads and attaches the fentry program
//! for an instant (no OOM kill is recorded) to learn whether the kernel
//! allows it.

use std::{fs, process::ExitCode};

use crate::{
    capture::{self, CapturePath, Facilities, FeatureError, Preference, btf},
    enrich::cgroup::{CgroupVersion, MemoryHierarchy},
    privileges::Privileges,
};

pub fn run() -> anyhow::Result<ExitCode> {
    let facilities = Facilities::probe();
    let mut lines: Vec<(&str, String)> = Vec::new();

    lines.push(("kernel", kernel_release()));
    let privileges = Privileges::current();
    let privileged = privileges.is_some_and(|p| p.can_trace());
    lines.push((
        "privileges",
        match privileges {
            Some(p) if p.can_trace() => format!("ok ({})", p.describe()),
            Some(p) => format!(
                "NOT ENOUGH: {}; run as root or with CAP_BPF and CAP_PERFMON",
                p.describe()
            ),
            None => "unknown (cannot read /proc/self/status)".to_string(),
        },
    ));
    lines.push((
        "BTF",
        match &facilities.btf {
            Ok(_) => format!("yes ({})", btf::VMLINUX_BTF),
            Err(e) => format!("no: {e}"),
        },
    ));
    lines.push((
        "tracefs",
        match &facilities.tracefs {
            Ok(dir) => format!("mounted at {}", dir.display()),
            Err(_) => "not mounted (oomtrace mounts it at /sys/kernel/tracing when the tracepoint path needs it)".to_string(),
        },
    ));
    lines.push((
        "mark_victim event",
        match &facilities.mark_victim_format {
            Some(Ok(format)) => {
                let fields: Vec<&str> = format
                    .fields
                    .iter()
                    .map(|f| f.name.as_str())
                    .filter(|n| !n.starts_with("common_"))
                    .collect();
                let kind = if format.field("comm").is_some() {
                    "extended"
                } else {
                    "pid-only"
                };
                format!("{kind} layout: {}", fields.join(", "))
            }
            Some(Err(e)) => format!("unreadable: {e}"),
            None => match facilities
                .btf
                .as_ref()
                .ok()
                .and_then(|t| t.trace_event_fields("mark_victim"))
            {
                Some(fields) => {
                    let kind = if fields.iter().any(|f| f == "comm") {
                        "extended"
                    } else {
                        "pid-only"
                    };
                    format!(
                        "{kind} layout: {} (from BTF; tracefs not mounted)",
                        fields.join(", ")
                    )
                }
                None => "unknown (tracefs not mounted, no BTF)".to_string(),
            },
        },
    ));
    lines.push((
        "tp_btf mark_victim",
        match &facilities.btf {
            Ok(types) if types.mark_victim_passes_task() => {
                "yes: the victim's task_struct is passed".to_string()
            }
            Ok(_) => "no: the tracepoint prototype has no task_struct".to_string(),
            Err(_) => "no (needs BTF)".to_string(),
        },
    ));
    lines.push(("kprobes", kprobes(&facilities)));
    let fentry = fentry(&facilities);
    lines.push((
        "fentry",
        match &fentry {
            Ok(()) => format!(
                "yes: {}() can be traced (the OOM killer's context as an argument)",
                capture::FENTRY_TARGET
            ),
            Err(why) => match why.detail().filter(|_| crate::verbose()) {
                Some(detail) => format!("no: {detail}"),
                None => format!("no: {why}"),
            },
        },
    ));
    lines.push((
        "OOM context",
        match (&facilities.btf, &fentry) {
            (Err(_), _) => "no (needs BTF)".to_string(),
            (Ok(_), Ok(())) => "from fentry on oom_kill_process()".to_string(),
            // The stack search runs its chunks through bpf_loop() (5.17+).
            (Ok(types), Err(_)) if types.has_function(capture::BPF_LOOP.function) => {
                "searched on the OOM task's stack (no fentry here)".to_string()
            }
            (Ok(_), Err(_)) => {
                "no: neither fentry nor bpf_loop() (5.17+); constraint, oom_memcg and \
                 oom_control will be null"
                    .to_string()
            }
        },
    ));
    lines.push(("stack search", stack_search(&facilities)));
    lines.push(("BPF OOM policy", bpf_oom_policy(&facilities)));
    lines.push(("memory cgroup", memory_cgroups()));

    let plan = facilities.plan(Preference::Auto);
    let verdict = match &plan {
        Ok(plan) => {
            let path = match (plan.path, &fentry) {
                (CapturePath::TpBtf, Ok(())) => CapturePath::Fentry,
                (path, _) => path,
            };
            let mut text = path.name().to_string();
            if plan.unresolved.is_empty() {
                text.push_str(" (every field available)");
            } else {
                text.push_str(&format!(
                    " (null on this kernel: {})",
                    plan.unresolved.join(", ")
                ));
            }
            text
        }
        Err(no_path) if facilities.tracefs.is_err() && privileged => format!(
            "none yet: {}; oomtrace would mount tracefs and try the tracepoint",
            no_path.reasons.join("; ")
        ),
        Err(no_path) => format!("NONE: {}", no_path.reasons.join("; ")),
    };
    lines.push((
        "candidate table",
        match &plan {
            Ok(plan) if plan.path == CapturePath::Tracepoint => {
                "read from /proc after the kill (the tracepoint path)".to_string()
            }
            Ok(plan) => match capture::candidate_walk(plan) {
                Ok(()) => "taken by the kernel side at the kill (up to 16 rows)".to_string(),
                Err(why) => format!("read from /proc after the kill: {why}"),
            },
            Err(_) => "unknown (no capture path)".to_string(),
        },
    ));
    lines.push(("capture path", verdict));

    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in &lines {
        println!("{key:<width$}  {value}");
    }
    let works = privileged && (plan.is_ok() || facilities.tracefs.is_err());
    if works {
        println!("\noomtrace can trace OOM kills on this kernel.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("\noomtrace cannot trace OOM kills here as things stand (see above).");
        Ok(ExitCode::FAILURE)
    }
}

fn kernel_release() -> String {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let machine = std::env::consts::ARCH;
    format!("{} ({machine})", release.trim())
}

fn kprobes(facilities: &Facilities) -> String {
    let unused = "not used by this version";
    if let Ok(dir) = &facilities.tracefs {
        return if dir.join("kprobe_events").exists() {
            format!("yes (kprobe_events in tracefs; {unused})")
        } else {
            "no (no kprobe_events in tracefs)".to_string()
        };
    }
    match &facilities.btf {
        Ok(types) if types.has_function("register_kprobe") => {
            format!("yes (register_kprobe in BTF; {unused})")
        }
        Ok(_) => "no (no register_kprobe in BTF: CONFIG_KPROBES is off)".to_string(),
        Err(_) => "unknown (no tracefs, no BTF)".to_string(),
    }
}

/// The OOM-control stack search (`--capture btf`, or `auto` where fentry
/// is refused) runs through bpf_loop(): probed in the BTF.
fn stack_search(facilities: &Facilities) -> String {
    let helper = capture::BPF_LOOP;
    match &facilities.btf {
        Err(_) => "no (needs BTF)".to_string(),
        Ok(types) if types.has_function(helper.function) => format!(
            "yes ({}() present; used by --capture btf, or where fentry is refused)",
            helper.function
        ),
        Ok(_) => format!(
            "no: {}() ({}+) is not in this kernel: --capture btf gets no OOM context \
             (constraint, oom_memcg and oom_control null)",
            helper.function, helper.since
        ),
    }
}

/// The BPF OOM policy (struct_ops `bpf_oom_ops` with the kfunc
/// `bpf_oom_kill_process()`, in review upstream since 2025) kills through
/// oom_kill_process() like the kernel's own OOM killer: where a kernel has
/// it, its kills are traced on every path, but the record does not yet say
/// which policy chose the victim.
fn bpf_oom_policy(facilities: &Facilities) -> String {
    let Ok(types) = &facilities.btf else {
        return "unknown (needs BTF)".to_string();
    };
    let ops = types.has_struct(BPF_OOM_OPS);
    let kfunc = types.has_function(BPF_OOM_KILL);
    match (ops, kfunc) {
        (false, false) => {
            format!("absent (no struct {BPF_OOM_OPS}, no {BPF_OOM_KILL}() kfunc in the kernel BTF)")
        }
        _ => format!(
            "present (struct {BPF_OOM_OPS}: {}, {BPF_OOM_KILL}(): {}); its kills go through \
             {}() and are traced like the kernel's own, not yet marked as a policy's",
            yes_no(ops),
            yes_no(kfunc),
            capture::FENTRY_TARGET
        ),
    }
}

const BPF_OOM_OPS: &str = "bpf_oom_ops";
const BPF_OOM_KILL: &str = "bpf_oom_kill_process";

fn yes_no(present: bool) -> &'static str {
    if present { "yes" } else { "no" }
}

fn memory_cgroups() -> String {
    match MemoryHierarchy::find() {
        Some(h) => {
            let version = match h.version {
                CgroupVersion::V1 => "v1",
                CgroupVersion::V2 => "v2",
            };
            format!("{version} at {}", h.mount.display())
        }
        None => "no memory controller mounted (memcg ids only, no paths)".to_string(),
    }
}

/// Whether a run would get fentry on the OOM killer (it loads and attaches
/// the program to find out: BTF alone does not say whether the kernel
/// allows it, nor loading whether it can attach it).
fn fentry(facilities: &Facilities) -> Result<(), FeatureError> {
    let unavailable = |why: String| FeatureError::Unavailable(why);
    let types = facilities
        .btf
        .as_ref()
        .map_err(|_| unavailable("needs BTF".to_string()))?;
    if !types.has_function(capture::FENTRY_TARGET) {
        return Err(unavailable(format!(
            "{}() is not in the kernel BTF",
            capture::FENTRY_TARGET
        )));
    }
    let btf = facilities
        .loader_btf()
        .ok_or_else(|| unavailable("aya could not parse the kernel BTF".to_string()))?;
    capture::probe_fentry(btf)
}
