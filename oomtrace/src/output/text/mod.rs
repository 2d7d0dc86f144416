//! The terminal view: what an on-call engineer reads first.

mod kill;

use std::io::{self, Write};

pub use self::kill::kill;
use crate::report::{
    KillerKind, KillerReport, LostReport, LostStage, MemcgReport, OutcomeReport, PressureReport,
    SentBy, SigkillReport, SigtermReport,
};

pub fn sigkill(out: &mut dyn Write, r: &SigkillReport) -> io::Result<()> {
    let t = &r.target;
    let s = &r.sender;
    let by = match (r.sent_by, r.sender_role) {
        (SentBy::Kernel, _) => "the kernel".to_string(),
        (SentBy::Process, Some(role)) => format!("{} (kill from a process)", role.name()),
        _ => "a process".to_string(),
    };
    writeln!(
        out,
        "{}  SIGKILL (not the OOM killer) to {} {}\n  sender   {} {} via {}, sent by {by}",
        r.envelope.time,
        task(t.pid, t.comm.as_deref()),
        memcg_suffix(t.memcg.as_ref()),
        task(s.pid, s.comm.as_deref()),
        memcg_suffix(s.memcg.as_ref()),
        r.code,
    )?;
    if let Some(killer) = &r.killer {
        writeln!(
            out,
            "  killer   {}",
            killer_line(killer, r.sigterm.as_ref())
        )?;
    }
    writeln!(out)
}

/// "killed by earlyoom (userspace OOM killer) 1.2 s after its SIGTERM".
fn killer_line(k: &KillerReport, sigterm: Option<&SigtermReport>) -> String {
    let what = match k.kind {
        KillerKind::UserspaceOomKiller => "userspace OOM killer",
        KillerKind::RuntimeStop => "a stop by a container runtime or supervisor",
        KillerKind::SystemdStop => "systemd stopping a unit",
        KillerKind::PlainKill => "a plain kill -9",
        KillerKind::Kernel => "the kernel, not as the OOM killer",
        KillerKind::Unknown => "sender of unknown kind",
    };
    let who = match (&k.name, &k.program) {
        (Some(name), _) => format!("{name} ({what})"),
        (None, Some(program)) => format!("{program} ({what})"),
        (None, None) => what.to_string(),
    };
    match sigterm {
        Some(t) => format!(
            "killed by {who} {:.1} s after its SIGTERM (from {})",
            t.grace_us as f64 / 1e6,
            task(Some(t.sender.tgid), t.sender.comm.as_deref()),
        ),
        None => format!("killed by {who}, no SIGTERM first"),
    }
}

pub fn outcome(out: &mut dyn Write, r: &OutcomeReport) -> io::Result<()> {
    let signal = r.exit_signal.map_or("?".to_string(), |s| s.to_string());
    let reaper = match r.reaped_after_us {
        Some(us) => format!(
            "the OOM reaper freed its memory {:.1} ms after the kill",
            us as f64 / 1e3
        ),
        None => format!("OOM reaper: {}", r.reaper.name().replace('_', " ")),
    };
    writeln!(
        out,
        "{}  EXIT pid {}: signal {signal}, {:.1} ms after the kill; {reaper}\n",
        r.envelope.time,
        r.victim.pid,
        r.exited_after_us as f64 / 1e3,
    )
}

pub fn pressure(out: &mut dyn Write, r: &PressureReport) -> io::Result<()> {
    writeln!(
        out,
        "{}  PRESSURE {}: {} reclaim stalls, {:.0} ms stalled in the last second (threshold {:.0} ms), {} reclaimed\n",
        r.envelope.time,
        memcg_suffix(Some(&r.memcg)),
        r.stalls,
        r.stall_ns as f64 / 1e6,
        r.threshold_ns as f64 / 1e6,
        bytes(r.reclaimed_bytes),
    )
}

pub fn lost(out: &mut dyn Write, r: &LostReport) -> io::Result<()> {
    let why = match r.stage {
        LostStage::RingBuffer => "the ring buffer was full (see --ring-buffer-size)",
        LostStage::Output => "the output stopped taking them (a reader that does not read)",
        LostStage::Store => {
            "written here but not kept in the --store database (see the warning on stderr)"
        }
    };
    writeln!(
        out,
        "{}  LOST {} record(s): {why}\n",
        r.envelope.time, r.count
    )
}

fn task(pid: Option<u32>, comm: Option<&str>) -> String {
    format!("pid {} ({})", opt(pid), comm.unwrap_or("?"))
}

fn memcg_suffix(memcg: Option<&MemcgReport>) -> String {
    match memcg {
        Some(MemcgReport {
            path: Some(path), ..
        }) => format!("in memcg {path}"),
        Some(MemcgReport { id, path: None, .. }) => format!("in memcg id {id} (path gone)"),
        None => "in memcg ?".to_string(),
    }
}

fn opt<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or("?".to_string(), |v| v.to_string())
}

/// Binary units with one decimal, exact bytes below 1 KiB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }

    fn sigkill_text(killer: serde_json::Value, sigterm: serde_json::Value) -> String {
        let mut r: serde_json::Value = serde_json::from_str(
            include_str!("../../../tests/fixtures/records-schema1.jsonl")
                .lines()
                .find(|l| l.contains("\"type\":\"sigkill\""))
                .expect("a sigkill line"),
        )
        .expect("json");
        r["killer"] = killer;
        r["sigterm"] = sigterm;
        let r: SigkillReport = serde_json::from_value(r).expect("a sigkill report");
        let mut out = Vec::new();
        sigkill(&mut out, &r).expect("written");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn the_killer_line_names_it_and_the_grace_after_its_sigterm() {
        let text = sigkill_text(
            serde_json::json!({"kind": "userspace_oom_killer", "name": "earlyoom",
                "program": "/usr/bin/earlyoom", "basis": "sender_program"}),
            serde_json::json!({"boot_ns": 1, "grace_us": 1_234_000,
                "sender": {"pid": 7, "tgid": 7, "comm": "earlyoom"}}),
        );
        assert!(
            text.contains(
                "\n  killer   killed by earlyoom (userspace OOM killer) 1.2 s after its SIGTERM (from pid 7 (earlyoom))\n"
            ),
            "{text}"
        );
        let plain = sigkill_text(
            serde_json::json!({"kind": "plain_kill", "name": "sh", "program": null,
                "basis": "sender_program"}),
            serde_json::Value::Null,
        );
        assert!(
            plain.contains("killed by sh (a plain kill -9), no SIGTERM first"),
            "{plain}"
        );
        // Records of older versions have no killer: no line.
        let old = sigkill_text(serde_json::Value::Null, serde_json::Value::Null);
        assert!(!old.contains("\n  killer "), "{old}");
    }
}
