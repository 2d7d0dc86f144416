//! `--sigkill`: every SIGKILL, with its target and its sender, so an exit
//! 137 that was not the OOM killer is explained too. signal_generate fires
//! for every signal on the machine: anything but SIGKILL leaves at once.

use aya_ebpf::{
    helpers::generated::bpf_ktime_get_boot_ns,
    macros::{btf_tracepoint, map},
    maps::PerCpuArray,
    programs::BtfTracePointContext,
};
use oomtrace_common::{SigkillRecord, TASK_COMM_LEN, cause, kind, signal_result, valid};

use crate::{
    aftermath,
    layout::layout,
    read::{address_of, field},
    task,
};

const SIGKILL: i32 = 9;
/// `SEND_SIG_NOINFO` and `SEND_SIG_PRIV`: sentinels, not pointers.
const SEND_SIG_NOINFO: u64 = 0;
const SEND_SIG_PRIV: u64 = 1;
const SI_USER: i32 = 0;
const SI_KERNEL: i32 = 0x80;

#[map]
static SIGKILL_SCRATCH: PerCpuArray<SigkillRecord> = PerCpuArray::with_max_entries(1, 0);

/// `TP_PROTO(int sig, struct kernel_siginfo *info, struct task_struct
/// *task, int group, int result)`.
#[btf_tracepoint(function = "signal_generate")]
pub fn signal_generate_btf(ctx: BtfTracePointContext) -> u32 {
    let sig: i32 = ctx.arg(0);
    if sig != SIGKILL {
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

    let read = task::describe(target, &mut record.target);
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
    let (_, read) = task::describe_current(&mut record.sender);
    if read.comm {
        flags |= valid::TRIGGER_COMM;
    }
    if read.memcg {
        flags |= valid::TRIGGER_MEMCG;
    }
    record.valid = flags;
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
