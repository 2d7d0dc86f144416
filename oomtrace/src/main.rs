//! oomtrace: trace Linux OOM kills from the kernel; the modules live in the
//! library (src/lib.rs), this is the command line around them.

use std::{process::ExitCode, sync::Arc};

use anyhow::Context as _;
use clap::Parser as _;

use oomtrace::{
    capture::{self, Capture, Facilities},
    check, cli,
    cli::{Cli, Command},
    docs, enrich,
    error::UserError,
    filter, output,
    output::{Output, metrics::Metrics},
    privileges::Privileges,
    store, stream,
};

fn main() -> ExitCode {
    capture::timing::begin();
    if let Some(dir) = docs::requested() {
        return docs::run(&dir);
    }
    // Usage errors exit 2 with clap's message; --help and --version exit 0.
    let cli = capture::timing::phase("arguments", Cli::parse);
    let result = match cli.command {
        Some(Command::Check) => check::run(),
        Some(Command::List(ref args)) => store::list::run(args),
        Some(Command::Show(ref args)) => store::show::run(args),
        None => trace(&cli),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            // One line, the whole cause chain, no backtrace.
            eprintln!("oomtrace: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Returns the heap that start-up used (BTF parsing) to the system: glibc
/// keeps freed memory otherwise, and a node agent's RSS should be its
/// working set.
fn release_startup_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap pages.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `--pressure` as the kernel side wants it: stall ns per second, 0 = off.
fn pressure_ns(cli: &Cli) -> u64 {
    cli.pressure.map_or(0, |stall| {
        u64::try_from(stall.as_nanos()).unwrap_or(u64::MAX)
    })
}

/// `--store`, or by default the system database when run as root.
fn store_path(cli: &Cli) -> Option<std::path::PathBuf> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    match &cli.store {
        Some(cli::StoreChoice::None) => None,
        Some(cli::StoreChoice::Path(path)) => Some(path.clone()),
        // Only root may write /var/lib; an unprivileged run (CAP_BPF
        // alone) keeps no history unless told where.
        None => root.then(|| std::path::PathBuf::from(store::DEFAULT_PATH)),
    }
}

/// The kills the store kept (within `--store-keep`), for the history the
/// hints rest on. A store that cannot be read gives none: the writer
/// thread reports why.
fn past_kills(
    path: &std::path::Path,
    keep: std::time::Duration,
) -> Vec<(String, enrich::history::Kill)> {
    let keep = i64::try_from(keep.as_nanos()).unwrap_or(i64::MAX);
    let since = store::now_ns().saturating_sub(keep);
    let Ok(store) = store::Store::open(path) else {
        return Vec::new();
    };
    let kills = store.history_since(since).unwrap_or_default();
    kills
        .into_iter()
        .map(|k| {
            let kill = enrich::history::Kill {
                at_ns: u64::try_from(k.time_ns).unwrap_or(0),
                // Perhaps another boot: intervals to it use the wall clock.
                boot_ns: None,
                age_ns: k.age_ns,
                stalls_last_10s: k.stalls_last_10s,
                stalls_total: k.stalls_total,
            };
            (k.workload, kill)
        })
        .collect()
}

fn trace(cli: &Cli) -> anyhow::Result<ExitCode> {
    let privileges = capture::timing::phase("privileges", Privileges::current)
        .context("cannot read /proc/self/status")?;
    if !privileges.can_trace() {
        return Err(UserError::NotPrivileged {
            held: privileges.describe(),
        }
        .into());
    }
    // First: it takes longest and needs nothing from what follows.
    let loader = capture::timing::phase("loader thread spawn", capture::LoaderPrefetch::start);
    let setup = capture::timing::Timer::start();
    let mut output =
        Output::open(cli.output.as_deref(), cli.format).map_err(|source| UserError::Output {
            path: cli.output.clone().unwrap_or_default(),
            source,
        })?;
    let store_path = store_path(cli);
    let past_kills = store_path
        .as_deref()
        .map(|path| past_kills(path, cli.store_keep))
        .unwrap_or_default();
    let mut trend_store = None;
    if let Some(path) = store_path {
        let retention = store::Retention {
            keep: cli.store_keep,
            max_bytes: cli.store_max,
        };
        let trend = cli
            .trend_interval
            .0
            .zip(enrich::cgroup::MemoryHierarchy::find())
            .map(|(interval, hierarchy)| store::writer::TrendSampling {
                hierarchy,
                interval,
            });
        if trend.is_some() {
            trend_store = Some(path.clone());
        }
        let writer = store::writer::Writer::start(path, retention, trend)
            .context("cannot start the store")?;
        output = output.with_store(writer);
    }

    // Before loading anything: a busy port is a quick, clear error.
    let metrics_listener = cli
        .metrics
        .map(|addr| {
            std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|source| UserError::MetricsAddress { addr, source })
        })
        .transpose()?;

    if let cli::OomScoreAdj::Set(adj) = cli.oom_score_adj
        && let Err(e) = std::fs::write("/proc/self/oom_score_adj", adj.to_string())
    {
        eprintln!(
            "oomtrace: warning: cannot set its own oom_score_adj to {adj} ({e}; lowering it \
             needs CAP_SYS_RESOURCE): a host-level OOM may kill oomtrace itself"
        );
    }

    setup.done("output, store, oom_score_adj".to_string());

    // tracefs is only needed by the classic tracepoint path: mount it only
    // when that path is the one left (the BTF parsed once either way).
    let cache_dir = capture::cache::dir();
    let mut facilities = capture::timing::phase("probe (BTF, tracefs)", || {
        Facilities::probe_cached(cache_dir.as_deref())
    });
    let plan = match facilities.plan(cli.capture) {
        Ok(plan) => plan,
        Err(_) => {
            facilities.mount_tracefs();
            facilities
                .plan(cli.capture)
                .map_err(|no_path| UserError::NoCapturePath {
                    reasons: no_path.reasons.join("; "),
                })?
        }
    };
    let options = capture::Options {
        ring_buffer_bytes: cli.ring_buffer_size,
        pressure_ns: pressure_ns(cli),
        sigkill: cli.sigkill,
    };
    let capture = capture::timing::phase("capture (load, verify, attach)", || {
        Capture::start(&plan, || facilities.loader_btf(), &options, loader)
    })
    .map_err(|error| {
        // OOMTRACE_VERBOSE=1: the program that failed, with the verifier's
        // whole log, not only its first line.
        if let (true, capture::CaptureError::Fentry(feature)) = (oomtrace::verbose(), &error)
            && let Some(detail) = feature.detail()
        {
            eprintln!("oomtrace: {detail}");
        }
        if error.is_permission_denied() {
            anyhow::Error::new(UserError::NotPrivileged {
                held: privileges.describe(),
            })
        } else {
            anyhow::Error::new(error).context("cannot start tracing")
        }
    })?;

    let ready = capture.ready_line(cli.metrics);
    let details = if oomtrace::verbose() {
        capture.feature_details()
    } else {
        Vec::new()
    };
    let announce = move || {
        let ready_at = capture::timing::since_begin();
        eprintln!("{ready}");
        for detail in &details {
            eprintln!("oomtrace: {detail}");
        }
        if oomtrace::verbose() {
            for line in capture::timing::lines() {
                eprintln!("oomtrace: {line}");
            }
            eprintln!(
                "oomtrace: start: ready at {:.1} ms",
                ready_at.as_secs_f64() * 1000.0
            );
        }
        // A no-op unless started by systemd with Type=notify. Ready as
        // soon as the line is out, not after the clean-up below.
        if let Err(error) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
            eprintln!("oomtrace: warning: cannot notify systemd: {error}");
        }
        // After a start that parsed the BTF, what it needed from it goes
        // into the cache for the next (after the ready line: it resolves
        // the layout once more).
        facilities.fill_cache();
        // The kernel's parsed BTF (tens of MiB at its peak) is needed only
        // to load: give it back before running for weeks (after the ready
        // line: freeing it takes ~100 ms).
        drop(facilities);
        release_startup_memory();
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the event loop")?;
    let limits = stream::Limits {
        count: cli.count,
        duration: cli.duration,
    };
    let settings = enrich::Settings {
        candidates: cli.candidates,
        kubelet_log_dir: cli.kubelet_log_dir.clone(),
        containers: enrich::names::Sources {
            docker_socket: cli.docker_socket.clone(),
            podman_socket: cli.podman_socket.clone(),
            podman_storage: cli.podman_storage.clone(),
            containerd_state: cli.containerd_state.clone(),
        },
        past_kills,
        trend_store,
    };
    runtime.block_on(async {
        let metrics = match metrics_listener {
            Some(listener) => {
                let listener =
                    tokio::net::TcpListener::from_std(listener).context("cannot serve metrics")?;
                let metrics = Arc::new(Metrics::new(capture.path.name()));
                tokio::spawn(output::metrics::serve(listener, Arc::clone(&metrics)));
                Some(metrics)
            }
            None => None,
        };
        let filter = filter::Filter::new(cli.cgroup.clone(), cli.comm.clone(), cli.pod.clone());
        stream::run(capture, output, limits, settings, metrics, filter, announce).await
    })?;
    Ok(ExitCode::SUCCESS)
}
