//! Path discovery and source-routed traffic (ironwood `network/pathfinder.go`
//! and the traffic half of `router.go`), as more methods on [`Router`].
//!
//! * A packet for a key with no known path becomes a *rumour*: the latest
//!   packet is cached per bloom-transformed key and a [`PathLookup`] is
//!   multicast along on-tree links whose received bloom matches, at most once
//!   per [`PATH_THROTTLE`].
//! * The node whose transformed key matches answers with a signed
//!   [`PathNotify`] routed greedily back toward the lookup's coordinates.
//! * The requester verifies it, stores the path (dropped after
//!   [`PATH_TIMEOUT`] unless traffic from that node keeps it alive) and
//!   flushes the cached packet.
//! * A router that cannot forward traffic answers with [`PathBroken`] toward
//!   the sender, which marks the path broken and looks it up again.
//!
//! * **Our addition**: while a rumour still holds a packet, the maintenance
//!   tick repeats its lookup once per [`PATH_THROTTLE`] (without extending
//!   the rumour's life). Ironwood only re-sends a lookup when new traffic for
//!   the destination arrives, so a lookup sent before the blooms converged
//!   (it reaches no peer) can leave the cached packet stranded for good
//!   when nothing new is written: an encrypted-session Ack, answering an
//!   Init that the remote then keeps repeating with the same seq (ignored
//!   as a duplicate), is exactly that case. Found by the soak test through
//!   the real daemon; the wire is unchanged.
//!
//! Go's per-entry `time.AfterFunc` timers become deadlines checked by
//! [`Router::poll_timers`]. Ironwood keeps no bound on its path and rumour
//! maps; we add [`MAX_PATHS`] and [`MAX_RUMORS`].

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{LinkId, Outbox, Router};
use crate::address::bloom_transform;
use crate::identity::Identity;
use crate::proto::{PathBroken, PathLookup, PathNotify, PathNotifyInfo, PeerMessage, Traffic};
use crate::wire::{PeerPort, PublicKey};

/// A stored path (and a rumour) is forgotten after this long without being
/// refreshed (`pathTimeout`).
pub const PATH_TIMEOUT: Duration = Duration::from_secs(60);
/// Minimum spacing of lookups for one destination (`pathThrottle`).
pub const PATH_THROTTLE: Duration = Duration::from_secs(1);
/// Most destinations with a stored path (our addition; ironwood is
/// unbounded). New notifies are ignored while the table is full.
pub const MAX_PATHS: usize = 8192;
/// Most outstanding rumours (our addition). Traffic to further unknown
/// destinations is dropped while the table is full.
pub const MAX_RUMORS: usize = 8192;

#[derive(Debug, Clone)]
pub(super) struct PathInfo {
    /// Destination coordinates.
    path: Vec<PeerPort>,
    seq: u64,
    /// When the entry was created (ironwood's `reqTime`, which throttles
    /// re-lookups of a known destination).
    req_time: Instant,
    expires: Instant,
    /// The last packet sent along this path, re-sent when a new path arrives.
    traffic: Option<Traffic>,
    broken: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Rumor {
    traffic: Option<Traffic>,
    send_time: Instant,
    expires: Instant,
}

/// Pathfinder state, owned by the [`Router`].
#[derive(Debug)]
pub(super) struct Pathfinder {
    /// Our last signed notify info (re-signed only when it changes).
    info: PathNotifyInfo,
    paths: HashMap<PublicKey, PathInfo>,
    /// Keyed by the bloom transform of the destination.
    rumors: HashMap<PublicKey, Rumor>,
    /// Wall-clock anchor: notify seqs are unix seconds, derived from the
    /// input clock so simulations that advance time behave like real ones.
    epoch: (Instant, u64),
}

/// A known path, for diagnostics (like `yggdrasilctl getPaths`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathEntry {
    /// Destination key.
    pub key: PublicKey,
    /// Destination coordinates.
    pub path: Vec<PeerPort>,
    /// The notify sequence number (the remote's unix seconds).
    pub seq: u64,
    /// Whether a PathBroken was received for it.
    pub broken: bool,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Pathfinder {
    pub(super) fn new(id: &Identity, now: Instant) -> Self {
        let mut info = PathNotifyInfo {
            seq: 0,
            path: Vec::new(),
            sig: [0; 64],
        };
        info.sign(id);
        Self {
            info,
            paths: HashMap::new(),
            rumors: HashMap::new(),
            epoch: (now, unix_now()),
        }
    }

    /// Unix seconds at `now`.
    fn unix_at(&self, now: Instant) -> u64 {
        self.epoch.1 + now.saturating_duration_since(self.epoch.0).as_secs()
    }

    pub(super) fn expire(&mut self, now: Instant) {
        self.paths.retain(|_, p| p.expires > now);
        self.rumors.retain(|_, r| r.expires > now);
    }

    pub(super) fn counts(&self) -> (usize, usize) {
        (self.paths.len(), self.rumors.len())
    }
}

impl Router {
    /// Starts a lookup for `dest` (ironwood `SendLookup`), creating a rumour.
    pub fn send_lookup(&mut self, now: Instant, dest: PublicKey, out: &mut Outbox) {
        self.poll_timers(now);
        self.rumor_send_lookup(now, dest, out);
    }

    /// Sends a new packet from us to `dest` (ironwood `sendTraffic`): along
    /// the stored path, or cached behind a lookup when none is known.
    pub fn send_traffic(
        &mut self,
        now: Instant,
        dest: PublicKey,
        payload: Vec<u8>,
        out: &mut Outbox,
    ) {
        self.poll_timers(now);
        let tr = Traffic {
            path: Vec::new(),
            from: Vec::new(),
            source: self.key,
            dest,
            watermark: u64::MAX,
            payload,
        };
        self.pf_handle_traffic(now, tr, out);
    }

    /// Packets addressed to us that arrived since the last call.
    pub fn take_delivered(&mut self) -> Vec<Traffic> {
        std::mem::take(&mut self.delivered)
    }

    /// Known paths.
    pub fn paths(&self) -> Vec<PathEntry> {
        let mut v: Vec<PathEntry> = self
            .pf
            .paths
            .iter()
            .map(|(k, p)| PathEntry {
                key: *k,
                path: p.path.clone(),
                seq: p.seq,
                broken: p.broken,
            })
            .collect();
        v.sort_by_key(|e| e.key);
        v
    }

    /// (stored paths, outstanding rumours).
    pub fn pathfinder_counts(&self) -> (usize, usize) {
        self.pf.counts()
    }

    fn send_lookup_inner(&mut self, now: Instant, dest: PublicKey, out: &mut Outbox) {
        if let Some(info) = self.pf.paths.get(&dest) {
            if now.saturating_duration_since(info.req_time) < PATH_THROTTLE {
                return;
            }
        }
        let (_, from) = self.root_and_path(&self.key);
        let lookup = PathLookup {
            source: self.key,
            dest,
            from,
        };
        let me = self.key;
        self.pf_handle_lookup(now, me, lookup, out);
    }

    /// A lookup received from `peer_key`'s link: only on-tree links count.
    pub(super) fn pf_handle_lookup_from_peer(
        &mut self,
        now: Instant,
        peer_key: PublicKey,
        lookup: PathLookup,
        out: &mut Outbox,
    ) {
        if !self.is_on_tree(&peer_key) {
            return;
        }
        self.pf_handle_lookup(now, peer_key, lookup, out);
    }

    fn pf_handle_lookup(
        &mut self,
        now: Instant,
        from_key: PublicKey,
        lookup: PathLookup,
        out: &mut Outbox,
    ) {
        tracing::trace!(
            "lookup {} -> {} from {}",
            short(&lookup.source),
            short(&lookup.dest),
            short(&from_key)
        );
        self.send_multicast(&lookup, &from_key, out);
        if bloom_transform(&lookup.dest) != self.self_xform {
            return;
        }
        let (_, path) = self.root_and_path(&self.key);
        let mut info = PathNotifyInfo {
            seq: self.pf.unix_at(now),
            path,
            sig: [0; 64],
        };
        if info.same_content(&self.pf.info) {
            info = self.pf.info.clone();
        } else {
            info.sign(&self.id);
            self.pf.info = info.clone();
        }
        tracing::trace!(
            "answering lookup from {} with seq {} path {:?} toward {:?}",
            short(&lookup.source),
            info.seq,
            info.path,
            lookup.from
        );
        let notify = PathNotify {
            path: lookup.from,
            watermark: u64::MAX,
            source: self.key,
            dest: lookup.source,
            info,
        };
        self.pf_handle_notify(now, notify, out);
    }

    /// Forwards a lookup to every on-tree peer except `from_key` whose
    /// received bloom may contain the destination, one link per peer (the
    /// lowest priority, then the oldest).
    fn send_multicast(&self, lookup: &PathLookup, from_key: &PublicKey, out: &mut Outbox) {
        let xform = bloom_transform(&lookup.dest);
        for (k, on_tree, recv) in self.blooms.iter() {
            if !on_tree || k == from_key || !recv.test(&xform) {
                tracing::trace!(
                    peer = %short(k),
                    on_tree,
                    from = k == from_key,
                    "lookup for {} not sent to this peer",
                    short(&lookup.dest)
                );
                continue;
            }
            tracing::trace!(peer = %short(k), "lookup {} -> {} forwarded", short(&lookup.source), short(&lookup.dest));
            let best = self.peers.get(k).and_then(|ls| {
                ls.iter()
                    .copied()
                    .min_by_key(|l| (self.links.get(l).map_or(u8::MAX, |s| s.prio), *l))
            });
            if let Some(l) = best {
                out.push((l, PeerMessage::PathLookup(lookup.clone())));
            }
        }
    }

    pub(super) fn pf_handle_notify(
        &mut self,
        now: Instant,
        mut notify: PathNotify,
        out: &mut Outbox,
    ) {
        if let Some(l) = self.lookup(&notify.path, &mut notify.watermark) {
            out.push((l, PeerMessage::PathNotify(notify)));
            return;
        }
        if notify.dest != self.key {
            tracing::trace!(
                "notify from {} for {} has no route",
                short(&notify.source),
                short(&notify.dest)
            );
            return;
        }
        tracing::trace!(
            "notify from {} seq {}",
            short(&notify.source),
            notify.info.seq
        );
        let mut info = match self.pf.paths.get(&notify.source) {
            Some(info) => {
                if notify.info.seq <= info.seq {
                    return;
                }
                // Ironwood's check compares the new info against one whose
                // path is the stored path: only the path matters here.
                if info.path == notify.info.path {
                    // Same path with a newer seq adds nothing.
                    return;
                }
                if !notify.check() {
                    return;
                }
                let mut info = info.clone();
                info.expires = now + PATH_TIMEOUT;
                info
            }
            None => {
                let xform = bloom_transform(&notify.source);
                if !self.pf.rumors.contains_key(&xform) {
                    tracing::trace!("notify from {} without a rumour", short(&notify.source));
                    return;
                }
                if self.pf.paths.len() >= MAX_PATHS {
                    return;
                }
                if !notify.check() {
                    return;
                }
                let mut info = PathInfo {
                    path: Vec::new(),
                    seq: 0,
                    req_time: now,
                    expires: now + PATH_TIMEOUT,
                    traffic: None,
                    broken: false,
                };
                if let Some(rumor) = self.pf.rumors.get_mut(&xform) {
                    if rumor
                        .traffic
                        .as_ref()
                        .is_some_and(|t| t.dest == notify.source)
                    {
                        info.traffic = rumor.traffic.take();
                    }
                }
                info
            }
        };
        tracing::trace!(
            "path to {} stored: seq {} path {:?}",
            short(&notify.source),
            notify.info.seq,
            notify.info.path
        );
        info.path = notify.info.path;
        info.seq = notify.info.seq;
        info.broken = false;
        let pending = info.traffic.take();
        self.pf.paths.insert(notify.source, info);
        if let Some(tr) = pending {
            self.pf_handle_traffic(now, tr, out);
        }
    }

    fn rumor_send_lookup(&mut self, now: Instant, dest: PublicKey, out: &mut Outbox) {
        let xform = bloom_transform(&dest);
        match self.pf.rumors.get_mut(&xform) {
            Some(rumor) => {
                if now.saturating_duration_since(rumor.send_time) < PATH_THROTTLE {
                    return;
                }
                rumor.send_time = now;
                rumor.expires = now + PATH_TIMEOUT;
            }
            None => {
                if self.pf.rumors.len() >= MAX_RUMORS {
                    return;
                }
                self.pf.rumors.insert(
                    xform,
                    Rumor {
                        traffic: None,
                        send_time: now,
                        expires: now + PATH_TIMEOUT,
                    },
                );
            }
        }
        self.send_lookup_inner(now, dest, out);
    }

    /// Repeats the lookup of every rumour that still holds a packet and was
    /// last looked up at least [`PATH_THROTTLE`] ago (see the module docs).
    pub(super) fn retry_rumors(&mut self, now: Instant, out: &mut Outbox) {
        let due: Vec<PublicKey> = self
            .pf
            .rumors
            .values_mut()
            .filter(|r| now.saturating_duration_since(r.send_time) >= PATH_THROTTLE)
            .filter_map(|r| {
                let dest = r.traffic.as_ref()?.dest;
                r.send_time = now;
                Some(dest)
            })
            .collect();
        for dest in due {
            tracing::trace!("repeating the lookup for {}", short(&dest));
            self.send_lookup_inner(now, dest, out);
        }
    }

    /// Our own outgoing traffic (ironwood `pathfinder._handleTraffic`).
    fn pf_handle_traffic(&mut self, now: Instant, mut tr: Traffic, out: &mut Outbox) {
        if let Some(info) = self.pf.paths.get(&tr.dest) {
            tr.path = info.path.clone();
            let (_, from) = self.root_and_path(&self.key);
            tr.from = from;
            if let Some(info) = self.pf.paths.get_mut(&tr.dest) {
                info.traffic = Some(tr.clone());
            }
            self.route_traffic(tr, out);
        } else {
            self.rumor_send_lookup(now, tr.dest, out);
            let xform = bloom_transform(&tr.dest);
            // Absent only when the rumour table is full: drop the packet.
            if let Some(rumor) = self.pf.rumors.get_mut(&xform) {
                rumor.traffic = Some(tr);
            }
        }
    }

    /// Forwards a traffic packet one hop, delivers it to us, or reports a
    /// broken path (ironwood `router.handleTraffic`).
    pub(super) fn route_traffic(&mut self, mut tr: Traffic, out: &mut Outbox) {
        if let Some(l) = self.lookup(&tr.path, &mut tr.watermark) {
            out.push((l, PeerMessage::Traffic(tr)));
        } else if tr.dest == self.key {
            self.reset_path_timeout(&tr.source);
            self.delivered.push(tr);
        } else {
            tracing::trace!(
                "traffic {} -> {} along {:?} has no next hop",
                short(&tr.source),
                short(&tr.dest),
                tr.path
            );
            let broken = PathBroken {
                path: tr.from,
                watermark: u64::MAX,
                source: tr.source,
                dest: tr.dest,
            };
            self.pf_handle_broken(broken, out);
        }
    }

    pub(super) fn pf_handle_broken(&mut self, mut broken: PathBroken, out: &mut Outbox) {
        if let Some(l) = self.lookup(&broken.path, &mut broken.watermark) {
            out.push((l, PeerMessage::PathBroken(broken)));
            return;
        }
        if broken.source != self.key {
            return;
        }
        if let Some(info) = self.pf.paths.get_mut(&broken.dest) {
            tracing::trace!("path to {} broken", short(&broken.dest));
            info.broken = true;
            // The lookup itself is throttled by the path's creation time;
            // the stored clock is only compared, so any instant works here.
            let now = self.last_now;
            self.send_lookup_inner(now, broken.dest, out);
        }
    }

    fn reset_path_timeout(&mut self, key: &PublicKey) {
        let now = self.last_now;
        if let Some(info) = self.pf.paths.get_mut(key) {
            if !info.broken {
                info.expires = now + PATH_TIMEOUT;
            }
        }
    }

    /// The link a lookup would use for `dest`'s stored path, if any.
    pub fn next_hop_for(&mut self, dest: &PublicKey) -> Option<LinkId> {
        let path = self.pf.paths.get(dest)?.path.clone();
        let mut wm = u64::MAX;
        self.lookup(&path, &mut wm)
    }
}

/// The first four bytes of a key in hex, for trace logs.
pub(crate) fn short(k: &PublicKey) -> String {
    hex::encode(&k[..4])
}
