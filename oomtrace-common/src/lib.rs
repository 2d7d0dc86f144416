//! Records and constants shared by oomtrace's eBPF programs and its loader.
//!
//! Everything here is `#[repr(C)]` with explicit padding, widest fields first,
//! so both sides agree on the layout byte for byte. Sizes are asserted at
//! compile time: changing a record means changing both sides together.
#![cfg_attr(not(test), no_std)]

/// Length of `task_struct.comm`, including the terminating NUL.
pub const TASK_COMM_LEN: usize = 16;

/// Bytes kept of each cgroup name along a path, with its NUL. A longer
/// name is flagged truncated and the path resolved by id in userspace.
pub const CGROUP_NAME_LEN: usize = 128;

/// Most path components captured in kernel space. Deeper cgroups are
/// flagged truncated. Each level is a fixed slot, so the verifier checks
/// the walk in one linear pass (a variable-offset path buffer made it
/// re-check the copy loop once per possible depth: 330 ms at depth 32).
pub const CGROUP_MAX_DEPTH: u32 = 16;

/// Most CPUs whose per-CPU RSS deltas are summed in kernel space.
pub const MAX_CPUS: u32 = 1024;

/// Value of an offset the loader could not resolve on the running kernel.
pub const OFFSET_UNKNOWN: u32 = u32::MAX;

/// Names of programs, maps and globals, used by both sides.
pub mod names {
    /// `tp_btf/mark_victim` program: gets the victim's `struct task_struct *`.
    pub const MARK_VICTIM_BTF: &str = "mark_victim_btf";
    /// Classic `tracepoint/oom/mark_victim` program: reads the event fields.
    pub const MARK_VICTIM_TRACEPOINT: &str = "mark_victim_tracepoint";
    /// `tp_btf/mark_victim` program that finds the OOM killer's
    /// `struct oom_control`; attached before [`MARK_VICTIM_BTF`], which
    /// then picks its result up.
    pub const OOM_CONTROL_BTF: &str = "oom_control_btf";
    /// Ring buffer of every record the kernel side sends, each starting
    /// with its [`super::kind`].
    pub const EVENTS: &str = "EVENTS";
    /// Per-CPU count of records the ring buffer could not take.
    pub const LOST: &str = "LOST";
    /// Read-only global holding [`super::KernelLayout`].
    pub const LAYOUT: &str = "LAYOUT";
    /// tp_btf programs timing memcg direct reclaim (the charge path).
    pub const RECLAIM_BEGIN_BTF: &str = "memcg_reclaim_begin_btf";
    pub const RECLAIM_END_BTF: &str = "memcg_reclaim_end_btf";
    /// One-entry array: 1 once the loader attached the reclaim programs.
    pub const RECLAIM_SNAPSHOT_BTF: &str = "reclaim_snapshot_btf";
    /// Read-only global: `--pressure` threshold, stall ns per second (0: off).
    pub const PRESSURE_NS: &str = "PRESSURE_NS";
    /// tp_btf program for `--sigkill`.
    pub const SIGKILL_BTF: &str = "signal_generate_btf";
    /// fentry/fexit on `oom_kill_process()` and the `tp_btf/mark_victim`
    /// program that uses what they saw instead of searching the stack.
    pub const OOM_KILL_PROCESS_ENTRY: &str = "oom_kill_process_entry";
    pub const OOM_KILL_PROCESS_EXIT: &str = "oom_kill_process_exit";
    pub const OOM_CONTROL_FENTRY_BTF: &str = "oom_control_fentry_btf";
    /// `tp_btf/mark_victim` program that walks the OOM domain's processes;
    /// attached after [`MARK_VICTIM_BTF`].
    pub const CANDIDATES_BTF: &str = "candidates_btf";
    /// Array of [`super::TABLE_MARKS`] u32 slots: [`CANDIDATES_BTF`] puts
    /// each victim's pid in slot `pid % TABLE_MARKS` once it is done with
    /// that victim (table sent, refused or not taken), so userspace knows
    /// when to stop waiting for a table however slow the walk was;
    /// [`MARK_VICTIM_BTF`] clears the slot before it sends the kill record.
    pub const TABLE_MARKS: &str = "TABLE_MARKS";
}

/// Slots of [`names::TABLE_MARKS`]: kills whose table programs may be in
/// flight at once without overwriting each other's mark.
pub const TABLE_MARKS: u32 = 64;

/// The first u32 of every ring buffer entry: what it is.
pub mod kind {
    /// An [`super::OomKillRecord`].
    pub const OOM_KILL: u32 = 1;
    /// A [`super::PressureRecord`].
    pub const MEMCG_PRESSURE: u32 = 2;
    /// An [`super::OutcomeRecord`].
    pub const OOM_OUTCOME: u32 = 3;
    /// A [`super::SigkillRecord`].
    pub const SIGKILL: u32 = 4;
    /// An [`super::IncidentRecord`].
    pub const OOM_INCIDENT: u32 = 5;
    /// A [`super::CandidatesRecord`].
    pub const CANDIDATES: u32 = 6;
}

/// Bytes a bpf_array header may span for the per-CPU pointer lookup.
pub const BPF_ARRAY_PEEK: usize = 512;

mod aftermath;
mod candidates;
mod cmdline;
mod kill;
mod layout;
mod oom_killer;
mod reclaim;
mod signal;

pub use aftermath::{OutcomeRecord, VictimState, cause, reaper};
pub use candidates::{
    CANDIDATE_ROWS, CANDIDATE_WALK_MAX, CandidateRow, CandidatesRecord, candidates_flags,
};
pub use cmdline::{CMDLINE_ARGS_MAX, CMDLINE_ENV_MAX, Cmdline, CmdlineHeader};
pub use kill::{CgroupRef, OomKillRecord, TaskRef, capture, cgroup_flags, valid};
pub use layout::{KernelLayout, LayoutField, Source, rss_kind};
pub use oom_killer::{
    IncidentRecord, MAX_STACK_SCAN, OomContext, STACK_SCAN_CHUNK, address_mask, constraint,
    kernel_pointer_miss, oom_context,
};
pub use reclaim::{
    PRESSURE_INTERVAL_NS, PressureRecord, RECLAIM_BUCKETS, RECLAIM_MEMCGS, RECLAIM_WINDOW_SECS,
    ReclaimBucket, ReclaimSnapshot, ReclaimStats,
};
pub use signal::{SIGTERM_NOTES, SigkillRecord, SigtermNote, signal_result};

/// The largest ring buffer entry the kernel side sends: a kill record with
/// a full command line after it. The ring buffer must hold at least this
/// (plus its 8-byte entry header).
pub const MAX_ENTRY_BYTES: usize = {
    let kill = core::mem::size_of::<OomKillRecord>();
    let outcome = core::mem::size_of::<OutcomeRecord>();
    let record = if kill > outcome { kill } else { outcome };
    record + core::mem::size_of::<CmdlineHeader>() + CMDLINE_ARGS_MAX + CMDLINE_ENV_MAX
};
const _: () = assert!(MAX_ENTRY_BYTES >= core::mem::size_of::<SigkillRecord>());
const _: () = assert!(MAX_ENTRY_BYTES >= core::mem::size_of::<CandidatesRecord>());

#[cfg(feature = "user")]
mod pod;
