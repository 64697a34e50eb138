//! quinn-proto's server-side crypto traits implemented on rustls 0.24.
//!
//! [`ServerCrypto`] is the `quinn_proto::crypto::ServerConfig` that
//! [`crate::server_config`] installs; each incoming connection gets a
//! [`ServerSession`] (`quinn_proto::crypto::Session`). The crate
//! documentation explains why this exists instead of quinn's own rustls 0.23
//! glue.
//!
//! # How the session drives rustls
//!
//! rustls 0.24 exposes the server handshake as a chain of typed states
//! (`rustls::quic::ServerHandshake`): `NeedsInput` consumes CRYPTO stream
//! bytes; `Accepted` means a whole ClientHello has arrived and a
//! `ServerConfig` must be chosen (we always choose the one fixed TLS
//! configuration, together with our encoded transport parameters);
//! `VerifyClientIdentity` cannot occur because no client certificate is
//! requested, but is resolved with the configured verifier if it does;
//! `Complete` yields the established connection. Each step consumes the
//! previous state, so the session keeps it in an enum and swaps it out.
//!
//! Output arrives as an ordered list of `QuicEvent`s: handshake bytes and
//! key changes. quinn pulls them with `write_handshake`, which must return
//! the bytes of the *current* packet space and stop at the next key change
//! (quinn attributes the bytes returned by one call to the space that was
//! current before the keys in that call's result take effect). The session
//! therefore queues the events and hands them out up to and including the
//! next key change.
//!
//! CRYPTO data may split a TLS message (a post-quantum ClientHello from Go
//! is larger than one packet), so unconsumed input is kept and offered again
//! together with the next bytes.
//!
//! # TLS policy
//!
//! TLS 1.3 only (the `rustls-ring` TLS 1.3 provider: AES-128-GCM,
//! AES-256-GCM, ChaCha20-Poly1305; X25519, P-256, P-384), no ALPN, no client
//! authentication, invalid SNI ignored ([`InvalidSniPolicy::IgnoreAll`]), no
//! early data, no session tickets and no session cache (yggquic clients keep
//! no resumption state, `mediator-protocol.md` §1.2).

use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;

use quinn_proto::crypto::{self, ExportKeyingMaterialError, KeyPair, Keys, UnsupportedVersion};
use quinn_proto::transport_parameters::TransportParameters;
use quinn_proto::{ConnectionId, Side, TransportError, TransportErrorCode};
use rustls_v024::crypto::Identity;
use rustls_v024::error::AlertDescription;
use rustls_v024::pki_types::{CertificateDer, PrivateKeyDer};
use rustls_v024::quic::{self as tls_quic, KeyChange, Quic, QuicEvent, Secrets, ServerHandshake};
use rustls_v024::server::{InvalidSniPolicy, NoServerSessionStorage, ServerSide, Tls13Tickets};
use rustls_v024::{Connection, ConnectionOutputs, KeyingMaterialExporter, SliceInput};

use crate::cert::NodeCertificate;
use crate::error::QuicConfigError;
use crate::keys::{packet_key, quinn_keys, retry_integrity_tag};

/// QUIC version 1 (RFC 9000).
pub const QUIC_VERSION_1: u32 = 0x0000_0001;

/// QUIC versions the server accepts: v1, plus drafts 33 and 34, which quinn
/// still lists by default and which use the v1 key schedule. Older drafts
/// (29–32) used a different initial salt that rustls 0.24 does not offer;
/// QUIC v2 is not implemented by quinn 0.11.
pub const SUPPORTED_VERSIONS: [u32; 3] = [QUIC_VERSION_1, 0xff00_0021, 0xff00_0022];

/// TLS session tickets sent after a handshake: none, since clients keep no
/// resumption state.
const SESSION_TICKETS: Tls13Tickets = Tls13Tickets { default: 0, max: 0 };

/// Maps a QUIC version number to rustls' key-schedule variant.
fn tls_version(version: u32) -> Result<tls_quic::Version, UnsupportedVersion> {
    if SUPPORTED_VERSIONS.contains(&version) {
        Ok(tls_quic::Version::V1)
    } else {
        Err(UnsupportedVersion)
    }
}

fn tls_side(side: Side) -> tls_quic::Side {
    match side {
        Side::Client => tls_quic::Side::Client,
        Side::Server => tls_quic::Side::Server,
    }
}

/// What quinn can learn about a server-side handshake once the ClientHello
/// has been processed (the `Box<dyn Any>` behind
/// `quinn::Connecting::handshake_data` / `quinn::Connection::handshake_data`
/// on connections accepted with [`crate::server_config`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeData {
    /// The ALPN protocol agreed on. Always `None` with this crate's server,
    /// which configures no ALPN.
    pub protocol: Option<Vec<u8>>,
    /// The SNI the client sent, if it was a valid DNS name. A yggquic client's
    /// 64-character SNI is invalid and therefore reported as `None`.
    pub server_name: Option<String>,
}

/// The server's TLS configuration, as a quinn-proto crypto server config.
pub struct ServerCrypto {
    tls: Arc<rustls_v024::ServerConfig>,
    initial_suite: tls_quic::Suite,
}

impl std::fmt::Debug for ServerCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCrypto").finish_non_exhaustive()
    }
}

impl ServerCrypto {
    /// Builds the TLS configuration for the node whose ed25519 seed is
    /// `seed`.
    pub fn new(seed: &[u8; 32]) -> Result<Self, QuicConfigError> {
        let node = NodeCertificate::from_seed(seed)?;
        let identity =
            Identity::from_cert_chain(vec![node.certificate]).map_err(rustls_v024::Error::from)?;
        let provider = Arc::new(rustls_ring::DEFAULT_TLS13_PROVIDER);
        let mut tls = rustls_v024::ServerConfig::builder(provider)
            .with_no_client_auth()
            .with_single_cert(Arc::new(identity), PrivateKeyDer::Pkcs8(node.private_key))?;
        tls.alpn_protocols = Vec::new();
        tls.invalid_sni_policy = InvalidSniPolicy::IgnoreAll;
        tls.max_early_data_size = 0;
        tls.send_tls13_tickets = SESSION_TICKETS;
        tls.session_storage = Arc::new(NoServerSessionStorage {});
        tls.ticketer = None;

        // QUIC Initial packets are always protected with the AES-128-GCM
        // suite (RFC 9001 §5.2), whatever TLS later negotiates.
        let initial_suite =
            tls_quic::Suite::try_from(rustls_ring::cipher_suite::TLS13_AES_128_GCM_SHA256)
                .map_err(rustls_v024::Error::from)?;

        Ok(Self {
            tls: Arc::new(tls),
            initial_suite,
        })
    }

    /// The underlying rustls 0.24 server configuration.
    pub fn tls_config(&self) -> &Arc<rustls_v024::ServerConfig> {
        &self.tls
    }
}

impl crypto::ServerConfig for ServerCrypto {
    fn initial_keys(
        &self,
        version: u32,
        dst_cid: &ConnectionId,
    ) -> Result<Keys, UnsupportedVersion> {
        let version = tls_version(version)?;
        Ok(quinn_keys(self.initial_suite.keys(
            dst_cid,
            tls_quic::Side::Server,
            version,
        )))
    }

    fn retry_tag(&self, _version: u32, orig_dst_cid: &ConnectionId, packet: &[u8]) -> [u8; 16] {
        // Every supported version uses the v1 Retry key.
        retry_integrity_tag(orig_dst_cid, packet)
    }

    fn start_session(
        self: Arc<Self>,
        version: u32,
        params: &TransportParameters,
    ) -> Box<dyn crypto::Session> {
        // quinn calls this only for versions `initial_keys` accepted, and all
        // of those map to the v1 key schedule.
        let version = tls_version(version).unwrap_or(tls_quic::Version::V1);
        let mut encoded_params = Vec::new();
        params.write(&mut encoded_params);
        Box::new(ServerSession {
            version,
            initial_suite: self.initial_suite,
            tls: Arc::clone(&self.tls),
            local_params: encoded_params,
            state: HandshakeState::Handshaking(tls_quic::ServerHandshake::start(version)),
            pending_input: Vec::new(),
            events: VecDeque::new(),
            next_secrets: None,
            client_hello_processed: false,
            exporter: None,
        })
    }
}

/// Where a server session's TLS handshake stands.
enum HandshakeState {
    /// Waiting for more CRYPTO data from the client.
    Handshaking(tls_quic::NeedsInput),
    /// The handshake finished; post-handshake messages still go through here.
    Established(Connection<ServerSide, Quic>),
    /// The handshake failed (or a state was taken and not put back).
    Failed,
}

/// One connection's TLS state, as a quinn-proto crypto session.
pub struct ServerSession {
    version: tls_quic::Version,
    initial_suite: tls_quic::Suite,
    tls: Arc<rustls_v024::ServerConfig>,
    /// Our transport parameters, TLS-encoded, sent in EncryptedExtensions.
    local_params: Vec<u8>,
    state: HandshakeState,
    /// CRYPTO stream bytes rustls has not consumed yet (an incomplete
    /// handshake message).
    pending_input: Vec<u8>,
    /// rustls output not yet collected by `write_handshake`.
    events: VecDeque<QuicEvent>,
    /// Secrets for the next 1-RTT key update.
    next_secrets: Option<Secrets>,
    /// Whether the ClientHello has been processed (handshake data ready).
    client_hello_processed: bool,
    /// Keying material exporter, available once the handshake is complete.
    exporter: Option<KeyingMaterialExporter>,
}

/// Turns a rustls error into the QUIC connection error to close with: a
/// CRYPTO_ERROR carrying the TLS alert (RFC 9001 §4.8) when the error maps
/// to one, PROTOCOL_VIOLATION otherwise.
fn transport_error(error: &rustls_v024::Error) -> TransportError {
    let code = match AlertDescription::try_from(error) {
        Ok(alert) => TransportErrorCode::crypto(alert.0),
        Err(_) => TransportErrorCode::PROTOCOL_VIOLATION,
    };
    TransportError {
        code,
        frame: None,
        reason: format!("TLS: {error}"),
    }
}

impl ServerSession {
    /// Negotiated facts and server-side data of the TLS connection, in any
    /// state but `Failed`.
    fn outputs(&self) -> Option<(&ConnectionOutputs, &ServerSide)> {
        match &self.state {
            HandshakeState::Handshaking(needs) => Some((needs, needs.side())),
            HandshakeState::Established(conn) => Some((conn, conn.side())),
            HandshakeState::Failed => None,
        }
    }

    /// Moves to the state rustls returned, resolving the states that need a
    /// decision from us (which configuration to use, client verification).
    fn settle(&mut self, mut handshake: ServerHandshake) -> Result<(), rustls_v024::Error> {
        loop {
            let mut out = Vec::new();
            let next = match handshake {
                ServerHandshake::NeedsInput(needs) => {
                    self.state = HandshakeState::Handshaking(needs);
                    return Ok(());
                }
                ServerHandshake::Accepted(accepted) => {
                    self.client_hello_processed = true;
                    accepted.choose_config(
                        Arc::clone(&self.tls),
                        self.local_params.clone(),
                        &mut out,
                    )
                }
                ServerHandshake::VerifyClientIdentity(verify) => verify.with_config(&mut out),
                ServerHandshake::Complete(mut conn) => {
                    self.events.extend(conn.events());
                    self.exporter = conn.exporter().ok();
                    self.state = HandshakeState::Established(conn);
                    return Ok(());
                }
                other => {
                    return Err(rustls_v024::Error::General(format!(
                        "unexpected rustls handshake state {other:?}"
                    )))
                }
            };
            self.events.extend(out);
            handshake = next?;
        }
    }

    /// Feeds the pending CRYPTO bytes to rustls until it needs more.
    fn process_input(&mut self) -> Result<(), rustls_v024::Error> {
        loop {
            match std::mem::replace(&mut self.state, HandshakeState::Failed) {
                HandshakeState::Handshaking(needs) => {
                    let mut out = Vec::new();
                    let mut input = SliceInput::new(&mut self.pending_input);
                    let result = needs.process(&mut input, &mut out);
                    let consumed = input.into_used();
                    self.pending_input.drain(..consumed);
                    self.events.extend(out);
                    self.settle(result?)?;
                    // Stop when nothing was consumed (an incomplete message)
                    // or nothing is left; otherwise the new state may take
                    // the rest.
                    if consumed == 0 || self.pending_input.is_empty() {
                        return Ok(());
                    }
                }
                HandshakeState::Established(mut conn) => {
                    let mut input = SliceInput::new(&mut self.pending_input);
                    let result = conn.read_hs(&mut input);
                    let consumed = input.into_used();
                    self.pending_input.drain(..consumed);
                    self.events.extend(conn.events());
                    self.state = HandshakeState::Established(conn);
                    return result;
                }
                HandshakeState::Failed => {
                    return Err(rustls_v024::Error::General(
                        "TLS handshake already failed".into(),
                    ))
                }
            }
        }
    }
}

impl crypto::Session for ServerSession {
    fn initial_keys(&self, dst_cid: &ConnectionId, side: Side) -> Keys {
        quinn_keys(
            self.initial_suite
                .keys(dst_cid, tls_side(side), self.version),
        )
    }

    fn handshake_data(&self) -> Option<Box<dyn Any>> {
        if !self.client_hello_processed {
            return None;
        }
        let (outputs, side) = self.outputs()?;
        Some(Box::new(HandshakeData {
            protocol: outputs.alpn_protocol().map(|p| p.as_ref().to_vec()),
            server_name: side.server_name().map(|n| n.as_ref().to_owned()),
        }))
    }

    /// The client's certificate chain as `Vec<CertificateDer<'static>>`, if
    /// the client authenticated. This server requests no client certificate,
    /// so in practice this is always `None`.
    fn peer_identity(&self) -> Option<Box<dyn Any>> {
        let (outputs, _) = self.outputs()?;
        match outputs.peer_identity()?.identity() {
            Identity::X509(chain) => {
                let mut certs: Vec<CertificateDer<'static>> =
                    vec![chain.end_entity.clone().into_owned()];
                certs.extend(chain.intermediates.iter().map(|c| c.clone().into_owned()));
                Some(Box::new(certs))
            }
            _ => None,
        }
    }

    fn early_crypto(&self) -> Option<(Box<dyn crypto::HeaderKey>, Box<dyn crypto::PacketKey>)> {
        // Early data is disabled (`max_early_data_size = 0`).
        None
    }

    fn early_data_accepted(&self) -> Option<bool> {
        // Only meaningful on the client side.
        None
    }

    fn is_handshaking(&self) -> bool {
        !matches!(self.state, HandshakeState::Established(_))
    }

    fn read_handshake(&mut self, buf: &[u8]) -> Result<bool, TransportError> {
        let ready_before = self.client_hello_processed;
        self.pending_input.extend_from_slice(buf);
        if let Err(error) = self.process_input() {
            tracing::debug!(%error, "TLS handshake failed");
            self.state = HandshakeState::Failed;
            return Err(transport_error(&error));
        }
        Ok(!ready_before && self.client_hello_processed)
    }

    fn transport_parameters(&self) -> Result<Option<TransportParameters>, TransportError> {
        let raw = match &self.state {
            HandshakeState::Handshaking(needs) => needs.quic_transport_parameters(),
            HandshakeState::Established(conn) => conn.quic_transport_parameters(),
            HandshakeState::Failed => None,
        };
        let Some(mut raw) = raw else {
            return Ok(None);
        };
        TransportParameters::read(Side::Server, &mut raw)
            .map(Some)
            .map_err(Into::into)
    }

    fn write_handshake(&mut self, buf: &mut Vec<u8>) -> Option<Keys> {
        while let Some(event) = self.events.pop_front() {
            match event {
                QuicEvent::Message(bytes) => buf.extend_from_slice(&bytes),
                QuicEvent::KeyChange(KeyChange::Handshake { keys }) => {
                    return Some(quinn_keys(keys));
                }
                QuicEvent::KeyChange(KeyChange::OneRtt { keys, next }) => {
                    self.next_secrets = Some(next);
                    return Some(quinn_keys(keys));
                }
                other => tracing::warn!(?other, "ignoring unknown rustls QUIC event"),
            }
        }
        None
    }

    fn next_1rtt_keys(&mut self) -> Option<KeyPair<Box<dyn crypto::PacketKey>>> {
        let keys = self.next_secrets.as_mut()?.next_packet_keys();
        Some(KeyPair {
            local: packet_key(keys.local),
            remote: packet_key(keys.remote),
        })
    }

    fn is_valid_retry(
        &self,
        _orig_dst_cid: &ConnectionId,
        _header: &[u8],
        _payload: &[u8],
    ) -> bool {
        // Retry packets are sent by servers and only ever checked by
        // clients; a server session never validates one.
        false
    }

    fn export_keying_material(
        &self,
        output: &mut [u8],
        label: &[u8],
        context: &[u8],
    ) -> Result<(), ExportKeyingMaterialError> {
        let exporter = self.exporter.as_ref().ok_or(ExportKeyingMaterialError)?;
        exporter
            .derive(label, Some(context), output)
            .map(|_| ())
            .map_err(|_| ExportKeyingMaterialError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_policy_is_yggquic_compatible() {
        let crypto = ServerCrypto::new(&[3; 32]).unwrap();
        let tls = crypto.tls_config();
        assert!(tls.alpn_protocols.is_empty());
        assert_eq!(tls.invalid_sni_policy, InvalidSniPolicy::IgnoreAll);
        assert_eq!(tls.max_early_data_size, 0);
        assert_eq!(tls.send_tls13_tickets.max, 0);
        assert!(tls.provider().tls12_cipher_suites.is_empty());
        assert!(!tls.provider().tls13_cipher_suites.is_empty());
    }

    #[test]
    fn only_v1_key_schedule_versions_are_accepted() {
        use quinn_proto::crypto::ServerConfig as _;
        let crypto = ServerCrypto::new(&[3; 32]).unwrap();
        let cid = ConnectionId::new(&[1, 2, 3, 4, 5, 6, 7, 8]);
        for version in SUPPORTED_VERSIONS {
            assert!(crypto.initial_keys(version, &cid).is_ok());
        }
        for version in [0xff00_001d, 0x6b33_43cf, 0] {
            assert!(crypto.initial_keys(version, &cid).is_err());
        }
    }
}
