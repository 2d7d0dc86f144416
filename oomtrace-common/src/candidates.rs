//! The OOM domain's processes as the kernel side saw them at the kill: a
//! walk of the process list in `tp_btf/mark_victim`, before the victim's
//! memory is freed and before anyone else has moved.

use crate::TASK_COMM_LEN;

/// Rows the kernel side keeps per kill: the highest-scored processes.
/// More (`--candidates` above this) are read from /proc instead.
pub const CANDIDATE_ROWS: usize = 16;

/// Most processes one walk visits; a longer process list leaves the table
/// incomplete (and userspace reads /proc instead).
pub const CANDIDATE_WALK_MAX: u32 = 1 << 16;

/// One process of the domain, as `oom_badness()` reads it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CandidateRow {
    /// Pages, from the kernel's counters (`get_mm_counter()`, as
    /// `oom_badness()` and /proc/PID/status read them).
    pub rss_anon_pages: u64,
    pub rss_file_pages: u64,
    pub rss_shmem_pages: u64,
    /// `MM_SWAPENTS`.
    pub swap_pages: u64,
    pub pgtables_bytes: u64,
    /// The walk's own `oom_badness()` (`i64::MIN`: unkillable), by which
    /// it keeps the top rows.
    pub badness: i64,
    pub tgid: u32,
    pub oom_score_adj: i16,
    pub _pad: u16,
    pub comm: [u8; TASK_COMM_LEN],
}

/// `flags` of a [`CandidatesRecord`].
pub mod candidates_flags {
    /// The walk went round the whole process list.
    pub const COMPLETE: u32 = 1;
    /// A machine-wide domain (no memcg): every process with memory.
    pub const MACHINE: u32 = 1 << 1;
}

/// Sent by `candidates_btf` right after the kill record of the same victim
/// (same CPU, same tracepoint call: the ring buffer keeps the order), for
/// every kill with an OOM context that is not a memory.oom.group member's.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CandidatesRecord {
    /// [`crate::kind::CANDIDATES`].
    pub kind: u32,
    /// Rows filled in `table`, unordered.
    pub rows: u32,
    /// The victim (thread id), which the kill record names too.
    pub victim_pid: u32,
    /// [`candidates_flags`] bits.
    pub flags: u32,
    pub boot_ns: u64,
    /// Processes in the domain, the victim's excluded.
    pub processes: u32,
    /// Processes the walk visited.
    pub walked: u32,
    pub table: [CandidateRow; CANDIDATE_ROWS],
}

const _: () = assert!(core::mem::size_of::<CandidateRow>() == 72);
const _: () = assert!(core::mem::size_of::<CandidatesRecord>() == 32 + 72 * CANDIDATE_ROWS);
