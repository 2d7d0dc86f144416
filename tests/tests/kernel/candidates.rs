//! The candidate table against the OOM killer's own task dump.

use anyhow::{Context as _, Result};
use oomtrace_tests::{Hog, KernelLog, TestCgroup, Tracer, hog::HogOptions, kmsg};

use crate::common::{MIB, TIMEOUT, record_for, setup};

/// Taken by the kernel side at the kill (the default, up to 16 rows).
#[test]
fn the_kernel_side_takes_the_candidate_table_at_the_kill() -> Result<()> {
    who_else_was_in_the_oom_domain(&[], "kernel")
}

/// More rows than the kernel side keeps: read from /proc after the kill.
#[test]
fn a_longer_candidate_table_is_read_from_proc() -> Result<()> {
    who_else_was_in_the_oom_domain(&["--candidates", "17"], "proc")
}

fn who_else_was_in_the_oom_domain(args: &[&str], source: &str) -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(args)?;
    let mut log = KernelLog::open()?;
    // 30 + 20 + 60 MiB of hogs is over 108 MiB whatever else they hold;
    // without the victim's 30 MiB there are some 20 MiB to spare, so a
    // victim whose memory is still being freed does not make the allocator
    // a second victim (it did once with 96 MiB, about 7 MiB to spare).
    let mut cgroup = TestCgroup::new("candidates", 108 * MIB)?;
    // Everyone in cgroups below the limit's (none in it, as cgroup v2
    // wants): the domain is the subtree.
    let workers = cgroup.child("workers")?;
    let below = cgroup.child("bystanders")?;
    let options = HogOptions::default();
    // The big idle one the kernel will pick, a small idle bystander, and an
    // allocator that pushes the cgroup over its limit and then holds.
    let mut big = Hog::spawn("hold", 30, &workers, Some(1000), &options)?;
    big.go()?;
    big.wait_held(TIMEOUT)?;
    let mut small = Hog::spawn("hold", 20, &below, Some(0), &options)?;
    small.go()?;
    small.wait_held(TIMEOUT)?;
    kmsg::wait_for_oom_report_budget()?;
    let mut allocator = Hog::spawn("hold", 60, &workers, Some(0), &options)?;
    allocator.go()?;
    // The big idle one is the victim.
    big.wait_sigkilled(TIMEOUT)?;
    // The allocator may not get to hold: the kernel can kill it too, in an
    // OOM of its own before the victim's memory is uncharged (seen once in
    // CI). The table checked here is the first kill's, taken while it was
    // alive (by the kernel side; /proc may be read after that second
    // kill); any other end of it is an error.
    let allocator_killed = allocator.wait_held(TIMEOUT).is_err();
    if allocator_killed {
        allocator
            .wait_sigkilled(TIMEOUT)
            .context("the allocator neither held its memory nor was OOM-killed")?;
    }

    let record = record_for(&mut tracer, big.pid)?;
    let lines = log.killed(&[big.pid], TIMEOUT);
    let table = kmsg::task_table_of(&lines, big.pid);
    let row = |pid: u32| {
        table.iter().find(|r| r.pid == pid).unwrap_or_else(|| {
            panic!("no task table row for {pid} (vm.oom_dump_tasks=0?): {lines:#?}")
        })
    };

    // The OOM killer's score of its victim, from its own table and formula.
    let victim = row(big.pid);
    // A memcg OOM weighs against the limit (no swap here): from the file.
    let totalpages = cgroup.limit()? / 4096;
    let points = victim.rss as i64
        + victim.swapents as i64
        + (victim.pgtables_bytes / 4096) as i64
        + victim.oom_score_adj * (totalpages / 1000) as i64;
    assert_eq!(
        record["oom_control"]["victim_points"], points,
        "victim_points"
    );

    let candidates = &record["candidates"];
    assert_eq!(candidates["source"], source, "{candidates}");
    let after = candidates["taken_after_us"]
        .as_u64()
        .context("taken_after_us")?;
    if source == "kernel" {
        assert_eq!(after, 0, "taken at the capture");
    } else {
        assert!(after > 0, "read after the kill: {after}");
    }
    let top = candidates["top"].as_array().context("top")?;
    let find = |pid: u32| top.iter().find(|t| t["pid"] == pid);
    assert!(
        find(big.pid).is_none(),
        "the victim is not its own candidate"
    );
    // Read from /proc after the allocator's own OOM kill, it may be gone.
    if source == "kernel" || !allocator_killed {
        assert_eq!(
            candidates["processes"], 2,
            "the two survivors: {candidates}"
        );
        assert!(find(allocator.pid).is_some(), "{top:?}");
    }
    let badness: Vec<i64> = top.iter().filter_map(|t| t["badness"].as_i64()).collect();
    assert!(
        badness.windows(2).all(|w| w[0] >= w[1]),
        "highest badness first: {badness:?}"
    );

    // The idle bystander's row against the kernel's table for this kill.
    let bystander = find(small.pid).context("the idle bystander is listed")?;
    let kernel = row(small.pid);
    assert_eq!(bystander["comm"], "oomtrace-test-h");
    assert_eq!(bystander["oom_score_adj"], kernel.oom_score_adj);
    assert_eq!(bystander["pgtables_bytes"], kernel.pgtables_bytes);
    assert_eq!(bystander["swap_bytes"], kernel.swapents * 4096);
    // /proc adds the per-CPU deltas each of the table's counters may lag by.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let slack = cpus * (2 * cpus).max(32) * 4096;
    let kinds = [
        ("anon", kernel.rss_anon),
        ("file", kernel.rss_file),
        ("shmem", kernel.rss_shmem),
    ];
    for (kind, pages) in kinds {
        let ours = bystander[format!("rss_{kind}_bytes")]
            .as_u64()
            .context("rss")?;
        assert!(
            ours.abs_diff(pages * 4096) <= slack,
            "rss_{kind} {ours} vs table {pages} pages"
        );
    }
    // The kernel's own figures for it (its table), within the slack of a
    // table read from /proc after the kill.
    let expected = kernel.rss + kernel.swapents + kernel.pgtables_bytes / 4096;
    let badness = bystander["badness"].as_u64().context("badness")?;
    assert!(
        badness.abs_diff(expected) <= slack / 4096,
        "oom_badness with oom_score_adj 0: {badness} vs the kernel's {expected} pages"
    );
    Ok(())
}

/// The table of a later kill in the same cgroup is who is there then: the
/// kernel side walks again, and the /proc path, which keeps an OOM
/// domain's directory open between kills, still reads it afresh.
#[test]
fn a_later_kill_in_the_same_cgroup_lists_who_is_there_then() -> Result<()> {
    later_kill_lists_who_is_there_then(&[])?;
    later_kill_lists_who_is_there_then(&["--candidates", "17"])
}

fn later_kill_lists_who_is_there_then(args: &[&str]) -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(args)?;
    let cgroup = TestCgroup::new("candidates-again", 48 * MIB)?;
    let options = HogOptions::default();
    let table_of = |record: &serde_json::Value| -> Result<Vec<u64>> {
        let top = record["candidates"]["top"].as_array().context("top")?;
        Ok(top.iter().filter_map(|t| t["pid"].as_u64()).collect())
    };
    let mut first = Hog::spawn("hold", 4, &cgroup.dir, Some(0), &options)?;
    first.go()?;
    first.wait_held(TIMEOUT)?;
    let victim = oomtrace_tests::hog::oom_kill(&cgroup.dir, 200, Some(1000), &options, TIMEOUT)?;
    let record = record_for(&mut tracer, victim)?;
    assert_eq!(
        table_of(&record)?,
        [u64::from(first.pid)],
        "{}",
        record["candidates"]
    );
    // The first bystander leaves, another comes.
    drop(first);
    let mut second = Hog::spawn("hold", 4, &cgroup.dir, Some(0), &options)?;
    second.go()?;
    second.wait_held(TIMEOUT)?;
    let victim = oomtrace_tests::hog::oom_kill(&cgroup.dir, 200, Some(1000), &options, TIMEOUT)?;
    let record = record_for(&mut tracer, victim)?;
    assert_eq!(
        table_of(&record)?,
        [u64::from(second.pid)],
        "the second kill's table is of the second bystander alone: {}",
        record["candidates"]
    );
    assert_eq!(record["candidates"]["processes"], 1);
    Ok(())
}
