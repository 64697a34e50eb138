//! How the writer is doing, for `mediatorctl health`: the writer thread stamps its progress
//! (taking a batch, finishing a commit) and whether it is inside a batch; the queue's depth
//! comes from the job channel. A writer that is busy or has jobs waiting and has made no
//! progress for a while is stalled (a dead disk, a lock held by another process).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The writer's progress stamps, shared between the writer thread and readers of the state.
#[derive(Debug)]
pub struct WriterGauge {
    epoch: Instant,
    /// Milliseconds after `epoch` of the last progress.
    progress_ms: AtomicU64,
    busy: AtomicBool,
}

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
