//! What an operator acts on when the daemon is under attack: every failed AUTH and every
//! limit hit is counted (shown by `mediatorctl status`) and logged with its source (the IP
//! address or the Yggdrasil node key), at most [`LOG_BURST`] lines at once and
//! [`LOG_PER_SEC`] per second on average, so that logging is not itself the attack. Lines
//! left out are counted and the next line says how many.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Log lines allowed in one burst.
pub const LOG_BURST: f64 = 50.0;
/// Log lines allowed per second on average.
pub const LOG_PER_SEC: f64 = 10.0;

/// Kinds of events, each with a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// AUTH with an unknown nonce or a signature that does not verify.
    AuthFailed,
    /// A session refused at opening: a per-source or global session cap.
    SessionRefused,
    /// A session closed because another one needed its place at the global cap.
    SessionEvicted,
    /// A QUIC connection refused by the per-source connection cap.
    ConnectionRefused,
    /// A session closed for not authenticating in time.
    AuthTimeout,
    /// A request whose header claims more than its command may carry.
    PayloadTooLarge,
    /// An upload or a client's reading that stopped making progress.
    Stalled,
    /// A session disconnected as a slow consumer (queue bytes or frames).
    SlowConsumer,
    /// GET_NONCE refused: too many outstanding nonces.
    NonceRefused,
    /// A request over its rate (`crate::ratelimit`).
    RateLimited,
}

impl Event {
    pub const ALL: [Event; 10] = [
        Event::AuthFailed,
        Event::SessionRefused,
        Event::SessionEvicted,
        Event::ConnectionRefused,
        Event::AuthTimeout,
        Event::PayloadTooLarge,
        Event::Stalled,
        Event::SlowConsumer,
        Event::NonceRefused,
        Event::RateLimited,
    ];

    /// The counter's name in logs and in `mediatorctl status`.
    pub fn name(self) -> &'static str {
        match self {
            Event::AuthFailed => "auth_failed",
            Event::SessionRefused => "session_refused",
            Event::SessionEvicted => "session_evicted",
            Event::ConnectionRefused => "connection_refused",
            Event::AuthTimeout => "auth_timeout",
            Event::PayloadTooLarge => "payload_too_large",
            Event::Stalled => "stalled",
            Event::SlowConsumer => "slow_consumer",
            Event::NonceRefused => "nonce_refused",
            Event::RateLimited => "rate_limited",
        }
    }
}

static COUNTS: [AtomicU64; Event::ALL.len()] = [const { AtomicU64::new(0) }; Event::ALL.len()];

struct LogBucket {
    tokens: f64,
    last: Option<Instant>,
    suppressed: u64,
}

static BUCKET: Mutex<LogBucket> = Mutex::new(LogBucket {
    tokens: LOG_BURST,
    last: None,
    suppressed: 0,
});

/// Whether a line may be logged now; if so, how many were left out before it.
fn may_log() -> Option<u64> {
    let mut b = BUCKET.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    if let Some(last) = b.last {
        b.tokens = (b.tokens + now.duration_since(last).as_secs_f64() * LOG_PER_SEC).min(LOG_BURST);
    }
    b.last = Some(now);
    if b.tokens >= 1.0 {
        b.tokens -= 1.0;
        Some(std::mem::take(&mut b.suppressed))
    } else {
        b.suppressed += 1;
        None
    }
}

/// Counts an event and logs it (rate-limited) with its source and a detail.
pub fn note(event: Event, source: &str, detail: &str) {
    COUNTS[event as usize].fetch_add(1, Ordering::Relaxed);
    if let Some(suppressed) = may_log() {
        tracing::warn!(
            event = event.name(),
            source,
            detail,
            suppressed,
            "limit or authentication failure"
        );
    }
}

/// Every counter with its name, in [`Event::ALL`] order.
pub fn counters() -> Vec<(&'static str, u64)> {
    Event::ALL
        .iter()
        .map(|e| (e.name(), COUNTS[*e as usize].load(Ordering::Relaxed)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_event_and_logs_at_most_a_burst() {
        let before = counters();
        let mut logged = 0;
        for _ in 0..1000 {
            if may_log().is_some() {
                logged += 1;
            }
        }
        assert!(logged <= LOG_BURST as usize + 2, "{logged}");
        note(Event::Stalled, "1.2.3.4", "test");
        let after = counters();
        let i = Event::Stalled as usize;
        assert_eq!(after[i].1, before[i].1 + 1);
        assert_eq!(after[i].0, "stalled");
    }
}
