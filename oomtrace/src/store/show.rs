//! `oomtrace show`: one stored kill in full, like `coredumpctl info`: the
//! kill as the text view tells it, every member of its incident, its exit,
//! the candidates, the reclaim history, the memory trend as a chart, and
//! the verdict with its evidence.

use std::{
    io::{self, BufRead, Write},
    path::Path,
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::{
    Store,
    columns::Columns,
    list::{Source, parse_when},
};
use crate::{
    enrich::history::duration,
    output::text::{self, bytes},
    report::{KillReport, OutcomeReport, TrendReport},
};

/// Show one stored OOM kill in full (default: the latest).
#[derive(Debug, Clone, clap::Args)]
pub struct ShowArgs {
    /// The kill: a victim pid, or a name (the victim's comm, its pod or
    /// container name, a container id prefix). The latest that matches.
    #[arg(value_name = "PID|NAME")]
    pub which: Option<String>,

    #[command(flatten)]
    pub source: Source,

    /// Only kills at or after this time (`2h`, `2026-12-01 03:12`).
    #[arg(short = 'S', long, value_name = "TIME", value_parser = parse_when)]
    pub since: Option<i64>,

    /// The kill and what belongs to it as JSON lines.
    #[arg(long)]
    pub json: bool,
}

/// How far around a kill its exit and incident members are looked for.
const RELATED_NS: i64 = 120_000_000_000;

pub fn run(args: &ShowArgs) -> anyhow::Result<std::process::ExitCode> {
    let records = match args.source.from.as_deref() {
        Some(path) if path == Path::new("-") => from_lines(io::stdin().lock())?,
        Some(path) => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            from_lines(io::BufReader::new(file))?
        }
        None => from_store(&args.source.store, args.since.unwrap_or(0))?,
    };
    let since = args.since.unwrap_or(i64::MIN);
    let Some(kill) = records
        .iter()
        .filter(|(c, _)| c.kind == "oom_kill" && c.time_ns >= since)
        .filter(|(c, _)| args.which.as_deref().is_none_or(|w| matches(c, w)))
        .max_by_key(|(c, _)| c.time_ns)
    else {
        bail!(
            "no stored OOM kill{}: `oomtrace list --since 30d` shows what is kept",
            args.which
                .as_deref()
                .map_or(String::new(), |w| format!(" matches `{w}`"))
        );
    };
    let related = related(&records, kill);
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let written = if args.json {
        std::iter::once(&kill.1)
            .chain(related.iter().map(|(_, v)| *v))
            .try_for_each(|v| writeln!(out, "{v}"))
    } else {
        render(&mut out, &kill.1, &related)
    };
    match written.and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        other => other.context("cannot write")?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}

type Record = (Columns, Value);

fn from_lines(input: impl BufRead) -> anyhow::Result<Vec<Record>> {
    let mut records = Vec::new();
    for line in input.lines() {
        let line = line.context("cannot read the records")?;
        if let Ok((value, columns)) = Columns::from_line(&line) {
            records.push((columns, value));
        }
    }
    Ok(records)
}

fn from_store(path: &Path, since_ns: i64) -> anyhow::Result<Vec<Record>> {
    let store = Store::open_read_only(path).map_err(|e| super::list::unreadable(path, e))?;
    let context = || format!("cannot read {}", path.display());
    let mut records = Vec::new();
    for kind in ["oom_kill", "oom_outcome"] {
        let rows = store
            .select(kind, since_ns, i64::MAX)
            .with_context(context)?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        for (row, json) in rows
            .into_iter()
            .zip(store.json(&ids).with_context(context)?)
        {
            if let Ok(value) = serde_json::from_str(&json) {
                records.push((row.columns, value));
            }
        }
    }
    Ok(records)
}

/// A pid, or a name the SRE holds: comm, pod or container name, an id.
fn matches(c: &Columns, which: &str) -> bool {
    if let Ok(pid) = which.parse::<i64>() {
        return c.pid == Some(pid);
    }
    let is = |have: &Option<String>| have.as_deref() == Some(which);
    is(&c.comm)
        || is(&c.pod_name)
        || is(&c.container_name)
        || c.container_id
            .as_deref()
            .is_some_and(|id| id.starts_with(which))
        || c.pod_uid
            .as_deref()
            .is_some_and(|uid| uid.starts_with(which))
}

/// The kill's exit and the other records of its incident, in time order.
fn related<'a>(records: &'a [Record], (kill_c, kill): &Record) -> Vec<(&'a Columns, &'a Value)> {
    let incident = kill.pointer("/incident/id").and_then(Value::as_u64);
    let boot_ns = kill.get("boot_ns").and_then(Value::as_u64);
    let pid = kill.pointer("/victim/pid").and_then(Value::as_u64);
    let near =
        |c: &Columns| (c.time_ns - kill_c.time_ns).abs() <= RELATED_NS && c.host == kill_c.host;
    let mut found: Vec<(&Columns, &Value)> = records
        .iter()
        .filter(|(c, v)| {
            near(c)
                && match c.kind.as_str() {
                    "oom_outcome" => {
                        v.get("kill_boot_ns").and_then(Value::as_u64) == boot_ns
                            && v.pointer("/victim/pid").and_then(Value::as_u64) == pid
                    }
                    "oom_kill" => {
                        incident.is_some()
                            && v.pointer("/incident/id").and_then(Value::as_u64) == incident
                            && v.get("boot_ns").and_then(Value::as_u64) != boot_ns
                    }
                    _ => false,
                }
        })
        .map(|(c, v)| (c, v))
        .collect();
    found.sort_by_key(|(c, _)| c.time_ns);
    found
}

fn render(out: &mut dyn Write, kill: &Value, related: &[(&Columns, &Value)]) -> io::Result<()> {
    let Ok(report) = serde_json::from_value::<KillReport>(kill.clone()) else {
        // A record of a newer or older oomtrace than this one reads: all
        // of it, as it was written.
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(kill).unwrap_or_default()
        )?;
        return Ok(());
    };
    text::kill(out, &report)?;
    for (c, v) in related {
        match c.kind.as_str() {
            "oom_outcome" => {
                if let Ok(exit) = serde_json::from_value::<OutcomeReport>((*v).clone()) {
                    text::outcome(out, &exit)?;
                }
            }
            _ => {
                let pid = v.pointer("/victim/pid").and_then(Value::as_u64);
                let comm = v.pointer("/victim/comm").and_then(Value::as_str);
                let seq = v.pointer("/incident/seq").and_then(Value::as_u64);
                writeln!(
                    out,
                    "  member   pid {} ({}) killed in the same OOM, #{} of its incident",
                    pid.map_or("?".into(), |p| p.to_string()),
                    comm.unwrap_or("?"),
                    seq.map_or("?".into(), |s| s.to_string())
                )?;
            }
        }
    }
    if let Some(c) = &report.candidates {
        writeln!(
            out,
            "  candidates ({} other processes in the OOM domain then)",
            c.processes
        )?;
        for t in &c.top {
            writeln!(
                out,
                "    pid {:>7} {:<16} rss {:>10} adj {:>5} badness {}",
                t.pid,
                t.comm,
                bytes(t.rss_bytes),
                t.oom_score_adj,
                t.badness.map_or("unkillable".into(), |b| b.to_string())
            )?;
        }
    }
    if let Some(r) = report.oom_memcg.as_ref().and_then(|m| m.reclaim.as_ref()) {
        writeln!(
            out,
            "  reclaim  last 10 s: {} stalls, {:.0} ms, {} reclaimed; since watched: {} stalls, {:.0} ms (longest {:.0} ms)",
            r.last_10s.stalls,
            r.last_10s.stall_ns as f64 / 1e6,
            bytes(r.last_10s.reclaimed_bytes),
            r.total.stalls,
            r.total.stall_ns as f64 / 1e6,
            r.total.max_stall_ns as f64 / 1e6
        )?;
    }
    if let Some(trend) = &report.trend {
        chart(out, trend, &report.envelope.time)?;
    }
    if let Some(h) = &report.history {
        let reading = h.hint.map_or("not enough evidence".to_string(), |h| {
            h.name().replace('_', " ")
        });
        writeln!(
            out,
            "  verdict  {reading}: {}",
            h.evidence.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}

const ROWS: usize = 4;
const LEVELS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The usage before the kill, ROWS rows high, the limit at the top row's
/// top, the kill marked after the last sample.
fn chart(out: &mut dyn Write, t: &TrendReport, killed_at: &str) -> io::Result<()> {
    let span_ms = match (t.points.first(), t.points.last()) {
        (Some(a), Some(b)) => u64::try_from(b.0 - a.0).unwrap_or(0),
        _ => return Ok(()),
    };
    writeln!(
        out,
        "  trend    usage of {} over {} ({} samples; top = limit {}; {} from {} to {})",
        t.memcg_path,
        duration(span_ms.saturating_mul(1_000_000)),
        t.samples,
        bytes(t.limit_bytes),
        t.basis.name(),
        bytes(t.basis_start_bytes),
        bytes(t.basis_last_bytes)
    )?;
    for line in chart_rows(&t.points, t.limit_bytes) {
        writeln!(out, "           |{line}")?;
    }
    // `2026-12-01T03:12:05.123456Z` -> `03:12:05`
    let clock = |time: &str| time.get(11..19).unwrap_or("?").to_string();
    writeln!(
        out,
        "           from {} to the kill (✕) at {}",
        clock(&t.from),
        clock(killed_at)
    )
}

/// Rows top first: each column a point's usage in eighths of a row.
fn chart_rows(points: &[(i64, u64)], limit: u64) -> Vec<String> {
    let limit = limit.max(1) as u128;
    let eighths: Vec<usize> = points
        .iter()
        .map(|(_, usage)| {
            let e = (u128::from(*usage).min(limit) * (ROWS as u128 * 8) + limit / 2) / limit;
            usize::try_from(e).unwrap_or(0)
        })
        .collect();
    (0..ROWS)
        .rev()
        .map(|row| {
            let mut line: String = eighths
                .iter()
                .map(|e| LEVELS[e.saturating_sub(row * 8).min(8)])
                .collect();
            line.push(if row == ROWS - 1 { '✕' } else { ' ' });
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_fills_up_to_the_limit_and_marks_the_kill() {
        let rows = chart_rows(&[(0, 0), (1, 16), (2, 32), (3, 64)], 64);
        assert_eq!(rows.len(), ROWS);
        assert_eq!(rows[0], "   █✕", "only the last point reaches the top row");
        assert_eq!(rows[3], " ███ ", "{rows:?}");
        assert_eq!(rows[2], "  ██ ");
        // Above the limit is drawn at the limit, never past the top.
        assert_eq!(chart_rows(&[(0, 999)], 64)[0], "█✕");
    }

    #[test]
    fn a_kill_is_found_by_pid_or_by_a_name_the_sre_holds() {
        let c = Columns {
            pid: Some(4242),
            comm: Some("java".into()),
            container_name: Some("shop-api".into()),
            container_id: Some("9e1b6f3a0c4d".into()),
            ..Columns::default()
        };
        for which in ["4242", "java", "shop-api", "9e1b6f"] {
            assert!(matches(&c, which), "{which}");
        }
        for which in ["4243", "jav", "b6f3"] {
            assert!(!matches(&c, which), "{which}");
        }
    }
}
