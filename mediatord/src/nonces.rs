//! Nonces belong to the session that asked for them.
//!
//! The Go server keeps one nonce per key in the database, so anyone can overwrite anybody's
//! nonce (§11 S4), and a table bounded in total lets a flood of GET_NONCE evict a victim's
//! nonce while its phone is still doing CREATE_CHAT's proof of work. Here each session keeps
//! its own few outstanding nonces in memory: AUTH and CREATE_CHAT accept a nonce only on the
//! session that received it, within its TTL, and only that session's own newer nonces can
//! push it out. Nothing anyone else sends can invalidate it, GET_NONCE costs no database
//! write, and the number of nonces in the whole daemon is bounded by the sessions and by
//! [`Limits::max_nonces`](crate::limits::Limits::max_nonces) (past which GET_NONCE is
//! refused, never evicting). Real clients ask for the nonce on the session they then
//! authenticate or create the chat on (§12.1, §12.4).

use mediator_wire::PublicKey;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::time::{Duration, Instant};

/// One outstanding nonce.
#[derive(Debug, Clone)]
struct Issued {
    key: PublicKey,
    nonce: [u8; 32],
    at: Instant,
}

/// Why a nonce was not issued.
#[derive(Debug, PartialEq, Eq)]
pub enum NonceRefused {
    /// The daemon holds [`Limits::max_nonces`](crate::limits::Limits::max_nonces) already.
    TooMany,
}

/// A session's outstanding nonces, counted in a daemon-wide total.
#[derive(Debug)]
pub struct NonceBook {
    issued: Vec<Issued>,
    per_session: usize,
    ttl: Duration,
    max_total: usize,
    total: Arc<AtomicUsize>,
}

impl NonceBook {
    pub fn new(
        per_session: usize,
        ttl: Duration,
        max_total: usize,
        total: Arc<AtomicUsize>,
    ) -> Self {
        NonceBook {
            issued: Vec::new(),
            per_session,
            ttl,
            max_total,
            total,
        }
    }

    fn remove(&mut self, i: usize) {
        self.issued.swap_remove(i);
        self.total.fetch_sub(1, Ordering::Relaxed);
    }

    fn forget_expired(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.issued.len() {
            if now.duration_since(self.issued[i].at) > self.ttl {
                self.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Records `nonce` for `key`. When the session already holds its share, its own oldest
    /// nonce makes room; when the daemon holds its total, the nonce is refused.
    pub fn issue(&mut self, key: PublicKey, nonce: [u8; 32]) -> Result<(), NonceRefused> {
        let now = Instant::now();
        self.forget_expired(now);
        if self.issued.len() >= self.per_session {
            let oldest = (0..self.issued.len())
                .min_by_key(|i| self.issued[*i].at)
                .expect("not empty");
            self.remove(oldest);
        }
        let prev = self.total.fetch_add(1, Ordering::Relaxed);
        if prev >= self.max_total {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return Err(NonceRefused::TooMany);
        }
        self.issued.push(Issued {
            key,
            nonce,
            at: now,
        });
        Ok(())
    }

    fn find(&self, key: &PublicKey, nonce: &[u8; 32]) -> Option<usize> {
        let now = Instant::now();
        self.issued.iter().position(|n| {
            n.key == *key && n.nonce == *nonce && now.duration_since(n.at) <= self.ttl
        })
    }

    /// Whether `nonce` is outstanding for `key` on this session and within its TTL.
    pub fn valid(&self, key: &PublicKey, nonce: &[u8; 32]) -> bool {
        self.find(key, nonce).is_some()
    }

    /// Uses up `nonce` (after a successful AUTH or CREATE_CHAT).
    pub fn consume(&mut self, key: &PublicKey, nonce: &[u8; 32]) {
        if let Some(i) = self.find(key, nonce) {
            self.remove(i);
        }
    }
}

impl Drop for NonceBook {
    fn drop(&mut self) {
        self.total.fetch_sub(self.issued.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(per: usize, max: usize, total: &Arc<AtomicUsize>) -> NonceBook {
        NonceBook::new(per, Duration::from_secs(600), max, total.clone())
    }

    /// Another session's flood never touches this session's nonce; past the total, new
    /// nonces are refused rather than anyone's being evicted.
    #[tokio::test(start_paused = true)]
    async fn a_flood_elsewhere_never_evicts_and_the_total_refuses() {
        let total = Arc::new(AtomicUsize::new(0));
        let mut victim = book(8, 100, &total);
        victim.issue([1; 32], [9; 32]).unwrap();
        let mut floods = Vec::new();
        for i in 0..99u8 {
            let mut b = book(8, 100, &total);
            b.issue([i; 32], [i; 32]).unwrap();
            floods.push(b);
        }
        let mut extra = book(8, 100, &total);
        assert_eq!(extra.issue([2; 32], [2; 32]), Err(NonceRefused::TooMany));
        assert!(victim.valid(&[1; 32], &[9; 32]));
        drop(floods);
        assert_eq!(total.load(Ordering::Relaxed), 1);
        extra.issue([2; 32], [2; 32]).unwrap();
        victim.consume(&[1; 32], &[9; 32]);
        assert!(!victim.valid(&[1; 32], &[9; 32]));
        drop((victim, extra));
        assert_eq!(total.load(Ordering::Relaxed), 0);
    }

    /// A session's own ninth nonce replaces its oldest; nonces expire after the TTL.
    #[tokio::test(start_paused = true)]
    async fn own_oldest_makes_room_and_ttl_expires() {
        let total = Arc::new(AtomicUsize::new(0));
        let mut b = book(2, 100, &total);
        b.issue([1; 32], [1; 32]).unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        b.issue([1; 32], [2; 32]).unwrap();
        b.issue([1; 32], [3; 32]).unwrap();
        assert!(!b.valid(&[1; 32], &[1; 32]));
        assert!(b.valid(&[1; 32], &[2; 32]) && b.valid(&[1; 32], &[3; 32]));
        assert!(!b.valid(&[2; 32], &[2; 32]), "bound to its key");
        tokio::time::advance(Duration::from_secs(601)).await;
        assert!(!b.valid(&[1; 32], &[3; 32]));
        b.issue([1; 32], [4; 32]).unwrap();
        assert_eq!(total.load(Ordering::Relaxed), 1);
    }
}
