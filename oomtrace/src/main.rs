//! oomtrace: trace Linux OOM kills from the kernel.
//!
//! Data flow: kernel record (`capture`) -> typed event (`decode`) ->
//! report with time, host and paths (`enrich`, `report`) -> JSON lines or
//! text (`output`).

mod capture;
mod check;
mod cli;
mod decode;
mod enrich;
mod error;
mod filter;
mod output;
mod privileges;
mod report;
mod stream;
mod trend;

use std::{process::ExitCode, sync::Arc};

use anyhow::Context as _;
use clap::Parser as _;

use crate::{
    capture::{Capture, Facilities},
    cli::{Cli, Command},
    error::UserError,
    output::{Output, metrics::Metrics},
    privileges::Privileges,
};

fn main() -> ExitCode {
    // Usage errors exit 2 with clap's message; --help and --version exit 0.
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Check) => check::run(),
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

fn trace(cli: &Cli) -> anyhow::Result<ExitCode> {
    let privileges = Privileges::current().context("cannot read /proc/self/status")?;
    if !privileges.can_trace() {
        return Err(UserError::NotPrivileged {
            held: privileges.describe(),
        }
        .into());
    }
    let output =
        Output::open(cli.output.as_deref(), cli.format).map_err(|source| UserError::Output {
            path: cli.output.clone().unwrap_or_default(),
            source,
        })?;

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

    // tracefs is only needed by the classic tracepoint path: mount it only
    // when that path is the one left.
    let mut facilities = Facilities::probe(false);
    let plan = match facilities.plan(cli.capture) {
        Ok(plan) => plan,
        Err(_) => {
            facilities = Facilities::probe(true);
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
    let capture = Capture::start(&plan, facilities.loader_btf(), &options).map_err(|error| {
        if error.is_permission_denied() {
            anyhow::Error::new(UserError::NotPrivileged {
                held: privileges.describe(),
            })
        } else {
            anyhow::Error::new(error).context("cannot start tracing")
        }
    })?;

    let mut ready = format!(
        "oomtrace: ready: oom:mark_victim attached via {}",
        capture.path.name()
    );
    if capture.path != capture::CapturePath::Tracepoint {
        if let Some(why) = &capture.fentry_unavailable {
            ready.push_str(&format!(
                " (fentry unavailable, OOM context from the stack: {why})"
            ));
        }
        if let Err(why) = &capture.oom_control {
            ready.push_str(&format!(" (OOM killer context unavailable: {why})"));
        }
        if let Err(why) = &capture.reclaim {
            ready.push_str(&format!(" (reclaim history unavailable: {why})"));
        }
        if let Err(why) = &capture.aftermath {
            ready.push_str(&format!(" (victim exits not followed: {why})"));
        }
    }
    // Asked for by flag: say so on every path when it cannot be done.
    if cli.sigkill
        && let Err(why) = &capture.sigkills
    {
        ready.push_str(&format!(" (SIGKILLs not traced: {why})"));
    }
    if cli.pressure.is_some()
        && capture.path == capture::CapturePath::Tracepoint
        && let Err(why) = &capture.reclaim
    {
        ready.push_str(&format!(" (no --pressure warnings: reclaim {why})"));
    }
    if let Some(addr) = cli.metrics {
        ready.push_str(&format!(" (metrics on http://{addr}/metrics)"));
    }
    if !plan.unresolved.is_empty() {
        ready.push_str(&format!(
            " (not on this kernel, reported as null: {})",
            plan.unresolved.join(", ")
        ));
    }
    let announce = move || {
        eprintln!("{ready}");
        // The kernel's parsed BTF (tens of MiB at its peak) is needed only
        // to load: give it back before running for weeks (after the ready
        // line: freeing it takes ~100 ms).
        drop(facilities);
        release_startup_memory();
        // A no-op unless started by systemd with Type=notify.
        if let Err(error) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
            eprintln!("oomtrace: warning: cannot notify systemd: {error}");
        }
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
