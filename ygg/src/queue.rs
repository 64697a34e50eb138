//! The per-link packet queue for routed packets (ironwood
//! `network/packetqueue.go` and `peer._push`/`peer.pop`): Traffic,
//! PathLookup, PathNotify and PathBroken wait here while the socket is busy;
//! tree messages bypass it.
//!
//! Packets are grouped by destination, then by source. [`PacketQueue::pop`]
//! returns the oldest packet overall. On every push, if the oldest queued
//! packet has waited longer than [`QUEUE_MAX_DELAY`], one packet is dropped
//! first: the oldest packet of the largest source flow within the largest
//! destination (by bytes). So a congested link sheds the heaviest flows and
//! keeps its size roughly constant. As a hard bound (our addition; ironwood
//! has none) the queue also drops by the same rule while it holds more than
//! [`QUEUE_MAX_BYTES`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::proto::PeerMessage;
use crate::wire::PublicKey;

/// A push finding a packet older than this drops one packet first
/// (ironwood: 25 ms).
pub const QUEUE_MAX_DELAY: Duration = Duration::from_millis(25);
/// Hard cap on the bytes held by one link's queue (our addition).
pub const QUEUE_MAX_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug)]
struct Entry {
    msg: PeerMessage,
    size: usize,
    time: Instant,
}

#[derive(Debug)]
struct Flow {
    source: PublicKey,
    packets: VecDeque<Entry>,
    size: usize,
}

#[derive(Debug)]
struct DestQueue {
    dest: PublicKey,
    flows: Vec<Flow>,
    size: usize,
}

/// The (source, destination) keys a queued packet is accounted under;
/// `None` for messages that are never queued.
pub fn flow_keys(msg: &PeerMessage) -> Option<(PublicKey, PublicKey)> {
    match msg {
        PeerMessage::Traffic(t) => Some((t.source, t.dest)),
        PeerMessage::PathLookup(l) => Some((l.source, l.dest)),
        PeerMessage::PathNotify(n) => Some((n.source, n.dest)),
        PeerMessage::PathBroken(b) => Some((b.source, b.dest)),
        _ => None,
    }
}

/// A fair queue of routed packets.
#[derive(Debug, Default)]
pub struct PacketQueue {
    dests: Vec<DestQueue>,
    size: usize,
    dropped: u64,
}

impl PacketQueue {
    /// Bytes queued.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Packets dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.dests.is_empty()
    }

    /// Queues a routed packet (other messages are ignored), applying the
    /// drop rules first.
    pub fn push(&mut self, msg: PeerMessage, now: Instant) {
        let Some((source, dest)) = flow_keys(&msg) else {
            return;
        };
        if self
            .oldest()
            .is_some_and(|t| now.saturating_duration_since(t) > QUEUE_MAX_DELAY)
        {
            self.drop_one();
        }
        let size = msg.body_len();
        let entry = Entry {
            msg,
            size,
            time: now,
        };
        let di = match self.dests.iter().position(|d| d.dest == dest) {
            Some(i) => i,
            None => {
                self.dests.push(DestQueue {
                    dest,
                    flows: Vec::new(),
                    size: 0,
                });
                self.dests.len() - 1
            }
        };
        let d = &mut self.dests[di];
        let fi = match d.flows.iter().position(|f| f.source == source) {
            Some(i) => i,
            None => {
                d.flows.push(Flow {
                    source,
                    packets: VecDeque::new(),
                    size: 0,
                });
                d.flows.len() - 1
            }
        };
        let f = &mut d.flows[fi];
        f.packets.push_back(entry);
        f.size += size;
        d.size += size;
        self.size += size;
        while self.size > QUEUE_MAX_BYTES && self.drop_one() {}
    }

    fn oldest_pos(&self) -> Option<(usize, usize, Instant)> {
        let mut best: Option<(usize, usize, Instant)> = None;
        for (di, d) in self.dests.iter().enumerate() {
            for (fi, f) in d.flows.iter().enumerate() {
                if let Some(e) = f.packets.front() {
                    if best.is_none_or(|(_, _, t)| e.time < t) {
                        best = Some((di, fi, e.time));
                    }
                }
            }
        }
        best
    }

    fn oldest(&self) -> Option<Instant> {
        self.oldest_pos().map(|(_, _, t)| t)
    }

    fn take(&mut self, di: usize, fi: usize) -> Option<PeerMessage> {
        let d = &mut self.dests[di];
        let f = &mut d.flows[fi];
        let e = f.packets.pop_front()?;
        f.size -= e.size;
        d.size -= e.size;
        self.size -= e.size;
        if f.packets.is_empty() {
            d.flows.swap_remove(fi);
        }
        if d.flows.is_empty() {
            self.dests.swap_remove(di);
        }
        Some(e.msg)
    }

    /// Removes and returns the oldest packet.
    pub fn pop(&mut self) -> Option<PeerMessage> {
        let (di, fi, _) = self.oldest_pos()?;
        self.take(di, fi)
    }

    /// Drops the oldest packet of the largest flow of the largest
    /// destination. Returns whether anything was dropped.
    pub fn drop_one(&mut self) -> bool {
        let Some(di) = (0..self.dests.len()).max_by_key(|&i| self.dests[i].size) else {
            return false;
        };
        let d = &self.dests[di];
        let Some(fi) = (0..d.flows.len()).max_by_key(|&i| d.flows[i].size) else {
            return false;
        };
        let dropped = self.take(di, fi).is_some();
        if dropped {
            self.dropped += 1;
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Traffic;

    fn tr(src: u8, dst: u8, len: usize) -> PeerMessage {
        PeerMessage::Traffic(Traffic {
            path: vec![],
            from: vec![],
            source: [src; 32],
            dest: [dst; 32],
            watermark: u64::MAX,
            payload: vec![0; len],
        })
    }

    #[test]
    fn pops_oldest_first_and_tracks_size() {
        let t0 = Instant::now();
        let mut q = PacketQueue::default();
        q.push(tr(1, 2, 10), t0);
        q.push(tr(3, 4, 10), t0 + Duration::from_millis(1));
        q.push(tr(1, 2, 10), t0 + Duration::from_millis(2));
        assert!(q.size() > 0);
        let order: Vec<u8> = std::iter::from_fn(|| q.pop())
            .map(|m| match m {
                PeerMessage::Traffic(t) => t.source[0],
                _ => 0,
            })
            .collect();
        assert_eq!(order, vec![1, 3, 1]);
        assert_eq!(q.size(), 0);
        assert!(q.is_empty());
    }

    #[test]
    fn delayed_queue_drops_from_the_biggest_flow() {
        let t0 = Instant::now();
        let mut q = PacketQueue::default();
        for i in 0..5 {
            q.push(tr(1, 2, 1000), t0 + Duration::from_micros(i));
        }
        q.push(tr(5, 6, 10), t0 + Duration::from_millis(1));
        // Much later: each push first drops one packet from the 1→2 flow.
        let late = t0 + Duration::from_secs(1);
        q.push(tr(7, 8, 10), late);
        assert_eq!(q.dropped(), 1);
        q.push(tr(7, 8, 10), late);
        assert_eq!(q.dropped(), 2);
        let mut big = 0;
        while let Some(m) = q.pop() {
            if matches!(&m, PeerMessage::Traffic(t) if t.source[0] == 1) {
                big += 1;
            }
        }
        assert_eq!(big, 3);
    }

    #[test]
    fn hard_cap_bounds_bytes() {
        let t0 = Instant::now();
        let mut q = PacketQueue::default();
        for _ in 0..200 {
            q.push(tr(1, 2, 60_000), t0);
        }
        assert!(q.size() <= QUEUE_MAX_BYTES);
        q.push(PeerMessage::KeepAlive, t0);
    }
}
