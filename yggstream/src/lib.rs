//! ygg_stream v0.2, the transport Mimir 3.x clients use to reach their mediator: a small
//! TCP-like protocol (ports, byte sequence numbers, cumulative ACKs, a receive window,
//! SYN/FIN/RST) carried directly in Yggdrasil encrypted-session payloads, with the 32-byte
//! node key as the address. Specification: `docs/mimir3.md` §3.
//!
//! This crate knows nothing of sockets or of mediatord. [`packet`] is the wire format and the
//! rule that tells a ygg_stream payload from the Yggdrasil session types on a node that
//! serves both ([`packet::classify`]); [`conn`] is one connection's state machine, driven by
//! packets, application reads and writes, and the clock; [`stack`] holds every connection of
//! a node, its listening ports, and the answers to packets that match no connection;
//! [`endpoint`] runs a stack on tokio and gives applications listeners and byte streams.

#![forbid(unsafe_code)]

pub mod conn;
pub mod endpoint;
pub mod packet;
pub mod stack;

pub use conn::{Conn, ConnError, State};
pub use endpoint::{Control, Endpoint, Listener, Outbound, Stream};
pub use packet::{classify, Flags, Header, PacketError, PayloadKind, HEADER_LEN};
pub use stack::{Budget, ConnId, Key, Stack, StackError, Tuple};
