//! Records and constants shared by oomtrace's eBPF programs and its loader.
//!
//! Everything here is `#[repr(C)]` with explicit padding, widest fields first,
//! so both sides agree on the layout byte for byte. Sizes are asserted at
//! compile time: changing a record means changing both sides together.
#![no_std]

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
    /// Ring buffer of [`super::OomKillRecord`]s.
    pub const EVENTS: &str = "EVENTS";
    /// Per-CPU count of records the ring buffer could not take.
    pub const LOST: &str = "LOST";
    /// Read-only global holding [`super::KernelLayout`].
    pub const LAYOUT: &str = "LAYOUT";
}

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
    pub victim: TaskRef,
    pub trigger: TaskRef,
    pub victim_uid: u32,
    /// [`capture`] value.
    pub capture: u32,
    /// [`valid`] bits.
    pub valid: u32,
    pub victim_oom_score_adj: i16,
    pub _pad: u16,
}

/// Where the kernel keeps what we read, resolved by the loader from the
/// running kernel's BTF and tracefs, and handed to the programs as a
/// read-only global before load. The verifier sees these as constants.
/// Every offset is in bytes; [`OFFSET_UNKNOWN`] means "not on this kernel".
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelLayout {
    // struct task_struct
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_comm: u32,
    pub task_mm: u32,
    pub task_signal: u32,
    pub task_cgroups: u32,
    // struct signal_struct
    pub signal_oom_score_adj: u32,
    // struct mm_struct
    pub mm_total_vm: u32,
    pub mm_pgtables_bytes: u32,
    /// Offset of `rss_stat`'s counter for MM_ANONPAGES, MM_FILEPAGES and
    /// MM_SHMEMPAGES: an `atomic_long_t` (< 6.2) or a `struct percpu_counter`.
    pub mm_rss_anon: u32,
    pub mm_rss_file: u32,
    pub mm_rss_shmem: u32,
    /// 1: `atomic_long_t` counters; 2: `struct percpu_counter`.
    pub rss_kind: u32,
    // struct percpu_counter
    pub percpu_counter_count: u32,
    pub percpu_counter_counters: u32,
    // struct css_set -> subsys[memory_cgrp_id]
    pub css_set_memory_subsys: u32,
    // struct cgroup_subsys_state
    pub css_cgroup: u32,
    // struct cgroup
    pub cgroup_kn: u32,
    pub cgroup_level: u32,
    // struct kernfs_node
    pub kn_parent: u32,
    pub kn_name: u32,
    pub kn_id: u32,
    // struct bpf_array, to turn per-CPU pointers into addresses
    pub bpf_array_pptrs: u32,
    /// Possible CPUs (per-CPU sums stop here).
    pub nr_cpus: u32,
    /// log2(page size).
    pub page_shift: u32,
    // Classic tracepoint fields (offsets into the event record).
    pub tp_pid: u32,
    /// `__data_loc char[] comm`.
    pub tp_comm: u32,
    pub tp_total_vm: u32,
    pub tp_anon_rss: u32,
    pub tp_file_rss: u32,
    pub tp_shmem_rss: u32,
    pub tp_uid: u32,
    pub tp_pgtables: u32,
    pub tp_oom_score_adj: u32,
    /// Size in bytes of `oom_score_adj` in the event (2 on current kernels).
    pub tp_oom_score_adj_size: u32,
    pub _pad: u32,
}

impl KernelLayout {
    /// A layout with nothing known.
    pub const UNKNOWN: KernelLayout = KernelLayout {
        task_pid: OFFSET_UNKNOWN,
        task_tgid: OFFSET_UNKNOWN,
        task_comm: OFFSET_UNKNOWN,
        task_mm: OFFSET_UNKNOWN,
        task_signal: OFFSET_UNKNOWN,
        task_cgroups: OFFSET_UNKNOWN,
        signal_oom_score_adj: OFFSET_UNKNOWN,
        mm_total_vm: OFFSET_UNKNOWN,
        mm_pgtables_bytes: OFFSET_UNKNOWN,
        mm_rss_anon: OFFSET_UNKNOWN,
        mm_rss_file: OFFSET_UNKNOWN,
        mm_rss_shmem: OFFSET_UNKNOWN,
        rss_kind: 0,
        percpu_counter_count: OFFSET_UNKNOWN,
        percpu_counter_counters: OFFSET_UNKNOWN,
        css_set_memory_subsys: OFFSET_UNKNOWN,
        css_cgroup: OFFSET_UNKNOWN,
        cgroup_kn: OFFSET_UNKNOWN,
        cgroup_level: OFFSET_UNKNOWN,
        kn_parent: OFFSET_UNKNOWN,
        kn_name: OFFSET_UNKNOWN,
        kn_id: OFFSET_UNKNOWN,
        bpf_array_pptrs: OFFSET_UNKNOWN,
        nr_cpus: 0,
        page_shift: 12,
        tp_pid: OFFSET_UNKNOWN,
        tp_comm: OFFSET_UNKNOWN,
        tp_total_vm: OFFSET_UNKNOWN,
        tp_anon_rss: OFFSET_UNKNOWN,
        tp_file_rss: OFFSET_UNKNOWN,
        tp_shmem_rss: OFFSET_UNKNOWN,
        tp_uid: OFFSET_UNKNOWN,
        tp_pgtables: OFFSET_UNKNOWN,
        tp_oom_score_adj: OFFSET_UNKNOWN,
        tp_oom_score_adj_size: 0,
        _pad: 0,
    };
}

/// `rss_kind` values.
pub mod rss_kind {
    pub const ATOMIC_LONG: u32 = 1;
    pub const PERCPU_COUNTER: u32 = 2;
}

/// Bytes a bpf_array header may span for the per-CPU pointer lookup.
pub const BPF_ARRAY_PEEK: usize = 512;

const CGROUP_NAMES: usize = CGROUP_NAME_LEN * CGROUP_MAX_DEPTH as usize;
const _: () = assert!(core::mem::size_of::<CgroupRef>() == 24 + CGROUP_NAMES);
const _: () = assert!(core::mem::size_of::<TaskRef>() == 24 + CGROUP_NAMES + 24);
const _: () = assert!(core::mem::size_of::<OomKillRecord>() == 72 + 2 * (48 + CGROUP_NAMES) + 16);
const _: () = assert!(core::mem::size_of::<KernelLayout>() == 36 * 4);

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain integers and byte arrays with explicit padding; any bit
    // pattern is valid.
    unsafe impl aya::Pod for super::OomKillRecord {}
    unsafe impl aya::Pod for super::KernelLayout {}
}
