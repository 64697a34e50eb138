//! QUIC endpoint configuration for mediatord that real yggquic clients can
//! connect to.
//!
//! Mimir 2.x clients reach the mediator through yggquic, which runs quic-go
//! over Yggdrasil (`yggdrasil.md` §1, `mediator-protocol.md` §1.2). This crate
//! builds the `quinn` server configuration that matches what those clients
//! send, plus a client configuration for our own Rust test client:
//!
//! * [`server_config`]: TLS 1.3 only, **no ALPN**, no client certificate
//!   requested, an **invalid SNI ignored**, one self-signed X.509 certificate
//!   carrying the node's ed25519 key ([`cert`]), and the yggquic transport
//!   parameters ([`settings`]).
//! * [`client_config`]: quinn's stock rustls 0.23 client that accepts any
//!   server certificate but still checks the handshake signature ([`client`]).
//! * [`endpoint_config`]: the endpoint-wide knobs (accepted UDP payload size,
//!   QUIC versions).
//!
//! # Why the server side uses the rustls 0.24 pre-release
//!
//! A yggquic client sets the TLS ServerName to the hex of its *own* ed25519
//! key, so every ClientHello carries an SNI made of one 64-character DNS
//! label. DNS labels are limited to 63 characters, and rustls 0.23 (the
//! version quinn 0.11 depends on) answers such a ClientHello with a fatal
//! `illegal_parameter` alert. A stock quinn server therefore fails every
//! handshake from a real client (`yggdrasil.md` §1.5). The integration test
//! `tests/go_probe.rs` demonstrates this with a quic-go client.
//!
//! The options were:
//!
//! * **A patched rustls 0.23** through `[patch.crates-io]`. It is a small
//!   change, but the workspace would carry a copy of third-party source that
//!   must be re-patched on every rustls update, and the patch would silently
//!   change the behaviour of every other rustls user in the build.
//! * **A Go sidecar** terminating yggquic. It interoperates perfectly but adds
//!   a second language, toolchain and process to the server.
//! * **rustls 0.24.0-dev.2** (a crates.io pre-release), chosen here. It has a
//!   supported switch, `ServerConfig::invalid_sni_policy =
//!   InvalidSniPolicy::IgnoreAll`, which treats an unparseable SNI as if none
//!   had been sent. Nothing is forked or patched. The cost is that quinn 0.11
//!   only speaks rustls 0.23, so this crate implements quinn-proto's public
//!   crypto traits (`crypto::ServerConfig`, `crypto::Session`,
//!   `crypto::HeaderKey`, `crypto::PacketKey`) on top of rustls 0.24's QUIC
//!   API itself ([`server_crypto`], [`keys`]). quinn-proto keeps those traits
//!   public exactly so that other TLS stacks can be plugged in.
//!
//! Consequences worth knowing:
//!
//! * The pre-release API may still change, so `rustls` is pinned to the exact
//!   version `=0.24.0-dev.2` (with `rustls-ring` `=0.24.0-dev.2` as its crypto
//!   provider; rustls 0.24 has no built-in provider). Updating it means
//!   re-checking [`server_crypto`].
//! * Two rustls versions are linked: 0.24 for our server, 0.23 inside quinn
//!   (used by [`client_config`] and by nothing on the server path).
//! * Only the server side is implemented; the client side keeps quinn's own
//!   glue. Once quinn adopts a rustls release with `invalid_sni_policy`, this
//!   glue can be replaced by quinn's with that one field set.
//! * QUIC v1 is supported (plus the draft-33/34 version numbers quinn still
//!   lists, which use the v1 key schedule). Older drafts and QUIC v2 are not;
//!   quic-go clients offer v1.
//!
//! The crate contains no code or comments taken from quinn-proto's own rustls
//! glue; it was written against the documented trait contracts and the
//! RFC 9001 packet layout.

pub mod cert;
pub mod client;
pub mod error;
pub mod keys;
pub mod server_crypto;
pub mod settings;
pub mod ygg;

use std::sync::Arc;

pub use cert::{node_certificate_der, NodeCertificate};
pub use client::client_config;
pub use error::QuicConfigError;
pub use server_crypto::{HandshakeData, ServerCrypto};
pub use settings::QuicSettings;

/// Builds the quinn server configuration for a node whose ed25519 secret key
/// (the 32-byte seed) is `seed`.
///
/// The server presents one self-signed certificate for the node key,
/// negotiates TLS 1.3 without ALPN, does not ask for a client certificate and
/// ignores an invalid SNI; see the crate documentation for why.
pub fn server_config(
    seed: &[u8; 32],
    settings: &QuicSettings,
) -> Result<quinn::ServerConfig, QuicConfigError> {
    let transport = settings.transport_config()?;
    let crypto = ServerCrypto::new(seed)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// Builds the endpoint-wide configuration to pair with [`server_config`]
/// (and with [`client_config`]).
///
/// It accepts UDP payloads of up to `settings.max_udp_payload_size` bytes
/// (at least the 1452 bytes a quic-go client sends) and offers only the QUIC
/// versions the server glue implements ([`server_crypto::SUPPORTED_VERSIONS`]).
pub fn endpoint_config(settings: &QuicSettings) -> Result<quinn::EndpointConfig, QuicConfigError> {
    settings.validate()?;
    let mut config = quinn::EndpointConfig::default();
    config
        .max_udp_payload_size(settings.max_udp_payload_size)?
        .supported_versions(server_crypto::SUPPORTED_VERSIONS.to_vec());
    Ok(config)
}
