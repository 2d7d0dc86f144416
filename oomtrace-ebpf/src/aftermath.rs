//! After the kill: what the OOM reaper did with the victim's memory, and
//! when the victim exited. One `oom_outcome` record per victim, at its exit.

use crate::{layout::layout, read::field};
use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_get_current_task, bpf_ktime_get_boot_ns},
    },
    macros::{btf_tracepoint, map},
    maps::{Array, LruHashMap},
    programs::BtfTracePointContext,
};
use oomtrace_common::{OutcomeRecord, VictimState, cause, kind, reaper};

use crate::OutcomeScratch;

/// Victims not yet exited, by thread id. Least recently used go first, so
/// a victim that never exits cannot fill it.
#[map]
static VICTIMS: LruHashMap<u32, VictimState> = LruHashMap::with_max_entries(1024, 0);

/// How many victims `VICTIMS` holds, at least: counted up before an entry
/// is made and down when its exit removes it (an entry the LRU evicts is
/// never counted down, which only costs the exit hook its shortcut). While
/// it is 0, an exit is one nobody waits for, and the hook returns after
/// this one load: a hash lookup by thread id costs a fork-heavy machine
/// 300-900 ns an exit (bench: `exits`), this about what an empty program
/// does.
#[map]
static PENDING: Array<u64> = Array::with_max_entries(1, 0);

/// BPF_NOEXIST: fail if the key is there.
const NOEXIST: u64 = 1;

/// Called for each victim of an OOM kill or a SIGKILL; an OOM victim was
/// first a SIGKILL target, and the later call wins.
#[inline(always)]
pub fn track(pid: u32, tgid: u32, kill_ns: u64, cause: u32, cmdline_taken: bool) {
    // Zeroed word by word, not by a struct literal (see mem).
    let mut slot = core::mem::MaybeUninit::<VictimState>::uninit();
    // SAFETY: VictimState is plain data, zeroed here before any read.
    let state: &mut VictimState = unsafe { &mut *slot.as_mut_ptr() };
    crate::mem::zero(state);
    state.kill_ns = kill_ns;
    state.tgid = tgid;
    state.cause = cause;
    state.cmdline_taken = cmdline_taken as u32;
    let state: &VictimState = state;
    let Some(pending) = PENDING.get_ptr_mut(0) else {
        return;
    };
    // Up first: an exit that sees the entry must not see 0. A victim
    // tracked twice (SIGKILL, then OOM kill) keeps one count.
    // SAFETY: a map value.
    crate::reclaim::add(unsafe { &mut *pending }, 1);
    if VICTIMS.insert(pid, state, NOEXIST).is_err() {
        // SAFETY: a map value.
        crate::reclaim::add(unsafe { &mut *pending }, u64::MAX);
        let _ = VICTIMS.insert(pid, state, 0);
    }
}

#[inline(always)]
fn reaping(ctx: &BtfTracePointContext, update: impl FnOnce(&mut VictimState, u64)) {
    let pid: i32 = ctx.arg(0);
    if let Some(state) = VICTIMS.get_ptr_mut(pid as u32) {
        // SAFETY: helper without arguments.
        let now = unsafe { bpf_ktime_get_boot_ns() };
        // SAFETY: a map value; the reaper kthread is its only writer now.
        update(unsafe { &mut *state }, now);
    }
}

/// `TP_PROTO(int pid)`: the reaper starts unmapping the victim's memory.
#[btf_tracepoint(function = "start_task_reaping")]
pub fn start_task_reaping_btf(ctx: BtfTracePointContext) -> u32 {
    reaping(&ctx, |state, now| {
        state.reap_start_ns = now;
        state.reaper = reaper::STARTED;
    });
    0
}

/// `TP_PROTO(int pid)`: done.
#[btf_tracepoint(function = "finish_task_reaping")]
pub fn finish_task_reaping_btf(ctx: BtfTracePointContext) -> u32 {
    reaping(&ctx, |state, now| {
        state.reap_end_ns = now;
        state.reaper = reaper::REAPED;
    });
    0
}

/// `TP_PROTO(int pid)`: skipped (the mm is going away, or locked).
#[btf_tracepoint(function = "skip_task_reaping")]
pub fn skip_task_reaping_btf(ctx: BtfTracePointContext) -> u32 {
    reaping(&ctx, |state, now| {
        state.reap_end_ns = now;
        state.reaper = reaper::SKIPPED;
    });
    0
}

/// `TP_PROTO(struct task_struct *p, bool group_dead)`, from do_exit() of
/// `current`: every exiting thread on the machine, so one load (nobody is
/// waited for) or one lookup (somebody is, not this one) and out.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit_btf(_ctx: BtfTracePointContext) -> u32 {
    let Some(pending) = PENDING.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: a map value; volatile, as other CPUs change it.
    if unsafe { core::ptr::read_volatile(pending) } == 0 {
        return 0;
    }
    let pid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: the value is copied before the entry is removed.
    let Some(state) = (unsafe { VICTIMS.get(pid) }).copied() else {
        return 0;
    };
    if VICTIMS.remove(pid).is_ok() {
        // SAFETY: a map value.
        crate::reclaim::add(unsafe { &mut *pending }, u64::MAX);
    }
    let Some(scratch) = crate::OUTCOME_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: per-CPU slot; this program does not nest on one CPU.
    let OutcomeScratch { record, cmdline } = unsafe { &mut *scratch };
    // SAFETY: helpers without arguments.
    let (now, task) = unsafe { (bpf_ktime_get_boot_ns(), bpf_get_current_task()) };
    *record = OutcomeRecord {
        kind: kind::OOM_OUTCOME,
        _pad: 0,
        state,
        exit_ns: now,
        pid,
        exit_code: field::<i32>(task, layout!(task_exit_code)).map_or(u32::MAX, |c| c as u32),
    };
    // An OOM victim's memory is still there (the tracepoint precedes
    // exit_mm() since 6.16): its command line, unless mark_victim had it.
    let cmdline_bytes = if state.cause == cause::OOM_KILL && state.cmdline_taken == 0 {
        crate::read::pointer(task, layout!(task_mm))
            .and_then(|mm| crate::cmdline::copy(mm, cmdline))
    } else {
        None
    };
    crate::submit_with_cmdline(record, cmdline_bytes);
    0
}
