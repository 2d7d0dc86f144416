//! A task's memory cgroup: its kernfs id and its path, read in kernel space
//! so that a cgroup removed right after the kill (a container's, typically)
//! still has a name in the record.

use aya_ebpf::helpers::generated::bpf_probe_read_kernel_str;
use oomtrace_common::{CGROUP_MAX_DEPTH, CGROUP_NAME_LEN, CgroupRef, cgroup_flags};

use crate::{
    layout::layout,
    read::{field, pointer},
};

/// The memory controller state (`struct cgroup_subsys_state *`) of `task`:
/// `task->cgroups->subsys[memory_cgrp_id]`, which is also its `mem_cgroup`.
#[inline(always)]
pub fn memory_css_of(task: u64) -> Option<u64> {
    let css_set = pointer(task, layout!(task_cgroups))?;
    pointer(css_set, layout!(css_set_memory_subsys))
}

/// [`memory_css_of`] as a plain value, 0 when unreadable (see
/// [`crate::read::u64_or_zero`]).
#[inline(always)]
pub fn memory_css_or_zero(task: u64) -> u64 {
    let (Some(cgroups), Some(subsys)) = (
        crate::layout::known(layout!(task_cgroups)),
        crate::layout::known(layout!(css_set_memory_subsys)),
    ) else {
        return 0;
    };
    if task == 0 {
        return 0;
    }
    let css_set = crate::read::u64_or_zero(task + cgroups as u64);
    if css_set == 0 {
        return 0;
    }
    crate::read::u64_or_zero(css_set + subsys as u64)
}

/// `mem_cgroup.oom_group` of the memcg whose css is `css` (the css is the
/// mem_cgroup's first member on every kernel, but its offset is read too).
/// `None` when the kernel has no such member.
#[inline(always)]
pub fn oom_group_of(css: u64) -> Option<bool> {
    let css_offset = crate::layout::known(layout!(memcg_css))? as u64;
    field::<u8>(css.wrapping_sub(css_offset), layout!(memcg_oom_group)).map(|v| v != 0)
}

/// The memory cgroup (`struct cgroup *`) of `task`:
/// `task->cgroups->subsys[memory_cgrp_id]->cgroup`. On cgroup v1 this is the
/// memory controller's own hierarchy, not the unified one.
#[inline(always)]
pub fn memory_cgroup_of(task: u64) -> Option<u64> {
    pointer(memory_css_of(task)?, layout!(css_cgroup))
}

/// Where [`oomtrace_memcg_path`] writes, in the per-CPU kill record.
pub mod dest {
    pub const VICTIM: u64 = 0;
    pub const TRIGGER: u64 = 1;
}

/// [`describe`] into the kill record's victim's or trigger's memcg, as a
/// global BPF function: the verifier checks a global function once, on
/// its own, not again at every call with the caller's state. Its loop of
/// CGROUP_MAX_DEPTH levels, at two calls, was 40 % of what the verifier
/// walked in mark_victim_btf. Arguments are plain numbers (5.10 takes
/// nothing else), and the destination is chosen without a branch, which
/// would make the verifier walk the loop once per side.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn oomtrace_memcg_path(cgroup: u64, dest: u64) -> u64 {
    const VICTIM_AT: usize = core::mem::offset_of!(oomtrace_common::OomKillRecord, victim);
    const TRIGGER_AT: usize = core::mem::offset_of!(oomtrace_common::OomKillRecord, trigger);
    const _: () = assert!(TRIGGER_AT > VICTIM_AT);
    let Some(scratch) = crate::SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: per-CPU slot; the offset is one of the two TaskRefs'.
    let out = unsafe {
        let record = core::ptr::addr_of_mut!((*scratch).record).cast::<u8>();
        let at = VICTIM_AT + (dest & 1) as usize * (TRIGGER_AT - VICTIM_AT);
        &mut (*record.add(at).cast::<oomtrace_common::TaskRef>()).memcg
    };
    u64::from(describe(cgroup, out))
}

/// Fills `out` with the id of `cgroup` and the names on its path, leaf
/// first. Returns false when not even the id could be read.
#[inline(always)]
pub fn describe(cgroup: u64, out: &mut CgroupRef) -> bool {
    out.flags = 0;
    out.depth = 0;
    let Some(kn) = pointer(cgroup, layout!(cgroup_kn)) else {
        return false;
    };
    let Some(id) = field::<u64>(kn, layout!(kn_id)) else {
        return false;
    };
    out.id = id;
    let Some(level) = field::<i32>(cgroup, layout!(cgroup_level)).filter(|l| *l >= 0) else {
        out.level = 0;
        out.flags |= cgroup_flags::PATH_UNREADABLE;
        return true;
    };
    out.level = level as u32;
    if level as u32 > CGROUP_MAX_DEPTH {
        out.flags |= cgroup_flags::PATH_TRUNCATED;
        return true;
    }

    // One name per level, from the cgroup up; the hierarchy root's own
    // name is not part of the path.
    let mut node = kn;
    for i in 0..CGROUP_MAX_DEPTH as usize {
        if i >= level as usize {
            break;
        }
        let Some(name) = pointer(node, layout!(kn_name)) else {
            out.flags |= cgroup_flags::PATH_UNREADABLE;
            return true;
        };
        let slot = &mut out.names[i];
        // SAFETY: bounded string read into a slot of CGROUP_NAME_LEN bytes.
        let copied = unsafe {
            bpf_probe_read_kernel_str(
                slot.as_mut_ptr().cast(),
                CGROUP_NAME_LEN as u32,
                name as *const core::ffi::c_void,
            )
        };
        if copied <= 0 {
            out.flags |= cgroup_flags::PATH_UNREADABLE;
            return true;
        }
        // A full slot may have cut the name short.
        if copied as usize >= CGROUP_NAME_LEN {
            out.flags |= cgroup_flags::PATH_TRUNCATED;
        }
        out.depth = i as u32 + 1;
        match pointer(node, layout!(kn_parent)) {
            Some(parent) => node = parent,
            None => break,
        }
    }
    if out.depth < level as u32 {
        out.flags |= cgroup_flags::PATH_UNREADABLE;
    }
    true
}
