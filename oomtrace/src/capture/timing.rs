//! Where start-up time goes, for OOMTRACE_VERBOSE=1: each phase's start
//! (from [`begin`], the top of `main`) and duration, printed after the
//! ready line. Phases on other threads overlap; their start offsets say
//! so.

use std::{
    sync::{LazyLock, Mutex},
    time::{Duration, Instant},
};

/// When start-up began: the first use of this module.
static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);

/// (phase, start offset, duration), in the order they ended.
static PHASES: Mutex<Vec<(String, Duration, Duration)>> = Mutex::new(Vec::new());

/// Starts the clock (call first thing in `main`).
pub fn begin() {
    LazyLock::force(&ORIGIN);
}

/// Runs `f` and records how long it took as `phase`.
pub fn phase<T>(phase: impl Into<String>, f: impl FnOnce() -> T) -> T {
    let origin = *ORIGIN;
    let started = Instant::now();
    let value = f();
    record(
        phase.into(),
        started.duration_since(origin),
        started.elapsed(),
    );
    value
}

/// A phase measured by hand: [`Timer::start`], then [`Timer::done`].
pub struct Timer(Instant);

impl Timer {
    pub fn start() -> Timer {
        Timer(Instant::now())
    }

    /// Records the phase, named now that it is over.
    pub fn done(self, phase: String) {
        record(phase, self.0.duration_since(*ORIGIN), self.0.elapsed());
    }
}

/// Records a phase measured by the caller.
pub fn record(phase: String, start: Duration, duration: Duration) {
    if let Ok(mut phases) = PHASES.lock() {
        phases.push((phase, start, duration));
    }
}

/// The verifier's instruction count of a loaded program, as a phase's
/// suffix (OOMTRACE_VERBOSE=1 only: it costs a syscall).
pub fn verified(ebpf: &dyn super::features::ProgramSet, program: &str) -> String {
    if !crate::verbose() {
        return String::new();
    }
    ebpf.program(program)
        .and_then(|p| p.info().ok())
        .and_then(|info| info.verified_instruction_count())
        .map(|n| format!(", {n} insns verified"))
        .unwrap_or_default()
}

/// Time since [`begin`].
pub fn since_begin() -> Duration {
    ORIGIN.elapsed()
}

/// One line per phase: `start: NAME 12.3 ms (at 4.5 ms)`.
pub fn lines() -> Vec<String> {
    let Ok(phases) = PHASES.lock() else {
        return Vec::new();
    };
    phases
        .iter()
        .map(|(name, start, duration)| {
            format!(
                "start: {name} {:.1} ms (at {:.1} ms)",
                ms(*duration),
                ms(*start)
            )
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
