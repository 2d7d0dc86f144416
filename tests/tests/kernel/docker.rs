//! Containers named as their runtime names them: a real dockerd (Debian's
//! docker.io with runc, cgroupfs driver) started here, an image imported
//! from a tarball made here (busybox-static and the test hog, no
//! registry), `--network none`, `--memory 64m`. Each record is checked
//! against `docker inspect` (Name, Config.Image, Config.Labels,
//! State.OOMKilled, ExitCode) and the kernel's `Killed process` line.
//! `docker stop` of a container that ignores SIGTERM is a `--sigkill`
//! record checked against the runc processes that really signalled it.
//! podman does not run on this host (see ../shared/notes/toolchain.md), so
//! its cgroupfs layout is made by the test itself.

use anyhow::{Context as _, Result, ensure};
use oomtrace_tests::{
    KernelLog, TestCgroup, Tracer,
    docker::{DOCKER_CGROUP, Dockerd, output_within},
    hog::HogOptions,
    kmsg, schema,
    verify::{self, Truth},
};
use serde_json::{Value, json};

use crate::common::{MIB, TIMEOUT, fake_pod_ids, oom_kill, record_for, setup};

/// Containers land at `/oomtrace-test-docker/docker/<id>`: the
/// `/docker/<id>` shape of the cgroupfs driver, under a test cgroup that
/// is removed afterwards.
fn cgroup_parent() -> String {
    format!("/{DOCKER_CGROUP}/docker")
}

const IMAGE: &str = "shop/api:1.4";

/// A dockerd with the hog image, and oomtrace asking its socket.
fn start() -> Result<(Dockerd, Tracer)> {
    let dockerd = Dockerd::start(&cgroup_parent(), |_| Ok(Vec::new()))?;
    dockerd.import_hog_image(IMAGE)?;
    let socket = dockerd.socket();
    let tracer = Tracer::start(&[
        "--docker-socket",
        socket.to_str().context("utf8")?,
        "--candidates",
        "0",
    ])?;
    Ok((dockerd, tracer))
}

/// The kill record whose victim's memcg is container `id`'s.
fn record_in(tracer: &mut Tracer, id: &str) -> Result<Value> {
    let in_container =
        |r: &Value| r["type"] == "oom_kill" && r["victim"]["memcg"]["service"]["name"] == id;
    let records = tracer.read_until(TIMEOUT, |records| records.iter().any(in_container));
    records
        .into_iter()
        .find(in_container)
        .with_context(|| format!("no oom_kill record in container {id}"))
}

/// The kernel's report of the record's victim: the record's pid must be
/// the one the kernel killed.
fn truth_of(log: &mut KernelLog, record: &Value) -> Result<Truth> {
    let pid = record["victim"]["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .context("victim.pid")?;
    let lines = log.killed(&[pid], TIMEOUT);
    Truth::of(&lines, pid).map_err(|e| anyhow::anyhow!("{e}: {lines:#?}"))
}

/// The kill's fate against what docker says: `main_pid` is the
/// container's `State.Pid`, and the container lives on after a child kill.
fn expect_fate(record: &Value, killed: &str, main_pid: u64) {
    assert_eq!(record["fate"]["killed"], killed, "{record:#}");
    assert_eq!(record["fate"]["unit"], "container", "{record:#}");
    assert_eq!(record["fate"]["main_pid"], main_pid, "{record:#}");
    assert_eq!(
        record["fate"]["unit_exits"],
        killed == "main_process",
        "{record:#}"
    );
}

/// `oomtrace show` of one record, as a log pipeline would hand it over.
fn show_text(record: &Value) -> Result<String> {
    let scratch = oomtrace_tests::system::ScratchDir::new("docker-show")?;
    let file = scratch.path.join("kill.jsonl");
    std::fs::write(&file, format!("{record}\n"))?;
    let show = output_within(
        std::process::Command::new(oomtrace_tests::system::oomtrace_bin())
            .args(["show", "--from"])
            .arg(&file),
        TIMEOUT,
    )?;
    ensure!(
        show.status.success(),
        "oomtrace show failed: {}",
        String::from_utf8_lossy(&show.stderr)
    );
    let text = String::from_utf8_lossy(&show.stdout).into_owned();
    eprintln!("docker: oomtrace show of the kill:\n{text}");
    Ok(text)
}

/// What oomtrace must say about the container, from `docker inspect`.
fn service_matches_inspect(service: &Value, inspect: &Value) -> Result<()> {
    let id = inspect["Id"].as_str().context("Id")?;
    let name = inspect["Name"].as_str().context("Name")?;
    let labels: serde_json::Map<String, Value> = inspect["Config"]["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("com.docker.compose.") || k.starts_with("io.kubernetes."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        service,
        &json!({
            "kind": "docker_container",
            "name": id,
            "container_name": name.trim_start_matches('/'),
            "image": inspect["Config"]["Image"],
            "labels": labels,
        })
    );
    Ok(())
}

#[test]
fn a_named_compose_container_whose_main_process_is_killed_is_named_as_docker_names_it() -> Result<()>
{
    let _serial = setup();
    let (dockerd, mut tracer) = start()?;
    let mut log = KernelLog::open()?;
    kmsg::wait_for_oom_report_budget()?;
    let mut run = dockerd.command();
    let run = run
        .args(["run", "--name", "shop-api", "--network", "none"])
        .args(["--memory", "64m", "--memory-swap", "64m"])
        .args(["--label", "com.docker.compose.project=shop"])
        .args(["--label", "com.docker.compose.service=api"])
        .args(["--label", "maintainer=not-a-workload-label"])
        .args([IMAGE, "/hog", "alloc", "200"]);
    let run = output_within(run, TIMEOUT)?;
    let inspect = dockerd.inspect("shop-api")?;
    // Docker's own account: the main process was OOM killed.
    assert_eq!(inspect["State"]["OOMKilled"], true, "{inspect:#}");
    assert_eq!(inspect["State"]["ExitCode"], 137, "{inspect:#}");
    assert_eq!(run.status.code(), Some(137), "docker run: {run:?}");
    assert_eq!(inspect["Name"], "/shop-api");
    assert_eq!(inspect["Config"]["Image"], IMAGE);

    let id = inspect["Id"].as_str().context("Id")?;
    let record = record_in(&mut tracer, id)?;
    let truth = truth_of(&mut log, &record)?;
    verify::victim_matches_log(&record, &truth)?;
    assert_eq!(
        record["victim"]["memcg"]["path"],
        format!("{}/{id}", cgroup_parent())
    );
    service_matches_inspect(&record["victim"]["memcg"]["service"], &inspect)?;
    assert_eq!(
        record["victim"]["memcg"]["service"]["labels"],
        json!({"com.docker.compose.project": "shop", "com.docker.compose.service": "api"})
    );
    // The container's limit was hit: the same names there.
    service_matches_inspect(&record["oom_memcg"]["service"], &inspect)?;
    assert_eq!(record["oom_memcg"]["limit_bytes"], 64 * MIB);
    schema::validate(&record).map_err(anyhow::Error::msg)?;
    // The hog is the container's main process: the kernel's victim is it.
    expect_fate(&record, "main_process", u64::from(truth.killed.pid));
    assert_eq!(record["victim"]["ns_pid"], 1, "{record:#}");
    let text = show_text(&record)?;
    assert!(
        text.contains(&format!(
            "  workload docker container shop-api (image {IMAGE}) compose shop/api id {}\n",
            &id[..12]
        )),
        "{text}"
    );
    assert!(
        text.contains(
            "  fate     the container's main process was killed: the container exits (137)\n"
        ),
        "{text}"
    );
    let (_, _, stderr) = tracer.stop()?;
    assert!(
        !stderr.iter().any(|l| l.contains("did not answer")),
        "the lookup timed out: {stderr:#?}"
    );
    Ok(())
}

#[test]
fn a_child_killed_in_a_container_that_runs_on_is_the_kernels_victim_while_docker_says_oomkilled()
-> Result<()> {
    let _serial = setup();
    let (dockerd, mut tracer) = start()?;
    let mut log = KernelLog::open()?;
    kmsg::wait_for_oom_report_budget()?;
    // The shell is the container's main process; the hog its child. The
    // shell outlives the kill, says what it saw, and exits 0.
    let id = dockerd.docker(&[
        "run",
        "--detach",
        "--name",
        "shop-worker",
        "--network",
        "none",
        "--memory",
        "64m",
        "--memory-swap",
        "64m",
        IMAGE,
        "sh",
        "-c",
        "sleep 1; /hog alloc 200; echo hog exited $?; sleep 1",
    ])?;
    let id = id.trim();
    let main_pid = dockerd.inspect(id)?["State"]["Pid"]
        .as_u64()
        .context("State.Pid")?;
    ensure!(main_pid > 0, "the container is not running");
    let record = record_in(&mut tracer, id)?;
    let truth = truth_of(&mut log, &record)?;
    verify::victim_matches_log(&record, &truth)?;
    assert_ne!(
        u64::from(truth.killed.pid),
        main_pid,
        "the kernel killed the child, not the container's main process"
    );
    assert_eq!(record["victim"]["comm"], "hog");

    let code = dockerd.docker(&["wait", id])?;
    assert_eq!(code.trim(), "0", "the main process exits on its own");
    let inspect = dockerd.inspect(id)?;
    assert_eq!(inspect["State"]["OOMKilled"], true, "{inspect:#}");
    assert_eq!(inspect["State"]["ExitCode"], 0, "{inspect:#}");
    let logs = dockerd.docker(&["logs", id])?;
    assert!(logs.contains("hog exited 137"), "{logs}");
    service_matches_inspect(&record["victim"]["memcg"]["service"], &inspect)?;
    assert_eq!(record["victim"]["memcg"]["service"]["labels"], json!({}));
    schema::validate(&record).map_err(anyhow::Error::msg)?;
    expect_fate(&record, "child_process", main_pid);
    let text = show_text(&record)?;
    assert!(
        text.contains(&format!(
            "  fate     only a child process was killed; the container keeps running \
             (main process pid {main_pid}), though Docker reports OOMKilled\n"
        )),
        "{text}"
    );
    Ok(())
}

/// podman's cgroupfs manager puts a container at `/libpod_parent/libpod-<id>`
/// (no `.scope`); made here under a test cgroup. No podman state names it
/// (no socket, no containers.json at the path given): its names are null,
/// not guessed.
#[test]
fn a_podman_cgroupfs_container_is_named_by_id_and_nothing_is_guessed() -> Result<()> {
    let _serial = setup();
    let storage = oomtrace_tests::system::ScratchDir::new("podman-storage")?;
    let mut tracer = Tracer::start(&[
        "--podman-socket",
        "/nonexistent/podman.sock",
        "--podman-storage",
        storage.path.to_str().context("utf8")?,
        "--candidates",
        "0",
    ])?;
    let (_, id) = fake_pod_ids();
    let mut cgroup = TestCgroup::new("podman", 64 * MIB)?;
    let dir = cgroup.child(&format!("libpod_parent/libpod-{id}"))?;
    let pid = oom_kill(&dir, None, &HogOptions::default())?;
    let record = record_for(&mut tracer, pid)?;
    assert_eq!(
        record["victim"]["memcg"]["service"],
        json!({"kind": "podman_container", "name": id,
            "container_name": null, "image": null, "labels": null})
    );
    schema::validate(&record).map_err(anyhow::Error::msg)?;
    Ok(())
}

/// The namespace (and top cgroup, in every hierarchy) of the containerd
/// test's container: a test name, removed on drop.
const CTR_NAMESPACE: &str = "oomtrace-test-ctr";

/// Removes `/oomtrace-test-ctr` in every hierarchy when dropped (declared
/// before the dockerd, so it runs once containerd is gone).
struct CtrCgroups;

impl Drop for CtrCgroups {
    fn drop(&mut self) {
        for hierarchy in oomtrace_tests::docker::cgroup_hierarchies() {
            oomtrace_tests::docker::remove_cgroup_tree(&hierarchy.join(CTR_NAMESPACE));
        }
    }
}

/// containerd outside Kubernetes: a container run with `ctr` at
/// `/<namespace>/<id>` (nerdctl's cgroupfs layout) by the containerd our
/// dockerd runs, is named `containerd_container` because containerd runs
/// that task; the same shape without a containerd task (a test cgroup) is
/// not named at all.
#[test]
fn a_containerd_task_at_namespace_id_is_containerds_and_the_bare_shape_is_nothing() -> Result<()> {
    let _serial = setup();
    let _cgroups = CtrCgroups;
    let dockerd = Dockerd::start(&cgroup_parent(), |_| Ok(Vec::new()))?;
    dockerd.import_hog_image(IMAGE)?;
    let exec = dockerd.dir.path.join("exec/containerd");
    let address = exec.join("containerd.sock");
    let ctr = || {
        let mut command = std::process::Command::new("ctr");
        command
            .arg("--address")
            .arg(&address)
            .args(["--namespace", CTR_NAMESPACE]);
        command
    };
    let archive = dockerd.dir.path.join("image.tar");
    dockerd.docker(&["save", "--output", archive.to_str().context("utf8")?, IMAGE])?;
    let out = output_within(
        ctr()
            .args(["images", "import", "--snapshotter", "native"])
            .arg(&archive),
        TIMEOUT,
    )?;
    ensure!(out.status.success(), "ctr images import: {out:?}");
    let mut tracer = Tracer::start(&[
        "--containerd-state",
        exec.join("daemon").to_str().context("utf8")?,
        "--candidates",
        "0",
    ])?;
    let mut log = KernelLog::open()?;
    kmsg::wait_for_oom_report_budget()?;
    let (_, id) = fake_pod_ids();
    // --null-io: the hog's stdin is /dev/null, so it goes ahead at once.
    let out = output_within(
        ctr()
            .args(["run", "--rm", "--null-io", "--snapshotter", "native"])
            .args(["--memory-limit", &(64 * MIB).to_string()])
            .args(["--cgroup", &format!("/{CTR_NAMESPACE}/{id}")])
            .args([&format!("docker.io/{IMAGE}"), &id, "/hog", "alloc", "200"]),
        TIMEOUT,
    )?;
    // ctr reports the task's exit: SIGKILL.
    assert_eq!(out.status.code(), Some(137), "ctr run: {out:?}");
    let record = record_in(&mut tracer, &id)?;
    let truth = truth_of(&mut log, &record)?;
    verify::victim_matches_log(&record, &truth)?;
    assert_eq!(
        record["victim"]["memcg"]["path"],
        format!("/{CTR_NAMESPACE}/{id}")
    );
    assert_eq!(
        record["victim"]["memcg"]["service"],
        json!({"kind": "containerd_container", "name": id,
            "container_name": null, "image": null, "labels": null})
    );
    schema::validate(&record).map_err(anyhow::Error::msg)?;

    // The shape without a containerd task: `/oomtrace-test-N-M-bare/<id>`.
    let mut cgroup = TestCgroup::new("bare", 64 * MIB)?;
    let dir = cgroup.child(&id)?;
    let pid = oom_kill(&dir, None, &HogOptions::default())?;
    let record = record_for(&mut tracer, pid)?;
    assert_eq!(
        record["victim"]["memcg"]["path"],
        format!("{}/{id}", cgroup.path())
    );
    assert!(
        record["victim"]["memcg"]["service"].is_null(),
        "{:#}",
        record["victim"]["memcg"]
    );
    Ok(())
}

/// A runtime wrapper dockerd runs its containers with: it writes its own
/// pid and arguments to `runtime.log`, then becomes runc (same pid), so the
/// test knows which runc processes signalled the container, and with what.
const LOGGED_RUNTIME: &str = "logged-runc";
const LOGGED_RUNTIME_SCRIPT: &str =
    "#!/bin/sh\necho \"$$ $*\" >> {LOG}\nexec /usr/sbin/runc \"$@\"\n";

/// `docker stop -t 1` of a container whose main process ignores SIGTERM:
/// dockerd has containerd's shim run `runc kill ID 15`, waits the second,
/// then `runc kill ID 9`. The SIGKILL is a runtime stop by runc, with the
/// first runc's SIGTERM and the second docker waited: checked against the
/// runc pids the wrapper logged, the time `docker stop` took and docker's
/// exit code.
#[test]
fn docker_stop_of_a_container_ignoring_sigterm_is_a_runtime_stop_by_runc_after_its_sigterm()
-> Result<()> {
    let _serial = setup();
    let dockerd = Dockerd::start(&cgroup_parent(), |dir| {
        let runtime = dir.join(LOGGED_RUNTIME);
        let log = dir.join("runtime.log");
        std::fs::write(
            &runtime,
            LOGGED_RUNTIME_SCRIPT.replace("{LOG}", log.to_str().context("utf8")?),
        )?;
        std::fs::set_permissions(
            &runtime,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        Ok(vec![
            format!("--add-runtime={LOGGED_RUNTIME}={}", runtime.display()),
            format!("--default-runtime={LOGGED_RUNTIME}"),
        ])
    })?;
    dockerd.import_hog_image(IMAGE)?;
    let socket = dockerd.socket();
    let mut tracer = Tracer::start(&[
        "--sigkill",
        "--docker-socket",
        socket.to_str().context("utf8")?,
    ])?;
    let id = dockerd.docker(&[
        "run",
        "--detach",
        "--name",
        "shop-stubborn",
        "--network",
        "none",
        IMAGE,
        "sh",
        "-c",
        "trap '' TERM; while :; do sleep 1; done",
    ])?;
    let id = id.trim();
    let inspect = dockerd.inspect(id)?;
    let main_pid = inspect["State"]["Pid"].as_u64().context("State.Pid")?;
    ensure!(main_pid > 0, "the container is not running: {inspect:#}");
    // The shim: the main process's parent.
    let stat = std::fs::read_to_string(format!("/proc/{main_pid}/stat"))?;
    let shim_pid: u64 = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("ppid in {stat}"))?;
    let shim_comm = std::fs::read_to_string(format!("/proc/{shim_pid}/comm"))?;
    assert!(
        shim_comm.starts_with("containerd-shim"),
        "the main process's parent is {shim_comm}"
    );

    let stop = std::time::Instant::now();
    dockerd.docker(&["stop", "-t", "1", id])?;
    let stop_took = stop.elapsed();
    eprintln!("docker: docker stop -t 1 took {stop_took:?}");
    let inspect = dockerd.inspect(id)?;
    assert_eq!(inspect["State"]["ExitCode"], 137, "{inspect:#}");
    assert_eq!(inspect["State"]["OOMKilled"], false, "{inspect:#}");

    // The wrapper's log: `PID --root ... kill ID 15` and `... kill ID 9`.
    let runtime_log = std::fs::read_to_string(dockerd.dir.path.join("runtime.log"))?;
    let runc_kill = |signal: &str| -> Result<u64> {
        let mut pids = runtime_log.lines().filter_map(|l| {
            let (pid, args) = l.split_once(' ')?;
            let args: Vec<&str> = args.split_whitespace().collect();
            let at = args.iter().position(|a| *a == "kill")?;
            (args.get(at + 1..) == Some(&[id, signal][..])).then(|| pid.parse::<u64>().ok())?
        });
        let pid = pids
            .next()
            .with_context(|| format!("no runc kill {signal}: {runtime_log}"))?;
        ensure!(
            pids.next().is_none(),
            "two runc kill {signal}: {runtime_log}"
        );
        Ok(pid)
    };
    let term_runc = runc_kill("15")?;
    let kill_runc = runc_kill("9")?;

    let records = tracer.read_until(TIMEOUT, |r| {
        r.iter()
            .any(|x| x["type"] == "sigkill" && x["target"]["pid"] == main_pid)
    });
    let record = records
        .iter()
        .find(|r| r["type"] == "sigkill" && r["target"]["pid"] == main_pid)
        .with_context(|| format!("no sigkill record for {main_pid}: {records:#?}"))?;
    eprintln!("docker: the stop's sigkill record: {record}");
    schema::validate(record).map_err(anyhow::Error::msg)?;
    assert_eq!(record["target"]["tgid"], main_pid);
    assert_eq!(
        record["target"]["memcg"]["path"],
        format!("{}/{id}", cgroup_parent())
    );
    assert_eq!(record["target"]["memcg"]["service"]["name"], id);
    assert_eq!(record["sender"]["tgid"], kill_runc, "the runc kill 9");
    assert_eq!(record["sender"]["comm"], "runc");
    assert_eq!(record["code"], "SI_USER");
    let killer = &record["killer"];
    assert_eq!(killer["kind"], "runtime_stop", "{record}");
    assert_eq!(killer["name"], "runc", "{record}");
    assert_eq!(killer["basis"], "sender_program");
    // `runc kill` exits right after its kill(2), mostly before oomtrace
    // reads its /proc/PID/exe: then the name is its comm's.
    assert!(
        killer["program"].is_null() || killer["program"] == "/usr/sbin/runc",
        "{record}"
    );
    let sigterm = &record["sigterm"];
    assert_eq!(
        sigterm["sender"]["tgid"], term_runc,
        "the runc kill 15: {record}"
    );
    assert_eq!(sigterm["sender"]["comm"], "runc");
    // Docker waits its second after the SIGTERM is sent, then has the
    // SIGKILL sent: at least 1 s, at most what `docker stop` took.
    let grace_us = sigterm["grace_us"].as_u64().context("grace_us")?;
    assert!(
        (1_000_000..=stop_took.as_micros() as u64).contains(&grace_us),
        "grace {grace_us} us: at least docker's 1 s, at most the {stop_took:?} docker stop took"
    );
    Ok(())
}
