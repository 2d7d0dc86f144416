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
//!
//! Here: the capture's types, starting it and its ready line. [`plan`]
//! looks at the kernel and picks the path; [`btf`] and [`tracefs`] read
//! the kernel's layout; [`features`] lists the optional programs as data;
//! [`attach`] loads and attaches them; [`ready`] words the ready line.

mod arch;
mod attach;
pub mod btf;
pub mod cache;
mod features;
mod plan;
mod ready;
pub mod timing;
pub mod tracefs;

use std::{io, net::SocketAddr};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray, RingBuf},
    programs::FEntry,
};
use oomtrace_common::names;

use self::attach::FeatureResults;
pub use self::{
    features::{BPF_LOOP, FENTRY_TARGET, FeatureError},
    plan::{Facilities, Plan},
};

/// Whether the kernel side can take the candidate table at the kill on
/// this plan's kernel (tp_btf paths), or why not: its struct members and
/// bpf_loop(), as the loader checks them before loading it.
pub fn candidate_walk(plan: &Plan) -> Result<(), FeatureError> {
    let feature = features::feature(features::FeatureId::Candidates);
    features::check_needs(feature, &plan.layout)
        .and_then(|()| features::check_helpers(feature, &plan.absent_helpers))
}

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

/// Whether fentry on oom_kill_process() works here (for `check`): loads
/// the object and that one program, and attaches it for an instant.
pub fn probe_fentry(kernel_btf: &aya::Btf) -> Result<(), FeatureError> {
    let mut ebpf = EbpfLoader::new()
        .btf(Some(kernel_btf))
        .map_max_entries(names::EVENTS, 1 << plan::page_shift())
        .load(EBPF_OBJECT)
        .map_err(|e| FeatureError::Unavailable(e.to_string()))?;
    let name = names::OOM_KILL_PROCESS_ENTRY;
    let program = features::typed::<FEntry>(&mut ebpf, name)?;
    program
        .load(FENTRY_TARGET, kernel_btf)
        .map_err(|source| FeatureError::program(name, source))?;
    // Loading is not enough: arm64 kernels before 6.4 (no ftrace direct
    // calls) load the program and refuse to attach it. Attached for an
    // instant: dropping `ebpf` detaches it.
    program
        .attach()
        .map(drop)
        .map_err(|source| FeatureError::program(name, source))
}

/// aya's loader, being made on a thread of its own. `EbpfLoader::new()`
/// reads and parses the kernel's whole BTF (~20 ms here, the largest part
/// of a start from the cache, and ~10 MiB at its peak) even though
/// [`Capture::start`] then hands it the BTF to use (aya issue #1172, no
/// way around it in aya 0.14's API). The thread it is made on first
/// takes a root of its own (`unshare(CLONE_FS)`, then `chroot` into a
/// directory without `/sys`: a thread's root is its own once its fs
/// context is), where aya finds no BTF to parse, and ends with it. Where
/// that is refused (no CAP_SYS_CHROOT) aya parses, beside the probe.
pub struct LoaderPrefetch(Option<std::thread::JoinHandle<EbpfLoader<'static>>>);

impl LoaderPrefetch {
    /// Starts making the loader; made in place later if no thread starts.
    pub fn start() -> LoaderPrefetch {
        let thread = std::thread::Builder::new()
            .name("aya-loader".into())
            .spawn(|| {
                if without_kernel_btf_in_sight() {
                    timing::phase("aya loader (no BTF in sight)", EbpfLoader::new)
                } else {
                    timing::phase("aya loader (its own BTF parse)", EbpfLoader::new)
                }
            });
        LoaderPrefetch(thread.ok())
    }

    fn take<'a>(self) -> EbpfLoader<'a> {
        match self.0.map(std::thread::JoinHandle::join) {
            Some(Ok(loader)) => loader,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => EbpfLoader::new(),
        }
    }
}

/// Gives the calling thread (only) a root where `/sys/kernel/btf/vmlinux`
/// does not exist; false if refused. The thread must end afterwards.
fn without_kernel_btf_in_sight() -> bool {
    // SAFETY: unshare(CLONE_FS) copies this thread's fs context (root,
    // cwd, umask) so that the chroot after it changes this thread's root
    // alone; neither touches memory. /proc/self/fdinfo holds only numbered
    // files.
    unsafe {
        libc::unshare(libc::CLONE_FS) == 0 && libc::chroot(c"/proc/self/fdinfo".as_ptr()) == 0
    }
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
    pub fentry_unavailable: Option<FeatureError>,
    /// Whether the OOM killer's context (constraint, OOM memcg, ...) is
    /// captured, or why not.
    pub oom_control: Result<(), FeatureError>,
    /// Whether the kernel side takes the candidate table at the kill, or
    /// why not (then it is read from /proc).
    pub candidates: Result<(), FeatureError>,
    /// Whether charge-path reclaim history is kept, or why not.
    pub reclaim: Result<(), FeatureError>,
    /// Whether victims' exits (oom_outcome records) are followed, or why not.
    pub aftermath: Result<(), FeatureError>,
    /// Whether SIGKILLs are traced (`--sigkill`), or why not.
    pub sigkills: Result<(), FeatureError>,
    pub events: RingBuf<MapData>,
    pub lost: LostCounter,
    pub table_marks: TableMarks,
    options: Options,
    /// Kernel struct members not found: their record fields are null.
    unresolved: Vec<&'static str>,
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

/// Which victims the kernel side's candidate walk is done with (see
/// [`names::TABLE_MARKS`]).
pub struct TableMarks {
    map: Array<MapData, u32>,
}

impl TableMarks {
    /// Whether the walk is done with the victim of thread id `pid`: its
    /// table, if the ring buffer took one, is in the ring buffer now. A
    /// map that cannot be read counts as done (the kill goes on without
    /// the table rather than wait).
    pub fn done(&self, pid: u32) -> bool {
        self.map
            .get(&(pid % oomtrace_common::TABLE_MARKS), 0)
            .map_or(true, |mark| mark == pid)
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
    Fentry(FeatureError),
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
    /// program and the optional features, and returns the maps to read.
    /// `loader_btf` gives the BTF aya looks attach points up in; it is
    /// asked for after the object load, which does not need it (the object
    /// has no CO-RE relocations: offsets come from the layout), so that a
    /// BTF still being made (see [`Facilities::loader_btf`]) is made
    /// meanwhile.
    pub fn start<'b>(
        plan: &Plan,
        loader_btf: impl FnOnce() -> Option<&'b aya::Btf>,
        options: &Options,
        loader: LoaderPrefetch,
    ) -> Result<Capture, CaptureError> {
        let mut loader = timing::phase("aya loader (waited for)", || loader.take());
        let ebpf = timing::phase("object load (maps, BTF)", || {
            loader
                .btf(None)
                .override_global(names::LAYOUT, &plan.layout, true)
                .override_global(names::PRESSURE_NS, &options.pressure_ns, true)
                .map_max_entries(names::EVENTS, options.ring_buffer_bytes)
                .load(EBPF_OBJECT)
        });
        let mut ebpf = ebpf.map_err(CaptureError::Load)?;
        let wants_btf = plan.path != CapturePath::Tracepoint;
        let loader_btf = wants_btf
            .then(|| timing::phase("aya's BTF (waited for)", loader_btf))
            .flatten();
        let kernel_btf = match (wants_btf, loader_btf) {
            (true, Some(btf)) => Some(btf),
            (true, None) => return Err(CaptureError::LoaderBtf),
            (false, _) => None,
        };

        let mut path = plan.path;
        let results = match kernel_btf {
            Some(kernel_btf) if plan.path != CapturePath::Tracepoint => {
                let mut results = attach::load_btf(&mut ebpf, kernel_btf, plan, options)?;
                if results.fentry_attached {
                    path = CapturePath::Fentry;
                }
                attach::attach_main_btf(&mut ebpf)?;
                attach::attach_after_main(&mut ebpf, kernel_btf, plan, options, &mut results)?;
                results
            }
            _ => {
                attach::attach_main_tracepoint(&mut ebpf)?;
                FeatureResults::tracepoint(options)
            }
        };

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
        let table_marks =
            Array::try_from(take_map(&mut ebpf, names::TABLE_MARKS)?).map_err(|source| {
                CaptureError::Map {
                    name: names::TABLE_MARKS,
                    source,
                }
            })?;
        Ok(Capture {
            path,
            fentry_unavailable: results.fentry_unavailable,
            oom_control: results.oom_control,
            candidates: results.candidates,
            aftermath: results.aftermath,
            sigkills: results.sigkills,
            reclaim: results.reclaim,
            events,
            lost: LostCounter {
                map: lost,
                _ebpf: ebpf,
            },
            table_marks: TableMarks { map: table_marks },
            options: *options,
            unresolved: plan.unresolved.clone(),
        })
    }

    /// The line printed once tracing runs: the path, and what is missing
    /// and why. Tests and users grep it: keep its wording.
    pub fn ready_line(&self, metrics: Option<SocketAddr>) -> String {
        ready::Status {
            path: self.path,
            fentry_unavailable: self.fentry_unavailable.as_ref(),
            oom_control: self.oom_control.as_ref().err(),
            candidates: self.candidates.as_ref().err(),
            reclaim: self.reclaim.as_ref().err(),
            aftermath: self.aftermath.as_ref().err(),
            sigkills: self.sigkills.as_ref().err(),
            options: &self.options,
            unresolved: &self.unresolved,
        }
        .line(metrics)
    }

    /// The whole kernel error (verifier log included) of every feature the
    /// kernel refused, for OOMTRACE_VERBOSE=1.
    pub fn feature_details(&self) -> Vec<String> {
        [
            self.fentry_unavailable.as_ref(),
            self.oom_control.as_ref().err(),
            self.candidates.as_ref().err(),
            self.reclaim.as_ref().err(),
            self.aftermath.as_ref().err(),
            self.sigkills.as_ref().err(),
        ]
        .into_iter()
        .flatten()
        .filter_map(FeatureError::detail)
        .collect()
    }
}
