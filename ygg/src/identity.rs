//! The node identity: an ed25519 key pair built from a 32-byte seed, with the
//! sign/verify helpers the protocol needs.
//!
//! Verification is strict, for this node and for the mediator's AUTH and CREATE_CHAT alike:
//! it accepts what Go's `crypto/ed25519.Verify` accepts from an honest signer (canonical
//! point encodings, canonical S), and refuses in addition public keys and signature R points
//! of small order. Such a key has no private key behind it: with R of small order and S = 0
//! a cofactorless check passes for some messages without any secret, so anyone could sign
//! as it. A key that does not decode as a curve point, or a bad signature, simply verifies as
//! `false`; [`check`] says why.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use crate::wire::{PublicKey, Signature};

/// A node's ed25519 key pair.
#[derive(Clone)]
pub struct Identity {
    signing: SigningKey,
    public: PublicKey,
}

impl Identity {
    /// Builds the identity from a 32-byte ed25519 seed (the first half of a
    /// Go `ed25519.PrivateKey` / Yggdrasil's `PrivateKey` config field).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(seed);
        let public = signing.verifying_key().to_bytes();
        Self { signing, public }
    }

    /// Generates a fresh random identity.
    pub fn generate() -> Self {
        let seed: [u8; 32] = rand::random();
        Self::from_seed(&seed)
    }

    /// The 32-byte seed.
    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The public key, which is the node's network address.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        self.signing.sign(message).to_bytes()
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("public", &hex::encode(self.public))
            .finish_non_exhaustive()
    }
}

/// The eight points of small order in their canonical encodings, hex (the identity, the
/// point of order 2, two of order 4 and four of order 8): public keys with no private key
/// behind them, which [`check`] refuses. Golden values for tests here and elsewhere.
pub const SMALL_ORDER_KEYS: [&str; 8] = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
];

/// Non-canonical encodings of small-order points, hex (y = p + 1 or y = p, and x = 0 with
/// the sign bit set), which [`check`] refuses too.
pub const NON_CANONICAL_KEYS: [&str; 6] = [
    "0100000000000000000000000000000000000000000000000000000000000080",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
];

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureRejected {
    /// The public key is not the encoding of a curve point.
    #[error("public key is not a curve point")]
    NotAPoint,
    /// The public key encodes its point in a non-canonical way (y not reduced, or x = 0
    /// with the sign bit set); every honest key is canonical.
    #[error("public key encoding is not canonical")]
    NonCanonicalKey,
    /// The public key is a point of small order: no private key stands behind it.
    #[error("public key has small order")]
    WeakKey,
    /// The signature does not verify (this includes a small-order or non-canonical R and
    /// S not reduced modulo the group order).
    #[error("signature does not verify")]
    BadSignature,
}

/// Checks `sig` over `message` under `key` strictly (see the module header); never panics.
pub fn check(key: &PublicKey, message: &[u8], sig: &Signature) -> Result<(), SignatureRejected> {
    let vk = VerifyingKey::from_bytes(key).map_err(|_| SignatureRejected::NotAPoint)?;
    if vk.to_edwards().compress().as_bytes() != key {
        return Err(SignatureRejected::NonCanonicalKey);
    }
    if vk.is_weak() {
        return Err(SignatureRejected::WeakKey);
    }
    vk.verify_strict(message, &ed25519_dalek::Signature::from_bytes(sig))
        .map_err(|_| SignatureRejected::BadSignature)
}

/// Whether `sig` over `message` under `key` passes [`check`].
pub fn verify(key: &PublicKey, message: &[u8], sig: &Signature) -> bool {
    check(key, message, sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify() {
        let id = Identity::from_seed(&[7u8; 32]);
        let sig = id.sign(b"abc");
        assert!(verify(&id.public_key(), b"abc", &sig));
        assert!(!verify(&id.public_key(), b"abd", &sig));
        assert!(!verify(&[0xffu8; 32], b"abc", &sig));
    }

    fn key(h: &str) -> PublicKey {
        hex::decode(h).unwrap().try_into().unwrap()
    }

    /// Every small-order key, canonical or not, with every small-order R and S = 0, over
    /// a spread of messages: the cofactorless check that Go does lets some of them through
    /// without any private key; the strict check refuses them all and says why.
    #[test]
    fn small_order_keys_and_signatures_are_refused() {
        let mut cofactorless_passes = 0;
        for k in SMALL_ORDER_KEYS.iter().chain(NON_CANONICAL_KEYS.iter()) {
            let pk = key(k);
            let expect = if SMALL_ORDER_KEYS.contains(k) {
                SignatureRejected::WeakKey
            } else {
                SignatureRejected::NonCanonicalKey
            };
            for r in SMALL_ORDER_KEYS.iter().chain(NON_CANONICAL_KEYS.iter()) {
                let mut sig = [0u8; 64];
                sig[..32].copy_from_slice(&key(r));
                for m in 0..16u8 {
                    let msg = [m; 32];
                    if let Ok(vk) = VerifyingKey::from_bytes(&pk) {
                        use ed25519_dalek::Verifier;
                        let s = ed25519_dalek::Signature::from_bytes(&sig);
                        cofactorless_passes += usize::from(vk.verify(&msg, &s).is_ok());
                    }
                    assert_eq!(check(&pk, &msg, &sig), Err(expect), "key {k} R {r}");
                }
            }
        }
        // The attack this guards against is real: the lax check accepts forgeries here.
        assert!(cofactorless_passes > 0);
    }

    /// The golden small-order encodings really are of small order, and they are the only
    /// canonical ones: an honest key is neither weak nor non-canonical.
    #[test]
    fn golden_small_order_points() {
        for k in SMALL_ORDER_KEYS {
            let vk = VerifyingKey::from_bytes(&key(k)).unwrap();
            assert!(vk.is_weak(), "{k}");
            assert_eq!(
                vk.to_edwards().compress().to_bytes(),
                key(k),
                "{k} canonical"
            );
        }
        for k in NON_CANONICAL_KEYS {
            if let Ok(vk) = VerifyingKey::from_bytes(&key(k)) {
                assert_ne!(vk.to_edwards().compress().to_bytes(), key(k), "{k}");
            }
        }
        let honest = Identity::from_seed(&[9; 32]);
        let sig = honest.sign(b"m");
        assert_eq!(check(&honest.public_key(), b"m", &sig), Ok(()));
    }

    /// A valid signature with S + L (not reduced) and one whose R is re-encoded
    /// non-canonically are refused; the original passes.
    #[test]
    fn non_canonical_signatures_are_refused() {
        let id = Identity::from_seed(&[3; 32]);
        let sig = id.sign(b"msg");
        assert!(verify(&id.public_key(), b"msg", &sig));
        // L, the group order, little-endian.
        let l = hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
            .unwrap();
        let mut s_plus_l = sig;
        let mut carry = 0u16;
        for i in 0..32 {
            let v = u16::from(sig[32 + i]) + u16::from(l[i]) + carry;
            s_plus_l[32 + i] = v as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0);
        assert_eq!(
            check(&id.public_key(), b"msg", &s_plus_l),
            Err(SignatureRejected::BadSignature)
        );
        let mut flipped = sig;
        flipped[31] ^= 0x80;
        assert!(!verify(&id.public_key(), b"msg", &flipped));
    }
}
