//! The wall clock the daemon stamps messages, invites, bans and `last_seen` with (Unix
//! seconds), injected through the server's shared state (`Server::clock`) instead of read inline, so that tests
//! can set and advance it (invite expiry, member-info times) without waiting. The daemon
//! always runs on the system clock; durations measured inside a process (nonce lifetimes,
//! rate buckets, timeouts) use tokio's monotonic clock, which tests pause and advance.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A source of Unix time in seconds: the system clock, or a manual one for tests.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that stands at `start` until [`Clock::advance`] moves it.
    pub fn manual(start: i64) -> Clock {
        Clock {
            manual: Some(Arc::new(AtomicI64::new(start))),
        }
    }

    /// Now, in Unix seconds.
    pub fn now_secs(&self) -> i64 {
        match &self.manual {
            Some(t) => t.load(Ordering::Relaxed),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
        }
    }

    /// Moves a manual clock forward by `secs`; the system clock cannot be moved.
    pub fn advance(&self, secs: i64) {
        match &self.manual {
            Some(t) => {
                t.fetch_add(secs, Ordering::Relaxed);
            }
            None => debug_assert!(false, "the system clock cannot be advanced"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clocks_move_only_when_told_and_system_clocks_follow_the_system() {
        let c = Clock::manual(1_000);
        let shared = c.clone();
        assert_eq!(c.now_secs(), 1_000);
        shared.advance(60);
        assert_eq!(c.now_secs(), 1_060);
        let s = Clock::system().now_secs();
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((s - wall).abs() <= 1 && s > 1_700_000_000);
    }
}
