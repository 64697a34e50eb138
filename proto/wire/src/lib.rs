//! The Mimir mediator wire protocol, with no I/O.
//!
//! This crate owns every byte that mediatord and its clients exchange on a session stream:
//! the two-byte preamble, the 7-byte request and response headers ([`frame`]), the TLV payload
//! encoding with its 1–4 byte varint lengths ([`tlv`]), the command and push codes ([`codes`]),
//! typed requests ([`request`]), every error text the server sends ([`errors`]), typed responses and
//! pushes with their fixed element order ([`response`]), and the bodies and guids of system
//! messages ([`system`]). Decoders never panic and check every length against a named limit
//! before allocating; nothing here touches a socket, a clock or a database.
//!
//! Reference: `mediator-protocol.md` §1.4–§7.

pub mod codes;
pub mod errors;
pub mod frame;
pub mod request;
pub mod response;
pub mod system;
pub mod tlv;

pub use codes::{Command, PushCode};
pub use errors::WireError;
pub use frame::{FrameError, FrameWriter, RequestHeader, ResponseHeader, Status};
pub use request::{FieldError, Request};
pub use tlv::{TlvError, TlvMap};

/// An ed25519 public key as carried on the wire.
pub type PublicKey = [u8; 32];
/// An ed25519 signature as carried on the wire.
pub type Signature = [u8; 64];
