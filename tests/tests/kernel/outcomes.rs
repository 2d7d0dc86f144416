//! What happened after the kill: the victim's exit and the reaper.

use anyhow::{Context as _, Result};
use oomtrace_tests::{Hog, TestCgroup, Tracer, hog::HogOptions, kmsg, tracer::victim_record};

use crate::common::{MIB, TIMEOUT, setup};

#[test]
fn a_victims_exit_is_reported_with_what_the_reaper_did() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&[])?;
    let cgroup = TestCgroup::new("outcome", 64 * MIB)?;
    kmsg::wait_for_oom_report_budget()?;
    let mut hog = Hog::spawn("alloc", 200, &cgroup.dir, None, &HogOptions::default())?;
    let (by_thread, by_field) = (
        format!("common_pid == {}", hog.pid),
        format!("pid == {}", hog.pid),
    );
    let trace = oomtrace_tests::tracefs::TraceInstance::with_filters(&[
        ("oom/mark_victim", &by_field),
        ("sched/sched_process_exit", &by_thread),
        ("oom/start_task_reaping", &by_field),
        ("oom/finish_task_reaping", &by_field),
        ("oom/skip_task_reaping", &by_field),
    ])?;
    hog.go_until_sigkilled(TIMEOUT)?;

    let pid = hog.pid;
    let records = tracer.read_until(TIMEOUT, |records| {
        records
            .iter()
            .any(|r| r["type"] == "oom_outcome" && r["victim"]["pid"] == pid)
    });
    let kill = victim_record(&records, hog.pid).context("the kill")?;
    let outcome = records
        .iter()
        .find(|r| r["type"] == "oom_outcome")
        .context("outcome")?;
    assert_eq!(
        outcome["kill_boot_ns"], kill["boot_ns"],
        "it follows its kill record"
    );
    assert_eq!(outcome["victim"]["tgid"], hog.pid);
    assert_eq!(outcome["exit_signal"], 9, "SIGKILL");

    // The kernel's own trace: kill, reaping (if any), exit.
    let events = trace.events()?;
    let at = |name: &str| {
        events
            .iter()
            .find(|(_, n, _)| n == name)
            .map(|(ns, _, _)| *ns)
    };
    let killed = at("mark_victim").context("mark_victim traced")?;
    let exited = at("sched_process_exit").context("exit traced")?;
    let before_exit = |name: &str| at(name).is_some_and(|ns| ns <= exited);
    let verdict = if before_exit("finish_task_reaping") {
        "reaped"
    } else if before_exit("skip_task_reaping") {
        "skipped"
    } else if before_exit("start_task_reaping") {
        "started"
    } else {
        "not_run"
    };
    assert_eq!(outcome["reaper"], verdict, "{events:?}");
    let traced_us = (exited - killed) / 1000;
    let ours = outcome["exited_after_us"]
        .as_u64()
        .context("exited_after_us")?;
    // Both on the boot clock; ftrace prints microseconds.
    assert!(
        ours.abs_diff(traced_us) <= 200,
        "exit after {ours} us, traced {traced_us} us"
    );
    Ok(())
}
