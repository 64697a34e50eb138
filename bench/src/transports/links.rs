//! The client side of the two Yggdrasil transports of the `transports` command. A
//! [`ClientNode`] is a yggnode of its own with a fresh key, peered directly with mediatord's
//! node, that reaches the mediator either with QUIC (quinn on a [`YggSocket`], as a Mimir 2.x
//! client over yggquic: one connection per node, one stream per session) or with ygg_stream (a
//! [`yggstream::Endpoint`] fed with the node's raw session payloads, as a Mimir 3.x client:
//! one connection to the mediator's stream port per session). The sessions on both are the
//! same [`mediator_client::Session`], told only which push status its generation uses.

use anyhow::{anyhow, bail, Context, Result};
use mediator_client::Session;
use mediator_quic::ygg::YggSocket;
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use yggnode::{Node, NodeConfig, PeerUri, PublicKey};

/// Server name the QUIC client sends (mediatord ignores it; the key it reaches is the one the
/// Yggdrasil session is encrypted to).
const QUIC_SERVER_NAME: &str = "mediator";
/// How often a starting node looks whether its link is up.
const PEERING_POLL: Duration = Duration::from_millis(20);
/// Pause before another ygg_stream connect when one timed out (its SYNs were lost while the
/// path was not known yet).
const CONNECT_RETRY: Duration = Duration::from_millis(100);
/// How long closing waits for the QUIC endpoint to send its CONNECTION_CLOSE, or for the last
/// ygg_stream packets to leave, before the node stops.
const CLOSE_GRACE: Duration = Duration::from_millis(300);

/// A client transport inside Yggdrasil.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// QUIC over the node's datagrams (yggquic, Mimir 2.x).
    YggQuic,
    /// ygg_stream in the node's raw session payloads (Mimir 3.x).
    YggStream,
}

impl Transport {
    /// The name in the JSON result and in messages.
    pub fn label(self) -> &'static str {
        match self {
            Transport::YggQuic => "ygg-quic",
            Transport::YggStream => "ygg-stream",
        }
    }
}

/// Where the mediator is.
#[derive(Debug, Clone)]
pub struct Mediator {
    /// Its node key (the key of its mediator identity).
    pub key: PublicKey,
    /// Its node's listener, with the key pinned.
    pub peer: PeerUri,
    /// Its ygg_stream port.
    pub stream_port: u16,
    /// Bound on peering, on a connection's handshake and on a ygg_stream connect.
    pub timeout: Duration,
}

enum Link {
    Quic {
        endpoint: quinn::Endpoint,
        conn: quinn::Connection,
    },
    Stream {
        endpoint: yggstream::Endpoint,
        feeder: JoinHandle<()>,
    },
}

/// One client node and its way to the mediator.
pub struct ClientNode {
    node: Arc<Node>,
    link: Link,
    mediator: Mediator,
}

impl ClientNode {
    /// Starts a node with a fresh key, waits for its link to the mediator's node, and sets up
    /// `transport` on it (for QUIC, connects).
    pub async fn start(transport: Transport, mediator: &Mediator) -> Result<ClientNode> {
        let node = Node::start(
            rand::random(),
            NodeConfig {
                peers: vec![mediator.peer.clone()],
                ..NodeConfig::default()
            },
        )
        .await
        .context("starting a client node")?;
        let node = Arc::new(node);
        let deadline = Instant::now() + mediator.timeout;
        while node.peers().is_empty() {
            if Instant::now() >= deadline {
                node.stop().await;
                bail!(
                    "no link to {} within {:?}: {:?}",
                    mediator.peer,
                    mediator.timeout,
                    node.dial_status()
                );
            }
            tokio::time::sleep(PEERING_POLL).await;
        }
        let link = match transport {
            Transport::YggQuic => quic(&node, mediator).await,
            Transport::YggStream => stream(&node),
        };
        match link {
            Ok(link) => Ok(ClientNode {
                node,
                link,
                mediator: mediator.clone(),
            }),
            Err(e) => {
                node.stop().await;
                Err(e)
            }
        }
    }

    /// Opens one session (its preamble written): a QUIC stream on the node's connection, or a
    /// ygg_stream connection of its own.
    pub async fn session(&self) -> Result<Session> {
        match &self.link {
            Link::Quic { conn, .. } => Session::open(conn).await.context("opening a QUIC stream"),
            Link::Stream { endpoint, .. } => {
                let m = &self.mediator;
                let deadline = Instant::now() + m.timeout;
                let stream = loop {
                    let attempt = endpoint.connect(m.key, m.stream_port);
                    match tokio::time::timeout_at(deadline, attempt).await {
                        Ok(Ok(s)) => break s,
                        // No SYN-ACK yet (the path was still being looked up): try again.
                        Ok(Err(e)) if e.kind() == ErrorKind::TimedOut => {
                            if Instant::now() + CONNECT_RETRY >= deadline {
                                return Err(e).context("ygg_stream connect");
                            }
                            tokio::time::sleep(CONNECT_RETRY).await;
                        }
                        Ok(Err(e)) => {
                            return Err(e).with_context(|| {
                                format!("ygg_stream connect to port {}", m.stream_port)
                            })
                        }
                        Err(_) => bail!("ygg_stream connect: no answer within {:?}", m.timeout),
                    }
                };
                let (r, w) = tokio::io::split(stream);
                Session::over(r, w, true)
                    .await
                    .context("starting a session on a ygg_stream connection")
            }
        }
    }

    /// Closes the connection and stops the node (the sessions should be closed first).
    pub async fn close(self) {
        match self.link {
            Link::Quic { endpoint, conn } => {
                conn.close(0u32.into(), b"done");
                let _ = tokio::time::timeout(CLOSE_GRACE, endpoint.wait_idle()).await;
            }
            Link::Stream { endpoint, feeder } => {
                tokio::time::sleep(CLOSE_GRACE).await;
                feeder.abort();
                drop(endpoint);
            }
        }
        self.node.stop().await;
    }
}

/// quinn on the node, connected to the mediator with the settings of a yggquic peer.
async fn quic(node: &Arc<Node>, m: &Mediator) -> Result<Link> {
    let settings = mediator_quic::QuicSettings::default();
    let socket = YggSocket::new(node.clone());
    let to = socket.addr_of(m.key);
    let runtime = quinn::default_runtime().context("no async runtime for quinn")?;
    let mut endpoint = quinn::Endpoint::new_with_abstract_socket(
        mediator_quic::endpoint_config(&settings)?,
        None,
        socket,
        runtime,
    )
    .context("starting a QUIC endpoint on the client node")?;
    endpoint.set_default_client_config(mediator_quic::client_config(&settings)?);
    let connecting = endpoint.connect(to, QUIC_SERVER_NAME)?;
    let conn = tokio::time::timeout(m.timeout, connecting)
        .await
        .map_err(|_| anyhow!("QUIC over Yggdrasil: no handshake within {:?}", m.timeout))?
        .context("QUIC over Yggdrasil")?;
    Ok(Link::Quic { endpoint, conn })
}

/// Sends a ygg_stream endpoint's packets as raw session payloads of the node.
struct RawPayloads(Arc<Node>);

impl yggstream::Outbound for RawPayloads {
    fn send(&self, to: PublicKey, packet: Vec<u8>) {
        // A full send queue drops the packet, as a busy path would; the connection
        // retransmits it.
        let _ = self.0.try_send_raw(to, packet);
    }
}

/// A ygg_stream endpoint on the node, fed by a task with every raw payload the node receives.
fn stream(node: &Arc<Node>) -> Result<Link> {
    let mut raw = node
        .take_raw_receiver()
        .context("the node's raw receiver is taken")?;
    let endpoint = yggstream::Endpoint::new(RawPayloads(node.clone()), rand::random());
    let feed = endpoint.clone();
    let feeder = tokio::spawn(async move {
        while let Some((from, msg)) = raw.recv().await {
            feed.handle_message(from, &msg);
        }
    });
    Ok(Link::Stream { endpoint, feeder })
}
