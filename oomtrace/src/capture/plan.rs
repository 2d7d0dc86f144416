//! What the running kernel offers, and the capture path and layout a run
//! uses on it.

use std::{io, path::Path, path::PathBuf};

use oomtrace_common::{KernelLayout, MAX_CPUS, OFFSET_UNKNOWN};

use super::{
    CapturePath, Preference,
    btf::{self, BtfError, KernelTypes},
    features::{FEATURES, FENTRY_TARGET},
    tracefs::{self, EventFormat},
};

/// What the running kernel offers for tracing OOM kills.
pub struct Facilities {
    /// The kernel's types, for struct offsets.
    pub btf: Result<KernelTypes, BtfError>,
    /// The same BTF parsed by aya, which needs it to load tp_btf programs.
    loader_btf: Option<aya::Btf>,
    pub tracefs: Result<PathBuf, io::Error>,
    pub mark_victim_format: Option<Result<EventFormat, io::Error>>,
}

impl Facilities {
    /// Looks at the kernel; mounts nothing.
    pub fn probe() -> Facilities {
        let (btf, loader_btf) = parse_btf_twice();
        let tracefs = tracefs::find().ok_or_else(|| io::Error::from(io::ErrorKind::NotFound));
        let mut facilities = Facilities {
            btf,
            loader_btf,
            tracefs,
            mark_victim_format: None,
        };
        facilities.read_mark_victim_format();
        facilities
    }

    /// Mounts tracefs if it is not mounted (needs CAP_SYS_ADMIN), for the
    /// tracepoint path, keeping the BTF already parsed.
    pub fn mount_tracefs(&mut self) {
        if self.tracefs.is_err() {
            self.tracefs = tracefs::find_or_mount();
            self.read_mark_victim_format();
        }
    }

    fn read_mark_victim_format(&mut self) {
        self.mark_victim_format = self
            .tracefs
            .as_ref()
            .ok()
            .map(|dir| tracefs::read_format(dir, "oom", "mark_victim"));
    }

    /// The kernel BTF as the loader needs it.
    pub fn loader_btf(&self) -> Option<&aya::Btf> {
        self.loader_btf.as_ref()
    }

    /// Picks the richest capture path allowed by `preference` and
    /// resolves its layout.
    pub fn plan(&self, preference: Preference) -> Result<Plan, NoCapturePath> {
        let mut reasons = Vec::new();
        let mut layout = match &self.btf {
            Ok(types) => types.layout(),
            Err(e) => {
                reasons.push(format!("no kernel BTF ({e})"));
                KernelLayout::UNKNOWN
            }
        };
        if let Ok(types) = &self.btf {
            failcnt_from_events(types, memory_on_v2(), &mut layout);
        }
        layout.page_shift = page_shift();
        layout.nr_cpus = possible_cpus();
        if layout.nr_cpus == 0 || layout.nr_cpus > MAX_CPUS {
            // Exact RSS sums need every CPU's delta; without them, report
            // only what the kernel's own counters say.
            layout.bpf_array_pptrs = OFFSET_UNKNOWN;
        }

        if preference == Preference::Tracepoint {
            reasons.push("tp_btf: not used (--capture tracepoint)".to_string());
        } else if let Ok(types) = &self.btf {
            let missing = btf::missing_for_task_reads(&layout);
            if !types.mark_victim_passes_task() {
                reasons.push(
                    "tp_btf: this kernel's mark_victim tracepoint does not pass the victim's task"
                        .to_string(),
                );
            } else if layout.task_pid == OFFSET_UNKNOWN {
                reasons.push("tp_btf: task_struct.pid is not in the kernel BTF".to_string());
            } else {
                let fentry = match preference {
                    Preference::Fentry => Fentry::Require,
                    Preference::Auto if types.has_function(FENTRY_TARGET) => Fentry::Try,
                    _ => Fentry::Off,
                };
                return Ok(Plan {
                    path: CapturePath::TpBtf,
                    layout,
                    unresolved: missing,
                    fentry,
                    absent_helpers: absent_helpers(types),
                });
            }
        }

        if matches!(preference, Preference::Btf | Preference::Fentry) {
            return Err(NoCapturePath { reasons });
        }
        match &self.mark_victim_format {
            Some(Ok(format)) => match tracepoint_layout(format, &mut layout) {
                Ok(()) => {
                    let unresolved = btf::missing_for_task_reads(&layout);
                    Ok(Plan {
                        path: CapturePath::Tracepoint,
                        layout,
                        unresolved,
                        fentry: Fentry::Off,
                        absent_helpers: Vec::new(),
                    })
                }
                Err(reason) => {
                    reasons.push(reason);
                    Err(NoCapturePath { reasons })
                }
            },
            Some(Err(e)) => {
                reasons.push(format!(
                    "tracepoint: cannot read oom/mark_victim/format ({e})"
                ));
                Err(NoCapturePath { reasons })
            }
            None => {
                reasons.push(match &self.tracefs {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        format!("tracepoint: tracefs is not mounted and mounting it failed ({e})")
                    }
                    _ => "tracepoint: tracefs is not mounted".to_string(),
                });
                Err(NoCapturePath { reasons })
            }
        }
    }
}

/// Newer kernels (7.x) count a page counter's failures only on cgroup v1
/// (`page_counter.track_failcnt`, false on the default hierarchy); on v2
/// their OOM report prints the memcg's `memory.events` `max` count as its
/// failcnt instead, so the record's failcnt is read from there too.
fn failcnt_from_events(types: &KernelTypes, memory_on_v2: bool, layout: &mut KernelLayout) {
    if !memory_on_v2 || types.offset("page_counter", &["track_failcnt"]).is_none() {
        return;
    }
    let max = types
        .enum_value("MEMCG_MAX")
        .and_then(|index| types.offset("mem_cgroup", &[&format!("memory_events[{index}]")]));
    layout.memcg_failcnt = max.unwrap_or(OFFSET_UNKNOWN);
}

/// Whether the memory controller is on cgroup v2 (the default hierarchy):
/// a cgroup2 mount whose root lists `memory` in cgroup.controllers.
fn memory_on_v2() -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts.lines().any(|line| {
        let mut fields = line.split_whitespace();
        let (Some(_), Some(dir), Some("cgroup2")) = (fields.next(), fields.next(), fields.next())
        else {
            return false;
        };
        std::fs::read_to_string(Path::new(dir).join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|name| name == "memory"))
    })
}

/// Reads the kernel's BTF once and parses it for us and for aya at the
/// same time: each parse takes a good part of start-up on its own.
fn parse_btf_twice() -> (Result<KernelTypes, BtfError>, Option<aya::Btf>) {
    let path = Path::new(btf::VMLINUX_BTF);
    let data = match btf::read(path) {
        Ok(data) => data,
        Err(e) => return (Err(e), None),
    };
    std::thread::scope(|scope| {
        let loader = scope.spawn(|| aya::Btf::parse(&data, aya::Endianness::default()).ok());
        let types = KernelTypes::from_bytes(data.clone(), path);
        (types, loader.join().ok().flatten())
    })
}

/// Why no capture path works on this kernel, one reason per path.
#[derive(Debug)]
pub struct NoCapturePath {
    pub reasons: Vec<String>,
}

/// The chosen capture path and the layout handed to the kernel side.
#[derive(Debug, Clone)]
pub struct Plan {
    pub path: CapturePath,
    pub layout: KernelLayout,
    /// Kernel struct members not found: their record fields will be null.
    pub unresolved: Vec<&'static str>,
    /// Whether to read the OOM killer's context with fentry (tp_btf only).
    pub fentry: Fentry,
    /// BPF helpers some feature calls that the kernel's BTF lacks.
    pub absent_helpers: Vec<&'static str>,
}

/// The helpers of [`FEATURES`] the kernel does not have, probed in its
/// BTF (a helper is a kernel function of its name), not by version.
fn absent_helpers(types: &KernelTypes) -> Vec<&'static str> {
    let mut absent: Vec<&'static str> = FEATURES
        .iter()
        .flat_map(|feature| feature.helpers)
        .map(|helper| helper.function)
        .filter(|function| !types.has_function(function))
        .collect();
    absent.dedup();
    absent
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fentry {
    Off,
    /// Use it if the kernel lets us; else search the stack.
    Try,
    /// `--capture fentry`: use it or fail.
    Require,
}

/// Fills the `tp_*` offsets from the event's format file.
fn tracepoint_layout(format: &EventFormat, layout: &mut KernelLayout) -> Result<(), String> {
    let Some(pid) = format.field("pid").filter(|f| f.size == 4) else {
        return Err("tracepoint: oom/mark_victim has no 4-byte pid field".to_string());
    };
    layout.tp_pid = pid.offset;
    let eight_bytes = |name: &str| format.field(name).filter(|f| f.size == 8).map(|f| f.offset);
    layout.tp_comm = format
        .field("comm")
        .filter(|f| f.is_data_loc() && f.size == 4)
        .map_or(OFFSET_UNKNOWN, |f| f.offset);
    layout.tp_total_vm = eight_bytes("total_vm").unwrap_or(OFFSET_UNKNOWN);
    layout.tp_anon_rss = eight_bytes("anon_rss").unwrap_or(OFFSET_UNKNOWN);
    layout.tp_file_rss = eight_bytes("file_rss").unwrap_or(OFFSET_UNKNOWN);
    layout.tp_shmem_rss = eight_bytes("shmem_rss").unwrap_or(OFFSET_UNKNOWN);
    layout.tp_pgtables = eight_bytes("pgtables").unwrap_or(OFFSET_UNKNOWN);
    layout.tp_uid = format
        .field("uid")
        .filter(|f| f.size == 4)
        .map_or(OFFSET_UNKNOWN, |f| f.offset);
    // `short` today, `int` in some older trees.
    match format
        .field("oom_score_adj")
        .filter(|f| f.size == 2 || f.size == 4)
    {
        Some(field) => {
            layout.tp_oom_score_adj = field.offset;
            layout.tp_oom_score_adj_size = field.size;
        }
        None => layout.tp_oom_score_adj = OFFSET_UNKNOWN,
    }
    Ok(())
}

pub(super) fn page_shift() -> u32 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        (size as u64).trailing_zeros()
    } else {
        12
    }
}

fn possible_cpus() -> u32 {
    aya::util::nr_cpus().map_or(0, |n| u32::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXTENDED: &str = "name: mark_victim\nID: 609\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:__data_loc char[] comm;\toffset:12;\tsize:4;\tsigned:0;\n\tfield:unsigned long total_vm;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:unsigned long anon_rss;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:unsigned long file_rss;\toffset:32;\tsize:8;\tsigned:0;\n\tfield:unsigned long shmem_rss;\toffset:40;\tsize:8;\tsigned:0;\n\tfield:uid_t uid;\toffset:48;\tsize:4;\tsigned:0;\n\tfield:unsigned long pgtables;\toffset:56;\tsize:8;\tsigned:0;\n\tfield:short oom_score_adj;\toffset:64;\tsize:2;\tsigned:1;\n";
    const PID_ONLY: &str = "name: mark_victim\nID: 502\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;\n";

    fn without_btf(format: Option<Result<EventFormat, io::Error>>) -> Facilities {
        Facilities {
            btf: Err(BtfError::Read {
                path: btf::VMLINUX_BTF.to_string(),
                source: io::ErrorKind::NotFound.into(),
            }),
            loader_btf: None,
            tracefs: if format.is_some() {
                Ok("/sys/kernel/tracing".into())
            } else {
                Err(io::ErrorKind::NotFound.into())
            },
            mark_victim_format: format,
        }
    }

    #[test]
    fn without_btf_the_extended_tracepoint_gives_every_event_field() {
        let facilities = without_btf(Some(Ok(EventFormat::parse(EXTENDED).expect("format"))));
        let plan = facilities.plan(Preference::Auto).expect("tracepoint plan");
        assert_eq!(plan.path, CapturePath::Tracepoint);
        let l = plan.layout;
        assert_eq!(
            (l.tp_pid, l.tp_comm, l.tp_total_vm, l.tp_anon_rss),
            (8, 12, 16, 24)
        );
        assert_eq!(
            (l.tp_file_rss, l.tp_shmem_rss, l.tp_uid, l.tp_pgtables),
            (32, 40, 48, 56)
        );
        assert_eq!((l.tp_oom_score_adj, l.tp_oom_score_adj_size), (64, 2));
        // No BTF: the trigger's cgroup cannot be read; said, not hidden.
        assert!(plan.unresolved.contains(&"task_struct.cgroups"));
    }

    #[test]
    fn the_pid_only_layout_leaves_the_rest_unknown() {
        let facilities = without_btf(Some(Ok(EventFormat::parse(PID_ONLY).expect("format"))));
        let l = facilities.plan(Preference::Auto).expect("plan").layout;
        assert_eq!(l.tp_pid, 8);
        for offset in [
            l.tp_comm,
            l.tp_total_vm,
            l.tp_anon_rss,
            l.tp_uid,
            l.tp_pgtables,
            l.tp_oom_score_adj,
        ] {
            assert_eq!(offset, OFFSET_UNKNOWN);
        }
    }

    #[test]
    fn no_btf_and_no_tracefs_is_no_capture_path_with_both_reasons() {
        let error = without_btf(None)
            .plan(Preference::Auto)
            .expect_err("no path");
        let reasons = error.reasons.join("; ");
        assert!(reasons.contains("no kernel BTF"), "{reasons}");
        assert!(reasons.contains("tracefs is not mounted"), "{reasons}");
    }

    fn with_btf(variant: &str) -> Facilities {
        Facilities {
            btf: Ok(btf::tests::fixture(variant)),
            ..without_btf(None)
        }
    }

    #[test]
    fn btf_with_the_task_prototype_plans_tp_btf_and_tries_fentry() {
        let plan = with_btf("new").plan(Preference::Auto).expect("plan");
        assert_eq!(plan.path, CapturePath::TpBtf);
        assert_eq!(plan.fentry, Fentry::Try);
        assert_eq!(plan.unresolved, Vec::<&str>::new());
        let plan = with_btf("new").plan(Preference::Btf).expect("plan");
        assert_eq!(plan.fentry, Fentry::Off);
    }

    #[test]
    fn btf_with_the_pid_prototype_falls_back_to_the_tracepoint() {
        let error = with_btf("old")
            .plan(Preference::Auto)
            .expect_err("no tracefs either");
        let reasons = error.reasons.join("; ");
        assert!(
            reasons.contains("does not pass the victim's task"),
            "{reasons}"
        );
        let facilities = Facilities {
            mark_victim_format: Some(Ok(EventFormat::parse(PID_ONLY).expect("format"))),
            tracefs: Ok("/sys/kernel/tracing".into()),
            ..with_btf("old")
        };
        let plan = facilities.plan(Preference::Auto).expect("tracepoint plan");
        assert_eq!(plan.path, CapturePath::Tracepoint);
        // The BTF still gives the trigger's task reads their offsets.
        assert_eq!(plan.layout.kn_parent, 8);
        assert_eq!(plan.unresolved, Vec::<&str>::new());
    }

    #[test]
    fn forcing_btf_without_btf_fails() {
        let facilities = without_btf(Some(Ok(EventFormat::parse(EXTENDED).expect("format"))));
        assert!(facilities.plan(Preference::Btf).is_err());
        assert!(facilities.plan(Preference::Tracepoint).is_ok());
    }
}
