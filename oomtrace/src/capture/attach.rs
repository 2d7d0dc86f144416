//! Loading and attaching a plan's programs: the optional features of
//! [`FEATURES`] in order, then `mark_victim` itself, then those of
//! [`AFTER_MAIN`].

use aya::{
    Ebpf,
    programs::{BtfTracePoint, ProgramError, TracePoint},
};
use oomtrace_common::names;

use super::{
    CaptureError, Options,
    features::{self, AFTER_MAIN, Enable, FEATURES, FeatureError, FeatureId, ProgramSet, Programs},
    plan::{Fentry, Plan},
    timing,
};

/// Used where a tp_btf feature is not: the classic tracepoint path.
const NOT_ON_TRACEPOINT: &str = "not used by the tracepoint path";

/// What the optional features came to, one slot each.
pub(super) struct FeatureResults {
    pub fentry_attached: bool,
    pub fentry_unavailable: Option<FeatureError>,
    pub oom_control: Result<(), FeatureError>,
    pub candidates: Result<(), FeatureError>,
    pub reclaim: Result<(), FeatureError>,
    pub aftermath: Result<(), FeatureError>,
    pub sigkills: Result<(), FeatureError>,
}

impl FeatureResults {
    /// Nothing attached: the tracepoint path.
    pub fn tracepoint(options: &Options) -> FeatureResults {
        FeatureResults {
            fentry_attached: false,
            fentry_unavailable: None,
            oom_control: Err(FeatureError::NotUsed(NOT_ON_TRACEPOINT)),
            candidates: Err(FeatureError::NotUsed(NOT_ON_TRACEPOINT)),
            reclaim: Err(FeatureError::NotUsed(NOT_ON_TRACEPOINT)),
            aftermath: Err(FeatureError::NotUsed(NOT_ON_TRACEPOINT)),
            sigkills: Err(FeatureError::NotUsed(if options.sigkill {
                "not on the tracepoint path"
            } else {
                SIGKILL_NOT_ASKED
            })),
        }
    }

    /// Tries each of `features` (a part of [`FEATURES`], in order).
    fn attach_some(
        &mut self,
        features: &[features::Feature],
        ebpf: &mut dyn ProgramSet,
        kernel_btf: &aya::Btf,
        plan: &Plan,
        options: &Options,
    ) -> Result<(), CaptureError> {
        let results = self;
        for feature in features {
            let wanted = match feature.enable {
                Enable::Always => Ok(()),
                Enable::SigkillFlag if options.sigkill => Ok(()),
                Enable::SigkillFlag => Err(FeatureError::NotUsed(SIGKILL_NOT_ASKED)),
                Enable::FentryPlanned if plan.fentry != Fentry::Off => Ok(()),
                Enable::FentryPlanned => Err(FeatureError::NotUsed("not planned")),
                Enable::WithoutFentry if results.fentry_attached => {
                    // fentry hands the context over: nothing to search for.
                    results.oom_control = Ok(());
                    continue;
                }
                Enable::WithoutFentry => Ok(()),
            };
            let result = wanted
                .and_then(|()| features::check_needs(feature, &plan.layout))
                .and_then(|()| features::check_helpers(feature, &plan.absent_helpers))
                .and_then(|()| features::attach(ebpf, kernel_btf, feature));
            match feature.id {
                FeatureId::Fentry => match result {
                    Ok(()) => results.fentry_attached = true,
                    Err(why) => match plan.fentry {
                        Fentry::Require => return Err(CaptureError::Fentry(why)),
                        Fentry::Try => results.fentry_unavailable = Some(why),
                        Fentry::Off => {}
                    },
                },
                FeatureId::StackSearch => results.oom_control = result,
                FeatureId::Candidates => results.candidates = result,
                FeatureId::Reclaim => results.reclaim = result,
                FeatureId::Aftermath => results.aftermath = result,
                FeatureId::Sigkill => results.sigkills = result,
            }
        }
        Ok(())
    }
}

const SIGKILL_NOT_ASKED: &str = "not asked for (--sigkill)";

/// Loads every tp_btf feature and `mark_victim_btf`, this one on a thread
/// of its own: the verifier checks a program on the thread that loads it,
/// and `mark_victim_btf` (11,700 insns) is about as much as all the
/// others together (13,500), so it runs beside them on a second CPU.
/// Attaches the features meanwhile, in order, and returns with
/// `mark_victim_btf` loaded, not attached.
pub(super) fn load_btf(
    ebpf: &mut Ebpf,
    kernel_btf: &aya::Btf,
    plan: &Plan,
    options: &Options,
) -> Result<FeatureResults, CaptureError> {
    let name = names::MARK_VICTIM_BTF;
    let mut programs: std::collections::HashMap<_, _> = ebpf.programs_mut().collect();
    let main = programs
        .remove(name)
        .ok_or(CaptureError::MissingProgram(name))?;
    let main: &mut BtfTracePoint = main.try_into().map_err(program_failed(name))?;
    let mut programs = Programs(programs);
    std::thread::scope(|scope| {
        let loading = scope.spawn(|| {
            let timer = timing::Timer::start();
            let loaded = main.load("mark_victim", kernel_btf);
            timer.done(format!("load {name} (second thread)"));
            loaded
        });
        let mut results = FeatureResults::tracepoint(options);
        let attached = results.attach_some(FEATURES, &mut programs, kernel_btf, plan, options);
        let loaded = loading
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        attached?;
        loaded.map_err(program_failed(name))?;
        Ok(results)
    })
}

/// Attaches `mark_victim_btf`, loaded by [`load_btf`]: the kill records of
/// the tp_btf path.
pub(super) fn attach_main_btf(ebpf: &mut Ebpf) -> Result<(), CaptureError> {
    let name = names::MARK_VICTIM_BTF;
    let failed = program_failed(name);
    let verified = timing::verified(ebpf, name);
    let program: &mut BtfTracePoint = main_program(ebpf, name)?;
    timing::phase(format!("attach {name}{verified}"), || program.attach())
        .map(drop)
        .map_err(failed)
}

/// Loads and attaches the features of [`AFTER_MAIN`], once
/// `mark_victim_btf` is attached: their programs run after it.
pub(super) fn attach_after_main(
    ebpf: &mut Ebpf,
    kernel_btf: &aya::Btf,
    plan: &Plan,
    options: &Options,
    results: &mut FeatureResults,
) -> Result<(), CaptureError> {
    results.attach_some(AFTER_MAIN, ebpf, kernel_btf, plan, options)
}

/// Loads and attaches `mark_victim_tracepoint`: the tracepoint path.
pub(super) fn attach_main_tracepoint(ebpf: &mut Ebpf) -> Result<(), CaptureError> {
    let name = names::MARK_VICTIM_TRACEPOINT;
    let failed = program_failed(name);
    let program: &mut TracePoint = main_program(ebpf, name)?;
    program.load().map_err(failed)?;
    program
        .attach("oom", "mark_victim")
        .map(drop)
        .map_err(failed)
}

/// A failure of the program without which nothing is traced: fatal.
fn program_failed(program: &'static str) -> impl Fn(ProgramError) -> CaptureError + Copy {
    move |source| CaptureError::Program { program, source }
}

fn main_program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, CaptureError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(CaptureError::MissingProgram(name))?
        .try_into()
        .map_err(program_failed(name))
}
