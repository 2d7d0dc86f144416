//! `--sigkill`: a SIGKILL sent to a task, by whom, and how it was taken.

use crate::{TASK_COMM_LEN, TaskRef, kill::CGROUP_NAMES};

/// A SIGKILL sent to a task (`signal:signal_generate`, `--sigkill`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SigkillRecord {
    /// [`kind::SIGKILL`].
    pub kind: u32,
    /// `si_code`: SI_USER (0) for kill(2), SI_TKILL (-6), SI_QUEUE (-1),
    /// SI_KERNEL (0x80) from the kernel itself.
    pub code: i32,
    pub boot_ns: u64,
    /// [`valid`] bits: VICTIM_* for the target, TRIGGER_* for the sender.
    pub valid: u32,
    /// 1 when sent to the whole thread group.
    pub group: u32,
    pub target: TaskRef,
    pub sender: TaskRef,
    /// [`signal_result`] value (the kernel's `enum trace_signal_result`,
    /// translated).
    pub result: u32,
    /// 1 when [`SigkillRecord::sigterm`] holds a SIGTERM the same process
    /// was sent before this SIGKILL.
    pub sigterm_found: u32,
    pub _pad2: u64,
    /// The last SIGTERM to the target's process, when `sigterm_found`.
    pub sigterm: SigtermNote,
}

/// The last SIGTERM a process was sent (`SIGTERMS`, by the target's tgid),
/// so a SIGKILL after it can name the graceful stop that came first.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SigtermNote {
    pub boot_ns: u64,
    /// The target's group leader's `start_boottime`: a tgid reused by a
    /// later process does not inherit an earlier one's SIGTERM.
    pub target_start_ns: u64,
    pub sender_pid: u32,
    pub sender_tgid: u32,
    pub sender_comm: [u8; TASK_COMM_LEN],
}

/// Processes whose last SIGTERM is remembered; least recently used go
/// first, so SIGTERMs nobody follows with a SIGKILL cannot fill it.
pub const SIGTERM_NOTES: u32 = 4096;

/// [`crate::SigkillRecord::result`]: how the kernel took the signal.
pub mod signal_result {
    /// Queued with its siginfo.
    pub const DELIVERED: u32 = 0;
    /// Queued without its siginfo (no memory for it).
    pub const LOSE_INFO: u32 = 4;
}

const _: () = assert!(core::mem::size_of::<SigtermNote>() == 24 + TASK_COMM_LEN);
const _: () = assert!(
    core::mem::size_of::<SigkillRecord>()
        == 24 + 2 * (48 + CGROUP_NAMES) + 16 + core::mem::size_of::<SigtermNote>()
);
