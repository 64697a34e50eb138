//! A native Yggdrasil 0.5 node (the ironwood wire protocol), written to be
//! embedded in `mediatord`.
//!
//! # Layers
//!
//! * [`wire`], [`proto`], [`bloom`]: byte-exact codecs for every ironwood
//!   peer message, the uvarint frame layer and the sparse bloom filter.
//! * [`handshake`]: the Yggdrasil link handshake (`meta` + TLVs + keyed
//!   BLAKE2b password signature).
//! * [`address`]: key → `200::/7` address and `300::/8` subnet, and the bloom
//!   transform used for lookups.
//! * [`uri`]: peer/listen URIs (`tcp://host:port?key=…&password=…&priority=…`).
//! * [`link`]: one peer connection: handshake, framed reads/writes, keepalive
//!   and the 3-second liveness rule.
//! * [`router`]: the spanning tree (SigReq/SigRes/Announce, root election,
//!   parent selection, refresh and expiry), the per-peer bloom filters, and
//!   in [`router::pathfinder`] path discovery (lookups, notifies, broken
//!   paths) and source-routed traffic forwarding with watermarks.
//! * [`queue`]: the per-link packet queue with ironwood's drop policy.
//! * [`session_wire`], [`session`]: the encrypted session layer (Init/Ack
//!   handshake, key ratchet, NaCl box), byte-compatible with ironwood.
//! * [`node`]: [`Node`], which owns listeners, dialers and the core task
//!   (router + sessions + Yggdrasil's NodeInfo/debug protocol), and offers
//!   the datagram API.
//!
//! # Public API
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use yggnode::{Node, NodeConfig};
//! let mut node_info = serde_json::Map::new();
//! node_info.insert("name".into(), "mediatord".into());
//! let config = NodeConfig {
//!     peers: vec!["tcp://127.0.0.1:12345".parse()?],
//!     listen: vec!["tcp://127.0.0.1:0".parse()?],
//!     node_info,
//!     ..NodeConfig::default()
//! };
//! let node = Node::start([7u8; 32], config).await?;
//! println!("{}", hex::encode(node.public_key()));
//! let other = [9u8; 32];
//! node.send_to(other, b"hello").await?; // ≤ node.mtu() = 65535 bytes
//! let (from, bytes) = node.recv_from().await?;
//! # let _ = (from, bytes);
//! let info = node.get_node_info(other).await?; // remote NodeInfo JSON
//! # let _ = info;
//! node.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! For a QUIC endpoint, take the receiver once with [`Node::take_receiver`]
//! and poll it from the socket adapter's `poll_recv`; send with
//! [`Node::try_send_to`] (see [`node`] for the drop policy).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod address;
pub mod bloom;
pub mod handshake;
pub mod identity;
pub mod link;
pub mod node;
pub mod proto;
pub mod queue;
pub mod router;
pub mod session;
pub mod session_wire;
pub mod tls;
pub mod uri;
pub mod wire;

pub use node::{Datagram, Node, NodeConfig, NodeError, NodeStats, PeerInfo, SendError, MTU};
pub use uri::PeerUri;
pub use wire::PublicKey;
