//! Per-peer bloom filters (ironwood `network/bloomfilter.go`): for every
//! peer key, the filter we last sent it and the one it last sent us, and
//! whether the link to it is part of the spanning tree. The filter sent to
//! an on-tree peer is our own key's transform merged with what every
//! *other* on-tree peer sent us, so lookups flow only towards subtrees that
//! may hold their destination (see the pathfinder's multicast).
//!
//! Filters are re-sent when they change, and at least every
//! [`BLOOM_RESEND_TICKS`] maintenance ticks. Ironwood's "keep ones"
//! hysteresis is ported literally: a peer's outgoing filter keeps the bits
//! it already had; once that makes it differ from a fresh filter (a bit
//! would have been cleared), the next pass rebuilds it from scratch. A peer
//! that leaves the tree is sent an empty filter.

use std::collections::{HashMap, HashSet};

use super::pathfinder::short;
use super::{LinkId, Outbox, BLOOM_RESEND_TICKS};
use crate::address::bloom_transform;
use crate::bloom::Bloom;
use crate::proto::PeerMessage;
use crate::wire::PublicKey;

/// Bloom state for one peer key (ironwood `blooms.blooms[key]`).
#[derive(Debug, Clone, Default)]
struct BloomInfo {
    /// The filter last sent to the peer.
    send: Bloom,
    /// The filter the peer last sent us.
    recv: Bloom,
    /// Maintenance ticks since the filter was last sent.
    seq: u16,
    /// Whether the peer is our parent or our child.
    on_tree: bool,
    /// Whether keeping the old ones made the sent filter differ from a
    /// fresh one (the next pass then rebuilds it).
    z_dirty: bool,
}

/// The bloom filters of all peer keys.
#[derive(Debug)]
pub(super) struct Blooms {
    peers: HashMap<PublicKey, BloomInfo>,
    /// The bloom transform of our own key, always in every filter we send.
    self_xform: PublicKey,
}

impl Blooms {
    /// No peers yet; `self_key` is our own key.
    pub(super) fn new(self_key: &PublicKey) -> Self {
        Self {
            peers: HashMap::new(),
            self_xform: bloom_transform(self_key),
        }
    }

    /// Starts tracking a new peer key: empty filters, off the tree.
    pub(super) fn add_peer(&mut self, key: PublicKey) {
        self.peers.insert(key, BloomInfo::default());
    }

    /// Forgets a peer key (its last link closed).
    pub(super) fn remove_peer(&mut self, key: &PublicKey) {
        self.peers.remove(key);
    }

    /// The filter last sent to `key`, for a link that must catch up. `key`
    /// must be a tracked peer.
    pub(super) fn sent(&self, key: &PublicKey) -> Bloom {
        self.peers[key].send.clone()
    }

    /// Stores the filter `key` sent us (ignored for an unknown key).
    pub(super) fn set_received(&mut self, key: &PublicKey, bloom: Bloom) {
        if let Some(pbi) = self.peers.get_mut(key) {
            pbi.recv = bloom;
        }
    }

    /// Whether the link to `key` is part of the tree (parent or child).
    pub(super) fn is_on_tree(&self, key: &PublicKey) -> bool {
        self.peers.get(key).is_some_and(|b| b.on_tree)
    }

    /// The filter last received from `key`.
    pub(super) fn received(&self, key: &PublicKey) -> Option<&Bloom> {
        self.peers.get(key).map(|b| &b.recv)
    }

    /// Every peer key with its on-tree flag and the filter it sent us.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&PublicKey, bool, &Bloom)> {
        self.peers.iter().map(|(k, b)| (k, b.on_tree, &b.recv))
    }

    /// Updates every peer's on-tree flag from `on_tree`; a peer that just
    /// left the tree is sent an empty filter on each of its `links`.
    pub(super) fn fix_on_tree(
        &mut self,
        on_tree: impl Fn(&PublicKey) -> bool,
        links: &HashMap<PublicKey, HashSet<LinkId>>,
        out: &mut Outbox,
    ) {
        let keys: Vec<PublicKey> = self.peers.keys().copied().collect();
        for pk in keys {
            let on = on_tree(&pk);
            let Some(pbi) = self.peers.get_mut(&pk) else {
                continue;
            };
            let was_on = pbi.on_tree;
            pbi.on_tree = on;
            if was_on != on {
                tracing::trace!(peer = %short(&pk), on, "on-tree state changed");
            }
            if was_on && !on {
                // Off the tree: send an empty filter so a later return starts clean.
                pbi.send = Bloom::new();
                if let Some(links) = links.get(&pk) {
                    for &l in links {
                        out.push((l, PeerMessage::Bloom(Box::default())));
                    }
                }
            }
        }
    }

    /// The filter for `key` (ironwood `_getBloomFor`), and whether it differs
    /// from the one last sent.
    fn bloom_for(&mut self, key: &PublicKey, keep_ones: bool) -> (Bloom, bool) {
        let mut b = Bloom::new();
        b.add(&self.self_xform);
        for (k, pbi) in &self.peers {
            if pbi.on_tree && k != key {
                b.merge(&pbi.recv);
            }
        }
        // Work on a copy, and store it back only when the filter changed
        // (ironwood updates its map entry only in that branch).
        let Some(mut pbi) = self.peers.get(key).cloned() else {
            return (b, false);
        };
        if keep_ones {
            if !pbi.z_dirty {
                let c = b.clone();
                b.merge(&pbi.send);
                if b != c {
                    pbi.z_dirty = true;
                }
            } else {
                b.merge(&pbi.send);
            }
        } else {
            pbi.z_dirty = false;
        }
        if b == pbi.send {
            (pbi.send, false)
        } else {
            pbi.send = b.clone();
            self.peers.insert(*key, pbi);
            (b, true)
        }
    }

    /// The maintenance pass (ironwood `_sendAllBlooms`): sends each on-tree
    /// peer its filter on all its `links` when it changed or is due.
    pub(super) fn send_all(
        &mut self,
        links: &HashMap<PublicKey, HashSet<LinkId>>,
        out: &mut Outbox,
    ) {
        let keys: Vec<PublicKey> = self.peers.keys().copied().collect();
        for k in keys {
            let Some(pbi) = self.peers.get(&k) else {
                continue;
            };
            if !pbi.on_tree {
                continue;
            }
            let keep_ones = !pbi.z_dirty;
            let (b, is_new) = self.bloom_for(&k, keep_ones);
            let Some(pbi) = self.peers.get_mut(&k) else {
                continue;
            };
            pbi.seq += 1;
            if is_new || pbi.seq >= BLOOM_RESEND_TICKS {
                tracing::trace!(peer = %short(&k), "bloom sent");
                if let Some(links) = links.get(&k) {
                    for &l in links {
                        out.push((l, PeerMessage::Bloom(Box::new(b.clone()))));
                    }
                }
                pbi.seq = 0;
            }
        }
    }
}
