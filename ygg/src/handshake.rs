//! The Yggdrasil link handshake ("version metadata", yggdrasil-go
//! `src/core/version.go`): both sides write
//! `"meta" || u16 BE remaining || TLV* || sig[64]` right after the transport
//! connects, then read the peer's.
//!
//! TLVs are `type u16 BE || len u16 BE || value`: 0 major version (u16),
//! 1 minor version (u16), 2 public key (32 bytes), 3 priority (u8); unknown
//! types are skipped. The signature is ed25519 over
//! BLAKE2b-512(key = link password, possibly empty)(public key), so a
//! mismatched password shows up as a bad signature. Only protocol 0.5 is
//! accepted.

use blake2::digest::{FixedOutput, KeyInit, Update};
use blake2::{Blake2b512, Blake2bMac512, Digest};

use crate::identity::{verify, Identity};
use crate::wire::{PublicKey, Signature, PUBLIC_KEY_LEN, SIGNATURE_LEN};

/// The 4-byte preamble of every handshake.
pub const PREAMBLE: [u8; 4] = *b"meta";
/// Size of the fixed header: preamble plus the u16 remaining length.
pub const HEADER_LEN: usize = 6;
/// Protocol major version spoken (Yggdrasil 0.5).
pub const PROTOCOL_MAJOR: u16 = 0;
/// Protocol minor version spoken (Yggdrasil 0.5).
pub const PROTOCOL_MINOR: u16 = 5;
/// Longest link password: the BLAKE2b key size.
pub const MAX_PASSWORD_LEN: usize = 64;
/// Size of the handshake this implementation (and yggdrasil-go) sends.
pub const STANDARD_LEN: usize = HEADER_LEN + 6 + 6 + (4 + PUBLIC_KEY_LEN) + 5 + SIGNATURE_LEN;

const TLV_MAJOR: u16 = 0;
const TLV_MINOR: u16 = 1;
const TLV_PUBLIC_KEY: u16 = 2;
const TLV_PRIORITY: u16 = 3;

/// Handshake failures (mirroring yggdrasil-go's error cases).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The first 4 bytes were not `meta`.
    #[error("invalid handshake, remote side is not Yggdrasil")]
    InvalidPreamble,
    /// The remaining length is shorter than a signature.
    #[error("invalid handshake length, possible version mismatch")]
    InvalidLength,
    /// The body does not match its declared length.
    #[error("handshake body is {got} bytes, header says {want}")]
    LengthMismatch {
        /// Bytes supplied.
        got: usize,
        /// Bytes declared.
        want: usize,
    },
    /// A known TLV is shorter than its value type.
    #[error("malformed handshake TLV type {0}")]
    MalformedTlv(u16),
    /// No public key TLV was present.
    #[error("handshake carries no public key")]
    MissingKey,
    /// The password is longer than [`MAX_PASSWORD_LEN`].
    #[error("password longer than {MAX_PASSWORD_LEN} bytes")]
    PasswordTooLong,
    /// The signature does not verify: wrong password (or a forged key).
    #[error("password does not match remote side")]
    IncorrectPassword,
    /// Not protocol 0.5.
    #[error("remote node incompatible version (local 0.5, remote {major}.{minor})")]
    IncompatibleVersion {
        /// Remote major version.
        major: u16,
        /// Remote minor version.
        minor: u16,
    },
}

/// The peer's decoded and verified metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// Protocol major version.
    pub major: u16,
    /// Protocol minor version.
    pub minor: u16,
    /// The peer's ed25519 node key.
    pub public_key: PublicKey,
    /// The link priority the peer asked for.
    pub priority: u8,
}

/// BLAKE2b-512 keyed with `password` (unkeyed when empty) over `key`.
pub fn password_hash(password: &[u8], key: &PublicKey) -> Result<[u8; 64], HandshakeError> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(HandshakeError::PasswordTooLong);
    }
    let mut out = [0u8; 64];
    if password.is_empty() {
        out.copy_from_slice(&Blake2b512::digest(key));
    } else {
        let mut mac = <Blake2bMac512 as KeyInit>::new_from_slice(password)
            .map_err(|_| HandshakeError::PasswordTooLong)?;
        Update::update(&mut mac, key);
        out.copy_from_slice(&mac.finalize_fixed());
    }
    Ok(out)
}

/// Builds our handshake message.
pub fn encode(id: &Identity, priority: u8, password: &[u8]) -> Result<Vec<u8>, HandshakeError> {
    let key = id.public_key();
    let mut bs = Vec::with_capacity(STANDARD_LEN);
    bs.extend_from_slice(&PREAMBLE);
    bs.extend_from_slice(&[0, 0]);
    for (t, v) in [(TLV_MAJOR, PROTOCOL_MAJOR), (TLV_MINOR, PROTOCOL_MINOR)] {
        bs.extend_from_slice(&t.to_be_bytes());
        bs.extend_from_slice(&2u16.to_be_bytes());
        bs.extend_from_slice(&v.to_be_bytes());
    }
    bs.extend_from_slice(&TLV_PUBLIC_KEY.to_be_bytes());
    bs.extend_from_slice(&(PUBLIC_KEY_LEN as u16).to_be_bytes());
    bs.extend_from_slice(&key);
    bs.extend_from_slice(&TLV_PRIORITY.to_be_bytes());
    bs.extend_from_slice(&1u16.to_be_bytes());
    bs.push(priority);
    let sig = id.sign(&password_hash(password, &key)?);
    bs.extend_from_slice(&sig);
    let remaining = (bs.len() - HEADER_LEN) as u16;
    bs[4..6].copy_from_slice(&remaining.to_be_bytes());
    Ok(bs)
}

/// Checks the 6-byte header and returns the number of body bytes to read.
pub fn parse_header(header: &[u8; HEADER_LEN]) -> Result<usize, HandshakeError> {
    if header[..4] != PREAMBLE {
        return Err(HandshakeError::InvalidPreamble);
    }
    let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    if len < SIGNATURE_LEN {
        return Err(HandshakeError::InvalidLength);
    }
    Ok(len)
}

/// Decodes and verifies the body (everything after the header) with the
/// local password for this link, then checks the version is 0.5.
pub fn decode_body(body: &[u8], password: &[u8]) -> Result<Metadata, HandshakeError> {
    if body.len() < SIGNATURE_LEN {
        return Err(HandshakeError::InvalidLength);
    }
    let (mut tlvs, sig_bytes) = body.split_at(body.len() - SIGNATURE_LEN);
    let mut sig: Signature = [0; SIGNATURE_LEN];
    sig.copy_from_slice(sig_bytes);
    let mut major = 0u16;
    let mut minor = 0u16;
    let mut key: Option<PublicKey> = None;
    let mut priority = 0u8;
    // Like yggdrasil-go: stop quietly at a TLV whose value runs past the end.
    while tlvs.len() >= 4 {
        let t = u16::from_be_bytes([tlvs[0], tlvs[1]]);
        let l = usize::from(u16::from_be_bytes([tlvs[2], tlvs[3]]));
        tlvs = &tlvs[4..];
        if tlvs.len() < l {
            break;
        }
        let v = &tlvs[..l];
        match t {
            TLV_MAJOR | TLV_MINOR => {
                let b: [u8; 2] = v
                    .get(..2)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(HandshakeError::MalformedTlv(t))?;
                if t == TLV_MAJOR {
                    major = u16::from_be_bytes(b);
                } else {
                    minor = u16::from_be_bytes(b);
                }
            }
            TLV_PUBLIC_KEY => {
                let k: PublicKey = v
                    .get(..PUBLIC_KEY_LEN)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(HandshakeError::MalformedTlv(t))?;
                key = Some(k);
            }
            TLV_PRIORITY => {
                priority = *v.first().ok_or(HandshakeError::MalformedTlv(t))?;
            }
            _ => {}
        }
        tlvs = &tlvs[l..];
    }
    let public_key = key.ok_or(HandshakeError::MissingKey)?;
    let hash = password_hash(password, &public_key)?;
    if !verify(&public_key, &hash, &sig) {
        return Err(HandshakeError::IncorrectPassword);
    }
    if major != PROTOCOL_MAJOR || minor != PROTOCOL_MINOR {
        return Err(HandshakeError::IncompatibleVersion { major, minor });
    }
    Ok(Metadata {
        major,
        minor,
        public_key,
        priority,
    })
}

/// Decodes a complete handshake message (header + body).
pub fn decode(msg: &[u8], password: &[u8]) -> Result<Metadata, HandshakeError> {
    let header: [u8; HEADER_LEN] = msg
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(HandshakeError::InvalidLength)?;
    let want = parse_header(&header)?;
    let body = &msg[HEADER_LEN..];
    if body.len() != want {
        return Err(HandshakeError::LengthMismatch {
            got: body.len(),
            want,
        });
    }
    decode_body(body, password)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seed() -> [u8; 32] {
        let mut s = [0u8; 32];
        for (i, b) in s.iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        s
    }

    // Computed independently (Python `cryptography` + `hashlib.blake2b`).
    const GOLDEN_NO_PASSWORD: &str = "6d65746100750000000200000001000200050002002079b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664000300010765ebf34272faa534e701bb6b26de3956606303dd083d200e2c7055ddc97440099c1b7ced5a158a5b4c4911454ab9743b2856c42d8869169045f333b7173aab0c";
    const GOLDEN_PASSWORD: &str = "6d65746100750000000200000001000200050002002079b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad04966400030001070817fb9044639b20518d82595fcf9b077be6f61fc1ed9172a7f2cdeda530d03248700b7e350a1dfa22b7320cf87dbee5b88a9c5bd9566b1ef11359fb4ca05d06";

    #[test]
    fn golden_handshake_bytes() {
        let id = Identity::from_seed(&seed());
        let a = encode(&id, 7, b"").unwrap();
        assert_eq!(a.len(), STANDARD_LEN);
        assert_eq!(STANDARD_LEN, 123);
        assert_eq!(hex::encode(&a), GOLDEN_NO_PASSWORD);
        let b = encode(&id, 7, b"secret password").unwrap();
        assert_eq!(hex::encode(&b), GOLDEN_PASSWORD);
        let m = decode(&b, b"secret password").unwrap();
        assert_eq!(m.public_key, id.public_key());
        assert_eq!(m.priority, 7);
        assert_eq!(decode(&b, b"other"), Err(HandshakeError::IncorrectPassword));
        assert_eq!(decode(&a, b"x"), Err(HandshakeError::IncorrectPassword));
    }

    #[test]
    fn rejects_wrong_version_and_preamble() {
        let id = Identity::from_seed(&seed());
        let mut m = encode(&id, 0, b"").unwrap();
        m[17] = 4; // minor version 4
        assert_eq!(
            decode(&m, b""),
            Err(HandshakeError::IncompatibleVersion { major: 0, minor: 4 })
        );
        let mut m = encode(&id, 0, b"").unwrap();
        m[0] = b'M';
        assert_eq!(decode(&m, b""), Err(HandshakeError::InvalidPreamble));
        // The 0.4 handshake: 38 bytes, "meta" + versions + key, no length/sig.
        let mut old = b"meta".to_vec();
        old.extend_from_slice(&[0, 0, 0, 4]);
        old.extend_from_slice(&[0u8; 30]);
        assert!(decode(&old, b"").is_err());
    }

    #[test]
    fn password_too_long() {
        let id = Identity::from_seed(&seed());
        assert!(encode(&id, 0, &[b'a'; 64]).is_ok());
        assert_eq!(
            encode(&id, 0, &[b'a'; 65]),
            Err(HandshakeError::PasswordTooLong)
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&data, b"");
            let _ = decode_body(&data, b"pw");
        }

        #[test]
        fn roundtrip(seed in any::<[u8; 32]>(), prio in any::<u8>(), pw in proptest::collection::vec(any::<u8>(), 0..=64)) {
            let id = Identity::from_seed(&seed);
            let m = decode(&encode(&id, prio, &pw).unwrap(), &pw).unwrap();
            prop_assert_eq!(m.public_key, id.public_key());
            prop_assert_eq!(m.priority, prio);
        }
    }
}
