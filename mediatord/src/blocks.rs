//! The operator's server-wide blocks, in memory for the checks on every connection, AUTH
//! and CREATE_CHAT (the rows in `store::blocks` make them survive restarts). A block of a key
//! refuses its AUTH and CREATE_CHAT; a block of a source refuses its connections; both end
//! the live sessions they cover when set (see the control service). Timed blocks lapse by
//! themselves: a lapsed entry counts as absent and is dropped on the next look.

use crate::store::blocks::BlockRow;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// What a block covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An Ed25519 key, by its lowercase hex.
    Key,
    /// A source as connections count it: an IPv4 address, an IPv6 /64, a Yggdrasil node key.
    Source,
}

impl Kind {
    /// The name stored and shown (`key`, `source`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Key => "key",
            Kind::Source => "source",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "key" => Some(Kind::Key),
            "source" => Some(Kind::Source),
            _ => None,
        }
    }
}

/// The blocks in force: (kind, value) → lapse time in Unix seconds (`None`: until lifted).
#[derive(Debug, Default)]
pub struct Blocklist {
    map: Mutex<HashMap<(Kind, String), Option<i64>>>,
}

impl Blocklist {
    fn lock(&self) -> MutexGuard<'_, HashMap<(Kind, String), Option<i64>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the whole list with `rows` (at start).
    pub fn load(&self, rows: &[BlockRow]) {
        let mut m = self.lock();
        m.clear();
        for r in rows {
            if let Some(kind) = Kind::parse(&r.kind) {
                m.insert((kind, r.value.clone()), r.until);
            }
        }
    }

    pub fn set(&self, kind: Kind, value: &str, until: Option<i64>) {
        self.lock().insert((kind, value.to_string()), until);
    }

    pub fn lift(&self, kind: Kind, value: &str) {
        self.lock().remove(&(kind, value.to_string()));
    }

    /// Whether `value` is blocked at `now`. Cheap when nothing is blocked (one lock, one
    /// lookup).
    pub fn blocks(&self, kind: Kind, value: &str, now: i64) -> bool {
        let mut m = self.lock();
        if m.is_empty() {
            return false;
        }
        let k = (kind, value.to_string());
        match m.get(&k) {
            Some(None) => true,
            Some(Some(until)) if *until > now => true,
            Some(Some(_)) => {
                m.remove(&k);
                false
            }
            None => false,
        }
    }

    /// Whether the key `key` is blocked at `now`.
    pub fn blocks_key(&self, key: &[u8; 32], now: i64) -> bool {
        self.blocks(Kind::Key, &hex::encode(key), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_blocks_lapse_and_lifted_ones_go() {
        let b = Blocklist::default();
        let key = [7u8; 32];
        assert!(!b.blocks_key(&key, 0));
        b.set(Kind::Key, &hex::encode(key), Some(100));
        b.set(Kind::Source, "10.0.0.1", None);
        assert!(b.blocks_key(&key, 99));
        assert!(!b.blocks_key(&key, 100), "lapsed at its time");
        assert!(!b.blocks_key(&key, 50), "and dropped once lapsed");
        assert!(b.blocks(Kind::Source, "10.0.0.1", i64::MAX));
        assert!(!b.blocks(Kind::Key, "10.0.0.1", 0), "kinds are apart");
        b.lift(Kind::Source, "10.0.0.1");
        assert!(!b.blocks(Kind::Source, "10.0.0.1", 0));
    }
}
