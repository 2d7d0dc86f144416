//! The store's writer thread: records arrive through a bounded queue and
//! are committed in small batches, so a slow or failing disk never holds
//! up the event loop or the stream.
//!
//! Crash window: a record is committed as soon as the thread is free,
//! together with whatever queued behind it (at most [`BATCH`]). A SIGKILL
//! loses at most the records queued and not committed: [`QUEUE_RECORDS`]
//! (1024) plus one batch in flight (256), in practice the records of the last commit
//! (a few ms). Nothing committed is lost to a crash of oomtrace.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError},
    },
    thread,
    time::{Duration, Instant},
};

use super::{Retention, Store, samples::FULL_RESOLUTION_MS};
use crate::{enrich::cgroup::MemoryHierarchy, trend::sampler::Sampler};

/// `--trend-interval`: the writer thread also samples every limited
/// memory cgroup this often (its only wakeup while no record arrives).
pub struct TrendSampling {
    pub hierarchy: MemoryHierarchy,
    pub interval: Duration,
}

/// How often samples past full resolution are thinned.
const DOWNSAMPLE_EVERY: Duration = Duration::from_secs(3600);

/// Records waiting for the writer; beyond it they are counted as lost.
pub const QUEUE_RECORDS: usize = 1024;
/// Records committed per transaction at most.
pub const BATCH: usize = 256;

/// The stream's handle on the writer thread.
pub struct Writer {
    queue: Option<SyncSender<Vec<u8>>>,
    /// Records not stored: refused by a full queue or a failed commit.
    lost: Arc<AtomicU64>,
    /// Closed when the thread has committed everything and ended.
    done: Receiver<()>,
}

impl Writer {
    /// Starts the thread, which opens (or creates) the database at `path`.
    /// A store that cannot be opened is reported on stderr by the thread
    /// and every record then counts as lost: the stream does not wait.
    pub fn start(
        path: PathBuf,
        retention: Retention,
        trend: Option<TrendSampling>,
    ) -> std::io::Result<Writer> {
        let (queue, records) = mpsc::sync_channel(QUEUE_RECORDS);
        let (done_tx, done) = mpsc::channel::<()>();
        let lost = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&lost);
        thread::Builder::new()
            .name("oomtrace-store".into())
            .spawn(move || {
                write_loop(&path, retention, trend, &records, &counter);
                drop(done_tx);
            })?;
        Ok(Writer {
            queue: Some(queue),
            lost,
            done,
        })
    }

    /// Hands a JSON line to the writer; never blocks.
    pub fn send(&self, line: Vec<u8>) {
        let Some(queue) = &self.queue else { return };
        match queue.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records not stored since the last call.
    pub fn take_lost(&self) -> u64 {
        self.lost.swap(0, Ordering::Relaxed)
    }

    /// Lets the thread commit what is queued and end; waits at most `wait`.
    pub fn finish(&mut self, wait: Duration) {
        self.queue = None;
        match self.done.recv_timeout(wait) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {}
            Err(RecvTimeoutError::Timeout) => {
                eprintln!("oomtrace: warning: the store did not finish writing within {wait:?}")
            }
        }
    }
}

/// Says once per run that the store failed; the stream goes on.
struct Complaint {
    path: PathBuf,
    said: bool,
}

impl Complaint {
    fn once(&mut self, what: &str, error: &dyn std::fmt::Display) {
        if !self.said {
            self.said = true;
            eprintln!(
                "oomtrace: warning: store {}: {what}: {error}; records still go to the output, \
                 those not stored are counted as `lost` (stage `store`)",
                self.path.display()
            );
        }
    }
}

fn write_loop(
    path: &Path,
    retention: Retention,
    trend: Option<TrendSampling>,
    records: &Receiver<Vec<u8>>,
    lost: &AtomicU64,
) {
    let mut complaint = Complaint {
        path: path.to_path_buf(),
        said: false,
    };
    let mut store = match Store::open(path) {
        Ok(store) => Some(store),
        Err(error) => {
            complaint.once("cannot open it", &error);
            None
        }
    };
    if let Some(store) = &mut store
        && let Err(error) = store.enforce(retention, super::now_ns())
    {
        complaint.once("cannot apply retention", &error);
    }
    let mut sampling = trend.map(|t| Sampling {
        sampler: Sampler::new(t.hierarchy),
        interval: t.interval,
        next: Instant::now(),
        next_downsample: Instant::now(),
        downsampled_to_ms: 0,
    });
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        // Blocks without waking while nothing arrives (but for the next
        // sample); ends when the stream drops its handle and the queue is
        // empty.
        let first = match &sampling {
            Some(s) => match records.recv_timeout(s.next.saturating_duration_since(Instant::now()))
            {
                Ok(line) => Some(line),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match records.recv() {
                Ok(line) => Some(line),
                Err(_) => break,
            },
        };
        if let (Some(s), Some(store)) = (&mut sampling, &mut store)
            && Instant::now() >= s.next
        {
            s.sample(store, &mut complaint);
        }
        let Some(first) = first else { continue };
        batch.push(first);
        while batch.len() < BATCH {
            match records.try_recv() {
                Ok(line) => batch.push(line),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let Some(store) = &mut store else {
            lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
            batch.clear();
            continue;
        };
        match store.insert(&batch) {
            Ok(_) => {
                if let Err(error) = store.enforce(retention, super::now_ns()) {
                    complaint.once("cannot apply retention", &error);
                }
            }
            Err(error) => {
                lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
                complaint.once("cannot write", &error);
                // A full disk: dropping the oldest may make room for the
                // next batch.
                let _ = store.enforce(retention, super::now_ns());
            }
        }
        batch.clear();
    }
}

/// The trend sampler's schedule, on the writer thread.
struct Sampling {
    sampler: Sampler,
    interval: Duration,
    next: Instant,
    next_downsample: Instant,
    /// Samples before this (wall ms) are thinned already.
    downsampled_to_ms: i64,
}

impl Sampling {
    fn sample(&mut self, store: &mut Store, complaint: &mut Complaint) {
        let now_ms = super::now_ns() / 1_000_000;
        let samples = self.sampler.tick(now_ms);
        if !samples.is_empty()
            && let Err(error) = store.insert_samples(&samples)
        {
            complaint.once("cannot write usage samples", &error);
        }
        // Fixed steps from the first, not from now: a slow tick does not
        // drift the schedule; a missed one is not made up.
        let now = Instant::now();
        while self.next <= now {
            self.next += self.interval;
        }
        if now >= self.next_downsample {
            self.next_downsample = now + DOWNSAMPLE_EVERY;
            match store.downsample(self.downsampled_to_ms, now_ms) {
                Ok(_) => self.downsampled_to_ms = now_ms - FULL_RESOLUTION_MS,
                Err(error) => complaint.once("cannot thin usage samples", &error),
            }
        }
    }
}
