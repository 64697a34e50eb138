//! Every QUIC connection of the daemon, bounded together.
//!
//! Per-source limits do not bound the whole: over Yggdrasil a source is a node key, and keys
//! are free. So all QUIC connections (plain UDP and Yggdrasil) share one table of at most
//! [`Limits::max_connections`](crate::limits::Limits::max_connections) places, counted from
//! the first packet (before the handshake). When the table is full, a new connection takes
//! the place of the oldest connection that carries no member's session: that connection is
//! closed. A connection carrying a member's session (the hub says so through the session's
//! [`MemberHook`]) is never pushed out, so strangers filling the table cannot lock out an
//! established member; only when every place holds a member's connection is a newcomer
//! refused. The ygg_stream transport has the same rule in its own stack.

use crate::peer::MemberHook;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// The shared table.
#[derive(Debug)]
pub struct Connections {
    max: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    /// By arrival: the first entry is the oldest.
    entries: BTreeMap<u64, Entry>,
}

#[derive(Debug)]
struct Entry {
    /// Member sessions the connection carries now.
    members: usize,
    evict: CancellationToken,
}

impl Connections {
    /// A table of at most `max` connections.
    pub fn new(max: usize) -> Arc<Connections> {
        Arc::new(Connections {
            max,
            inner: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections in the table.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A place for a new connection, pushing out the oldest connection without a member's
    /// session when the table is full (its [`Place::evicted`] fires); `None` when every
    /// place holds a member's connection. Returns also whether one was pushed out.
    pub fn admit(self: &Arc<Self>) -> Option<(Place, bool)> {
        let mut inner = self.lock();
        let mut evicted = false;
        if inner.entries.len() >= self.max {
            let oldest = inner
                .entries
                .iter()
                .find(|(_, e)| e.members == 0)
                .map(|(id, _)| *id)?;
            if let Some(e) = inner.entries.remove(&oldest) {
                e.evict.cancel();
            }
            evicted = true;
        }
        let id = inner.next;
        inner.next += 1;
        let evict = CancellationToken::new();
        inner.entries.insert(
            id,
            Entry {
                members: 0,
                evict: evict.clone(),
            },
        );
        Some((
            Place {
                table: self.clone(),
                id,
                evicted: evict,
            },
            evicted,
        ))
    }

    fn member(&self, id: u64, member: bool) {
        if let Some(e) = self.lock().entries.get_mut(&id) {
            e.members = if member {
                e.members + 1
            } else {
                e.members.saturating_sub(1)
            };
        }
    }
}

/// A connection's place in the table, given back when dropped.
#[derive(Debug)]
pub struct Place {
    table: Arc<Connections>,
    id: u64,
    /// Fires when a newcomer has taken this place: close the connection.
    pub evicted: CancellationToken,
}

impl Place {
    /// The hook the connection's sessions carry: the hub calls it when a session becomes a
    /// member's (`true`) or stops being one (`false`).
    pub fn member_hook(&self) -> MemberHook {
        let (table, id) = (self.table.clone(), self.id);
        MemberHook(Arc::new(move |member| table.member(id, member)))
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.table.lock().entries.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At the cap the oldest connection without a member's session gives way; members'
    /// connections never do; when all are members', a newcomer is refused. Places come back
    /// when dropped, and a session that stops being a member's makes its connection
    /// evictable again.
    #[test]
    fn the_oldest_stranger_gives_way_never_a_member() {
        let t = Connections::new(3);
        let (a, _) = t.admit().unwrap();
        let (b, _) = t.admit().unwrap();
        let (c, out) = t.admit().unwrap();
        assert!(!out);
        let hook = a.member_hook();
        (hook.0)(true);
        let (d, out) = t.admit().unwrap();
        assert!(out);
        assert!(!a.evicted.is_cancelled(), "a member's connection stays");
        assert!(b.evicted.is_cancelled(), "the oldest stranger gives way");
        assert!(!c.evicted.is_cancelled());
        assert_eq!(t.len(), 3);
        (c.member_hook().0)(true);
        (d.member_hook().0)(true);
        assert!(t.admit().is_none(), "every place is a member's");
        // The member's session ends: its connection may give way again.
        (hook.0)(false);
        let (e, out) = t.admit().unwrap();
        assert!(out && a.evicted.is_cancelled());
        drop((a, b, c, d, e));
        assert!(t.is_empty());
    }
}
