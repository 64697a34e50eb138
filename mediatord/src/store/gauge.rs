//! How the writer is doing, for `mediatorctl health` and the metrics: the writer thread
//! stamps its progress (taking a batch, finishing a commit) and whether it is inside a batch;
//! the queue's depth comes from the job channel. A writer that is busy or has jobs waiting
//! and has made no progress for a while is stalled (a dead disk, a lock held by another
//! process). Each batch's size, its time and its COMMIT's time (the WAL write and its fsync)
//! go into histograms the metrics endpoint exposes.

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The writer's progress stamps, shared between the writer thread and readers of the state.
#[derive(Debug)]
pub struct WriterGauge {
    epoch: Instant,
    /// Milliseconds after `epoch` of the last progress.
    progress_ms: AtomicU64,
    busy: AtomicBool,
    /// Commands per group commit.
    pub batch_jobs: Histogram,
    /// Seconds from a batch's BEGIN to the end of its COMMIT.
    pub batch_seconds: Histogram,
    /// Seconds of a batch's COMMIT alone: the WAL write and its fsync.
    pub commit_seconds: Histogram,
}

/// Smallest bucket of the batch-time and commit-time histograms, in seconds; each next
/// bucket is twice as large, [`TIME_BUCKETS`] buckets in all (50 µs to about 1.6 s).
pub const TIME_BUCKET_START: f64 = 50e-6;
/// Buckets of the time histograms.
pub const TIME_BUCKETS: u16 = 16;

/// A reading of the writer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterState {
    /// Jobs queued and not yet taken by the writer.
    pub queued: usize,
    /// Whether the writer is inside a batch now.
    pub busy: bool,
    /// Time since the writer last took a batch or finished a commit.
    pub since_progress: Duration,
}

impl WriterState {
    /// Whether work is waiting on a writer that has not moved for `limit`.
    pub fn stalled(&self, limit: Duration) -> bool {
        (self.busy || self.queued > 0) && self.since_progress > limit
    }
}

impl Default for WriterGauge {
    fn default() -> Self {
        WriterGauge {
            epoch: Instant::now(),
            progress_ms: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            // 1, 2, 4 … 1024 commands: up to MAX_GROUP_COMMIT.
            batch_jobs: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            batch_seconds: Histogram::new(exponential_buckets(
                TIME_BUCKET_START,
                2.0,
                TIME_BUCKETS,
            )),
            commit_seconds: Histogram::new(exponential_buckets(
                TIME_BUCKET_START,
                2.0,
                TIME_BUCKETS,
            )),
        }
    }
}

impl WriterGauge {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The writer took a batch's first job.
    pub fn batch_started(&self) {
        self.progress_ms.store(self.now_ms(), Relaxed);
        self.busy.store(true, Relaxed);
    }

    /// The writer finished a batch's commit (successful or not).
    pub fn batch_done(&self) {
        self.progress_ms.store(self.now_ms(), Relaxed);
        self.busy.store(false, Relaxed);
    }

    /// A committed batch of `jobs` commands that took `batch` in all, `commit` of it in COMMIT.
    pub fn batch_committed(&self, jobs: usize, batch: Duration, commit: Duration) {
        self.batch_jobs.observe(jobs as f64);
        self.batch_seconds.observe(batch.as_secs_f64());
        self.commit_seconds.observe(commit.as_secs_f64());
    }

    /// The state now, with `queued` jobs waiting in the channel.
    pub fn read(&self, queued: usize) -> WriterState {
        let since = self.now_ms().saturating_sub(self.progress_ms.load(Relaxed));
        WriterState {
            queued,
            busy: self.busy.load(Relaxed),
            since_progress: Duration::from_millis(since),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_writer_is_never_stalled() {
        let g = WriterGauge::default();
        std::thread::sleep(Duration::from_millis(30));
        let s = g.read(0);
        assert!(!s.busy);
        assert!(s.since_progress >= Duration::from_millis(30));
        assert!(!s.stalled(Duration::from_millis(10)));
        // Work waiting on a writer that has not moved: stalled.
        assert!(g.read(3).stalled(Duration::from_millis(10)));
    }

    #[test]
    fn a_busy_writer_is_stalled_only_past_the_limit() {
        let g = WriterGauge::default();
        g.batch_started();
        assert!(!g.read(0).stalled(Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(30));
        assert!(g.read(0).stalled(Duration::from_millis(10)));
        g.batch_done();
        assert!(!g.read(0).stalled(Duration::from_millis(10)));
    }
}
