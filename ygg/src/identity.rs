//! The node identity: an ed25519 key pair built from a 32-byte seed, with the
//! sign/verify helpers the protocol needs. Verification follows Go's
//! `crypto/ed25519.Verify` closely enough for interop: a key that does not
//! decode as a curve point, or a bad signature, simply verifies as `false`.

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};

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

/// Verifies `sig` over `message` under `key`; never panics.
pub fn verify(key: &PublicKey, message: &[u8], sig: &Signature) -> bool {
    match VerifyingKey::from_bytes(key) {
        Ok(vk) => vk
            .verify(message, &ed25519_dalek::Signature::from_bytes(sig))
            .is_ok(),
        Err(_) => false,
    }
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
}
