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
    /// `tp_btf/mark_victim` program that finds the OOM killer's
    /// `struct oom_control`; attached before [`MARK_VICTIM_BTF`], which
    /// then picks its result up.
    pub const OOM_CONTROL_BTF: &str = "oom_control_btf";
    /// Ring buffer of [`super::OomKillRecord`]s.
    pub const EVENTS: &str = "EVENTS";
    /// Per-CPU count of records the ring buffer could not take.
    pub const LOST: &str = "LOST";
    /// Read-only global holding [`super::KernelLayout`].
    pub const LAYOUT: &str = "LAYOUT";
    /// tp_btf programs timing memcg direct reclaim (the charge path).
    pub const RECLAIM_BEGIN_BTF: &str = "memcg_reclaim_begin_btf";
    pub const RECLAIM_END_BTF: &str = "memcg_reclaim_end_btf";
    /// Read-only global: 1 when the reclaim programs are meant to run.
    pub const RECLAIM_TRACKED: &str = "RECLAIM_TRACKED";
    /// Read-only global: `--pressure` threshold, stall ns per second (0: off).
    pub const PRESSURE_NS: &str = "PRESSURE_NS";
    /// tp_btf program for `--sigkill`.
    pub const SIGKILL_BTF: &str = "signal_generate_btf";
    /// fentry/fexit on `oom_kill_process()` and the `tp_btf/mark_victim`
    /// program that uses what they saw instead of searching the stack.
    pub const OOM_KILL_PROCESS_ENTRY: &str = "oom_kill_process_entry";
    pub const OOM_KILL_PROCESS_EXIT: &str = "oom_kill_process_exit";
    pub const OOM_CONTROL_FENTRY_BTF: &str = "oom_control_fentry_btf";
}

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
}

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
    // struct oom_control
    pub oc_memcg: u32,
    pub oc_gfp_mask: u32,
    pub oc_order: u32,
    pub oc_totalpages: u32,
    pub oc_chosen: u32,
    pub oc_chosen_points: u32,
    pub oc_constraint: u32,
    // struct mem_cgroup
    pub memcg_css: u32,
    pub memcg_usage: u32,
    pub memcg_max: u32,
    pub memcg_watermark: u32,
    pub memcg_failcnt: u32,
    /// `memory_events[MEMCG_OOM_KILL]`.
    pub memcg_oom_kill_events: u32,
    // struct cgroup_subsys_state
    pub css_parent: u32,
    /// `kernel_siginfo.si_code`.
    pub siginfo_code: u32,
    // struct task_struct
    pub task_group_leader: u32,
    pub task_exit_code: u32,
    pub task_stack: u32,
    // struct mm_struct: where the process's argv and environ strings live.
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub mm_env_start: u32,
    pub mm_env_end: u32,
    /// `task_struct.start_boottime`.
    pub task_start_boottime: u32,
    /// Kernel stack size (THREAD_SIZE), a multiple of STACK_SCAN_CHUNK.
    pub thread_size: u32,
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
        oc_memcg: OFFSET_UNKNOWN,
        oc_gfp_mask: OFFSET_UNKNOWN,
        oc_order: OFFSET_UNKNOWN,
        oc_totalpages: OFFSET_UNKNOWN,
        oc_chosen: OFFSET_UNKNOWN,
        oc_chosen_points: OFFSET_UNKNOWN,
        oc_constraint: OFFSET_UNKNOWN,
        memcg_css: OFFSET_UNKNOWN,
        memcg_usage: OFFSET_UNKNOWN,
        memcg_max: OFFSET_UNKNOWN,
        memcg_watermark: OFFSET_UNKNOWN,
        memcg_failcnt: OFFSET_UNKNOWN,
        memcg_oom_kill_events: OFFSET_UNKNOWN,
        css_parent: OFFSET_UNKNOWN,
        siginfo_code: OFFSET_UNKNOWN,
        task_group_leader: OFFSET_UNKNOWN,
        task_exit_code: OFFSET_UNKNOWN,
        task_stack: OFFSET_UNKNOWN,
        mm_arg_start: OFFSET_UNKNOWN,
        mm_arg_end: OFFSET_UNKNOWN,
        mm_env_start: OFFSET_UNKNOWN,
        mm_env_end: OFFSET_UNKNOWN,
        task_start_boottime: OFFSET_UNKNOWN,
        thread_size: 0,
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
    };
}

/// `rss_kind` values.
pub mod rss_kind {
    pub const ATOMIC_LONG: u32 = 1;
    pub const PERCPU_COUNTER: u32 = 2;
}

/// The kill's `struct oom_control` is searched for in the current task's
/// kernel stack, from its top down, in chunks of this many bytes.
pub const STACK_SCAN_CHUNK: usize = 1024;
/// Most of the kernel stack searched, from its top: 16 KiB, the whole
/// stack on x86-64 and arm64. (KASAN doubles the stack; scanning 32 KiB
/// would take the verifier past its 1M-instruction budget, and the
/// OOM killer's frames are in the upper part anyway.)
pub const MAX_STACK_SCAN: u32 = 16 << 10;

/// Bits of [`OomContext::flags`].
pub mod oom_context {
    /// The kill's `struct oom_control` was found on the stack; `gfp_mask`,
    /// `order`, `constraint`, `totalpages` and `chosen_points` are its.
    pub const FOUND: u32 = 1 << 0;
    /// The OOM was confined to a memory cgroup (`oc->memcg` is set).
    pub const MEMCG: u32 = 1 << 1;
    /// That memcg is the victim's memcg or one of its ancestors, at
    /// `memcg_level` below the root (the path is a prefix of the victim's).
    pub const MEMCG_CONTAINS_VICTIM: u32 = 1 << 2;
    /// The memcg's page counter and OOM-kill count were read.
    pub const MEMCG_COUNTERS: u32 = 1 << 3;
    /// The victim is not its process's thread group leader (the OOM
    /// killer chose the process; the kernel marked a thread with an mm).
    pub const VICTIM_IS_THREAD: u32 = 1 << 4;
    /// Read at `oom_kill_process()` (fentry): `incident_ns`, `incident_seq`
    /// and `chosen_tgid` are set.
    pub const INCIDENT: u32 = 1 << 5;
    /// Killed with the chosen victim as a member of its memory.oom.group.
    pub const GROUP_MEMBER: u32 = 1 << 6;
}

/// The OOM killer's own view of the kill, from its `struct oom_control`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OomContext {
    /// Pages the OOM killer considered (`oc->totalpages`).
    pub totalpages: u64,
    /// The victim's badness score (`oc->chosen_points`).
    pub chosen_points: i64,
    /// kernfs id of `oc->memcg`, the cgroup whose limit was hit.
    pub memcg_id: u64,
    /// That memcg's memory page counter at the kill, in pages.
    pub memcg_usage_pages: u64,
    pub memcg_limit_pages: u64,
    pub memcg_watermark_pages: u64,
    pub memcg_failcnt: u64,
    /// `memory_events[MEMCG_OOM_KILL]`: OOM kills in this memcg's subtree,
    /// this one included.
    pub memcg_oom_kills: u64,
    pub gfp_mask: u32,
    pub order: i32,
    /// `enum oom_constraint`: NONE=0, CPUSET=1, MEMORY_POLICY=2, MEMCG=3.
    pub constraint: u32,
    pub memcg_level: u32,
    /// [`oom_context`] bits.
    pub flags: u32,
    /// The process the OOM killer chose (`oc->chosen`).
    pub chosen_tgid: u32,
    /// Boot time at `oom_kill_process()` entry: the incident's id.
    pub incident_ns: u64,
    /// This victim's place in the incident (1: the chosen one).
    pub incident_seq: u32,
    pub _pad: u32,
}

/// The end of an OOM incident (fexit of `oom_kill_process()`): how many
/// tasks it marked as victims.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct IncidentRecord {
    /// [`kind::OOM_INCIDENT`].
    pub kind: u32,
    pub victims: u32,
    pub incident_ns: u64,
}

/// One-second buckets of reclaim history kept per memcg: a power of two,
/// so the kernel side indexes with a mask the verifier can bound.
pub const RECLAIM_BUCKETS: usize = 16;

/// Seconds of history the kill record sums ("in the last 10 s").
pub const RECLAIM_WINDOW_SECS: u64 = 10;

/// Memcgs whose reclaim history is kept (least recently used ones go):
/// 2048 x 560 bytes of kernel memory.
pub const RECLAIM_MEMCGS: u32 = 2048;

/// Direct reclaim in one second.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ReclaimBucket {
    /// `boot_ns / 1e9` of the second this bucket holds.
    pub second: u64,
    pub stalls: u64,
    pub stall_ns: u64,
    pub reclaimed_pages: u64,
}

/// Direct reclaim on the charge path of tasks in one memory cgroup's
/// subtree (`vmscan:mm_vmscan_memcg_reclaim_begin/end`), since oomtrace
/// started or the entry was (re)created.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ReclaimStats {
    pub stalls: u64,
    pub stall_ns: u64,
    pub max_stall_ns: u64,
    pub reclaimed_pages: u64,
    /// boot_ns of the first and latest stall counted.
    pub first_ns: u64,
    pub last_ns: u64,
    /// boot_ns of the last [`PressureRecord`] sent for this memcg.
    pub last_pressure_ns: u64,
    /// Indexed by `second & (RECLAIM_BUCKETS - 1)`.
    pub buckets: [ReclaimBucket; RECLAIM_BUCKETS],
}

/// A memcg whose tasks stalled in reclaim for at least the `--pressure`
/// threshold within one second: an early warning, sent at most once per
/// [`PRESSURE_INTERVAL_NS`] per memcg.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct PressureRecord {
    /// [`kind::MEMCG_PRESSURE`].
    pub kind: u32,
    pub _pad: u32,
    pub boot_ns: u64,
    pub memcg_id: u64,
    /// Within the current second, up to now.
    pub stalls: u64,
    pub stall_ns: u64,
    pub reclaimed_pages: u64,
    pub threshold_ns: u64,
    pub memcg_level: u64,
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

/// Most bytes of a victim's command line (`mm->arg_start..arg_end`) and
/// environment copied at the kill. The environment gets more room: in a
/// pod, Kubernetes' service variables come first and can run to kilobytes.
pub const CMDLINE_ARGS_MAX: usize = 4096;
pub const CMDLINE_ENV_MAX: usize = 12288;

/// Copied bytes of a victim's command line and environment, which follow
/// an [`OomKillRecord`] (the victim ran into the OOM itself, so its memory
/// was `current`'s) or an [`OutcomeRecord`] (read at its exit, before the
/// kernel tears its memory down) in the same ring buffer entry: the header,
/// then `args_len` bytes of arguments, then `env_len` bytes of environment.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct CmdlineHeader {
    pub args_len: u32,
    pub env_len: u32,
    /// The full sizes in the process; more than `*_len` means truncated.
    pub args_total: u64,
    pub env_total: u64,
}

/// Kernel-side working space for a header and its bytes.
#[repr(C)]
pub struct Cmdline {
    pub header: CmdlineHeader,
    pub data: [u8; CMDLINE_ARGS_MAX + CMDLINE_ENV_MAX],
}

/// A SIGKILL sent to a task (`signal:signal_generate`, `--sigkill`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SigkillRecord {
    /// [`kind::SIGKILL`].
    pub kind: u32,
    /// `si_code`: SI_USER (0) for kill(2), SI_TKILL (-6), SI_QUEUE (-1),
    /// SI_KERNEL (0x80) from the kernel itself.
    pub code: i32,
    pub boot_ns: u64,
    /// [`valid`] bits: VICTIM_* for the target, TRIGGER_* for the sender.
    pub valid: u32,
    /// 1 when sent to the whole thread group.
    pub group: u32,
    pub target: TaskRef,
    pub sender: TaskRef,
    /// `enum trace_signal_result`: 0 delivered, 4 delivered without info.
    pub result: u32,
    pub _pad: u32,
    pub _pad2: u64,
}

/// At most one [`PressureRecord`] per memcg this often.
pub const PRESSURE_INTERVAL_NS: u64 = 10_000_000_000;

/// A memcg's reclaim history at the moment of a kill, taken by the kernel
/// side from its [`ReclaimStats`] entry.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ReclaimSnapshot {
    pub stalls: u64,
    pub stall_ns: u64,
    pub max_stall_ns: u64,
    pub reclaimed_pages: u64,
    /// Sums over the [`RECLAIM_WINDOW_SECS`] seconds up to the kill's.
    pub window_stalls: u64,
    pub window_stall_ns: u64,
    pub window_reclaimed_pages: u64,
    /// 1 when taken (reclaim was tracked); 0 leaves the rest meaningless.
    pub taken: u64,
}

/// Bytes a bpf_array header may span for the per-CPU pointer lookup.
pub const BPF_ARRAY_PEEK: usize = 512;

const CGROUP_NAMES: usize = CGROUP_NAME_LEN * CGROUP_MAX_DEPTH as usize;
const _: () = assert!(core::mem::size_of::<CgroupRef>() == 24 + CGROUP_NAMES);
const _: () = assert!(core::mem::size_of::<TaskRef>() == 24 + CGROUP_NAMES + 24);
const _: () = assert!(core::mem::size_of::<OomContext>() == 104);
const _: () = assert!(core::mem::size_of::<ReclaimStats>() == 56 + 32 * RECLAIM_BUCKETS);
const _: () = assert!(core::mem::size_of::<PressureRecord>() == 64);
const _: () = assert!(core::mem::size_of::<OutcomeRecord>() == 64);
const _: () = assert!(core::mem::size_of::<IncidentRecord>() == 16);
// A Cmdline placed right after a record starts where the record ends.
const _: () = assert!(core::mem::size_of::<OomKillRecord>().is_multiple_of(8));
const _: () = assert!(core::mem::size_of::<CmdlineHeader>() == 24);
const _: () = assert!(core::mem::size_of::<SigkillRecord>() == 24 + 2 * (48 + CGROUP_NAMES) + 16);
const _: () = assert!(RECLAIM_BUCKETS.is_power_of_two());
const _: () = assert!(RECLAIM_WINDOW_SECS < RECLAIM_BUCKETS as u64);
const _: () = assert!(core::mem::size_of::<ReclaimSnapshot>() == 64);
const _: () = assert!(
    core::mem::size_of::<OomKillRecord>() == 8 + 80 + 2 * (48 + CGROUP_NAMES) + 104 + 3 * 64 + 16
);
const _: () = assert!(core::mem::size_of::<KernelLayout>() == 59 * 4);

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

#[cfg(feature = "user")]
mod pod;
