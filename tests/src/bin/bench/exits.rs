//! A fork/exit storm: `processes` short-lived processes, forked and reaped
//! one after another, in interleaved rounds without a tracer and with
//! oomtrace's default probes. `sched_process_exit` fires for every thread
//! exit on the machine; oomtrace waits for almost none of them, so what an
//! exit costs it should be what a map miss costs. The kernel's bpf_stats
//! give that cost per exit; the storm's rate is the user-visible check.

use std::{collections::BTreeMap, time::Instant};

use anyhow::{Context as _, Result, bail};
use oomtrace_tests::Tracer;
use serde_json::{Value, json};

use crate::{
    Row,
    bpf_stats::{self, Counters, StatsOn},
    cpu_ticks, median, row, settle,
};

const EXIT_PROGRAM: &str = "sched_process_exit_btf";

pub fn measure(processes: usize) -> Result<(Value, Vec<Row>)> {
    const ROUNDS: usize = 4;
    let per_round = (processes / ROUNDS).max(1);
    let stats = StatsOn::enable()?;
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut programs: BTreeMap<String, Counters> = BTreeMap::new();
    let mut forked = 0;
    let mut tracer_ticks = 0;
    for _ in 0..ROUNDS {
        rates[0].push(storm(per_round)?);
        let tracer = Tracer::start(&[])?;
        settle(tracer.pid())?;
        let before = bpf_stats::programs_of(tracer.pid())?;
        let cpu_before = cpu_ticks(tracer.pid())?;
        rates[1].push(storm(per_round)?);
        forked += per_round;
        tracer_ticks += cpu_ticks(tracer.pid())? - cpu_before;
        let after = bpf_stats::programs_of(tracer.pid())?;
        bpf_stats::accumulate(&mut programs, &bpf_stats::delta(&before, &after));
        tracer.stop()?;
    }
    // The floor, on the same kind of storm.
    let floor = crate::floor::Floor::attach()?;
    let before = floor.counters();
    storm(per_round)?;
    let floor_ns: serde_json::Map<String, Value> = floor
        .counters()
        .into_iter()
        .zip(before)
        .map(|((name, after), (_, before))| {
            let runs = after.run_cnt.saturating_sub(before.run_cnt).max(1);
            let ns = after.run_time_ns.saturating_sub(before.run_time_ns);
            (name.to_string(), json!(ns as f64 / runs as f64))
        })
        .collect();
    drop(floor);
    drop(stats);
    let exit = programs
        .get(EXIT_PROGRAM)
        .with_context(|| format!("oomtrace held no {EXIT_PROGRAM} program"))?;
    if exit.run_cnt < forked as u64 {
        bail!(
            "{EXIT_PROGRAM} ran {} times for {forked} exits: not every exit was seen",
            exit.run_cnt
        );
    }
    if exit.run_time_ns == 0 {
        bail!("the kernel counted no run time: BPF statistics were not on");
    }
    let ns_per_exit = exit.run_time_ns as f64 / exit.run_cnt as f64;
    let none = median(&mut rates[0]).context("no run")?;
    let with = median(&mut rates[1]).context("no run")?;
    let result = json!({
        "processes": forked,
        "exit_program_runs": exit.run_cnt,
        "exit_program_ns": exit.run_time_ns,
        "ns_per_exit": ns_per_exit,
        "none_exits_per_s": none,
        "default_exits_per_s": with,
        "change_percent": (with / none - 1.0) * 100.0,
        "all_none_exits_per_s": rates[0],
        "all_default_exits_per_s": rates[1],
        "floor_ns_per_exit": floor_ns,
        "oomtrace_cpu_s": tracer_ticks as f64 / oomtrace_tests::system::ticks_per_second() as f64,
        "programs": programs.iter().map(|(name, c)| (name.clone(), json!({"runs": c.run_cnt, "run_time_ns": c.run_time_ns}))).collect::<serde_json::Map<_, _>>(),
    });
    let rows = vec![
        row(
            "fork/exit storm: `sched_process_exit` per exit (bpf_stats)",
            format!(
                "{ns_per_exit:.0} ns over {} exits ({forked} forked by the storm, the rest the machine's)",
                exit.run_cnt
            ),
            "<= 200 ns (a map miss)",
        ),
        row(
            "fork/exit storm: the floor (bpf_stats, same storm)",
            format!(
                "an empty program {:.0} ns, one hash-map miss {:.0} ns",
                result["floor_ns_per_exit"]["empty"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
                result["floor_ns_per_exit"]["hash_miss"]
                    .as_f64()
                    .unwrap_or(f64::NAN)
            ),
            "",
        ),
        row(
            "fork/exit storm: processes per second",
            format!(
                "{none:.0}/s without, {with:.0}/s with oomtrace ({:+.2} %, median of {ROUNDS} interleaved rounds)",
                (with / none - 1.0) * 100.0
            ),
            "",
        ),
    ];
    Ok((result, rows))
}

/// Forks `count` processes that exit at once, one at a time; per second.
fn storm(count: usize) -> Result<f64> {
    let started = Instant::now();
    for _ in 0..count {
        // SAFETY: the child calls only _exit, which is async-signal-safe,
        // so forking a multi-threaded process is sound.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => bail!("fork: {}", std::io::Error::last_os_error()),
            // SAFETY: see above.
            0 => unsafe { libc::_exit(0) },
            pid => {
                let mut status = 0;
                // SAFETY: waits for our own child.
                if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
                    bail!("waitpid: {}", std::io::Error::last_os_error());
                }
            }
        }
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}
