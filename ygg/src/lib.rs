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
//!   parent selection, refresh and expiry) and the per-peer bloom filters.
//! * [`node`]: [`Node`], which owns listeners, dialers and the router task.
//! * [`session_wire`]: outer layouts of the encrypted session packets
//!   (Init/Ack/traffic); the cryptography is not built yet.
//!
//! # Public API (current and planned)
//!
//! ```no_run
//! # async fn demo() -> Result<(), yggnode::NodeError> {
//! use yggnode::{Node, NodeConfig};
//! let config = NodeConfig {
//!     peers: vec!["tcp://127.0.0.1:12345".parse()?],
//!     listen: vec!["tcp://127.0.0.1:0".parse()?],
//!     ..NodeConfig::default()
//! };
//! let node = Node::start([7u8; 32], config).await?;
//! println!("{}", hex::encode(node.public_key()));
//! for p in node.peers() { println!("{p:?}"); }
//! node.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Not built yet (planned): the pathfinder (lookups/notifies/broken paths),
//! traffic forwarding with the per-peer packet queue, the encrypted session
//! layer, and the datagram API on top of them:
//! `send_to(key, bytes)`, `recv_from() -> (key, bytes)` and `mtu()`
//! (65535 in Yggdrasil, see the spec §2.2).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod address;
pub mod bloom;
pub mod handshake;
pub mod identity;
pub mod link;
pub mod node;
pub mod proto;
pub mod router;
pub mod session_wire;
pub mod uri;
pub mod wire;

pub use node::{Node, NodeConfig, NodeError, PeerInfo};
pub use uri::PeerUri;
pub use wire::PublicKey;
