//! A kill record against the kernel's own report of the kill. Shared by the
//! host tests and `cargo xtask vm-test`, which runs the same checks on
//! records and kernel logs brought back from a VM.

use serde_json::{Value, json};

use crate::{
    cgroup::{TestCgroup, Version},
    kmsg::{self, Invoked, KilledProcess, MemoryUsage, OomKillLine},
};

/// MEMCG_CHARGE_BATCH: pages a CPU may hold charged in its stock.
pub const CHARGE_BATCH_PAGES: u64 = 64;

/// Before 6.2 a task caches up to 64 RSS updates before they reach its mm's
/// counters (SPLIT_RSS_COUNTING); a victim other than `current` may flush
/// them as it dies, between the tracepoint and the log's line.
pub const SPLIT_RSS_EVENTS: u64 = 64;

/// The kernel's own report of one kill.
pub struct Truth {
    pub killed: KilledProcess,
    pub context: OomKillLine,
    pub invoked: Invoked,
    /// The OOM memcg's page counter (memcg OOMs only).
    pub usage: Option<MemoryUsage>,
}

impl Truth {
    /// The report of `pid`'s kill in `lines` (kernel log messages).
    pub fn of(lines: &[String], pid: u32) -> Result<Truth, String> {
        let killed = lines
            .iter()
            .filter_map(|l| KilledProcess::parse(l))
            .find(|k| k.pid == pid)
            .ok_or_else(|| format!("no `Killed process {pid}` line in the kernel log"))?;
        let (context, invoked, usage) = kmsg::report_of(lines, pid)
            .ok_or_else(|| format!("no `oom-kill:` line for {pid} (printk ratelimited?)"))?;
        let invoked = invoked.ok_or_else(|| format!("no `invoked oom-killer` line for {pid}"))?;
        Ok(Truth {
            killed,
            context,
            invoked,
            usage,
        })
    }
}

impl Truth {
    /// A `memory.oom.group` member's kill: its own `Killed process` line,
    /// and the report printed for the `chosen` victim's kill (members get
    /// no report of their own).
    pub fn of_member(lines: &[String], pid: u32, chosen: u32) -> Result<Truth, String> {
        let report = Truth::of(lines, chosen)?;
        let killed = lines
            .iter()
            .filter_map(|l| KilledProcess::parse(l))
            .find(|k| k.pid == pid)
            .ok_or_else(|| format!("no `Killed process {pid}` line in the kernel log"))?;
        Ok(Truth { killed, ..report })
    }
}

/// The OOM domain's cgroup files, read after the kill (the counters there
/// do not move once the only charger is dead).
#[derive(Debug, Clone)]
pub struct DomainFiles {
    pub path: String,
    pub id: u64,
    pub version: Version,
    pub limit: u64,
    pub oom_kills: u64,
    /// v1 `memory.max_usage_in_bytes`, v2 `memory.peak`.
    pub max_usage: u64,
    /// CPUs of the machine the files were read on (each may hold a charge
    /// stock), which is not the judging machine's after a VM run.
    pub cpus: u64,
}

impl DomainFiles {
    pub fn read(cgroup: &TestCgroup) -> anyhow::Result<DomainFiles> {
        Ok(DomainFiles {
            path: cgroup.path(),
            id: cgroup.id(),
            version: cgroup.hierarchy.version,
            limit: cgroup.limit()?,
            oom_kills: cgroup.oom_kills()?,
            max_usage: cgroup.max_usage()?,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()) as u64,
        })
    }

    pub fn to_json(&self) -> Value {
        json!({
            "path": self.path,
            "id": self.id,
            "v2": self.version == Version::V2,
            "limit": self.limit,
            "oom_kills": self.oom_kills,
            "max_usage": self.max_usage,
            "cpus": self.cpus,
        })
    }

    pub fn from_json(value: &Value) -> Option<DomainFiles> {
        Some(DomainFiles {
            path: value["path"].as_str()?.to_string(),
            id: value["id"].as_u64()?,
            version: if value["v2"].as_bool()? {
                Version::V2
            } else {
                Version::V1
            },
            limit: value["limit"].as_u64()?,
            oom_kills: value["oom_kills"].as_u64()?,
            max_usage: value["max_usage"].as_u64()?,
            cpus: value["cpus"].as_u64()?,
        })
    }
}

/// oomtrace's `comm` back to bytes: valid UTF-8 as is, `\xNN` for others.
pub fn comm_bytes(record: &Value) -> Vec<u8> {
    kmsg::unescape(record.as_str().expect("comm is a string"))
}

/// The victim's figures against the `Killed process` and `oom-kill:` lines.
pub fn assert_victim_matches_log(record: &Value, truth: &Truth) {
    let v = &record["victim"];
    let k = &truth.killed;
    assert_eq!(v["pid"], k.pid, "pid");
    assert_eq!(comm_bytes(&v["comm"]), k.comm, "comm");
    assert_eq!(v["uid"], k.uid, "uid");
    assert_eq!(v["oom_score_adj"], k.oom_score_adj, "oom_score_adj");
    assert_eq!(v["total_vm_bytes"], k.total_vm_kb * 1024, "total-vm");
    assert_eq!(v["rss_anon_bytes"], k.anon_rss_kb * 1024, "anon-rss");
    assert_eq!(v["rss_file_bytes"], k.file_rss_kb * 1024, "file-rss");
    assert_eq!(v["rss_shmem_bytes"], k.shmem_rss_kb * 1024, "shmem-rss");
    // The kernel prints page table bytes >> 10.
    assert_eq!(
        v["pgtables_bytes"].as_u64().map(|b| b >> 10),
        Some(k.pgtables_kb),
        "pgtables"
    );
    assert_eq!(
        v["memcg"]["path"],
        truth.context.task_memcg.as_str(),
        "task_memcg"
    );
}

/// The record's constraint, named as oomtrace names it, from the log's.
pub fn constraint_of(truth: &Truth) -> &'static str {
    match truth.context.constraint.as_str() {
        "CONSTRAINT_NONE" => "global",
        "CONSTRAINT_CPUSET" => "cpuset",
        "CONSTRAINT_MEMORY_POLICY" => "mempolicy",
        "CONSTRAINT_MEMCG" => "memcg",
        other => panic!("unknown constraint {other}"),
    }
}

/// The OOM killer's context in the record (constraint, gfp mask, order)
/// against the `invoked oom-killer` and `oom-kill:` lines.
pub fn assert_oom_context_matches(record: &Value, truth: &Truth) {
    assert_eq!(record["constraint"], constraint_of(truth), "constraint");
    let oc = &record["oom_control"];
    assert_eq!(
        oc["gfp_mask"],
        format!("{:#x}", truth.invoked.gfp_mask),
        "gfp_mask"
    );
    assert_eq!(oc["order"], truth.invoked.order, "order");
}

/// A memcg OOM's domain against the kernel's report and the limit's own
/// cgroup files.
pub fn assert_oom_domain_matches(record: &Value, truth: &Truth, domain: &DomainFiles) {
    assert_oom_context_matches(record, truth);
    let oc = &record["oom_control"];
    let m = &record["oom_memcg"];
    assert_eq!(
        m["path"],
        truth.context.oom_memcg.clone().expect("a memcg OOM"),
        "oom_memcg"
    );
    assert_eq!(m["path"], domain.path);
    assert_eq!(m["id"], domain.id, "the limit's cgroup directory inode");
    let usage = truth
        .usage
        .as_ref()
        .expect("the memcg OOM report has a `memory: usage` line");
    // The report prints the page counter before the kill, the record reads
    // it at the kill; in between the OOM path may drain the per-CPU charge
    // stocks (up to MEMCG_CHARGE_BATCH pages per CPU), seen on 6.1 with
    // several tasks in the domain.
    let cpus = domain.cpus;
    let read = m["usage_bytes"].as_u64().expect("usage_bytes");
    assert!(
        read.abs_diff(usage.usage_kb * 1024) <= cpus * CHARGE_BATCH_PAGES * 4096,
        "usage at the kill: {read} vs the report's {} kB",
        usage.usage_kb
    );
    assert_eq!(m["limit_bytes"], usage.limit_kb * 1024, "limit");
    assert_eq!(m["failcnt"], usage.failcnt, "failcnt");
    assert_eq!(m["limit_bytes"], domain.limit, "limit file");
    assert_eq!(
        m["oom_kills"], domain.oom_kills,
        "the cgroup's oom_kill counter"
    );
    let watermark = match domain.version {
        Version::V1 => &m["max_usage_bytes"],
        Version::V2 => &m["peak_bytes"],
    };
    assert_eq!(*watermark, domain.max_usage, "high-water mark file");
    // For a memcg OOM the kernel weighs candidates against the limit
    // (mem_cgroup_get_max; no swap in the test cgroups).
    assert_eq!(oc["total_bytes"], domain.limit, "totalpages");
}
