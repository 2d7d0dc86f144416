//! Command line: flags are documented in the words a user reads in --help.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::{capture::Preference, output::Format};

/// Trace Linux OOM kills from inside the kernel.
///
/// Runs until interrupted and writes one record per kill: who was killed,
/// what it held (RSS, page tables, oom_score_adj), its memory cgroup, which
/// limit was hit and which task ran into it; then the victim's exit, and a
/// `lost` record for anything it could not deliver. JSON lines when piped
/// or with --output, a short summary on a terminal. Needs root (or CAP_BPF
/// and CAP_PERFMON).
#[derive(Debug, Parser)]
#[command(name = "oomtrace", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Append records to FILE instead of writing them to stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Record format: `json` (one object per line) or `text` (a summary per
    /// kill). Default: text on a terminal, json otherwise.
    #[arg(short, long, value_enum)]
    pub format: Option<Format>,

    /// Exit after N kills have been recorded.
    #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Exit after SECONDS seconds (fractions allowed), even without kills.
    #[arg(short, long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub duration: Option<std::time::Duration>,

    /// Kernel-to-userspace buffer size, e.g. 256K or 4M (a power of two, at
    /// least 32K: the largest record). Records that do not fit while oomtrace is behind are
    /// counted and reported as `lost`.
    #[arg(long, value_name = "BYTES", default_value = "1M", value_parser = parse_ring_size)]
    pub ring_buffer_size: u32,

    /// Also warn before kills: a `memcg_pressure` record when a memory
    /// cgroup's tasks stall in reclaim for STALL (default 100ms) within one
    /// second; at most one per cgroup every 10 seconds. Off by default.
    #[arg(long, value_name = "STALL", num_args = 0..=1, default_missing_value = "100ms", value_parser = parse_stall)]
    pub pressure: Option<std::time::Duration>,

    /// Also record every SIGKILL that is not the OOM killer's (a `kill -9`,
    /// a kubelet eviction, a systemd stop), with the process that sent it,
    /// its kind (a userspace OOM killer such as earlyoom or systemd-oomd, a
    /// runtime stop, systemd, a plain kill) and the SIGTERM that came first.
    #[arg(long)]
    pub sigkill: bool,

    /// With each kill, list the N processes of its OOM domain (the cgroup
    /// whose limit was hit, or the whole machine) the OOM killer would pick
    /// next, scored as it scores them, taken by the kernel side at the kill
    /// (up to 16; more are read from /proc after it); 0 turns the table off.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub candidates: usize,

    /// Where the kubelet writes `pods/` and `containers/` logs, which name
    /// the pod, namespace and container of a kill without the API server.
    /// Mount the node's /var/log there when oomtrace runs in a pod.
    #[arg(long, value_name = "DIR", default_value = "/var/log")]
    pub kubelet_log_dir: PathBuf,

    /// The Docker Engine API socket that names Docker containers (name,
    /// image, compose labels), asked read-only for a container a record
    /// names (a kill, a SIGKILL, a pressure warning), at most 150 ms per
    /// container, then cached. Mount the node's socket read-only there in a pod.
    #[arg(long, value_name = "PATH", default_value = "/var/run/docker.sock")]
    pub docker_socket: PathBuf,

    /// podman's API socket (`podman system service`), asked like Docker's.
    #[arg(long, value_name = "PATH", default_value = "/run/podman/podman.sock")]
    pub podman_socket: PathBuf,

    /// containers/storage's root, whose `overlay-containers/containers.json`
    /// names podman containers when its socket is not there.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/var/lib/containers/storage"
    )]
    pub podman_storage: PathBuf,

    /// containerd's state directory: a `/<namespace>/<id>` cgroup is named
    /// a containerd container only when containerd runs that task (its
    /// `io.containerd.runtime.v2.task/<namespace>/<id>` directory).
    #[arg(long, value_name = "DIR", default_value = "/run/containerd")]
    pub containerd_state: PathBuf,

    /// How to capture kills: `auto` picks the richest path this kernel
    /// offers (see `oomtrace check`); `fentry` insists on tp_btf plus fentry
    /// on oom_kill_process(); `btf` on tp_btf with the victim's
    /// task_struct; `tracepoint` uses the classic event's fields.
    #[arg(long, value_enum, default_value_t = Preference::Auto)]
    pub capture: Preference,

    /// oomtrace's own oom_score_adj (-1000..1000), or `keep`. By default it
    /// makes itself unkillable by the OOM killer (-1000) so that it outlives
    /// the host-level OOM it reports; its memory is bounded (ring buffer,
    /// output queue). Lowering it needs CAP_SYS_RESOURCE.
    #[arg(long, value_name = "N|keep", default_value = "-1000", value_parser = parse_oom_score_adj)]
    pub oom_score_adj: OomScoreAdj,

    /// Only records of this cgroup subtree (as records write paths, e.g.
    /// `/kubepods.slice/kubepods-burstable.slice`): the victim's cgroup or
    /// the one whose limit was hit.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,

    /// Only kills (and SIGKILLs) of tasks with this name.
    #[arg(long, value_name = "NAME")]
    pub comm: Option<String>,

    /// Only records of this Kubernetes pod (its UID, e.g. from the
    /// downward API's metadata.uid).
    #[arg(long, value_name = "UID")]
    pub pod: Option<String>,

    /// Serve Prometheus metrics (and `/ready`) at `PORT`, `:PORT` or
    /// `HOST:PORT`; without a host only on localhost.
    #[arg(long, value_name = "ADDR", value_parser = crate::output::metrics::parse_addr)]
    pub metrics: Option<std::net::SocketAddr>,

    /// Also keep every record in a local database that `oomtrace list`
    /// reads later: PATH, or `none`. Default: /var/lib/oomtrace/oomtrace.db
    /// when run as root, none otherwise. A store that fails is reported
    /// once and counted; the output goes on.
    #[arg(long, value_name = "PATH|none", env = "OOMTRACE_STORE", value_parser = parse_store)]
    pub store: Option<StoreChoice>,

    /// Forget stored records older than this (e.g. 30d, 12h).
    #[arg(long, value_name = "AGE", default_value = "30d", value_parser = parse_keep)]
    pub store_keep: std::time::Duration,

    /// Sample the usage of every memory cgroup with a limit this often into
    /// the store, for the trend each kill record carries and the reading of
    /// leak vs small limit; `off` for none. Needs the store.
    #[arg(long, value_name = "INTERVAL|off", default_value = "30s", value_parser = parse_trend_interval)]
    pub trend_interval: TrendInterval,

    /// Keep the database at most this large (e.g. 64M, 1G), dropping the
    /// oldest records first.
    #[arg(long, value_name = "BYTES", default_value = "64M", value_parser = parse_store_max)]
    pub store_max: u64,
}

/// `--store`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    None,
    Path(PathBuf),
}

fn parse_store(value: &str) -> Result<StoreChoice, String> {
    match value {
        "" => Err("an empty path: give a file, or `none`".into()),
        "none" => Ok(StoreChoice::None),
        path => Ok(StoreChoice::Path(PathBuf::from(path))),
    }
}

/// `--trend-interval`: how often, or `off` (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrendInterval(pub Option<std::time::Duration>);

fn parse_trend_interval(value: &str) -> Result<TrendInterval, String> {
    if value == "off" {
        return Ok(TrendInterval(None));
    }
    humantime::parse_duration(value)
        .ok()
        .filter(|d| *d >= std::time::Duration::from_millis(100))
        .map(|d| TrendInterval(Some(d)))
        .ok_or_else(|| format!("`{value}` is not `off` or a duration of at least 100ms, like 30s"))
}

fn parse_keep(value: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{value}` is not a positive duration like 30d or 12h"))
}

/// At least 64 KiB: the schema and one batch must fit.
fn parse_store_max(value: &str) -> Result<u64, String> {
    parse_bytes(value)
        .filter(|n| *n >= 64 << 10)
        .ok_or_else(|| format!("`{value}` is not a size of at least 64K, like 64M or 1G"))
}

/// `--oom-score-adj`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OomScoreAdj {
    Keep,
    Set(i16),
}

fn parse_oom_score_adj(value: &str) -> Result<OomScoreAdj, String> {
    if value == "keep" {
        return Ok(OomScoreAdj::Keep);
    }
    value
        .parse::<i16>()
        .ok()
        .filter(|n| (-1000..=1000).contains(n))
        .map(OomScoreAdj::Set)
        .ok_or_else(|| format!("`{value}` is not `keep` or a number from -1000 to 1000"))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report what this kernel offers for tracing OOM kills (BTF, tracefs,
    /// tracepoints, cgroups) and which capture path oomtrace would use.
    /// Exits non-zero when tracing cannot work here.
    Check,
    /// List the stored OOM kills (default: the last day), one line each.
    List(Box<crate::store::list::ListArgs>),
    /// Show one stored OOM kill in full (default: the latest): the kill,
    /// its incident, its exit, the candidates, reclaim, the memory trend
    /// and the verdict with its evidence.
    Show(Box<crate::store::show::ShowArgs>),
}

fn parse_seconds(value: &str) -> Result<std::time::Duration, String> {
    let seconds: f64 = value
        .parse()
        .map_err(|_| format!("`{value}` is not a number of seconds"))?;
    std::time::Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{value}` is not a positive number of seconds"))
}

/// The ring buffer must hold at least one record (with its 8-byte header)
/// and be a whole number of pages. A smaller one would drop every record,
/// and with nothing ever arriving, nothing would wake oomtrace to say so.
fn min_ring_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    // The largest entry and its 8-byte ring buffer header.
    let record = (crate::decode::MAX_ENTRY_BYTES + 8) as u64;
    let record = record.next_power_of_two();
    page.max(record)
}

fn parse_stall(value: &str) -> Result<std::time::Duration, String> {
    let stall = humantime::parse_duration(value)
        .map_err(|e| format!("`{value}` is not a duration like 100ms or 0.5s: {e}"))?;
    if stall.is_zero() || stall > std::time::Duration::from_secs(1) {
        return Err(format!(
            "`{value}` must be more than 0 and at most 1s (stall per second)"
        ));
    }
    Ok(stall)
}

/// `4096`, `256K`, `4M`, `1G`.
fn parse_bytes(value: &str) -> Option<u64> {
    let trimmed = value.trim();
    let (digits, multiplier) = match trimmed.char_indices().last() {
        Some((i, 'k' | 'K')) => (&trimmed[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&trimmed[..i], 1u64 << 20),
        Some((i, 'g' | 'G')) => (&trimmed[..i], 1u64 << 30),
        _ => (trimmed, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
}

fn parse_ring_size(value: &str) -> Result<u32, String> {
    let bytes = parse_bytes(value)
        .ok_or_else(|| format!("`{value}` is not a size like 4096, 256K or 4M"))?;
    let minimum = min_ring_size();
    if !bytes.is_power_of_two() || bytes < minimum || bytes > 1 << 30 {
        return Err(format!(
            "`{value}` must be a power of two between {minimum} bytes and 1G"
        ));
    }
    u32::try_from(bytes).map_err(|_| format!("`{value}` is too large"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["oomtrace"]).expect("parses");
        assert!(cli.command.is_none());
        assert_eq!(cli.format, None);
        assert_eq!(cli.ring_buffer_size, 1 << 20);
        assert_eq!((cli.count, cli.duration), (None, None));
    }

    #[test]
    fn every_flag_parses() {
        let cli = Cli::try_parse_from([
            "oomtrace",
            "--output",
            "/tmp/x",
            "--format",
            "json",
            "--count",
            "3",
            "--duration",
            "1.5",
            "--ring-buffer-size",
            "256K",
            "--capture",
            "tracepoint",
        ])
        .expect("parses");
        assert_eq!(cli.output, Some(PathBuf::from("/tmp/x")));
        assert_eq!(cli.format, Some(Format::Json));
        assert_eq!(cli.count, Some(3));
        assert_eq!(cli.duration, Some(std::time::Duration::from_millis(1500)));
        assert_eq!(cli.ring_buffer_size, 256 << 10);
        assert_eq!(cli.capture, Preference::Tracepoint);
        let cli = Cli::try_parse_from(["oomtrace", "-f", "text", "-n", "1", "-d", "2", "-o", "f"])
            .expect("parses");
        assert_eq!(cli.format, Some(Format::Text));
    }

    #[test]
    fn check_is_a_subcommand() {
        assert!(
            Cli::try_parse_from(["oomtrace", "--sigkill"])
                .expect("parses")
                .sigkill
        );
        let cli = Cli::try_parse_from(["oomtrace", "--pressure"]).expect("parses");
        assert_eq!(cli.pressure, Some(std::time::Duration::from_millis(100)));
        let cli = Cli::try_parse_from(["oomtrace", "--pressure", "250ms"]).expect("parses");
        assert_eq!(cli.pressure, Some(std::time::Duration::from_millis(250)));
        assert_eq!(
            Cli::try_parse_from(["oomtrace"]).expect("parses").pressure,
            None
        );
        let cli = Cli::try_parse_from(["oomtrace", "check"]).expect("parses");
        assert!(matches!(cli.command, Some(Command::Check)));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["oomtrace", "--count", "0"][..],
            &["oomtrace", "--duration", "-1"],
            &["oomtrace", "--duration", "soon"],
            &["oomtrace", "--format", "xml"],
            &["oomtrace", "--ring-buffer-size", "1000"],
            &["oomtrace", "--ring-buffer-size", "2G"],
            &["oomtrace", "--bogus"],
            &["oomtrace", "--capture", "kprobe"],
            &["oomtrace", "--pressure", "2s"],
            &["oomtrace", "--pressure", "lots"],
        ] {
            let err = Cli::try_parse_from(args).expect_err(&format!("{args:?} must fail"));
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn store_flags() {
        use clap::FromArgMatches as _;
        // Whatever OOMTRACE_STORE says where the tests run (xtask sets it
        // to `none`), the flag's own default is no choice.
        let without_env = Cli::command()
            .mut_arg("store", |arg| arg.env(None::<&str>))
            .try_get_matches_from(["oomtrace"])
            .expect("parses");
        let cli = Cli::from_arg_matches(&without_env).expect("parses");
        assert_eq!(cli.store, None, "chosen by privileges at start");
        assert_eq!(cli.store_keep, std::time::Duration::from_secs(30 * 86400));
        assert_eq!(cli.store_max, 64 << 20);
        let cli = Cli::try_parse_from([
            "oomtrace",
            "--store",
            "/tmp/h.db",
            "--store-keep",
            "12h",
            "--store-max",
            "1G",
        ])
        .expect("parses");
        assert_eq!(cli.store, Some(StoreChoice::Path("/tmp/h.db".into())));
        assert_eq!(cli.store_keep, std::time::Duration::from_secs(12 * 3600));
        assert_eq!(cli.store_max, 1 << 30);
        let cli = Cli::try_parse_from(["oomtrace", "--store", "none"]).expect("parses");
        assert_eq!(cli.store, Some(StoreChoice::None));
        for args in [
            &["oomtrace", "--store", ""][..],
            &["oomtrace", "--store-keep", "0s"],
            &["oomtrace", "--store-keep", "forever"],
            &["oomtrace", "--store-max", "1K"],
        ] {
            let err = Cli::try_parse_from(args).expect_err(&format!("{args:?} must fail"));
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
        let cli = Cli::try_parse_from([
            "oomtrace", "list", "--since", "2h", "--pid", "7", "-n", "3", "-r", "--json",
        ])
        .expect("parses");
        let Some(Command::List(list)) = cli.command else {
            panic!("list is a subcommand")
        };
        assert_eq!(
            (list.pid, list.count, list.reverse, list.json),
            (Some(7), Some(3), true, true)
        );
        assert!(
            Cli::try_parse_from(["oomtrace", "list", "--since", "yesterday-ish"]).is_err(),
            "a bad time is a usage error"
        );
    }

    #[test]
    fn ring_sizes() {
        assert_eq!(
            min_ring_size(),
            32768,
            "4.3 KiB of record and 16 KiB of command line: 32 KiB"
        );
        assert!(parse_ring_size("16K").is_err(), "too small for one record");
        assert_eq!(parse_ring_size("32K"), Ok(32768));
        assert_eq!(parse_ring_size("64k"), Ok(64 << 10));
        assert_eq!(parse_ring_size("1G"), Ok(1 << 30));
        assert!(parse_ring_size("3M").is_err());
        assert!(parse_ring_size("M").is_err());
    }
}
