//! Parent limits: the OOM domain is the cgroup whose limit was hit.

use anyhow::Result;
use oomtrace_tests::{KernelLog, TestCgroup, Tracer, hog::HogOptions, verify::victim_matches_log};

use crate::common::{MIB, oom_domain_matches, oom_kill, record_for, setup, truth};

#[test]
fn a_victim_in_a_child_cgroup_whose_parent_holds_the_limit() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&[])?;
    let mut log = KernelLog::open()?;
    let mut parent = TestCgroup::new("nested", 64 * MIB)?;
    let child = parent.child("app.slice")?;
    let pid = oom_kill(&child, None, &HogOptions::default())?;
    let record = &record_for(&mut tracer, pid)?;
    let truth = truth(&mut log, pid);
    victim_matches_log(record, &truth)?;
    assert_eq!(record["victim"]["memcg"]["path"], parent.relative(&child));
    assert_eq!(record["victim"]["memcg"]["id"], TestCgroup::id_of(&child));
    // The limit that was hit is the parent's, not the victim's own cgroup.
    assert_eq!(
        truth.context.oom_memcg.as_deref(),
        Some(parent.path().as_str())
    );
    oom_domain_matches(record, &truth, &parent)?;
    assert_eq!(record["oom_memcg"]["path"], parent.path());
    assert_ne!(record["oom_memcg"]["id"], record["victim"]["memcg"]["id"]);
    Ok(())
}
