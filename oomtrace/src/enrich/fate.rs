//! What the kill did to the victim's unit (container, service, pid
//! namespace): its main process died, only a child did, or the whole
//! memory.oom.group went. Decided from what the kernel side read at the
//! kill (the victim's pid in its own namespace and that namespace's init,
//! memory.oom.group), and for a systemd service on the host from systemd's
//! MainPID. Never guessed.

use std::{
    io::Read as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::report::{
    FateBasis, FateKilled, FateReport, FateUnit, K8sLevel, MemcgReport, ServiceKind,
};

/// What [`decide`] weighs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    /// The victim process (host pid).
    pub victim_tgid: Option<u32>,
    pub ns_pid: Option<u32>,
    pub pid_ns_level: Option<u32>,
    /// The kernel kills the victim's whole memory.oom.group (`Some(false)`:
    /// it does not; `None`: not read).
    pub group_kill: Option<bool>,
    pub unit: Option<FateUnit>,
    /// Host pid of the victim's pid namespace's pid 1, when found.
    pub namespace_init: Option<u32>,
    /// systemd's MainPID of the victim's service (host only).
    pub systemd_main_pid: Option<u32>,
}

/// The unit a victim's memory cgroup names: a container (Kubernetes,
/// Docker, podman) or a systemd service.
pub fn unit_of(memcg: Option<&MemcgReport>) -> Option<FateUnit> {
    let memcg = memcg?;
    if memcg
        .k8s
        .as_ref()
        .is_some_and(|k| k.level == K8sLevel::Container)
    {
        return Some(FateUnit::Container);
    }
    match memcg.service.as_ref()?.kind {
        ServiceKind::DockerContainer
        | ServiceKind::PodmanContainer
        | ServiceKind::ContainerdContainer => Some(FateUnit::Container),
        ServiceKind::SystemdService => Some(FateUnit::Service),
        // conmon's cgroup holds the monitor, not the container it watches.
        ServiceKind::SystemdScope | ServiceKind::PodmanConmon => None,
    }
}

/// The victim's fate from `facts`, most certain answer first: a group kill
/// (the kernel says so), then the victim's place in its pid namespace,
/// then systemd's MainPID on the host.
pub fn decide(facts: Facts) -> FateReport {
    let in_namespace = facts.pid_ns_level.is_some_and(|level| level > 0);
    let namespace_unit = || facts.unit.or(Some(FateUnit::PidNamespace));
    let main_in_namespace = || match facts.ns_pid {
        Some(1) => facts.victim_tgid,
        _ => facts.namespace_init,
    };
    if facts.group_kill == Some(true) {
        let (unit, main_pid) = if in_namespace {
            (namespace_unit(), main_in_namespace())
        } else {
            (facts.unit, facts.systemd_main_pid)
        };
        return FateReport {
            killed: FateKilled::WholeGroup,
            unit,
            main_pid,
            basis: Some(FateBasis::MemoryOomGroup),
            unit_exits: Some(true),
        };
    }
    if in_namespace && let Some(ns_pid) = facts.ns_pid {
        let main = ns_pid == 1;
        return FateReport {
            killed: if main {
                FateKilled::MainProcess
            } else {
                FateKilled::ChildProcess
            },
            unit: namespace_unit(),
            main_pid: main_in_namespace(),
            basis: Some(FateBasis::PidNamespace),
            unit_exits: Some(main),
        };
    }
    if facts.pid_ns_level == Some(0)
        && facts.unit == Some(FateUnit::Service)
        && let (Some(main_pid), Some(victim)) = (facts.systemd_main_pid, facts.victim_tgid)
    {
        let main = main_pid == victim;
        return FateReport {
            killed: if main {
                FateKilled::MainProcess
            } else {
                FateKilled::ChildProcess
            },
            unit: Some(FateUnit::Service),
            main_pid: Some(main_pid),
            basis: Some(FateBasis::SystemdMainPid),
            unit_exits: Some(main),
        };
    }
    unknown(
        facts
            .unit
            .or(in_namespace.then_some(FateUnit::PidNamespace)),
    )
}

fn unknown(unit: Option<FateUnit>) -> FateReport {
    FateReport {
        killed: FateKilled::Unknown,
        unit,
        main_pid: None,
        basis: None,
        unit_exits: None,
    }
}

/// A kill found, after the fact, to be one of several the kernel made in
/// one OOM (its memory.oom.group): the whole group went. The pid
/// namespace's main pid, if known, stays.
pub fn group_killed(fate: &mut FateReport) {
    if fate.killed == FateKilled::WholeGroup {
        return;
    }
    let main_pid = match fate.basis {
        Some(FateBasis::PidNamespace) | Some(FateBasis::SystemdMainPid) => fate.main_pid,
        _ => None,
    };
    *fate = FateReport {
        killed: FateKilled::WholeGroup,
        unit: fate.unit,
        main_pid,
        basis: Some(FateBasis::MemoryOomGroup),
        unit_exits: Some(true),
    };
}

/// How long `systemctl show` may take before MainPID counts as unknown.
pub const SYSTEMCTL_TIMEOUT: Duration = Duration::from_millis(300);

/// systemd's MainPID of `unit` (`systemctl show -p MainPID --value`),
/// within [`SYSTEMCTL_TIMEOUT`]; `None` without systemd, for a unit
/// without a main process (0), or when it took too long.
pub fn systemd_main_pid(unit: &str) -> Option<u32> {
    let mut command = Command::new("systemctl");
    command.args(["show", "-p", "MainPID", "--value", "--", unit]);
    let out = output_within(&mut command, SYSTEMCTL_TIMEOUT)?;
    out.trim().parse::<u32>().ok().filter(|pid| *pid != 0)
}

/// What `command` prints on stdout if it exits successfully within
/// `timeout`; else it is killed and the answer is `None`. The line waits
/// for it: its stdout is read as it comes, so the answer is there the
/// moment the command ends, not at the next tick of a polling loop.
fn output_within(command: &mut Command, timeout: Duration) -> Option<String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + timeout;
    let mut stdout = child.stdout.take()?;
    let mut out = Vec::new();
    let read = read_until_eof(&mut stdout, &mut out, deadline);
    let status = match read {
        // EOF: the command closed its stdout, almost always by exiting.
        Some(()) => wait_until(&mut child, deadline),
        None => None,
    };
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    }
    status
        .filter(|s| s.success())
        .and_then(|_| String::from_utf8(out).ok())
}

/// Reads `pipe` into `out` until EOF (`Some`), or `None` at `deadline`
/// or on an error.
fn read_until_eof(
    pipe: &mut std::process::ChildStdout,
    out: &mut Vec<u8>,
    deadline: Instant,
) -> Option<()> {
    use std::os::fd::AsRawFd as _;
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        if crate::poll::wait(
            &mut [crate::poll::readable(pipe.as_raw_fd())],
            Some(deadline),
        )
        .ok()?
            == 0
        {
            continue;
        }
        match pipe.read(&mut buf) {
            Ok(0) => return Some(()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    None
}

/// The child's exit status once it has exited, waiting at most until
/// `deadline` (its stdout is closed already: this is its last moments).
fn wait_until(
    child: &mut std::process::Child,
    deadline: Instant,
) -> Option<std::process::ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_micros(200)),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            victim_tgid: Some(4242),
            ..Facts::default()
        }
    }

    #[test]
    fn pid_1_of_a_container_is_its_main_process_and_the_container_exits() {
        let fate = decide(Facts {
            ns_pid: Some(1),
            pid_ns_level: Some(1),
            group_kill: Some(false),
            unit: Some(FateUnit::Container),
            ..facts()
        });
        assert_eq!(
            fate,
            FateReport {
                killed: FateKilled::MainProcess,
                unit: Some(FateUnit::Container),
                main_pid: Some(4242),
                basis: Some(FateBasis::PidNamespace),
                unit_exits: Some(true),
            }
        );
    }

    #[test]
    fn a_child_in_a_namespace_leaves_its_unit_running() {
        let fate = decide(Facts {
            ns_pid: Some(7),
            pid_ns_level: Some(1),
            namespace_init: Some(4000),
            ..facts()
        });
        assert_eq!(
            (
                fate.killed,
                fate.unit,
                fate.main_pid,
                fate.basis,
                fate.unit_exits
            ),
            (
                FateKilled::ChildProcess,
                Some(FateUnit::PidNamespace),
                Some(4000),
                Some(FateBasis::PidNamespace),
                Some(false)
            )
        );
        let unfound = decide(Facts {
            namespace_init: None,
            ns_pid: Some(7),
            pid_ns_level: Some(1),
            ..facts()
        });
        assert_eq!(unfound.main_pid, None, "not found is null, not a guess");
    }

    #[test]
    fn a_group_kill_wins_over_the_namespace_answer() {
        let fate = decide(Facts {
            ns_pid: Some(7),
            pid_ns_level: Some(1),
            group_kill: Some(true),
            unit: Some(FateUnit::Container),
            namespace_init: Some(4000),
            ..facts()
        });
        assert_eq!(
            (fate.killed, fate.main_pid, fate.basis, fate.unit_exits),
            (
                FateKilled::WholeGroup,
                Some(4000),
                Some(FateBasis::MemoryOomGroup),
                Some(true)
            )
        );
        let host = decide(Facts {
            pid_ns_level: Some(0),
            ns_pid: Some(4242),
            group_kill: Some(true),
            ..facts()
        });
        assert_eq!(
            (host.killed, host.unit, host.main_pid),
            (FateKilled::WholeGroup, None, None)
        );
    }

    #[test]
    fn on_the_host_a_service_asks_systemd_and_else_nothing_is_known() {
        let service = |main| {
            decide(Facts {
                ns_pid: Some(4242),
                pid_ns_level: Some(0),
                group_kill: Some(false),
                unit: Some(FateUnit::Service),
                systemd_main_pid: main,
                ..facts()
            })
        };
        let main = service(Some(4242));
        assert_eq!(
            (main.killed, main.basis, main.unit_exits),
            (
                FateKilled::MainProcess,
                Some(FateBasis::SystemdMainPid),
                Some(true)
            )
        );
        let child = service(Some(17));
        assert_eq!(
            (child.killed, child.main_pid, child.unit_exits),
            (FateKilled::ChildProcess, Some(17), Some(false))
        );
        assert_eq!(service(None), unknown(Some(FateUnit::Service)));
        // A host process outside any unit, or a record without the fields
        // (the tracepoint path): unknown.
        let bare = decide(Facts {
            ns_pid: Some(4242),
            pid_ns_level: Some(0),
            ..facts()
        });
        assert_eq!(bare, unknown(None));
        assert_eq!(decide(facts()), unknown(None));
    }

    #[test]
    fn a_sequence_of_kills_makes_a_group_kill_after_the_fact() {
        let mut fate = decide(Facts {
            ns_pid: Some(1),
            pid_ns_level: Some(1),
            ..facts()
        });
        group_killed(&mut fate);
        assert_eq!(
            (fate.killed, fate.main_pid, fate.basis, fate.unit_exits),
            (
                FateKilled::WholeGroup,
                Some(4242),
                Some(FateBasis::MemoryOomGroup),
                Some(true)
            )
        );
        let mut unknown = decide(facts());
        group_killed(&mut unknown);
        assert_eq!(
            (unknown.killed, unknown.main_pid),
            (FateKilled::WholeGroup, None)
        );
    }

    #[test]
    fn a_commands_output_is_taken_when_it_exits_within_the_time() {
        let out = output_within(
            Command::new("sh").args(["-c", "echo 4242"]),
            Duration::from_secs(5),
        );
        assert_eq!(out.as_deref(), Some("4242\n"));
        // A failing command answers nothing, whatever it printed.
        let failed = output_within(
            Command::new("sh").args(["-c", "echo 1; exit 3"]),
            Duration::from_secs(5),
        );
        assert_eq!(failed, None);
    }

    #[test]
    fn a_command_that_takes_too_long_is_killed_and_answers_nothing() {
        let started = Instant::now();
        let out = output_within(
            Command::new("sh").args(["-c", "echo early; exec sleep 30"]),
            Duration::from_millis(100),
        );
        assert_eq!(out, None);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the 30 s command was killed, not waited for"
        );
    }
}
