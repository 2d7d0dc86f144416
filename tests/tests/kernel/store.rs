//! `--store` and `oomtrace list`: real kills in test cgroups, a real
//! database in a scratch directory, checked against the streamed records
//! and the kernel log.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use oomtrace_tests::{
    KernelLog, TestCgroup, Tracer, schema,
    system::{self, ScratchDir},
    verify::{Truth, victim_matches_log},
};
use serde_json::Value;

use crate::common::{MIB, TIMEOUT, kill_one, oom_kill, setup};

/// `oomtrace list ARGS...`: (exit success, stdout lines, stderr).
fn list(args: &[&str]) -> Result<(bool, Vec<String>, String)> {
    let out = Command::new(system::oomtrace_bin())
        .arg("list")
        .args(args)
        .output()
        .context("run oomtrace list")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok((
        out.status.success(),
        stdout.lines().map(str::to_string).collect(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The kill records `list --json` gives for `cgroup` from `db`.
fn stored_kills(db: &Path, cgroup: &TestCgroup) -> Result<Vec<Value>> {
    let path = cgroup.path();
    let db = db.to_string_lossy();
    let (ok, lines, stderr) =
        list(&["--store", &db, "--since", "1h", "--cgroup", &path, "--json"])?;
    if !ok {
        bail!("list failed: {stderr}");
    }
    lines
        .iter()
        .map(|l| serde_json::from_str(l).with_context(|| format!("not JSON: {l}")))
        .collect()
}

fn kills_of(records: &[Value], cgroup: &TestCgroup) -> Vec<Value> {
    records
        .iter()
        .filter(|r| r["type"] == "oom_kill" && r["oom_memcg"]["path"] == cgroup.path())
        .cloned()
        .collect()
}

fn db_in(scratch: &ScratchDir) -> PathBuf {
    scratch.path.join("history.db")
}

#[test]
fn stored_kills_are_the_streamed_records_and_match_the_kernel_log() -> Result<()> {
    let _serial = setup();
    let scratch = ScratchDir::new("store-list")?;
    let db = db_in(&scratch);
    let mut log = KernelLog::open()?;
    let mut tracer = Tracer::start(&["--store", &db.to_string_lossy()])?;
    let cgroup = TestCgroup::new("store-list", 48 * MIB)?;
    let mut pids = Vec::new();
    for _ in 0..3 {
        pids.push(oom_kill(&cgroup.dir, None, &Default::default())?);
    }
    let mut streamed = tracer.records_for(&pids, TIMEOUT);
    let (status, more, stderr) = tracer.stop()?;
    assert!(status.success(), "{stderr:?}");
    streamed.extend(more);
    let killed = log.killed(&pids, TIMEOUT);

    let stored = stored_kills(&db, &cgroup)?;
    assert_eq!(
        stored,
        kills_of(&streamed, &cgroup),
        "the streamed records, in order"
    );
    let stored_pids: Vec<u64> = stored
        .iter()
        .filter_map(|r| r["victim"]["pid"].as_u64())
        .collect();
    assert_eq!(
        stored_pids,
        pids.iter().map(|p| u64::from(*p)).collect::<Vec<_>>()
    );
    for (record, pid) in stored.iter().zip(&pids) {
        let truth = Truth::of(&killed, *pid).map_err(anyhow::Error::msg)?;
        victim_matches_log(record, &truth).map_err(|m| anyhow::anyhow!("{m}"))?;
    }

    // One line a kill, naming pid, the limit and its kind.
    let db_arg = db.to_string_lossy();
    let (ok, lines, _) = list(&["--store", &db_arg, "--cgroup", &cgroup.path()])?;
    assert!(ok);
    assert_eq!(
        lines.len(),
        1 + pids.len(),
        "a header and a line a kill: {lines:#?}"
    );
    for (line, pid) in lines[1..].iter().zip(&pids) {
        assert!(line.contains(&format!(" {pid} ")), "{line}");
        assert!(line.contains("48.0 MiB cgroup"), "{line}");
    }
    // Filters: the pid, the newest first, the latest one.
    let pid = pids[1].to_string();
    let (_, one, _) = list(&["--store", &db_arg, "--pid", &pid, "--json"])?;
    assert_eq!(one.len(), 1);
    let (_, latest, _) = list(&[
        "--store",
        &db_arg,
        "--cgroup",
        &cgroup.path(),
        "-r",
        "-n",
        "1",
        "--json",
    ])?;
    let latest: Value = serde_json::from_str(latest.first().context("one")?)?;
    assert_eq!(latest["victim"]["pid"], pids[2]);

    // The same records from a file of JSON lines give the same list.
    let file = scratch.path.join("stream.jsonl");
    let text: String = streamed.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&file, text)?;
    let (ok, from_file, _) = list(&[
        "--from",
        &file.to_string_lossy(),
        "--since",
        "1h",
        "--cgroup",
        &cgroup.path(),
        "--json",
    ])?;
    assert!(ok);
    let from_file: Vec<Value> = from_file
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(from_file, stored);
    Ok(())
}

#[test]
fn a_missing_database_gets_one_clear_sentence() -> Result<()> {
    let scratch = ScratchDir::new("store-missing")?;
    let db = scratch.path.join("nothing-here.db");
    let (ok, out, stderr) = list(&["--store", &db.to_string_lossy()])?;
    assert!(!ok);
    assert!(out.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no kill history at"), "{stderr}");
    assert!(!db.exists(), "list never creates a database");
    Ok(())
}

#[test]
fn sigkilled_in_a_storm_the_database_opens_and_the_history_goes_on() -> Result<()> {
    const STORM: usize = 8;
    /// Streamed this long before the SIGKILL: must have been committed
    /// (the writer commits as soon as it is free).
    const SETTLED: Duration = Duration::from_millis(500);
    let _serial = setup();
    let scratch = ScratchDir::new("store-crash")?;
    let db = db_in(&scratch);
    let db_arg = db.to_string_lossy().into_owned();
    let mut tracer = Tracer::start(&["--store", &db_arg])?;
    let cgroup = TestCgroup::new("store-crash", 32 * MIB)?;

    let (done_tx, done) = mpsc::channel();
    let dir = cgroup.dir.clone();
    let storm = thread::spawn(move || {
        let pids: Vec<Result<u32>> = (0..STORM)
            .map(|_| oomtrace_tests::hog::oom_kill(&dir, 200, None, &Default::default(), TIMEOUT))
            .collect();
        let _ = done_tx.send(());
        pids
    });
    // Read kills as they stream; SIGKILL oomtrace after half of them.
    let mut streamed: Vec<(Instant, Value)> = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while streamed
        .iter()
        .filter(|(_, r)| r["type"] == "oom_kill")
        .count()
        < STORM / 2
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match tracer.next_record(left) {
            Some(record) => streamed.push((Instant::now(), record)),
            None => bail!("only {} records before the timeout", streamed.len()),
        }
    }
    tracer.signal(libc::SIGKILL);
    let killed_at = Instant::now();
    streamed.extend(
        tracer
            .drain(Duration::from_millis(300))
            .into_iter()
            .map(|r| (killed_at, r)),
    );
    drop(tracer);
    let _ = done.recv_timeout(TIMEOUT * STORM as u32);
    let storm_pids: Vec<u32> = storm
        .join()
        .map_err(|_| anyhow::anyhow!("the storm thread panicked"))?
        .into_iter()
        .collect::<Result<_>>()?;
    assert_eq!(storm_pids.len(), STORM);

    let stored = stored_kills(&db, &cgroup)?;
    let streamed_kills: Vec<&(Instant, Value)> = streamed
        .iter()
        .filter(|(_, r)| r["type"] == "oom_kill" && r["oom_memcg"]["path"] == cgroup.path())
        .collect();
    // What is stored is what was streamed, in order, missing at most a
    // tail (the store may have committed the one the pipe had not yet
    // delivered when the SIGKILL came).
    assert!(stored.len() <= streamed_kills.len() + 1);
    for (stored, (_, streamed)) in stored.iter().zip(&streamed_kills) {
        assert_eq!(stored, streamed);
    }
    for (at, record) in &streamed_kills {
        if killed_at.duration_since(*at) >= SETTLED {
            assert!(
                stored.contains(record),
                "streamed {:?} before the SIGKILL, not stored: {record}",
                killed_at.duration_since(*at)
            );
        }
    }
    let missing = streamed_kills.len().saturating_sub(stored.len());
    eprintln!(
        "store crash window: {missing} of {} streamed kills not stored",
        streamed_kills.len()
    );
    assert!(
        missing <= 1280,
        "the stated window: the queue (1024) and a batch (256)"
    );

    // Restarted on the same file: no store warning, and the next kill of
    // this workload continues the count.
    let mut tracer = Tracer::start(&["--store", &db_arg])?;
    let pid = kill_one(&cgroup)?;
    let records = tracer.records_for(&[pid], TIMEOUT);
    let (_, _, stderr) = tracer.stop()?;
    assert!(
        !stderr.iter().any(|l| l.contains("store")),
        "the database opened cleanly: {stderr:#?}"
    );
    let next = records
        .iter()
        .find(|r| r["type"] == "oom_kill" && r["victim"]["pid"] == pid)
        .context("the kill after the restart")?;
    let n = stored.len() + 1;
    assert_eq!(next["history"]["kills"], n, "{}", next["history"]);
    let evidence = next["history"]["evidence"].as_str().unwrap_or("");
    assert!(
        evidence.starts_with(&format!("kill {n} here")),
        "{evidence}"
    );
    assert_eq!(stored_kills(&db, &cgroup)?.len(), n);
    Ok(())
}

/// A tmpfs of `size` mounted on `dir`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs> {
        std::fs::create_dir_all(dir)?;
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "oomtrace-test",
                &dir.to_string_lossy(),
            ])
            .status()
            .context("run mount")?;
        if !status.success() {
            bail!("mount tmpfs on {}: {status}", dir.display());
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_store_is_reported_once_and_counted_while_the_stream_goes_on() -> Result<()> {
    const KILLS: usize = 6;
    let _serial = setup();
    let scratch = ScratchDir::new("store-full")?;
    let mount = Tmpfs::mount(&scratch.path.join("tiny"), "96k")?;
    let db = mount.0.join("history.db");
    let mut tracer = Tracer::start(&["--store", &db.to_string_lossy()])?;
    let cgroup = TestCgroup::new("store-full", 32 * MIB)?;
    let mut pids = Vec::new();
    for _ in 0..KILLS {
        pids.push(kill_one(&cgroup)?);
    }
    let mut streamed = tracer.records_for(&pids, TIMEOUT);
    streamed.extend(tracer.drain(Duration::from_millis(500)));
    let (status, more, stderr) = tracer.stop()?;
    streamed.extend(more);
    assert!(
        status.success(),
        "a full store does not end the run: {stderr:#?}"
    );
    assert_eq!(
        kills_of(&streamed, &cgroup).len(),
        KILLS,
        "every kill streamed"
    );
    let warnings: Vec<&String> = stderr.iter().filter(|l| l.contains("store")).collect();
    assert_eq!(warnings.len(), 1, "reported once: {stderr:#?}");
    let lost_records: Vec<&Value> = streamed
        .iter()
        .filter(|r| r["type"] == "lost" && r["stage"] == "store")
        .collect();
    for record in &lost_records {
        assert_eq!(schema::validate(record), Ok(()), "{record}");
    }
    let lost: u64 = lost_records
        .iter()
        .filter_map(|r| r["count"].as_u64())
        .sum();
    let stored = stored_kills(&db, &cgroup)?.len();
    assert!(stored < KILLS, "the tmpfs filled up: {stored} stored");
    // Each kill not stored was counted (the last one may be counted after
    // the last lost record could be written).
    assert!(
        lost as usize >= KILLS - stored - 1 && lost > 0,
        "{lost} counted, {stored} stored"
    );
    Ok(())
}

#[test]
fn retention_removes_kills_older_than_asked() -> Result<()> {
    let _serial = setup();
    let scratch = ScratchDir::new("store-keep")?;
    let db = db_in(&scratch);
    let mut tracer = Tracer::start(&["--store", &db.to_string_lossy(), "--store-keep", "3s"])?;
    let cgroup = TestCgroup::new("store-keep", 32 * MIB)?;
    let old = kill_one(&cgroup)?;
    tracer.records_for(&[old], TIMEOUT);
    thread::sleep(Duration::from_secs(4));
    let new = kill_one(&cgroup)?;
    tracer.records_for(&[new], TIMEOUT);
    let (status, _, stderr) = tracer.stop()?;
    assert!(status.success(), "{stderr:#?}");
    let pids: Vec<Value> = stored_kills(&db, &cgroup)?
        .iter()
        .map(|r| r["victim"]["pid"].clone())
        .collect();
    assert_eq!(
        pids,
        [Value::from(new)],
        "the kill 4 s old went, the new one stayed"
    );
    Ok(())
}
