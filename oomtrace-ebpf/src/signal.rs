//! `--sigkill`: every SIGKILL, with its target and its sender, so an exit
//! 137 that was not the OOM killer is explained too. signal_generate fires
//! for every signal on the machine: anything but SIGKILL and SIGTERM
//! leaves at once. A SIGTERM is only noted (by target tgid, in an LRU
//! hash), so the SIGKILL that may follow it can say which graceful stop
//! came first, from whom, and how long the grace was.

use aya_ebpf::{
    helpers::generated::bpf_ktime_get_boot_ns,
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid},
    macros::{btf_tracepoint, map},
    maps::{LruHashMap, PerCpuArray},
    programs::BtfTracePointContext,
};
use oomtrace_common::{
    SIGTERM_NOTES, SigkillRecord, SigtermNote, TASK_COMM_LEN, cause, kind, signal_result, valid,
};

use crate::{
    aftermath,
    layout::layout,
    read::{address_of, field},
    task,
};

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;
/// `SEND_SIG_NOINFO` and `SEND_SIG_PRIV`: sentinels, not pointers.
const SEND_SIG_NOINFO: u64 = 0;
const SEND_SIG_PRIV: u64 = 1;
const SI_USER: i32 = 0;
const SI_KERNEL: i32 = 0x80;

#[map]
static SIGKILL_SCRATCH: PerCpuArray<SigkillRecord> = PerCpuArray::with_max_entries(1, 0);

/// The last SIGTERM each process was sent, by its tgid.
#[map]
static SIGTERMS: LruHashMap<u32, SigtermNote> = LruHashMap::with_max_entries(SIGTERM_NOTES, 0);

/// `TP_PROTO(int sig, struct kernel_siginfo *info, struct task_struct
/// *task, int group, int result)`.
#[btf_tracepoint(function = "signal_generate")]
pub fn signal_generate_btf(ctx: BtfTracePointContext) -> u32 {
    let sig: i32 = ctx.arg(0);
    if sig != SIGKILL {
        // A SIGTERM counts however it was taken: one that a container's
        // init ignores is exactly the stop whose grace ends in a SIGKILL.
        if sig == SIGTERM {
            note_sigterm(ctx.arg::<*const u8>(2));
        }
        return 0;
    }
    // `enum trace_signal_result`, whose values the loader read from BTF:
    // only TRACE_SIGNAL_DELIVERED and _LOSE_INFO sent the signal (ignored or
    // already pending is no new kill).
    let result: u32 = ctx.arg(4);
    let result = if result == layout!(kernel_signal_delivered) {
        signal_result::DELIVERED
    } else if result == layout!(kernel_signal_lose_info) {
        signal_result::LOSE_INFO
    } else {
        return 0;
    };
    let Some(record) = SIGKILL_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: per-CPU scratch; tracepoint programs do not nest on one CPU.
    let record = unsafe { &mut *record };
    let Some(info) = address_of(ctx.arg::<*const u8>(1)) else {
        return 0;
    };
    let Some(target) = address_of(ctx.arg::<*const u8>(2)) else {
        return 0;
    };
    let group: i32 = ctx.arg(3);
    record.kind = kind::SIGKILL;
    record.code = match info {
        SEND_SIG_NOINFO => SI_USER,
        SEND_SIG_PRIV => SI_KERNEL,
        info => field::<i32>(info, layout!(siginfo_code)).unwrap_or(i32::MIN),
    };
    // SAFETY: helper without arguments.
    record.boot_ns = unsafe { bpf_ktime_get_boot_ns() };
    record.group = u32::from(group != 0);
    record.result = result;
    record.valid = 0;
    record.target.comm = [0; TASK_COMM_LEN];
    record.target.memcg.depth = 0;
    record.sender.memcg.depth = 0;

    let read = task::describe(target, &mut record.target, crate::cgroup::describe);
    let mut flags = 0;
    if read.pid {
        flags |= valid::VICTIM_PID;
    }
    if read.tgid {
        flags |= valid::VICTIM_TGID;
    }
    if read.comm {
        flags |= valid::VICTIM_COMM;
    }
    if read.memcg {
        flags |= valid::VICTIM_MEMCG;
    }
    let (_, read) = task::describe_current(&mut record.sender, crate::cgroup::describe);
    if read.comm {
        flags |= valid::TRIGGER_COMM;
    }
    if read.memcg {
        flags |= valid::TRIGGER_MEMCG;
    }
    record.valid = flags;
    record.sigterm_found = 0;
    if read.tgid {
        let tgid = record.target.tgid;
        // SAFETY: a map value, copied at once; a racing SIGTERM to the same
        // process can at worst give a torn note, never a fault.
        if let Some(note) = unsafe { SIGTERMS.get(tgid) }
            && Some(note.target_start_ns) == leader_start(target)
        {
            record.sigterm = *note;
            record.sigterm_found = 1;
        }
    }
    if read.pid && flags & valid::VICTIM_PID != 0 {
        aftermath::track(
            record.target.pid,
            record.target.tgid,
            record.boot_ns,
            cause::SIGKILL,
            false,
        );
    }
    crate::submit(record);
    0
}

/// The start time of `task`'s group leader: with the tgid, names one
/// process over the machine's uptime.
#[inline(always)]
fn leader_start(task: u64) -> Option<u64> {
    let leader = field::<u64>(task, layout!(task_group_leader))?;
    field::<u64>(leader, layout!(task_start_boottime))
}

/// Remembers a SIGTERM sent to `target` (a `task_struct *`).
#[inline(always)]
fn note_sigterm(target: *const u8) {
    let Some(target) = address_of(target) else {
        return;
    };
    let (Some(tgid), Some(start)) = (
        field::<i32>(target, layout!(task_tgid)),
        leader_start(target),
    ) else {
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let note = SigtermNote {
        // SAFETY: helper without arguments.
        boot_ns: unsafe { bpf_ktime_get_boot_ns() },
        target_start_ns: start,
        sender_pid: pid_tgid as u32,
        sender_tgid: (pid_tgid >> 32) as u32,
        sender_comm: bpf_get_current_comm().unwrap_or([0; TASK_COMM_LEN]),
    };
    let _ = SIGTERMS.insert(tgid as u32, note, 0);
}
