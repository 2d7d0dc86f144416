//! Who else was in the OOM domain, taken at the kill: a walk of the process
//! list (`task_struct.tasks`, what `for_each_process()` follows) that keeps
//! the processes in the OOM memcg's subtree (every process with memory
//! for a machine-wide OOM), scored as `oom_badness()` scores them, the
//! highest [`CANDIDATE_ROWS`] in a table. Read in the kernel, the table is
//! the domain as the OOM killer weighed it, before the victim's memory is
//! freed and without a /proc read in front of the record's line.
//!
//! tp_btf programs run inside an RCU read-side section, so the list's
//! entries stay allocated while we follow it; every read is a probe read.

use aya_ebpf::{
    cty::c_void,
    helpers::generated::{bpf_ktime_get_boot_ns, bpf_loop, bpf_probe_read_kernel},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use oomtrace_common::{
    CANDIDATE_ROWS, CANDIDATE_WALK_MAX, CandidateRow, CandidatesRecord, TASK_COMM_LEN,
    candidates_flags, oom_context, rss_kind,
};

use crate::{
    CANDIDATE_WALK,
    layout::{known, layout},
    read::{address_of, field, pointer, u32_or_zero, u64_or_zero},
};

/// `BPF_RB_NO_WAKEUP`: commit without waking the ring buffer's reader.
const BPF_RB_NO_WAKEUP: u64 = 1;

/// `OOM_SCORE_ADJ_MIN`: never chosen, scored `LONG_MIN`.
const UNKILLABLE: i16 = -1000;

/// The walk's state, in map memory (see `oom_control::Handover` on why not
/// the stack or bpf_loop's index).
#[repr(C)]
pub struct Walk {
    /// The process the walk is at (`task_struct *`).
    cursor: u64,
    /// Where it started, the victim's thread group leader: back there, the
    /// list has been walked round.
    start: u64,
    /// Times the walk passed `init_task` (pid 0, the list's head): twice
    /// means the start left the list, and the walk stops.
    heads: u64,
    /// The OOM memcg's `struct cgroup *` (0: the whole machine) and level.
    domain: u64,
    level: u64,
    victim_tgid: u64,
    /// `oc->totalpages / 1000`: one point of `oom_score_adj` in pages.
    per_mille: u64,
    /// `rss_stat` counters' value inside each counter (`percpu_counter`'s
    /// `count`, or 0 for a bare `atomic_long_t`).
    counter_inner: u64,
    /// The last `css_set` looked at and whether it is in the domain:
    /// processes of one cgroup share it, and come in runs (fork order).
    last_cset: u64,
    last_in_domain: u64,
    /// Where the lowest score of a full table is, and that score.
    min_at: u64,
    min: i64,
    /// The process being read.
    row: CandidateRow,
    pub record: CandidatesRecord,
}

/// `tp_btf/mark_victim`, attached after `mark_victim_btf`: the kill record
/// goes out first, so the victim is followed to its exit before the walk
/// (its exit hook may run within microseconds of the SIGKILL), and the
/// table comes right after it. Userspace waits for it: every kill with an
/// OOM context that is not a memory.oom.group member's gets one, complete
/// or not, unless the ring buffer is full; the victim's mark in
/// `TABLE_MARKS`, set last, ends the wait.
#[btf_tracepoint(function = "mark_victim")]
pub fn candidates_btf(ctx: BtfTracePointContext) -> u32 {
    // A plain number, as in oom_control::begin.
    let victim = address_of(ctx.arg::<*const u8>(0));
    if let Some(victim) = victim
        && let Some((css, totalpages, flags)) = crate::oom_control::domain_of(victim)
        // A memory.oom.group member dies with the chosen one: one table
        // for the incident, with the chosen victim's record.
        && flags & oom_context::GROUP_MEMBER == 0
        && let Some(walk) = CANDIDATE_WALK.get_ptr_mut(0)
    {
        // SAFETY: per-CPU slot; tracepoint programs do not nest on one CPU.
        let walk = unsafe { &mut *walk };
        let record = &mut walk.record;
        record.kind = oomtrace_common::kind::CANDIDATES;
        record.rows = 0;
        record.processes = 0;
        record.walked = 0;
        record.flags = 0;
        record.victim_pid = field::<u32>(victim, layout!(task_pid)).unwrap_or(0);
        // Cut short, it is sent incomplete (userspace reads /proc).
        // A memcg OOM whose memcg could not be read is not walked as
        // the whole machine.
        if css != 0 || flags & oom_context::MEMCG == 0 {
            let _ = walk_domain(walk, victim, css, totalpages);
        }
        // SAFETY: helper without arguments.
        walk.record.boot_ns = unsafe { bpf_ktime_get_boot_ns() };
        // Without a wakeup: only a reader awake for this kill's record
        // reads it (waiting for it, or right after the record), and the
        // wakeup's self-IPI would cost the OOM path some 15 us here. Not
        // counted in LOST when the ring buffer is full: no record is lost,
        // the kill is written without a table after a short wait and
        // userspace reads /proc (its `source` says so).
        let _ = crate::EVENTS.output::<CandidatesRecord>(&walk.record, BPF_RB_NO_WAKEUP);
    }
    crate::oom_control::done();
    // Last: a reader that sees the mark and then an empty ring buffer
    // knows no table is coming for this victim.
    if let Some(pid) = victim.and_then(|victim| field::<u32>(victim, layout!(task_pid))) {
        set_mark(pid, pid);
    }
    0
}

/// Puts `mark` in the `TABLE_MARKS` slot of victim `pid`: the pid once the
/// walk is done with it, 0 (by `mark_victim_btf`) before its kill record.
#[inline(always)]
pub fn set_mark(pid: u32, mark: u32) {
    if let Some(slot) = crate::TABLE_MARKS.get_ptr_mut(pid % oomtrace_common::TABLE_MARKS) {
        // SAFETY: an aligned u32 in map memory, which readers only compare
        // with a pid.
        unsafe { core::ptr::write_volatile(slot, mark) };
    }
}

#[inline(always)]
fn walk_domain(walk: &mut Walk, victim: u64, css: u64, totalpages: u64) -> Option<()> {
    known(layout!(task_tasks))?;
    known(layout!(cgroup_ancestors))?;
    let leader = pointer(victim, layout!(task_group_leader)).unwrap_or(victim);
    walk.cursor = leader;
    walk.start = leader;
    walk.heads = 0;
    walk.victim_tgid = u64::from(field::<u32>(leader, layout!(task_tgid)).unwrap_or(0));
    walk.per_mille = totalpages / 1000;
    walk.counter_inner = if layout!(rss_kind) == rss_kind::PERCPU_COUNTER {
        u64::from(layout!(percpu_counter_count))
    } else {
        0
    };
    walk.min_at = 0;
    walk.min = i64::MIN;
    walk.last_cset = 0;
    walk.last_in_domain = 0;
    if css == 0 {
        walk.domain = 0;
        walk.level = 0;
        walk.record.flags |= candidates_flags::MACHINE;
    } else {
        let cgroup = pointer(css, layout!(css_cgroup))?;
        walk.domain = cgroup;
        walk.level = u64::from(field::<i32>(cgroup, layout!(cgroup_level))?.max(0) as u32);
    }
    let callback: extern "C" fn(u64, *mut c_void) -> i64 = step;
    // SAFETY: the callback works on our per-CPU map value only; the
    // function pointer goes to ld_imm64 as a BPF subprogram.
    unsafe {
        bpf_loop(
            CANDIDATE_WALK_MAX,
            callback as *mut c_void,
            core::ptr::null_mut(),
            0,
        )
    };
    Some(())
}

/// One process of the list: 0 to go on, 1 to stop.
extern "C" fn step(_index: u64, _ctx: *mut c_void) -> i64 {
    let Some(walk) = CANDIDATE_WALK.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: per-CPU slot, this program's only user on this CPU.
    let walk = unsafe { &mut *walk };
    let Some(tasks) = known(layout!(task_tasks)) else {
        return 1;
    };
    // `tasks.next` points at the next process's `tasks`.
    let next = u64_or_zero(walk.cursor + tasks as u64);
    if next == 0 {
        return 1;
    }
    let task = next.wrapping_sub(tasks as u64);
    walk.cursor = task;
    if task == walk.start {
        walk.record.flags |= candidates_flags::COMPLETE;
        return 1;
    }
    walk.record.walked += 1;
    // Kernel threads, init_task (the list's head) and processes whose
    // leader has exited have no mm: /proc/PID/status shows them no memory
    // either. The mm first: it is the one read every process needs.
    let (Some(mm_offset), Some(pid)) = (known(layout!(task_mm)), known(layout!(task_pid))) else {
        return 1;
    };
    let mm = u64_or_zero(task + mm_offset as u64);
    if mm == 0 {
        if u32_or_zero(task + pid as u64) == 0 {
            walk.heads += 1;
            return i64::from(walk.heads > 1);
        }
        return 0;
    }
    if walk.domain != 0 && !in_domain(walk, task) {
        return 0;
    }
    consider(walk, task, mm);
    0
}

/// Adds `task` (a thread group leader in the domain, whose mm is `mm`) to
/// the table, unless it is the victim's.
#[inline(always)]
fn consider(walk: &mut Walk, task: u64, mm: u64) {
    let Some(tgid) = field::<u32>(task, layout!(task_tgid)) else {
        return;
    };
    if u64::from(tgid) == walk.victim_tgid {
        return;
    }
    walk.record.processes += 1;

    let row = &mut walk.row;
    row.tgid = tgid;
    row.oom_score_adj = pointer(task, layout!(task_signal))
        .and_then(|signal| field::<i16>(signal, layout!(signal_oom_score_adj)))
        .unwrap_or(0);
    if let Some(comm) = known(layout!(task_comm)) {
        // SAFETY: a fault-tolerant copy into map memory of the same size.
        unsafe {
            bpf_probe_read_kernel(
                row.comm.as_mut_ptr().cast(),
                TASK_COMM_LEN as u32,
                (task + comm as u64) as *const c_void,
            )
        };
    }
    let inner = walk.counter_inner;
    row.rss_anon_pages = counter(mm, layout!(mm_rss_anon), inner);
    row.rss_file_pages = counter(mm, layout!(mm_rss_file), inner);
    row.rss_shmem_pages = counter(mm, layout!(mm_rss_shmem), inner);
    row.swap_pages = counter(mm, layout!(mm_rss_swap), inner);
    row.pgtables_bytes = field::<i64>(mm, layout!(mm_pgtables_bytes))
        .unwrap_or(0)
        .max(0) as u64;
    // oom_badness(): RSS, swap entries and page tables in pages, plus
    // oom_score_adj thousandths of the memory weighed.
    let pages = row.rss_anon_pages
        + row.rss_file_pages
        + row.rss_shmem_pages
        + row.swap_pages
        + (row.pgtables_bytes >> layout!(page_shift));
    row.badness = if row.oom_score_adj == UNKILLABLE {
        i64::MIN
    } else {
        (pages as i64).wrapping_add(i64::from(row.oom_score_adj) * walk.per_mille as i64)
    };
    keep(walk);
}

/// Whether `task`'s memory cgroup is the domain or below it:
/// `cgroup->ancestors[level]` is the domain (`cgroup_is_descendant()`).
/// One read when its `css_set` is the previous process's.
#[inline(always)]
fn in_domain(walk: &mut Walk, task: u64) -> bool {
    let Some(cgroups) = known(layout!(task_cgroups)) else {
        return false;
    };
    let cset = u64_or_zero(task + cgroups as u64);
    if cset != 0 && cset == walk.last_cset {
        return walk.last_in_domain != 0;
    }
    let inside = cset_in_domain(walk, cset);
    walk.last_cset = cset;
    walk.last_in_domain = u64::from(inside);
    inside
}

#[inline(always)]
fn cset_in_domain(walk: &Walk, cset: u64) -> bool {
    let (Some(subsys), Some(css_cgroup)) = (
        known(layout!(css_set_memory_subsys)),
        known(layout!(css_cgroup)),
    ) else {
        return false;
    };
    if cset == 0 {
        return false;
    }
    let css = u64_or_zero(cset + subsys as u64);
    if css == 0 {
        return false;
    }
    let cgroup = u64_or_zero(css + css_cgroup as u64);
    if cgroup == walk.domain {
        return true;
    }
    let (Some(level), Some(ancestors)) = (
        known(layout!(cgroup_level)),
        known(layout!(cgroup_ancestors)),
    ) else {
        return false;
    };
    if cgroup == 0 || u32_or_zero(cgroup + level as u64) <= walk.level {
        return false;
    }
    u64_or_zero(cgroup + ancestors as u64 + walk.level * 8) == walk.domain
}

/// One `rss_stat` counter in pages, clamped at 0 as `get_mm_counter()`
/// does; 0 when unknown here.
#[inline(always)]
fn counter(mm: u64, counter: u32, inner: u64) -> u64 {
    if known(counter).is_none() {
        return 0;
    }
    (u64_or_zero(mm + counter as u64 + inner) as i64).max(0) as u64
}

/// Puts `walk.row` in the table: in a free row, or over the lowest score
/// when the table is full and the row scores higher.
#[inline(always)]
fn keep(walk: &mut Walk) {
    const MASK: usize = CANDIDATE_ROWS - 1;
    let rows = walk.record.rows as usize;
    if rows < CANDIDATE_ROWS {
        walk.record.table[rows & MASK] = walk.row;
        walk.record.rows += 1;
        if rows + 1 < CANDIDATE_ROWS {
            return;
        }
    } else if walk.row.badness > walk.min {
        walk.record.table[walk.min_at as usize & MASK] = walk.row;
    } else {
        return;
    }
    // The table is full: where is its lowest score now?
    let (mut min_at, mut min) = (0u64, i64::MAX);
    for (at, row) in walk.record.table.iter().enumerate() {
        if row.badness < min {
            min = row.badness;
            min_at = at as u64;
        }
    }
    walk.min_at = min_at;
    walk.min = min;
}
