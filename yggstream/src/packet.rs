//! The ygg_stream v0.2 packet: a 16-byte big-endian header and the payload, which is the rest
//! of the Yggdrasil session message (there is no length field).
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | source port |
//! | 2 | 2 | destination port |
//! | 4 | 4 | seq: sequence number of the first payload byte (data, FIN), else 0 |
//! | 8 | 4 | ack: the next byte expected from the peer (cumulative) |
//! | 12 | 1 | flags: SYN 0x01, ACK 0x02, FIN 0x04, RST 0x08, DGRAM 0x10; other bits ignored |
//! | 13 | 3 | window: the receiver's free buffer in bytes |
//!
//! Decoding accepts any message of at least [`HEADER_LEN`] bytes and never allocates; the
//! constructors build each kind of packet as the reference peers expect it (which fields are
//! zero, which window a handshake packet advertises).

use thiserror::Error;

/// Bytes of the header.
pub const HEADER_LEN: usize = 16;
/// Largest window the 24-bit field can carry.
pub const MAX_WINDOW: u32 = 0x00FF_FFFF;
/// Receive window advertised by handshake, RST and datagram packets, and the reference's
/// default and largest receive buffer: 512 KiB.
pub const DEFAULT_WINDOW: u32 = 512 * 1024;
/// Payload bytes of one data segment.
pub const SEGMENT_SIZE: usize = 16 * 1024;
/// Largest payload of one packet: a 65,535-byte Yggdrasil message less this header and the
/// session's overhead (131 bytes).
pub const MAX_PAYLOAD: usize = 65_535 - HEADER_LEN - 131;

/// A packet's flag bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u8);

impl Flags {
    pub const NONE: Flags = Flags(0);
    pub const SYN: Flags = Flags(0x01);
    pub const ACK: Flags = Flags(0x02);
    pub const FIN: Flags = Flags(0x04);
    pub const RST: Flags = Flags(0x08);
    pub const DGRAM: Flags = Flags(0x10);

    /// The flags of a header byte; bits without a meaning are kept but never tested.
    pub const fn from_bits(b: u8) -> Flags {
        Flags(b)
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        self.union(rhs)
    }
}

impl std::fmt::Debug for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = [
            (Flags::SYN, "SYN"),
            (Flags::ACK, "ACK"),
            (Flags::FIN, "FIN"),
            (Flags::RST, "RST"),
            (Flags::DGRAM, "DGRAM"),
        ];
        let set: Vec<&str> = names
            .iter()
            .filter(|(fl, _)| self.contains(*fl))
            .map(|(_, n)| *n)
            .collect();
        if set.is_empty() {
            write!(f, "Flags({:#04x})", self.0)
        } else {
            write!(f, "{}", set.join("|"))
        }
    }
}

/// A message that is not a ygg_stream packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PacketError {
    #[error("ygg_stream packet of {0} bytes is shorter than its 16-byte header")]
    TooShort(usize),
}

/// A packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: Flags,
    /// The sender's free receive buffer; at most [`MAX_WINDOW`] goes on the wire.
    pub window: u32,
}

impl Header {
    /// A header from `src_port` to `dst_port` with `flags`, zero sequence numbers and the
    /// default window: the shape of handshake, RST and datagram packets.
    pub const fn control(src_port: u16, dst_port: u16, flags: Flags) -> Header {
        Header {
            src_port,
            dst_port,
            seq: 0,
            ack: 0,
            flags,
            window: DEFAULT_WINDOW,
        }
    }

    /// A SYN opening a connection.
    pub const fn syn(src_port: u16, dst_port: u16) -> Header {
        Header::control(src_port, dst_port, Flags::SYN)
    }

    /// The SYN-ACK answering a SYN.
    pub const fn syn_ack(src_port: u16, dst_port: u16) -> Header {
        Header::control(src_port, dst_port, Flags(Flags::SYN.0 | Flags::ACK.0))
    }

    /// The ACK completing the handshake.
    pub const fn handshake_ack(src_port: u16, dst_port: u16) -> Header {
        Header::control(src_port, dst_port, Flags::ACK)
    }

    /// A data segment starting at byte `seq`, acknowledging up to `ack`, advertising `window`.
    pub const fn data(src_port: u16, dst_port: u16, seq: u32, ack: u32, window: u32) -> Header {
        Header {
            src_port,
            dst_port,
            seq,
            ack,
            flags: Flags::ACK,
            window,
        }
    }

    /// An ACK without data. Its seq is 0, as the reference sends it (not the send sequence).
    pub const fn pure_ack(src_port: u16, dst_port: u16, ack: u32, window: u32) -> Header {
        Header::data(src_port, dst_port, 0, ack, window)
    }

    /// A FIN at sequence `seq`; `ack` is `Some` to carry the ACK bit as well (the reference
    /// sends FIN alone, with ack and window 0).
    pub const fn fin(src_port: u16, dst_port: u16, seq: u32, ack: Option<(u32, u32)>) -> Header {
        match ack {
            None => Header {
                src_port,
                dst_port,
                seq,
                ack: 0,
                flags: Flags::FIN,
                window: 0,
            },
            Some((ack, window)) => Header {
                src_port,
                dst_port,
                seq,
                ack,
                flags: Flags(Flags::FIN.0 | Flags::ACK.0),
                window,
            },
        }
    }

    /// An RST aborting a connection (or refusing one).
    pub const fn rst(src_port: u16, dst_port: u16) -> Header {
        Header::control(src_port, dst_port, Flags::RST)
    }

    /// A datagram to `dst_port`; datagrams come from port 0.
    pub const fn datagram(dst_port: u16) -> Header {
        Header::control(0, dst_port, Flags::DGRAM)
    }

    /// The 16 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        b[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        b[4..8].copy_from_slice(&self.seq.to_be_bytes());
        b[8..12].copy_from_slice(&self.ack.to_be_bytes());
        let last = u32::from(self.flags.0) << 24 | self.window.min(MAX_WINDOW);
        b[12..16].copy_from_slice(&last.to_be_bytes());
        b
    }

    /// The whole packet: this header and `payload`.
    pub fn packet(&self, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEADER_LEN + payload.len());
        v.extend_from_slice(&self.to_bytes());
        v.extend_from_slice(payload);
        v
    }

    /// Splits a message into its header and payload.
    pub fn decode(msg: &[u8]) -> Result<(Header, &[u8]), PacketError> {
        let Some((h, payload)) = msg.split_first_chunk::<HEADER_LEN>() else {
            return Err(PacketError::TooShort(msg.len()));
        };
        let u16_at = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let last = u32_at(12);
        Ok((
            Header {
                src_port: u16_at(0),
                dst_port: u16_at(2),
                seq: u32_at(4),
                ack: u32_at(8),
                flags: Flags((last >> 24) as u8),
                window: last & MAX_WINDOW,
            },
            payload,
        ))
    }
}

/// What a decrypted Yggdrasil session payload carries, on a node that serves both Mimir
/// generations with one key (§3.2): Yggdrasil's own session types start with their type byte;
/// anything else is a ygg_stream packet, whose first byte is the high byte of its source port
/// (0x00 from a server's port 42, 0xC0–0xFF from a client's ephemeral port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// 0x01: Yggdrasil session traffic (QUIC of Mimir 2.x after the byte is stripped).
    Traffic,
    /// 0x02: the Yggdrasil protocol (NodeInfo, debug).
    Protocol,
    /// A ygg_stream packet, taken as a whole (nothing stripped).
    Stream,
    /// An empty payload.
    Empty,
}

/// Which of [`PayloadKind`] `payload` is.
pub fn classify(payload: &[u8]) -> PayloadKind {
    match payload.first() {
        None => PayloadKind::Empty,
        Some(0x01) => PayloadKind::Traffic,
        Some(0x02) => PayloadKind::Protocol,
        Some(_) => PayloadKind::Stream,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CLIENT: u16 = 49152;
    const MEDIATOR: u16 = 42;

    fn golden(h: Header, payload: &[u8], hex_text: &str) {
        let want = hex::decode(hex_text.replace(' ', "")).unwrap();
        assert_eq!(hex::encode(h.packet(payload)), hex::encode(&want));
        let (back, rest) = Header::decode(&want).unwrap();
        assert_eq!(back, h);
        assert_eq!(rest, payload);
    }

    /// The golden examples of the specification (§3.3), byte for byte.
    #[test]
    fn golden_packets() {
        golden(
            Header::syn(CLIENT, MEDIATOR),
            b"",
            "c000 002a 00000000 00000000 01 080000",
        );
        golden(
            Header::syn_ack(MEDIATOR, CLIENT),
            b"",
            "002a c000 00000000 00000000 03 080000",
        );
        golden(
            Header::handshake_ack(CLIENT, MEDIATOR),
            b"",
            "c000 002a 00000000 00000000 02 080000",
        );
        golden(
            Header::data(CLIENT, MEDIATOR, 0, 0, DEFAULT_WINDOW),
            &[0x01, 0x00],
            "c000 002a 00000000 00000000 02 080000 0100",
        );
        golden(
            Header::pure_ack(MEDIATOR, CLIENT, 2, DEFAULT_WINDOW - 2),
            b"",
            "002a c000 00000000 00000002 02 07fffe",
        );
        golden(
            Header::fin(CLIENT, MEDIATOR, 9, None),
            b"",
            "c000 002a 00000009 00000000 04 000000",
        );
        golden(
            Header::rst(MEDIATOR, CLIENT),
            b"",
            "002a c000 00000000 00000000 08 080000",
        );
        golden(
            Header::datagram(69),
            b"hi",
            "0000 0045 00000000 00000000 10 080000 6869",
        );
        // Our FIN may carry the ACK (acknowledging the peer's bytes) as well.
        golden(
            Header::fin(MEDIATOR, CLIENT, 7, Some((10, 1000))),
            b"",
            "002a c000 00000007 0000000a 06 0003e8",
        );
    }

    #[test]
    fn short_messages_are_refused_and_unknown_flags_kept() {
        for n in 0..HEADER_LEN {
            assert_eq!(Header::decode(&vec![0u8; n]), Err(PacketError::TooShort(n)));
        }
        let (h, rest) = Header::decode(&[0xffu8; 16]).unwrap();
        assert!(rest.is_empty());
        assert_eq!(h.flags.bits(), 0xff);
        assert!(h
            .flags
            .contains(Flags::SYN | Flags::ACK | Flags::FIN | Flags::RST));
        assert_eq!(h.window, MAX_WINDOW);
        assert_eq!(format!("{:?}", Flags::SYN | Flags::ACK), "SYN|ACK");
        assert_eq!(format!("{:?}", Flags::from_bits(0x40)), "Flags(0x40)");
    }

    #[test]
    fn windows_past_24_bits_are_clamped() {
        let h = Header::data(1, 2, 3, 4, u32::MAX);
        let (back, _) = Header::decode(&h.to_bytes()).unwrap();
        assert_eq!(back.window, MAX_WINDOW);
        assert_eq!(back.flags, Flags::ACK);
    }

    #[test]
    fn payload_kinds_follow_the_first_byte() {
        assert_eq!(classify(&[]), PayloadKind::Empty);
        assert_eq!(classify(&[0x01, 0xaa]), PayloadKind::Traffic);
        assert_eq!(classify(&[0x02]), PayloadKind::Protocol);
        // A server's reply from port 42 and a client's SYN from an ephemeral port.
        assert_eq!(
            classify(&Header::syn_ack(42, CLIENT).to_bytes()),
            PayloadKind::Stream
        );
        assert_eq!(
            classify(&Header::syn(CLIENT, 42).to_bytes()),
            PayloadKind::Stream
        );
        for port in 49152..=u16::MAX {
            assert_eq!(
                classify(&Header::syn(port, 42).to_bytes()),
                PayloadKind::Stream
            );
        }
    }

    proptest! {
        #[test]
        fn headers_round_trip(src: u16, dst: u16, seq: u32, ack: u32, flags: u8,
                              window in 0..=MAX_WINDOW, payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let h = Header { src_port: src, dst_port: dst, seq, ack, flags: Flags::from_bits(flags), window };
            let bytes = h.packet(&payload);
            prop_assert_eq!(bytes.len(), HEADER_LEN + payload.len());
            let (back, rest) = Header::decode(&bytes).unwrap();
            prop_assert_eq!(back, h);
            prop_assert_eq!(rest, &payload[..]);
        }

        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            match Header::decode(&bytes) {
                Ok((h, rest)) => {
                    prop_assert_eq!(rest.len(), bytes.len() - HEADER_LEN);
                    prop_assert_eq!(&h.to_bytes()[..], &bytes[..HEADER_LEN]);
                }
                Err(PacketError::TooShort(n)) => prop_assert!(n < HEADER_LEN),
            }
        }
    }
}
