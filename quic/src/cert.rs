//! The node's self-signed X.509 certificate.
//!
//! A yggquic server presents exactly one certificate, self-signed, whose
//! public key is the node's ed25519 key (`yggdrasil.md` §1.4). Clients skip
//! verification (`InsecureSkipVerify`), although upstream yggquic's
//! `verifyPeer` does check that there is exactly one ed25519 certificate and
//! that its key equals the node address. Expiry is never checked, so the
//! certificate is valid until the end of year 9999, like the one Mimir 2.x
//! clients generate for themselves.
//!
//! The certificate is rebuilt from the 32-byte ed25519 seed whenever it is
//! needed. Every field is fixed and ed25519 signatures are deterministic, so
//! the same seed always yields the same DER.

use ed25519_dalek::SigningKey;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyPair, KeyUsagePurpose, SerialNumber,
    PKCS_ED25519,
};
use rustls_v024::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

use crate::error::QuicConfigError;

/// First day of validity (UTC): 1 January 2000, safely in the past.
pub const NOT_BEFORE: (i32, u8, u8) = (2000, 1, 1);

/// Last day of validity (UTC, from midnight): 31 December 9999, the
/// conventional "never expires" year of RFC 5280 §4.1.2.5.
pub const NOT_AFTER: (i32, u8, u8) = (9999, 12, 31);

/// Serial number of the certificate; the Go mediator uses 1 as well.
pub const SERIAL_NUMBER: u64 = 1;

/// DER prefix of an unencrypted PKCS#8 v1 `OneAsymmetricKey` holding an
/// Ed25519 private key (RFC 8410 §7): SEQUENCE { INTEGER 0, SEQUENCE { OID
/// 1.3.101.112 }, OCTET STRING { OCTET STRING (32 bytes) } }. The 32-byte
/// seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The node certificate together with the key material TLS needs.
pub struct NodeCertificate {
    /// DER of the self-signed certificate.
    pub certificate: CertificateDer<'static>,
    /// The private key as PKCS#8 DER, for the TLS library.
    pub private_key: PrivatePkcs8KeyDer<'static>,
    /// The node's ed25519 public key (the key inside the certificate).
    pub public_key: [u8; 32],
}

impl std::fmt::Debug for NodeCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCertificate")
            .field("public_key", &hex::encode(self.public_key))
            .field("certificate_len", &self.certificate.len())
            .finish_non_exhaustive()
    }
}

/// Wraps an ed25519 seed in PKCS#8 DER.
fn pkcs8_from_seed(seed: &[u8; 32]) -> PrivatePkcs8KeyDer<'static> {
    let mut der = Vec::with_capacity(ED25519_PKCS8_PREFIX.len() + seed.len());
    der.extend_from_slice(&ED25519_PKCS8_PREFIX);
    der.extend_from_slice(seed);
    PrivatePkcs8KeyDer::from(der)
}

impl NodeCertificate {
    /// Builds the certificate for the node whose ed25519 seed is `seed`.
    ///
    /// The subject CN is the lowercase hex of the public key; key usage is
    /// digital signature only; there is no subject alternative name (nobody
    /// matches names against it).
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self, QuicConfigError> {
        let public_key = SigningKey::from_bytes(seed).verifying_key().to_bytes();
        let private_key = pkcs8_from_seed(seed);
        let key_pair = KeyPair::from_pkcs8_der_and_sign_algo(&private_key, &PKCS_ED25519)?;

        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, hex::encode(public_key));
        params.distinguished_name = subject;
        params.serial_number = Some(SerialNumber::from(SERIAL_NUMBER));
        params.not_before = rcgen::date_time_ymd(NOT_BEFORE.0, NOT_BEFORE.1, NOT_BEFORE.2);
        params.not_after = rcgen::date_time_ymd(NOT_AFTER.0, NOT_AFTER.1, NOT_AFTER.2);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let certificate = params.self_signed(&key_pair)?.der().clone();

        Ok(Self {
            certificate,
            private_key,
            public_key,
        })
    }
}

/// DER of the node certificate for `seed` (see [`NodeCertificate`]).
pub fn node_certificate_der(seed: &[u8; 32]) -> Result<Vec<u8>, QuicConfigError> {
    Ok(NodeCertificate::from_seed(seed)?.certificate.to_vec())
}

/// DER prefix of an Ed25519 `SubjectPublicKeyInfo` (RFC 8410 §4): SEQUENCE {
/// SEQUENCE { OID 1.3.101.112 }, BIT STRING (33 bytes, 0 unused bits) }. The
/// 32-byte key follows.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Extracts the ed25519 public key from a certificate's DER, by locating its
/// `SubjectPublicKeyInfo`. Returns `None` if the certificate holds no
/// Ed25519 key. Meant for tests and diagnostics, not for validating
/// untrusted certificates.
pub fn ed25519_public_key_of(certificate_der: &[u8]) -> Option<[u8; 32]> {
    let start = certificate_der
        .windows(ED25519_SPKI_PREFIX.len())
        .position(|w| w == ED25519_SPKI_PREFIX)?
        + ED25519_SPKI_PREFIX.len();
    certificate_der.get(start..start + 32)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: [u8; 32] = [7; 32];

    #[test]
    fn certificate_carries_the_node_key() {
        let cert = NodeCertificate::from_seed(&SEED).unwrap();
        let expected = SigningKey::from_bytes(&SEED).verifying_key().to_bytes();
        assert_eq!(cert.public_key, expected);
        assert_eq!(ed25519_public_key_of(&cert.certificate), Some(expected));
        // CN is the hex key.
        let cn = hex::encode(expected);
        assert!(cert
            .certificate
            .windows(cn.len())
            .any(|w| w == cn.as_bytes()));
    }

    #[test]
    fn certificate_is_deterministic() {
        assert_eq!(
            node_certificate_der(&SEED).unwrap(),
            node_certificate_der(&SEED).unwrap()
        );
        assert_ne!(
            node_certificate_der(&SEED).unwrap(),
            node_certificate_der(&[8; 32]).unwrap()
        );
    }

    #[test]
    fn certificate_validity_runs_to_9999() {
        let der = node_certificate_der(&SEED).unwrap();
        // GeneralizedTime 99991231000000Z
        assert!(der.windows(15).any(|w| w == b"99991231000000Z"));
        // UTCTime 000101000000Z
        assert!(der.windows(13).any(|w| w == b"000101000000Z"));
    }
}
