//! The core actor (yggdrasil-go's `core.go` with ironwood's router actor):
//! one task owns the [`Router`] (spanning tree, bloom filters, pathfinder,
//! traffic forwarding), the [`SessionManager`] and the NodeInfo/debug
//! handler, so none of them needs a lock. Everything else talks to it by
//! message: link tasks and the [`Node`](super::Node) handle send
//! [`CoreRequest`]s (unbounded, never dropped), link readers send traffic
//! on a bounded queue, and the application's datagrams arrive on the send
//! queue. The task drains both data queues in batches of at most
//! [`SEND_BATCH`] so control requests and maintenance keep their turn, and
//! it runs the router's maintenance every [`MAINTENANCE_INTERVAL`].

use std::collections::HashMap;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::nodeinfo::ProtoHandler;
use super::{Datagram, NodeStats};
use crate::identity::Identity;
use crate::link::LinkSender;
use crate::proto::PeerMessage;
use crate::router::{
    LinkId, Outbox, PathEntry, Router, RouterPeer, SelfInfo, TreeEntry, MAINTENANCE_INTERVAL,
};
use crate::session::{SessionManager, SessionOutput, SessionStats};
use crate::session_wire::{CORE_TYPE_PROTO, CORE_TYPE_TRAFFIC};
use crate::wire::PublicKey;

/// Most queued application datagrams (or link traffic packets) handled per
/// wake-up before other events get a turn.
const SEND_BATCH: usize = 64;

/// A request to the core task. Queries carry the channel their answer
/// goes back on; a dropped answer channel means the node shut down (or,
/// for [`CoreRequest::NodeInfo`], that the request was refused).
pub(super) enum CoreRequest {
    /// A link completed its handshake; `tx` sends to it.
    Add {
        link: LinkId,
        key: PublicKey,
        prio: u8,
        tx: LinkSender,
    },
    /// A link closed.
    Remove { link: LinkId },
    /// A tree or path message from a link (traffic takes the bounded
    /// traffic queue, but is handled through this variant too).
    Message { link: LinkId, msg: PeerMessage },
    /// The tree table.
    Tree(oneshot::Sender<Vec<TreeEntry>>),
    /// Our root, parent and coordinates.
    SelfInfo(oneshot::Sender<SelfInfo>),
    /// Links as the router sees them.
    Peers(oneshot::Sender<Vec<RouterPeer>>),
    /// Known paths.
    Paths(oneshot::Sender<Vec<PathEntry>>),
    /// Encrypted sessions.
    Sessions(oneshot::Sender<Vec<SessionStats>>),
    /// Table sizes and the core's drop counter.
    Stats(oneshot::Sender<NodeStats>),
    /// Ask a remote node for its NodeInfo; the answer is its raw JSON.
    NodeInfo(PublicKey, oneshot::Sender<Vec<u8>>),
    /// Start a path lookup without sending data.
    Lookup(PublicKey),
}

/// Everything the core task owns: the router (tree, pathfinder, traffic),
/// the sessions and the Yggdrasil protocol handlers.
pub(super) struct Core {
    id: Identity,
    router: Router,
    sessions: SessionManager,
    out: Outbox,
    senders: HashMap<LinkId, LinkSender>,
    proto: ProtoHandler,
    recv_tx: mpsc::Sender<Datagram>,
    /// Raw payloads (no session type byte first), for a transport such as ygg_stream.
    raw_tx: mpsc::Sender<Datagram>,
    recv_dropped: u64,
}

impl Core {
    /// A core for `id` answering NodeInfo requests with `node_info` (JSON,
    /// already bounded by the caller), delivering datagrams to `recv_tx` and raw payloads
    /// to `raw_tx`.
    pub(super) fn new(
        id: Identity,
        node_info: Vec<u8>,
        recv_tx: mpsc::Sender<Datagram>,
        raw_tx: mpsc::Sender<Datagram>,
    ) -> Self {
        let (router, out) = Router::new(id.clone(), Instant::now());
        Self {
            sessions: SessionManager::new(id.clone()),
            id,
            router,
            out,
            senders: HashMap::new(),
            proto: ProtoHandler::new(node_info),
            recv_tx,
            raw_tx,
            recv_dropped: 0,
        }
    }

    fn dispatch(&mut self) {
        for (link, msg) in self.out.drain(..) {
            if let Some(tx) = self.senders.get(&link) {
                let _ = tx.send(msg);
            }
        }
    }

    /// Sends a plaintext (core type byte included) to `to` over a session;
    /// plaintext for our own key is handled locally.
    fn send_plain(&mut self, now: Instant, to: PublicKey, plain: Vec<u8>) {
        if to == self.id.public_key() {
            let mut so = SessionOutput::default();
            so.recv.push((to, plain));
            self.pump(now, so);
            return;
        }
        let mut so = SessionOutput::default();
        self.sessions.write_to(now, to, plain, &mut so);
        self.pump(now, so);
    }

    /// Runs session output through the router and delivered traffic through
    /// the sessions until nothing is left.
    fn pump(&mut self, now: Instant, mut so: SessionOutput) {
        loop {
            for (dest, bytes) in std::mem::take(&mut so.send) {
                self.router.send_traffic(now, dest, bytes, &mut self.out);
            }
            for (from, msg) in std::mem::take(&mut so.recv) {
                self.handle_plain(now, from, msg, &mut so);
            }
            for tr in self.router.take_delivered() {
                self.sessions
                    .handle_data(now, tr.source, &tr.payload, &mut so);
            }
            if so.send.is_empty() && so.recv.is_empty() {
                break;
            }
        }
    }

    fn handle_plain(
        &mut self,
        now: Instant,
        from: PublicKey,
        msg: Vec<u8>,
        so: &mut SessionOutput,
    ) {
        match msg.first().copied() {
            Some(CORE_TYPE_TRAFFIC) => {
                let data = msg[1..].to_vec();
                if self.recv_tx.try_send((from, data)).is_err() {
                    self.recv_dropped += 1;
                }
            }
            Some(CORE_TYPE_PROTO) => {
                let reply = self
                    .proto
                    .handle(from, &msg[1..], self.id.public_key(), &self.router);
                if let Some(reply) = reply {
                    if from == self.id.public_key() {
                        so.recv.push((from, reply));
                    } else {
                        self.sessions.write_to(now, from, reply, so);
                    }
                }
            }
            // A raw transport's message (ygg_stream), handed over whole.
            Some(_) if self.raw_tx.try_send((from, msg)).is_err() => self.recv_dropped += 1,
            _ => {}
        }
    }

    fn stats(&self) -> NodeStats {
        let (paths, rumors) = self.router.pathfinder_counts();
        let (sessions, session_buffers, buffered_bytes) = self.sessions.counts();
        NodeStats {
            tree_infos: self.router.tree().len(),
            paths,
            rumors,
            sessions,
            session_buffers,
            buffered_bytes,
            queued_bytes: self.senders.values().map(LinkSender::queued_bytes).sum(),
            pending_requests: self.proto.pending_requests(),
            recv_dropped: self.recv_dropped,
            link_traffic_dropped: 0,
        }
    }

    fn handle_request(&mut self, req: CoreRequest) {
        let now = Instant::now();
        match req {
            CoreRequest::Add {
                link,
                key,
                prio,
                tx,
            } => {
                self.senders.insert(link, tx);
                let port = self.router.add_peer(now, link, key, prio, &mut self.out);
                debug!(link, port, key = %hex::encode(key), "peer added");
            }
            CoreRequest::Remove { link } => {
                self.senders.remove(&link);
                self.router.remove_peer(now, link, &mut self.out);
            }
            CoreRequest::Message { link, msg } => {
                self.router.handle_message(now, link, msg, &mut self.out);
                self.pump(now, SessionOutput::default());
            }
            CoreRequest::Tree(tx) => {
                let _ = tx.send(self.router.tree());
            }
            CoreRequest::SelfInfo(tx) => {
                let _ = tx.send(self.router.self_info());
            }
            CoreRequest::Peers(tx) => {
                let _ = tx.send(self.router.peers());
            }
            CoreRequest::Paths(tx) => {
                let _ = tx.send(self.router.paths());
            }
            CoreRequest::Sessions(tx) => {
                let _ = tx.send(self.sessions.stats());
            }
            CoreRequest::Stats(tx) => {
                let _ = tx.send(self.stats());
            }
            CoreRequest::NodeInfo(key, tx) => {
                // `None` drops `tx`, which fails the request.
                if let Some(plain) = self.proto.request_node_info(key, tx) {
                    self.send_plain(now, key, plain);
                }
            }
            CoreRequest::Lookup(key) => self.router.send_lookup(now, key, &mut self.out),
        }
    }

    fn maintenance(&mut self) {
        let now = Instant::now();
        self.router.maintenance(now, &mut self.out);
        self.sessions.poll_timers(now);
        self.proto.prune();
    }
}

/// The core task: runs until `cancel` fires or a request channel closes.
pub(super) async fn core_task(
    mut core: Core,
    mut rx: mpsc::UnboundedReceiver<CoreRequest>,
    mut traffic_rx: mpsc::Receiver<(LinkId, PeerMessage)>,
    mut send_rx: mpsc::Receiver<Datagram>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + MAINTENANCE_INTERVAL,
        MAINTENANCE_INTERVAL,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        core.dispatch();
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => core.maintenance(),
            req = rx.recv() => {
                let Some(req) = req else { return };
                core.handle_request(req);
            }
            t = traffic_rx.recv() => {
                let Some((link, msg)) = t else { return };
                core.handle_request(CoreRequest::Message { link, msg });
                for _ in 1..SEND_BATCH {
                    match traffic_rx.try_recv() {
                        Ok((link, msg)) => core.handle_request(CoreRequest::Message { link, msg }),
                        Err(_) => break,
                    }
                }
            }
            d = send_rx.recv() => {
                let Some((key, data)) = d else { return };
                let now = Instant::now();
                core.send_plain(now, key, data);
                for _ in 1..SEND_BATCH {
                    match send_rx.try_recv() {
                        Ok((key, data)) => core.send_plain(now, key, data),
                        Err(_) => break,
                    }
                }
            }
        }
    }
}
