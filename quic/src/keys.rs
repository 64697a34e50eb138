//! Packet and header protection keys: rustls 0.24 keys behind quinn-proto's
//! key traits, and the Retry integrity tag.
//!
//! rustls derives the keys (RFC 9001 §5) and performs the AEAD and
//! header-protection operations; this module only adapts buffer layouts:
//!
//! * quinn hands a [`crypto::PacketKey`] one buffer holding header, payload
//!   and room for the AEAD tag at the end; rustls wants the three apart.
//! * quinn hands a [`crypto::HeaderKey`] the whole packet plus the offset of
//!   the packet number field; rustls wants the first byte, the (up to 4-byte)
//!   packet number field and the ciphertext sample apart. The sample starts
//!   4 bytes after the packet number offset whatever the real packet number
//!   length is (RFC 9001 §5.4.2); rustls reads the real length from the
//!   unmasked first byte and only touches that many bytes.
//!
//! quinn's key traits cannot report failure for header protection or for
//! encryption. Both can only fail on a malformed buffer, which quinn never
//! produces (it checks lengths before decrypting headers and sizes the tag
//! room itself). Should it happen anyway, the packet is left as it is and
//! the event is logged: a garbled incoming packet then fails AEAD and is
//! dropped, and a garbled outgoing one is dropped by the peer, which is
//! better than aborting the server.

use bytes::BytesMut;
use quinn_proto::crypto::{self, CryptoError, KeyPair, Keys};
use ring::aead;
use rustls_v024::quic as tls_quic;

/// Longest packet number field (RFC 9000 §17.1): the header-protection
/// sample always starts this many bytes after the packet number offset.
const MAX_PACKET_NUMBER_LEN: usize = 4;

/// Length of the Retry integrity tag, an AES-128-GCM tag (RFC 9001 §5.8).
pub const RETRY_TAG_LEN: usize = 16;

/// QUIC v1 Retry integrity key, fixed by RFC 9001 §5.8.
const RETRY_KEY_V1: [u8; 16] = [
    0xbe, 0x0c, 0x69, 0x0b, 0x9f, 0x66, 0x57, 0x5a, 0x1d, 0x76, 0x6b, 0x54, 0xe3, 0x68, 0xc8, 0x4e,
];

/// QUIC v1 Retry integrity nonce, fixed by RFC 9001 §5.8.
const RETRY_NONCE_V1: [u8; 12] = [
    0x46, 0x15, 0x99, 0xd3, 0x5d, 0x63, 0x2b, 0xf2, 0x23, 0x98, 0x25, 0xbb,
];

/// Header protection key of one direction.
pub struct HeaderProtection(Box<dyn tls_quic::HeaderProtectionKey>);

/// Whether a header-protection mask is being applied or removed.
#[derive(Clone, Copy, Debug)]
enum Mask {
    Apply,
    Remove,
}

impl HeaderProtection {
    fn mask(&self, pn_offset: usize, packet: &mut [u8], mask: Mask) {
        let sample_len = self.0.sample_len();
        let sample_start = pn_offset + MAX_PACKET_NUMBER_LEN;
        if pn_offset == 0 || packet.len() < sample_start + sample_len {
            tracing::warn!(
                pn_offset,
                packet_len = packet.len(),
                "packet too short for header protection; left unchanged"
            );
            return;
        }
        let (header, rest) = packet.split_at_mut(sample_start);
        let sample = &rest[..sample_len];
        let Some((first, after_first)) = header.split_first_mut() else {
            return;
        };
        // `after_first` starts at packet[1]; the packet number field at
        // packet[pn_offset] and runs to the end of `header` (4 bytes).
        let packet_number = &mut after_first[pn_offset - 1..];
        let result = match mask {
            Mask::Apply => self.0.encrypt_in_place(sample, first, packet_number),
            Mask::Remove => self.0.decrypt_in_place(sample, first, packet_number),
        };
        if let Err(error) = result {
            tracing::warn!(%error, ?mask, "header protection failed; packet left unchanged");
        }
    }
}

impl crypto::HeaderKey for HeaderProtection {
    fn decrypt(&self, pn_offset: usize, packet: &mut [u8]) {
        self.mask(pn_offset, packet, Mask::Remove);
    }

    fn encrypt(&self, pn_offset: usize, packet: &mut [u8]) {
        self.mask(pn_offset, packet, Mask::Apply);
    }

    fn sample_size(&self) -> usize {
        self.0.sample_len()
    }
}

/// Packet (payload) protection key of one direction.
pub struct PacketProtection(Box<dyn tls_quic::PacketKey>);

impl crypto::PacketKey for PacketProtection {
    fn encrypt(&self, packet: u64, buf: &mut [u8], header_len: usize) {
        let tag_len = self.0.tag_len();
        let Some(payload_end) = buf
            .len()
            .checked_sub(tag_len)
            .filter(|&end| end >= header_len)
        else {
            tracing::error!(
                buf_len = buf.len(),
                header_len,
                "no room for the AEAD tag; packet not encrypted"
            );
            return;
        };
        let (header, body) = buf.split_at_mut(header_len);
        let (payload, tag_room) = body.split_at_mut(payload_end - header_len);
        match self.0.encrypt_in_place(packet, header, payload, None) {
            Ok(tag) => tag_room.copy_from_slice(tag.as_ref()),
            Err(error) => tracing::error!(%error, "packet encryption failed"),
        }
    }

    fn decrypt(
        &self,
        packet: u64,
        header: &[u8],
        payload: &mut BytesMut,
    ) -> Result<(), CryptoError> {
        let plaintext_len = self
            .0
            .decrypt_in_place(packet, header, &mut payload[..], None)
            .map_err(|_| CryptoError)?
            .len();
        payload.truncate(plaintext_len);
        Ok(())
    }

    fn tag_len(&self) -> usize {
        self.0.tag_len()
    }

    fn confidentiality_limit(&self) -> u64 {
        self.0.confidentiality_limit()
    }

    fn integrity_limit(&self) -> u64 {
        self.0.integrity_limit()
    }
}

/// Wraps a rustls packet key for quinn.
pub(crate) fn packet_key(key: Box<dyn tls_quic::PacketKey>) -> Box<dyn crypto::PacketKey> {
    Box::new(PacketProtection(key))
}

/// Converts one packet space's keys (both directions) from rustls to quinn.
pub(crate) fn quinn_keys(keys: tls_quic::Keys) -> Keys {
    let tls_quic::Keys { local, remote } = keys;
    Keys {
        header: KeyPair {
            local: Box::new(HeaderProtection(local.header)),
            remote: Box::new(HeaderProtection(remote.header)),
        },
        packet: KeyPair {
            local: packet_key(local.packet),
            remote: packet_key(remote.packet),
        },
    }
}

/// Computes the Retry integrity tag (RFC 9001 §5.8) for `retry_packet`, a
/// Retry packet without its tag, answering a client whose first Initial had
/// destination connection ID `orig_dst_cid`.
///
/// The tag is the AES-128-GCM tag over an empty plaintext with the "Retry
/// pseudo-packet" (`len(odcid) || odcid || retry_packet`) as associated data.
pub fn retry_integrity_tag(orig_dst_cid: &[u8], retry_packet: &[u8]) -> [u8; RETRY_TAG_LEN] {
    let mut pseudo_packet = Vec::with_capacity(1 + orig_dst_cid.len() + retry_packet.len());
    // Connection IDs are at most 20 bytes (RFC 9000 §17.2), so this fits.
    pseudo_packet.push(orig_dst_cid.len() as u8);
    pseudo_packet.extend_from_slice(orig_dst_cid);
    pseudo_packet.extend_from_slice(retry_packet);

    let key = aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::AES_128_GCM, &RETRY_KEY_V1)
            .expect("a 16-byte key is valid for AES-128-GCM"),
    );
    let tag = key
        .seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(RETRY_NONCE_V1),
            aead::Aad::from(pseudo_packet.as_slice()),
            &mut [],
        )
        .expect("sealing an empty plaintext cannot exceed AES-GCM limits");
    let mut out = [0; RETRY_TAG_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9001 Appendix A.4: the Retry packet sent for the client Initial
    /// of Appendix A.2, whose destination connection ID is
    /// 0x8394c8f03e515708. The last 16 bytes are the integrity tag.
    #[test]
    fn retry_tag_matches_rfc9001_example() {
        let odcid = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
        let packet =
            hex_bytes("ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba");
        let (body, tag) = packet.split_at(packet.len() - RETRY_TAG_LEN);
        assert_eq!(retry_integrity_tag(&odcid, body), tag);
    }

    fn hex_bytes(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }
}
