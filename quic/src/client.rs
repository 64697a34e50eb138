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
use yggnode::tls::AcceptAnyCert;

use crate::error::QuicConfigError;
use crate::settings::QuicSettings;

/// Builds the quinn client configuration for connecting to a mediatord
/// server (in tests). Uses the same transport parameters as the server.
pub fn client_config(settings: &QuicSettings) -> Result<quinn::ClientConfig, QuicConfigError> {
    let transport = settings.transport_config()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(QuicConfigError::ClientTls)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert::new(provider)))
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
