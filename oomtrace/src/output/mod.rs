//! Writing records: JSON lines or a short human-readable block, one record
//! at a time, flushed so a reader sees each kill as it happens.
//!
//! Records are formatted on the event loop and written by a thread of their
//! own through a queue of at most [`QUEUE_BYTES`]: a reader that stops
//! reading (a stuck pipe) never blocks the loop, so signals still end the
//! run and the ring buffer is still drained. What does not fit in the queue
//! is counted and reported as `lost` records (`stage: "output"`).
//!
//! A pipe that is empty (its reader has taken every record) is written to
//! from the event loop itself: a record that fits an empty pipe cannot
//! block, and the reader sees it without waiting for the writer thread to
//! be scheduled. Anything else goes through the queue.

pub mod metrics;
pub mod text;

pub use text::bytes;

use std::{
    collections::VecDeque,
    fs::{File, OpenOptions},
    io::{self, IsTerminal, Write},
    os::{
        fd::{AsFd, AsRawFd},
        unix::fs::FileTypeExt,
    },
    path::Path,
    sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock},
    thread,
    time::{Duration, Instant},
};

use crate::{
    report::{KillReport, LostReport, LostStage, OutcomeReport, PressureReport, SigkillReport},
    store::writer::Writer as StoreWriter,
};

/// How records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line (the default when stdout is not a terminal).
    Json,
    /// A short block per kill, for people (the default on a terminal).
    Text,
}

/// Formatted records not yet written: the most memory a stuck reader costs.
pub const QUEUE_BYTES: usize = 16 << 20;

/// How long the end of a run waits for a slow reader to take what is queued.
const FINISH_WAIT: Duration = Duration::from_secs(5);

/// Where records go.
pub struct Output {
    format: Format,
    queue: Arc<Queue>,
    writer: Option<thread::JoinHandle<()>>,
    /// `--store`: a second consumer of every record's JSON line.
    store: Option<StoreWriter>,
    /// The sink again, when it is a pipe: written to directly while empty.
    pipe: Option<File>,
}

/// What the writer calls when the sink fails.
type OnFailure = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Queue {
    /// Wakes the event loop when the sink fails (a reader that went away),
    /// so it ends without waiting for the next record.
    on_failure: OnceLock<OnFailure>,
    state: Mutex<State>,
    /// Signalled when a record is queued or the run ends.
    queued: Condvar,
    /// Signalled when the writer has taken everything (or failed).
    drained: Condvar,
}

#[derive(Default)]
struct State {
    records: VecDeque<Vec<u8>>,
    bytes: usize,
    /// A record is being written right now.
    writing: bool,
    closing: bool,
    /// The sink failed (a closed pipe, a full disk): nothing more is written.
    failed: Option<io::ErrorKind>,
    /// Records refused because the queue was full, not yet reported.
    dropped: u64,
}

impl Queue {
    fn failed(&self) {
        if let Some(wake) = self.on_failure.get() {
            wake();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in the writer cannot leave the queue half-changed.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Output {
    /// stdout, or `path` opened for appending. Without an explicit format,
    /// text on a terminal and JSON otherwise.
    pub fn open(path: Option<&Path>, format: Option<Format>) -> io::Result<Output> {
        // A second descriptor of the sink, if it is a pipe; without one
        // every record goes through the writer thread.
        let (sink, terminal, again): (Box<dyn Write + Send>, bool, Option<File>) = match path {
            Some(path) => {
                let file = OpenOptions::new().create(true).append(true).open(path)?;
                let again = file.try_clone().ok();
                (Box::new(file), false, again)
            }
            None => (
                Box::new(io::stdout()),
                io::stdout().is_terminal(),
                io::stdout()
                    .as_fd()
                    .try_clone_to_owned()
                    .ok()
                    .map(File::from),
            ),
        };
        let format = format.unwrap_or(if terminal { Format::Text } else { Format::Json });
        let mut output = Output::to_writer(format, sink)?;
        output.pipe = again.filter(|file| file.metadata().is_ok_and(|m| m.file_type().is_fifo()));
        Ok(output)
    }

    pub fn to_writer(format: Format, sink: Box<dyn Write + Send>) -> io::Result<Output> {
        let queue = Arc::new(Queue::default());
        let writer = {
            let queue = Arc::clone(&queue);
            thread::Builder::new()
                .name("oomtrace-out".into())
                .spawn(move || write_loop(&queue, sink))?
        };
        Ok(Output {
            format,
            queue,
            writer: Some(writer),
            store: None,
            pipe: None,
        })
    }

    /// Also keeps every record in the local database.
    pub fn with_store(mut self, store: StoreWriter) -> Output {
        self.store = Some(store);
        self
    }

    /// Records the store did not keep since the last call.
    pub fn take_store_lost(&mut self) -> u64 {
        self.store.as_ref().map_or(0, StoreWriter::take_lost)
    }

    pub fn kill(&mut self, report: &KillReport) -> io::Result<()> {
        self.record(report, text::kill)
    }

    pub fn sigkill(&mut self, report: &SigkillReport) -> io::Result<()> {
        self.record(report, text::sigkill)
    }

    pub fn outcome(&mut self, report: &OutcomeReport) -> io::Result<()> {
        self.record(report, text::outcome)
    }

    pub fn pressure(&mut self, report: &PressureReport) -> io::Result<()> {
        self.record(report, text::pressure)
    }

    pub fn lost(&mut self, report: &LostReport) -> io::Result<()> {
        // A failing store would only count its own report as lost again.
        let stored = report.stage != LostStage::Store;
        self.record_to(report, text::lost, stored)
    }

    /// Calls `wake` (once, from whichever thread saw it) when the sink
    /// fails, so an idle event loop learns of it.
    pub fn on_failure(&self, wake: impl Fn() + Send + Sync + 'static) {
        let _ = self.queue.on_failure.set(Box::new(wake));
    }

    /// The sink's failure, once it has failed; then every call returns it.
    pub fn failure(&self) -> Option<io::Error> {
        self.queue.lock().failed.map(io::Error::from)
    }

    /// Records the queue refused since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.queue.lock().dropped)
    }

    fn record<R: serde::Serialize>(
        &mut self,
        report: &R,
        as_text: fn(&mut dyn Write, &R) -> io::Result<()>,
    ) -> io::Result<()> {
        self.record_to(report, as_text, true)
    }

    fn record_to<R: serde::Serialize>(
        &mut self,
        report: &R,
        as_text: fn(&mut dyn Write, &R) -> io::Result<()>,
        stored: bool,
    ) -> io::Result<()> {
        // A kill's line is 2-4 KB: one allocation, no regrowth.
        let mut bytes = Vec::with_capacity(4096);
        match self.format {
            Format::Json => {
                serde_json::to_writer(&mut bytes, report).map_err(io::Error::other)?;
                bytes.push(b'\n');
            }
            Format::Text => as_text(&mut bytes, report)?,
        }
        // The store keeps the exact line the stream writes as JSON.
        let for_store = match (stored, &self.store, self.format) {
            (false, _, _) | (_, None, _) => None,
            (true, Some(_), Format::Json) => Some(bytes.clone()),
            (true, Some(_), Format::Text) => {
                Some(serde_json::to_vec(report).map_err(io::Error::other)?)
            }
        };
        let mut state = self.queue.lock();
        if let Some(kind) = state.failed {
            return Err(kind.into());
        }
        // The writer thread is idle and holds nothing older: this write
        // cannot pass one of its records.
        if let Some(pipe) = self.pipe.as_mut().filter(|pipe| {
            state.records.is_empty() && !state.writing && fits_empty_pipe(pipe, bytes.len())
        }) {
            if let Err(error) = pipe.write_all(&bytes) {
                state.failed = Some(error.kind());
                drop(state);
                self.queue.failed();
                return Err(error);
            }
        } else if state.bytes + bytes.len() > QUEUE_BYTES {
            state.dropped += 1;
        } else {
            state.bytes += bytes.len();
            state.records.push_back(bytes);
            self.queue.queued.notify_one();
        }
        drop(state);
        // After the stream's queue: the stream stays the first path. A
        // stuck reader does not cost the store its copy.
        if let (Some(store), Some(line)) = (&self.store, for_store) {
            store.send(line);
        }
        Ok(())
    }

    /// Waits for everything queued to be written, at most [`FINISH_WAIT`];
    /// what a stuck reader did not take by then is counted on stderr.
    pub fn finish(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + FINISH_WAIT;
        if let Some(store) = &mut self.store {
            store.finish(FINISH_WAIT);
        }
        let mut state = self.queue.lock();
        state.closing = true;
        self.queue.queued.notify_one();
        while (!state.records.is_empty() || state.writing) && state.failed.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .queue
                .drained
                .wait_timeout(state, left)
                .map_or_else(|poisoned| poisoned.into_inner().0, |(state, _)| state);
        }
        if let Some(kind) = state.failed {
            return Err(kind.into());
        }
        let unwritten = state.records.len() as u64 + state.dropped;
        if unwritten > 0 {
            eprintln!(
                "oomtrace: warning: {unwritten} records not written: the output did not take them"
            );
            // The writer may be blocked in write(); exiting ends it.
            return Ok(());
        }
        drop(state);
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        Ok(())
    }
}

impl Drop for Output {
    /// Lets the writer thread end once the queue is empty.
    fn drop(&mut self) {
        self.queue.lock().closing = true;
        self.queue.queued.notify_one();
    }
}

/// Whether `len` bytes can be written to `pipe` without blocking: the pipe
/// is empty (its reader took everything) and holds that much. Another
/// process writing to the same pipe in between could still make the write
/// wait for the reader.
fn fits_empty_pipe(pipe: &File, len: usize) -> bool {
    let fd = pipe.as_raw_fd();
    let mut unread: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int to the pointer, which is valid.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut unread) };
    if rc != 0 || unread != 0 {
        return false;
    }
    // An empty pipe holds at least a page, however small it was made: a
    // write of up to PIPE_BUF bytes (a kill's line, most often) fits
    // without asking its size.
    if len <= libc::PIPE_BUF {
        return true;
    }
    // SAFETY: F_GETPIPE_SZ takes no argument and only returns a size.
    let size = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
    usize::try_from(size).is_ok_and(|size| len <= size)
}

/// The writer thread: one write and one flush per record.
fn write_loop(queue: &Queue, mut sink: Box<dyn Write + Send>) {
    loop {
        let record = {
            let mut state = queue.lock();
            loop {
                if let Some(record) = state.records.pop_front() {
                    state.bytes -= record.len();
                    state.writing = true;
                    break record;
                }
                state.writing = false;
                queue.drained.notify_all();
                if state.closing {
                    return;
                }
                state = queue
                    .queued
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        };
        // One write per record, so concurrent appenders never interleave
        // inside a line.
        if let Err(error) = sink.write_all(&record).and_then(|()| sink.flush()) {
            let mut state = queue.lock();
            state.failed = Some(error.kind());
            state.writing = false;
            state.records.clear();
            state.bytes = 0;
            queue.drained.notify_all();
            drop(state);
            queue.failed();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// A writer the test can read back, counting flushes.
    #[derive(Clone, Default)]
    struct Shared {
        bytes: Arc<Mutex<Vec<u8>>>,
        flushes: Arc<Mutex<usize>>,
    }

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if let Ok(mut bytes) = self.bytes.lock() {
                bytes.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            if let Ok(mut flushes) = self.flushes.lock() {
                *flushes += 1;
            }
            Ok(())
        }
    }

    fn lost_at(time: &str, n: u64, stage: crate::report::LostStage) -> LostReport {
        LostReport {
            envelope: crate::report::Envelope::new(
                crate::report::RecordType::Lost,
                time.into(),
                1,
                "h".into(),
            ),
            count: n,
            stage,
        }
    }

    fn lost(n: u64) -> LostReport {
        lost_at(
            "2026-11-26T10:50:07.123456Z",
            n,
            crate::report::LostStage::Output,
        )
    }

    #[test]
    fn json_records_are_single_lines_each_flushed() {
        let shared = Shared::default();
        let mut output = Output::to_writer(Format::Json, Box::new(shared.clone())).expect("starts");
        output.lost(&lost(1)).expect("queues");
        output
            .lost(&lost_at("b\nc", 2, crate::report::LostStage::RingBuffer))
            .expect("queues");
        output.finish().expect("writes");
        let bytes = shared.bytes.lock().map(|b| b.clone()).unwrap_or_default();
        let text = String::from_utf8(bytes).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        for line in lines {
            serde_json::from_str::<serde_json::Value>(line).expect("each line is JSON");
        }
        assert_eq!(shared.flushes.lock().map(|f| *f).unwrap_or(0), 2);
    }

    #[test]
    fn a_closed_reader_surfaces_as_broken_pipe() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut output = Output::to_writer(Format::Text, Box::new(Closed)).expect("starts");
        output
            .lost(&lost(1))
            .expect("queued before the writer finds out");
        let error = output.finish().expect_err("fails");
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
        let error = output.lost(&lost(2)).expect_err("and stays failed");
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn a_stuck_reader_costs_a_bounded_queue_then_counted_drops() {
        /// Blocks every write until the test lets it go.
        struct Stuck(mpsc::Receiver<()>);
        impl Write for Stuck {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let _ = self.0.recv();
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (release, stuck) = mpsc::channel();
        let mut output = Output::to_writer(Format::Json, Box::new(Stuck(stuck))).expect("starts");
        let line = serde_json::to_vec(&lost(1)).map_or(0, |l| l.len() + 1);
        let fits = QUEUE_BYTES / line;
        let offered = fits + 1000;
        for _ in 0..offered {
            output.lost(&lost(1)).expect("never blocks, never fails");
        }
        let state_bytes = output.queue.lock().bytes;
        assert!(state_bytes <= QUEUE_BYTES, "{state_bytes}");
        // One record may already sit in the blocked write().
        let dropped = output.take_dropped();
        assert!(
            (999..=1000).contains(&dropped),
            "{dropped} of {offered} dropped, {fits} fit"
        );
        assert_eq!(output.take_dropped(), 0, "reported once");
        drop(release);
    }

    fn unread(pipe: &File) -> libc::c_int {
        let mut unread: libc::c_int = -1;
        // SAFETY: FIONREAD writes one c_int to the pointer, which is valid.
        unsafe { libc::ioctl(pipe.as_raw_fd(), libc::FIONREAD, &mut unread) };
        unread
    }

    #[test]
    fn an_empty_pipe_is_written_at_once_a_full_one_through_the_queue_in_order() {
        use std::io::Read as _;
        let (mut reader, writer) = io::pipe().expect("a pipe");
        let writer = File::from(std::os::fd::OwnedFd::from(writer));
        let probe = writer.try_clone().expect("dup");
        let sink = writer.try_clone().expect("dup");
        let mut output = Output::to_writer(Format::Json, Box::new(sink)).expect("starts");
        output.pipe = Some(writer);
        output.lost(&lost(0)).expect("written");
        assert!(unread(&probe) > 0, "in the pipe when the call returns");
        // Nobody reads: 2,000 records (far more than a pipe holds) queue up
        // behind the first without blocking the caller.
        let records = 2000;
        let (done, finished) = mpsc::channel();
        thread::spawn(move || {
            for n in 1..records {
                output.lost(&lost(n)).expect("never blocks");
            }
            let _ = done.send(output);
        });
        let mut output = finished
            .recv_timeout(Duration::from_secs(20))
            .expect("the caller never waited for the reader");
        drop(probe);
        let reading = thread::spawn(move || {
            let mut text = String::new();
            reader.read_to_string(&mut text).map(|_| text)
        });
        output.finish().expect("writes");
        drop(output);
        let text = reading.join().expect("reads").expect("reads");
        let counts: Vec<u64> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["count"].as_u64())
            .collect();
        assert_eq!(counts, (0..records).collect::<Vec<_>>());
    }
}
