//! [`Node`]: owns the core task (router, pathfinder and sessions), the
//! listeners and the dialers, all tied to one cancellation token so
//! [`Node::shutdown`] stops them.
//!
//! # Datagrams
//!
//! [`Node::send_to`] / [`Node::try_send_to`] send one datagram (at most
//! [`Node::mtu`] bytes) to an ed25519 key; [`Node::recv_from`] /
//! [`Node::poll_recv_from`] (or the receiver from [`Node::take_receiver`])
//! yield `(source key, bytes)`. Delivery is best effort, like UDP:
//!
//! * outbound datagrams wait in a bounded queue of [`SEND_QUEUE_LEN`]
//!   entries: `send_to` waits for room, `try_send_to` fails with
//!   [`SendError::Full`] (the caller drops the datagram, as a UDP socket
//!   would); past that, routers drop by ironwood's queue rules;
//! * inbound datagrams wait in a bounded queue of [`RECV_QUEUE_LEN`]
//!   entries; when the application does not keep up, new arrivals are
//!   dropped (counted in [`NodeStats::recv_dropped`]).
//!
//! For a QUIC stack (a quinn `AsyncUdpSocket`), call [`Node::take_receiver`]
//! once and poll that receiver from `poll_recv`, and use
//! [`Node::try_send_to`] from `try_send` (map `Full` to `WouldBlock` or
//! drop). Only the first datagram byte type `0x01` (session traffic)
//! reaches the application as datagrams; protocol packets (`0x02`: NodeInfo
//! and the debug requests) are answered here. Session payloads with any
//! other first byte are raw messages of a transport that writes its own
//! header first (ygg_stream, which Mimir 3.x uses): they wait in a queue of
//! their own ([`Node::take_raw_receiver`], same bound) and are sent as they
//! are with [`Node::try_send_raw`].
//!
//! Outbound peers are redialled with yggdrasil-go's backoff: after the n-th
//! consecutive failure wait `1 s << n` (n ≤ [`MAX_BACKOFF_EXPONENT`]), capped
//! by the configured maximum ([`DEFAULT_MAX_BACKOFF`] by default); a
//! completed handshake resets the count.
//!
//! # Layout
//!
//! This file holds the public API: [`Node`] and its methods, the
//! configuration, statistics and errors, and every limit as a named
//! constant. The machinery lives in private child modules, split the way
//! yggdrasil-go splits its `core` package:
//!
//! * `actor`: the core task (router, pathfinder and sessions in one task)
//!   and the requests the rest of the node sends it (`core.go`);
//! * `links`: accepting and dialling connections, the redial backoff, and
//!   running one link from handshake to teardown (`link.go`);
//! * `nodeinfo`: the NodeInfo and debug protocol carried in `0x02` packets
//!   (`nodeinfo.go`, `proto.go`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::identity::Identity;
use crate::proto::{PeerMessage, TRAFFIC_OVERHEAD};
use crate::router::{LinkId, PathEntry, RouterPeer, SelfInfo, TreeEntry};
use crate::session::{SessionStats, SESSION_OVERHEAD};
use crate::session_wire::CORE_TYPE_TRAFFIC;
use crate::uri::{PeerUri, Scheme, UriError};
use crate::wire::PublicKey;

mod actor;
mod dials;
mod links;
mod nodeinfo;

use actor::{core_task, Core, CoreRequest};
pub use dials::{DialStatus, DIAL_WARN_INTERVAL};
use links::{accept_loop, dial_loop};

/// TCP connect timeout for outbound peers (yggdrasil-go's dialer).
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on the redial backoff (yggdrasil-go: `1 s << 12`, 1h8m16s).
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(1 << 12);
/// Largest backoff exponent (yggdrasil-go stops incrementing at 32).
pub const MAX_BACKOFF_EXPONENT: u32 = 32;
/// Outbound datagrams waiting for the core task.
pub const SEND_QUEUE_LEN: usize = 1024;
/// Inbound datagrams waiting for the application.
pub const RECV_QUEUE_LEN: usize = 1024;
/// Traffic packets read from links and waiting for the core task. Link
/// readers never block (the 3-second liveness rule); when the core falls
/// this far behind, further traffic is dropped (tree and path messages are
/// never dropped).
pub const LINK_TRAFFIC_QUEUE_LEN: usize = 4096;
/// Largest NodeInfo JSON (yggdrasil-go: 16384 bytes).
pub const MAX_NODE_INFO_LEN: usize = 16384;
/// How long [`Node::get_node_info`] waits (yggdrasil-go's admin handler: 6 s).
pub const NODE_INFO_TIMEOUT: Duration = Duration::from_secs(6);
/// Most outstanding NodeInfo requests (our bound).
pub const MAX_PENDING_NODE_INFO: usize = 256;
/// The application MTU: Yggdrasil's `min(65535, encrypted MTU − 1)`.
pub const MTU: usize = {
    let network = crate::link::PEER_MAX_MESSAGE_SIZE as usize - TRAFFIC_OVERHEAD;
    let encrypted = network - SESSION_OVERHEAD;
    if encrypted - 1 < 65535 {
        encrypted - 1
    } else {
        65535
    }
};

/// A received datagram: the sender's key and the bytes.
pub type Datagram = (PublicKey, Vec<u8>);

/// Why a datagram was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The datagram is larger than [`Node::mtu`].
    #[error("datagram of {0} bytes exceeds the MTU")]
    TooLarge(usize),
    /// The send queue is full (only from [`Node::try_send_to`]).
    #[error("send queue full")]
    Full,
    /// The node has shut down.
    #[error("node is shut down")]
    Closed,
    /// A raw message whose first byte is one of Yggdrasil's session types.
    #[error("raw message starts with the reserved session type {0:#04x}")]
    Reserved(u8),
}

/// Table sizes, for monitoring and the no-unbounded-growth tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Tree infos known.
    pub tree_infos: usize,
    /// Stored paths.
    pub paths: usize,
    /// Outstanding lookups (rumours).
    pub rumors: usize,
    /// Encrypted sessions.
    pub sessions: usize,
    /// Destinations with a message waiting for a session.
    pub session_buffers: usize,
    /// Bytes waiting for sessions.
    pub buffered_bytes: usize,
    /// Bytes in all link packet queues.
    pub queued_bytes: usize,
    /// Outstanding NodeInfo requests.
    pub pending_requests: usize,
    /// Inbound datagrams dropped because the application was slow.
    pub recv_dropped: u64,
    /// Traffic packets from links dropped because the core task was behind
    /// (see [`LINK_TRAFFIC_QUEUE_LEN`]).
    pub link_traffic_dropped: u64,
}

/// Node configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Outbound peers, redialled forever.
    pub peers: Vec<PeerUri>,
    /// Listen addresses (`tcp://host:port`, port 0 picks a free one;
    /// `password=` and `priority=` apply to inbound links).
    pub listen: Vec<PeerUri>,
    /// Cap on the redial backoff.
    pub max_backoff: Duration,
    /// The JSON object answered to NodeInfo requests (at most
    /// [`MAX_NODE_INFO_LEN`] bytes serialised), e.g.
    /// `{"name":"mediatord","version":"0.1.0"}`.
    pub node_info: Map<String, Value>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            peers: Vec::new(),
            listen: Vec::new(),
            max_backoff: DEFAULT_MAX_BACKOFF,
            node_info: Map::new(),
        }
    }
}

/// Errors from starting a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A URI did not parse.
    #[error("bad uri: {0}")]
    Uri(#[from] UriError),
    /// A listener could not be bound.
    #[error("listen on {uri}: {source}")]
    Listen {
        /// The listen URI.
        uri: String,
        /// The bind error.
        source: std::io::Error,
    },
    /// The transport in the URI is not implemented.
    #[error("transport not supported: {0}")]
    Unsupported(String),
    /// The TLS configuration could not be built.
    #[error("tls: {0}")]
    Tls(String),
    /// The node has shut down.
    #[error("node is shut down")]
    Closed,
    /// The NodeInfo object serialises to more than [`MAX_NODE_INFO_LEN`].
    #[error("NodeInfo is {0} bytes, more than {MAX_NODE_INFO_LEN}")]
    NodeInfoTooLarge(usize),
    /// The datagram receiver was handed out by [`Node::take_receiver`].
    #[error("the datagram receiver was taken")]
    ReceiverTaken,
    /// A remote request got no answer in time.
    #[error("timed out")]
    Timeout,
    /// A remote answer was not valid JSON.
    #[error("bad response: {0}")]
    BadResponse(String),
}

/// A live link, for diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Link id (also the connection order).
    pub link: LinkId,
    /// Remote node key.
    pub key: PublicKey,
    /// Remote socket address.
    pub remote: SocketAddr,
    /// Whether the remote dialled us.
    pub inbound: bool,
    /// Effective link priority.
    pub priority: u8,
    /// The configured URI, for outbound links (without query).
    pub uri: Option<String>,
    /// When the handshake completed.
    pub up_since: SystemTime,
}

/// State shared by the [`Node`] handle and its link tasks.
struct Inner {
    id: Identity,
    /// Requests to the core task: link events, tree/path messages and
    /// diagnostics (unbounded: these are never dropped).
    core_tx: mpsc::UnboundedSender<CoreRequest>,
    /// Traffic from links to the core task (at most
    /// [`LINK_TRAFFIC_QUEUE_LEN`]; overflow is counted in `traffic_dropped`).
    traffic_tx: mpsc::Sender<(LinkId, PeerMessage)>,
    traffic_dropped: AtomicU64,
    send_tx: mpsc::Sender<Datagram>,
    recv_rx: Mutex<Option<mpsc::Receiver<Datagram>>>,
    /// Raw session payloads (first byte not a session type), see the module docs.
    raw_rx: Mutex<Option<mpsc::Receiver<Datagram>>>,
    links: Mutex<HashMap<LinkId, PeerInfo>>,
    next_link: AtomicU64,
    tls_client: Arc<rustls::ClientConfig>,
    /// Configured outbound peers and the tokens that stop their dialers.
    dialers: Mutex<Vec<(PeerUri, CancellationToken)>>,
    /// What each dialer last saw.
    dials: dials::Dials,
    max_backoff: Duration,
    tls_server: Option<Arc<rustls::ServerConfig>>,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

/// A running Yggdrasil node. See the module docs for the datagram API.
pub struct Node {
    inner: Arc<Inner>,
    listen_addrs: Vec<SocketAddr>,
}

impl Node {
    /// Starts a node from a 32-byte ed25519 seed: binds the listeners, then
    /// spawns the router, the accept loops and one dialer per peer.
    pub async fn start(seed: [u8; 32], config: NodeConfig) -> Result<Node, NodeError> {
        let id = Identity::from_seed(&seed);
        let node_info = serde_json::to_vec(&config.node_info).unwrap_or_default();
        if node_info.len() > MAX_NODE_INFO_LEN {
            return Err(NodeError::NodeInfoTooLarge(node_info.len()));
        }
        let tls_err = |e: crate::tls::TlsError| NodeError::Tls(e.to_string());
        // Always built: `tls://` peers may be added at run time.
        let tls_client = crate::tls::client_config(&id).map_err(tls_err)?;
        let tls_server = match config.listen.iter().any(|u| u.scheme == Scheme::Tls) {
            true => Some(crate::tls::server_config(&id).map_err(tls_err)?),
            false => None,
        };
        let mut listeners = Vec::new();
        for u in &config.listen {
            let l = TcpListener::bind(u.socket_addr_string())
                .await
                .map_err(|source| NodeError::Listen {
                    uri: u.to_string(),
                    source,
                })?;
            listeners.push((l, u.clone()));
        }
        let (core_tx, core_rx) = mpsc::unbounded_channel();
        let (traffic_tx, traffic_rx) = mpsc::channel(LINK_TRAFFIC_QUEUE_LEN);
        let (send_tx, send_rx) = mpsc::channel(SEND_QUEUE_LEN);
        let (recv_tx, recv_rx) = mpsc::channel(RECV_QUEUE_LEN);
        let (raw_tx, raw_rx) = mpsc::channel(RECV_QUEUE_LEN);
        let inner = Arc::new(Inner {
            id: id.clone(),
            core_tx,
            traffic_tx,
            traffic_dropped: AtomicU64::new(0),
            send_tx,
            recv_rx: Mutex::new(Some(recv_rx)),
            raw_rx: Mutex::new(Some(raw_rx)),
            links: Mutex::new(HashMap::new()),
            next_link: AtomicU64::new(1),
            tls_client,
            dialers: Mutex::new(Vec::new()),
            dials: Default::default(),
            max_backoff: config.max_backoff,
            tls_server,
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        let span = tracing::debug_span!("ygg", node = %hex::encode(&id.public_key()[..4]));
        let core = Core::new(id, node_info, recv_tx, raw_tx);
        inner.tasks.spawn(tracing::Instrument::instrument(
            core_task(core, core_rx, traffic_rx, send_rx, inner.cancel.clone()),
            span,
        ));
        let mut listen_addrs = Vec::new();
        for (l, u) in listeners {
            if let Ok(a) = l.local_addr() {
                info!("listening on tcp://{a}");
                listen_addrs.push(a);
            }
            inner.tasks.spawn(accept_loop(inner.clone(), l, u));
        }
        let node = Node {
            inner,
            listen_addrs,
        };
        for u in config.peers {
            node.add_peer(u);
        }
        Ok(node)
    }

    /// Adds an outbound peer at run time and starts dialling it. Returns
    /// false (and changes nothing) when the same URI is already configured.
    pub fn add_peer(&self, uri: PeerUri) -> bool {
        let mut dialers = lock(&self.inner.dialers);
        if dialers.iter().any(|(u, _)| *u == uri) || self.inner.cancel.is_cancelled() {
            return false;
        }
        let token = self.inner.cancel.child_token();
        dialers.push((uri.clone(), token.clone()));
        info!("peer {uri} added");
        self.inner.tasks.spawn(dial_loop(
            self.inner.clone(),
            uri,
            self.inner.max_backoff,
            token,
        ));
        true
    }

    /// Removes an outbound peer at run time: its dialer stops and its link,
    /// if up, is closed. Returns false when the URI was not configured.
    pub fn remove_peer(&self, uri: &PeerUri) -> bool {
        let mut dialers = lock(&self.inner.dialers);
        let Some(i) = dialers.iter().position(|(u, _)| u == uri) else {
            return false;
        };
        let (_, token) = dialers.remove(i);
        token.cancel();
        self.inner.dials.remove(uri);
        info!("peer {uri} removed");
        true
    }

    /// Each configured outbound peer's dialing state, in the order they were added.
    pub fn dial_status(&self) -> Vec<DialStatus> {
        lock(&self.inner.dialers)
            .iter()
            .map(|(u, _)| self.inner.dials.status(u))
            .collect()
    }

    /// The configured outbound peers, in the order they were added.
    pub fn configured_peers(&self) -> Vec<PeerUri> {
        lock(&self.inner.dialers)
            .iter()
            .map(|(u, _)| u.clone())
            .collect()
    }

    /// Makes the configured outbound peers exactly `peers` (what a reload
    /// does): peers no longer listed are removed, new ones added, and the
    /// links of unchanged ones are left alone. Returns (added, removed).
    pub fn set_peers(&self, peers: &[PeerUri]) -> (usize, usize) {
        let current = self.configured_peers();
        let removed = current
            .iter()
            .filter(|u| !peers.contains(u))
            .filter(|u| self.remove_peer(u))
            .count();
        let added = peers.iter().filter(|u| self.add_peer((*u).clone())).count();
        (added, removed)
    }

    /// Our ed25519 public key (the node's address).
    pub fn public_key(&self) -> PublicKey {
        self.inner.id.public_key()
    }

    /// Bound listener addresses, in config order.
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        &self.listen_addrs
    }

    /// Live links.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let mut v: Vec<PeerInfo> = lock(&self.inner.links).values().cloned().collect();
        v.sort_by_key(|p| p.link);
        v
    }

    async fn ask<T>(
        &self,
        f: impl FnOnce(oneshot::Sender<T>) -> CoreRequest,
    ) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .core_tx
            .send(f(tx))
            .map_err(|_| NodeError::Closed)?;
        rx.await.map_err(|_| NodeError::Closed)
    }

    /// The tree infos the router knows (like `yggdrasilctl getTree`).
    pub async fn tree(&self) -> Result<Vec<TreeEntry>, NodeError> {
        self.ask(CoreRequest::Tree).await
    }

    /// Our root, parent and coordinates.
    pub async fn self_info(&self) -> Result<SelfInfo, NodeError> {
        self.ask(CoreRequest::SelfInfo).await
    }

    /// Links as the router sees them (port, cost, the peer's root).
    pub async fn router_peers(&self) -> Result<Vec<RouterPeer>, NodeError> {
        self.ask(CoreRequest::Peers).await
    }

    /// Known paths (like `yggdrasilctl getPaths`).
    pub async fn paths(&self) -> Result<Vec<PathEntry>, NodeError> {
        self.ask(CoreRequest::Paths).await
    }

    /// Encrypted sessions (like `yggdrasilctl getSessions`).
    pub async fn sessions(&self) -> Result<Vec<SessionStats>, NodeError> {
        self.ask(CoreRequest::Sessions).await
    }

    /// Table sizes and drop counters.
    pub async fn stats(&self) -> Result<NodeStats, NodeError> {
        let mut st = self.ask(CoreRequest::Stats).await?;
        st.link_traffic_dropped = self.inner.traffic_dropped.load(Ordering::Relaxed);
        Ok(st)
    }

    /// Starts a path lookup for `key` without sending data.
    pub fn lookup(&self, key: PublicKey) {
        let _ = self.inner.core_tx.send(CoreRequest::Lookup(key));
    }

    /// Asks `key` for its NodeInfo (what `yggdrasilctl getNodeInfo` does),
    /// waiting up to [`NODE_INFO_TIMEOUT`].
    pub async fn get_node_info(&self, key: PublicKey) -> Result<Value, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .core_tx
            .send(CoreRequest::NodeInfo(key, tx))
            .map_err(|_| NodeError::Closed)?;
        let bytes = tokio::time::timeout(NODE_INFO_TIMEOUT, rx)
            .await
            .map_err(|_| NodeError::Timeout)?
            .map_err(|_| NodeError::Closed)?;
        serde_json::from_slice(&bytes).map_err(|e| NodeError::BadResponse(e.to_string()))
    }

    /// Largest datagram [`Node::send_to`] accepts (65535).
    pub fn mtu(&self) -> usize {
        MTU
    }

    fn frame(data: &[u8]) -> Result<Vec<u8>, SendError> {
        if data.len() > MTU {
            return Err(SendError::TooLarge(data.len()));
        }
        let mut v = Vec::with_capacity(data.len() + 1);
        v.push(CORE_TYPE_TRAFFIC);
        v.extend_from_slice(data);
        Ok(v)
    }

    /// Sends one datagram to the node with ed25519 key `key`, waiting while
    /// the send queue is full. Delivery is not guaranteed.
    pub async fn send_to(&self, key: PublicKey, data: &[u8]) -> Result<(), SendError> {
        let v = Self::frame(data)?;
        self.inner
            .send_tx
            .send((key, v))
            .await
            .map_err(|_| SendError::Closed)
    }

    /// Like [`Node::send_to`] but never waits: a full queue gives
    /// [`SendError::Full`] and the datagram is not sent.
    pub fn try_send_to(&self, key: PublicKey, data: &[u8]) -> Result<(), SendError> {
        let v = Self::frame(data)?;
        self.inner.send_tx.try_send((key, v)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Full,
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })
    }

    /// Polls for the next datagram. Fails with [`NodeError::ReceiverTaken`]
    /// after [`Node::take_receiver`], and [`NodeError::Closed`] after
    /// shutdown.
    pub fn poll_recv_from(&self, cx: &mut Context<'_>) -> Poll<Result<Datagram, NodeError>> {
        let mut guard = lock(&self.inner.recv_rx);
        let Some(rx) = guard.as_mut() else {
            return Poll::Ready(Err(NodeError::ReceiverTaken));
        };
        rx.poll_recv(cx).map(|d| d.ok_or(NodeError::Closed))
    }

    /// Waits for the next datagram: `(source key, bytes)`.
    pub async fn recv_from(&self) -> Result<Datagram, NodeError> {
        std::future::poll_fn(|cx| self.poll_recv_from(cx)).await
    }

    /// Sends `data` as the whole session payload, without a type byte: for a transport
    /// that writes its own header (ygg_stream). Never waits, like [`Node::try_send_to`]. A
    /// message starting with a session type byte (0x01, 0x02) is refused: the peer would
    /// take it for Yggdrasil traffic.
    pub fn try_send_raw(&self, key: PublicKey, data: Vec<u8>) -> Result<(), SendError> {
        match data.first() {
            Some(&b) if b == CORE_TYPE_TRAFFIC || b == crate::session_wire::CORE_TYPE_PROTO => {
                return Err(SendError::Reserved(b))
            }
            _ if data.len() > MTU + 1 => return Err(SendError::TooLarge(data.len())),
            _ => {}
        }
        self.inner
            .send_tx
            .try_send((key, data))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SendError::Full,
                mpsc::error::TrySendError::Closed(_) => SendError::Closed,
            })
    }

    /// Hands out the receiver of raw session payloads (once): `(source key, payload)` for
    /// every payload whose first byte is not a session type.
    pub fn take_raw_receiver(&self) -> Option<mpsc::Receiver<Datagram>> {
        lock(&self.inner.raw_rx).take()
    }

    /// Hands out the datagram receiver (once), e.g. for a QUIC socket
    /// adapter that polls it directly; afterwards [`Node::recv_from`] fails.
    pub fn take_receiver(&self) -> Option<mpsc::Receiver<Datagram>> {
        lock(&self.inner.recv_rx).take()
    }

    /// Stops every task and waits for them.
    pub async fn shutdown(self) {
        self.stop().await;
    }

    /// Like [`Node::shutdown`], for a node shared behind an `Arc` whose other
    /// holders (a QUIC endpoint's socket, say) may outlive this call: links
    /// close and tasks end; later sends fail with [`SendError::Closed`].
    pub async fn stop(&self) {
        self.inner.cancel.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.inner.cancel.cancel();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
