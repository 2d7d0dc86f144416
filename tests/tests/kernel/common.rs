//! What the kernel tests share: limits, the standard kill, the kernel's
//! report of it.

use std::{
    path::Path,
    time::{Duration, SystemTime},
};

use anyhow::{Context as _, Result};
use oomtrace_tests::{
    KernelLog, TestCgroup, Tracer,
    hog::{self, HogOptions},
    kmsg,
    system::{self, require_root, serialize},
    tracer::victim_record,
    verify::{self, DomainFiles, Truth},
};
use serde_json::Value;

pub const TIMEOUT: Duration = Duration::from_secs(30);
pub const MIB: u64 = 1 << 20;

/// Every kernel test holds this for its whole run: root, the binary under
/// test, and no other test's kills in its counts.
pub fn setup() -> system::SerialGuard {
    require_root();
    let _ = system::oomtrace_bin();
    serialize()
}

/// Starts a hog in `dir` that allocates far past the limit, once the
/// kernel's report ratelimit has room for its report, and waits for the OOM
/// killer's SIGKILL. Returns its pid.
pub fn oom_kill(dir: &Path, oom_score_adj: Option<i32>, options: &HogOptions) -> Result<u32> {
    kmsg::wait_for_oom_report_budget()?;
    hog::oom_kill(dir, 200, oom_score_adj, options, TIMEOUT)
}

/// One kill of a default hog, without waiting for the report budget (for
/// tests that read no kernel report).
pub fn kill_one(cgroup: &TestCgroup) -> Result<u32> {
    hog::oom_kill(&cgroup.dir, 200, None, &HogOptions::default(), TIMEOUT)
}

/// The tracer's record for victim `pid`.
pub fn record_for(tracer: &mut Tracer, pid: u32) -> Result<Value> {
    let records = tracer.records_for(&[pid], TIMEOUT);
    victim_record(&records, pid)
        .cloned()
        .with_context(|| format!("no record for victim {pid}: {records:?}"))
}

/// The kernel's report of `pid`'s kill.
pub fn truth(log: &mut KernelLog, pid: u32) -> Truth {
    let lines = log.killed(&[pid], TIMEOUT);
    Truth::of(&lines, pid).unwrap_or_else(|e| panic!("{e}: {lines:#?}"))
}

pub fn oom_domain_matches(record: &Value, truth: &Truth, domain: &TestCgroup) -> Result<()> {
    Ok(verify::oom_domain_matches(
        record,
        truth,
        &DomainFiles::read(domain)?,
    )?)
}

/// A pod UID and a container id no other test uses: made from our pid
/// and the clock, in the shapes the kubelet and runtimes write.
pub fn fake_pod_ids() -> (String, String) {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!("{:08x}{nanos:032x}", std::process::id());
    let hex = seed.get(seed.len() - 32..).unwrap_or(&seed).to_string();
    let uid = format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    (uid, hex.repeat(2))
}
