//! The `oom:mark_victim` hook: fires once per task the OOM killer marks as
//! its victim, in the context of the task that ran into the OOM.

use aya_ebpf::{
    EbpfContext,
    helpers::generated::{bpf_ktime_get_boot_ns, bpf_probe_read_kernel_str},
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use oomtrace_common::{OomKillRecord, TASK_COMM_LEN, capture, valid};

use crate::{
    SCRATCH, Scratch, aftermath, cmdline,
    layout::{known, layout},
    mm, oom_control, reclaim, task,
};

/// tp_btf: `TP_PROTO(struct task_struct *task, uid_t uid)` (Linux 6.9+, and
/// stable backports). The loader checks the prototype in BTF first.
#[btf_tracepoint(function = "mark_victim")]
pub fn mark_victim_btf(ctx: BtfTracePointContext) -> u32 {
    let Some(scratch) = scratch() else {
        return 0;
    };
    let victim: u64 = ctx.arg(0);
    let uid: u32 = ctx.arg(1);
    let Scratch {
        record,
        cmdline,
        peek,
    } = scratch;
    begin(record, capture::TP_BTF);

    record.victim_uid = uid;
    record.valid |= valid::VICTIM_UID;
    // The global function writes the same record.victim.memcg, found in
    // SCRATCH (it takes no pointers: see oomtrace_memcg_path).
    let read = task::describe(victim, &mut record.victim, |memcg, _| {
        crate::cgroup::oomtrace_memcg_path(memcg, crate::cgroup::dest::VICTIM) != 0
    });
    flag(record, read.pid, valid::VICTIM_PID);
    flag(record, read.tgid, valid::VICTIM_TGID);
    flag(record, read.comm, valid::VICTIM_COMM);
    flag(record, read.memcg, valid::VICTIM_MEMCG);
    if let Some(signal) = crate::read::pointer(victim, layout!(task_signal))
        && let Some(adj) = crate::read::field::<i16>(signal, layout!(signal_oom_score_adj))
    {
        record.victim_oom_score_adj = adj;
        record.valid |= valid::VICTIM_OOM_SCORE_ADJ;
    }
    mm::read_victim_mm(victim, record, peek);
    // The process's start, not the thread's: its age at the kill.
    if let Some(leader) = crate::read::pointer(victim, layout!(task_group_leader)) {
        if let Some(start) = crate::read::field::<u64>(leader, layout!(task_start_boottime)) {
            record.victim_start_ns = start;
            record.valid |= valid::VICTIM_START;
        }
        // Is it its container's pid 1, and if not, which process is?
        // (Its fate: see the report.)
        if let Some((ns_pid, level, init)) = task::namespace_pid(leader) {
            record.victim_ns_pid = ns_pid;
            record.victim_pid_ns_level = level;
            record.valid |= valid::VICTIM_NS_PID;
            if let Some(init) = init {
                record.victim_ns_init_tgid = init;
                record.valid |= valid::VICTIM_NS_INIT;
            }
        }
    }
    if let Some(group) = crate::cgroup::memory_css_of(victim).and_then(crate::cgroup::oom_group_of)
    {
        record.valid |= valid::VICTIM_MEMCG_OOM_GROUP_READ;
        flag(record, group, valid::VICTIM_MEMCG_OOM_GROUP);
    }

    let (current, read) = task::describe_current(&mut record.trigger, |memcg, _| {
        crate::cgroup::oomtrace_memcg_path(memcg, crate::cgroup::dest::TRIGGER) != 0
    });
    flag(record, read.comm, valid::TRIGGER_COMM);
    flag(record, read.memcg, valid::TRIGGER_MEMCG);
    oom_control::take(victim, &mut record.oom);
    // Reclaim history as of the kill, from reclaim_snapshot_btf.
    reclaim::take(victim, record);
    if current == victim {
        record.valid |= valid::TRIGGER_IS_VICTIM;
    }
    // Last, so its branches do not multiply the verifier's work on all of
    // the above. The victim's own allocation hit the OOM: its memory is
    // readable now; otherwise the exit hook reads it (see cmdline).
    let cmdline_bytes =
        cmdline::shared_mm(victim, current).and_then(|mm| cmdline::copy(mm, cmdline));
    track_victim(record, cmdline_bytes.is_some());
    // Before the record: a reader never takes an older kill's mark of a
    // reused pid for this one's.
    if read.pid {
        crate::candidates::set_mark(record.victim.pid, 0);
    }
    crate::submit_with_cmdline(record, cmdline_bytes);
    0
}

/// Classic tracepoint: the event's own fields, at offsets the loader read
/// from `events/oom/mark_victim/format`. Kernels before the field extension
/// (v6.9, backported to some stable lines) have only `pid`.
#[tracepoint(category = "oom", name = "mark_victim")]
pub fn mark_victim_tracepoint(ctx: TracePointContext) -> u32 {
    let Some(scratch) = scratch() else {
        return 0;
    };
    let Scratch { record, .. } = scratch;
    begin(record, capture::TRACEPOINT);
    let event = ctx.as_ptr() as u64;
    let kb = |offset: u32| crate::read::field::<u64>(event, offset).map(|kb| kb << 10);

    if let Some(pid) = crate::read::field::<i32>(event, layout!(tp_pid)) {
        record.victim.pid = pid as u32;
        record.valid |= valid::VICTIM_PID;
    }
    if let Some(loc) = crate::read::field::<u32>(event, layout!(tp_comm)) {
        // __data_loc: offset in the low 16 bits, length in the high 16.
        let at = (loc & 0xffff) as u64;
        // SAFETY: bounded string read from the event record.
        let copied = unsafe {
            bpf_probe_read_kernel_str(
                record.victim.comm.as_mut_ptr().cast(),
                TASK_COMM_LEN as u32,
                (event + at) as *const core::ffi::c_void,
            )
        };
        flag(record, copied > 0, valid::VICTIM_COMM);
    }
    if let Some(v) = kb(layout!(tp_total_vm)) {
        record.victim_total_vm_bytes = v;
        record.valid |= valid::VICTIM_TOTAL_VM;
    }
    if let (Some(anon), Some(file), Some(shmem)) = (
        kb(layout!(tp_anon_rss)),
        kb(layout!(tp_file_rss)),
        kb(layout!(tp_shmem_rss)),
    ) {
        record.victim_rss_anon_bytes = anon;
        record.victim_rss_file_bytes = file;
        record.victim_rss_shmem_bytes = shmem;
        record.valid |= valid::VICTIM_RSS;
    }
    if let Some(v) = kb(layout!(tp_pgtables)) {
        record.victim_pgtables_bytes = v;
        record.valid |= valid::VICTIM_PGTABLES;
    }
    if let Some(uid) = crate::read::field::<u32>(event, layout!(tp_uid)) {
        record.victim_uid = uid;
        record.valid |= valid::VICTIM_UID;
    }
    if known(layout!(tp_oom_score_adj)).is_some() {
        let adj = if layout!(tp_oom_score_adj_size) == 2 {
            crate::read::field::<i16>(event, layout!(tp_oom_score_adj))
        } else {
            crate::read::field::<i32>(event, layout!(tp_oom_score_adj)).map(|v| v as i16)
        };
        if let Some(adj) = adj {
            record.victim_oom_score_adj = adj;
            record.valid |= valid::VICTIM_OOM_SCORE_ADJ;
        }
    }

    let (_, read) = task::describe_current(&mut record.trigger, crate::cgroup::describe);
    flag(record, read.comm, valid::TRIGGER_COMM);
    flag(record, read.memcg, valid::TRIGGER_MEMCG);
    // The event has no task pointer; when the victim is `current` (it ran
    // into the OOM itself) its cgroup and tgid are the trigger's.
    if record.valid & valid::VICTIM_PID != 0 && record.victim.pid == record.trigger.pid {
        record.valid |= valid::TRIGGER_IS_VICTIM | valid::VICTIM_TGID;
        record.victim.tgid = record.trigger.tgid;
        if read.memcg {
            record.victim.memcg = record.trigger.memcg;
            record.valid |= valid::VICTIM_MEMCG;
        }
    }
    track_victim(record, false);
    submit(record);
    0
}

/// Follows the victim to its exit (oom_outcome, and its command line when
/// the kill could not read it).
#[inline(always)]
fn track_victim(record: &OomKillRecord, cmdline_captured: bool) {
    if record.valid & valid::VICTIM_PID != 0 {
        aftermath::track(
            record.victim.pid,
            record.victim.tgid,
            record.boot_ns,
            oomtrace_common::cause::OOM_KILL,
            cmdline_captured,
        );
    }
}

#[inline(always)]
fn scratch() -> Option<&'static mut Scratch> {
    // SAFETY: per-CPU slot, and tracepoint programs do not nest on one CPU
    // for the same program.
    SCRATCH.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}

#[inline(always)]
fn begin(record: &mut OomKillRecord, how: u32) {
    // SAFETY: plain helper call.
    record.boot_ns = unsafe { bpf_ktime_get_boot_ns() };
    record.kind = oomtrace_common::kind::OOM_KILL;
    record.capture = how;
    record.valid = 0;
    crate::mem::zero_comm(&mut record.victim.comm);
    crate::mem::zero_comm(&mut record.trigger.comm);
    record.victim.pid = 0;
    record.victim.tgid = 0;
    record.oom.flags = 0;
    record.victim_reclaim.taken = 0;
    record.trigger_reclaim.taken = 0;
    record.oom_reclaim.taken = 0;
    record.victim.memcg.depth = 0;
    record.trigger.memcg.depth = 0;
}

/// Branch-free on purpose: a branch on a bool the verifier knows (it was
/// set on one path, cleared on another) marks it precise, and then every
/// earlier path stays a state of its own down to the end of the program.
#[inline(always)]
fn flag(record: &mut OomKillRecord, ok: bool, bit: u32) {
    record.valid |= u32::from(ok) * bit;
}

/// One copy into the ring buffer.
#[inline(always)]
fn submit(record: &OomKillRecord) {
    crate::submit(record);
}
