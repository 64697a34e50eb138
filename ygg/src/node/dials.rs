//! What each configured outbound peer's dialer last saw, for operators: consecutive failures,
//! the last error and when it happened, so a peer that is down can be listed with its
//! reason. A failure is logged at warn the first time in a row and then at most once per
//! [`DIAL_WARN_INTERVAL`] per peer (the redial backoff starts at one second, so warning at
//! every attempt would flood the log); the attempts in between are logged at debug.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, info, warn};

use super::lock;
use crate::uri::PeerUri;

/// Least time between two warnings about the same failing peer.
pub const DIAL_WARN_INTERVAL: Duration = Duration::from_secs(300);

/// A configured peer's dialing state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DialStatus {
    /// The peer's URI, without its password.
    pub uri: String,
    /// Failed attempts since the last link that came up.
    pub failures: u32,
    /// Why the last attempt failed, or why the last link ended.
    pub last_error: Option<String>,
    /// When that happened.
    pub last_error_at: Option<SystemTime>,
}

#[derive(Debug, Default)]
struct Entry {
    status: DialStatus,
    warned: Option<Instant>,
}

/// The dialing state of every configured peer, by URI.
#[derive(Debug, Default)]
pub(super) struct Dials {
    map: Mutex<HashMap<String, Entry>>,
}

impl Dials {
    /// An attempt to reach `uri` failed with `error`; the next one is in `retry_in`.
    pub(super) fn failed(&self, uri: &PeerUri, error: &str, retry_in: Duration) {
        let mut map = lock(&self.map);
        let e = map.entry(uri.to_string()).or_default();
        e.status.failures = e.status.failures.saturating_add(1);
        e.status.last_error = Some(error.to_string());
        e.status.last_error_at = Some(SystemTime::now());
        let due = e.warned.is_none_or(|t| t.elapsed() >= DIAL_WARN_INTERVAL);
        let (n, secs) = (e.status.failures, retry_in.as_secs());
        if e.status.failures == 1 || due {
            e.warned = Some(Instant::now());
            warn!("cannot reach yggdrasil peer {uri}: {error} (failed {n} times in a row; next attempt in {secs} s)");
        } else {
            debug!("dial {uri}: {error} (failed {n} times in a row; next attempt in {secs} s)");
        }
    }

    /// A link to `uri` came up and has now ended with `error`.
    pub(super) fn ended(&self, uri: &PeerUri, error: &str) {
        let mut map = lock(&self.map);
        let e = map.entry(uri.to_string()).or_default();
        e.status.failures = 0;
        e.warned = None;
        e.status.last_error = Some(format!("link ended: {error}"));
        e.status.last_error_at = Some(SystemTime::now());
        info!("link to yggdrasil peer {uri} ended: {error}");
    }

    /// `uri` is no longer configured.
    pub(super) fn remove(&self, uri: &PeerUri) {
        lock(&self.map).remove(&uri.to_string());
    }

    /// `uri`'s state (no failure yet when it has none).
    pub(super) fn status(&self, uri: &PeerUri) -> DialStatus {
        let key = uri.to_string();
        let known = lock(&self.map).get(&key).map(|e| e.status.clone());
        DialStatus {
            uri: key,
            ..known.unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_until_a_link_comes_up() {
        let d = Dials::default();
        let u: PeerUri = "tcp://127.0.0.1:1".parse().unwrap();
        assert_eq!(d.status(&u).failures, 0);
        d.failed(&u, "connection refused", Duration::from_secs(2));
        d.failed(&u, "connection refused", Duration::from_secs(4));
        let s = d.status(&u);
        assert_eq!(s.uri, "tcp://127.0.0.1:1");
        assert_eq!(s.failures, 2);
        assert_eq!(s.last_error.as_deref(), Some("connection refused"));
        assert!(s.last_error_at.is_some());
        d.ended(&u, "EOF");
        let s = d.status(&u);
        assert_eq!(s.failures, 0);
        assert_eq!(s.last_error.as_deref(), Some("link ended: EOF"));
        d.remove(&u);
        assert_eq!(d.status(&u).last_error, None);
    }
}
