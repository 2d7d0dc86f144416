//! `oomtrace list`: one line per stored kill, like `coredumpctl list`.
//!
//! Reads the database (no BPF, no privileges beyond reading the file) or
//! JSON lines (`--from`), with the same filters on both.

use std::{
    io::{self, BufRead, Write},
    path::{Path, PathBuf},
    time::{Duration, UNIX_EPOCH},
};

use anyhow::Context as _;
use serde_json::Value;

use super::{
    DEFAULT_PATH, Store, StoreError,
    columns::{Columns, parse_time_ns},
};
use crate::{enrich::clock, filter, output::text::bytes};

/// List the OOM kills oomtrace stored (default: the last day), one line
/// each: time, pid, name, workload, the limit hit and whose it was, RSS,
/// and the hint about why.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub source: Source,

    /// Kills at or after this time: a duration ago (`2h`, `3d`) or a UTC
    /// time (`2026-12-01 03:12`, RFC 3339). Default: 1d.
    #[arg(short = 'S', long, value_name = "TIME", value_parser = parse_when)]
    pub since: Option<i64>,

    /// Kills before this time (same forms as --since).
    #[arg(short = 'U', long, value_name = "TIME", value_parser = parse_when)]
    pub until: Option<i64>,

    /// Only kills of this pid.
    #[arg(long, value_name = "PID")]
    pub pid: Option<i64>,

    /// Only kills of tasks with this name.
    #[arg(long, value_name = "NAME")]
    pub comm: Option<String>,

    /// Only kills in this pod: its UID (or a prefix of it) or its name.
    #[arg(long, value_name = "UID|NAME")]
    pub pod: Option<String>,

    /// Only kills in this container: a prefix of its id, or its name.
    #[arg(long, value_name = "ID|NAME")]
    pub container: Option<String>,

    /// Only kills whose victim's cgroup, or the cgroup whose limit was
    /// hit, is in this subtree.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,

    /// Only kills with this constraint: memcg, global, cpuset, mempolicy.
    #[arg(long, value_name = "KIND")]
    pub constraint: Option<String>,

    /// Show at most the N latest.
    #[arg(short = 'n', value_name = "N")]
    pub count: Option<usize>,

    /// Newest first.
    #[arg(short, long)]
    pub reverse: bool,

    /// The stored records as JSON lines, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Where `list` and `show` read records: the database, or JSON lines.
#[derive(Debug, Clone, clap::Args)]
pub struct Source {
    /// The database to read.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_PATH)]
    pub store: PathBuf,

    /// Read JSON lines (oomtrace's output) from FILE, or stdin with `-`,
    /// instead of the database.
    #[arg(long, value_name = "FILE|-")]
    pub from: Option<PathBuf>,
}

/// How far back `list` looks without --since.
const DEFAULT_SINCE: Duration = Duration::from_secs(86400);

fn duration_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// `2h` (ago), `2026-12-01 03:12`, `2026-12-01`, RFC 3339: ns since the
/// epoch. Times without a zone are UTC, as records write them.
pub fn parse_when(value: &str) -> Result<i64, String> {
    let value = value.trim();
    if let Ok(ago) = humantime::parse_duration(value) {
        return Ok(super::now_ns().saturating_sub(duration_ns(ago)));
    }
    let completed = match value.len() {
        10 => format!("{value} 00:00:00"),
        16 => format!("{value}:00"),
        _ => value.to_string(),
    };
    parse_time_ns(&completed).ok_or_else(|| {
        format!(
            "`{value}` is not a duration like 2h or 3d, nor a UTC time like \
             2026-12-01 03:12 or 2026-12-01T03:12:00Z"
        )
    })
}

/// Which kills a listing shows.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub since_ns: i64,
    pub until_ns: i64,
    pub pid: Option<i64>,
    pub comm: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
    pub cgroup: Option<String>,
    pub constraint: Option<String>,
}

impl Selection {
    pub fn new(args: &ListArgs, now_ns: i64) -> Selection {
        Selection {
            since_ns: args
                .since
                .unwrap_or_else(|| now_ns.saturating_sub(duration_ns(DEFAULT_SINCE))),
            until_ns: args.until.unwrap_or(i64::MAX),
            pid: args.pid,
            comm: args.comm.clone(),
            pod: args
                .pod
                .as_ref()
                .map(|p| p.replace('_', "-").to_ascii_lowercase()),
            container: args.container.clone(),
            cgroup: args.cgroup.as_deref().map(filter::subtree),
            constraint: args.constraint.clone(),
        }
    }

    /// A kill record that matches every filter given.
    pub fn matches(&self, c: &Columns) -> bool {
        let some_is = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        };
        c.kind == "oom_kill"
            && (self.since_ns..self.until_ns).contains(&c.time_ns)
            && self.pid.is_none_or(|p| c.pid == Some(p))
            && some_is(&self.comm, &c.comm)
            && some_is(&self.constraint, &c.constraint)
            && self.pod.as_deref().is_none_or(|want| {
                c.pod_uid
                    .as_deref()
                    .is_some_and(|uid| uid.to_ascii_lowercase().starts_with(want))
                    || c.pod_name.as_deref() == Some(want)
            })
            && self.container.as_deref().is_none_or(|want| {
                c.container_id
                    .as_deref()
                    .is_some_and(|id| !want.is_empty() && id.starts_with(want))
                    || c.container_name.as_deref() == Some(want)
            })
            && self.cgroup.as_deref().is_none_or(|subtree| {
                filter::under(c.memcg_path.as_deref(), subtree)
                    || filter::under(c.oom_memcg_path.as_deref(), subtree)
            })
    }
}

/// The kill records to show, oldest first, at most the `latest` last: the
/// stored JSON lines.
pub fn select_from_store(
    store: &Store,
    selection: &Selection,
    latest: Option<usize>,
) -> anyhow::Result<Vec<String>> {
    let context = || format!("cannot read {}", store.path().display());
    let rows = store
        .select("oom_kill", selection.since_ns, selection.until_ns)
        .with_context(context)?;
    let mut ids: Vec<i64> = rows
        .into_iter()
        .filter(|row| selection.matches(&row.columns))
        .map(|row| row.id)
        .collect();
    keep_latest(&mut ids, latest);
    store.json(&ids).with_context(context)
}

fn keep_latest<T>(items: &mut Vec<T>, latest: Option<usize>) {
    if let Some(n) = latest {
        items.drain(..items.len().saturating_sub(n));
    }
}

/// The same from JSON lines; lines that are not records are skipped.
pub fn select_from_lines(
    input: impl BufRead,
    selection: &Selection,
) -> anyhow::Result<Vec<String>> {
    let mut kills = Vec::new();
    for line in input.lines() {
        let line = line.context("cannot read the records")?;
        if let Ok((_, columns)) = Columns::from_line(&line)
            && selection.matches(&columns)
        {
            kills.push((columns.time_ns, line));
        }
    }
    // A log pipeline may deliver out of order; the database sorts by time.
    kills.sort_by_key(|(time, _)| *time);
    Ok(kills.into_iter().map(|(_, line)| line).collect())
}

/// One clear sentence for a database `list` cannot read.
pub(super) fn unreadable(path: &Path, error: StoreError) -> anyhow::Error {
    let missing = !path.exists();
    if missing {
        anyhow::anyhow!(
            "no kill history at {}: oomtrace stores one there when it runs as root (or with \
             --store PATH); pass that path with --store, or read saved JSON lines with --from FILE",
            path.display()
        )
    } else {
        anyhow::anyhow!(
            "cannot read the kill history at {} ({error}): run as a user who can read it \
             (e.g. with sudo), or pass another database with --store",
            path.display()
        )
    }
}

pub fn run(args: &ListArgs) -> anyhow::Result<std::process::ExitCode> {
    let selection = Selection::new(args, super::now_ns());
    let mut kills = match args.source.from.as_deref() {
        Some(path) if path == Path::new("-") => select_from_lines(io::stdin().lock(), &selection)?,
        Some(path) => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            select_from_lines(io::BufReader::new(file), &selection)?
        }
        None => {
            let store = Store::open_read_only(&args.source.store)
                .map_err(|e| unreadable(&args.source.store, e))?;
            select_from_store(&store, &selection, args.count)?
        }
    };
    keep_latest(&mut kills, args.count);
    if args.reverse {
        kills.reverse();
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let written = write(&mut out, &kills, args.json).and_then(|()| out.flush());
    match written {
        // `oomtrace list | head`: a normal end.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        other => other.context("cannot write the list")?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn write(out: &mut dyn Write, kills: &[String], json: bool) -> io::Result<()> {
    if json {
        for line in kills {
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }
    if kills.is_empty() {
        return writeln!(
            out,
            "No OOM kills in that time (or matching those filters)."
        );
    }
    writeln!(
        out,
        "{:<19} {:>8} {:<16} {:<40} {:<26} {:>10} VERDICT",
        "TIME (UTC)", "PID", "COMM", "WORKLOAD", "LIMIT HIT", "RSS"
    )?;
    for line in kills {
        let Ok(record) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        writeln!(out, "{}", row(&record))?;
    }
    Ok(())
}

fn text<'a>(record: &'a Value, pointer: &str) -> Option<&'a str> {
    record.pointer(pointer).and_then(Value::as_str)
}

fn number(record: &Value, pointer: &str) -> Option<u64> {
    record.pointer(pointer).and_then(Value::as_u64)
}

/// One kill as a line of the listing.
pub fn row(r: &Value) -> String {
    let time = text(r, "/time")
        .and_then(parse_time_ns)
        .and_then(|ns| u64::try_from(ns).ok())
        .map(|ns| {
            let at = UNIX_EPOCH + Duration::from_nanos(ns);
            let full = clock::rfc3339(at);
            // `2026-12-01T03:12:05.123456Z` -> `2026-12-01 03:12:05`
            full.get(..19).unwrap_or(&full).replacen('T', " ", 1)
        })
        .unwrap_or_else(|| "?".into());
    let pid = number(r, "/victim/pid").map_or("?".into(), |p| p.to_string());
    let comm = text(r, "/victim/comm").unwrap_or("?");
    let rss = ["anon", "file", "shmem"]
        .iter()
        .map(|k| number(r, &format!("/victim/rss_{k}_bytes")))
        .sum::<Option<u64>>()
        .map_or("?".into(), bytes);
    let verdict = text(r, "/history/hint").unwrap_or("-");
    format!(
        "{time:<19} {pid:>8} {comm:<16} {:<40} {:<26} {rss:>10} {verdict}",
        workload(r),
        limit(r)
    )
}

/// The pod/container, service, or cgroup the victim belonged to.
fn workload(r: &Value) -> String {
    for memcg in ["/victim/memcg", "/oom_memcg"] {
        let k8s = |f: &str| text(r, &format!("{memcg}/k8s/{f}"));
        let pod = match (k8s("namespace"), k8s("pod_name"), k8s("pod_uid")) {
            (Some(ns), Some(name), _) => Some(format!("{ns}/{name}")),
            (_, Some(name), _) => Some(name.to_string()),
            (_, _, Some(uid)) => Some(format!("pod {}", uid.get(..8).unwrap_or(uid))),
            _ => None,
        };
        let container = k8s("container_name")
            .map(str::to_string)
            .or_else(|| k8s("container_id").map(|id| id.get(..12).unwrap_or(id).to_string()));
        match (pod, container) {
            (Some(pod), Some(c)) => return format!("{pod}/{c}"),
            (Some(pod), None) => return pod,
            _ => {}
        }
        if let Some(name) = text(r, &format!("{memcg}/service/name")) {
            return name.to_string();
        }
    }
    text(r, "/victim/memcg/path")
        .or_else(|| text(r, "/oom_memcg/path"))
        .unwrap_or("?")
        .to_string()
}

/// `512.0 MiB pod`, `2.0 GiB container`, `host`: the limit and whose.
fn limit(r: &Value) -> String {
    match text(r, "/constraint") {
        Some("memcg") => {
            let kind = match text(r, "/oom_memcg/k8s/level") {
                Some(level @ ("pod" | "container")) => level,
                Some(_) => "k8s",
                None if r
                    .pointer("/oom_memcg/service")
                    .is_some_and(|s| !s.is_null()) =>
                {
                    "service"
                }
                None => "cgroup",
            };
            match number(r, "/oom_memcg/limit_bytes") {
                Some(limit) => format!("{} {kind}", bytes(limit)),
                None => format!("? {kind}"),
            }
        }
        Some("global") => "host (no limit: RAM)".into(),
        Some(other) => format!("host ({other})"),
        None => "?".into(),
    }
}
