//! A victim's command line and environment, so userspace can tell a JVM's
//! -Xmx or Go's GOMEMLIMIT after the process is gone. User memory can only
//! be read from its own context, so this runs where the victim's memory is
//! `current`'s: at `mark_victim` when it ran into the OOM itself, else at
//! its exit, which the kernel traces before tearing its memory down (6.16+).

use aya_ebpf::helpers::generated::bpf_probe_read_user;
use oomtrace_common::{CMDLINE_ARGS_MAX, CMDLINE_ENV_MAX, Cmdline};

use crate::{layout::layout, read};

/// Copies what fits of `[start, end)` of `mm`'s strings into `dst`; the
/// copied length, 0 when unreadable (paged out, reaped).
#[inline(always)]
fn copy_range(mm: u64, start: u32, end: u32, dst: *mut u8, max: usize) -> (usize, u64) {
    let (Some(start), Some(end)) = (read::field::<u64>(mm, start), read::field::<u64>(mm, end))
    else {
        return (0, 0);
    };
    let total = end.saturating_sub(start);
    let len = if total > max as u64 {
        max
    } else {
        total as usize
    };
    // SAFETY: `dst` has room for `max` bytes; the helper fails (and
    // zero-fills) rather than faulting on a bad user address.
    let rc = unsafe { bpf_probe_read_user(dst.cast(), len as u32, start as *const _) };
    (if rc == 0 { len } else { 0 }, total)
}

/// Fills `out` from `mm`, which must be `current`'s memory. Returns the
/// bytes to send after the record (header included), or `None` when
/// nothing could be read.
#[inline(always)]
pub fn copy(mm: u64, out: &mut Cmdline) -> Option<usize> {
    let data = out.data.as_mut_ptr();
    let (args_len, args_total) = copy_range(
        mm,
        layout!(mm_arg_start),
        layout!(mm_arg_end),
        data,
        CMDLINE_ARGS_MAX,
    );
    // Re-bound for the verifier: it tracks the range of the local, not of
    // the value stored in the map.
    let args_len = if args_len > CMDLINE_ARGS_MAX {
        CMDLINE_ARGS_MAX
    } else {
        args_len
    };
    // The environment goes right after the arguments.
    // SAFETY: args_len <= CMDLINE_ARGS_MAX, and data holds
    // CMDLINE_ARGS_MAX + CMDLINE_ENV_MAX bytes.
    let env_dst = unsafe { data.add(args_len) };
    let (env_len, env_total) = copy_range(
        mm,
        layout!(mm_env_start),
        layout!(mm_env_end),
        env_dst,
        CMDLINE_ENV_MAX,
    );
    let env_len = if env_len > CMDLINE_ENV_MAX {
        CMDLINE_ENV_MAX
    } else {
        env_len
    };
    if args_len == 0 && env_len == 0 {
        return None;
    }
    out.header.args_len = args_len as u32;
    out.header.env_len = env_len as u32;
    out.header.args_total = args_total;
    out.header.env_total = env_total;
    Some(size_of::<oomtrace_common::CmdlineHeader>() + args_len + env_len)
}

/// `current`'s memory, when `task` shares it (same process).
#[inline(always)]
pub fn shared_mm(task: u64, current: u64) -> Option<u64> {
    let mm = read::pointer(task, layout!(task_mm))?;
    (read::pointer(current, layout!(task_mm)) == Some(mm)).then_some(mm)
}
