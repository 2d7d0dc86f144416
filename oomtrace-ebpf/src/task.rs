//! Who a task is: pid, tgid, comm and memory cgroup.

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, generated::bpf_get_current_task};
use oomtrace_common::{TASK_COMM_LEN, TaskRef};

use crate::{
    cgroup,
    layout::{known, layout},
    read::{field, pointer},
};

/// `MAX_PID_NS_LEVEL`: pid namespaces nest at most this deep.
const MAX_PID_NS_LEVEL: u32 = 32;

/// The pid of `leader` (a thread group leader, so its pid is the process's)
/// in its own pid namespace, that namespace's level (0: the initial one),
/// as `task_tgid_vnr()` would answer inside the namespace
/// (`leader->thread_pid->numbers[level].nr`), and below the initial
/// namespace the host tgid of the namespace's init: its pid 1, the
/// namespace's `child_reaper`, whatever cgroup it is in.
#[inline(always)]
pub fn namespace_pid(leader: u64) -> Option<(u32, u32, Option<u32>)> {
    let (nr, level, upid) = namespace_upid(leader)?;
    if level == 0 {
        return Some((nr, level, None));
    }
    let init = pointer(upid, layout!(upid_ns))
        .and_then(|ns| pointer(ns, layout!(pidns_child_reaper)))
        .and_then(|reaper| field::<i32>(reaper, layout!(task_tgid)))
        .filter(|tgid| *tgid > 0)
        .map(|tgid| tgid as u32);
    Some((nr, level, init))
}

/// `(nr, level, &numbers[level])` of `leader`'s pid.
#[inline(always)]
fn namespace_upid(leader: u64) -> Option<(u32, u32, u64)> {
    let pid = pointer(leader, layout!(task_thread_pid))?;
    let level = field::<u32>(pid, layout!(pid_level))?;
    let numbers = known(layout!(pid_numbers))? as u64;
    let stride = u64::from(layout!(upid_size));
    if level > MAX_PID_NS_LEVEL || stride == 0 {
        return None;
    }
    let upid = pid + numbers + u64::from(level) * stride;
    let nr = field::<i32>(upid, layout!(upid_nr))?;
    (nr > 0).then_some((nr as u32, level, upid))
}

/// What [`describe`] could read.
pub struct Read {
    pub pid: bool,
    pub tgid: bool,
    pub comm: bool,
    pub memcg: bool,
}

/// Fills `out` from the `task_struct` at `task`; `memcg_path` fills
/// `out.memcg` from the task's memory cgroup.
#[inline(always)]
pub fn describe(
    task: u64,
    out: &mut TaskRef,
    memcg_path: impl FnOnce(u64, &mut oomtrace_common::CgroupRef) -> bool,
) -> Read {
    let mut read = Read {
        pid: false,
        tgid: false,
        comm: false,
        memcg: false,
    };
    if let Some(pid) = field::<i32>(task, layout!(task_pid)) {
        out.pid = pid as u32;
        read.pid = true;
    }
    if let Some(tgid) = field::<i32>(task, layout!(task_tgid)) {
        out.tgid = tgid as u32;
        read.tgid = true;
    }
    // Straight into the record: a copy through the stack is a memcpy call.
    if let Some(offset) = crate::layout::known(layout!(task_comm))
        && task != 0
    {
        // SAFETY: a fault-tolerant copy of TASK_COMM_LEN bytes into `out.comm`.
        let ret = unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_kernel(
                out.comm.as_mut_ptr().cast(),
                TASK_COMM_LEN as u32,
                (task as usize + offset) as *const core::ffi::c_void,
            )
        };
        read.comm = ret == 0;
    }
    if let Some(memcg) = cgroup::memory_cgroup_of(task) {
        read.memcg = memcg_path(memcg, &mut out.memcg);
    }
    read
}

/// Fills `out` for `current`, the task that ran into the OOM. Identity comes
/// from helpers that need no BTF; the memory cgroup needs the layout.
#[inline(always)]
pub fn describe_current(
    out: &mut TaskRef,
    memcg_path: impl FnOnce(u64, &mut oomtrace_common::CgroupRef) -> bool,
) -> (u64, Read) {
    let pid_tgid = bpf_get_current_pid_tgid();
    out.pid = pid_tgid as u32;
    out.tgid = (pid_tgid >> 32) as u32;
    let mut read = Read {
        pid: true,
        tgid: true,
        comm: false,
        memcg: false,
    };
    // Into the record directly: aya's wrapper zeroes a stack copy first
    // (a memset call) and then copies it (a memcpy call).
    // SAFETY: `out.comm` has room for TASK_COMM_LEN bytes.
    let ret = unsafe {
        aya_ebpf::helpers::generated::bpf_get_current_comm(
            out.comm.as_mut_ptr().cast(),
            TASK_COMM_LEN as u32,
        )
    };
    read.comm = ret == 0;
    // SAFETY: helper without arguments.
    let task = unsafe { bpf_get_current_task() };
    if let Some(memcg) = cgroup::memory_cgroup_of(task) {
        read.memcg = memcg_path(memcg, &mut out.memcg);
    }
    (task, read)
}
