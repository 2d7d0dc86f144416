//! The optional parts of the kernel side, as data: which programs on which
//! hooks, what enables them and what records lack without them. Without a
//! feature, records carry nulls for what it provides and the ready line
//! says why; the full kernel error (verifier log included) is kept.

use std::collections::HashMap;

use aya::{
    Ebpf,
    programs::{BtfTracePoint, FEntry, FExit, ProgramError},
};
use oomtrace_common::{KernelLayout, OFFSET_UNKNOWN, Source, names};

use super::timing;

/// The kernel function whose argument is the kill's `struct oom_control`.
pub const FENTRY_TARGET: &str = "oom_kill_process";

/// Where a program attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// `tp_btf/<tracepoint>`.
    TpBtf(&'static str),
    FEntry(&'static str),
    FExit(&'static str),
}

/// One program of the eBPF object and its hook.
#[derive(Debug, Clone, Copy)]
pub struct Program {
    pub name: &'static str,
    pub hook: Hook,
}

/// What turns a feature on, once the tp_btf path is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enable {
    /// Always with tp_btf.
    Always,
    /// `--sigkill`.
    SigkillFlag,
    /// fentry planned (`--capture auto` where the kernel has the function,
    /// or `--capture fentry`).
    FentryPlanned,
    /// fentry not planned or not attached: the stack search instead.
    WithoutFentry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureId {
    Fentry,
    StackSearch,
    Candidates,
    Reclaim,
    Aftermath,
    Sigkill,
}

/// An optional feature.
#[derive(Debug, Clone, Copy)]
pub struct Feature {
    pub id: FeatureId,
    /// Loaded in this order, attached in the reverse order: the first is
    /// the one without which the others do nothing, so it goes in last.
    pub programs: &'static [Program],
    pub enable: Enable,
    /// [`KernelLayout`] fields it cannot work without.
    pub needs: &'static [&'static str],
    /// Kernel functions (BPF helpers) it calls, probed in the BTF: a
    /// program calling a helper the kernel lacks fails to load with a
    /// verifier message that names neither.
    pub helpers: &'static [Helper],
    /// What is missing without it, as the ready line says.
    pub missing: &'static str,
}

/// A BPF helper, by the kernel function that implements it (what BTF
/// lists), and the release that brought it, for the message.
#[derive(Debug, Clone, Copy)]
pub struct Helper {
    pub function: &'static str,
    pub since: &'static str,
}

/// `bpf_loop()`: the stack search's chunks run through it.
pub const BPF_LOOP: Helper = Helper {
    function: "bpf_loop",
    since: "5.17",
};

const fn tp_btf(name: &'static str, tracepoint: &'static str) -> Program {
    Program {
        name,
        hook: Hook::TpBtf(tracepoint),
    }
}

/// Every optional feature, in the order they are attached and named in
/// the ready line. `mark_victim_btf` itself is attached after all of them,
/// so that `oom_control_*` programs on the same tracepoint run before it.
pub const FEATURES: &[Feature] = &[
    Feature {
        id: FeatureId::Fentry,
        programs: &[
            Program {
                name: names::OOM_KILL_PROCESS_ENTRY,
                hook: Hook::FEntry(FENTRY_TARGET),
            },
            Program {
                name: names::OOM_KILL_PROCESS_EXIT,
                hook: Hook::FExit(FENTRY_TARGET),
            },
            tp_btf(names::OOM_CONTROL_FENTRY_BTF, "mark_victim"),
        ],
        enable: Enable::FentryPlanned,
        needs: &[],
        helpers: &[],
        missing: "fentry unavailable, OOM context from the stack",
    },
    Feature {
        id: FeatureId::StackSearch,
        programs: &[tp_btf(names::OOM_CONTROL_BTF, "mark_victim")],
        enable: Enable::WithoutFentry,
        // A stack word is taken for the struct only if its constraint is
        // one the kernel names.
        needs: &[
            "oc_chosen",
            "kernel_constraint_none",
            "kernel_constraint_cpuset",
            "kernel_constraint_memory_policy",
            "kernel_constraint_memcg",
        ],
        helpers: &[BPF_LOOP],
        missing: "OOM killer context unavailable",
    },
    Feature {
        id: FeatureId::Reclaim,
        // The kill record's snapshots first: attached last, so a history is
        // zero, not unknown, only once both reclaim hooks run.
        programs: &[
            tp_btf(names::RECLAIM_SNAPSHOT_BTF, "mark_victim"),
            tp_btf(names::RECLAIM_END_BTF, "mm_vmscan_memcg_reclaim_end"),
            tp_btf(names::RECLAIM_BEGIN_BTF, "mm_vmscan_memcg_reclaim_begin"),
        ],
        enable: Enable::Always,
        needs: &[],
        helpers: &[],
        missing: "reclaim history unavailable",
    },
    Feature {
        id: FeatureId::Aftermath,
        // Reaper and exit tracking: the oom_outcome records.
        programs: &[
            tp_btf("sched_process_exit_btf", "sched_process_exit"),
            tp_btf("skip_task_reaping_btf", "skip_task_reaping"),
            tp_btf("finish_task_reaping_btf", "finish_task_reaping"),
            tp_btf("start_task_reaping_btf", "start_task_reaping"),
        ],
        enable: Enable::Always,
        needs: &[],
        helpers: &[],
        missing: "victim exits not followed",
    },
    Feature {
        id: FeatureId::Sigkill,
        programs: &[tp_btf(names::SIGKILL_BTF, "signal_generate")],
        enable: Enable::SigkillFlag,
        needs: &["kernel_signal_delivered", "kernel_signal_lose_info"],
        helpers: &[],
        missing: "SIGKILLs not traced",
    },
];

/// Features attached after `mark_victim_btf`, so that their programs run
/// after it: the candidate walk, whose table follows the kill record (the
/// kill record first, so the victim is followed to its exit at once).
pub const AFTER_MAIN: &[Feature] = &[Feature {
    id: FeatureId::Candidates,
    programs: &[tp_btf(names::CANDIDATES_BTF, "mark_victim")],
    enable: Enable::Always,
    needs: &["task_tasks", "cgroup_ancestors", "task_group_leader"],
    helpers: &[BPF_LOOP],
    missing: "candidate table read from /proc after the kill",
}];

/// Every attach point any program may need, as aya looks them up in the
/// kernel's BTF: `btf_trace_<event>` typedefs and function names.
pub fn attach_points() -> (Vec<String>, Vec<&'static str>) {
    let mut typedefs = vec![format!("btf_trace_mark_victim")];
    let mut functions = Vec::new();
    for program in FEATURES.iter().chain(AFTER_MAIN).flat_map(|f| f.programs) {
        match program.hook {
            Hook::TpBtf(event) => typedefs.push(format!("btf_trace_{event}")),
            Hook::FEntry(function) | Hook::FExit(function) => functions.push(function),
        }
    }
    typedefs.sort();
    typedefs.dedup();
    functions.sort_unstable();
    functions.dedup();
    (typedefs, functions)
}

/// The feature `id` of [`FEATURES`] or [`AFTER_MAIN`].
pub fn feature(id: FeatureId) -> &'static Feature {
    FEATURES
        .iter()
        .chain(AFTER_MAIN)
        .find(|feature| feature.id == id)
        .unwrap_or(&FEATURES[0])
}

/// Why a feature is not in use.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// Not wanted or not possible with this capture path.
    #[error("{0}")]
    NotUsed(&'static str),
    /// The running kernel lacks something it needs.
    #[error("{0}")]
    Unavailable(String),
    #[error("the eBPF object has no program {0}")]
    MissingProgram(&'static str),
    /// The kernel refused a program. Shown as one line; the source keeps
    /// the whole error with the verifier's log.
    #[error("{summary}")]
    Program {
        program: &'static str,
        summary: String,
        #[source]
        source: ProgramError,
    },
}

impl FeatureError {
    pub(super) fn program(program: &'static str, source: ProgramError) -> FeatureError {
        FeatureError::Program {
            program,
            summary: first_line(&source),
            source,
        }
    }

    /// The whole error, the verifier's log included (OOMTRACE_VERBOSE=1).
    pub fn detail(&self) -> Option<String> {
        match self {
            FeatureError::Program {
                program, source, ..
            } => Some(format!("{program}: {source:#}")),
            _ => None,
        }
    }
}

/// Whether every layout field `feature` needs is known.
pub fn check_needs(feature: &Feature, layout: &KernelLayout) -> Result<(), FeatureError> {
    let missing: Vec<String> = KernelLayout::FIELDS
        .iter()
        .filter(|field| feature.needs.contains(&field.name))
        .filter(|field| (field.get)(layout) == OFFSET_UNKNOWN)
        .map(|field| match field.source {
            Source::Enumerator(name) => name.to_string(),
            Source::Member { type_name, paths } => {
                format!("{type_name}.{}", paths.first().copied().unwrap_or_default())
            }
            _ => field.name.to_string(),
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(FeatureError::Unavailable(format!(
            "{} not in the kernel BTF",
            missing.join(", ")
        )))
    }
}

/// Whether the kernel has every helper `feature` calls; `absent` lists
/// the kernel functions its BTF lacks (see [`super::Plan`]).
pub fn check_helpers(feature: &Feature, absent: &[&'static str]) -> Result<(), FeatureError> {
    let missing: Vec<String> = feature
        .helpers
        .iter()
        .filter(|helper| absent.contains(&helper.function))
        .map(|helper| format!("{}() ({}+)", helper.function, helper.since))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(FeatureError::Unavailable(format!(
            "needs the BPF helper {}, which this kernel lacks (not in its BTF)",
            missing.join(", ")
        )))
    }
}

/// Loads `feature`'s programs, then attaches them last to first; if one
/// cannot be attached, unloads those already in (detaching them).
pub fn attach(
    ebpf: &mut dyn ProgramSet,
    kernel_btf: &aya::Btf,
    feature: &Feature,
) -> Result<(), FeatureError> {
    for program in feature.programs {
        let timer = timing::Timer::start();
        let loaded = load(ebpf, kernel_btf, program);
        let verified = timing::verified(ebpf, program.name);
        timer.done(format!("load {}{verified}", program.name));
        loaded?;
    }
    for (attached, program) in feature.programs.iter().rev().enumerate() {
        let attached_one = timing::phase(format!("attach {}", program.name), || {
            attach_one(ebpf, program)
        });
        if let Err(error) = attached_one {
            for done in feature.programs.iter().rev().take(attached) {
                // Best effort: a program that stays attached only sees
                // events whose partner programs never fire.
                let _ = unload(ebpf, done);
            }
            return Err(error);
        }
    }
    Ok(())
}

fn load(
    ebpf: &mut dyn ProgramSet,
    kernel_btf: &aya::Btf,
    program: &Program,
) -> Result<(), FeatureError> {
    let name = program.name;
    let failed = |e| FeatureError::program(name, e);
    match program.hook {
        Hook::TpBtf(tracepoint) => typed::<BtfTracePoint>(ebpf, name)?
            .load(tracepoint, kernel_btf)
            .map_err(failed),
        Hook::FEntry(function) => typed::<FEntry>(ebpf, name)?
            .load(function, kernel_btf)
            .map_err(failed),
        Hook::FExit(function) => typed::<FExit>(ebpf, name)?
            .load(function, kernel_btf)
            .map_err(failed),
    }
}

fn attach_one(ebpf: &mut dyn ProgramSet, program: &Program) -> Result<(), FeatureError> {
    let name = program.name;
    let failed = |e| FeatureError::program(name, e);
    match program.hook {
        Hook::TpBtf(_) => typed::<BtfTracePoint>(ebpf, name)?
            .attach()
            .map(drop)
            .map_err(failed),
        Hook::FEntry(_) => typed::<FEntry>(ebpf, name)?
            .attach()
            .map(drop)
            .map_err(failed),
        Hook::FExit(_) => typed::<FExit>(ebpf, name)?
            .attach()
            .map(drop)
            .map_err(failed),
    }
}

fn unload(ebpf: &mut dyn ProgramSet, program: &Program) -> Result<(), FeatureError> {
    let name = program.name;
    let failed = |e| FeatureError::program(name, e);
    match program.hook {
        Hook::TpBtf(_) => typed::<BtfTracePoint>(ebpf, name)?.unload(),
        Hook::FEntry(_) => typed::<FEntry>(ebpf, name)?.unload(),
        Hook::FExit(_) => typed::<FExit>(ebpf, name)?.unload(),
    }
    .map_err(failed)
}

/// The programs features are loaded from: the whole object, or some of its
/// programs while another is verified on a thread of its own.
pub trait ProgramSet {
    fn program(&self, name: &str) -> Option<&aya::programs::Program>;
    fn program_mut(&mut self, name: &str) -> Option<&mut aya::programs::Program>;
}

impl ProgramSet for Ebpf {
    fn program(&self, name: &str) -> Option<&aya::programs::Program> {
        Ebpf::program(self, name)
    }

    fn program_mut(&mut self, name: &str) -> Option<&mut aya::programs::Program> {
        Ebpf::program_mut(self, name)
    }
}

/// Some of an object's programs, borrowed by name.
pub struct Programs<'a>(pub HashMap<&'a str, &'a mut aya::programs::Program>);

impl ProgramSet for Programs<'_> {
    fn program(&self, name: &str) -> Option<&aya::programs::Program> {
        self.0.get(name).map(|p| &**p)
    }

    fn program_mut(&mut self, name: &str) -> Option<&mut aya::programs::Program> {
        self.0.get_mut(name).map(|p| &mut **p)
    }
}

/// The object's program `name` as its type.
pub fn typed<'a, T>(
    ebpf: &'a mut dyn ProgramSet,
    name: &'static str,
) -> Result<&'a mut T, FeatureError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(FeatureError::MissingProgram(name))?
        .try_into()
        .map_err(|e| FeatureError::program(name, e))
}

/// An aya error in one line, without an empty verifier log.
fn first_line(error: &ProgramError) -> String {
    let text = format!("{error:#}");
    let line = text.lines().next().unwrap_or_default();
    line.trim_end()
        .trim_end_matches("Verifier output:")
        .trim_end()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_feature_is_listed_once() {
        for id in [
            FeatureId::Fentry,
            FeatureId::StackSearch,
            FeatureId::Reclaim,
            FeatureId::Aftermath,
            FeatureId::Sigkill,
            FeatureId::Candidates,
        ] {
            let all = FEATURES.iter().chain(AFTER_MAIN);
            assert_eq!(all.filter(|f| f.id == id).count(), 1, "{id:?}");
            assert_eq!(feature(id).id, id);
        }
    }

    #[test]
    fn needs_name_real_layout_fields() {
        for feature in FEATURES.iter().chain(AFTER_MAIN) {
            for need in feature.needs {
                assert!(
                    KernelLayout::FIELDS.iter().any(|f| f.name == *need),
                    "{need}"
                );
            }
        }
    }

    #[test]
    fn a_missing_helper_is_named_with_its_release() {
        let search = feature(FeatureId::StackSearch);
        assert!(check_helpers(search, &[]).is_ok());
        let error = check_helpers(search, &["bpf_loop"]).expect_err("no bpf_loop");
        assert_eq!(
            error.to_string(),
            "needs the BPF helper bpf_loop() (5.17+), which this kernel lacks (not in its BTF)"
        );
        assert!(check_helpers(feature(FeatureId::Reclaim), &["bpf_loop"]).is_ok());
    }

    #[test]
    fn an_unknown_enumerator_is_named_as_missing() {
        let mut layout = KernelLayout::UNKNOWN;
        let sigkill = feature(FeatureId::Sigkill);
        let error = check_needs(sigkill, &layout).expect_err("nothing known");
        assert_eq!(
            error.to_string(),
            "TRACE_SIGNAL_DELIVERED, TRACE_SIGNAL_LOSE_INFO not in the kernel BTF"
        );
        layout.kernel_signal_delivered = 0;
        layout.kernel_signal_lose_info = 4;
        assert!(check_needs(sigkill, &layout).is_ok());
    }
}
