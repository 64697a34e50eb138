//! Who is on the other end of a session: the name operators see, the source that per-source
//! limits count by, and the transport the session came over (for `mediatorctl` and the
//! metrics, which count sessions by transport), which also decides the client generation's
//! few differences on the wire ([`Transport::is_mimir3`]). A transport that keeps room for
//! chat members (ygg_stream) also gives a [`MemberHook`], which the hub calls when the session
//! becomes a member's or stops being one.

use std::sync::Arc;

/// How a session reached the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// QUIC on a plain UDP socket.
    Quic,
    /// QUIC inside Yggdrasil session payloads (Mimir 2.x through yggquic).
    YggdrasilQuic,
    /// ygg_stream inside Yggdrasil session payloads (Mimir 3.x).
    YggStream,
}

impl Transport {
    /// Every transport, in the order metrics list them.
    pub const ALL: [Transport; 3] = [
        Transport::Quic,
        Transport::YggdrasilQuic,
        Transport::YggStream,
    ];

    /// Whether the session speaks to a Mimir 3.x client: pushes carry status 2, and an
    /// unknown command is refused without ending the session (`docs/mimir3.md` §2.2).
    pub fn is_mimir3(self) -> bool {
        self == Transport::YggStream
    }

    /// The transport's name in metrics labels and operator output.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Quic => "quic",
            Transport::YggdrasilQuic => "yggdrasil_quic",
            Transport::YggStream => "ygg_stream",
        }
    }
}

/// Told `true` when a session becomes a chat member's, `false` when it stops being one.
#[derive(Clone)]
pub struct MemberHook(pub Arc<dyn Fn(bool) + Send + Sync>);

impl std::fmt::Debug for MemberHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemberHook")
    }
}

/// A session's peer.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The UDP address, or the Yggdrasil node key in hex.
    pub remote: String,
    /// The IP address (an IPv6 /64) on UDP, the node key over Yggdrasil.
    pub source: String,
    pub transport: Transport,
    /// The transport's wish to know whether the session is a member's.
    pub member_hook: Option<MemberHook>,
}

impl Peer {
    /// A peer on plain QUIC named `remote`, counted under `source`.
    pub fn quic(remote: impl Into<String>, source: impl Into<String>) -> Peer {
        Peer {
            remote: remote.into(),
            source: source.into(),
            transport: Transport::Quic,
            member_hook: None,
        }
    }
}
