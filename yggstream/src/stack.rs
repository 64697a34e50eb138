//! Every ygg_stream connection of one node, without I/O: the table keyed by
//! (local port, remote key, remote port), the listening ports and their accept queues, and
//! the rules for packets that match no connection (§3.4–§3.5 of `docs/mimir3.md`):
//!
//! * a SYN to a listening port opens a connection (SYN_RECEIVED), unless the half-open or
//!   connection limits of its key or of the whole stack are reached (then RST);
//! * a SYN to a port nobody listens on, and any other packet but an RST for an unknown
//!   tuple, is answered with an RST; an RST for an unknown tuple is ignored;
//! * a SYN on a tuple that holds an established connection means the peer restarted (3.x
//!   clients keep their key and may reuse the port): the old connection is reset and a new
//!   one accepted;
//! * datagrams (DGRAM) are not used by the mediator protocol and are dropped.
//!
//! Connections are handed out by [`ConnId`]. A connection leaves the table once it is closed
//! and its owner has released it ([`Stack::release`]), or at once if it closed before being
//! accepted, so no historic connection stays behind.
//!
//! Keys are free, so the stack also bounds what all connections hold together, and keeps room
//! for the connections their owner vouches for ([`Stack::protect`]; mediatord protects the
//! sessions of chat members):
//!
//! * **Buffers.** Bytes received and not read, and written and not acknowledged, of every
//!   connection are counted ([`Conn::buffered`]). Unprotected connections may fill them up to
//!   [`Budget::shared`]; protected ones up to [`Budget::shared`] + [`Budget::reserve`], so
//!   strangers filling the shared part never stop a member. Past its limit a connection's
//!   data segments are dropped (the peer retransmits) and its writes wait. Every connection
//!   may hold [`FLOOR`] bytes received and [`FLOOR`] written whatever the others hold, so a
//!   member's new connection can still log in (it is protected only once its session knows
//!   it is a member's). All together hold at most `shared + reserve + 2 × MAX_CONNS × FLOOR`
//!   (+ the overhead of the segments one write makes).
//! * **Connections.** At [`MAX_CONNS`] a new SYN takes the place of the oldest unprotected
//!   connection (which is reset); when every connection is protected it is refused.

use crate::conn::Conn;
use crate::packet::{Flags, Header};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};
use std::time::Instant;

/// A remote node's ed25519 key: the address of its connections.
pub type Key = [u8; 32];

/// Half-open (SYN_RECEIVED) connections one remote key may hold.
pub const MAX_HALF_OPEN_PER_KEY: usize = 8;
/// Half-open connections of all keys together.
pub const MAX_HALF_OPEN: usize = 1024;
/// Connections (of any state) one remote key may hold.
pub const MAX_CONNS_PER_KEY: usize = 64;
/// Connections of all keys together.
pub const MAX_CONNS: usize = 16_384;
/// Established connections waiting for their listener to accept them, per port.
pub const ACCEPT_QUEUE: usize = 64;
/// Bytes all connections may buffer together, by default ([`Budget::shared`]).
pub const BUFFER_BUDGET: usize = 64 * 1024 * 1024;
/// Bytes only protected connections may buffer beyond [`BUFFER_BUDGET`], by default
/// ([`Budget::reserve`]).
pub const PROTECTED_RESERVE: usize = 64 * 1024 * 1024;
/// Bytes every connection may hold received, and as many written, even when the budget is
/// spent: room for a login's requests and answers (a Mimir AUTH is about 150 bytes).
pub const FLOOR: usize = 4 * 1024;
/// Ephemeral ports outgoing connections choose from.
pub const EPHEMERAL_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;

/// A connection's handle in the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

/// Where a connection lives: our port, the remote key, its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub local_port: u16,
    pub remote: Key,
    pub remote_port: u16,
}

/// The bytes every connection of a stack may buffer together. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// What all connections may hold together.
    pub shared: usize,
    /// What protected connections may hold beyond `shared`.
    pub reserve: usize,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            shared: BUFFER_BUDGET,
            reserve: PROTECTED_RESERVE,
        }
    }
}

#[derive(Debug)]
struct Entry {
    tuple: Tuple,
    conn: Conn,
    /// Handed to an owner (accepted, or opened by `connect`), who must release it.
    owned: bool,
    /// Waiting in its listener's accept queue.
    queued: bool,
    /// Vouched for by its owner: kept at [`MAX_CONNS`] and given the reserve.
    protected: bool,
    /// Counted in [`Stack::open`] (not closed yet).
    open: bool,
    /// Its [`Conn::buffered`] as last counted in [`Stack::buffered`].
    held: usize,
    /// Its [`Conn::deadline`] as last put in the timer heap.
    scheduled: Option<Instant>,
}

/// Why `connect` could not open a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StackError {
    #[error("no free ephemeral port for this peer")]
    NoPort,
    #[error("too many connections")]
    TooMany,
}

/// The stack. See the module docs.
#[derive(Debug, Default)]
pub struct Stack {
    next_id: u64,
    entries: HashMap<ConnId, Entry>,
    by_tuple: HashMap<Tuple, ConnId>,
    /// Connections of each remote key, so per-key limits need no scan.
    by_key: HashMap<Key, Vec<ConnId>>,
    /// Connections accepted from a SYN whose handshake is not done.
    half_open: HashSet<ConnId>,
    /// Open connections that are not protected, oldest (lowest id) first: who gives way.
    unprotected: BTreeSet<ConnId>,
    /// Connections not closed yet (closed ones may wait for their owner to release them).
    open: usize,
    /// Bytes all connections hold (the sum of their `held`).
    buffered: usize,
    /// Deadlines of the connections, earliest first; an entry whose connection is gone or
    /// has another deadline now is stale and skipped (see [`Stack::deadline`]).
    timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    budget: Budget,
    listeners: HashMap<u16, VecDeque<ConnId>>,
    /// Packets to send, with their destination key.
    out: VecDeque<(Key, Vec<u8>)>,
    /// Seed of the ephemeral port choice.
    port_seed: u64,
}

impl Stack {
    /// An empty stack; `seed` varies the first ephemeral port (v0.2.1 starts at a random one).
    pub fn new(seed: u64) -> Stack {
        Stack::with_budget(seed, Budget::default())
    }

    /// An empty stack whose connections buffer at most `budget` together.
    pub fn with_budget(seed: u64, budget: Budget) -> Stack {
        Stack {
            port_seed: seed,
            budget,
            ..Stack::default()
        }
    }

    /// Bytes all connections hold (see [`Conn::buffered`]).
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Whether the shared budget is spent: unprotected connections must wait.
    pub fn is_under_pressure(&self) -> bool {
        self.buffered >= self.budget.shared
    }

    /// Connections not closed yet.
    pub fn open(&self) -> usize {
        self.open
    }

    /// Marks `id` as vouched for by its owner (or not any more): see the module docs.
    pub fn protect(&mut self, id: ConnId, protected: bool) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        e.protected = protected;
        if protected || !e.open {
            self.unprotected.remove(&id);
        } else {
            self.unprotected.insert(id);
        }
    }

    /// What `id` may still add to its receive and to its send buffer now: its class's room,
    /// or what each lacks of [`FLOOR`]; `None` if it is gone.
    pub fn allowance(&self, id: ConnId) -> Option<(usize, usize)> {
        let e = self.entries.get(&id)?;
        let room = self.room(e.protected);
        Some((
            room.max(FLOOR.saturating_sub(e.conn.buffered_recv())),
            room.max(FLOOR.saturating_sub(e.conn.buffered_send())),
        ))
    }

    /// Bytes connections (protected or not) may still add to the stack's buffers now.
    pub fn room(&self, protected: bool) -> usize {
        let limit = if protected {
            self.budget.shared.saturating_add(self.budget.reserve)
        } else {
            self.budget.shared
        };
        limit.saturating_sub(self.buffered)
    }

    /// Writes what `id` may take of `data` now (its send buffer and its share of the budget);
    /// `None` if the connection is gone.
    pub fn write(&mut self, id: ConnId, data: &[u8], now: Instant) -> Option<usize> {
        let (recv, send) = self.allowance(id)?;
        let e = self.entries.get_mut(&id).expect("present");
        e.conn.set_allowance(recv, send);
        let n = e.conn.write(data, now);
        self.collect(id);
        Some(n)
    }

    /// Accepts connections on `port` from now on.
    pub fn listen(&mut self, port: u16) {
        self.listeners.entry(port).or_default();
    }

    /// The next established connection on `port`, if any.
    pub fn accept(&mut self, port: u16) -> Option<ConnId> {
        let q = self.listeners.get_mut(&port)?;
        while let Some(id) = q.pop_front() {
            if let Some(e) = self.entries.get_mut(&id) {
                e.queued = false;
                e.owned = true;
                return Some(id);
            }
        }
        None
    }

    /// Opens a connection to `remote`'s `port`.
    pub fn connect(&mut self, remote: Key, port: u16, now: Instant) -> Result<ConnId, StackError> {
        if self.open >= MAX_CONNS || self.conns_of(&remote) >= MAX_CONNS_PER_KEY {
            return Err(StackError::TooMany);
        }
        let span = u64::from(EPHEMERAL_PORTS.end() - EPHEMERAL_PORTS.start()) + 1;
        let local_port = (0..span)
            .map(|i| {
                let off = (self.port_seed.wrapping_add(i)) % span;
                EPHEMERAL_PORTS.start() + off as u16
            })
            .find(|p| {
                !self.by_tuple.contains_key(&Tuple {
                    local_port: *p,
                    remote,
                    remote_port: port,
                })
            })
            .ok_or(StackError::NoPort)?;
        self.port_seed = self.port_seed.wrapping_add(1);
        let tuple = Tuple {
            local_port,
            remote,
            remote_port: port,
        };
        let id = self.insert(tuple, Conn::connect(local_port, port, now), true);
        self.collect(id);
        Ok(id)
    }

    fn insert(&mut self, tuple: Tuple, conn: Conn, owned: bool) -> ConnId {
        self.next_id += 1;
        let id = ConnId(self.next_id);
        self.entries.insert(
            id,
            Entry {
                tuple,
                conn,
                owned,
                queued: false,
                protected: false,
                open: true,
                held: 0,
                scheduled: None,
            },
        );
        self.open += 1;
        self.unprotected.insert(id);
        self.by_tuple.insert(tuple, id);
        self.by_key.entry(tuple.remote).or_default().push(id);
        id
    }

    fn conns_of(&self, key: &Key) -> usize {
        self.by_key.get(key).map_or(0, Vec::len)
    }

    fn half_open_of(&self, key: &Key) -> usize {
        self.by_key.get(key).map_or(0, |ids| {
            ids.iter().filter(|id| self.half_open.contains(id)).count()
        })
    }

    /// The connection `id`, while it is in the stack.
    pub fn conn(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.entries.get_mut(&id).map(|e| &mut e.conn)
    }

    /// Where connection `id` lives.
    pub fn tuple(&self, id: ConnId) -> Option<Tuple> {
        self.entries.get(&id).map(|e| e.tuple)
    }

    /// Connections in the table (for limits and leak checks).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The owner lets go of `id`: a live connection is aborted (RST); it leaves the table.
    pub fn release(&mut self, id: ConnId) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.conn.abort();
            e.owned = false;
        }
        self.collect(id);
    }

    /// The owner lets go of `id` after closing it: the connection finishes its close (FIN,
    /// TIME_WAIT) on its own and leaves the table once closed.
    pub fn disown(&mut self, id: ConnId) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.owned = false;
        }
        self.collect(id);
    }

    /// Moves `id`'s packets to the output, and forgets it if it is closed and nobody owns it.
    pub fn collect(&mut self, id: ConnId) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        while let Some(p) = e.conn.poll_transmit() {
            self.out.push_back((e.tuple.remote, p));
        }
        let held = e.conn.buffered();
        self.buffered = self.buffered - e.held + held;
        e.held = held;
        let deadline = e.conn.deadline();
        if deadline != e.scheduled {
            e.scheduled = deadline;
            if let Some(t) = deadline {
                self.timers.push(Reverse((t, id)));
            }
        }
        if e.conn.is_established() || e.conn.is_closed() {
            self.half_open.remove(&id);
        }
        if e.conn.is_closed() && e.open {
            e.open = false;
            self.open -= 1;
            self.unprotected.remove(&id);
        }
        if e.conn.is_closed() && !e.owned {
            let tuple = e.tuple;
            self.buffered -= e.held;
            self.entries.remove(&id);
            if self.by_tuple.get(&tuple) == Some(&id) {
                self.by_tuple.remove(&tuple);
            }
            if let Some(ids) = self.by_key.get_mut(&tuple.remote) {
                ids.retain(|i| *i != id);
                if ids.is_empty() {
                    self.by_key.remove(&tuple.remote);
                }
            }
        }
    }

    /// The next packet to send and its destination.
    pub fn poll_transmit(&mut self) -> Option<(Key, Vec<u8>)> {
        self.out.pop_front()
    }

    fn reply_rst(&mut self, to: Key, h: &Header) {
        let rst = Header::rst(h.dst_port, h.src_port);
        self.out.push_back((to, rst.packet(&[])));
    }

    /// Handles one ygg_stream message from `from` (the payload of a Yggdrasil session
    /// packet, see [`crate::packet::classify`]). Returns the connection it concerned.
    pub fn on_message(&mut self, from: Key, msg: &[u8], now: Instant) -> Option<ConnId> {
        let Ok((h, payload)) = Header::decode(msg) else {
            return None;
        };
        if h.flags.contains(Flags::DGRAM) {
            return None;
        }
        let tuple = Tuple {
            local_port: h.dst_port,
            remote: from,
            remote_port: h.src_port,
        };
        let syn_only = h.flags.contains(Flags::SYN) && !h.flags.contains(Flags::ACK);
        if let Some(&id) = self.by_tuple.get(&tuple) {
            let (recv, send) = self.allowance(id).unwrap_or((0, 0));
            let e = self.entries.get_mut(&id).expect("indexed");
            e.conn.set_allowance(recv, send);
            let restarted = syn_only
                && !e.conn.is_closed()
                && !matches!(
                    e.conn.state(),
                    crate::conn::State::SynReceived | crate::conn::State::SynSent
                );
            if !restarted {
                e.conn.on_packet(&h, payload, now);
                self.after_packet(id);
                return Some(id);
            }
            // The peer restarted and reuses the tuple: the old connection ends as reset.
            e.conn
                .on_packet(&Header::rst(h.src_port, h.dst_port), &[], now);
            self.by_tuple.remove(&tuple);
            self.collect(id);
        }
        if !syn_only {
            if !h.flags.contains(Flags::RST) {
                self.reply_rst(from, &h);
            }
            return None;
        }
        if self.listeners.contains_key(&h.dst_port)
            && self.open >= MAX_CONNS
            && self.half_open.len() < MAX_HALF_OPEN
            && self.conns_of(&from) < MAX_CONNS_PER_KEY
            && self.half_open_of(&from) < MAX_HALF_OPEN_PER_KEY
        {
            // Full: the oldest connection nobody vouches for gives way.
            if let Some(victim) = self.unprotected.pop_first() {
                if let Some(e) = self.entries.get_mut(&victim) {
                    e.conn.abort();
                }
                self.collect(victim);
            }
        }
        if !self.listeners.contains_key(&h.dst_port)
            || self.open >= MAX_CONNS
            || self.conns_of(&from) >= MAX_CONNS_PER_KEY
            || self.half_open_of(&from) >= MAX_HALF_OPEN_PER_KEY
            || self.half_open.len() >= MAX_HALF_OPEN
        {
            self.reply_rst(from, &h);
            return None;
        }
        let id = self.insert(tuple, Conn::accept(h.dst_port, &h, now), false);
        self.half_open.insert(id);
        self.collect(id);
        Some(id)
    }

    /// After a packet: queue a newly established connection to its listener, move packets
    /// out, forget what is over.
    fn after_packet(&mut self, id: ConnId) {
        if let Some(e) = self.entries.get_mut(&id) {
            if !e.owned && !e.queued && e.conn.is_established() {
                match self.listeners.get_mut(&e.tuple.local_port) {
                    Some(q) if q.len() < ACCEPT_QUEUE => {
                        q.push_back(id);
                        e.queued = true;
                    }
                    // No room (or no listener any more): refuse it.
                    _ => e.conn.abort(),
                }
            }
        }
        self.collect(id);
    }

    /// Whether a timer heap entry is still the connection's deadline.
    fn is_current(&self, t: Instant, id: ConnId) -> bool {
        self.entries
            .get(&id)
            .is_some_and(|e| e.scheduled == Some(t))
    }

    /// When [`Stack::on_timeout`] should run next. Amortised O(log n): stale heap entries
    /// are dropped as they come to the top, and the heap is rebuilt when they outnumber the
    /// connections.
    pub fn deadline(&mut self) -> Option<Instant> {
        if self.timers.len() > 2 * self.entries.len() + 64 {
            self.timers = self
                .entries
                .iter()
                .filter_map(|(id, e)| e.scheduled.map(|t| Reverse((t, *id))))
                .collect();
        }
        while let Some(&Reverse((t, id))) = self.timers.peek() {
            if self.is_current(t, id) {
                return Some(t);
            }
            self.timers.pop();
        }
        None
    }

    /// Runs the timers of every connection due at `now`; returns those connections.
    pub fn on_timeout(&mut self, now: Instant) -> Vec<ConnId> {
        let mut due = Vec::new();
        while let Some(&Reverse((t, id))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            if self.is_current(t, id) {
                // Taken off the heap: `collect` schedules its next deadline.
                if let Some(e) = self.entries.get_mut(&id) {
                    e.scheduled = None;
                }
                due.push(id);
            }
        }
        for &id in &due {
            if let Some(e) = self.entries.get_mut(&id) {
                e.conn.on_timeout(now);
            }
            self.collect(id);
        }
        due
    }

    /// Moves every connection's packets out (after reads, writes and closes by owners).
    pub fn collect_all(&mut self) {
        let ids: Vec<ConnId> = self.entries.keys().copied().collect();
        for id in ids {
            self.collect(id);
        }
    }
}

#[cfg(test)]
mod budget_tests;
#[cfg(test)]
mod tests;
