//! The judge of the VM's `earlyoom` scenario (see `oomtrace-vm-guest`):
//! Debian's earlyoom sent the hog SIGTERM, then SIGKILL; oomtrace's
//! `sigkill` record must name it, with the pid earlyoom's own log names,
//! and the SIGTERM and grace earlyoom itself reports.

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::{check, check_eq};

/// Where the initramfs puts earlyoom (the record's `killer.program`).
const EARLYOOM: &str = "/usr/bin/earlyoom";
/// earlyoom prints its grace with one decimal and measures it around its
/// own polling (100 ms steps): the kernel's two timestamps may differ
/// from it by that much.
const GRACE_TOLERANCE_US: u64 = 250_000;

/// What earlyoom's log says it did.
#[derive(Debug, PartialEq)]
pub struct EarlyoomLog {
    /// `sending SIGTERM to process PID uid ...`.
    pub sigterm_to: Option<u32>,
    /// `sending SIGKILL to process PID uid ...` (a direct SIGKILL).
    pub sigkill_to: Option<u32>,
    /// `escalating to SIGKILL after X seconds`, in microseconds.
    pub escalated_after_us: Option<u64>,
}

impl EarlyoomLog {
    pub fn parse(log: &str) -> EarlyoomLog {
        let sent = |signal: &str| {
            let prefix = format!("sending {signal} to process ");
            log.lines().find_map(|l| {
                let rest = &l[l.find(&prefix)? + prefix.len()..];
                rest.split_whitespace().next()?.parse().ok()
            })
        };
        let escalated_after_us = log.lines().find_map(|l| {
            let rest = &l[l.find("escalating to SIGKILL after ")? + 28..];
            let seconds: f64 = rest.split_whitespace().next()?.parse().ok()?;
            Some((seconds * 1e6).round() as u64)
        });
        EarlyoomLog {
            sigterm_to: sent("SIGTERM"),
            sigkill_to: sent("SIGKILL"),
            escalated_after_us,
        }
    }
}

/// Judges the `earlyoom` evidence line; "earlyoom" when it passes.
pub fn judge(evidence: &Value) -> Result<String> {
    if let Some(error) = evidence["error"].as_str() {
        bail!("the guest reported: {error}");
    }
    check_eq(
        "tracer exit success",
        &evidence["tracer_exit"]["success"],
        true,
    )
    .with_context(|| format!("stderr: {}", evidence["tracer_exit"]["stderr"]))?;
    let hog = evidence["hog_pid"].as_u64().context("no hog pid")?;
    let earlyoom = evidence["earlyoom_pid"]
        .as_u64()
        .context("no earlyoom pid")?;
    let text = evidence["earlyoom_log"].as_str().unwrap_or("");
    let log = EarlyoomLog::parse(text);
    check_eq("the hog's end (signal)", &evidence["hog_signal"], 9)?;
    check_eq(
        "kernel OOM kills (/proc/vmstat oom_kill)",
        &evidence["vmstat_delta"],
        0,
    )
    .context("earlyoom must act before the kernel's OOM killer")?;
    let Some(term_pid) = log.sigterm_to else {
        bail!(
            "earlyoom's log names no SIGTERM (the scenario needs SIGTERM, then SIGKILL):\n{text}"
        );
    };
    check(
        "earlyoom's SIGTERM victim",
        u64::from(term_pid) == hog,
        hog,
        term_pid,
    )?;
    let escalated_us = log
        .escalated_after_us
        .with_context(|| format!("earlyoom's log shows no escalation to SIGKILL:\n{text}"))?;

    let records: Vec<&Value> = evidence["records"]
        .as_array()
        .map(|r| r.iter().collect())
        .unwrap_or_default();
    if records.iter().any(|r| r["type"] == "lost") {
        bail!("records were lost");
    }
    if let Some(kill) = records.iter().find(|r| r["type"] == "oom_kill") {
        bail!("an oom_kill record, though the kernel killed nothing: {kill}");
    }
    let sigkills: Vec<&&Value> = records
        .iter()
        .filter(|r| r["type"] == "sigkill" && r["target"]["tgid"] == hog)
        .collect();
    let [record] = sigkills.as_slice() else {
        bail!(
            "{} sigkill records for the hog {hog}: {sigkills:?}",
            sigkills.len()
        );
    };
    crate::schema::validate(record).map_err(|e| anyhow::anyhow!("{e}: {record}"))?;
    check_eq("target.pid", &record["target"]["pid"], term_pid)?;
    check_eq(
        "sender.tgid (earlyoom's pid)",
        &record["sender"]["tgid"],
        earlyoom,
    )?;
    let killer = &record["killer"];
    check_eq("killer.kind", &killer["kind"], "userspace_oom_killer")?;
    check_eq("killer.name", &killer["name"], "earlyoom")?;
    check_eq("killer.program", &killer["program"], EARLYOOM)?;
    check_eq("killer.basis", &killer["basis"], "sender_program")?;
    let sigterm = &record["sigterm"];
    check_eq("sigterm.sender.tgid", &sigterm["sender"]["tgid"], earlyoom)?;
    check_eq(
        "sigterm.sender.comm",
        &sigterm["sender"]["comm"],
        "earlyoom",
    )?;
    let grace = sigterm["grace_us"].as_u64().context("sigterm.grace_us")?;
    check(
        "sigterm.grace_us (vs earlyoom's `escalating to SIGKILL after`)",
        grace.abs_diff(escalated_us) <= GRACE_TOLERANCE_US,
        format_args!("{escalated_us} us ± {GRACE_TOLERANCE_US}"),
        grace,
    )?;
    Ok("earlyoom".to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// earlyoom 1.7's own lines (Debian 12), around a hog of pid 210.
    const LOG: &str = "earlyoom 1.7\n\
        mem total:  479 MiB, swap total:    0 MiB\n\
        sending SIGTERM when mem <= 30.00% and swap <= 100.00%,\n        \
        SIGKILL when mem <= 15.00% and swap <= 100.00%\n\
        low memory! at or below SIGTERM limits: mem 29.87%, swap  0.00%\n\
        sending SIGTERM to process 210 uid 0 \"oomtrace-test-h\": badness 866, VmRSS 300 MiB\n\
        escalating to SIGKILL after 1.3 seconds\n\
        process exited after 1.4 seconds\n";

    #[test]
    fn earlyoom_lines_give_its_victim_and_grace() {
        assert_eq!(
            EarlyoomLog::parse(LOG),
            EarlyoomLog {
                sigterm_to: Some(210),
                sigkill_to: None,
                escalated_after_us: Some(1_300_000),
            }
        );
    }

    fn evidence() -> Value {
        json!({
            "scenario": "earlyoom", "capture": "auto", "hog_pid": 210, "earlyoom_pid": 200,
            "hog_signal": 9, "vmstat_delta": 0, "earlyoom_log": LOG,
            "tracer_exit": {"success": true},
            "records": [{
                "type": "sigkill", "schema": 1, "time": "2026-12-01T14:31:35.538146Z",
                "boot_ns": 2_000_000_000u64, "host": "oomtrace-vm",
                "target": {"pid": 210, "tgid": 210, "comm": "oomtrace-test-h", "memcg": null},
                "sender": {"pid": 200, "tgid": 200, "comm": "earlyoom", "memcg": null},
                "code": "SI_USER", "sent_by": "process", "sender_role": null, "group": true,
                "killer": {"kind": "userspace_oom_killer", "name": "earlyoom",
                    "program": "/usr/bin/earlyoom", "basis": "sender_program"},
                "sigterm": {"boot_ns": 700_000_000u64, "grace_us": 1_300_000,
                    "sender": {"pid": 200, "tgid": 200, "comm": "earlyoom"}}
            }]
        })
    }

    #[test]
    fn a_run_naming_earlyoom_with_its_grace_passes() -> Result<()> {
        assert_eq!(judge(&evidence())?, "earlyoom");
        Ok(())
    }

    #[test]
    fn a_wrong_kind_pid_or_grace_fails() {
        let mut kind = evidence();
        kind["records"][0]["killer"]["kind"] = "unknown".into();
        assert!(judge(&kind).is_err());
        let mut victim = evidence();
        victim["hog_pid"] = 211.into();
        assert!(judge(&victim).is_err());
        let mut grace = evidence();
        grace["records"][0]["sigterm"]["grace_us"] = 2_000_000.into();
        let error = judge(&grace).map_err(|e| format!("{e:#}"));
        assert!(error.is_err_and(|e| e.contains("grace_us")));
        let mut kernel = evidence();
        kernel["vmstat_delta"] = 1.into();
        assert!(judge(&kernel).is_err());
    }
}
