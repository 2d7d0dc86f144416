//! The victim's language runtime and heap cap, read from its memory.

use anyhow::Result;
use oomtrace_tests::{Hog, TestCgroup, Tracer, hog::HogOptions, kmsg};
use serde_json::Value;

use crate::common::{MIB, TIMEOUT, oom_kill, record_for, setup};

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
    // The idle one dies.
    idle.wait_sigkilled(TIMEOUT)?;
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
