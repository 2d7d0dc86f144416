//! `--sigkill`: a SIGKILL that is not the OOM killer's is reported with its
//! sender; an OOM kill is reported once, as an oom_kill.

use std::time::Duration;

use anyhow::{Context as _, Result};
use oomtrace_tests::{Hog, TestCgroup, Tracer, hog::HogOptions, tracer::victim_record};
use serde_json::Value;

use crate::common::{MIB, TIMEOUT, oom_kill, setup};

#[test]
fn a_kill_dash_9_is_a_sigkill_record_naming_its_sender() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&["--sigkill"])?;
    let cgroup = TestCgroup::new("sigkill", 64 * MIB)?;
    let mut hog = Hog::spawn("hold", 4, &cgroup.dir, None, &HogOptions::default())?;
    hog.go()?;
    hog.wait_held(TIMEOUT)?;
    // SAFETY: gettid has no preconditions; kill targets our own child.
    let sender_tid = unsafe { libc::gettid() } as u32;
    assert_eq!(unsafe { libc::kill(hog.pid as i32, libc::SIGKILL) }, 0);
    hog.wait_sigkilled(TIMEOUT)?;

    let pid = hog.pid;
    let records = tracer.read_until(TIMEOUT, |r| {
        r.iter()
            .any(|x| x["type"] == "sigkill_outcome" && x["victim"]["pid"] == pid)
    });
    let kill = records
        .iter()
        .find(|r| r["type"] == "sigkill" && r["target"]["pid"] == pid)
        .with_context(|| format!("no sigkill record for {pid}: {records:#?}"))?;
    assert_eq!(kill["target"]["tgid"], pid);
    assert_eq!(kill["target"]["comm"], "oomtrace-test-h");
    assert_eq!(kill["target"]["memcg"]["path"], cgroup.path());
    assert_eq!(
        kill["sender"]["tgid"],
        std::process::id(),
        "the test process sent it"
    );
    assert_eq!(kill["sender"]["pid"], sender_tid, "from this thread");
    assert_eq!(kill["code"], "SI_USER", "kill(2)");
    assert_eq!(kill["sent_by"], "process");
    assert_eq!(kill["group"], true);

    let outcome = records
        .iter()
        .find(|r| r["type"] == "sigkill_outcome" && r["victim"]["pid"] == pid)
        .context("outcome")?;
    assert_eq!(outcome["kill_boot_ns"], kill["boot_ns"]);
    assert_eq!(outcome["exit_signal"], 9);
    assert!(
        records.iter().all(|r| r["type"] != "oom_kill"),
        "no OOM here"
    );
    Ok(())
}

#[test]
fn an_oom_kill_is_one_oom_kill_record_and_no_sigkill() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&["--sigkill"])?;
    let cgroup = TestCgroup::new("sigkill-oom", 64 * MIB)?;
    let pid = oom_kill(&cgroup.dir, None, &HogOptions::default())?;

    let mut records = tracer.read_until(TIMEOUT, |r| {
        r.iter()
            .any(|x| x["type"] == "oom_outcome" && x["victim"]["pid"] == pid)
    });
    // Past the hold on kernel SIGKILLs, so a duplicate would have shown.
    records.extend(tracer.drain(Duration::from_millis(300)));
    assert!(
        victim_record(&records, pid).is_some(),
        "the oom_kill record"
    );
    let duplicates: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "sigkill" && r["target"]["tgid"] == pid)
        .collect();
    assert!(
        duplicates.is_empty(),
        "reported once, as oom_kill: {duplicates:#?}"
    );
    assert_eq!(
        records.iter().filter(|r| r["type"] == "oom_kill").count(),
        1
    );
    Ok(())
}
