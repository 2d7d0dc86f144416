//! The event loop: ring buffer -> records, until a signal, a limit, or a
//! closed output ends it.

use std::{collections::VecDeque, io, sync::Arc, time::Duration};

use anyhow::Context as _;
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
    time::{Instant, sleep_until},
};

use crate::{
    capture::{Capture, LostCounter},
    decode::{self, Entry, OomKill, Sigkill},
    enrich::{
        Enricher, Settings, clock,
        runtime::{self, CapturedAt},
    },
    filter::Filter,
    output::{Output, metrics::Metrics},
    report::{KillReport, LostReport, LostStage, OutcomeReport, SigkillReport},
};

pub struct Limits {
    /// Stop after this many kill records.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
}

/// Whether to keep streaming.
enum Flow {
    Continue,
    Done,
}

struct Streamer {
    output: Output,
    enricher: Enricher,
    kills: u64,
    count: Option<u64>,
    lost_reported: u64,
    /// SIGKILLs from the kernel, held until their OOM kill record shows
    /// they were the OOM killer's (then dropped: one kill, one record).
    held: VecDeque<Held>,
    /// Kill records in arrival order, the first ones possibly waiting for
    /// their victim's exit to bring its command line.
    kills_out: VecDeque<PendingKill>,
    /// The exit hook is attached: a victim's exit will be reported.
    exits_traced: bool,
    /// `--metrics`: counts what is written.
    metrics: Option<Arc<Metrics>>,
    /// `--cgroup`, `--comm`, `--pod`.
    filter: Filter,
}

struct PendingKill {
    /// Written when its command line is in, or at `until` without it.
    ready: bool,
    until: Instant,
    victim_pid: Option<u32>,
    report: KillReport,
    /// The victim's exit, written right after its kill.
    outcome: Option<OutcomeReport>,
    /// The incident whose end (and victim count) it waits for.
    incident: Option<u64>,
}

/// How long a kill record waits for its victim's exit when the victim did
/// not run into the OOM itself. A SIGKILLed task exits within milliseconds
/// unless stuck in the kernel, which the record must not wait for.
const WAIT_FOR_EXIT: Duration = Duration::from_millis(500);

/// A SI_KERNEL SIGKILL waiting to see whether an OOM kill explains it.
struct Held {
    until: Instant,
    /// The target's process, to match against an OOM victim's.
    target_tgid: Option<u32>,
    report: SigkillReport,
}

/// How long a kernel SIGKILL waits for its OOM kill record. The OOM
/// killer's SIGKILL and mark_victim happen microseconds apart on one CPU;
/// records from different CPUs may reach the ring buffer out of order.
const HOLD: Duration = Duration::from_millis(20);

/// Streams records until SIGINT/SIGTERM, `limits`, or a closed output; all
/// three are a normal end. Everything captured before the end is written.
/// `on_ready` runs once signals are handled and the ring buffer is polled,
/// so a signal sent after it cannot kill the process mid-write.
pub async fn run(
    capture: Capture,
    output: Output,
    limits: Limits,
    settings: Settings,
    metrics: Option<Arc<Metrics>>,
    filter: Filter,
    on_ready: impl FnOnce(),
) -> anyhow::Result<()> {
    let Capture {
        events,
        lost,
        reclaim,
        aftermath,
        ..
    } = capture;
    // SAFETY: the ring buffer owns its map fd, keeps it open while it lives,
    // and always returns that same fd; the AsyncFd owns the ring buffer.
    let mut events = unsafe { AsyncFd::register_with_interest(events, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
        .context("cannot poll the ring buffer")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut streamer = Streamer {
        output,
        enricher: Enricher::new(reclaim.is_ok(), settings),
        kills: 0,
        count: limits.count,
        lost_reported: 0,
        held: VecDeque::new(),
        kills_out: VecDeque::new(),
        exits_traced: aftermath.is_ok(),
        metrics,
        filter,
    };
    let deadline = limits.duration.map(|d| Instant::now() + d);
    on_ready();

    // tokio's clear_ready() is a no-op when the fd signalled again after the
    // guard was taken, so a record arriving mid-drain is never missed.
    let mut result = loop {
        tokio::select! {
            ready = events.readable_mut() => {
                let mut guard = ready.context("polling the ring buffer failed")?;
                let flow = streamer.drain(guard.get_inner_mut(), &lost);
                guard.clear_ready();
                match flow {
                    Ok(Flow::Continue) => {}
                    other => break other,
                }
            }
            // Only armed while something is held: no idle wakeups.
            _ = sleep_until(streamer.next_release()), if streamer.holds() => {
                match streamer.release(false) {
                    Ok(Flow::Continue) => {}
                    other => break other,
                }
            }
            error = streamer.output.failed() => break Err(error),
            _ = sigint.recv() => break Ok(Flow::Done),
            _ = sigterm.recv() => break Ok(Flow::Done),
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                break Ok(Flow::Done)
            }
        }
    };
    // Whatever the kernel captured before we were told to stop is written.
    if let Ok(Flow::Done) = result
        && streamer.count.is_none_or(|n| streamer.kills < n)
    {
        result = streamer.drain(events.get_mut(), &lost);
    }
    match result
        .and_then(|_| streamer.release(true))
        .and_then(|_| streamer.report_output_drops())
        .and_then(|_| streamer.output.finish().map(|_| Flow::Done))
    {
        Ok(_) => Ok(()),
        // The reader went away (`oomtrace | head -1`): a normal end.
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(error) => Err(error).context("cannot write records"),
    }
}

impl Streamer {
    fn metrics(&self, update: impl FnOnce(&Metrics)) {
        if let Some(metrics) = &self.metrics {
            update(metrics);
        }
    }

    /// Writes every record waiting in the ring buffer, then any new losses.
    fn drain(
        &mut self,
        events: &mut aya::maps::RingBuf<aya::maps::MapData>,
        lost: &LostCounter,
    ) -> io::Result<Flow> {
        while let Some(item) = events.next() {
            match decode::entry(&item) {
                Ok(Entry::Kill(record, cmdline)) => {
                    let kill = OomKill::from_record(&record);
                    drop(item);
                    // Its SIGKILL was the OOM killer's: not a second record.
                    let victim = kill.victim.tgid.or(kill.victim.pid);
                    self.held
                        .retain(|h| h.target_tgid.is_none() || h.target_tgid != victim);
                    let report = self.enricher.report(&kill, cmdline.as_ref());
                    let wait = cmdline.is_none() && self.exits_traced && kill.victim.pid.is_some();
                    self.kills_out.push_back(PendingKill {
                        ready: !wait,
                        until: Instant::now() + WAIT_FOR_EXIT,
                        victim_pid: kill.victim.pid,
                        incident: report.incident.as_ref().map(|i| i.id),
                        report,
                        outcome: None,
                    });
                    if let Flow::Done = self.write_kills(false)? {
                        return Ok(Flow::Done);
                    }
                }
                Ok(Entry::Sigkill(record)) => {
                    let sigkill = Sigkill::from_record(&record);
                    drop(item);
                    let report = self.enricher.sigkill(&sigkill);
                    if report.sent_by == "kernel" {
                        self.held.push_back(Held {
                            until: Instant::now() + HOLD,
                            target_tgid: sigkill.target.tgid,
                            report,
                        });
                    } else {
                        if self.filter.sigkill(&report) {
                            self.metrics(|m| m.sigkill(&report));
                            self.output.sigkill(&report)?;
                        }
                    }
                }
                Ok(Entry::Outcome(outcome, cmdline)) => {
                    drop(item);
                    let report = self.enricher.outcome(&outcome);
                    let pending = self
                        .kills_out
                        .iter_mut()
                        .find(|k| k.victim_pid == Some(outcome.pid) && k.outcome.is_none());
                    match pending {
                        Some(kill) => {
                            if let Some(cmdline) = &cmdline {
                                kill.report.victim.runtime =
                                    Some(runtime::analyze(cmdline, CapturedAt::Exit));
                            }
                            kill.ready = true;
                            kill.outcome = Some(report);
                            if let Flow::Done = self.write_kills(false)? {
                                return Ok(Flow::Done);
                            }
                        }
                        // Whose kill it follows is unknown: a filtered run
                        // (a sidecar, say) must not show other workloads.
                        None if !self.filter.is_empty() => {}
                        None => self.output.outcome(&report)?,
                    }
                }
                Ok(Entry::Incident(end)) => {
                    drop(item);
                    for kill in &mut self.kills_out {
                        if kill.incident == Some(end.incident_ns) {
                            kill.incident = None;
                            if let Some(incident) = &mut kill.report.incident {
                                incident.victims = Some(end.victims);
                            }
                        }
                    }
                    if let Flow::Done = self.write_kills(false)? {
                        return Ok(Flow::Done);
                    }
                }
                Ok(Entry::Pressure(pressure)) => {
                    drop(item);
                    let report = self.enricher.pressure(&pressure);
                    if self.filter.pressure(&report) {
                        self.metrics(|m| m.pressure(&report));
                        self.output.pressure(&report)?;
                    }
                }
                Err(mismatch) => {
                    eprintln!(
                        "oomtrace: warning: skipped a malformed ring buffer entry: {mismatch}"
                    );
                }
            }
        }
        self.report_lost(lost)?;
        Ok(Flow::Continue)
    }

    fn holds(&self) -> bool {
        !self.held.is_empty() || !self.kills_out.is_empty()
    }

    fn next_release(&self) -> Instant {
        let sigkill = self.held.front().map(|h| h.until);
        let kill = self.kills_out.front().map(|k| k.until);
        sigkill
            .into_iter()
            .chain(kill)
            .min()
            .unwrap_or_else(Instant::now)
    }

    /// Writes kill records in arrival order, each once its command line is
    /// in or its wait is over (all of them at the end), each followed by
    /// its victim's exit when that came first.
    fn write_kills(&mut self, all: bool) -> io::Result<Flow> {
        let now = Instant::now();
        while let Some(front) = self.kills_out.front() {
            if self.count.is_some_and(|n| self.kills >= n) {
                return Ok(Flow::Done);
            }
            let complete = front.ready && front.incident.is_none();
            if !(all || complete || front.until <= now) {
                break;
            }
            let Some(kill) = self.kills_out.pop_front() else {
                break;
            };
            if !self.filter.kill(&kill.report) {
                continue;
            }
            self.metrics(|m| m.kill(&kill.report));
            self.output.kill(&kill.report)?;
            self.kills += 1;
            // The kill waited for its exit: the last one counted keeps it.
            if let Some(outcome) = &kill.outcome {
                self.output.outcome(outcome)?;
            }
            if self.count.is_some_and(|n| self.kills >= n) {
                return Ok(Flow::Done);
            }
        }
        Ok(Flow::Continue)
    }

    /// Writes the held kernel SIGKILLs whose wait is over (all of them at
    /// the end): no OOM kill claimed them. Then the kills due.
    fn release(&mut self, all: bool) -> io::Result<Flow> {
        let now = Instant::now();
        while let Some(held) = self.held.front() {
            if !all && held.until > now {
                break;
            }
            if let Some(held) = self.held.pop_front()
                && self.filter.sigkill(&held.report)
            {
                self.metrics(|m| m.sigkill(&held.report));
                self.output.sigkill(&held.report)?;
            }
        }
        self.write_kills(all)
    }

    fn report_lost(&mut self, lost: &LostCounter) -> io::Result<()> {
        let total = match lost.total() {
            Ok(total) => total,
            Err(error) => {
                eprintln!("oomtrace: warning: cannot read the lost-record counter: {error}");
                return Ok(());
            }
        };
        if total > self.lost_reported {
            let report = LostReport::new(
                clock::rfc3339(clock::wall_time(clock::boot_ns_now())),
                total - self.lost_reported,
                LostStage::RingBuffer,
            );
            self.lost_reported = total;
            self.metrics(|m| m.lost(&report));
            self.output.lost(&report)?;
        }
        self.report_output_drops().map(|_| ())
    }

    /// Records the output queue refused (a reader that stopped reading),
    /// and those the store did not keep.
    fn report_output_drops(&mut self) -> io::Result<Flow> {
        let dropped = [
            (self.output.take_dropped(), LostStage::Output),
            (self.output.take_store_lost(), LostStage::Store),
        ];
        for (count, stage) in dropped {
            if count > 0 {
                let report = LostReport::new(
                    clock::rfc3339(clock::wall_time(clock::boot_ns_now())),
                    count,
                    stage,
                );
                self.metrics(|m| m.lost(&report));
                self.output.lost(&report)?;
            }
        }
        Ok(Flow::Continue)
    }
}
