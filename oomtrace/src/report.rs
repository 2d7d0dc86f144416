//! The records oomtrace emits: the JSON contract, schema version 1.
//!
//! docs/schema.md and docs/oomtrace.schema.json describe the same thing;
//! change them together. Fields may be added; removing or changing one is a
//! new schema version. Every field is always present; unknown is `null`.

use serde::Serialize;

/// Version of the record contract.
pub const SCHEMA: u32 = 1;

/// One OOM kill.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KillReport {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub schema: u32,
    /// Wall-clock time of capture, RFC 3339 UTC with microseconds.
    pub time: String,
    /// `CLOCK_BOOTTIME` nanoseconds at capture (the kernel's clock).
    pub boot_ns: u64,
    pub host: String,
    /// How the record was captured: `fentry`, `tp_btf` or `tracepoint`.
    pub capture: Option<&'static str>,
    pub victim: VictimReport,
    pub trigger: TriggerReport,
    /// How the OOM killer scoped its search: `memcg`, `global`, `cpuset`
    /// or `mempolicy`; `null` when its context could not be read.
    pub constraint: Option<&'static str>,
    /// For a memcg OOM: the cgroup whose limit was hit, at the kill.
    pub oom_memcg: Option<OomMemcgReport>,
    /// The rest of the OOM killer's context for this kill.
    pub oom_control: Option<OomControlReport>,
    /// The other processes of the OOM domain, most likely to be killed
    /// first; `null` when the domain is unknown or the table is disabled.
    pub candidates: Option<CandidatesReport>,
    /// This workload's kills seen by this oomtrace, and what they suggest.
    pub history: Option<HistoryReport>,
    /// The OOM kill this record is part of: with cgroup v2
    /// `memory.oom.group`, one OOM kills the chosen victim and every other
    /// task of its group. `null` unless captured via fentry.
    pub incident: Option<IncidentReport>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IncidentReport {
    /// The same for every record of the incident (`CLOCK_BOOTTIME` ns at
    /// the start of `oom_kill_process()`).
    pub id: u64,
    /// Tasks the incident killed; `null` if its end was not seen.
    pub victims: Option<u32>,
    /// This record's place: 1 is the chosen victim, then group members.
    pub seq: u32,
    /// The process the OOM killer chose.
    pub chosen_pid: u32,
    /// Killed only as a member of the chosen victim's memory.oom.group.
    pub group_member: bool,
}

/// Who else was in the OOM domain.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CandidatesReport {
    /// How the table was taken: `proc` (read from /proc after the kill).
    pub source: &'static str,
    /// Microseconds between the kernel's capture and the table.
    pub taken_after_us: u64,
    /// Processes in the domain then, the victim's excluded.
    pub processes: usize,
    /// The highest scored, by `badness`.
    pub top: Vec<CandidateReport>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CandidateReport {
    pub pid: u32,
    pub comm: String,
    pub rss_bytes: u64,
    pub rss_anon_bytes: u64,
    pub rss_file_bytes: u64,
    pub rss_shmem_bytes: u64,
    pub swap_bytes: u64,
    pub pgtables_bytes: u64,
    pub oom_score_adj: i64,
    /// The OOM killer's score (`oom_badness()`, in pages) against this
    /// kill's `total_bytes`; `null` for unkillable (-1000) processes.
    pub badness: Option<i64>,
    /// /proc/PID/oom_score, the kernel's normalised view (0-2000).
    pub oom_score: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OomMemcgReport {
    pub id: u64,
    pub path: Option<String>,
    /// Direct reclaim stalls in this cgroup's subtree; `null` when not
    /// tracked on this kernel.
    pub reclaim: Option<ReclaimReport>,
    /// The Kubernetes pod (or QoS class) whose limit this is, if any.
    pub k8s: Option<K8s>,
    pub service: Option<Service>,
    /// The memory limit (`memory.limit_in_bytes` on v1, `memory.max` on v2).
    pub limit_bytes: Option<u64>,
    pub usage_bytes: Option<u64>,
    /// High-water mark: `memory.max_usage_in_bytes` (cgroup v1) ...
    pub max_usage_bytes: Option<u64>,
    /// ... or `memory.peak` (cgroup v2); the other one is `null`.
    pub peak_bytes: Option<u64>,
    /// Charges that failed at the limit (`memory.failcnt`; v2 has no file).
    pub failcnt: Option<u64>,
    /// OOM kills counted in this cgroup, this one included (v1
    /// `memory.oom_control` oom_kill, v2 `memory.events` oom_kill).
    pub oom_kills: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OomControlReport {
    /// The allocation's GFP flags, as the log's `gfp_mask=` (hex).
    pub gfp_mask: String,
    /// The allocation's order (-1: OOM kill forced via sysrq).
    pub order: i32,
    /// Memory the OOM killer weighed candidates against (the memcg limit,
    /// or RAM + swap for a global OOM).
    pub total_bytes: u64,
    /// The victim's badness as the OOM killer scored it (pages, adjusted by
    /// oom_score_adj).
    pub victim_points: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VictimReport {
    pub pid: Option<u32>,
    pub tgid: Option<u32>,
    pub comm: Option<String>,
    pub uid: Option<u32>,
    pub oom_score_adj: Option<i16>,
    pub total_vm_bytes: Option<u64>,
    pub rss_anon_bytes: Option<u64>,
    pub rss_file_bytes: Option<u64>,
    pub rss_shmem_bytes: Option<u64>,
    /// The same counters with every CPU's pending delta added
    /// (`get_mm_counter_sum`); the figures above can lag by up to the
    /// per-CPU batch on each CPU.
    pub rss_anon_exact_bytes: Option<u64>,
    pub rss_file_exact_bytes: Option<u64>,
    pub rss_shmem_exact_bytes: Option<u64>,
    pub pgtables_bytes: Option<u64>,
    pub memcg: Option<MemcgReport>,
    /// The language runtime and the memory cap it was given, from the
    /// victim's command line and environment; `null` when they could not
    /// be read.
    pub runtime: Option<RuntimeReport>,
    /// When the victim process started, and how long it had run when it
    /// was killed (seconds after start: undersized; hours: growth).
    pub start_time: Option<String>,
    pub age_ns: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TriggerReport {
    pub pid: u32,
    pub tgid: u32,
    pub comm: Option<String>,
    pub memcg: Option<MemcgReport>,
    pub is_victim: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MemcgReport {
    /// kernfs id: the inode number of the cgroup's directory.
    pub id: u64,
    /// Relative to the memory controller's hierarchy, as the kernel log
    /// writes `task_memcg=`; `null` when it could not be determined (e.g.
    /// the cgroup was removed before a truncated path could be resolved).
    pub path: Option<String>,
    /// Direct reclaim stalls of tasks in this cgroup's subtree; `null`
    /// when not tracked on this kernel.
    pub reclaim: Option<ReclaimReport>,
    /// The Kubernetes pod and container the path names, if it does.
    pub k8s: Option<K8s>,
    /// A systemd unit or a container outside Kubernetes the path names.
    pub service: Option<Service>,
}

/// Charge-path direct reclaim of a memcg's subtree before a kill.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct ReclaimReport {
    /// In the ten seconds up to the kill (one-second granularity).
    pub last_10s: ReclaimWindow,
    /// Since this cgroup's previous kill seen by this oomtrace; `null`
    /// for the first.
    pub since_previous_kill: Option<ReclaimWindow>,
    /// Since oomtrace started watching this cgroup.
    pub total: ReclaimTotals,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct ReclaimWindow {
    /// Reclaim passes (each one a stall of the charging task).
    pub stalls: u64,
    /// Time spent in them, summed.
    pub stall_ns: u64,
    pub reclaimed_bytes: u64,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct ReclaimTotals {
    pub stalls: u64,
    pub stall_ns: u64,
    pub max_stall_ns: u64,
    pub reclaimed_bytes: u64,
}

/// A memcg stalling in reclaim: `--pressure`'s early warning.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PressureReport {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub schema: u32,
    pub time: String,
    pub boot_ns: u64,
    pub host: String,
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
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SigkillReport {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub schema: u32,
    pub time: String,
    pub boot_ns: u64,
    pub host: String,
    pub target: TaskReport,
    /// The task that sent it (for a kernel-originated kill, whatever ran).
    pub sender: TaskReport,
    /// `si_code` by name (`SI_USER`: kill(2), `SI_TKILL`: tgkill(2),
    /// `SI_QUEUE`: sigqueue(3), `SI_KERNEL`: the kernel), else the number.
    pub code: String,
    /// `kernel` for SI_KERNEL, else `process`.
    pub sent_by: &'static str,
    /// What the sender is, when its name says: `systemd`, `kubelet`,
    /// `container_runtime`, `shell`; `null` otherwise.
    pub sender_role: Option<&'static str>,
    /// Sent to the whole thread group.
    pub group: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskReport {
    pub pid: Option<u32>,
    pub tgid: Option<u32>,
    pub comm: Option<String>,
    pub memcg: Option<MemcgReport>,
}

/// A victim's exit, after its kill: did its memory go, and how fast.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OutcomeReport {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub schema: u32,
    /// When the victim exited.
    pub time: String,
    pub boot_ns: u64,
    pub host: String,
    pub victim: OutcomeVictim,
    /// `boot_ns` of the kill record this follows.
    pub kill_boot_ns: u64,
    pub exited_after_us: u64,
    /// The signal that ended it (9: SIGKILL, as the OOM killer sends).
    pub exit_signal: Option<u32>,
    /// What the OOM reaper had done by the exit: `reaped` (it unmapped the
    /// victim's memory first), `skipped`, `started`, or `not_run` (the
    /// exit freed the memory itself).
    pub reaper: &'static str,
    /// From the kill to the end of reaping, when the reaper finished.
    pub reaped_after_us: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OutcomeVictim {
    pub pid: u32,
    pub tgid: Option<u32>,
}

/// Records the ring buffer could not take since the previous report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LostReport {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub schema: u32,
    pub time: String,
    pub count: u64,
    /// Where they were lost: `ring_buffer` (the kernel side found it full)
    /// `output` (the reader stopped taking records) or `store` (the local
    /// database did not keep them: queue full, disk full, unwritable).
    pub stage: LostStage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LostStage {
    RingBuffer,
    Output,
    Store,
}

impl LostReport {
    pub fn new(time: String, count: u64, stage: LostStage) -> LostReport {
        LostReport {
            kind: "lost",
            schema: SCHEMA,
            time,
            count,
            stage,
        }
    }
}

/// Text from kernel bytes (comm, cgroup names), without losing any byte:
/// valid UTF-8 is kept as is (JSON escapes quotes and control characters);
/// each byte of an invalid sequence becomes `\xNN`, as /dev/kmsg writes
/// non-printable bytes.
pub fn kernel_text(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        for byte in chunk.invalid() {
            text.push_str(&format!("\\x{byte:02x}"));
        }
    }
    text
}

/// Kubernetes identity of a cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct K8s {
    /// `node` (kubepods), `qos` (a QoS class slice), `pod` or `container`.
    pub level: &'static str,
    /// `guaranteed`, `burstable` or `besteffort`; `null` at node level.
    pub qos: Option<&'static str>,
    pub pod_uid: Option<String>,
    pub container_id: Option<String>,
    /// `containerd`, `cri-o` or `docker`, when the name says.
    pub runtime: Option<&'static str>,
    /// The kubelet's cgroup driver: `systemd` or `cgroupfs`.
    pub cgroup_driver: &'static str,
    /// From the kubelet's log directories on this node; `null` when they
    /// do not name the pod (or the container).
    pub namespace: Option<String>,
    pub pod_name: Option<String>,
    pub container_name: Option<String>,
}

/// A non-Kubernetes owner whose name the path shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    /// `systemd_service`, `systemd_scope`, `docker_container` or
    /// `podman_container`.
    pub kind: &'static str,
    /// The unit name or the container id.
    pub name: String,
}

/// A victim's language runtime and its own memory cap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuntimeReport {
    /// `jvm`, `node`, `go`, `dotnet`, `python`, `ruby`, `perl`, `php`;
    /// `null` when the command line names none of them.
    pub kind: Option<&'static str>,
    /// The cap in bytes (-Xmx, --max-old-space-size, GOMEMLIMIT,
    /// GCHeapHardLimit).
    pub heap_limit_bytes: Option<u64>,
    /// A cap relative to the cgroup limit (MaxRAMPercentage,
    /// GCHeapHardLimitPercent), when there is no absolute one.
    pub heap_limit_percent: Option<f64>,
    /// The setting as written, or the default that applies.
    pub setting: Option<String>,
    /// `argv`, the environment variable it came from, or `default`.
    pub setting_source: Option<String>,
    /// `kill` (read at the kill: the victim hit the OOM itself) or `exit`
    /// (read at its exit, before its memory was freed).
    pub captured_at: &'static str,
    /// More arguments or environment than oomtrace copies (4 KiB, 12 KiB):
    /// a setting past the cut is not seen.
    pub args_truncated: bool,
    pub env_truncated: bool,
}

/// The kills of one workload that this oomtrace has seen, and a cautious
/// reading of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryReport {
    /// What counts as the same workload: the Kubernetes pod and container
    /// (stable across restarts), else the limit's cgroup path; without a
    /// limit's cgroup (a machine-wide OOM), the victim's name in its cgroup.
    pub workload: String,
    /// Kills of it since oomtrace started, this one included.
    pub kills: u64,
    pub since_previous_kill_ns: Option<u64>,
    /// `undersized`, `steady_growth` or `spike`; `null` without enough
    /// evidence.
    pub hint: Option<&'static str>,
    /// The figures the hint rests on, as a sentence.
    pub evidence: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_text_keeps_utf8_and_escapes_invalid_bytes() {
        assert_eq!(kernel_text(b"python3"), "python3");
        assert_eq!(kernel_text("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(kernel_text(b"a\xffb\xc3"), "a\\xffb\\xc3");
        assert_eq!(kernel_text(b""), "");
    }

    #[test]
    fn any_comm_bytes_give_one_line_of_valid_json() {
        let nasty: &[u8] = b"\"q\\\n\r\t\x00\x1b[31m\xff\xfe";
        let json = serde_json::to_string(&kernel_text(nasty)).expect("serializes");
        assert!(!json.contains('\n'));
        let back: String = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(back, kernel_text(nasty));
        assert!(back.starts_with("\"q\\\n\r\t\u{0}\u{1b}[31m"));
        assert!(back.ends_with("\\xff\\xfe"));
    }

    #[test]
    fn lost_records_have_the_contract_fields() {
        let value = serde_json::to_value(LostReport::new("t".into(), 3, LostStage::RingBuffer))
            .expect("serializes");
        assert_eq!(
            value,
            serde_json::json!({"type": "lost", "schema": 1, "time": "t", "count": 3, "stage": "ring_buffer"})
        );
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        #[test]
        // Reversible as long as valid text holds no `\xNN` of its own
        // (systemd's escaped unit names do; they are kept verbatim so
        // paths match the directory names).
        fn any_kernel_bytes_are_json_and_reversible(
            bytes in proptest::collection::vec(proptest::num::u8::ANY.prop_filter("no backslash", |b| *b != b'\\'), 0..64)
        ) {
            let text = kernel_text(&bytes);
            let json = serde_json::to_string(&text).expect("serializes");
            let back: String = serde_json::from_str(&json).expect("valid JSON");
            proptest::prop_assert_eq!(&back, &text);
            // \xNN escapes of non-UTF-8 bytes undo to the same bytes.
            let mut undone = Vec::new();
            let mut rest = back.as_str();
            while !rest.is_empty() {
                if let Some(hex) = rest.strip_prefix("\\x").and_then(|r| r.get(..2))
                    && let Ok(b) = u8::from_str_radix(hex, 16)
                {
                    undone.push(b);
                    rest = &rest[4..];
                } else if let Some(c) = rest.chars().next() {
                    let mut buf = [0u8; 4];
                    undone.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    rest = &rest[c.len_utf8()..];
                }
            }
            proptest::prop_assert_eq!(undone, bytes);
        }
    }
}
