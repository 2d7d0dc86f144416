//! A private ftrace instance: the kernel's own record of events, as ground
//! truth that oomtrace's BPF programs did not produce.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context as _, Result, bail};

pub struct TraceInstance {
    dir: PathBuf,
}

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// Where tracefs is, mounted first when it is not (a fresh machine boots
/// without it; bpftrace needs it, and ftrace instances live in it).
pub fn ensure_mounted() -> Result<PathBuf> {
    for dir in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        if Path::new(dir).join("instances").is_dir() {
            return Ok(dir.into());
        }
    }
    let status = Command::new("mount")
        .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
        .status()
        .context("mount tracefs")?;
    if !status.success() {
        bail!("tracefs is not mounted and mounting it failed");
    }
    Ok("/sys/kernel/tracing".into())
}

impl TraceInstance {
    /// A new instance (`instances/oomtrace-test-*`) recording `events`
    /// (`system/event`) of thread `pid` only, on the boot clock.
    pub fn new(events: &[&str], pid: u32) -> Result<TraceInstance> {
        let filter = format!("common_pid == {pid}");
        let filtered: Vec<(&str, &str)> = events.iter().map(|e| (*e, filter.as_str())).collect();
        Self::with_filters(&filtered)
    }

    /// A new instance recording each `(event, filter)`, on the boot clock.
    pub fn with_filters(events: &[(&str, &str)]) -> Result<TraceInstance> {
        let name = format!(
            "oomtrace-test-{}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let dir = ensure_mounted()?.join("instances").join(name);
        fs::create_dir(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let instance = TraceInstance { dir };
        fs::write(instance.dir.join("trace_clock"), "boot").context("trace_clock")?;
        for (event, filter) in events {
            let event_dir = instance.dir.join("events").join(event);
            fs::write(event_dir.join("filter"), filter)
                .with_context(|| format!("filter {event}"))?;
            fs::write(event_dir.join("enable"), "1").with_context(|| format!("enable {event}"))?;
        }
        Ok(instance)
    }

    /// The trace so far: (timestamp in ns, event name, fields text).
    pub fn events(&self) -> Result<Vec<(u64, String, String)>> {
        let text = fs::read_to_string(self.dir.join("trace")).context("read trace")?;
        Ok(text.lines().filter_map(parse_line).collect())
    }
}

/// `  comm-1234  [001] ..... 227.265217: mark_victim: pid=1234 ...`
fn parse_line(line: &str) -> Option<(u64, String, String)> {
    if line.starts_with('#') {
        return None;
    }
    let (head, rest) = line.split_once(": ")?;
    let timestamp = head.rsplit(' ').next()?;
    let (seconds, micros) = timestamp.split_once('.')?;
    let ns =
        seconds.trim().parse::<u64>().ok()? * 1_000_000_000 + micros.parse::<u64>().ok()? * 1_000;
    let (event, fields) = rest.split_once(": ").unwrap_or((rest, ""));
    Some((ns, event.trim().to_string(), fields.to_string()))
}

impl Drop for TraceInstance {
    fn drop(&mut self) {
        // Removing the instance disables its events and frees its buffer.
        if let Err(e) = fs::remove_dir(&self.dir) {
            eprintln!("warning: cannot remove {}: {e}", self.dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_ftrace_lines() {
        let line = "   oomtrace-test-h-25735   [001] ..... 3524.102030: mm_vmscan_memcg_reclaim_end: nr_reclaimed=32";
        assert_eq!(
            super::parse_line(line),
            Some((
                3_524_102_030_000,
                "mm_vmscan_memcg_reclaim_end".into(),
                "nr_reclaimed=32".into()
            ))
        );
        assert_eq!(super::parse_line("# tracer: nop"), None);
    }
}
