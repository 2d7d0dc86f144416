//! The command line as a user meets it: errors, check, signals, limits,
//! output destinations.

use std::{
    fs,
    os::unix::{net::UnixDatagram, process::CommandExt},
    path::Path,
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use oomtrace_tests::{
    TestCgroup, Tracer,
    cgroup::{Hierarchy, Version},
    kernel,
    system::{self, hostname, oomtrace_bin},
    tracer::victim_record,
    wait,
};

use crate::common::{MIB, TIMEOUT, kill_one, setup};

fn oomtrace(args: &[&str]) -> Command {
    let mut command = Command::new(oomtrace_bin());
    command.args(args).stdin(Stdio::null());
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("run oomtrace")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Waits until `file`'s contents satisfy `done`, or the timeout; returns
/// the contents either way.
fn wait_for_file(file: &Path, done: impl Fn(&str) -> bool) -> Result<String> {
    let mut contents = String::new();
    wait::poll(TIMEOUT, Duration::from_millis(50), || {
        contents = fs::read_to_string(file).unwrap_or_default();
        Ok(done(&contents).then_some(()))
    })?;
    Ok(contents)
}

/// `child`'s exit, killing it (and failing) if it outlives `timeout`.
fn exit_within(child: &mut Child, timeout: Duration, what: &str) -> Result<ExitStatus> {
    match wait::exit_of(child, timeout)? {
        Some(status) => Ok(status),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} within {timeout:?}")
        }
    }
}

fn assert_one_clear_line(stderr: &str) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn without_privileges_it_says_to_use_sudo_and_fails() {
    let _serial = setup();
    let output = run(oomtrace(&["--duration", "1"]).uid(65534).gid(65534));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("needs root") && stderr.contains("sudo"),
        "{stderr}"
    );
    assert_one_clear_line(&stderr);
    assert!(output.stdout.is_empty());

    let check = run(oomtrace(&["check"]).uid(65534).gid(65534));
    assert_eq!(
        check.status.code(),
        Some(1),
        "check fails without privileges"
    );
    assert!(
        text(&check.stdout).contains("NOT ENOUGH"),
        "{}",
        text(&check.stdout)
    );
}

#[test]
fn check_describes_this_kernel() -> Result<()> {
    let _serial = setup();
    let output = run(&mut oomtrace(&["check"]));
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    let line = |key: &str| -> String {
        stdout
            .lines()
            .find(|l| l.starts_with(key) && l[key.len()..].starts_with("  "))
            .unwrap_or_else(|| panic!("no `{key}` line in:\n{stdout}"))[key.len()..]
            .trim()
            .to_string()
    };
    let release = fs::read_to_string("/proc/sys/kernel/osrelease")?;
    assert!(line("kernel").starts_with(release.trim()));
    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    assert_eq!(line("BTF").starts_with("yes"), btf);
    let hierarchy = Hierarchy::find()?;
    let version = if hierarchy.version == Version::V1 {
        "v1"
    } else {
        "v2"
    };
    assert_eq!(
        line("memory cgroup"),
        format!("{version} at {}", hierarchy.root.display())
    );
    if let Some(tracefs) = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .map(Path::new)
        .find(|d| d.join("events").is_dir())
    {
        let format = fs::read_to_string(tracefs.join("events/oom/mark_victim/format"))?;
        let extended = format.contains(" comm;");
        assert_eq!(line("mark_victim event").starts_with("extended"), extended);
        assert_eq!(
            line("kprobes").starts_with("yes"),
            tracefs.join("kprobe_events").exists()
        );
    }
    let kallsyms = fs::read_to_string("/proc/kallsyms")?;
    let has_kprobes = kallsyms.lines().any(|l| l.ends_with(" register_kprobe"));
    assert_eq!(
        line("kprobes").starts_with("yes"),
        has_kprobes,
        "kprobes vs /proc/kallsyms"
    );
    // The kernel's own answer: does it attach an FENTRY program there?
    let fentry = kernel::fentry_attaches("oom_kill_process");
    assert_eq!(
        line("fentry").starts_with("yes"),
        fentry,
        "fentry vs the kernel loading one itself:\n{stdout}"
    );
    if !fentry && !has_kprobes {
        assert!(
            line("OOM context").starts_with("searched on the OOM task's stack"),
            "{stdout}"
        );
    }
    // The path both check and a run name is the one the kernel's answers
    // call for.
    let expected = kernel::expected_capture_path();
    let path = line("capture path");
    assert_eq!(
        path.split_whitespace().next(),
        Some(expected),
        "check's capture path: {path}"
    );
    let tracer = Tracer::start(&[])?;
    let ready = tracer.stderr_lines.last().cloned().unwrap_or_default();
    assert!(
        ready.contains(&format!("via {expected}")),
        "the kernel offers {expected}, the run says {ready}"
    );
    // Where check says the kernel side walks the domain, a run loads the
    // walk (its ready line names no fallback); the candidates tests check
    // the tables it gives.
    let walk = line("candidate table").starts_with("taken by the kernel side");
    assert_eq!(
        !ready.contains("candidate table read from /proc"),
        walk || expected == "tracepoint",
        "check: {}; the run: {ready}",
        line("candidate table")
    );
    assert!(stdout.contains("oomtrace can trace OOM kills on this kernel."));
    Ok(())
}

#[test]
fn usage_errors_exit_2_and_name_the_problem() {
    for (args, mention) in [
        (&["--bogus"][..], "--bogus"),
        (&["--count", "0"], "--count"),
        (&["--format", "xml"], "xml"),
        (&["--duration", "soon"], "soon"),
        (&["--ring-buffer-size", "3M"], "power of two"),
        (&["--ring-buffer-size", "16K"], "32768 bytes"),
    ] {
        let output = run(&mut oomtrace(args));
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(mention), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"));
    }
}

/// Every `--flag` in `text`, in order of first appearance.
fn flags_in(text: &str) -> Vec<String> {
    let mut flags: Vec<String> = Vec::new();
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        let name = word.trim_end_matches('-');
        if name.len() > 2 && name.starts_with("--") && !flags.iter().any(|f| f == name) {
            flags.push(name.to_string());
        }
    }
    flags
}

/// `  -o, --output <FILE>` or `      --sigkill`: an option's own line in
/// --help (not a `- value:` line of its possible values).
fn is_flag_line(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with("--") || (line.starts_with('-') && line.get(2..6) == Some(", --"))
}

#[test]
fn help_explains_every_flag() -> Result<()> {
    let output = run(&mut oomtrace(&["--help"]));
    assert!(output.status.success());
    let help = text(&output.stdout);
    // README.md's usage block, written for people, is the other account.
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))?;
    let usage = readme
        .split_once("## Usage")
        .and_then(|(_, rest)| rest.split_once("```"))
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .context("README.md has a ```usage block``` under ## Usage")?;
    let mut documented = flags_in(usage);
    documented.extend(["--help".to_string(), "--version".to_string()]);
    // Each option of --help is a line that starts with its flags.
    let options = help.split_once("Options:").context("an Options section")?.1;
    let offered: Vec<String> = options
        .lines()
        .filter(|l| is_flag_line(l))
        .filter_map(|l| flags_in(l).into_iter().next())
        .collect();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(offered.clone()),
        sorted(documented),
        "--help's flags vs README.md's usage block"
    );
    assert!(offered.len() >= 17, "{offered:?}");
    // Each one explained: a line of text follows the flag's own line.
    let lines: Vec<&str> = options.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if is_flag_line(l) {
            let next = lines.get(i + 1).map_or("", |n| n.trim());
            assert!(
                next.len() > 10 && !is_flag_line(next),
                "{l} has no explanation:\n{help}"
            );
        }
    }
    assert!(
        usage.contains("oomtrace check") && help.contains("  check  "),
        "the check command, in both:\n{help}"
    );
    assert!(
        help.contains("root"),
        "says what privileges it needs:\n{help}"
    );
    Ok(())
}

#[test]
fn sigint_and_sigterm_end_it_cleanly() -> Result<()> {
    // No other test's kills may land in its (expected empty) output.
    let _serial = setup();
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // `keep`: without CAP_SYS_RESOURCE the default adds a warning line.
        let mut tracer = Tracer::start(&["--oom-score-adj", "keep"])?;
        tracer.signal(signal);
        let (status, records, stderr) = tracer.finish(Duration::from_secs(10))?;
        assert!(status.success(), "signal {signal}: {status:?} {stderr:?}");
        assert!(records.is_empty());
        assert_eq!(stderr.len(), 1, "only the ready line: {stderr:?}");
    }
    Ok(())
}

#[test]
fn duration_ends_the_run_by_itself() -> Result<()> {
    let _serial = setup();
    let started = Instant::now();
    let mut tracer = Tracer::start(&["--duration", "1"])?;
    let (status, _, stderr) = tracer.finish(Duration::from_secs(20))?;
    assert!(status.success(), "{status:?} {stderr:?}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    Ok(())
}

#[test]
fn count_exits_after_that_many_kills() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&["--count", "2"])?;
    let cgroup = TestCgroup::new("count-flag", 48 * MIB)?;
    let first = kill_one(&cgroup)?;
    let second = kill_one(&cgroup)?;
    let (status, records, stderr) = tracer.finish(TIMEOUT)?;
    assert!(status.success(), "{status:?} {stderr:?}");
    let kills: Vec<_> = records.iter().filter(|r| r["type"] == "oom_kill").collect();
    assert_eq!(kills.len(), 2, "{records:?}");
    assert!(victim_record(&records, first).is_some() && victim_record(&records, second).is_some());
    Ok(())
}

#[test]
fn output_file_is_appended_to_and_stdout_stays_empty() -> Result<()> {
    let _serial = setup();
    let dir = std::env::temp_dir().join(format!("oomtrace-test-out-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let file = dir.join("kills.jsonl");
    fs::write(&file, "previous line\n")?;
    let tracer = Tracer::start(&["--output", file.to_str().context("utf8 path")?])?;
    let cgroup = TestCgroup::new("output", 64 * MIB)?;
    let pid = kill_one(&cgroup)?;
    let contents = wait_for_file(&file, |c| c.lines().count() >= 2)?;
    let (status, stdout_records, _) = tracer.stop()?;
    fs::remove_dir_all(&dir)?;
    assert!(status.success());
    assert!(
        stdout_records.is_empty(),
        "nothing on stdout: {stdout_records:?}"
    );
    let mut lines = contents.lines();
    assert_eq!(lines.next(), Some("previous line"));
    let record: serde_json::Value = serde_json::from_str(lines.next().context("a record")?)?;
    assert_eq!(record["victim"]["pid"], pid);
    Ok(())
}

#[test]
fn an_unwritable_output_path_is_a_clear_error() {
    let _serial = setup();
    let output = run(&mut oomtrace(&[
        "--output",
        "/proc/no-such-dir/kills.jsonl",
        "--duration",
        "1",
    ]));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot open /proc/no-such-dir/kills.jsonl"),
        "{stderr}"
    );
    assert_one_clear_line(&stderr);
}

#[test]
fn a_closed_pipe_ends_it_quietly() -> Result<()> {
    let _serial = setup();
    // `oomtrace | head -1` after head has exited: nobody reads stdout.
    let (read_end, write_end) = std::io::pipe()?;
    drop(read_end);
    let mut child = oomtrace(&["--format", "json", "--oom-score-adj", "keep"])
        .stdout(write_end)
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn")?;
    let mut stderr = child.stderr.take().context("stderr")?;
    let mut ready = [0u8; 15];
    std::io::Read::read_exact(&mut stderr, &mut ready)?;
    assert_eq!(&ready, b"oomtrace: ready");
    let cgroup = TestCgroup::new("pipe", 64 * MIB)?;
    kill_one(&cgroup)?;
    let status = exit_within(&mut child, TIMEOUT, "oomtrace must end with nobody reading")?;
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest)?;
    assert!(
        status.success(),
        "a closed pipe is a normal end: {status:?} {rest}"
    );
    let lines: Vec<&str> = rest.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "only the rest of the ready line: {rest:?}");
    Ok(())
}

#[test]
fn it_tells_systemd_it_is_ready() -> Result<()> {
    let _serial = setup();
    let socket_path =
        std::env::temp_dir().join(format!("oomtrace-test-notify-{}", std::process::id()));
    let _ = fs::remove_file(&socket_path);
    let socket = UnixDatagram::bind(&socket_path)?;
    socket.set_read_timeout(Some(TIMEOUT))?;
    let mut command = oomtrace(&["--format", "json"]);
    command.env("NOTIFY_SOCKET", &socket_path);
    let mut tracer = Tracer::spawn(&mut command)?;
    let mut buf = [0u8; 256];
    let received = socket.recv(&mut buf);
    let ready = tracer.wait_ready(TIMEOUT);
    let _ = fs::remove_file(&socket_path);
    let n = received.context("no notification")?;
    assert!(
        text(&buf[..n]).lines().any(|l| l == "READY=1"),
        "{}",
        text(&buf[..n])
    );
    ready?;
    Ok(())
}

#[test]
fn text_format_is_a_readable_summary() -> Result<()> {
    let _serial = setup();
    let file = std::env::temp_dir().join(format!("oomtrace-test-text-{}.txt", std::process::id()));
    let _ = fs::remove_file(&file);
    let mut tracer = Tracer::spawn(
        oomtrace(&[
            "--format",
            "text",
            "--output",
            file.to_str().context("utf8")?,
        ])
        .process_group(0),
    )?;
    tracer.wait_ready(TIMEOUT)?;
    let cgroup = TestCgroup::new("text", 64 * MIB)?;
    let pid = kill_one(&cgroup)?;
    let summary = wait_for_file(&file, |s| s.contains("trigger"))?;
    tracer.stop()?;
    let _ = fs::remove_file(&file);
    let headline = format!(
        "OOM kill on {}: pid {pid} (oomtrace-test-h) in memcg {}",
        hostname(),
        cgroup.path()
    );
    assert!(summary.contains(&headline), "{summary}");
    assert!(summary.contains("oom_score_adj 0"), "{summary}");
    assert!(
        summary.contains("trigger  the victim itself ran into the limit"),
        "{summary}"
    );
    assert!(system::parse_rfc3339_utc(summary.split_whitespace().next().unwrap_or("")).is_some());
    Ok(())
}

#[test]
fn on_a_terminal_the_default_is_the_text_summary() -> Result<()> {
    let _serial = setup();
    // script(1) runs oomtrace on a pseudo-terminal and copies it to us.
    let command_line = format!("{} --count 1", oomtrace_bin().display());
    let mut child = Command::new("script")
        .args([
            "--quiet",
            "--return",
            "--command",
            &command_line,
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("script(1) from util-linux is needed for this test")?;
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().context("stdout")?;
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let ready = std::iter::from_fn(|| rx.recv_timeout(TIMEOUT).ok())
        .inspect(|line| seen.push(line.clone()))
        .any(|line| line.starts_with("oomtrace: ready"));
    assert!(ready, "no ready line on the terminal: {seen:?}");
    let cgroup = TestCgroup::new("tty", 64 * MIB)?;
    let pid = kill_one(&cgroup)?;
    let status = exit_within(
        &mut child,
        TIMEOUT,
        &format!("oomtrace --count 1 must exit after its kill: {seen:?}"),
    )?;
    seen.extend(std::iter::from_fn(|| {
        rx.recv_timeout(Duration::from_millis(500)).ok()
    }));
    assert!(status.success(), "{status:?} {seen:?}");
    let headline = format!("OOM kill on {}: pid {pid} (oomtrace-test-h)", hostname());
    assert!(
        seen.iter().any(|l| l.contains(&headline)),
        "text, not JSON, on a terminal: {seen:?}"
    );
    assert!(
        !seen.iter().any(|l| l.trim_start().starts_with('{')),
        "{seen:?}"
    );
    Ok(())
}

#[test]
fn a_reader_that_stops_reading_never_hangs_it() -> Result<()> {
    use std::{
        io::{BufRead, BufReader, Read},
        os::fd::{FromRawFd, OwnedFd},
    };
    let _serial = setup();
    // A one-page pipe that nobody reads: two kill records overflow it.
    let mut fds = [0; 2];
    // SAFETY: a two-int array for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh descriptors from pipe2, owned here from now on.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: plain fcntl on our pipe.
    assert!(unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, 4096) } >= 4096);
    let mut child = KillOnDrop(
        oomtrace(&["--format", "json", "--oom-score-adj", "keep"])
            .stdout(Stdio::from(write_end))
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .context("spawn oomtrace")?,
    );
    let child = &mut child.0;
    let stderr = child.stderr.take().context("stderr")?;
    // The ready line, read on a thread so a stalled start cannot hang us.
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut stderr = BufReader::new(stderr);
        let mut ready = String::new();
        let _ = stderr.read_line(&mut ready);
        let _ = tx.send(ready);
        stderr
    });
    let ready = rx.recv_timeout(TIMEOUT).context("no ready line in time")?;
    assert!(ready.starts_with("oomtrace: ready"), "{ready}");
    let mut stderr = reader
        .join()
        .map_err(|_| anyhow::anyhow!("stderr reader panicked"))?;

    let cgroup = TestCgroup::new("stuck-reader", 48 * MIB)?;
    for _ in 0..4 {
        kill_one(&cgroup)?;
    }
    // SAFETY: signalling the child we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = exit_within(
        child,
        Duration::from_secs(20),
        "oomtrace must not hang on a reader that does not read",
    )?;
    let mut rest = String::new();
    stderr.read_to_string(&mut rest)?;
    assert!(status.success(), "{status:?} {rest}");
    assert!(
        rest.contains("records not written"),
        "says what it could not write: {rest:?}"
    );
    // What did get into the pipe is whole JSON lines.
    let mut piped = Vec::new();
    std::fs::File::from(read_end).read_to_end(&mut piped)?;
    let piped = text(&piped);
    let complete: Vec<&str> = piped
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .collect();
    assert!(!complete.is_empty(), "the first record went through");
    for line in complete {
        serde_json::from_str::<serde_json::Value>(line).context("a whole record")?;
    }
    Ok(())
}

#[test]
fn sigterm_in_a_storm_flushes_whole_records_and_releases_every_bpf_object() -> Result<()> {
    let _serial = setup();
    let mut tracer = Tracer::start(&[])?;
    let (progs, links) = system::bpf_ids_of(tracer.pid())?;
    assert!(
        !progs.is_empty() && !links.is_empty(),
        "{progs:?} {links:?}"
    );
    // Kills keep coming in three cgroups while it is told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let storms: Vec<_> = (0..3)
        .map(|i| {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || -> Result<u32> {
                let cgroup = TestCgroup::new(&format!("storm-stop-{i}"), 32 * MIB)?;
                let mut kills = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && kills < 40 {
                    kill_one(&cgroup)?;
                    kills += 1;
                }
                Ok(kills)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    tracer.signal(libc::SIGTERM);
    let finished = tracer.finish(TIMEOUT);
    // Before any early return: the storms must end with this test.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (status, records, stderr) = finished?;
    let mut kills = 0;
    for storm in storms {
        kills += storm
            .join()
            .map_err(|_| anyhow::anyhow!("storm panicked"))??;
    }
    assert!(status.success(), "{status:?} {stderr:?}");
    // Every line it wrote is a whole record (Tracer parses each line).
    let written = records.iter().filter(|r| r["type"] == "oom_kill").count();
    assert!(written > 0 && kills > 0, "{written} records, {kills} kills");
    for record in &records {
        if let Err(e) = oomtrace_tests::schema::validate(record) {
            panic!("{e}: {record}");
        }
    }
    for id in progs {
        assert!(
            !system::bpf_object_exists(id, false),
            "program {id} still loaded"
        );
    }
    for id in links {
        assert!(
            !system::bpf_object_exists(id, true),
            "link {id} still attached"
        );
    }
    Ok(())
}

/// Whether this process holds CAP_SYS_RESOURCE (bit 24 of CapEff).
fn has_cap_sys_resource() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

#[test]
fn it_shields_itself_from_the_oom_killer_or_says_it_cannot() -> Result<()> {
    let _serial = setup();
    let tracer = Tracer::start(&[])?;
    let adj = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", tracer.pid()))?;
    let warned = tracer
        .stderr_lines
        .iter()
        .any(|l| l.contains("cannot set its own oom_score_adj to -1000"));
    if has_cap_sys_resource() {
        assert_eq!(adj.trim(), "-1000");
        assert!(!warned, "{:?}", tracer.stderr_lines);
    } else {
        assert_ne!(adj.trim(), "-1000");
        assert!(warned, "says it stays killable: {:?}", tracer.stderr_lines);
    }
    // An explicit value within what it may set (raising needs nothing).
    let tracer = Tracer::start(&["--oom-score-adj", "500"])?;
    let adj = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", tracer.pid()))?;
    assert_eq!(adj.trim(), "500");
    let out = run(&mut oomtrace(&["--oom-score-adj", "-2000"]));
    assert_eq!(out.status.code(), Some(2), "out of range is a usage error");
    Ok(())
}

#[test]
fn capture_fentry_runs_where_the_kernel_attaches_fentry_and_says_why_not_elsewhere() -> Result<()> {
    let _serial = setup();
    // Decided by the kernel itself, not by oomtrace's check.
    if kernel::fentry_attaches("oom_kill_process") {
        let tracer = Tracer::start(&["--capture", "fentry"])?;
        let ready = tracer.stderr_lines.last().cloned().unwrap_or_default();
        assert!(ready.contains("via fentry"), "{ready}");
    } else {
        let out = run(&mut oomtrace(&["--capture", "fentry", "--count", "1"]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("fentry on oom_kill_process() failed")
                && stderr.contains("use `--capture auto`"),
            "{stderr}"
        );
    }
    Ok(())
}

/// A child killed (and reaped) when the test ends, also on a panic.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
