//! Who a task is: pid, tgid, comm and memory cgroup.

use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, generated::bpf_get_current_task,
};
use oomtrace_common::{TASK_COMM_LEN, TaskRef};

use crate::{cgroup, layout::layout, read::field};

/// What [`describe`] could read.
pub struct Read {
    pub pid: bool,
    pub tgid: bool,
    pub comm: bool,
    pub memcg: bool,
}

/// Fills `out` from the `task_struct` at `task`.
#[inline(always)]
pub fn describe(task: u64, out: &mut TaskRef) -> Read {
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
    if let Some(comm) = field::<[u8; TASK_COMM_LEN]>(task, layout!(task_comm)) {
        out.comm = comm;
        read.comm = true;
    }
    if let Some(memcg) = cgroup::memory_cgroup_of(task) {
        read.memcg = cgroup::describe(memcg, &mut out.memcg);
    }
    read
}

/// Fills `out` for `current`, the task that ran into the OOM. Identity comes
/// from helpers that need no BTF; the memory cgroup needs the layout.
#[inline(always)]
pub fn describe_current(out: &mut TaskRef) -> (u64, Read) {
    let pid_tgid = bpf_get_current_pid_tgid();
    out.pid = pid_tgid as u32;
    out.tgid = (pid_tgid >> 32) as u32;
    let mut read = Read {
        pid: true,
        tgid: true,
        comm: false,
        memcg: false,
    };
    if let Ok(comm) = bpf_get_current_comm() {
        out.comm = comm;
        read.comm = true;
    }
    // SAFETY: helper without arguments.
    let task = unsafe { bpf_get_current_task() };
    if let Some(memcg) = cgroup::memory_cgroup_of(task) {
        read.memcg = cgroup::describe(memcg, &mut out.memcg);
    }
    (task, read)
}
