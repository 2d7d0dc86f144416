//! A victim that is not the allocator: the trigger is named, and on the
//! tracepoint path nothing is guessed.

use anyhow::{Context as _, Result};
use oomtrace_tests::{
    Hog, KernelLog, TestCgroup, Tracer,
    hog::HogOptions,
    kernel, kmsg,
    system::proc_rss,
    tracer::victim_record,
    verify::{comm_bytes, victim_matches_log},
};
use serde_json::Value;

use crate::common::{MIB, TIMEOUT, oom_domain_matches, setup, truth};

#[test]
fn an_idle_bystander_dies_and_the_allocator_is_named_the_trigger() -> Result<()> {
    bystander(None)
}

/// The classic tracepoint has no task pointer: what it cannot know about a
/// victim that is not `current` (tgid, memcg) is null, the rest is exact.
#[test]
fn the_tracepoint_path_reports_a_bystander_without_guessing() -> Result<()> {
    bystander(Some("tracepoint"))
}

/// The scenario under `--capture capture` (`None`: oomtrace's own choice).
fn bystander(capture: Option<&'static str>) -> Result<()> {
    let _serial = setup();
    let mut tracer = match capture {
        Some(capture) => Tracer::start(&["--capture", capture])?,
        None => Tracer::start(&[])?,
    };
    // What the test asked for, or else what the kernel offers, decides
    // which checks apply; not the record's own word.
    let path = capture.unwrap_or_else(kernel::expected_capture_path);
    let mut log = KernelLog::open()?;
    let cgroup = TestCgroup::new("bystander", 96 * MIB)?;

    // A big, idle process the kernel prefers to kill...
    let mut idle = Hog::spawn("hold", 48, &cgroup.dir, Some(1000), &HogOptions::default())?;
    idle.go()?;
    idle.wait_held(TIMEOUT)?;
    // ...its memory, exact, as /proc reads it while it sleeps.
    let (anon, file, shmem) = proc_rss(idle.pid)?;
    // ...and a smaller one that pushes the cgroup over its limit.
    kmsg::wait_for_oom_report_budget()?;
    let mut allocator = Hog::spawn("alloc", 64, &cgroup.dir, Some(0), &HogOptions::default())?;
    allocator.go()?;

    // The idle process is the victim.
    idle.wait_sigkilled(TIMEOUT)?;
    let allocator_status = allocator.wait(TIMEOUT)?;
    assert!(
        allocator_status.success(),
        "the allocator gets its memory once the victim is gone: {allocator_status:?}"
    );

    let records = tracer.records_for(&[idle.pid], TIMEOUT);
    let record = victim_record(&records, idle.pid).context("no record for the idle victim")?;
    let truth = truth(&mut log, idle.pid);
    assert_eq!(record["victim"]["oom_score_adj"], 1000);

    let trigger = &record["trigger"];
    assert_eq!(trigger["is_victim"], false);
    assert_eq!(trigger["pid"], allocator.pid);
    assert_eq!(trigger["tgid"], allocator.pid);
    assert_eq!(
        comm_bytes(&trigger["comm"]),
        b"oomtrace-test-h",
        "comm is the first 15 bytes"
    );
    assert_eq!(trigger["memcg"]["path"], cgroup.path());
    assert_eq!(trigger["memcg"]["id"], cgroup.id());

    assert_eq!(record["capture"], path, "the path asked for or offered");
    if path == "tracepoint" {
        let mut known = record.clone();
        known["victim"]["memcg"] = serde_json::json!({"path": truth.context.task_memcg});
        victim_matches_log(&known, &truth)?;
        assert_eq!(
            record["victim"]["memcg"],
            Value::Null,
            "not knowable from the event"
        );
        assert_eq!(
            record["victim"]["tgid"],
            Value::Null,
            "not knowable from the event"
        );
        assert_eq!(record["victim"]["rss_anon_exact_bytes"], Value::Null);
        assert_eq!(
            record["victim"]["runtime"],
            Value::Null,
            "its memory is read by tp_btf programs only"
        );
        for unknown in ["constraint", "oom_memcg", "oom_control"] {
            assert_eq!(
                record[unknown],
                Value::Null,
                "{unknown}: the event does not carry it"
            );
        }
    } else {
        oom_domain_matches(record, &truth, &cgroup)?;
        victim_matches_log(record, &truth)?;
        assert_eq!(record["victim"]["tgid"], idle.pid);
        // The idle victim's RSS did not move: the exact sums are /proc's.
        assert_eq!(
            record["victim"]["rss_anon_exact_bytes"], anon,
            "anon vs /proc/PID/status"
        );
        // Its file pages may not: the allocator's reclaim can take the
        // idle victim's page cache (its own binary) between our read and
        // the kill, never add to it. The log's figure, checked above, is
        // the exact one at the kill.
        let file_at_kill = record["victim"]["rss_file_exact_bytes"]
            .as_u64()
            .context("rss_file_exact_bytes")?;
        assert!(
            file_at_kill <= file,
            "file {file_at_kill} at the kill vs {file} in /proc/PID/status before it"
        );
        assert_eq!(
            record["victim"]["rss_shmem_exact_bytes"], shmem,
            "shmem vs /proc/PID/status"
        );
    }
    Ok(())
}
