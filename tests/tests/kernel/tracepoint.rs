//! The classic tracepoint path (`--capture tracepoint`): what the event
//! carries is exact, what it cannot know is null.

use anyhow::Result;
use oomtrace_tests::{KernelLog, TestCgroup, Tracer, hog::HogOptions, verify::victim_matches_log};
use serde_json::Value;

use crate::common::{MIB, oom_kill, record_for, setup, truth};

#[test]
fn the_tracepoint_path_reports_every_figure_the_kernel_logged() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&["--capture", "tracepoint"])?;
    let ready = tracer.stderr_lines.last().cloned().unwrap_or_default();
    assert!(ready.contains("via tracepoint"), "{ready}");
    let mut log = KernelLog::open()?;
    let cgroup = TestCgroup::new("tracepoint", 64 * MIB)?;
    let options = HogOptions {
        uid: Some(65534),
        ..Default::default()
    };
    let pid = oom_kill(&cgroup.dir, Some(321), &options)?;
    let record = &record_for(&mut tracer, pid)?;
    assert_eq!(record["capture"], "tracepoint");
    // The victim ran into the limit itself, so `current` is the victim:
    // its tgid and cgroup are known even without a task pointer.
    victim_matches_log(record, &truth(&mut log, pid))?;
    assert_eq!(record["victim"]["uid"], 65534);
    assert_eq!(record["victim"]["oom_score_adj"], 321);
    assert_eq!(record["victim"]["tgid"], pid);
    assert_eq!(record["victim"]["memcg"]["id"], cgroup.id());
    assert_eq!(record["trigger"]["is_victim"], true);
    assert_eq!(
        record["victim"]["rss_anon_exact_bytes"],
        Value::Null,
        "no exact sums from the event"
    );
    Ok(())
}
