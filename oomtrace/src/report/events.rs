//! The records around kills: pressure, SIGKILLs, exits, losses.

use serde::{Deserialize, Serialize};

use super::{
    Envelope, KillerBasis, KillerKind, LostStage, MemcgReport, Reaper, SenderRole, SentBy,
};

/// A memcg stalling in reclaim: `--pressure`'s early warning.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PressureReport {
    #[serde(flatten)]
    pub envelope: Envelope,
    /// The cgroup whose subtree stalled (the charging task's memcg or an
    /// ancestor below the root).
    pub memcg: MemcgReport,
    /// In the current one-second bucket up to `time`.
    pub stalls: u64,
    pub stall_ns: u64,
    pub reclaimed_bytes: u64,
    /// The `--pressure` threshold crossed, in stall ns per second.
    pub threshold_ns: u64,
}

/// A SIGKILL that was not the OOM killer's (`--sigkill`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SigkillReport {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub target: TaskReport,
    /// The task that sent it (for a kernel-originated kill, whatever ran).
    pub sender: TaskReport,
    /// `si_code` by name (`SI_USER`: kill(2), `SI_TKILL`: tgkill(2),
    /// `SI_QUEUE`: sigqueue(3), `SI_KERNEL`: the kernel), else the number.
    pub code: String,
    /// `kernel` for SI_KERNEL, else `process`.
    pub sent_by: SentBy,
    /// What the sender is, when its name says: `systemd`, `kubelet`,
    /// `container_runtime`, `shell`; `null` otherwise.
    pub sender_role: Option<SenderRole>,
    /// Sent to the whole thread group.
    pub group: bool,
    /// Who sent it, by kind. `null` only in records of older versions.
    #[serde(default)]
    pub killer: Option<KillerReport>,
    /// The last SIGTERM the target's process was sent before this SIGKILL
    /// (noted in the kernel, by tgid and process start time); `null`
    /// when none was seen since oomtrace started.
    #[serde(default)]
    pub sigterm: Option<SigtermReport>,
}

/// A SIGKILL's sender, attributed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KillerReport {
    /// `userspace_oom_killer`, `runtime_stop`, `systemd_stop`,
    /// `plain_kill`, `kernel` or `unknown`.
    pub kind: KillerKind,
    /// The known program behind it (`earlyoom`, `systemd-oomd`, `systemd`,
    /// `kubelet`, `runc`, `sh`...); `null` when it is none we know.
    pub name: Option<String>,
    /// The sender's executable (`/proc/PID/exe` right after the kill, as
    /// its mount namespace sees it); `null` once it is gone.
    pub program: Option<String>,
    /// What the kind was told from.
    pub basis: KillerBasis,
}

/// A SIGTERM that came before a SIGKILL.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SigtermReport {
    pub boot_ns: u64,
    /// Its sender (pid: thread, tgid: process).
    pub sender: SigtermSender,
    /// From this SIGTERM to the SIGKILL: the grace the target had.
    pub grace_us: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SigtermSender {
    pub pid: u32,
    pub tgid: u32,
    pub comm: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskReport {
    pub pid: Option<u32>,
    pub tgid: Option<u32>,
    pub comm: Option<String>,
    pub memcg: Option<MemcgReport>,
}

/// A victim's exit, after its kill: did its memory go, and how fast.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutcomeReport {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub victim: OutcomeVictim,
    /// `boot_ns` of the kill record this follows.
    pub kill_boot_ns: u64,
    pub exited_after_us: u64,
    /// The signal that ended it (9: SIGKILL, as the OOM killer sends).
    pub exit_signal: Option<u32>,
    /// What the OOM reaper had done by the exit: `reaped` (it unmapped the
    /// victim's memory first), `skipped`, `started`, or `not_run` (the
    /// exit freed the memory itself).
    pub reaper: Reaper,
    /// From the kill to the end of reaping, when the reaper finished.
    pub reaped_after_us: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutcomeVictim {
    pub pid: u32,
    pub tgid: Option<u32>,
}

/// Records the ring buffer could not take since the previous report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LostReport {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub count: u64,
    /// Where they were lost: `ring_buffer` (the kernel side found it full)
    /// or `output` (the reader stopped taking records).
    pub stage: LostStage,
}
