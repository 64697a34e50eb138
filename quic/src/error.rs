//! Errors raised while building QUIC endpoint configuration.
//!
//! Everything in this crate is configuration: nothing here fails once a
//! `quinn` endpoint is running. The variants therefore describe a bad
//! setting, a certificate that could not be made, or a TLS library refusing
//! the assembled configuration.

use std::time::Duration;

/// Why a QUIC server, client or endpoint configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum QuicConfigError {
    /// The self-signed node certificate could not be generated.
    #[error("cannot build the node certificate: {0}")]
    Certificate(#[from] rcgen::Error),

    /// rustls 0.24 rejected the server configuration (key, certificate or
    /// cipher suites).
    #[error("rustls 0.24 rejected the server TLS configuration: {0}")]
    ServerTls(#[from] rustls_v024::Error),

    /// The idle timeout does not fit QUIC's `max_idle_timeout` transport
    /// parameter (a variable-length integer of milliseconds).
    #[error("idle timeout {0:?} is too large for QUIC")]
    IdleTimeout(Duration),

    /// A numeric setting is outside the range this crate accepts.
    #[error("setting `{name}` = {value} is outside {min}..={max}")]
    OutOfRange {
        /// The `QuicSettings` field.
        name: &'static str,
        /// The rejected value.
        value: u64,
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
    },

    /// A duration setting is zero where a positive value is needed, or the
    /// keep-alive is not shorter than the idle timeout.
    #[error("setting `{name}` = {value:?} is invalid: {reason}")]
    BadDuration {
        /// The `QuicSettings` field.
        name: &'static str,
        /// The rejected value.
        value: Duration,
        /// Why it is rejected.
        reason: &'static str,
    },

    /// rustls 0.23 rejected the test client's TLS configuration.
    #[error("rustls 0.23 rejected the client TLS configuration: {0}")]
    ClientTls(quinn::rustls::Error),

    /// quinn could not wrap the client TLS configuration for QUIC.
    #[error("client TLS configuration unusable for QUIC: {0}")]
    ClientCrypto(quinn::crypto::rustls::NoInitialCipherSuite),

    /// quinn refused an endpoint setting.
    #[error("quinn rejected the endpoint configuration: {0}")]
    Endpoint(#[from] quinn::ConfigError),
}
