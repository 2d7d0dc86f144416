//! `--sigkill`: a SIGKILL sent to a task, by whom, and how it was taken.

use crate::{TaskRef, kill::CGROUP_NAMES};

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
    pub _pad: u32,
    pub _pad2: u64,
}

/// [`crate::SigkillRecord::result`]: how the kernel took the signal.
pub mod signal_result {
    /// Queued with its siginfo.
    pub const DELIVERED: u32 = 0;
    /// Queued without its siginfo (no memory for it).
    pub const LOSE_INFO: u32 = 4;
}

const _: () = assert!(core::mem::size_of::<SigkillRecord>() == 24 + 2 * (48 + CGROUP_NAMES) + 16);
