//! A task's memory cgroup: its kernfs id and its path, read in kernel space
//! so that a cgroup removed right after the kill (a container's, typically)
//! still has a name in the record.

use aya_ebpf::helpers::generated::bpf_probe_read_kernel_str;
use oomtrace_common::{CGROUP_MAX_DEPTH, CGROUP_PATH_MAX, CgroupRef, cgroup_flags};

use crate::{
    layout::layout,
    read::{field, pointer},
};

/// Window for one name: the path buffer is twice this, so a read at any
/// masked offset stays inside it.
const NAME_WINDOW: usize = CGROUP_PATH_MAX + 1;
const OFFSET_MASK: usize = CGROUP_PATH_MAX;
const DEPTH_MASK: usize = CGROUP_MAX_DEPTH as usize - 1;

const _: () = assert!(NAME_WINDOW.is_power_of_two());
const _: () = assert!(CGROUP_MAX_DEPTH.is_power_of_two());

/// The memory cgroup (`struct cgroup *`) of `task`:
/// `task->cgroups->subsys[memory_cgrp_id]->cgroup`. On cgroup v1 this is the
/// memory controller's own hierarchy, not the unified one.
#[inline(always)]
pub fn memory_cgroup_of(task: u64) -> Option<u64> {
    let css_set = pointer(task, layout!(task_cgroups))?;
    let css = pointer(css_set, layout!(css_set_memory_subsys))?;
    pointer(css, layout!(css_cgroup))
}

/// Fills `out` with the id and path of `cgroup`; `chain` is scratch space
/// for the walk. Returns false when not even the id could be read.
#[inline(always)]
pub fn describe(
    cgroup: u64,
    out: &mut CgroupRef,
    chain: &mut [u64; CGROUP_MAX_DEPTH as usize],
) -> bool {
    out.flags = 0;
    out.path_len = 0;
    let Some(kn) = pointer(cgroup, layout!(cgroup_kn)) else {
        return false;
    };
    let Some(id) = field::<u64>(kn, layout!(kn_id)) else {
        return false;
    };
    out.id = id;
    let level = field::<i32>(cgroup, layout!(cgroup_level)).unwrap_or(-1);
    if level < 0 {
        out.level = 0;
        out.flags |= cgroup_flags::PATH_UNREADABLE;
        return true;
    }
    out.level = level as u32;

    // Walk up: chain[0] is the cgroup itself, chain[depth - 1] the child of
    // the hierarchy root. The root's own name is not part of the path.
    let mut depth: usize = 0;
    let mut node = kn;
    for i in 0..CGROUP_MAX_DEPTH as usize {
        if i >= level as usize {
            break;
        }
        chain[i & DEPTH_MASK] = node;
        depth = i + 1;
        match pointer(node, layout!(kn_parent)) {
            Some(parent) => node = parent,
            None => break,
        }
    }
    if (level as usize) > depth {
        out.flags |= cgroup_flags::PATH_TRUNCATED;
        return true;
    }

    // Then down, appending "/name" for each level.
    let path = out.path.as_mut_ptr();
    let mut len: usize = 0;
    if depth == 0 {
        // SAFETY: index 0 of a CGROUP_PATH_BUF-byte array.
        unsafe { *path = b'/' };
        out.path_len = 1;
        return true;
    }
    for step in 0..CGROUP_MAX_DEPTH as usize {
        if step >= depth {
            break;
        }
        let node = chain[(depth - 1 - step) & DEPTH_MASK];
        let Some(name) = pointer(node, layout!(kn_name)) else {
            out.flags |= cgroup_flags::PATH_UNREADABLE;
            return true;
        };
        if len >= CGROUP_PATH_MAX {
            out.flags |= cgroup_flags::PATH_TRUNCATED;
            return true;
        }
        // SAFETY: len & OFFSET_MASK < NAME_WINDOW and the buffer holds two
        // windows, so the separator and the read below stay in bounds.
        let copied = unsafe {
            *path.add(len & OFFSET_MASK) = b'/';
            len += 1;
            bpf_probe_read_kernel_str(
                path.add(len & OFFSET_MASK).cast(),
                NAME_WINDOW as u32,
                name as *const core::ffi::c_void,
            )
        };
        if copied <= 0 {
            out.flags |= cgroup_flags::PATH_UNREADABLE;
            return true;
        }
        // `copied` counts the NUL.
        len += copied as usize - 1;
        if copied as usize >= NAME_WINDOW || len > CGROUP_PATH_MAX {
            out.flags |= cgroup_flags::PATH_TRUNCATED;
            return true;
        }
    }
    out.path_len = len as u32;
    true
}
