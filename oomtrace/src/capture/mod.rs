//! Loading and attaching the kernel side, and choosing how to capture.
//!
//! Capture paths, richest first:
//! - `tp_btf`: `tp_btf/mark_victim` gets the victim's `task_struct`; every
//!   field is read from kernel structs at offsets from the running kernel's
//!   BTF (needs BTF and the v6.9+ tracepoint prototype).
//! - `tracepoint`: the classic `oom:mark_victim` event, at offsets read from
//!   tracefs; the victim's cgroup is known only when it is the trigger.
//!
//! On top of tp_btf, where the kernel allows fentry (not on every kernel:
//! it needs CONFIG_FUNCTION_TRACER and direct calls), `fentry` reads the
//! OOM killer's `struct oom_control` as `oom_kill_process()`'s argument
//! instead of searching the stack for it, and follows the whole kill
//! (memory.oom.group members included) as one incident.

pub mod btf;
pub mod tracefs;

use std::{
    io,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, FEntry, FExit, TracePoint},
};
use oomtrace_common::{KernelLayout, MAX_CPUS, OFFSET_UNKNOWN, names};

use self::{
    btf::{BtfError, KernelTypes},
    tracefs::EventFormat,
};

/// The eBPF object, built by build.rs. Aligned because aya parses it in
/// place as an ELF file.
#[cfg(feature = "ebpf")]
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/oomtrace"));
/// Built without the `ebpf` feature (fuzz targets, which only parse):
/// loading fails with aya's parse error instead of attaching anything.
#[cfg(not(feature = "ebpf"))]
static EBPF_OBJECT: &[u8] = &[];

/// How `oom:mark_victim` is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapturePath {
    Fentry,
    TpBtf,
    Tracepoint,
}

impl CapturePath {
    /// The name used in records, `check` and the ready line.
    pub fn name(self) -> &'static str {
        match self {
            CapturePath::Fentry => "fentry",
            CapturePath::TpBtf => "tp_btf",
            CapturePath::Tracepoint => "tracepoint",
        }
    }

    pub fn from_record(value: u32) -> Option<CapturePath> {
        match value {
            oomtrace_common::capture::TP_BTF => Some(CapturePath::TpBtf),
            oomtrace_common::capture::TRACEPOINT => Some(CapturePath::Tracepoint),
            _ => None,
        }
    }
}

/// Which capture path to use (`--capture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Preference {
    /// The richest path this kernel offers.
    #[default]
    Auto,
    /// tp_btf plus fentry on oom_kill_process(), or fail.
    Fentry,
    /// tp_btf with the victim's task_struct (the OOM killer's context
    /// searched on the stack, even where fentry works), or fail.
    Btf,
    /// The classic tracepoint's fields, even where tp_btf works.
    Tracepoint,
}

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
    /// Looks at the kernel. With `mount_tracefs`, mounts tracefs when it is
    /// not mounted (needs CAP_SYS_ADMIN).
    pub fn probe(mount_tracefs: bool) -> Facilities {
        let (btf, loader_btf) = parse_btf_twice();
        let tracefs = if mount_tracefs {
            tracefs::find_or_mount()
        } else {
            tracefs::find().ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        };
        let mark_victim_format = tracefs
            .as_ref()
            .ok()
            .map(|dir| tracefs::read_format(dir, "oom", "mark_victim"));
        Facilities {
            btf,
            loader_btf,
            tracefs,
            mark_victim_format,
        }
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
}

/// The kernel function whose argument is the kill's `struct oom_control`.
pub const FENTRY_TARGET: &str = "oom_kill_process";

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

fn page_shift() -> u32 {
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

/// Loads and attaches an optional tp_btf program: without it, records
/// carry nulls for what it provides, and the ready line says why.
fn attach_optional(
    ebpf: &mut Ebpf,
    kernel_btf: &aya::Btf,
    name: &str,
    tracepoint: &str,
) -> Result<(), String> {
    let program = program::<BtfTracePoint>(ebpf, name)?;
    program
        .load(tracepoint, kernel_btf)
        .map_err(|e| first_line(&e))?;
    program.attach().map(|_| ()).map_err(|e| first_line(&e))
}

/// fentry and fexit on oom_kill_process() and the tp_btf program that
/// hands what they saw to `mark_victim_btf`: all loaded first, then
/// attached with the entry last (without it the other two do nothing), and
/// taken down again if any of them cannot be attached.
fn attach_fentry(ebpf: &mut Ebpf, kernel_btf: &aya::Btf) -> Result<(), String> {
    let err = |e: aya::programs::ProgramError| first_line(&e);
    program::<FEntry>(ebpf, names::OOM_KILL_PROCESS_ENTRY)?
        .load(FENTRY_TARGET, kernel_btf)
        .map_err(err)?;
    program::<FExit>(ebpf, names::OOM_KILL_PROCESS_EXIT)?
        .load(FENTRY_TARGET, kernel_btf)
        .map_err(err)?;
    let handover = program::<BtfTracePoint>(ebpf, names::OOM_CONTROL_FENTRY_BTF)?;
    handover.load("mark_victim", kernel_btf).map_err(err)?;
    let handover_link = handover.attach().map_err(err)?;
    let exit_link = match program::<FExit>(ebpf, names::OOM_KILL_PROCESS_EXIT)?.attach() {
        Ok(link) => link,
        Err(e) => {
            let _ = program::<BtfTracePoint>(ebpf, names::OOM_CONTROL_FENTRY_BTF)?
                .detach(handover_link);
            return Err(err(e));
        }
    };
    if let Err(e) = program::<FEntry>(ebpf, names::OOM_KILL_PROCESS_ENTRY)?.attach() {
        let _ = program::<FExit>(ebpf, names::OOM_KILL_PROCESS_EXIT)?.detach(exit_link);
        let _ =
            program::<BtfTracePoint>(ebpf, names::OOM_CONTROL_FENTRY_BTF)?.detach(handover_link);
        return Err(err(e));
    }
    Ok(())
}

/// The object's program `name` as its type.
fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, String>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| format!("the eBPF object has no program {name}"))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| first_line(&e))
}

/// Whether fentry on oom_kill_process() loads here (for `check`): loads
/// the object and that one program, attaches nothing.
pub fn probe_fentry(kernel_btf: &aya::Btf) -> Result<(), String> {
    let mut ebpf = EbpfLoader::new()
        .btf(Some(kernel_btf))
        .map_max_entries(names::EVENTS, 1 << page_shift())
        .load(EBPF_OBJECT)
        .map_err(|e| e.to_string())?;
    program::<FEntry>(&mut ebpf, names::OOM_KILL_PROCESS_ENTRY)?
        .load(FENTRY_TARGET, kernel_btf)
        .map_err(|e| first_line(&e))
}

/// An aya error in one line, without an empty verifier log.
fn first_line(error: &aya::programs::ProgramError) -> String {
    let text = format!("{error:#}");
    let line = text.lines().next().unwrap_or_default();
    line.trim_end()
        .trim_end_matches("Verifier output:")
        .trim_end()
        .to_string()
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, CaptureError> {
    ebpf.take_map(name).ok_or(CaptureError::MissingMap(name))
}

/// What to capture besides OOM kills.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Kernel-to-userspace buffer size.
    pub ring_buffer_bytes: u32,
    /// `--pressure` threshold in stall ns per second; 0 = off.
    pub pressure_ns: u64,
    /// `--sigkill`: every SIGKILL too.
    pub sigkill: bool,
}

/// Loaded and attached programs, and the maps userspace reads.
pub struct Capture {
    /// The path in use: [`CapturePath::Fentry`] when the plan's tp_btf got
    /// fentry too.
    pub path: CapturePath,
    /// Why fentry was tried and not used.
    pub fentry_unavailable: Option<String>,
    /// Whether the OOM killer's context (constraint, OOM memcg, ...) is
    /// captured, or why not.
    pub oom_control: Result<(), String>,
    /// Whether charge-path reclaim history is kept, or why not.
    pub reclaim: Result<(), String>,
    /// Whether victims' exits (oom_outcome records) are followed, or why not.
    pub aftermath: Result<(), String>,
    /// Whether SIGKILLs are traced (`--sigkill`), or why not.
    pub sigkills: Result<(), String>,
    pub events: RingBuf<MapData>,
    pub lost: LostCounter,
}

/// The kernel side's count of records the ring buffer refused. Also owns
/// the programs and their links: dropping it detaches everything.
pub struct LostCounter {
    map: PerCpuArray<MapData, u64>,
    _ebpf: Ebpf,
}

impl LostCounter {
    /// Records lost so far, over all CPUs.
    pub fn total(&self) -> Result<u64, aya::maps::MapError> {
        Ok(self.map.get(&0, 0)?.iter().sum())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("loading the eBPF object failed")]
    Load(#[source] aya::EbpfError),
    #[error("the eBPF object has no program {0}")]
    MissingProgram(&'static str),
    #[error("the eBPF object has no map {0}")]
    MissingMap(&'static str),
    #[error("loading or attaching {program} failed")]
    Program {
        program: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("aya could not parse the kernel BTF that tp_btf needs")]
    LoaderBtf,
    #[error(
        "fentry on {FENTRY_TARGET}() failed: {0}; this kernel does not allow it here \
         (`oomtrace check` says why): use `--capture auto`"
    )]
    Fentry(String),
    #[error("map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
}

impl CaptureError {
    /// True when the kernel refused for lack of privileges.
    pub fn is_permission_denied(&self) -> bool {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(error) = source {
            if let Some(io) = error.downcast_ref::<io::Error>()
                && io
                    .raw_os_error()
                    .is_some_and(|e| e == libc::EPERM || e == libc::EACCES)
            {
                return true;
            }
            source = error.source();
        }
        false
    }
}

impl Capture {
    /// Loads the object with `plan`'s layout, loads and attaches the chosen
    /// program, and returns the maps to read.
    pub fn start(
        plan: &Plan,
        loader_btf: Option<&aya::Btf>,
        options: &Options,
    ) -> Result<Capture, CaptureError> {
        let Options {
            ring_buffer_bytes,
            pressure_ns,
            sigkill,
        } = *options;
        let kernel_btf = match (plan.path, loader_btf) {
            (CapturePath::TpBtf | CapturePath::Fentry, Some(btf)) => Some(btf),
            (CapturePath::TpBtf | CapturePath::Fentry, None) => {
                return Err(CaptureError::LoaderBtf);
            }
            (CapturePath::Tracepoint, _) => None,
        };
        let mut path = plan.path;
        let mut fentry_unavailable = None;
        let mut ebpf = EbpfLoader::new()
            .btf(kernel_btf)
            .override_global(names::LAYOUT, &plan.layout, true)
            // The reclaim programs come with the tp_btf path.
            .override_global(
                names::RECLAIM_TRACKED,
                &u32::from(kernel_btf.is_some()),
                true,
            )
            .override_global(names::PRESSURE_NS, &pressure_ns, true)
            .map_max_entries(names::EVENTS, ring_buffer_bytes)
            .load(EBPF_OBJECT)
            .map_err(CaptureError::Load)?;

        let mut oom_control = Err("not used by the tracepoint path".to_string());
        let mut reclaim = Err("not used by the tracepoint path".to_string());
        let mut aftermath = Err("not used by the tracepoint path".to_string());
        let mut sigkills = Err(if sigkill {
            "not on the tracepoint path".to_string()
        } else {
            "not asked for (--sigkill)".to_string()
        });
        match (plan.path, kernel_btf) {
            (CapturePath::TpBtf, Some(kernel_btf)) => {
                if sigkill {
                    sigkills = attach_optional(
                        &mut ebpf,
                        kernel_btf,
                        names::SIGKILL_BTF,
                        "signal_generate",
                    );
                }
                // Reaper and exit tracking: the oom_outcome records.
                aftermath = [
                    ("start_task_reaping_btf", "start_task_reaping"),
                    ("finish_task_reaping_btf", "finish_task_reaping"),
                    ("skip_task_reaping_btf", "skip_task_reaping"),
                    ("sched_process_exit_btf", "sched_process_exit"),
                ]
                .into_iter()
                .try_for_each(|(program, tracepoint)| {
                    attach_optional(&mut ebpf, kernel_btf, program, tracepoint)
                });
                let fentry = match plan.fentry {
                    Fentry::Off => Err(String::new()),
                    Fentry::Try | Fentry::Require => attach_fentry(&mut ebpf, kernel_btf),
                };
                oom_control = match fentry {
                    Ok(()) => {
                        path = CapturePath::Fentry;
                        Ok(())
                    }
                    Err(why) => {
                        if plan.fentry == Fentry::Require {
                            return Err(CaptureError::Fentry(why));
                        }
                        if plan.fentry == Fentry::Try {
                            fentry_unavailable = Some(why);
                        }
                        attach_optional(
                            &mut ebpf,
                            kernel_btf,
                            names::OOM_CONTROL_BTF,
                            "mark_victim",
                        )
                    }
                };
                reclaim = attach_optional(
                    &mut ebpf,
                    kernel_btf,
                    names::RECLAIM_BEGIN_BTF,
                    "mm_vmscan_memcg_reclaim_begin",
                )
                .and_then(|()| {
                    attach_optional(
                        &mut ebpf,
                        kernel_btf,
                        names::RECLAIM_END_BTF,
                        "mm_vmscan_memcg_reclaim_end",
                    )
                });
                let name = names::MARK_VICTIM_BTF;
                let failed = |source| CaptureError::Program {
                    program: name,
                    source,
                };
                let program: &mut BtfTracePoint = ebpf
                    .program_mut(name)
                    .ok_or(CaptureError::MissingProgram(name))?
                    .try_into()
                    .map_err(failed)?;
                program.load("mark_victim", kernel_btf).map_err(failed)?;
                program.attach().map_err(failed)?;
            }
            _ => {
                let name = names::MARK_VICTIM_TRACEPOINT;
                let failed = |source| CaptureError::Program {
                    program: name,
                    source,
                };
                let program: &mut TracePoint = ebpf
                    .program_mut(name)
                    .ok_or(CaptureError::MissingProgram(name))?
                    .try_into()
                    .map_err(failed)?;
                program.load().map_err(failed)?;
                program.attach("oom", "mark_victim").map_err(failed)?;
            }
        }

        let events = RingBuf::try_from(take_map(&mut ebpf, names::EVENTS)?).map_err(|source| {
            CaptureError::Map {
                name: names::EVENTS,
                source,
            }
        })?;
        let lost = PerCpuArray::try_from(take_map(&mut ebpf, names::LOST)?).map_err(|source| {
            CaptureError::Map {
                name: names::LOST,
                source,
            }
        })?;
        Ok(Capture {
            path,
            fentry_unavailable,
            oom_control,
            aftermath,
            sigkills,
            reclaim,
            events,
            lost: LostCounter {
                map: lost,
                _ebpf: ebpf,
            },
        })
    }
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

    #[test]
    fn forcing_btf_without_btf_fails() {
        let facilities = without_btf(Some(Ok(EventFormat::parse(EXTENDED).expect("format"))));
        assert!(facilities.plan(Preference::Btf).is_err());
        assert!(facilities.plan(Preference::Tracepoint).is_ok());
    }
}
