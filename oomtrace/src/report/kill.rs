//! The `oom_kill` record and its parts.

use serde::{Deserialize, Serialize};

use super::{
    CandidatesSource, Capture, CapturedAt, Constraint, Envelope, FateBasis, FateKilled, FateUnit,
    Hint, IncidentBasis, K8s, MemcgReport, Qos, ReclaimReport, RequestBound, RuntimeKind, Service,
    SettingSource, TrendBasis,
};

/// One OOM kill.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KillReport {
    #[serde(flatten)]
    pub envelope: Envelope,
    /// How the record was captured: `fentry`, `tp_btf` or `tracepoint`.
    pub capture: Option<Capture>,
    pub victim: VictimReport,
    pub trigger: TriggerReport,
    /// How the OOM killer scoped its search: `memcg`, `global`, `cpuset`
    /// or `mempolicy`; `null` when its context could not be read.
    pub constraint: Option<Constraint>,
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
    /// task of its group. From fentry on `oom_kill_process()`, else from the
    /// sequence of mark_victim events; `null` only in records before it.
    pub incident: Option<IncidentReport>,
    /// What the kill did to the victim's container, service or pid
    /// namespace. (Absent from older records.)
    #[serde(default)]
    pub fate: Option<FateReport>,
    /// The OOM domain's usage during the victim's life (at most the last
    /// 6 hours), from oomtrace's own samples (`--trend-interval`); `null`
    /// without the store, for a machine-wide OOM, or with fewer than two
    /// samples.
    pub trend: Option<TrendReport>,
}

/// A memory cgroup's usage before a kill, summarized.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrendReport {
    /// The cgroup sampled: the one whose limit was hit.
    pub memcg_path: String,
    pub samples: usize,
    /// First and last sample (RFC 3339).
    pub from: String,
    pub to: String,
    /// The limit at the last sample.
    pub limit_bytes: u64,
    /// Usage (`memory.current`, v1 `memory.usage_in_bytes`).
    pub start_bytes: u64,
    pub min_bytes: u64,
    pub max_bytes: u64,
    pub last_bytes: u64,
    /// What the slope is measured on: `anon` where the kernel splits
    /// anonymous memory from page cache, else `usage`.
    pub basis: TrendBasis,
    pub basis_start_bytes: u64,
    pub basis_last_bytes: u64,
    /// Least-squares slope of the basis.
    pub slope_bytes_per_hour: f64,
    /// r² of that line (0..1): near 1, a steady climb at one rate.
    pub fit: f64,
    /// Share of the steps between samples in which the basis rose.
    pub rising_share: f64,
    /// The last sample below 90% of the limit (RFC 3339); `null` if none.
    pub last_headroom: Option<String>,
    /// Up to 60 `[unix ms, usage bytes]` points, evenly thinned, for a
    /// chart (`oomtrace show`).
    pub points: Vec<(i64, u64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
    /// `oom_kill_process` (fentry) or `mark_victim_sequence`. (Absent from
    /// older records.)
    #[serde(default)]
    pub basis: Option<IncidentBasis>,
}

/// The victim's unit after the kill.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct FateReport {
    /// `main_process`, `child_process`, `whole_group` or `unknown`.
    pub killed: FateKilled,
    /// `container`, `service` or `pid_namespace`; `null` when the victim's
    /// cgroup names no unit and it ran in the host's pid namespace.
    pub unit: Option<FateUnit>,
    /// Host pid of the unit's main process, when known.
    pub main_pid: Option<u32>,
    /// `pid_namespace`, `systemd_main_pid` or `memory_oom_group`.
    pub basis: Option<FateBasis>,
    /// Whether the unit ends with the kill (a container exits 137).
    pub unit_exits: Option<bool>,
}

/// Who else was in the OOM domain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CandidatesReport {
    /// How the table was taken: `proc` (read from /proc after the kill).
    pub source: CandidatesSource,
    /// Microseconds between the kernel's capture and the table.
    pub taken_after_us: u64,
    /// Processes in the domain then, the victim's excluded.
    pub processes: usize,
    /// The highest scored, by `badness`.
    pub top: Vec<CandidateReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
    /// What the Kubernetes QoS policy says about `oom_score_adj`; `null`
    /// unless the victim's cgroup names a QoS class and the value is known.
    #[serde(default)]
    pub kubelet_adj: Option<KubeletAdjReport>,
    /// Its pid in its own pid namespace (1: the namespace's init, a
    /// container's main process); `null` on the tracepoint path.
    #[serde(default)]
    pub ns_pid: Option<u32>,
    /// That namespace's level: 0 is the host's.
    #[serde(default)]
    pub pid_ns_level: Option<u32>,
    /// Its memory cgroup's own `memory.oom.group` (`mem_cgroup.oom_group`);
    /// `null` when not read.
    #[serde(default)]
    pub memcg_oom_group: Option<bool>,
}

/// The kubelet sets -997 for Guaranteed, 1000 for BestEffort and, for
/// Burstable, `1000 - 1000 * memory request / node memory` clamped to
/// 3..=999: the request can be read back from the value.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct KubeletAdjReport {
    pub qos: Qos,
    /// The value is one the kubelet sets for this QoS class; `false`:
    /// something inside the container changed it.
    pub set_by_kubelet: bool,
    /// Burstable: the container's memory request in thousandths of the
    /// node's memory, read back from the value; `null` otherwise.
    pub memory_request_permille: Option<u16>,
    /// How exact that is: `about`, or `at_least`/`at_most` at the clamps.
    pub request_bound: Option<RequestBound>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TriggerReport {
    pub pid: u32,
    pub tgid: u32,
    pub comm: Option<String>,
    pub memcg: Option<MemcgReport>,
    pub is_victim: bool,
}

/// A victim's language runtime and its own memory cap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeReport {
    /// `jvm`, `node`, `go`, `dotnet`, `python`, `ruby`, `perl`, `php`;
    /// `null` when the command line names none of them.
    pub kind: Option<RuntimeKind>,
    /// The cap in bytes (-Xmx, --max-old-space-size, GOMEMLIMIT,
    /// GCHeapHardLimit).
    pub heap_limit_bytes: Option<u64>,
    /// A cap relative to the cgroup limit (MaxRAMPercentage,
    /// GCHeapHardLimitPercent), when there is no absolute one.
    pub heap_limit_percent: Option<f64>,
    /// The setting as written, or the default that applies.
    pub setting: Option<String>,
    /// `argv`, the environment variable it came from, or `default`.
    pub setting_source: Option<SettingSource>,
    /// `kill` (read at the kill: the victim hit the OOM itself) or `exit`
    /// (read at its exit, before its memory was freed).
    pub captured_at: CapturedAt,
    /// More arguments or environment than oomtrace copies (4 KiB, 12 KiB):
    /// a setting past the cut is not seen.
    pub args_truncated: bool,
    pub env_truncated: bool,
    /// The memcg limit the cap is weighed against (memcg OOMs only).
    #[serde(default)]
    pub limit_bytes: Option<u64>,
    /// The cap in bytes against that limit: `heap_limit_bytes`, or
    /// `heap_limit_percent` of the limit.
    #[serde(default)]
    pub heap_cap_bytes: Option<u64>,
    /// The cap as a whole percentage of the limit.
    #[serde(default)]
    pub heap_percent_of_limit: Option<u64>,
    /// The cap is at or above the limit: the heap alone can outgrow the
    /// cgroup.
    #[serde(default)]
    pub heap_outgrows_limit: Option<bool>,
    /// What the limit leaves for everything outside the heap (threads,
    /// native memory, buffers), when the cap is below it.
    #[serde(default)]
    pub non_heap_bytes: Option<u64>,
}

impl RuntimeReport {
    /// A runtime with no cap read yet, its command line whole.
    pub fn new(kind: Option<RuntimeKind>, captured_at: CapturedAt) -> RuntimeReport {
        RuntimeReport {
            kind,
            heap_limit_bytes: None,
            heap_limit_percent: None,
            setting: None,
            setting_source: None,
            captured_at,
            args_truncated: false,
            env_truncated: false,
            limit_bytes: None,
            heap_cap_bytes: None,
            heap_percent_of_limit: None,
            heap_outgrows_limit: None,
            non_heap_bytes: None,
        }
    }
}

/// The kills of one workload that this oomtrace has seen, and a cautious
/// reading of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    pub hint: Option<Hint>,
    /// The figures the hint rests on, as a sentence.
    pub evidence: Option<String>,
    /// How long each victim of this workload had run when killed (the
    /// time to OOM after each start), oldest first, this one last; only
    /// kills whose victim's age is known. (Absent from older records.)
    #[serde(default)]
    pub times_to_oom_ns: Vec<u64>,
}
