//! [`Node`]: owns the router task, the listeners and the dialers, all as
//! tasks tied to one cancellation token so [`Node::shutdown`] stops them.
//!
//! Outbound peers are redialled with yggdrasil-go's backoff: after the n-th
//! consecutive failure wait `1 s << n` (n ≤ [`MAX_BACKOFF_EXPONENT`]), capped
//! by the configured maximum ([`DEFAULT_MAX_BACKOFF`] by default); a
//! completed handshake resets the count.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use crate::identity::Identity;
use crate::link::{self, LinkError, LinkOptions, LinkSender};
use crate::proto::PeerMessage;
use crate::router::{
    LinkId, Outbox, Router, RouterPeer, SelfInfo, TreeEntry, MAINTENANCE_INTERVAL,
};
use crate::uri::{PeerUri, Scheme, UriError};
use crate::wire::PublicKey;

/// TCP connect timeout for outbound peers (yggdrasil-go's dialer).
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on the redial backoff (yggdrasil-go: `1 s << 12`, 1h8m16s).
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(1 << 12);
/// Largest backoff exponent (yggdrasil-go stops incrementing at 32).
pub const MAX_BACKOFF_EXPONENT: u32 = 32;

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
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            peers: Vec::new(),
            listen: Vec::new(),
            max_backoff: DEFAULT_MAX_BACKOFF,
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
    /// The transport in the URI is not implemented yet.
    #[error("transport not supported yet: {0}")]
    Unsupported(String),
    /// The node has shut down.
    #[error("node is shut down")]
    Closed,
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

enum RouterEvent {
    Add {
        link: LinkId,
        key: PublicKey,
        prio: u8,
        tx: LinkSender,
    },
    Remove {
        link: LinkId,
    },
    Message {
        link: LinkId,
        msg: PeerMessage,
    },
    Tree(oneshot::Sender<Vec<TreeEntry>>),
    SelfInfo(oneshot::Sender<SelfInfo>),
    Peers(oneshot::Sender<Vec<RouterPeer>>),
}

struct Inner {
    id: Identity,
    router_tx: mpsc::UnboundedSender<RouterEvent>,
    links: Mutex<HashMap<LinkId, PeerInfo>>,
    next_link: AtomicU64,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

/// A running Yggdrasil node.
///
/// Planned (not built yet): `send_to(key, bytes)`, `recv_from() -> (key,
/// bytes)` and `mtu()` once the pathfinder and session layer exist.
pub struct Node {
    inner: Arc<Inner>,
    listen_addrs: Vec<SocketAddr>,
}

impl Node {
    /// Starts a node from a 32-byte ed25519 seed: binds the listeners, then
    /// spawns the router, the accept loops and one dialer per peer.
    pub async fn start(seed: [u8; 32], config: NodeConfig) -> Result<Node, NodeError> {
        let id = Identity::from_seed(&seed);
        for u in config.peers.iter().chain(config.listen.iter()) {
            if u.scheme != Scheme::Tcp {
                return Err(NodeError::Unsupported(u.to_string()));
            }
        }
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
        let (router_tx, router_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            id: id.clone(),
            router_tx,
            links: Mutex::new(HashMap::new()),
            next_link: AtomicU64::new(1),
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        inner
            .tasks
            .spawn(router_task(id, router_rx, inner.cancel.clone()));
        let mut listen_addrs = Vec::new();
        for (l, u) in listeners {
            if let Ok(a) = l.local_addr() {
                info!("listening on tcp://{a}");
                listen_addrs.push(a);
            }
            inner.tasks.spawn(accept_loop(inner.clone(), l, u));
        }
        for u in config.peers {
            inner
                .tasks
                .spawn(dial_loop(inner.clone(), u, config.max_backoff));
        }
        Ok(Node {
            inner,
            listen_addrs,
        })
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
        f: impl FnOnce(oneshot::Sender<T>) -> RouterEvent,
    ) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .router_tx
            .send(f(tx))
            .map_err(|_| NodeError::Closed)?;
        rx.await.map_err(|_| NodeError::Closed)
    }

    /// The tree infos the router knows (like `yggdrasilctl getTree`).
    pub async fn tree(&self) -> Result<Vec<TreeEntry>, NodeError> {
        self.ask(RouterEvent::Tree).await
    }

    /// Our root, parent and coordinates.
    pub async fn self_info(&self) -> Result<SelfInfo, NodeError> {
        self.ask(RouterEvent::SelfInfo).await
    }

    /// Links as the router sees them (port, cost, the peer's root).
    pub async fn router_peers(&self) -> Result<Vec<RouterPeer>, NodeError> {
        self.ask(RouterEvent::Peers).await
    }

    /// Stops every task and waits for them.
    pub async fn shutdown(self) {
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

async fn router_task(
    id: Identity,
    mut rx: mpsc::UnboundedReceiver<RouterEvent>,
    cancel: CancellationToken,
) {
    let (mut router, mut out) = Router::new(id, std::time::Instant::now());
    let mut senders: HashMap<LinkId, LinkSender> = HashMap::new();
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + MAINTENANCE_INTERVAL,
        MAINTENANCE_INTERVAL,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        dispatch(&senders, &mut out);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => router.maintenance(std::time::Instant::now(), &mut out),
            ev = rx.recv() => {
                let Some(ev) = ev else { return };
                let now = std::time::Instant::now();
                match ev {
                    RouterEvent::Add { link, key, prio, tx } => {
                        senders.insert(link, tx);
                        let port = router.add_peer(now, link, key, prio, &mut out);
                        debug!(link, port, key = %hex::encode(key), "peer added");
                    }
                    RouterEvent::Remove { link } => {
                        senders.remove(&link);
                        router.remove_peer(now, link, &mut out);
                    }
                    RouterEvent::Message { link, msg } => router.handle_message(now, link, msg, &mut out),
                    RouterEvent::Tree(tx) => { let _ = tx.send(router.tree()); }
                    RouterEvent::SelfInfo(tx) => { let _ = tx.send(router.self_info()); }
                    RouterEvent::Peers(tx) => { let _ = tx.send(router.peers()); }
                }
            }
        }
    }
}

fn dispatch(senders: &HashMap<LinkId, LinkSender>, out: &mut Outbox) {
    for (link, msg) in out.drain(..) {
        if let Some(tx) = senders.get(&link) {
            let _ = tx.send(msg);
        }
    }
}

/// Handshakes and runs one connection to completion. Returns whether the
/// handshake succeeded, and the error that ended the link.
async fn serve_conn(
    inner: Arc<Inner>,
    mut stream: TcpStream,
    opts: LinkOptions,
    inbound: bool,
    uri: Option<String>,
) -> (bool, LinkError) {
    let remote = match stream.peer_addr() {
        Ok(a) => a,
        Err(e) => return (false, e.into()),
    };
    let _ = stream.set_nodelay(true);
    let hs = tokio::select! {
        r = link::handshake(&mut stream, &inner.id, &opts) => r,
        _ = inner.cancel.cancelled() => Err(LinkError::Shutdown),
    };
    let (meta, priority) = match hs {
        Ok(v) => v,
        Err(e) => return (false, e),
    };
    let link = inner.next_link.fetch_add(1, Ordering::Relaxed);
    let key = meta.public_key;
    info!(
        "connected {}: {}@{remote}",
        if inbound { "inbound" } else { "outbound" },
        crate::address::ipv6_for_key(&key)
    );
    lock(&inner.links).insert(
        link,
        PeerInfo {
            link,
            key,
            remote,
            inbound,
            priority,
            uri,
            up_since: SystemTime::now(),
        },
    );
    let (tx, rx) = mpsc::unbounded_channel();
    let router_tx = inner.router_tx.clone();
    let _ = router_tx.send(RouterEvent::Add {
        link,
        key,
        prio: priority,
        tx,
    });
    let deliver_tx = router_tx.clone();
    let deliver = move |msg| deliver_tx.send(RouterEvent::Message { link, msg }).is_ok();
    let err = tokio::select! {
        r = link::run(stream, inner.id.public_key(), key, rx, deliver) => match r {
            Ok(()) => LinkError::Closed,
            Err(e) => e,
        },
        _ = inner.cancel.cancelled() => LinkError::Shutdown,
    };
    let _ = router_tx.send(RouterEvent::Remove { link });
    lock(&inner.links).remove(&link);
    info!("disconnected {remote}: {err}");
    (true, err)
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener, uri: PeerUri) {
    let opts = LinkOptions {
        pinned_keys: Vec::new(),
        password: uri.password.clone(),
        priority: uri.priority,
    };
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = inner.cancel.cancelled() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                let inner2 = inner.clone();
                let opts = opts.clone();
                inner.tasks.spawn(async move {
                    let (_, err) = serve_conn(inner2, stream, opts, true, None).await;
                    debug!("inbound link ended: {err}");
                });
            }
            Err(e) => {
                debug!("accept on {uri}: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = inner.cancel.cancelled() => return,
                }
            }
        }
    }
}

async fn dial_loop(inner: Arc<Inner>, uri: PeerUri, max_backoff: Duration) {
    let opts = LinkOptions {
        pinned_keys: uri.pinned_keys.clone(),
        password: uri.password.clone(),
        priority: uri.priority,
    };
    let mut backoff: u32 = 0;
    loop {
        if inner.cancel.is_cancelled() {
            return;
        }
        let addr = uri.socket_addr_string();
        let conn = tokio::select! {
            r = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(&addr)) => r,
            _ = inner.cancel.cancelled() => return,
        };
        match conn {
            Ok(Ok(stream)) => {
                let (ok, err) = serve_conn(
                    inner.clone(),
                    stream,
                    opts.clone(),
                    false,
                    Some(uri.to_string()),
                )
                .await;
                if ok {
                    backoff = 0;
                }
                debug!("link to {uri} ended: {err}");
            }
            Ok(Err(e)) => debug!("dial {uri}: {e}"),
            Err(_) => debug!("dial {uri}: timed out"),
        }
        if backoff < MAX_BACKOFF_EXPONENT {
            backoff += 1;
        }
        let wait = Duration::from_secs(1u64 << backoff).min(max_backoff);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = inner.cancel.cancelled() => return,
        }
    }
}
