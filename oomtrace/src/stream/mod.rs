//! The event loop: ring buffer -> records, until a signal, a limit, or a
//! closed output ends it. Decoding, enrichment and correlation are done by
//! their modules; this feeds them and writes what they return.

use std::{io, sync::Arc, time::Duration};

use anyhow::Context as _;
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
    time::{Instant, sleep_until},
};

mod correlate;

use self::correlate::{Correlator, Record};
use crate::{
    capture::{Capture, LostCounter},
    decode::{self, Event},
    enrich::{Enricher, Settings},
    filter::Filter,
    output::{Output, metrics::Metrics},
    report::LostStage,
};

pub struct Limits {
    /// Stop after this many kill records.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
}

struct Streamer {
    output: Output,
    enricher: Enricher,
    correlator: Correlator,
    lost_reported: u64,
    /// `--metrics`: counts what is written.
    metrics: Option<Arc<Metrics>>,
}

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
        correlator: Correlator::new(filter, limits.count, aftermath.is_ok()),
        lost_reported: 0,
        metrics,
    };
    let deadline = limits.duration.map(|d| Instant::now() + d);
    on_ready();

    // tokio's clear_ready() is a no-op when the fd signalled again after the
    // guard was taken, so a record arriving mid-drain is never missed.
    let mut result = loop {
        let release = streamer.correlator.next_release().map(Instant::from_std);
        tokio::select! {
            ready = events.readable_mut() => {
                let mut guard = ready.context("polling the ring buffer failed")?;
                let drained = streamer.drain(guard.get_inner_mut(), &lost);
                guard.clear_ready();
                match drained {
                    Ok(()) if !streamer.correlator.done() => {}
                    other => break other,
                }
            }
            // Only armed while something is held: no idle wakeups.
            _ = sleep_until(release.unwrap_or_else(Instant::now)), if release.is_some() => {
                let records = streamer.correlator.release(std::time::Instant::now(), false);
                match streamer.write(records) {
                    Ok(()) if !streamer.correlator.done() => {}
                    other => break other,
                }
            }
            error = streamer.output.failed() => break Err(error),
            _ = sigint.recv() => break Ok(()),
            _ = sigterm.recv() => break Ok(()),
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                break Ok(())
            }
        }
    };
    // Whatever the kernel captured before we were told to stop is written.
    if result.is_ok() && !streamer.correlator.done() {
        result = streamer.drain(events.get_mut(), &lost);
    }
    match result
        .and_then(|()| {
            let records = streamer.correlator.release(std::time::Instant::now(), true);
            streamer.write(records)
        })
        .and_then(|()| streamer.report_output_drops())
        .and_then(|()| streamer.output.finish())
    {
        Ok(()) => Ok(()),
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

    /// Feeds every entry waiting in the ring buffer through enrichment and
    /// correlation and writes what comes out, then any new losses. Stops
    /// early once `--count` kills are written.
    fn drain(
        &mut self,
        events: &mut aya::maps::RingBuf<aya::maps::MapData>,
        lost: &LostCounter,
    ) -> io::Result<()> {
        while let Some(item) = events.next() {
            let decoded = decode::entry(&item);
            drop(item);
            let decoded = match decoded {
                Ok(decoded) => decoded,
                Err(mismatch) => {
                    eprintln!(
                        "oomtrace: warning: skipped a malformed ring buffer entry: {mismatch}"
                    );
                    continue;
                }
            };
            if let Some(bad) = decoded.bad_cmdline {
                eprintln!(
                    "oomtrace: warning: a record's command line was malformed ({bad}); written without it"
                );
            }
            let now = std::time::Instant::now();
            let records = match decoded.event {
                Event::Kill(kill, cmdline) => {
                    let report = self.enricher.report(&kill, cmdline.as_ref());
                    self.correlator
                        .kill_in_oom(now, report, cmdline.is_some(), kill.group_kill())
                }
                Event::Sigkill(sigkill) => {
                    let report = self.enricher.sigkill(&sigkill);
                    self.correlator.sigkill(now, report)
                }
                Event::Outcome(outcome, cmdline) => {
                    let report = self.enricher.outcome(&outcome);
                    self.correlator.outcome(now, report, cmdline.as_ref())
                }
                Event::IncidentEnd(end) => self.correlator.incident_end(now, end),
                Event::Pressure(pressure) => {
                    let report = self.enricher.pressure(&pressure);
                    self.correlator.pressure(report)
                }
            };
            self.write(records)?;
            self.enricher.after_line();
            if self.correlator.done() {
                return Ok(());
            }
        }
        self.report_lost(lost)
    }

    fn write(&mut self, records: Vec<Record>) -> io::Result<()> {
        for record in records {
            match record {
                Record::Kill(report) => {
                    self.metrics(|m| m.kill(&report));
                    self.output.kill(&report)?;
                }
                Record::Outcome(report) => self.output.outcome(&report)?,
                Record::Sigkill(report) => {
                    self.metrics(|m| m.sigkill(&report));
                    self.output.sigkill(&report)?;
                }
                Record::Pressure(report) => {
                    self.metrics(|m| m.pressure(&report));
                    self.output.pressure(&report)?;
                }
            }
        }
        Ok(())
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
            let report = self
                .enricher
                .lost(total - self.lost_reported, LostStage::RingBuffer);
            self.lost_reported = total;
            self.metrics(|m| m.lost(&report));
            self.output.lost(&report)?;
        }
        self.report_output_drops()
    }

    /// Records the output queue refused (a reader that stopped reading),
    /// and those the store did not keep.
    fn report_output_drops(&mut self) -> io::Result<()> {
        let dropped = [
            (self.output.take_dropped(), LostStage::Output),
            (self.output.take_store_lost(), LostStage::Store),
        ];
        for (count, stage) in dropped {
            if count > 0 {
                let report = self.enricher.lost(count, stage);
                self.metrics(|m| m.lost(&report));
                self.output.lost(&report)?;
            }
        }
        Ok(())
    }
}
