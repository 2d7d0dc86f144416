//! After the kill: victims tracked to their exit, what the OOM reaper did,
//! and the outcome record sent at the exit.

/// Why a victim was tracked to its exit ([`VictimState::cause`]).
pub mod cause {
    pub const OOM_KILL: u32 = 0;
    pub const SIGKILL: u32 = 1;
}

/// What the OOM reaper did with a victim's memory (`oom:*_task_reaping`).
pub mod reaper {
    /// Nothing seen yet.
    pub const NOT_RUN: u32 = 0;
    /// `start_task_reaping` without `finish_task_reaping`.
    pub const STARTED: u32 = 1;
    /// `finish_task_reaping`: the victim's anonymous memory was unmapped.
    pub const REAPED: u32 = 2;
    /// `skip_task_reaping`: the mm was being torn down or locked.
    pub const SKIPPED: u32 = 3;
}

/// A victim, tracked from its kill to its exit.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct VictimState {
    pub kill_ns: u64,
    pub reap_start_ns: u64,
    pub reap_end_ns: u64,
    pub tgid: u32,
    /// [`reaper`] value.
    pub reaper: u32,
    /// [`cause`] value.
    pub cause: u32,
    /// 1 when `mark_victim` already sent the victim's command line.
    pub cmdline_taken: u32,
}

/// A victim's exit: how long after its kill, and what the OOM reaper had
/// done by then.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct OutcomeRecord {
    /// [`kind::OOM_OUTCOME`].
    pub kind: u32,
    pub _pad: u32,
    pub state: VictimState,
    pub exit_ns: u64,
    /// The victim thread.
    pub pid: u32,
    /// `task->exit_code`: the terminating signal in the low 7 bits.
    pub exit_code: u32,
}

const _: () = assert!(core::mem::size_of::<OutcomeRecord>() == 64);
