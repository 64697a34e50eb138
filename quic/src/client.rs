//! Client configuration for our own Rust test client.
//!
//! Unlike the server, the client side has no SNI problem of its own: it
//! uses quinn's stock rustls 0.23 glue with a server name of at most 63
//! characters. Like a yggquic client it negotiates TLS 1.3 without ALPN,
//! skips certificate *validation* (the server's certificate is self-signed
//! and the node key is checked by the caller, if at all, through
//! `quinn::Connection::peer_identity`), offers no client certificate and
//! keeps no resumption state. It does still verify the server's handshake
//! signature against the presented certificate, so the server must really
//! hold the certificate's private key.

use std::sync::Arc;

use quinn::crypto::rustls::QuicClientConfig;
use quinn::rustls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::error::QuicConfigError;
use crate::settings::QuicSettings;

/// Accepts any server certificate but checks the handshake signatures made
/// with its key.
#[derive(Debug)]
struct AnyServerCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyServerCertificate {
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Builds the quinn client configuration for connecting to a mediatord
/// server (in tests). Uses the same transport parameters as the server.
pub fn client_config(settings: &QuicSettings) -> Result<quinn::ClientConfig, QuicConfigError> {
    let transport = settings.transport_config()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(QuicConfigError::ClientTls)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServerCertificate { provider }))
        .with_no_client_auth();
    tls.alpn_protocols = Vec::new();
    tls.enable_early_data = false;
    tls.resumption = rustls::client::Resumption::disabled();

    let crypto = QuicClientConfig::try_from(tls).map_err(QuicConfigError::ClientCrypto)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config
        .transport_config(Arc::new(transport))
        .token_store(Arc::new(quinn::NoneTokenStore));
    Ok(config)
}
