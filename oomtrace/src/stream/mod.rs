//! The event loop: ring buffer -> records, until a signal, a limit, or a
//! closed output ends it. Decoding, enrichment and correlation are done by
//! their modules; this feeds them and writes what they return.
//!
//! The loop runs on a thread of its own that waits in poll(2) on the ring
//! buffer itself: a kill's record is decoded as soon as the kernel wakes
//! it, with no async runtime's wakeup in front (15-45 us in an experiment
//! on this machine's busy CPUs). Signals are taken on the runtime's thread,
//! which tells the loop to stop.

use std::{
    io,
    os::fd::AsRawFd as _,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

mod correlate;
mod wake;

use self::correlate::{Correlator, Record};
use crate::{
    capture::{Capture, LostCounter, TableMarks},
    decode::{self, Event},
    enrich::{Enricher, Settings, clock},
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

/// How long a kill waits for its candidate table at most: the kernel side
/// sends it right after the kill record, some 20 us later here (the walk
/// grows with the process count: ~300 ns a process), and marks the victim
/// done right after (see `TableMarks`), which ends the wait sooner when
/// the ring buffer refused the table. The bound is for a mark that never
/// comes (a walk of 65,536 processes under emulation takes seconds).
const TABLE_WAIT: Duration = Duration::from_secs(2);

/// Spin this long for the table before polling it with sleeps: a walk
/// that takes longer runs on a slow or busy machine, where a spinning
/// reader takes the CPU from it (two emulated vCPUs on one host thread).
const TABLE_SPIN: Duration = Duration::from_micros(500);
const TABLE_POLL: Duration = Duration::from_micros(100);

fn warn_malformed(mismatch: &decode::BadEntry) {
    eprintln!("oomtrace: warning: skipped a malformed ring buffer entry: {mismatch}");
}

struct Streamer {
    output: Output,
    enricher: Enricher,
    correlator: Correlator,
    lost_reported: u64,
    /// `--metrics`: counts what is written.
    metrics: Option<Arc<Metrics>>,
    /// OOMTRACE_VERBOSE=1: each kill's path from the kernel to its line.
    timing: bool,
    /// The kernel side sends a candidate table after each kill record
    /// with an OOM context (not a memory.oom.group member's), and marks
    /// the victim done in these (None: no tables).
    table_marks: Option<TableMarks>,
    /// Entries read past a kill while waiting for its table, handled next
    /// (with when they were read), in ring buffer order.
    ahead: std::collections::VecDeque<(decode::Decoded, Option<u64>)>,
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
        candidates,
        table_marks,
        ..
    } = capture;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let waker = Arc::new(wake::Waker::new().context("cannot make the event loop's eventfd")?);
    {
        let waker = Arc::clone(&waker);
        output.on_failure(move || waker.wake());
    }
    let streamer = Streamer {
        output,
        enricher: Enricher::new(reclaim.is_ok(), settings),
        correlator: Correlator::new(filter, limits.count, aftermath.is_ok()),
        lost_reported: 0,
        metrics,
        timing: crate::verbose(),
        table_marks: candidates.is_ok().then_some(table_marks),
        ahead: std::collections::VecDeque::new(),
    };
    let deadline = limits.duration.map(|d| Instant::now() + d);
    let stop = Arc::new(AtomicBool::new(false));
    let (ended, mut thread_ended) = tokio::sync::oneshot::channel::<()>();
    let thread = {
        let (waker, stop) = (Arc::clone(&waker), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("oomtrace-stream".into())
            .spawn(move || {
                let result = streamer.run(events, &lost, deadline, &waker, &stop);
                drop(ended);
                result
            })
            .context("cannot start the event loop's thread")?
    };
    on_ready();

    let by_itself = tokio::select! {
        _ = &mut thread_ended => true,
        _ = sigint.recv() => false,
        _ = sigterm.recv() => false,
    };
    if !by_itself {
        stop.store(true, Ordering::Release);
        waker.wake();
        let _ = thread_ended.await;
    }
    let result = thread
        .join()
        .map_err(|_| anyhow::anyhow!("the event loop's thread panicked"))?;
    match result {
        Ok(()) => Ok(()),
        // The reader went away (`oomtrace | head -1`): a normal end.
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(error) => Err(error).context("cannot write records"),
    }
}

/// OOMTRACE_VERBOSE=1: where a kill's time went on its way to its line,
/// each instant on the boot clock of the kernel's timestamp of the kill.
struct KillTiming {
    pid: Option<u32>,
    kill: u64,
    read: u64,
    decoded: u64,
    built: u64,
    /// The record's `candidates.taken_after_us`.
    candidates_us: Option<u64>,
}

impl KillTiming {
    /// Printed after the line (or when the kill is held for correlation),
    /// so the print never delays it.
    fn print(&self, written: Option<u64>) {
        // One write: stderr is unbuffered, and eprintln! writes each piece.
        let _ = io::Write::write_all(&mut io::stderr(), self.line(written).as_bytes());
    }

    fn line(&self, written: Option<u64>) -> String {
        let us = |at: u64| at.saturating_sub(self.kill) / 1000;
        let candidates = self
            .candidates_us
            .map_or(String::new(), |c| format!(", candidates at {c}"));
        let written = written.map_or("held for correlation".to_string(), |w| {
            format!("written at {}", us(w))
        });
        format!(
            "oomtrace: kill of {}: read at {} us, decoded at {}, record at {}{candidates}, {written}\n",
            self.pid.map_or("?".to_string(), |p| p.to_string()),
            us(self.read),
            us(self.decoded),
            us(self.built),
        )
    }
}

impl Streamer {
    /// The loop: waits for records, the next held record's release, the
    /// deadline or a stop; ends on a stop, `--count`, the deadline or a
    /// failed output. Whatever the kernel captured before a stop is
    /// written, and the output drained.
    fn run(
        mut self,
        mut events: aya::maps::RingBuf<aya::maps::MapData>,
        lost: &LostCounter,
        deadline: Option<Instant>,
        waker: &wake::Waker,
        stop: &AtomicBool,
    ) -> io::Result<()> {
        let fd = events.as_raw_fd();
        let mut result = loop {
            if stop.load(Ordering::Acquire) || deadline.is_some_and(|d| Instant::now() >= d) {
                break Ok(());
            }
            if let Some(error) = self.output.failure() {
                break Err(error);
            }
            // Only a timeout while something is held: no idle wakeups.
            let until = [self.correlator.next_release(), deadline]
                .into_iter()
                .flatten()
                .min();
            if let Err(error) = wake::wait(fd, waker, until) {
                break Err(error);
            }
            let drained = self.drain(&mut events, lost).and_then(|()| {
                if self.correlator.done() {
                    return Ok(());
                }
                let now = Instant::now();
                match self.correlator.next_release() {
                    Some(at) if at <= now => {
                        let records = self.correlator.release(now, false);
                        self.write(records)
                    }
                    _ => Ok(()),
                }
            });
            match drained {
                Ok(()) if !self.correlator.done() => {}
                other => break other,
            }
        };
        // Whatever the kernel captured before we were told to stop is written.
        if result.is_ok() && !self.correlator.done() {
            result = self.drain(&mut events, lost);
        }
        result
            .and_then(|()| {
                let records = self.correlator.release(Instant::now(), true);
                self.write(records)
            })
            .and_then(|()| self.report_output_drops())
            .and_then(|()| self.output.finish())
    }

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
        loop {
            let (decoded, read_ns) = match self.ahead.pop_front() {
                Some(entry) => entry,
                None => {
                    let Some(item) = events.next() else {
                        break;
                    };
                    let read_ns = self.timing.then(clock::boot_ns_now);
                    let decoded = decode::entry(&item);
                    drop(item);
                    match decoded {
                        Ok(decoded) => (decoded, read_ns),
                        Err(mismatch) => {
                            warn_malformed(&mismatch);
                            continue;
                        }
                    }
                }
            };
            if let Some(bad) = decoded.bad_cmdline {
                eprintln!(
                    "oomtrace: warning: a record's command line was malformed ({bad}); written without it"
                );
            }
            let now = Instant::now();
            let mut timed = None;
            let records = match decoded.event {
                Event::Kill(kill, cmdline) => {
                    if self.table_marks.is_some()
                        && kill.oom.as_ref().is_some_and(|o| !o.is_group_member())
                    {
                        self.read_to_table(events, kill.victim.pid);
                    }
                    let decoded_ns = read_ns.map(|_| clock::boot_ns_now());
                    let report = self.enricher.report(&kill, cmdline.as_ref());
                    if let (Some(read), Some(decoded)) = (read_ns, decoded_ns) {
                        timed = Some(KillTiming {
                            pid: kill.victim.pid,
                            kill: kill.boot_ns,
                            read,
                            decoded,
                            built: clock::boot_ns_now(),
                            candidates_us: report.candidates.as_ref().map(|c| c.taken_after_us),
                        });
                    }
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
                // Read after its kill's record (see read_to_table).
                Event::Candidates(table) => {
                    self.enricher.kernel_candidates(*table);
                    continue;
                }
                Event::Pressure(pressure) => {
                    let report = self.enricher.pressure(&pressure);
                    self.correlator.pressure(report)
                }
            };
            // Whether the timed kill's own line goes out now.
            let released = timed.as_ref().is_some_and(|t| {
                records
                    .iter()
                    .any(|r| matches!(r, Record::Kill(k) if k.victim.pid == t.pid))
            });
            self.write(records)?;
            if let Some(timed) = timed {
                timed.print(released.then(clock::boot_ns_now));
            }
            self.enricher.after_line();
            if self.correlator.done() {
                return Ok(());
            }
        }
        self.report_lost(lost)
    }

    /// Reads on from the ring buffer until the candidate table of the kill
    /// of `victim` (thread id) just read: the kernel side sends it right
    /// after the kill record, in the same tracepoint call. What comes
    /// between is kept in order for the loop. Until the kernel side marks
    /// the victim done without a table in the ring buffer (it refused it:
    /// the kill is left to the /proc scan), or [`TABLE_WAIT`].
    fn read_to_table(
        &mut self,
        events: &mut aya::maps::RingBuf<aya::maps::MapData>,
        victim: Option<u32>,
    ) {
        let (Some(victim), Some(marks)) = (victim, self.table_marks.as_ref()) else {
            return;
        };
        // Read ahead already, in another kill's wait.
        if self.enricher.has_kernel_table(victim) {
            return;
        }
        let started = Instant::now();
        let mut marked = false;
        loop {
            let Some(item) = events.next() else {
                if marked {
                    return;
                }
                marked = marks.done(victim);
                if marked {
                    // One more read: the table went in before the mark.
                    continue;
                }
                let waited = started.elapsed();
                if waited >= TABLE_WAIT {
                    return;
                }
                if waited < TABLE_SPIN {
                    std::hint::spin_loop();
                } else {
                    std::thread::sleep(TABLE_POLL);
                }
                continue;
            };
            let read_ns = self.timing.then(clock::boot_ns_now);
            let decoded = decode::entry(&item);
            drop(item);
            match decoded {
                Ok(decode::Decoded {
                    event: Event::Candidates(table),
                    ..
                }) => {
                    let ours = table.victim_pid == victim;
                    self.enricher.kernel_candidates(*table);
                    if ours {
                        return;
                    }
                }
                Ok(other) => self.ahead.push_back((other, read_ns)),
                Err(mismatch) => warn_malformed(&mismatch),
            }
        }
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

#[cfg(test)]
mod tests {
    use super::KillTiming;

    #[test]
    fn a_kills_timing_is_in_us_after_the_kill() {
        let timing = KillTiming {
            pid: Some(42),
            kill: 1_000_000,
            read: 1_097_400,
            decoded: 1_109_000,
            built: 1_216_900,
            candidates_us: Some(133),
        };
        assert_eq!(
            timing.line(Some(1_305_000)),
            "oomtrace: kill of 42: read at 97 us, decoded at 109, record at 216, candidates at 133, written at 305\n"
        );
        assert!(timing.line(None).ends_with(", held for correlation\n"));
    }
}
