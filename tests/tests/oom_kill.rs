//! Real OOM kills in test cgroups, each record checked against what the
//! kernel itself reported and what the test itself set up.

use std::{
    path::Path,
    time::{Duration, SystemTime},
};

use anyhow::{Context as _, Result};
use oomtrace_tests::{
    Hog, KernelLog, TestCgroup, Tracer,
    hog::HogOptions,
    kmsg,
    system::{
        self, ScratchDir, boot_ns, hostname, proc_rss, require_root, serialize, vmstat_oom_kill,
    },
    tracer::victim_record,
    verify::{self, DomainFiles, Truth, assert_victim_matches_log, comm_bytes},
};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(30);
const MIB: u64 = 1 << 20;

/// Starts a hog in `dir` that allocates far past the limit, and waits
/// for the OOM killer's SIGKILL. Returns its pid.
fn oom_kill(dir: &Path, oom_score_adj: Option<i32>, options: &HogOptions) -> Result<u32> {
    kmsg::wait_for_oom_report_budget()?;
    let mut hog = Hog::spawn("alloc", 200, dir, oom_score_adj, options)?;
    hog.go()?;
    let status = hog.wait(TIMEOUT)?;
    assert!(
        Hog::was_sigkilled(&status),
        "the hog must die of SIGKILL, got {status:?}"
    );
    Ok(hog.pid)
}

/// The tracer's record for victim `pid`.
fn record_for(tracer: &mut Tracer, pid: u32) -> Result<Value> {
    let records = tracer.records_for(&[pid], TIMEOUT);
    victim_record(&records, pid)
        .cloned()
        .with_context(|| format!("no record for victim {pid}: {records:?}"))
}

fn setup() -> system::SerialGuard {
    require_root();
    let _ = system::oomtrace_bin();
    serialize()
}

fn truth(log: &mut KernelLog, pid: u32) -> Truth {
    let lines = log.killed(&[pid], TIMEOUT);
    Truth::of(&lines, pid).unwrap_or_else(|e| panic!("{e}: {lines:#?}"))
}

fn assert_oom_domain_matches(record: &Value, truth: &Truth, domain: &TestCgroup) -> Result<()> {
    verify::assert_oom_domain_matches(record, truth, &DomainFiles::read(domain)?);
    Ok(())
}

/// The exact sums may exceed or trail the kernel's counters by the
/// per-CPU batches not yet folded in, never by more.
fn assert_exact_rss_is_close(record: &Value) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let batch_pages = (2 * cpus).max(32);
    let slack = cpus * batch_pages * 4096;
    for kind in ["anon", "file", "shmem"] {
        let approx = record["victim"][format!("rss_{kind}_bytes")]
            .as_u64()
            .expect("rss");
        let exact = record["victim"][format!("rss_{kind}_exact_bytes")]
            .as_u64()
            .expect("exact rss");
        assert!(
            approx.abs_diff(exact) <= slack,
            "{kind}: {approx} vs exact {exact}"
        );
    }
}

#[test]
fn a_memcg_kill_is_reported_with_every_figure_the_kernel_logged() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&[])?;
    let ready = tracer.stderr_lines.last().cloned().unwrap_or_default();
    let mut log = KernelLog::open()?;
    let cgroup = TestCgroup::new("figures", 64 * MIB)?;
    let (vmstat_before, cgroup_before) = (vmstat_oom_kill()?, cgroup.oom_kills()?);
    let started = boot_ns();

    let pid = oom_kill(&cgroup.dir, None, &HogOptions::default())?;
    let record = &record_for(&mut tracer, pid)?;
    let truth = truth(&mut log, pid);
    assert_victim_matches_log(record, &truth);
    assert_exact_rss_is_close(record);
    assert_oom_domain_matches(record, &truth, &cgroup)?;

    assert_eq!(record["type"], "oom_kill");
    assert_eq!(record["schema"], 1);
    assert_eq!(record["host"], hostname());
    let capture = record["capture"].as_str().expect("capture");
    assert!(
        ready.contains(&format!("via {capture}")),
        "record says {capture}, ready line: {ready}"
    );
    assert_eq!(
        record["victim"]["tgid"], pid,
        "single-threaded: tgid == pid"
    );
    assert_eq!(record["victim"]["memcg"]["path"], cgroup.path());
    assert_eq!(
        record["victim"]["memcg"]["id"],
        cgroup.id(),
        "memcg id is the directory's inode"
    );

    // The hog ran into its own limit: it is the trigger.
    let trigger = &record["trigger"];
    assert_eq!(trigger["is_victim"], true);
    assert_eq!(
        (trigger["pid"].clone(), trigger["tgid"].clone()),
        (pid.into(), pid.into())
    );
    assert_eq!(comm_bytes(&trigger["comm"]), truth.killed.comm);
    assert_eq!(trigger["memcg"], record["victim"]["memcg"]);

    let boot = record["boot_ns"].as_u64().expect("boot_ns");
    assert!(
        boot > started && boot < boot_ns(),
        "boot_ns {boot} outside the test's window"
    );
    let time =
        system::parse_rfc3339_utc(record["time"].as_str().expect("time")).expect("RFC 3339 UTC");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_secs_f64();
    assert!(
        (now - time).abs() < 30.0,
        "time {} is not now",
        record["time"]
    );
    assert_eq!(
        record["time"]
            .as_str()
            .map(|t| t.split('.').nth(1).map(str::len)),
        Some(Some(7)),
        "microseconds + Z"
    );

    assert_eq!(
        vmstat_oom_kill()? - vmstat_before,
        1,
        "/proc/vmstat oom_kill"
    );
    assert_eq!(
        cgroup.oom_kills()? - cgroup_before,
        1,
        "the cgroup's oom_kill counter"
    );
    let (status, rest, stderr) = tracer.stop()?;
    assert!(
        status.success(),
        "SIGTERM ends oomtrace with 0, got {status:?}; stderr {stderr:?}"
    );
    assert!(
        rest.iter().all(|r| r["type"] != "lost"),
        "nothing lost: {rest:?}"
    );
    Ok(())
}

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
    assert_victim_matches_log(record, &truth(&mut log, pid));
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

#[test]
fn uid_and_oom_score_adj_of_the_victim_are_its_own() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&[])?;
    let mut log = KernelLog::open()?;
    let cgroup = TestCgroup::new("uid", 64 * MIB)?;
    let options = HogOptions {
        uid: Some(65534),
        ..Default::default()
    };
    let pid = oom_kill(&cgroup.dir, Some(567), &options)?;
    let record = &record_for(&mut tracer, pid)?;
    assert_eq!(record["victim"]["uid"], 65534);
    assert_eq!(record["victim"]["oom_score_adj"], 567);
    assert_victim_matches_log(record, &truth(&mut log, pid));
    Ok(())
}

#[test]
fn an_idle_bystander_dies_and_the_allocator_is_named_the_trigger() -> Result<()> {
    bystander(&[])
}

/// The classic tracepoint has no task pointer: what it cannot know about a
/// victim that is not `current` (tgid, memcg) is null, the rest is exact.
#[test]
fn the_tracepoint_path_reports_a_bystander_without_guessing() -> Result<()> {
    bystander(&["--capture", "tracepoint"])
}

fn bystander(args: &[&str]) -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(args)?;
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

    assert!(
        Hog::was_sigkilled(&idle.wait(TIMEOUT)?),
        "the idle process is the victim"
    );
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

    if record["capture"] == "tracepoint" {
        let mut known = record.clone();
        known["victim"]["memcg"] = serde_json::json!({"path": truth.context.task_memcg});
        assert_victim_matches_log(&known, &truth);
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
        assert_oom_domain_matches(record, &truth, &cgroup)?;
        assert_victim_matches_log(record, &truth);
        assert_eq!(record["victim"]["tgid"], idle.pid);
        // The idle victim's RSS did not move: the exact sums are /proc's.
        assert_eq!(
            record["victim"]["rss_anon_exact_bytes"], anon,
            "anon vs /proc/PID/status"
        );
        assert_eq!(
            record["victim"]["rss_file_exact_bytes"], file,
            "file vs /proc/PID/status"
        );
        assert_eq!(
            record["victim"]["rss_shmem_exact_bytes"], shmem,
            "shmem vs /proc/PID/status"
        );
    }
    Ok(())
}

#[test]
fn n_kills_give_exactly_n_records_and_vmstat_agrees() -> Result<()> {
    const KILLS: usize = 5;
    let _serial = setup();
    let mut tracer = Tracer::start(&[])?;
    let cgroup = TestCgroup::new("count", 48 * MIB)?;
    let (vmstat_before, cgroup_before) = (vmstat_oom_kill()?, cgroup.oom_kills()?);

    let mut pids = Vec::new();
    for _ in 0..KILLS {
        pids.push(oom_kill(&cgroup.dir, None, &HogOptions::default())?);
    }
    let mut records = tracer.records_for(&pids, TIMEOUT);
    let vmstat_delta = vmstat_oom_kill()? - vmstat_before;
    records.extend(tracer.drain(Duration::from_millis(500)));

    let kills: Vec<&Value> = records.iter().filter(|r| r["type"] == "oom_kill").collect();
    for pid in &pids {
        assert_eq!(
            kills.iter().filter(|r| r["victim"]["pid"] == *pid).count(),
            1,
            "one record for {pid}"
        );
    }
    assert_eq!(
        vmstat_delta, KILLS as u64,
        "/proc/vmstat oom_kill rose by the kills we made"
    );
    assert_eq!(
        kills.len() as u64,
        vmstat_delta,
        "one record per kernel kill, no more, no fewer"
    );
    assert_eq!(cgroup.oom_kills()? - cgroup_before, KILLS as u64);
    assert!(records.iter().all(|r| r["type"] != "lost"));
    Ok(())
}

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
    assert_victim_matches_log(record, &truth);
    assert_eq!(record["victim"]["memcg"]["path"], parent.relative(&child));
    assert_eq!(record["victim"]["memcg"]["id"], TestCgroup::id_of(&child));
    // The limit that was hit is the parent's, not the victim's own cgroup.
    assert_eq!(
        truth.context.oom_memcg.as_deref(),
        Some(parent.path().as_str())
    );
    assert_oom_domain_matches(record, &truth, &parent)?;
    assert_eq!(record["oom_memcg"]["path"], parent.path());
    assert_ne!(record["oom_memcg"]["id"], record["victim"]["memcg"]["id"]);
    Ok(())
}

/// A pod UID and a container id no other test uses: made from our pid
/// and the clock, in the shapes the kubelet and runtimes write.
fn fake_pod_ids() -> (String, String) {
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

#[test]
fn kubernetes_pods_and_services_are_named_from_the_cgroup_path() -> Result<()> {
    let _serial = setup();
    // The kubelet's log tree names the cgroupfs pod only: the systemd one
    // must then get null names, not another pod's.
    let logs = ScratchDir::new("kubelet-logs")?;
    let (uid, id) = fake_pod_ids();
    let (named_uid, named_id) = fake_pod_ids();
    let pod_logs = logs
        .path
        .join(format!("pods/shop_cart-7f9c_{named_uid}/api"));
    std::fs::create_dir_all(&pod_logs)?;
    std::fs::create_dir_all(logs.path.join("containers"))?;
    std::fs::write(pod_logs.join("0.log"), "")?;
    std::os::unix::fs::symlink(
        pod_logs.join("0.log"),
        logs.path
            .join(format!("containers/cart-7f9c_shop_api-{named_id}.log")),
    )?;
    let log_dir = logs.path.to_str().context("utf-8 temp dir")?;
    let mut tracer = Tracer::start(&["--kubelet-log-dir", log_dir])?;
    let mut log = KernelLog::open()?;
    let uid_ = uid.replace('-', "_");
    // (driver, pod uid, container id, pod directory, container directory
    // below it, limit on the pod (true) or on the container, qos, runtime,
    // (namespace, pod, container) names)
    let cases = [
        (
            "systemd",
            uid.clone(),
            id.clone(),
            format!("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice"),
            format!("cri-containerd-{id}.scope"),
            true,
            "burstable",
            Some("containerd"),
            None,
        ),
        (
            "cgroupfs",
            named_uid.clone(),
            named_id.clone(),
            format!("kubepods/besteffort/pod{named_uid}"),
            named_id.clone(),
            false,
            "besteffort",
            None,
            Some(("shop", "cart-7f9c", "api")),
        ),
    ];
    for (driver, uid, id, pod, container, pod_limit, qos, runtime, names) in cases {
        let mut node = TestCgroup::new(&format!("k8s-{driver}"), 128 * MIB)?;
        let pod_dir = node.child(&pod)?;
        let container_dir = node.child(&format!("{pod}/{container}"))?;
        let limited = if pod_limit { &pod_dir } else { &container_dir };
        let domain = node.set_child_limit(limited, 64 * MIB)?;
        let pid = oom_kill(&container_dir, None, &HogOptions::default())?;
        let record = &record_for(&mut tracer, pid)?;
        let truth = truth(&mut log, pid);
        assert_victim_matches_log(record, &truth);
        assert_oom_domain_matches(record, &truth, domain)?;

        let k8s = &record["victim"]["memcg"]["k8s"];
        assert_eq!(k8s["level"], "container", "{driver}: {k8s}");
        assert_eq!(k8s["cgroup_driver"], driver);
        assert_eq!(k8s["qos"], qos);
        assert_eq!(k8s["pod_uid"], uid.as_str());
        assert_eq!(k8s["container_id"], id.as_str());
        assert_eq!(k8s["runtime"], serde_json::json!(runtime));
        let (namespace, pod_name, container_name) = match names {
            Some((namespace, pod, container)) => (Some(namespace), Some(pod), Some(container)),
            None => (None, None, None),
        };
        assert_eq!(k8s["namespace"], serde_json::json!(namespace), "{driver}");
        assert_eq!(k8s["pod_name"], serde_json::json!(pod_name));
        assert_eq!(k8s["container_name"], serde_json::json!(container_name));
        assert!(record["victim"]["memcg"]["service"].is_null());
        let limit_owner = &record["oom_memcg"]["k8s"];
        assert_eq!(
            limit_owner["level"],
            if pod_limit { "pod" } else { "container" },
            "{driver}: whose limit, as the log's oom_memcg= {:?}",
            truth.context.oom_memcg
        );
        assert_eq!(limit_owner["pod_uid"], uid.as_str());
        assert_eq!(limit_owner["pod_name"], serde_json::json!(pod_name));
        let limit_container = if pod_limit { None } else { container_name };
        assert_eq!(
            limit_owner["container_name"],
            serde_json::json!(limit_container)
        );
    }

    let mut parent = TestCgroup::new("service", 64 * MIB)?;
    let unit = parent.child("oomtrace-demo.service")?;
    let pid = oom_kill(&unit, None, &HogOptions::default())?;
    let record = &record_for(&mut tracer, pid)?;
    assert_eq!(
        record["victim"]["memcg"]["service"],
        serde_json::json!({"kind": "systemd_service", "name": "oomtrace-demo.service"})
    );
    assert!(record["victim"]["memcg"]["k8s"].is_null());
    assert!(
        record["oom_memcg"]["service"].is_null(),
        "the limit is the test cgroup's"
    );
    Ok(())
}

#[test]
fn any_comm_bytes_give_valid_json_and_the_same_bytes_back() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&[])?;
    let mut log = KernelLog::open()?;
    let cgroup = TestCgroup::new("comm", 64 * MIB)?;
    let comm: &[u8] = b"a\"b\\c\x01\xff{\n}\xc3";
    let options = HogOptions {
        comm: Some(comm.to_vec()),
        ..Default::default()
    };
    let pid = oom_kill(&cgroup.dir, None, &options)?;
    // Tracer::records_for parses every line as JSON: invalid JSON fails here.
    let record = &record_for(&mut tracer, pid)?;
    assert_eq!(comm_bytes(&record["victim"]["comm"]), comm);
    assert_eq!(
        truth(&mut log, pid).killed.comm,
        comm,
        "the kernel log agrees"
    );
    Ok(())
}

#[test]
fn records_the_ring_buffer_cannot_take_are_reported_as_lost() -> Result<()> {
    const KILLS: u64 = 12;
    let _serial = setup();
    // The smallest ring (32 KiB) holds a few kill records of 4.3 KiB and
    // more; twelve cannot all fit while oomtrace is stopped.
    let mut tracer = Tracer::start(&["--ring-buffer-size", "32K"])?;
    let cgroup = TestCgroup::new("lost", 48 * MIB)?;
    let vmstat_before = vmstat_oom_kill()?;
    tracer.signal(libc::SIGSTOP);
    let mut pids = Vec::new();
    for _ in 0..KILLS {
        pids.push(oom_kill(&cgroup.dir, None, &HogOptions::default())?);
    }
    tracer.signal(libc::SIGCONT);
    let mut records = tracer.records_for(&pids[..1], TIMEOUT);
    records.extend(tracer.drain(Duration::from_secs(1)));

    let count = |kind: &str| records.iter().filter(|r| r["type"] == kind).count() as u64;
    let lost: u64 = records
        .iter()
        .filter(|r| r["type"] == "lost")
        .filter_map(|r| r["count"].as_u64())
        .sum();
    assert_eq!(vmstat_oom_kill()? - vmstat_before, KILLS);
    let summary: Vec<String> = records
        .iter()
        .map(|r| format!("{} {}", r["type"], r["count"]))
        .collect();
    assert!(
        count("oom_kill") < KILLS && lost > 0,
        "the ring overflowed: {summary:?}"
    );
    // Each victim gives a kill and an exit record: every one of them was
    // either delivered or counted as lost in the kernel.
    assert_eq!(
        count("oom_kill") + count("oom_outcome") + lost,
        2 * KILLS,
        "delivered + lost == sent: {summary:?}"
    );
    for record in records.iter().filter(|r| r["type"] == "lost") {
        assert_eq!(record["stage"], "ring_buffer");
        assert_eq!(record["schema"], 1);
        assert!(system::parse_rfc3339_utc(record["time"].as_str().unwrap_or("")).is_some());
    }
    Ok(())
}

#[test]
fn reclaim_stalls_before_a_kill_match_the_kernels_own_trace() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&[])?;
    let cgroup = TestCgroup::new("reclaim", 64 * MIB)?;
    kmsg::wait_for_oom_report_budget()?;
    let mut hog = Hog::spawn("alloc", 200, &cgroup.dir, None, &HogOptions::default())?;
    // The kernel's own record of the hog's reclaim, up to its kill.
    let trace = oomtrace_tests::tracefs::TraceInstance::new(
        &[
            "vmscan/mm_vmscan_memcg_reclaim_begin",
            "vmscan/mm_vmscan_memcg_reclaim_end",
            "oom/mark_victim",
        ],
        hog.pid,
    )?;
    hog.go()?;
    assert!(Hog::was_sigkilled(&hog.wait(TIMEOUT)?));
    let record = record_for(&mut tracer, hog.pid)?;
    let events = trace.events()?;
    let killed_at = events
        .iter()
        .position(|(_, name, _)| name == "mark_victim")
        .context("no mark_victim in the trace")?;
    let mut stalls = 0u64;
    let mut stall_ns = 0u64;
    let mut reclaimed_pages = 0u64;
    let mut begin = None;
    for (ns, name, fields) in &events[..killed_at] {
        match name.as_str() {
            "mm_vmscan_memcg_reclaim_begin" => begin = Some(*ns),
            "mm_vmscan_memcg_reclaim_end" => {
                stalls += 1;
                stall_ns += ns - begin.take().context("end without begin")?;
                reclaimed_pages += fields
                    .strip_prefix("nr_reclaimed=")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .context("nr_reclaimed")?;
            }
            _ => {}
        }
    }
    assert!(
        stalls > 0,
        "a 64 MiB cgroup filled with 200 MiB reclaims: {events:?}"
    );

    // Alone in its cgroup and traced from its first charge: the victim's
    // memcg history is exactly the hog's reclaim.
    let reclaim = &record["victim"]["memcg"]["reclaim"];
    assert_eq!(reclaim["total"]["stalls"], stalls, "stalls");
    assert_eq!(
        reclaim["total"]["reclaimed_bytes"],
        reclaimed_pages * 4096,
        "reclaimed"
    );
    assert_eq!(
        reclaim["last_10s"]["stalls"], stalls,
        "all within the last 10 s"
    );
    assert_eq!(
        reclaim["since_previous_kill"],
        Value::Null,
        "the cgroup's first kill"
    );
    // ftrace prints microseconds: allow 2 us per stall for rounding.
    let ours = reclaim["total"]["stall_ns"].as_u64().context("stall_ns")?;
    assert!(
        ours.abs_diff(stall_ns) <= stalls * 2_000 + stall_ns / 100,
        "stall time {ours} vs trace {stall_ns}"
    );
    let max = reclaim["total"]["max_stall_ns"].as_u64().context("max")?;
    assert!(
        max <= ours && max * stalls >= ours,
        "max {max} of {stalls} stalls totalling {ours}"
    );
    // The limit's cgroup is the victim's here: the same history.
    assert_eq!(record["oom_memcg"]["reclaim"], *reclaim);
    Ok(())
}

#[test]
fn the_candidate_table_shows_who_else_was_in_the_oom_domain() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&[])?;
    let mut log = KernelLog::open()?;
    let cgroup = TestCgroup::new("candidates", 96 * MIB)?;
    let options = HogOptions::default();
    // The big idle one the kernel will pick, a small idle bystander, and an
    // allocator that pushes the cgroup over its limit and then holds.
    let mut big = Hog::spawn("hold", 30, &cgroup.dir, Some(1000), &options)?;
    big.go()?;
    big.wait_held(TIMEOUT)?;
    let mut small = Hog::spawn("hold", 20, &cgroup.dir, Some(0), &options)?;
    small.go()?;
    small.wait_held(TIMEOUT)?;
    kmsg::wait_for_oom_report_budget()?;
    let mut allocator = Hog::spawn("hold", 60, &cgroup.dir, Some(0), &options)?;
    allocator.go()?;
    assert!(
        Hog::was_sigkilled(&big.wait(TIMEOUT)?),
        "the big idle one is the victim"
    );
    allocator.wait_held(TIMEOUT)?;

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
    assert_eq!(candidates["source"], "proc");
    assert!(
        candidates["taken_after_us"]
            .as_u64()
            .is_some_and(|us| us > 0)
    );
    assert_eq!(
        candidates["processes"], 2,
        "the two survivors: {candidates}"
    );
    let top = candidates["top"].as_array().context("top")?;
    let find = |pid: u32| top.iter().find(|t| t["pid"] == pid);
    assert!(
        find(big.pid).is_none(),
        "the victim is not its own candidate"
    );
    assert!(find(allocator.pid).is_some(), "{top:?}");
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

#[test]
fn a_storm_across_many_cgroups_is_reported_kill_by_kill() -> Result<()> {
    const CGROUPS: usize = 8;
    const KILLS_EACH: u64 = 3;
    let _serial = setup();
    let mut tracer = Tracer::start(&[])?;
    let cgroups: Vec<TestCgroup> = (0..CGROUPS)
        .map(|i| TestCgroup::new(&format!("storm{i}"), 32 * MIB))
        .collect::<Result<_>>()?;
    let vmstat_before = vmstat_oom_kill()?;

    // Each cgroup gets its kills one after the other; the cgroups run at
    // once, so the kills interleave across CPUs.
    let pids: Vec<(usize, u32)> = std::thread::scope(|scope| {
        let workers: Vec<_> = cgroups
            .iter()
            .enumerate()
            .map(|(i, cgroup)| {
                scope.spawn(move || -> Result<Vec<(usize, u32)>> {
                    let mut pids = Vec::new();
                    for _ in 0..KILLS_EACH {
                        let mut hog =
                            Hog::spawn("alloc", 100, &cgroup.dir, None, &HogOptions::default())?;
                        hog.go()?;
                        assert!(Hog::was_sigkilled(&hog.wait(TIMEOUT)?));
                        pids.push((i, hog.pid));
                    }
                    Ok(pids)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect::<Result<Vec<_>>>()
    })?
    .into_iter()
    .flatten()
    .collect();
    let all: Vec<u32> = pids.iter().map(|(_, pid)| *pid).collect();
    let mut records = tracer.records_for(&all, TIMEOUT);
    records.extend(tracer.drain(Duration::from_millis(500)));

    let kills: Vec<&Value> = records.iter().filter(|r| r["type"] == "oom_kill").collect();
    assert!(records.iter().all(|r| r["type"] != "lost"), "nothing lost");
    assert_eq!(
        vmstat_oom_kill()? - vmstat_before,
        (CGROUPS as u64) * KILLS_EACH
    );
    assert_eq!(kills.len(), all.len(), "one record per kill");
    for (i, cgroup) in cgroups.iter().enumerate() {
        let mine: Vec<&Value> = pids
            .iter()
            .filter(|(c, _)| *c == i)
            .map(|(_, pid)| victim_record(&records, *pid).expect("a record per victim"))
            .collect();
        for record in &mine {
            assert_eq!(record["victim"]["memcg"]["path"], cgroup.path());
            assert_eq!(record["constraint"], "memcg");
            assert_eq!(record["oom_memcg"]["path"], cgroup.path());
            assert_eq!(record["oom_memcg"]["id"], cgroup.id());
            assert_eq!(record["oom_memcg"]["limit_bytes"], cgroup.limit()?);
            assert_eq!(record["trigger"]["is_victim"], true);
        }
        // The cgroup's own counter, kill by kill: 1st, 2nd, 3rd.
        let mut counts: Vec<u64> = mine
            .iter()
            .filter_map(|r| r["oom_memcg"]["oom_kills"].as_u64())
            .collect();
        counts.sort_unstable();
        assert_eq!(
            counts,
            (1..=KILLS_EACH).collect::<Vec<_>>(),
            "{}",
            cgroup.path()
        );
        assert_eq!(cgroup.oom_kills()?, KILLS_EACH);
    }
    Ok(())
}

#[test]
fn pressure_warns_before_the_kill_once_per_cgroup() -> Result<()> {
    let _serial = setup();
    // 1 us: the first reclaim pass crosses it, well before the kill.
    let mut tracer = Tracer::start(&["--pressure", "1us"])?;
    let cgroup = TestCgroup::new("pressure", 64 * MIB)?;
    let pid = oom_kill(&cgroup.dir, None, &HogOptions::default())?;
    let mut records = tracer.records_for(&[pid], TIMEOUT);
    records.extend(tracer.drain(Duration::from_millis(300)));

    let mine: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "memcg_pressure" && r["memcg"]["id"] == cgroup.id())
        .collect();
    assert_eq!(
        mine.len(),
        1,
        "one warning per cgroup per 10 s: {records:#?}"
    );
    let warning = mine[0];
    let kill = victim_record(&records, pid).context("the kill")?;
    assert_eq!(warning["memcg"]["path"], cgroup.path());
    assert_eq!(warning["threshold_ns"], 1_000);
    let stalled = warning["stall_ns"].as_u64().context("stall_ns")?;
    assert!(
        stalled >= 1_000,
        "warned at {stalled} ns, under the threshold"
    );
    let stalls = warning["stalls"].as_u64().context("stalls")?;
    let total = kill["victim"]["memcg"]["reclaim"]["total"]["stalls"]
        .as_u64()
        .context("total")?;
    assert!(
        stalls >= 1 && stalls <= total,
        "{stalls} stalls of {total} before the kill"
    );
    let position = |r: &Value| records.iter().position(|x| x == r);
    assert!(
        position(warning) < position(kill),
        "the warning comes first"
    );
    let at = |r: &Value| r["boot_ns"].as_u64().context("boot_ns");
    assert!(at(warning)? < at(kill)?, "warned before the kill");
    Ok(())
}

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
    hog.go()?;
    assert!(Hog::was_sigkilled(&hog.wait(TIMEOUT)?));

    let deadline = std::time::Instant::now() + TIMEOUT;
    let mut records = Vec::new();
    while !records
        .iter()
        .any(|r: &Value| r["type"] == "oom_outcome" && r["victim"]["pid"] == hog.pid)
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        records.push(tracer.next_record(left).context("no oom_outcome record")?);
    }
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

/// A hog dressed up with a command line and environment of the test's
/// choosing: what oomtrace reports must be what the test set.
fn dressed(argv: &[&str], env: &[(&str, &str)]) -> HogOptions {
    HogOptions {
        command_line: Some(argv.iter().map(|s| s.to_string()).collect()),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

#[test]
fn the_victims_runtime_and_heap_cap_come_from_its_own_memory() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&[])?;
    let cgroup = TestCgroup::new("runtime", 64 * MIB)?;

    // 1. The victim runs into the limit itself: read at the kill. The JVM
    // takes the command line's -Xmx over JAVA_TOOL_OPTIONS, and the one
    // after the jar is the program's own argument.
    let jvm = dressed(
        &["java", "-Xms8m", "-Xmx48m", "-jar", "app.jar", "-Xmx1g"],
        &[("JAVA_TOOL_OPTIONS", "-Xmx32m")],
    );
    let pid = oom_kill(&cgroup.dir, None, &jvm)?;
    let record = record_for(&mut tracer, pid)?;
    let runtime = &record["victim"]["runtime"];
    assert_eq!(
        (
            runtime["kind"].clone(),
            runtime["heap_limit_bytes"].clone(),
            runtime["setting"].clone(),
            runtime["setting_source"].clone(),
        ),
        (
            "jvm".into(),
            (48 * MIB).into(),
            "-Xmx48m".into(),
            "argv".into()
        ),
        "{runtime}"
    );
    assert_eq!(runtime["captured_at"], "kill");
    assert_eq!(runtime["args_truncated"], false);

    // 2. A bystander dies: its memory is read at its exit.
    let go = HogOptions {
        env: vec![("GOMEMLIMIT".into(), "40MiB".into())],
        ..dressed(&["/app/server", "--port=8080"], &[])
    };
    let mut idle = Hog::spawn("hold", 40, &cgroup.dir, Some(1000), &go)?;
    idle.go()?;
    idle.wait_held(TIMEOUT)?;
    kmsg::wait_for_oom_report_budget()?;
    let mut allocator = Hog::spawn("alloc", 48, &cgroup.dir, Some(0), &HogOptions::default())?;
    allocator.go()?;
    assert!(
        Hog::was_sigkilled(&idle.wait(TIMEOUT)?),
        "the idle one dies"
    );
    allocator.wait(TIMEOUT)?;
    let record = record_for(&mut tracer, idle.pid)?;
    assert_eq!(record["trigger"]["is_victim"], false);
    let runtime = &record["victim"]["runtime"];
    assert_eq!(runtime["kind"], "go", "{runtime}");
    assert_eq!(runtime["heap_limit_bytes"], 40 * MIB);
    assert_eq!(runtime["setting"], "GOMEMLIMIT=40MiB");
    assert_eq!(runtime["captured_at"], "exit");

    // 3. A setting past what oomtrace copies is not guessed at: reported
    // as truncated, with no runtime named.
    let filler: Vec<(String, String)> = (0..200)
        // Command sorts the environment by name: these come first.
        .map(|i| (format!("A_SERVICE_{i}_PORT"), "x".repeat(90)))
        .collect();
    let mut env: Vec<(&str, &str)> = filler
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.push(("GOMEMLIMIT", "1GiB"));
    let pid = oom_kill(&cgroup.dir, None, &dressed(&["/app/server"], &env))?;
    let record = record_for(&mut tracer, pid)?;
    let runtime = &record["victim"]["runtime"];
    assert_eq!(runtime["env_truncated"], true, "{runtime}");
    assert_eq!(runtime["kind"], Value::Null);
    assert_eq!(runtime["heap_limit_bytes"], Value::Null);
    Ok(())
}

#[test]
fn the_victims_age_and_its_workloads_kill_history() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&[])?;
    let cgroup = TestCgroup::new("history", 64 * MIB)?;
    let mut records = Vec::new();
    for _ in 0..2 {
        kmsg::wait_for_oom_report_budget()?;
        let mut hog = Hog::spawn("alloc", 200, &cgroup.dir, None, &HogOptions::default())?;
        let started_ticks = system::proc_start_ticks(hog.pid)?;
        hog.go()?;
        assert!(Hog::was_sigkilled(&hog.wait(TIMEOUT)?));
        let record = record_for(&mut tracer, hog.pid)?;
        // Its start, back from the record, is /proc's to the tick.
        let victim = &record["victim"];
        let age = victim["age_ns"].as_u64().context("age_ns")?;
        let boot = record["boot_ns"].as_u64().context("boot_ns")?;
        let tick_ns = 1_000_000_000 / system::ticks_per_second();
        assert_eq!(
            (boot - age) / tick_ns,
            started_ticks,
            "start vs /proc/PID/stat"
        );
        records.push(record);
    }
    let (first, second) = (&records[0]["history"], &records[1]["history"]);
    assert_eq!(first["workload"], format!("memcg {}", cgroup.path()));
    assert_eq!(
        second["workload"], first["workload"],
        "same limit, same workload"
    );
    assert_eq!(
        (first["kills"].clone(), second["kills"].clone()),
        (1.into(), 2.into())
    );
    assert_eq!(first["since_previous_kill_ns"], Value::Null);
    let interval =
        records[1]["boot_ns"].as_u64().unwrap_or(0) - records[0]["boot_ns"].as_u64().unwrap_or(0);
    assert_eq!(second["since_previous_kill_ns"], interval);
    // Killed within a second of starting, both times.
    for history in [first, second] {
        assert_eq!(history["hint"], "undersized", "{history}");
    }
    Ok(())
}

/// oomtrace's resident memory, from /proc/PID/status.
fn vm_rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("no VmRSS")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kb * 1024)
}

#[test]
fn a_soak_of_steady_kills_keeps_counts_exact_and_memory_flat() -> Result<()> {
    // One minute in CI; the benchmark runs it longer (OOMTRACE_SOAK_SECS).
    let seconds: u64 = std::env::var("OOMTRACE_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let _serial = setup();
    let mut tracer = Tracer::start(&["--pressure", "--sigkill"])?;
    let cgroups = [
        TestCgroup::new("soak-a", 32 * MIB)?,
        TestCgroup::new("soak-b", 48 * MIB)?,
    ];
    let vmstat_before = vmstat_oom_kill()?;
    let started = std::time::Instant::now();
    let warm = Duration::from_secs(seconds / 4);
    let mut rss_warm = None;
    let mut pids = Vec::new();
    let mut records = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        let cgroup = &cgroups[pids.len() % 2];
        let mut hog = Hog::spawn("alloc", 200, &cgroup.dir, None, &HogOptions::default())?;
        hog.go()?;
        assert!(Hog::was_sigkilled(&hog.wait(TIMEOUT)?));
        pids.push(hog.pid);
        // Keep reading so the pipe never fills.
        records.extend(tracer.drain(Duration::from_millis(5)));
        if rss_warm.is_none() && started.elapsed() >= warm {
            rss_warm = Some(vm_rss(tracer.pid())?);
        }
    }
    records.extend(tracer.drain(Duration::from_secs(1)));
    let rss_end = vm_rss(tracer.pid())?;

    let kills: Vec<&Value> = records.iter().filter(|r| r["type"] == "oom_kill").collect();
    assert_eq!(vmstat_oom_kill()? - vmstat_before, pids.len() as u64);
    assert_eq!(kills.len(), pids.len(), "one record per kill, exactly");
    for pid in &pids {
        assert!(victim_record(&records, *pid).is_some(), "{pid}");
    }
    assert!(records.iter().all(|r| r["type"] != "lost"));
    for record in &records {
        oomtrace_tests::schema::validate(record).map_err(|e| anyhow::anyhow!("{e}: {record}"))?;
    }
    let rss_warm = rss_warm.context("ran long enough to warm up")?;
    eprintln!(
        "soak: {} kills in {seconds} s, oomtrace RSS {} KiB after warm-up, {} KiB at the end",
        pids.len(),
        rss_warm / 1024,
        rss_end / 1024
    );
    assert!(
        rss_end <= rss_warm + 4 * MIB,
        "memory grew from {rss_warm} to {rss_end} bytes over {} kills",
        pids.len()
    );
    Ok(())
}

#[test]
fn filters_write_only_the_chosen_subtree_name_and_pod() -> Result<()> {
    let _serial = setup();
    let (uid, id) = fake_pod_ids();
    let mut pods = TestCgroup::new("filter-pods", 128 * MIB)?;
    let pod_dir = pods.child(&format!("kubepods/burstable/pod{uid}"))?;
    let container = pods.child(&format!("kubepods/burstable/pod{uid}/{id}"))?;
    pods.set_child_limit(&pod_dir, 64 * MIB)?;
    let other = TestCgroup::new("filter-other", 64 * MIB)?;
    let named = HogOptions {
        comm: Some(b"filtered-name".to_vec()),
        ..Default::default()
    };

    // Each filter on its own: kills outside it never show.
    let by_cgroup = Tracer::start(&["--cgroup", &pods.path()])?;
    let by_comm = Tracer::start(&["--comm", "filtered-name"])?;
    let by_pod = Tracer::start(&["--pod", &uid.replace('-', "_")])?;
    let outside = oom_kill(&other.dir, None, &HogOptions::default())?;
    let in_pod = oom_kill(&container, None, &HogOptions::default())?;
    let by_name = oom_kill(&other.dir, None, &named)?;
    let kills = |tracer: Tracer| -> Result<Vec<u64>> {
        let (status, records, _) = tracer.stop()?;
        assert!(status.success());
        Ok(records
            .iter()
            .filter(|r| r["type"] == "oom_kill")
            .filter_map(|r| r["victim"]["pid"].as_u64())
            .collect())
    };
    // stop() drains what is left: every kill above has been captured by
    // then (each waited for its SIGKILL; the records follow within ms).
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(kills(by_cgroup)?, vec![u64::from(in_pod)], "--cgroup");
    assert_eq!(kills(by_comm)?, vec![u64::from(by_name)], "--comm");
    assert_eq!(kills(by_pod)?, vec![u64::from(in_pod)], "--pod");
    let _ = outside;
    Ok(())
}
