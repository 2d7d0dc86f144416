//! The kill record: one `oom:mark_victim` event, its tasks and their
//! memory cgroups, and which of its values were read on this kernel.

use crate::{CGROUP_MAX_DEPTH, CGROUP_NAME_LEN, OomContext, ReclaimSnapshot, TASK_COMM_LEN};

/// How a record was captured.
pub mod capture {
    /// `tp_btf/mark_victim` with the victim's `task_struct`.
    pub const TP_BTF: u32 = 1;
    /// Classic `oom:mark_victim` tracepoint fields.
    pub const TRACEPOINT: u32 = 2;
}

/// Bits of [`OomKillRecord::valid`]: which values were read on this kernel.
/// A value without its bit is unknown and is reported as `null`.
pub mod valid {
    pub const VICTIM_TGID: u32 = 1 << 0;
    pub const VICTIM_COMM: u32 = 1 << 1;
    pub const VICTIM_UID: u32 = 1 << 2;
    pub const VICTIM_OOM_SCORE_ADJ: u32 = 1 << 3;
    pub const VICTIM_TOTAL_VM: u32 = 1 << 4;
    /// `rss_*_pages` hold the kernel's counters (as `get_mm_counter` reads them).
    pub const VICTIM_RSS: u32 = 1 << 5;
    pub const VICTIM_PGTABLES: u32 = 1 << 6;
    pub const VICTIM_MEMCG: u32 = 1 << 7;
    pub const TRIGGER_MEMCG: u32 = 1 << 8;
    pub const TRIGGER_COMM: u32 = 1 << 9;
    /// `rss_*_exact_pages` hold the per-CPU sums (as `get_mm_counter_sum` reads them).
    pub const VICTIM_RSS_EXACT: u32 = 1 << 10;
    /// The trigger (`current`) is the victim itself.
    pub const TRIGGER_IS_VICTIM: u32 = 1 << 11;
    /// The victim pid is known (always set by both capture paths).
    pub const VICTIM_PID: u32 = 1 << 12;
    pub const VICTIM_START: u32 = 1 << 13;
    /// `victim_ns_pid` and `victim_pid_ns_level` were read.
    pub const VICTIM_NS_PID: u32 = 1 << 14;
    /// The victim's memcg's `oom_group` was read; its value is
    /// [`VICTIM_MEMCG_OOM_GROUP`].
    pub const VICTIM_MEMCG_OOM_GROUP_READ: u32 = 1 << 15;
    pub const VICTIM_MEMCG_OOM_GROUP: u32 = 1 << 16;
    /// `victim_ns_init_tgid` was read.
    pub const VICTIM_NS_INIT: u32 = 1 << 17;
}

/// Bits of [`CgroupRef::flags`].
pub mod cgroup_flags {
    /// A name did not fit in [`super::CGROUP_NAME_LEN`] bytes or the
    /// cgroup is deeper than [`super::CGROUP_MAX_DEPTH`]; only `id` is
    /// reliable.
    pub const PATH_TRUNCATED: u32 = 1 << 0;
    /// A name along the path could not be read.
    pub const PATH_UNREADABLE: u32 = 1 << 1;
}

/// A memory cgroup as seen by the kernel at capture time.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CgroupRef {
    /// kernfs node id: the inode number of the cgroup directory.
    pub id: u64,
    /// Depth below the hierarchy root (root = 0).
    pub level: u32,
    /// Names captured in `names`: `level` unless truncated.
    pub depth: u32,
    /// [`cgroup_flags`] bits.
    pub flags: u32,
    pub _pad: u32,
    /// NUL-terminated names from the cgroup itself (`names[0]`) up to the
    /// child of the hierarchy root (`names[depth - 1]`). The path, as the
    /// kernel log writes it, is `/names[depth-1]/.../names[0]`.
    pub names: [[u8; CGROUP_NAME_LEN]; CGROUP_MAX_DEPTH as usize],
}

/// The task that ran into the OOM, or the victim's identity.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TaskRef {
    pub memcg: CgroupRef,
    pub pid: u32,
    pub tgid: u32,
    pub comm: [u8; TASK_COMM_LEN],
}

/// One `oom:mark_victim` event, as the kernel side sends it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OomKillRecord {
    /// [`kind::OOM_KILL`].
    pub kind: u32,
    pub _kind_pad: u32,
    /// `bpf_ktime_get_boot_ns()` at capture.
    pub boot_ns: u64,
    /// Victim memory figures in bytes. Each has a [`valid`] bit.
    pub victim_total_vm_bytes: u64,
    pub victim_rss_anon_bytes: u64,
    pub victim_rss_file_bytes: u64,
    pub victim_rss_shmem_bytes: u64,
    /// Exact per-CPU sums of the same counters (tp_btf path only).
    pub victim_rss_anon_exact_bytes: u64,
    pub victim_rss_file_exact_bytes: u64,
    pub victim_rss_shmem_exact_bytes: u64,
    pub victim_pgtables_bytes: u64,
    /// The victim process's start (`group_leader->start_boottime`, the
    /// clock of `boot_ns`).
    pub victim_start_ns: u64,
    pub victim: TaskRef,
    pub trigger: TaskRef,
    pub oom: OomContext,
    /// Reclaim history of the victim's, the trigger's and the OOM memcg.
    pub victim_reclaim: ReclaimSnapshot,
    pub trigger_reclaim: ReclaimSnapshot,
    pub oom_reclaim: ReclaimSnapshot,
    pub victim_uid: u32,
    /// [`capture`] value.
    pub capture: u32,
    /// [`valid`] bits.
    pub valid: u32,
    pub victim_oom_score_adj: i16,
    pub _pad: u16,
    /// The victim process's pid in its own pid namespace, and that
    /// namespace's level (0: the host's).
    pub victim_ns_pid: u32,
    pub victim_pid_ns_level: u32,
    /// Host tgid of the init (pid 1) of the victim's pid namespace:
    /// `pid_namespace.child_reaper`.
    pub victim_ns_init_tgid: u32,
    pub _ns_pad: u32,
}

pub(crate) const CGROUP_NAMES: usize = CGROUP_NAME_LEN * CGROUP_MAX_DEPTH as usize;
const _: () = assert!(core::mem::size_of::<CgroupRef>() == 24 + CGROUP_NAMES);
const _: () = assert!(core::mem::size_of::<TaskRef>() == 24 + CGROUP_NAMES + 24);
// A Cmdline placed right after a record starts where the record ends.
const _: () = assert!(core::mem::size_of::<OomKillRecord>().is_multiple_of(8));
const _: () = assert!(
    core::mem::size_of::<OomKillRecord>() == 8 + 80 + 2 * (48 + CGROUP_NAMES) + 104 + 3 * 64 + 32
);
