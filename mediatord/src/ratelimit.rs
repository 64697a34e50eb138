//! Token buckets per key and per source on the commands a flood would use: GET_NONCE and
//! failed AUTH per source, CREATE_CHAT per key and per source, and SEND_MESSAGE, SUBSCRIBE,
//! SEND_INVITE and UPDATE_MEMBER_INFO per key. A request over its rate gets ERR
//! "rate limited, slow down" (`WireError::RateLimited`) and changes nothing; the session is kept. Large request payloads are
//! also counted in bytes per source ([`RateLimiter::take_or_wait`]): there a request over the
//! rate first waits, and is refused only when its source is more than a burst behind.
//!
//! Each bucket holds up to `burst` tokens and regains `per_sec` a second; a request takes one.
//! The defaults ([`crate::limits::Limits`]) are far above what a real client does (a phone
//! that reconnects subscribes to every chat twice and answers one REQUEST_MEMBER_INFO per
//! chat at once, so those bursts are large) and bound what a flood gets per key and per
//! source. Keys are free, so the table of buckets is bounded too: a full bucket is the same
//! as none and is forgotten; past [`MAX_BUCKETS`] busy buckets, new subjects of a kind share
//! one overflow bucket of that kind rather than growing the table.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::time::Instant;

/// Busy buckets kept at once (about 100 bytes each); past it, new subjects share an overflow
/// bucket per kind.
pub const MAX_BUCKETS: usize = 200_000;

/// A rate: `burst` requests at once, `per_sec` a second after that.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: f64,
}

impl Rate {
    pub const fn new(per_sec: f64, burst: f64) -> Rate {
        Rate { per_sec, burst }
    }
}

/// What a bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    NonceBySource,
    FailedAuthBySource,
    CreateChatByKey,
    CreateChatBySource,
    SendMessageByKey,
    SubscribeByKey,
    SendInviteByKey,
    MemberInfoByKey,
    /// Bytes, not requests: large request payloads per source.
    UploadBytesBySource,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// When the bucket will be full again (and can be forgotten).
    full_at: Instant,
}

/// The buckets of one daemon.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<(Kind, String), Bucket>>,
}

impl RateLimiter {
    /// Whether the bucket of `subject` for `kind` is empty now (takes nothing).
    pub fn spent(&self, kind: Kind, subject: &str, rate: Rate) -> bool {
        let now = Instant::now();
        let map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(kind, subject.to_string())).is_some_and(|b| {
            let secs = now.duration_since(b.at).as_secs_f64();
            (b.tokens + secs * rate.per_sec).min(rate.burst) < 1.0
        })
    }

    /// Takes a token from the bucket of `subject` for `kind` at `rate`; false when empty.
    pub fn allow(&self, kind: Kind, subject: &str, rate: Rate) -> bool {
        self.take(kind, subject, rate, 1.0, 0.0).is_some()
    }

    /// Takes `cost` tokens from the bucket of `subject` for `kind` at `rate`, letting it go
    /// into debt of up to one burst, or `max_wait` of refill if that is less. Returns how long
    /// the caller waits for its tokens to be there (zero when they were), or `None` (nothing
    /// taken) when the debt would pass that. A subject's waiters queue up in order: each new
    /// one waits for all before it.
    pub fn take_or_wait(
        &self,
        kind: Kind,
        subject: &str,
        rate: Rate,
        cost: f64,
        max_wait: std::time::Duration,
    ) -> Option<std::time::Duration> {
        let debt = rate.burst.min(max_wait.as_secs_f64() * rate.per_sec);
        let left = self.take(kind, subject, rate, cost, debt)?;
        let secs = (-left).max(0.0) / rate.per_sec.max(f64::MIN_POSITIVE);
        Some(std::time::Duration::from_secs_f64(secs.min(1e9)))
    }

    /// Takes `cost` tokens however deep in debt that puts the bucket, and returns how long
    /// the caller waits for them: for bytes that arrive anyway and are dropped, so that they
    /// slow their source down as if they had been kept.
    pub fn charge(&self, kind: Kind, subject: &str, rate: Rate, cost: f64) -> std::time::Duration {
        let left = self
            .take(kind, subject, rate, cost, f64::INFINITY)
            .unwrap_or(0.0);
        let secs = (-left).max(0.0) / rate.per_sec.max(f64::MIN_POSITIVE);
        std::time::Duration::from_secs_f64(secs.min(1e9))
    }

    /// Takes `cost` tokens if that leaves at least `-debt`; returns the tokens left.
    fn take(&self, kind: Kind, subject: &str, rate: Rate, cost: f64, debt: f64) -> Option<f64> {
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = Bucket {
            tokens: rate.burst,
            at: now,
            full_at: now,
        };
        let take = |b: &mut Bucket| {
            let secs = now.duration_since(b.at).as_secs_f64();
            b.tokens = (b.tokens + secs * rate.per_sec).min(rate.burst);
            b.at = now;
            let ok = b.tokens - cost >= -debt;
            if ok {
                b.tokens -= cost;
            }
            let missing = (rate.burst - b.tokens) / rate.per_sec.max(f64::MIN_POSITIVE);
            b.full_at = now + std::time::Duration::from_secs_f64(missing.min(1e9));
            ok.then_some(b.tokens)
        };
        let key = (kind, subject.to_string());
        if !map.contains_key(&key) && map.len() >= MAX_BUCKETS {
            // Forget buckets that have refilled; if the table is still full, share.
            map.retain(|_, b| b.full_at > now);
            if map.len() >= MAX_BUCKETS {
                return take(map.entry((kind, String::new())).or_insert(fresh));
            }
        }
        take(map.entry(key).or_insert(fresh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A burst, then the rate; subjects and kinds have their own buckets.
    #[tokio::test(start_paused = true)]
    async fn burst_then_rate_per_subject() {
        let r = RateLimiter::default();
        let rate = Rate::new(2.0, 5.0);
        let n = (0..20)
            .filter(|_| r.allow(Kind::SendMessageByKey, "a", rate))
            .count();
        assert_eq!(n, 5);
        assert!(r.spent(Kind::SendMessageByKey, "a", rate));
        assert!(!r.spent(Kind::SendMessageByKey, "z", rate));
        assert!(r.allow(Kind::SendMessageByKey, "b", rate));
        assert!(r.allow(Kind::SubscribeByKey, "a", rate));
        tokio::time::advance(Duration::from_millis(1500)).await;
        let n = (0..20)
            .filter(|_| r.allow(Kind::SendMessageByKey, "a", rate))
            .count();
        assert_eq!(n, 3);
    }

    /// Byte costs go into debt of up to one burst, each waiter after the ones before it.
    #[tokio::test(start_paused = true)]
    async fn costs_wait_then_refuse() {
        let r = RateLimiter::default();
        let rate = Rate::new(100.0, 1000.0);
        let k = Kind::UploadBytesBySource;
        let max = Duration::from_secs(60);
        let take = |s: &str, cost: f64, max: Duration| r.take_or_wait(k, s, rate, cost, max);
        assert_eq!(take("s", 600.0, max), Some(Duration::ZERO));
        assert_eq!(take("s", 600.0, max), Some(Duration::from_secs(2)));
        assert_eq!(take("s", 600.0, max), Some(Duration::from_secs(8)));
        assert_eq!(take("s", 600.0, max), None, "past one burst of debt");
        assert_eq!(take("t", 1000.0, max), Some(Duration::ZERO));
        assert_eq!(
            take("t", 300.0, Duration::from_secs(2)),
            None,
            "past max_wait"
        );
        assert_eq!(
            take("t", 200.0, Duration::from_secs(2)),
            Some(Duration::from_secs(2))
        );
        tokio::time::advance(Duration::from_secs(8)).await;
        assert_eq!(take("s", 1.0, max), Some(Duration::from_millis(10)));
    }
}
