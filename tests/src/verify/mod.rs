//! A kill record against the kernel's own report of the kill. Shared by the
//! host tests and `cargo xtask vm-test`, which runs the same checks on
//! records and kernel logs brought back from a VM ([`vm`]). Every check
//! returns a [`Mismatch`] naming the field, what was expected and what the
//! record had, so a judge can report it without catching panics.

pub mod earlyoom;
pub mod oomkill;
pub mod vm;

use std::fmt;

use serde_json::{Value, json};

use crate::{
    cgroup::{TestCgroup, Version},
    kmsg::{self, Invoked, KilledProcess, MemoryUsage, OomKillLine},
};

/// One failed check.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// The record's field, e.g. `victim.rss_anon_bytes`.
    pub field: String,
    pub expected: String,
    pub got: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, got {}",
            self.field, self.expected, self.got
        )
    }
}

impl std::error::Error for Mismatch {}

/// What every check returns.
pub type Checked = Result<(), Mismatch>;

/// `field` must hold `expected` (compared as JSON).
pub fn check_eq(field: &str, got: &Value, expected: impl Into<Value>) -> Checked {
    let expected = expected.into();
    check(field, *got == expected, &expected, got)
}

/// `ok` says whether `field` is right; `expected` describes what it should
/// be, `got` what it is.
pub fn check(
    field: &str,
    ok: bool,
    expected: impl fmt::Display,
    got: impl fmt::Display,
) -> Checked {
    if ok {
        return Ok(());
    }
    Err(Mismatch {
        field: field.to_string(),
        expected: expected.to_string(),
        got: got.to_string(),
    })
}

/// MEMCG_CHARGE_BATCH: pages a CPU may hold charged in its stock.
pub const CHARGE_BATCH_PAGES: u64 = 64;

/// Before 6.2 a task caches up to 64 RSS updates before they reach its mm's
/// counters (SPLIT_RSS_COUNTING); a victim other than `current` may flush
/// them as it dies, between the tracepoint and the log's line.
pub const SPLIT_RSS_EVENTS: u64 = 64;

/// Whether a record's RSS figure is the log's `logged` bytes: the mm
/// counter as mark_victim reads it (what the log prints up to 6.x), or its
/// exact per-CPU sum `exact` (what newer kernels print, with
/// get_mm_counter_sum(): seen on 7.3), or, where the record has no sum (the
/// tracepoint path), within what per-CPU batches leave out of the counter.
/// `flushed` more bytes in the log are allowed (a victim flushing cached
/// updates as it dies, see [`SPLIT_RSS_EVENTS`]).
pub fn rss_matches(logged: u64, counter: Option<u64>, exact: Option<u64>, flushed: u64) -> bool {
    let near = |read: u64| read <= logged && logged - read <= flushed;
    match (counter, exact) {
        (None, _) => false,
        (Some(counter), Some(exact)) => near(counter) || near(exact),
        (Some(counter), None) => near(counter) || counter.abs_diff(logged) <= percpu_slack_bytes(),
    }
}

/// The most an mm counter's value may differ from its per-CPU sum: each
/// CPU holds back less than the batch, max(32, 2 * CPUs) pages. The VMs
/// have no more CPUs than the machine judging them.
fn percpu_slack_bytes() -> u64 {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    cpus * (2 * cpus).max(32) * 4096
}

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
    /// v1 `memory.max_usage_in_bytes`, v2 `memory.peak`; `None` where
    /// the kernel has no such file (`memory.peak` is 5.19+).
    pub max_usage: Option<u64>,
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
            max_usage: cgroup.max_usage_if_any()?,
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
            max_usage: value["max_usage"].as_u64(),
            cpus: value["cpus"].as_u64()?,
        })
    }
}

/// oomtrace's `comm` back to bytes: valid UTF-8 as is, `\xNN` for others.
pub fn comm_bytes(record: &Value) -> Vec<u8> {
    kmsg::unescape(record.as_str().expect("comm is a string"))
}

/// Raw bytes, printed as the kernel log escapes them.
fn escaped(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// The victim's figures against the `Killed process` and `oom-kill:` lines.
pub fn victim_matches_log(record: &Value, truth: &Truth) -> Checked {
    let v = &record["victim"];
    let k = &truth.killed;
    check_eq("victim.pid", &v["pid"], k.pid)?;
    let comm = v["comm"].as_str().map(kmsg::unescape);
    check(
        "victim.comm",
        comm.as_deref() == Some(&k.comm[..]),
        escaped(&k.comm),
        &v["comm"],
    )?;
    check_eq("victim.uid", &v["uid"], k.uid)?;
    check_eq("victim.oom_score_adj", &v["oom_score_adj"], k.oom_score_adj)?;
    check_eq(
        "victim.total_vm_bytes",
        &v["total_vm_bytes"],
        k.total_vm_kb * 1024,
    )?;
    for (kind, kb) in [
        ("anon", k.anon_rss_kb),
        ("file", k.file_rss_kb),
        ("shmem", k.shmem_rss_kb),
    ] {
        let key = format!("rss_{kind}_bytes");
        let exact = v[&format!("rss_{kind}_exact_bytes")].as_u64();
        check(
            &format!("victim.{key}"),
            rss_matches(kb * 1024, v[&key].as_u64(), exact, 0),
            format_args!(
                "{} (the log's), as the counter or its exact per-CPU sum",
                kb * 1024
            ),
            &v[&key],
        )?;
    }
    // The kernel prints page table bytes >> 10.
    let pgtables = v["pgtables_bytes"].as_u64();
    check(
        "victim.pgtables_bytes >> 10",
        pgtables.map(|b| b >> 10) == Some(k.pgtables_kb),
        k.pgtables_kb,
        &v["pgtables_bytes"],
    )?;
    check_eq(
        "victim.memcg.path",
        &v["memcg"]["path"],
        truth.context.task_memcg.as_str(),
    )
}

/// The record's constraint, named as oomtrace names it, from the log's.
pub fn constraint_of(truth: &Truth) -> Result<&'static str, Mismatch> {
    Ok(match truth.context.constraint.as_str() {
        "CONSTRAINT_NONE" => "global",
        "CONSTRAINT_CPUSET" => "cpuset",
        "CONSTRAINT_MEMORY_POLICY" => "mempolicy",
        "CONSTRAINT_MEMCG" => "memcg",
        other => {
            return Err(Mismatch {
                field: "the log's constraint".into(),
                expected: "CONSTRAINT_{NONE,CPUSET,MEMORY_POLICY,MEMCG}".into(),
                got: other.into(),
            });
        }
    })
}

/// The OOM killer's context in the record (constraint, gfp mask, order)
/// against the `invoked oom-killer` and `oom-kill:` lines.
pub fn oom_context_matches(record: &Value, truth: &Truth) -> Checked {
    check_eq("constraint", &record["constraint"], constraint_of(truth)?)?;
    let oc = &record["oom_control"];
    check_eq(
        "oom_control.gfp_mask",
        &oc["gfp_mask"],
        format!("{:#x}", truth.invoked.gfp_mask),
    )?;
    check_eq("oom_control.order", &oc["order"], truth.invoked.order)
}

/// A memcg OOM's domain against the kernel's report and the limit's own
/// cgroup files.
pub fn oom_domain_matches(record: &Value, truth: &Truth, domain: &DomainFiles) -> Checked {
    oom_context_matches(record, truth)?;
    let oc = &record["oom_control"];
    let m = &record["oom_memcg"];
    let logged = truth.context.oom_memcg.as_deref();
    check(
        "the log's oom_memcg",
        logged.is_some(),
        "a memcg OOM",
        "global_oom",
    )?;
    check_eq("oom_memcg.path", &m["path"], logged)?;
    check_eq(
        "oom_memcg.path (the test's cgroup)",
        &m["path"],
        domain.path.as_str(),
    )?;
    check_eq("oom_memcg.id (directory inode)", &m["id"], domain.id)?;
    let usage = truth.usage.as_ref().ok_or_else(|| Mismatch {
        field: "the memcg OOM report".into(),
        expected: "a `memory: usage` line".into(),
        got: "none".into(),
    })?;
    // The report prints the page counter before the kill, the record reads
    // it at the kill; in between the OOM path may drain the per-CPU charge
    // stocks (up to MEMCG_CHARGE_BATCH pages per CPU), seen on 6.1 with
    // several tasks in the domain.
    let slack = domain.cpus * CHARGE_BATCH_PAGES * 4096;
    let logged = usage.usage_kb * 1024;
    let read = m["usage_bytes"].as_u64();
    check(
        "oom_memcg.usage_bytes",
        read.is_some_and(|read| read.abs_diff(logged) <= slack),
        format_args!("{logged} (the report's) +- {slack}"),
        &m["usage_bytes"],
    )?;
    check_eq(
        "oom_memcg.limit_bytes",
        &m["limit_bytes"],
        usage.limit_kb * 1024,
    )?;
    check_eq("oom_memcg.failcnt", &m["failcnt"], usage.failcnt)?;
    check_eq(
        "oom_memcg.limit_bytes (limit file)",
        &m["limit_bytes"],
        domain.limit,
    )?;
    check_eq(
        "oom_memcg.oom_kills (the cgroup's counter)",
        &m["oom_kills"],
        domain.oom_kills,
    )?;
    let (field, watermark) = match domain.version {
        Version::V1 => ("oom_memcg.max_usage_bytes", &m["max_usage_bytes"]),
        Version::V2 => ("oom_memcg.peak_bytes", &m["peak_bytes"]),
    };
    match domain.max_usage {
        Some(max_usage) => check_eq(field, watermark, max_usage)?,
        // No file to compare with (5.10 has no memory.peak): the kernel's
        // watermark is still at least the usage it reported.
        None => check(
            field,
            watermark.as_u64().is_some_and(|peak| peak >= logged),
            format_args!("at least the report's usage, {logged}"),
            watermark,
        )?,
    }
    // For a memcg OOM the kernel weighs candidates against the limit
    // (mem_cgroup_get_max; no swap in the test cgroups).
    check_eq("oom_control.total_bytes", &oc["total_bytes"], domain.limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_may_print_the_counter_or_its_exact_sum() {
        // 7.3: the log prints the sum (16362 pages), the counter says 16352.
        let (logged, counter, exact) = (67_018_752, 66_977_792, 67_018_752);
        assert!(rss_matches(logged, Some(counter), Some(exact), 0));
        assert!(rss_matches(counter, Some(counter), Some(exact), 0));
        assert!(!rss_matches(logged + 4096, Some(counter), Some(exact), 0));
        // Without the sum, the counter within the per-CPU batches.
        assert!(rss_matches(logged, Some(counter), None, 0));
        assert!(!rss_matches(logged, Some(4096), None, 0));
        assert!(!rss_matches(logged, None, None, 0));
    }

    #[test]
    fn a_mismatch_names_the_field_and_both_values() {
        let record = json!({"victim": {"pid": 7}});
        assert_eq!(check_eq("victim.pid", &record["victim"]["pid"], 7), Ok(()));
        let error = check_eq("victim.pid", &record["victim"]["pid"], 8);
        assert_eq!(
            error.map_err(|e| e.to_string()),
            Err("victim.pid: expected 8, got 7".to_string())
        );
    }
}
