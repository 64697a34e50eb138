//! Byte budgets shared by all sessions, with a fair share per source.
//!
//! Two budgets bound memory the daemon holds for clients: request payloads being read
//! ([`Limits::request_budget_bytes`](crate::limits::Limits::request_budget_bytes)) and
//! answers and pushes waiting to be written
//! ([`Limits::max_queued_bytes`](crate::limits::Limits::max_queued_bytes)). First come, first
//! served would let one source hold a whole budget (hundreds of stalled uploads, or sessions
//! that ask for large answers and never read) and make everyone else wait. So each source (an
//! IP address or /64 on UDP, a node key over Yggdrasil) may hold at most its share of a
//! budget: a grant takes its bytes from the source's share first, then from the whole. A
//! source past its share waits on itself; other sources still find the rest.
//!
//! Shares are created on first use and forgotten once no session of their source is left
//! (sessions hold them), so a flood of new sources leaves nothing behind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::{Semaphore, SemaphorePermit};

/// A budget of bytes for everyone, with a share per source.
#[derive(Debug)]
pub struct SharedBudget {
    total: Arc<Semaphore>,
    per_source: usize,
    sources: Mutex<Shares>,
}

#[derive(Debug, Default)]
struct Shares {
    map: HashMap<String, Weak<Share>>,
    /// Table size at which dead shares are swept next (twice the live count after a sweep),
    /// so sweeping costs O(1) per new share.
    sweep_at: usize,
}

/// One source's view of a [`SharedBudget`]; its sessions hold it, keeping the share alive.
#[derive(Debug, Clone)]
pub struct SourceBudget(Arc<Share>);

#[derive(Debug)]
struct Share {
    total: Arc<Semaphore>,
    mine: Semaphore,
    cap: usize,
}

/// Bytes granted from a source's share and from the whole; given back when dropped. Two
/// words, as it rides along with every budgeted frame in a session's queue.
#[derive(Debug)]
pub struct Grant {
    share: Arc<Share>,
    bytes: u32,
    /// Taken from the source's share too (not only from the whole).
    in_share: bool,
}

impl Grant {
    fn give_back(&self, n: u32) {
        if self.in_share {
            self.share.mine.add_permits(n as usize);
        }
        self.share.total.add_permits(n as usize);
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        self.give_back(self.bytes);
    }
}

/// Shares of fewer dead entries than this are not swept.
const SWEEP_FLOOR: usize = 1024;

impl SharedBudget {
    /// A budget of `total` bytes, of which one source may hold `per_source`.
    pub fn new(total: usize, per_source: usize) -> SharedBudget {
        SharedBudget {
            total: Arc::new(Semaphore::new(total)),
            per_source: per_source.min(total),
            sources: Mutex::new(Shares {
                map: HashMap::new(),
                sweep_at: SWEEP_FLOOR,
            }),
        }
    }

    /// The share of `source`, created on first use.
    pub fn for_source(&self, source: &str) -> SourceBudget {
        let mut s = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(share) = s.map.get(source).and_then(Weak::upgrade) {
            return SourceBudget(share);
        }
        let share = Arc::new(Share {
            total: self.total.clone(),
            mine: Semaphore::new(self.per_source),
            cap: self.per_source,
        });
        if s.map.len() >= s.sweep_at {
            s.map.retain(|_, w| w.strong_count() > 0);
            s.sweep_at = (2 * s.map.len()).max(SWEEP_FLOOR);
        }
        s.map.insert(source.to_string(), Arc::downgrade(&share));
        SourceBudget(share)
    }

    /// Bytes not granted to anyone.
    pub fn available(&self) -> usize {
        self.total.available_permits()
    }

    /// Sources with a live share (for tests and status).
    pub fn sources(&self) -> usize {
        let s = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        s.map.values().filter(|w| w.strong_count() > 0).count()
    }
}

impl SourceBudget {
    /// Clamps a request to what a grant can ever hold (a source's whole share), so that a
    /// request larger than the share waits for the share instead of forever.
    fn clamp(&self, bytes: usize) -> u32 {
        u32::try_from(bytes.min(self.0.cap)).unwrap_or(u32::MAX)
    }

    /// Both permits become one [`Grant`] (which gives them back when dropped).
    fn grant(&self, mine: SemaphorePermit<'_>, total: SemaphorePermit<'_>, n: u32) -> Grant {
        mine.forget();
        total.forget();
        Grant {
            share: self.0.clone(),
            bytes: n,
            in_share: true,
        }
    }

    /// Waits until `bytes` (at most the share) are free in this source's share and in the
    /// whole budget, and takes them. The share is taken first: a source past its share waits
    /// without holding anything of the whole.
    pub async fn acquire(&self, bytes: usize) -> Grant {
        let n = self.clamp(bytes);
        let share = &self.0;
        let mine = share.mine.acquire_many(n).await;
        let total = share.total.acquire_many(n).await;
        let (mine, total) = (mine.expect("never closed"), total.expect("never closed"));
        self.grant(mine, total, n)
    }

    /// Takes `bytes` now if both the share and the whole have them.
    pub fn try_acquire(&self, bytes: usize) -> Option<Grant> {
        let n = u32::try_from(bytes).ok()?;
        let mine = self.0.mine.try_acquire_many(n).ok()?;
        let total = self.0.total.try_acquire_many(n).ok()?;
        Some(self.grant(mine, total, n))
    }

    /// Takes `bytes` now from the whole only, if it has them: for what others send this
    /// source (pushes), which the source cannot inflate by asking.
    pub fn try_acquire_whole(&self, bytes: usize) -> Option<Grant> {
        let n = u32::try_from(bytes).ok()?;
        self.0.total.try_acquire_many(n).ok()?.forget();
        Some(Grant {
            share: self.0.clone(),
            bytes: n,
            in_share: false,
        })
    }

    /// Bytes of this source's share not granted.
    pub fn available(&self) -> usize {
        self.0.mine.available_permits()
    }
}

impl Grant {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes as usize
    }

    /// Gives back all but `keep` bytes.
    pub fn trim(&mut self, keep: usize) {
        let keep = u32::try_from(keep).unwrap_or(u32::MAX);
        if self.bytes > keep {
            self.give_back(self.bytes - keep);
            self.bytes = keep;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source past its share waits on itself; another source still gets the rest.
    #[tokio::test]
    async fn one_source_cannot_hold_the_whole_budget() {
        let b = SharedBudget::new(100, 40);
        let hog = b.for_source("hog");
        let g1 = hog.acquire(30).await;
        let second = hog.acquire(30);
        tokio::pin!(second);
        assert!(futures::poll!(second.as_mut()).is_pending());
        assert_eq!(
            b.available(),
            70,
            "a waiting source holds none of the whole"
        );
        let other = b.for_source("other");
        let g2 = other.try_acquire(40).expect("the rest is there for others");
        assert_eq!(b.available(), 30);
        drop(g1);
        let g3 = second.await;
        assert_eq!((g3.bytes(), b.available()), (30, 30));
        drop((g2, g3));
        assert_eq!(b.available(), 100);
    }

    /// Larger requests than the share are clamped to it, and trimming gives back both.
    #[tokio::test]
    async fn clamped_and_trimmed() {
        let b = SharedBudget::new(100, 40);
        let s = b.for_source("s");
        let mut g = s.acquire(1_000).await;
        assert_eq!(g.bytes(), 40);
        g.trim(10);
        assert_eq!((g.bytes(), s.available(), b.available()), (10, 30, 90));
        assert!(s.try_acquire(31).is_none());
        assert!(s.try_acquire(30).is_some());
        let whole = s
            .try_acquire_whole(50)
            .expect("the whole has room past the share");
        assert_eq!((s.available(), b.available()), (30, 40));
        drop(whole);
        assert_eq!((s.available(), b.available()), (30, 90));
    }

    /// A grant is two words, as it rides along with every budgeted frame.
    #[test]
    fn a_grant_is_two_words() {
        assert_eq!(std::mem::size_of::<Option<Grant>>(), 16);
    }

    /// Shares of sources with no session left are swept, so new sources leave nothing.
    #[test]
    fn dead_shares_are_forgotten() {
        let b = SharedBudget::new(100, 10);
        let keep = b.for_source("kept");
        for i in 0..10_000 {
            drop(b.for_source(&format!("s{i}")));
        }
        let table = b.sources.lock().unwrap().map.len();
        assert!(table <= 2 * SWEEP_FLOOR + 1, "{table}");
        assert_eq!(b.sources(), 1);
        let again = b.for_source("kept");
        assert!(Arc::ptr_eq(&keep.0, &again.0));
    }
}
