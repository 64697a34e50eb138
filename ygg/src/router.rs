//! The spanning tree (ironwood `network/router.go`), as a synchronous state
//! machine: every input takes the current time and every output is a list of
//! `(link, message)` pairs for the caller to send. The node runs it inside
//! one task (the Go "router actor"); tests drive several of them in-process.
//!
//! Semantics are ported literally, including the parts ironwood marks as
//! delicate: info ordering in `Router::handle_announce` (newer seq, then
//! lower parent key, then lower nonce), the ancestry-only announcement
//! flooding, parent selection in `fix` with the two-tick delay before
//! self-rooting, link cost as an EWMA of the SigReq→SigRes round trip, and
//! the bloom "keep ones" hysteresis. Go's one-shot timers become deadlines
//! that are checked before every input ([`Router::poll_timers`]).
//!
//! The per-peer bloom filters (ironwood `network/bloomfilter.go`) live in
//! the private `blooms` child module, which the router drives from its
//! maintenance pass. Path discovery and traffic forwarding live in the
//! [`pathfinder`] child module (more methods on [`Router`]). Packets for us
//! are collected and handed out by [`Router::take_delivered`].

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::address::bloom_transform;
use crate::bloom::Bloom;
use crate::identity::Identity;
use crate::proto::{Announce, PeerMessage, SigReq, SigRes, Traffic};
use crate::wire::{PeerPort, PublicKey, Signature};

mod blooms;
pub mod pathfinder;
pub use pathfinder::{PathEntry, MAX_PATHS, MAX_RUMORS, PATH_THROTTLE, PATH_TIMEOUT};

/// How often the tree maintenance runs (`_doMaintenance`).
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);
/// Our own info is refreshed (new SigReqs, re-parent) after this long.
pub const ROUTER_REFRESH: Duration = Duration::from_secs(4 * 60);
/// Other nodes' infos expire after this long without an update.
pub const ROUTER_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Placeholder lag for a link with no measured round trip yet
/// (`routerUnknownLatency` = 2³²−1 ns).
pub const UNKNOWN_LATENCY: Duration = Duration::from_nanos(u32::MAX as u64);
/// Bloom filters are re-sent at least every this many maintenance ticks.
pub const BLOOM_RESEND_TICKS: u16 = 3600;

/// Identifies one link (one connection; several may share a peer key).
/// Ids grow monotonically, so they double as ironwood's link `order`.
pub type LinkId = u64;

/// A node's stored tree info (ironwood `routerInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterInfo {
    /// The node's parent (itself for a root).
    pub parent: PublicKey,
    /// The parent's signed response.
    pub res: SigRes,
    /// The node's own signature.
    pub sig: Signature,
}

impl RouterInfo {
    fn announce(&self, key: PublicKey) -> Announce {
        Announce {
            key,
            parent: self.parent,
            res: self.res,
            sig: self.sig,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct LinkState {
    key: PublicKey,
    port: PeerPort,
    prio: u8,
    /// When the current SigReq was handed to the link (for the RTT).
    sigreq_sent: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
enum TimerKind {
    Refresh,
    Expire,
}

/// One entry of the tree table (what `yggdrasilctl getTree` shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// Node key.
    pub key: PublicKey,
    /// Its parent.
    pub parent: PublicKey,
    /// Its info sequence number.
    pub seq: u64,
}

/// Our own position in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfInfo {
    /// Our key.
    pub key: PublicKey,
    /// Root of our tree.
    pub root: PublicKey,
    /// Our parent (ourselves when we are root).
    pub parent: PublicKey,
    /// Our coordinates (ports from the root down to us).
    pub coords: Vec<PeerPort>,
}

/// Diagnostic view of one link as the router sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterPeer {
    /// The link.
    pub link: LinkId,
    /// Remote key.
    pub key: PublicKey,
    /// Our port for that key.
    pub port: PeerPort,
    /// Link priority.
    pub priority: u8,
    /// Root the peer reports.
    pub root: PublicKey,
    /// Link cost (lag in ms, at least 1).
    pub cost: u64,
}

/// Messages the router wants sent.
pub type Outbox = Vec<(LinkId, PeerMessage)>;

/// The ironwood router state machine.
pub struct Router {
    id: Identity,
    key: PublicKey,
    links: HashMap<LinkId, LinkState>,
    peers: HashMap<PublicKey, HashSet<LinkId>>,
    sent: HashMap<PublicKey, HashSet<PublicKey>>,
    ports: HashMap<PeerPort, PublicKey>,
    infos: HashMap<PublicKey, RouterInfo>,
    timers: HashMap<PublicKey, (Instant, TimerKind)>,
    ancs: HashMap<PublicKey, Vec<PublicKey>>,
    cache: HashMap<PublicKey, Vec<PeerPort>>,
    lags: HashMap<LinkId, Duration>,
    requests: HashMap<PublicKey, SigReq>,
    responses: HashMap<PublicKey, SigRes>,
    responded: HashSet<LinkId>,
    res_seqs: HashMap<PublicKey, u64>,
    res_seq_ctr: u64,
    refresh: bool,
    do_root1: bool,
    do_root2: bool,
    blooms: blooms::Blooms,
    self_xform: PublicKey,
    pf: pathfinder::Pathfinder,
    delivered: Vec<Traffic>,
    /// The latest time any input carried.
    last_now: Instant,
}

impl Router {
    /// Creates the router and runs the first maintenance pass, which makes
    /// us root of our own one-node tree (as ironwood does at start-up).
    pub fn new(id: Identity, now: Instant) -> (Self, Outbox) {
        let key = id.public_key();
        let pf = pathfinder::Pathfinder::new(&id, now);
        let mut r = Self {
            id,
            key,
            links: HashMap::new(),
            peers: HashMap::new(),
            sent: HashMap::new(),
            ports: HashMap::new(),
            infos: HashMap::new(),
            timers: HashMap::new(),
            ancs: HashMap::new(),
            cache: HashMap::new(),
            lags: HashMap::new(),
            requests: HashMap::new(),
            responses: HashMap::new(),
            responded: HashSet::new(),
            res_seqs: HashMap::new(),
            res_seq_ctr: 0,
            refresh: false,
            do_root1: false,
            do_root2: true,
            blooms: blooms::Blooms::new(&key),
            self_xform: bloom_transform(&key),
            pf,
            delivered: Vec::new(),
            last_now: now,
        };
        let mut out = Vec::new();
        r.maintenance(now, &mut out);
        (r, out)
    }

    /// Our key.
    pub fn public_key(&self) -> PublicKey {
        self.key
    }

    /// Fires due timers: our own info's refresh and other infos' expiry.
    pub fn poll_timers(&mut self, now: Instant) {
        if now > self.last_now {
            self.last_now = now;
        }
        self.pf.expire(now);
        let due: Vec<(PublicKey, TimerKind)> = self
            .timers
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(k, (_, kind))| (*k, *kind))
            .collect();
        for (key, kind) in due {
            match kind {
                TimerKind::Refresh => {
                    self.timers.remove(&key);
                    self.refresh = true;
                }
                TimerKind::Expire => {
                    self.infos.remove(&key);
                    self.timers.remove(&key);
                    for sent in self.sent.values_mut() {
                        sent.remove(&key);
                    }
                    self.cache.clear();
                }
            }
        }
    }

    /// Registers a new link to `key` and returns the port for that key (the
    /// smallest free port ≥ 1; links to the same key share it).
    pub fn add_peer(
        &mut self,
        now: Instant,
        link: LinkId,
        key: PublicKey,
        prio: u8,
        out: &mut Outbox,
    ) -> PeerPort {
        self.poll_timers(now);
        let port = match self.peers.get(&key).and_then(|ls| ls.iter().next()) {
            Some(l) => self.links[l].port,
            None => (1..)
                .find(|p| !self.ports.contains_key(p))
                .unwrap_or(PeerPort::MAX),
        };
        match self.peers.entry(key) {
            Entry::Vacant(v) => {
                v.insert(HashSet::from([link]));
                self.sent.insert(key, HashSet::new());
                self.ports.insert(port, key);
                self.blooms.add_peer(key);
            }
            Entry::Occupied(mut o) => {
                o.get_mut().insert(link);
                // Re-send whatever earlier links to this key were sent.
                for k in self.sent.get(&key).into_iter().flatten() {
                    if let Some(info) = self.infos.get(k) {
                        out.push((link, PeerMessage::Announce(info.announce(*k))));
                    }
                }
            }
        }
        self.links.insert(
            link,
            LinkState {
                key,
                port,
                prio,
                sigreq_sent: None,
            },
        );
        self.lags.insert(link, UNKNOWN_LATENCY);
        if !self.requests.contains_key(&key) {
            let req = self.new_req();
            self.requests.insert(key, req);
        }
        let req = self.requests[&key];
        self.responded.remove(&link);
        self.send_sig_req(now, link, req, out);
        let b = self.blooms.sent(&key);
        out.push((link, PeerMessage::Bloom(Box::new(b))));
        port
    }

    /// Forgets a link.
    pub fn remove_peer(&mut self, now: Instant, link: LinkId, out: &mut Outbox) {
        self.poll_timers(now);
        let Some(state) = self.links.remove(&link) else {
            return;
        };
        self.lags.remove(&link);
        self.responded.remove(&link);
        let key = state.key;
        let empty = match self.peers.get_mut(&key) {
            Some(ls) => {
                ls.remove(&link);
                ls.is_empty()
            }
            None => true,
        };
        if empty {
            self.peers.remove(&key);
            self.sent.remove(&key);
            self.ports.remove(&state.port);
            self.requests.remove(&key);
            self.responses.remove(&key);
            self.res_seqs.remove(&key);
            self.ancs.remove(&key);
            self.cache.remove(&key);
            self.blooms.remove_peer(&key);
        } else if let Some(ls) = self.peers.get(&key) {
            // The remote's view of our bloom may be stale; resend it.
            let b = self.blooms.sent(&key);
            for &l in ls {
                out.push((l, PeerMessage::Bloom(Box::new(b.clone()))));
            }
        }
    }

    /// Handles one already-validated message from a link. SigRes and
    /// Announce must have passed their signature checks (the link closes on
    /// a failure, as ironwood does, before the router sees them).
    pub fn handle_message(
        &mut self,
        now: Instant,
        link: LinkId,
        msg: PeerMessage,
        out: &mut Outbox,
    ) {
        self.poll_timers(now);
        let Some(state) = self.links.get(&link).copied() else {
            return;
        };
        match msg {
            PeerMessage::SigReq(req) => {
                let res = SigRes::sign(req, state.port, &state.key, &self.id);
                out.push((link, PeerMessage::SigRes(res)));
            }
            PeerMessage::SigRes(res) => {
                let rtt = state
                    .sigreq_sent
                    .map(|t| now.saturating_duration_since(t))
                    .unwrap_or_default();
                self.handle_response(link, state.key, res, rtt);
            }
            PeerMessage::Announce(ann) => self.handle_announce(now, link, state.key, ann, out),
            PeerMessage::Bloom(b) => {
                tracing::trace!(
                    peer = %pathfinder::short(&state.key),
                    empty = b.is_empty(),
                    "bloom received"
                );
                self.blooms.set_received(&state.key, *b);
            }
            PeerMessage::PathLookup(l) => self.pf_handle_lookup_from_peer(now, state.key, l, out),
            PeerMessage::PathNotify(n) => self.pf_handle_notify(now, n, out),
            PeerMessage::PathBroken(b) => self.pf_handle_broken(b, out),
            PeerMessage::Traffic(t) => self.route_traffic(t, out),
            PeerMessage::Dummy | PeerMessage::KeepAlive => {}
        }
    }

    /// The 1-second maintenance pass.
    pub fn maintenance(&mut self, now: Instant, out: &mut Outbox) {
        self.poll_timers(now);
        self.do_root2 = self.do_root2 || self.do_root1;
        self.cache.clear();
        self.update_ancestries();
        self.fix(now, out);
        self.send_announces(out);
        self.fix_on_tree(out);
        self.blooms.send_all(&self.peers, out);
        self.retry_rumors(now, out);
    }

    fn send_sig_req(&mut self, now: Instant, link: LinkId, req: SigReq, out: &mut Outbox) {
        if let Some(l) = self.links.get_mut(&link) {
            l.sigreq_sent = Some(now);
        }
        out.push((link, PeerMessage::SigReq(req)));
    }

    fn new_req(&self) -> SigReq {
        SigReq {
            seq: self.infos.get(&self.key).map_or(0, |i| i.res.req.seq) + 1,
            nonce: rand::random(),
        }
    }

    fn clear_reqs(&mut self) {
        self.requests.clear();
        self.responses.clear();
        self.res_seqs.clear();
        self.res_seq_ctr = 0;
    }

    fn send_reqs(&mut self, now: Instant, out: &mut Outbox) {
        self.clear_reqs();
        let keys: Vec<PublicKey> = self.peers.keys().copied().collect();
        for pk in keys {
            let req = self.new_req();
            self.requests.insert(pk, req);
            let links: Vec<LinkId> = self.peers[&pk].iter().copied().collect();
            for l in links {
                self.responded.remove(&l);
                self.send_sig_req(now, l, req, out);
            }
        }
    }

    fn update_ancestries(&mut self) {
        let keys: Vec<PublicKey> = self.peers.keys().copied().collect();
        for pk in keys {
            let anc = self.ancestry(&pk);
            if self.ancs.get(&pk) != Some(&anc) {
                self.ancs.insert(pk, anc);
            }
        }
    }

    fn cost(&self, link: LinkId) -> u64 {
        let ms = self
            .lags
            .get(&link)
            .copied()
            .unwrap_or_default()
            .as_millis() as u64;
        ms.max(1)
    }

    fn fix(&mut self, now: Instant, out: &mut Outbox) {
        let me = self.key;
        let mut best_root = me;
        let mut best_parent = me;
        let mut best_cost = u64::MAX;
        // A missing self info reads as Go's zero value: parent = zero key.
        let self_parent = self.infos.get(&me).map_or([0u8; 32], |i| i.parent);
        if let Some(links) = self.peers.get(&self_parent) {
            let (root, dists) = self.root_and_dists(&me);
            if root < best_root {
                let mut cost = u64::MAX;
                for &l in links {
                    let c = dists
                        .get(&root)
                        .copied()
                        .unwrap_or(0)
                        .wrapping_mul(self.cost(l));
                    cost = cost.min(c);
                }
                best_root = root;
                best_parent = self_parent;
                best_cost = cost;
            }
        }
        let candidates: Vec<PublicKey> = self.responses.keys().copied().collect();
        for pk in candidates {
            if !self.infos.contains_key(&pk) {
                continue;
            }
            let (p_root, p_dists) = self.root_and_dists(&pk);
            if p_dists.contains_key(&me) {
                continue; // would loop through us
            }
            let mut cost = u64::MAX;
            if let Some(links) = self.peers.get(&pk) {
                for &l in links {
                    let c = p_dists
                        .get(&p_root)
                        .copied()
                        .unwrap_or(0)
                        .wrapping_mul(self.cost(l));
                    cost = cost.min(c);
                }
            }
            if p_root < best_root {
                best_root = p_root;
                best_parent = pk;
                best_cost = cost;
            } else if p_root != best_root {
                continue;
            }
            if (self.refresh && cost.wrapping_mul(2) < best_cost)
                || (best_parent != self_parent && cost < best_cost)
            {
                best_root = p_root;
                best_parent = pk;
                best_cost = cost;
            }
        }
        if self.refresh || self.do_root1 || self.do_root2 || self_parent != best_parent {
            let res = self.responses.get(&best_parent).copied();
            if let Some(res) = res.filter(|_| best_root != me) {
                if self.use_response(now, best_parent, res) {
                    self.refresh = false;
                    self.do_root1 = false;
                    self.do_root2 = false;
                    self.send_reqs(now, out);
                    return;
                }
            }
            if self.do_root2 {
                self.become_root(now);
                self.refresh = false;
                self.do_root1 = false;
                self.do_root2 = false;
                self.send_reqs(now, out);
            } else if !self.do_root1 {
                self.do_root1 = true;
            }
        }
    }

    fn send_announces(&mut self, out: &mut Outbox) {
        let self_anc = self.ancestry(&self.key);
        let peer_keys: Vec<PublicKey> = self.sent.keys().copied().collect();
        for peer_key in peer_keys {
            let peer_anc = self.ancestry(&peer_key);
            let mut to_send = Vec::new();
            if let Some(sent) = self.sent.get_mut(&peer_key) {
                for k in self_anc.iter().chain(peer_anc.iter()) {
                    if sent.insert(*k) {
                        to_send.push(*k);
                    }
                }
            }
            let anns: Vec<Announce> = to_send
                .iter()
                .filter_map(|k| self.infos.get(k).map(|i| i.announce(*k)))
                .collect();
            if let Some(links) = self.peers.get(&peer_key) {
                for &l in links {
                    for ann in &anns {
                        out.push((l, PeerMessage::Announce(*ann)));
                    }
                }
            }
        }
    }

    fn become_root(&mut self, now: Instant) -> bool {
        let req = self.new_req();
        let res = SigRes::sign(req, 0, &self.key, &self.id);
        let ann = Announce {
            key: self.key,
            parent: self.key,
            res,
            sig: res.psig,
        };
        self.update(now, &ann)
    }

    fn handle_response(&mut self, link: LinkId, key: PublicKey, res: SigRes, rtt: Duration) {
        let matches = self.requests.get(&key) == Some(&res.req);
        if matches && !self.responses.contains_key(&key) {
            self.res_seq_ctr += 1;
            self.res_seqs.insert(key, self.res_seq_ctr);
            self.responses.insert(key, res);
        }
        if matches && !self.responded.contains(&link) {
            self.responded.insert(link);
            let lag = self.lags.get(&link).copied().unwrap_or(UNKNOWN_LATENCY);
            let new = if lag == UNKNOWN_LATENCY {
                rtt * 2
            } else {
                lag * 7 / 8 + rtt.min(lag * 2) / 8
            };
            self.lags.insert(link, new);
        }
    }

    fn use_response(&mut self, now: Instant, peer_key: PublicKey, res: SigRes) -> bool {
        let sig = self.id.sign(&res.bytes_for_sig(&self.key, &peer_key));
        let info = RouterInfo {
            parent: peer_key,
            res,
            sig,
        };
        let ann = info.announce(self.key);
        self.update(now, &ann)
    }

    /// Ironwood `_update`: accept if newer seq, or same seq and lower parent,
    /// or same seq and parent and lower nonce. Must match every other node.
    fn update(&mut self, now: Instant, ann: &Announce) -> bool {
        if let Some(info) = self.infos.get(&ann.key) {
            let accept = if info.res.req.seq > ann.res.req.seq {
                false
            } else if info.res.req.seq < ann.res.req.seq {
                true
            } else if info.parent < ann.parent {
                false
            } else if ann.parent < info.parent {
                true
            } else {
                ann.res.req.nonce < info.res.req.nonce
            };
            if !accept {
                return false;
            }
        }
        for sent in self.sent.values_mut() {
            sent.remove(&ann.key);
        }
        self.cache.clear();
        let info = RouterInfo {
            parent: ann.parent,
            res: ann.res,
            sig: ann.sig,
        };
        let timer = if ann.key == self.key {
            (now + ROUTER_REFRESH, TimerKind::Refresh)
        } else {
            (now + ROUTER_TIMEOUT, TimerKind::Expire)
        };
        self.timers.insert(ann.key, timer);
        self.infos.insert(ann.key, info);
        true
    }

    fn handle_announce(
        &mut self,
        now: Instant,
        link: LinkId,
        peer_key: PublicKey,
        ann: Announce,
        out: &mut Outbox,
    ) {
        // The caller is responsible for `ann.check()`.
        if self.update(now, &ann) {
            if ann.key == self.key {
                // Someone had a newer copy of our own info: we restarted.
                self.refresh = true;
            }
            if let Some(s) = self.sent.get_mut(&peer_key) {
                s.insert(ann.key);
            }
        } else {
            let info = RouterInfo {
                parent: ann.parent,
                res: ann.res,
                sig: ann.sig,
            };
            if let Some(s) = self.sent.get_mut(&peer_key) {
                s.insert(ann.key);
            }
            let old = self.infos.get(&ann.key).copied();
            if old != Some(info) {
                if let Some(old) = old {
                    out.push((link, PeerMessage::Announce(old.announce(ann.key))));
                }
            }
        }
    }

    fn root_and_dists(&self, dest: &PublicKey) -> (PublicKey, HashMap<PublicKey, u64>) {
        let mut dists = HashMap::new();
        let mut next = *dest;
        let mut root = [0u8; 32];
        let mut dist = 0u64;
        while !dists.contains_key(&next) {
            let Some(info) = self.infos.get(&next) else {
                break;
            };
            root = next;
            dists.insert(next, dist);
            dist += 1;
            next = info.parent;
        }
        (root, dists)
    }

    fn root_and_path(&self, dest: &PublicKey) -> (PublicKey, Vec<PeerPort>) {
        let mut ports = Vec::new();
        let mut visited = HashSet::new();
        let mut root;
        let mut next = *dest;
        loop {
            if visited.contains(&next) {
                return (*dest, Vec::new());
            }
            let Some(info) = self.infos.get(&next) else {
                return (*dest, Vec::new());
            };
            root = next;
            visited.insert(next);
            if next == info.parent {
                break;
            }
            ports.push(info.res.port);
            next = info.parent;
        }
        ports.reverse();
        (root, ports)
    }

    fn dist(&mut self, dest_path: &[PeerPort], key: &PublicKey) -> u64 {
        let key_path = match self.cache.get(key) {
            Some(p) => p.clone(),
            None => {
                let (_, p) = self.root_and_path(key);
                self.cache.insert(*key, p.clone());
                p
            }
        };
        let mut dist = (key_path.len() + dest_path.len()) as u64;
        for (a, b) in key_path.iter().zip(dest_path.iter()) {
            if a == b {
                dist -= 2;
            } else {
                break;
            }
        }
        dist
    }

    /// Greedy next hop toward tree coordinates `path` (ironwood `_lookup`);
    /// `None` with `dest == us` means deliver locally. Lowers `watermark`.
    pub fn lookup(&mut self, path: &[PeerPort], watermark: &mut u64) -> Option<LinkId> {
        let self_key = self.key;
        let self_dist = self.dist(path, &self_key);
        if self_dist >= *watermark {
            return None;
        }
        *watermark = self_dist;
        let mut candidates = Vec::new();
        let keys: Vec<PublicKey> = self.peers.keys().copied().collect();
        for k in keys {
            if self.dist(path, &k) < self_dist {
                candidates.extend(self.peers[&k].iter().copied());
            }
        }
        let mut best: Option<LinkId> = None;
        let mut best_cpd = u64::MAX;
        let mut best_dist = u64::MAX;
        for l in candidates {
            let st = self.links[&l];
            let dist = self.dist(path, &st.key);
            let cpd = self.cost(l) / (self_dist - dist);
            let accept = match best {
                None => true,
                Some(b) => {
                    let bs = self.links[&b];
                    if st.key == bs.key && st.prio < bs.prio {
                        true
                    } else if st.key == bs.key && st.prio > bs.prio {
                        false
                    } else if cpd != best_cpd {
                        cpd < best_cpd
                    } else if dist != best_dist {
                        dist < best_dist
                    } else {
                        l < b
                    }
                }
            };
            if accept {
                best = Some(l);
                best_cpd = cpd;
                best_dist = dist;
            }
        }
        best
    }

    fn ancestry(&self, key: &PublicKey) -> Vec<PublicKey> {
        let mut anc: Vec<PublicKey> = Vec::new();
        let mut here = *key;
        loop {
            if anc.contains(&here) {
                break;
            }
            match self.infos.get(&here) {
                Some(info) => {
                    anc.push(here);
                    here = info.parent;
                }
                None => break,
            }
        }
        anc.reverse();
        anc
    }

    // ---- blooms ----

    /// Marks the peers that are our parent or our children as on the tree.
    fn fix_on_tree(&mut self, out: &mut Outbox) {
        let Some(self_info) = self.infos.get(&self.key).copied() else {
            return;
        };
        let (me, infos) = (self.key, &self.infos);
        let on_tree = |pk: &PublicKey| {
            self_info.parent == *pk || infos.get(pk).is_some_and(|i| i.parent == me)
        };
        self.blooms.fix_on_tree(on_tree, &self.peers, out);
    }

    // ---- diagnostics ----

    /// Every known tree info.
    pub fn tree(&self) -> Vec<TreeEntry> {
        let mut v: Vec<TreeEntry> = self
            .infos
            .iter()
            .map(|(k, i)| TreeEntry {
                key: *k,
                parent: i.parent,
                seq: i.res.req.seq,
            })
            .collect();
        v.sort_by_key(|e| e.key);
        v
    }

    /// Our root, parent and coordinates.
    pub fn self_info(&self) -> SelfInfo {
        let (root, coords) = self.root_and_path(&self.key);
        SelfInfo {
            key: self.key,
            root,
            parent: self.infos.get(&self.key).map_or(self.key, |i| i.parent),
            coords,
        }
    }

    /// One entry per link.
    pub fn peers(&self) -> Vec<RouterPeer> {
        let mut v: Vec<RouterPeer> = self
            .links
            .iter()
            .map(|(&l, st)| RouterPeer {
                link: l,
                key: st.key,
                port: st.port,
                priority: st.prio,
                root: self.root_and_path(&st.key).0,
                cost: self.cost(l),
            })
            .collect();
        v.sort_by_key(|p| p.link);
        v
    }

    /// Whether the link to `key` is part of the tree (parent or child).
    pub fn is_on_tree(&self, key: &PublicKey) -> bool {
        self.blooms.is_on_tree(key)
    }

    /// The bloom filter last received from `key`.
    pub fn received_bloom(&self, key: &PublicKey) -> Option<&Bloom> {
        self.blooms.received(key)
    }
}
