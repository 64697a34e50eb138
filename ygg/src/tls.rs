//! `tls://` links as yggdrasil-go makes them (`core/tls.go`,
//! `link_tls.go`): both sides present a self-signed certificate for the
//! node's ed25519 key, and nobody validates certificates. Peer identity is
//! proven afterwards by the signed `meta` handshake inside the TLS stream.
//!
//! * Dialing: TLS 1.2–1.3, SNI = the URI host or `sni=` (no SNI for IP
//!   literals, as with Go), any server certificate accepted, but the
//!   handshake signature is still verified against the presented key.
//! * Listening: TLS 1.3 only, no client certificate requested.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::identity::Identity;

/// Errors while building TLS configurations.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate generation failed.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// rustls rejected the configuration.
    #[error("tls config: {0}")]
    Rustls(#[from] rustls::Error),
    /// The SNI / host is not a valid server name.
    #[error("invalid server name {0:?}")]
    ServerName(String),
}

/// The PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410); the 32-byte
/// seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Our self-signed certificate and its key.
fn self_signed(
    id: &Identity,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), TlsError> {
    let mut der = ED25519_PKCS8_PREFIX.to_vec();
    der.extend_from_slice(&id.seed());
    let key = PrivatePkcs8KeyDer::from(der);
    let kp = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&key, &rcgen::PKCS_ED25519)?;
    let name = hex::encode(id.public_key());
    let cert = rcgen::CertificateParams::new(vec![name])?.self_signed(&kp)?;
    Ok((cert.der().clone(), PrivateKeyDer::Pkcs8(key)))
}

/// Accepts any server certificate but checks the handshake signatures made
/// with its key: Yggdrasil peers (and yggquic servers) present self-signed
/// certificates, and the identity that matters is checked elsewhere (the
/// link handshake, or the QUIC client's expected key). Also used by the
/// mediator's QUIC test client.
#[derive(Debug)]
pub struct AcceptAnyCert(Arc<CryptoProvider>);

impl AcceptAnyCert {
    /// A verifier whose signature checks use `provider`'s algorithms.
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        Self(provider)
    }
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Client configuration for dialing `tls://` peers.
pub fn client_config(id: &Identity) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let p = provider();
    let (cert, key) = self_signed(id)?;
    let cfg = rustls::ClientConfig::builder_with_provider(p.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(p)))
        .with_client_auth_cert(vec![cert], key)?;
    Ok(Arc::new(cfg))
}

/// Server configuration for `tls://` listeners.
pub fn server_config(id: &Identity) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (cert, key) = self_signed(id)?;
    let cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    Ok(Arc::new(cfg))
}

/// How long the TLS handshake may take (then the meta handshake gets its
/// own deadline).
pub const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(6);

/// The server name for the ClientHello: `sni` unless it is an IP literal,
/// else the host. An IP literal results in no SNI extension, as in Go.
pub fn server_name(host: &str, sni: Option<&str>) -> Result<ServerName<'static>, TlsError> {
    let name = sni
        .filter(|s| s.parse::<std::net::IpAddr>().is_err())
        .unwrap_or(host);
    ServerName::try_from(name.to_string()).map_err(|_| TlsError::ServerName(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn our_client_talks_to_our_server() {
        let a = Identity::from_seed(&[1; 32]);
        let b = Identity::from_seed(&[2; 32]);
        let (x, y) = tokio::io::duplex(1 << 16);
        let conn = tokio_rustls::TlsConnector::from(client_config(&a).unwrap());
        let acc = tokio_rustls::TlsAcceptor::from(server_config(&b).unwrap());
        let name = server_name("127.0.0.1", None).unwrap();
        let (c, s) = tokio::join!(conn.connect(name, x), acc.accept(y));
        let (mut c, mut s) = (c.unwrap(), s.unwrap());
        c.write_all(b"ping").await.unwrap();
        c.flush().await.unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
    }
}
