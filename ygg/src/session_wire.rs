//! Byte layouts of the encrypted session layer (ironwood `encrypted/`):
//! what travels as the payload of a routed [`crate::proto::Traffic`]
//! packet. The cryptography and state machine are in [`crate::session`].
//!
//! * `0x00` dummy (ignored);
//! * `0x01` Init / `0x02` Ack: `type || eph_pub[32] || sealed[176]` (always
//!   [`SESSION_INIT_LEN`] = 193 bytes), where `sealed` is a NaCl box (nonce 0)
//!   of [`InitPayload`];
//! * `0x03` traffic: `type || uvarint local_key_seq || uvarint
//!   remote_key_seq || uvarint nonce || sealed`, `sealed` being a box of
//!   `next_pub[32] || message`.
//!
//! Above the session layer, Yggdrasil prefixes every plaintext with its own
//! type byte ([`CORE_TYPE_DUMMY`], [`CORE_TYPE_TRAFFIC`], [`CORE_TYPE_PROTO`]).

use crate::wire::{
    put_uvarint, uvarint_len, Reader, Signature, WireCodec, WireError, SIGNATURE_LEN,
};

/// Size of an X25519 (box) public key.
pub const BOX_PUB_LEN: usize = 32;
/// Poly1305 tag size added by a NaCl box.
pub const BOX_OVERHEAD: usize = 16;
/// Plaintext size of an Init/Ack body: sig, current, next, key_seq, seq.
pub const INIT_PAYLOAD_LEN: usize = SIGNATURE_LEN + 2 * BOX_PUB_LEN + 8 + 8;
/// Total size of an Init or Ack packet.
pub const SESSION_INIT_LEN: usize = 1 + BOX_PUB_LEN + BOX_OVERHEAD + INIT_PAYLOAD_LEN;
/// Smallest possible session traffic packet (ironwood
/// `sessionTrafficOverheadMin`).
pub const SESSION_TRAFFIC_OVERHEAD_MIN: usize = 1 + 1 + 1 + 1 + BOX_OVERHEAD + BOX_PUB_LEN;
/// Largest session traffic overhead (three 10-byte uvarints), which is what
/// the encrypted MTU subtracts.
pub const SESSION_TRAFFIC_OVERHEAD_MAX: usize = 1 + 3 * 10 + BOX_OVERHEAD + BOX_PUB_LEN;

/// Session packet type: ignored filler.
pub const SESSION_TYPE_DUMMY: u8 = 0;
/// Session packet type: Init.
pub const SESSION_TYPE_INIT: u8 = 1;
/// Session packet type: Ack.
pub const SESSION_TYPE_ACK: u8 = 2;
/// Session packet type: encrypted traffic.
pub const SESSION_TYPE_TRAFFIC: u8 = 3;

/// Yggdrasil core payload type: ignored.
pub const CORE_TYPE_DUMMY: u8 = 0;
/// Yggdrasil core payload type: application data (what `ReadFrom` returns).
pub const CORE_TYPE_TRAFFIC: u8 = 1;
/// Yggdrasil core payload type: protocol (NodeInfo, debug).
pub const CORE_TYPE_PROTO: u8 = 2;

/// The plaintext inside an Init/Ack box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitPayload {
    /// ed25519 signature over [`InitPayload::bytes_for_sig`].
    pub sig: Signature,
    /// Sender's current session public key.
    pub current: [u8; BOX_PUB_LEN],
    /// Sender's next session public key.
    pub next: [u8; BOX_PUB_LEN],
    /// Sender's key sequence.
    pub key_seq: u64,
    /// Unix seconds when the Init was created.
    pub seq: u64,
}

impl InitPayload {
    /// `eph_pub || current || next || key_seq BE || seq BE` (no group secret).
    pub fn bytes_for_sig(&self, eph_pub: &[u8; BOX_PUB_LEN]) -> Vec<u8> {
        let mut out = Vec::with_capacity(3 * BOX_PUB_LEN + 16);
        out.extend_from_slice(eph_pub);
        out.extend_from_slice(&self.current);
        out.extend_from_slice(&self.next);
        out.extend_from_slice(&self.key_seq.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out
    }
}

impl WireCodec for InitPayload {
    fn encoded_len(&self) -> usize {
        INIT_PAYLOAD_LEN
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.sig);
        out.extend_from_slice(&self.current);
        out.extend_from_slice(&self.next);
        out.extend_from_slice(&self.key_seq.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
    }
    fn decode(data: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(data);
        let v = Self {
            sig: r.array("init sig")?,
            current: r.array("init current")?,
            next: r.array("init next")?,
            key_seq: u64::from_be_bytes(r.array("init key_seq")?),
            seq: u64::from_be_bytes(r.array("init seq")?),
        };
        r.finish()?;
        Ok(v)
    }
}

/// One session-layer packet, still sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionPacket {
    /// Type 0.
    Dummy,
    /// Type 1 (`ack == false`) or 2 (`ack == true`).
    Init {
        /// Whether this is an Ack.
        ack: bool,
        /// Ephemeral X25519 public key of the sender.
        eph_pub: [u8; BOX_PUB_LEN],
        /// Boxed [`InitPayload`] (tag first).
        sealed: Vec<u8>,
    },
    /// Type 3.
    Traffic {
        /// Sender's key sequence.
        local_key_seq: u64,
        /// Sender's view of our key sequence.
        remote_key_seq: u64,
        /// Box nonce counter.
        nonce: u64,
        /// Boxed `next_pub || message` (tag first).
        sealed: Vec<u8>,
    },
}

impl WireCodec for SessionPacket {
    fn encoded_len(&self) -> usize {
        match self {
            Self::Dummy => 1,
            Self::Init { sealed, .. } => 1 + BOX_PUB_LEN + sealed.len(),
            Self::Traffic {
                local_key_seq,
                remote_key_seq,
                nonce,
                sealed,
            } => {
                1 + uvarint_len(*local_key_seq)
                    + uvarint_len(*remote_key_seq)
                    + uvarint_len(*nonce)
                    + sealed.len()
            }
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Dummy => out.push(SESSION_TYPE_DUMMY),
            Self::Init {
                ack,
                eph_pub,
                sealed,
            } => {
                out.push(if *ack {
                    SESSION_TYPE_ACK
                } else {
                    SESSION_TYPE_INIT
                });
                out.extend_from_slice(eph_pub);
                out.extend_from_slice(sealed);
            }
            Self::Traffic {
                local_key_seq,
                remote_key_seq,
                nonce,
                sealed,
            } => {
                out.push(SESSION_TYPE_TRAFFIC);
                put_uvarint(out, *local_key_seq);
                put_uvarint(out, *remote_key_seq);
                put_uvarint(out, *nonce);
                out.extend_from_slice(sealed);
            }
        }
    }

    fn decode(data: &[u8]) -> Result<Self, WireError> {
        let (&t, _) = data
            .split_first()
            .ok_or(WireError::Truncated("session type"))?;
        match t {
            SESSION_TYPE_DUMMY => Ok(Self::Dummy),
            SESSION_TYPE_INIT | SESSION_TYPE_ACK => {
                if data.len() != SESSION_INIT_LEN {
                    return Err(WireError::Invalid("session init length"));
                }
                let mut r = Reader::new(&data[1..]);
                Ok(Self::Init {
                    ack: t == SESSION_TYPE_ACK,
                    eph_pub: r.array("init eph_pub")?,
                    sealed: r.rest().to_vec(),
                })
            }
            SESSION_TYPE_TRAFFIC => {
                if data.len() < SESSION_TRAFFIC_OVERHEAD_MIN {
                    return Err(WireError::Truncated("session traffic"));
                }
                let mut r = Reader::new(&data[1..]);
                let local_key_seq = r.uvarint("traffic local_key_seq")?;
                let remote_key_seq = r.uvarint("traffic remote_key_seq")?;
                let nonce = r.uvarint("traffic nonce")?;
                let sealed = r.rest();
                if sealed.len() < BOX_OVERHEAD + BOX_PUB_LEN {
                    return Err(WireError::Truncated("session traffic box"));
                }
                Ok(Self::Traffic {
                    local_key_seq,
                    remote_key_seq,
                    nonce,
                    sealed: sealed.to_vec(),
                })
            }
            _ => Err(WireError::Invalid("session packet type")),
        }
    }
}

/// The 24-byte box nonce for counter `n`: 16 zero bytes, then `n` big-endian.
pub fn box_nonce(n: u64) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[16..].copy_from_slice(&n.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_match_ironwood() {
        assert_eq!(SESSION_INIT_LEN, 193);
        assert_eq!(SESSION_TRAFFIC_OVERHEAD_MAX, 79);
        assert_eq!(SESSION_TRAFFIC_OVERHEAD_MIN, 52);
        assert_eq!(box_nonce(0x0102)[22..], [1, 2]);
    }

    proptest! {
        #[test]
        fn roundtrip_init(ack in any::<bool>(), eph in any::<[u8; 32]>(), sealed in proptest::collection::vec(any::<u8>(), 160)) {
            let p = SessionPacket::Init { ack, eph_pub: eph, sealed };
            let enc = p.to_vec();
            prop_assert_eq!(enc.len(), SESSION_INIT_LEN);
            prop_assert_eq!(SessionPacket::decode(&enc).unwrap(), p);
        }

        #[test]
        fn roundtrip_traffic(a in any::<u64>(), b in any::<u64>(), n in any::<u64>(), sealed in proptest::collection::vec(any::<u8>(), 48..200)) {
            let p = SessionPacket::Traffic { local_key_seq: a, remote_key_seq: b, nonce: n, sealed };
            let enc = p.to_vec();
            prop_assert_eq!(enc.len(), p.encoded_len());
            prop_assert_eq!(SessionPacket::decode(&enc).unwrap(), p);
        }

        #[test]
        fn roundtrip_payload(sig in proptest::collection::vec(any::<u8>(), 64), c in any::<[u8; 32]>(), n in any::<[u8; 32]>(), k in any::<u64>(), s in any::<u64>()) {
            let p = InitPayload { sig: sig.try_into().unwrap(), current: c, next: n, key_seq: k, seq: s };
            prop_assert_eq!(InitPayload::decode(&p.to_vec()).unwrap(), p);
        }

        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..260)) {
            let _ = SessionPacket::decode(&data);
            let _ = InitPayload::decode(&data);
        }
    }
}
