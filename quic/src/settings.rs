//! QUIC transport parameters matching yggquic's (`mediator-protocol.md` §1.2).
//!
//! The Go mediator configures quic-go through yggquic with an 8 s handshake
//! idle timeout, a 120 s idle timeout, 60 s keep-alives, 1 MiB per-stream and
//! 2 MiB per-connection receive windows, path MTU discovery off and 0-RTT
//! off. [`QuicSettings::default`] mirrors those values for quinn; each one is
//! a named constant below.
//!
//! quinn differs from quic-go in a few places:
//!
//! * quinn has **no separate handshake idle timeout**. The connection's
//!   `max_idle_timeout` also bounds the handshake, so a stalled handshake is
//!   abandoned after [`MAX_IDLE_TIMEOUT`] rather than after
//!   [`YGGQUIC_HANDSHAKE_IDLE_TIMEOUT`]. Callers that want the shorter bound
//!   must wrap the `Connecting` future in their own timeout.
//! * quic-go's `InitialPacketSize` (65535 requested, clamped to 1452) is the
//!   size of the client's *own* packets. On our side the matching knobs are
//!   the endpoint's accepted UDP payload size
//!   ([`QuicSettings::max_udp_payload_size`], at least
//!   [`YGGQUIC_MAX_PACKET_SIZE`]) and the size of the packets we send
//!   ([`QuicSettings::initial_mtu`], [`INITIAL_MTU`]), which stays fixed
//!   because path MTU discovery is disabled.
//! * 0-RTT is off because the TLS layer never accepts early data (see
//!   [`crate::server_crypto`]); there is no transport knob for it.
//! * QUIC DATAGRAM frames (RFC 9221) are not used by yggquic and are not
//!   advertised.

use std::time::Duration;

use quinn::{IdleTimeout, TransportConfig, VarInt};

use crate::error::QuicConfigError;

/// Idle timeout: the Go mediator passes 120 s to yggquic. Clients ask for
/// 300 s; QUIC uses the smaller of the two.
pub const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Interval between keep-alive (PING) packets on an otherwise idle
/// connection, as in yggquic.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(60);

/// yggquic's handshake idle timeout. quinn has no such knob (see the module
/// documentation); the value is kept here for reference and for callers
/// that enforce it themselves.
pub const YGGQUIC_HANDSHAKE_IDLE_TIMEOUT: Duration = Duration::from_secs(8);

/// Flow-control window of one stream: 1 MiB, as yggquic's
/// `MaxStreamReceiveWindow`.
pub const STREAM_RECEIVE_WINDOW: u32 = 1 << 20;

/// Flow-control window of a whole connection: 2 MiB, as yggquic's
/// `MaxConnectionReceiveWindow`.
pub const CONNECTION_RECEIVE_WINDOW: u32 = 2 << 20;

/// Bytes one connection may hold in its send buffer, unacknowledged or not yet sent: as
/// much as a peer with our receive window (yggquic's) ever accepts in flight. quinn's
/// default (10 MB) would let each connection of a client that stops reading pin 10 MB of
/// the daemon's memory outside its own byte budgets; at this size 64 connections of one
/// source hold at most 128 MiB.
pub const SEND_WINDOW: u32 = CONNECTION_RECEIVE_WINDOW;

/// Smallest receive window (stream or connection) accepted in
/// [`QuicSettings`]; anything smaller would stall ordinary mediator frames.
pub const MIN_RECEIVE_WINDOW: u32 = 16 << 10;

/// Largest receive window (stream or connection) accepted in
/// [`QuicSettings`], to bound the memory one peer can make us buffer.
pub const MAX_RECEIVE_WINDOW: u32 = 64 << 20;

/// Default number of bidirectional streams a client may have open on one
/// connection at a time. Each mediator session is one stream, and a client
/// normally holds one or a few.
pub const DEFAULT_MAX_BIDI_STREAMS: u32 = 100;

/// Upper bound for [`QuicSettings::max_bidi_streams`].
pub const MAX_BIDI_STREAMS_LIMIT: u32 = 10_000;

/// Unidirectional streams a peer may open: none, yggquic only uses
/// bidirectional streams.
pub const MAX_UNI_STREAMS: u32 = 0;

/// Size of the packets we send. 1200 bytes is the QUIC minimum (RFC 9000
/// §14) and quinn's default; with path MTU discovery off it never grows.
pub const INITIAL_MTU: u16 = 1200;

/// Largest QUIC packet a yggquic client sends: quic-go clamps its
/// `InitialPacketSize` to its packet buffer size, 1452 bytes. The endpoint
/// must accept datagrams at least this large.
pub const YGGQUIC_MAX_PACKET_SIZE: u16 = 1452;

/// Largest UDP payload the endpoint accepts by default: 1472 bytes (a
/// 1500-byte Ethernet MTU minus IPv4 and UDP headers), quinn's default and
/// comfortably above [`YGGQUIC_MAX_PACKET_SIZE`].
pub const MAX_UDP_PAYLOAD_SIZE: u16 = 1472;

/// Largest UDP payload quinn can be told to accept (65535 minus the 8-byte
/// UDP header).
pub const MAX_UDP_PAYLOAD_SIZE_LIMIT: u16 = 65_527;

/// Tunable QUIC parameters. [`Default`] gives the spec values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuicSettings {
    /// Bidirectional streams a peer may have open at once on one connection
    /// (1..=[`MAX_BIDI_STREAMS_LIMIT`]).
    pub max_bidi_streams: u32,
    /// Connection idle timeout ([`MAX_IDLE_TIMEOUT`]). Also bounds the
    /// handshake.
    pub idle_timeout: Duration,
    /// Keep-alive interval ([`KEEP_ALIVE_INTERVAL`]); must be shorter than
    /// `idle_timeout`.
    pub keep_alive: Duration,
    /// Per-stream receive window in bytes ([`STREAM_RECEIVE_WINDOW`]).
    pub stream_receive_window: u32,
    /// Per-connection receive window in bytes
    /// ([`CONNECTION_RECEIVE_WINDOW`]); at least `stream_receive_window`.
    pub connection_receive_window: u32,
    /// Size of the packets we send ([`INITIAL_MTU`]).
    pub initial_mtu: u16,
    /// Largest UDP payload the endpoint accepts ([`MAX_UDP_PAYLOAD_SIZE`];
    /// [`YGGQUIC_MAX_PACKET_SIZE`]..=[`MAX_UDP_PAYLOAD_SIZE_LIMIT`]).
    pub max_udp_payload_size: u16,
}

impl Default for QuicSettings {
    fn default() -> Self {
        Self {
            max_bidi_streams: DEFAULT_MAX_BIDI_STREAMS,
            idle_timeout: MAX_IDLE_TIMEOUT,
            keep_alive: KEEP_ALIVE_INTERVAL,
            stream_receive_window: STREAM_RECEIVE_WINDOW,
            connection_receive_window: CONNECTION_RECEIVE_WINDOW,
            initial_mtu: INITIAL_MTU,
            max_udp_payload_size: MAX_UDP_PAYLOAD_SIZE,
        }
    }
}

fn check_range(name: &'static str, value: u64, min: u64, max: u64) -> Result<(), QuicConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(QuicConfigError::OutOfRange {
            name,
            value,
            min,
            max,
        })
    }
}

impl QuicSettings {
    /// Checks every field against its documented bounds.
    pub fn validate(&self) -> Result<(), QuicConfigError> {
        check_range(
            "max_bidi_streams",
            self.max_bidi_streams.into(),
            1,
            MAX_BIDI_STREAMS_LIMIT.into(),
        )?;
        check_range(
            "stream_receive_window",
            self.stream_receive_window.into(),
            MIN_RECEIVE_WINDOW.into(),
            MAX_RECEIVE_WINDOW.into(),
        )?;
        check_range(
            "connection_receive_window",
            self.connection_receive_window.into(),
            self.stream_receive_window.into(),
            MAX_RECEIVE_WINDOW.into(),
        )?;
        check_range(
            "max_udp_payload_size",
            self.max_udp_payload_size.into(),
            YGGQUIC_MAX_PACKET_SIZE.into(),
            MAX_UDP_PAYLOAD_SIZE_LIMIT.into(),
        )?;
        check_range(
            "initial_mtu",
            self.initial_mtu.into(),
            INITIAL_MTU.into(),
            self.max_udp_payload_size.into(),
        )?;
        if self.idle_timeout.is_zero() {
            return Err(QuicConfigError::BadDuration {
                name: "idle_timeout",
                value: self.idle_timeout,
                reason: "must be positive",
            });
        }
        if self.keep_alive.is_zero() || self.keep_alive >= self.idle_timeout {
            return Err(QuicConfigError::BadDuration {
                name: "keep_alive",
                value: self.keep_alive,
                reason: "must be positive and shorter than idle_timeout",
            });
        }
        Ok(())
    }

    /// quinn transport configuration for these settings, shared by the
    /// server and the client side.
    pub fn transport_config(&self) -> Result<TransportConfig, QuicConfigError> {
        self.validate()?;
        let idle = IdleTimeout::try_from(self.idle_timeout)
            .map_err(|_| QuicConfigError::IdleTimeout(self.idle_timeout))?;
        let mut transport = TransportConfig::default();
        transport
            .max_concurrent_bidi_streams(VarInt::from_u32(self.max_bidi_streams))
            .max_concurrent_uni_streams(VarInt::from_u32(MAX_UNI_STREAMS))
            .max_idle_timeout(Some(idle))
            .keep_alive_interval(Some(self.keep_alive))
            .stream_receive_window(VarInt::from_u32(self.stream_receive_window))
            .receive_window(VarInt::from_u32(self.connection_receive_window))
            .send_window(SEND_WINDOW.into())
            .initial_mtu(self.initial_mtu)
            .mtu_discovery_config(None)
            .datagram_receive_buffer_size(None);
        Ok(transport)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_spec_values_and_valid() {
        let s = QuicSettings::default();
        assert_eq!(s.idle_timeout, Duration::from_secs(120));
        assert_eq!(s.keep_alive, Duration::from_secs(60));
        assert_eq!(s.stream_receive_window, 1024 * 1024);
        assert_eq!(s.connection_receive_window, 2 * 1024 * 1024);
        assert_eq!(s.initial_mtu, 1200);
        assert!(s.max_udp_payload_size >= 1452);
        assert_eq!(s.max_bidi_streams, 100);
        s.validate().unwrap();
        s.transport_config().unwrap();
    }

    #[test]
    fn out_of_range_settings_are_rejected() {
        let bad = [
            QuicSettings {
                max_bidi_streams: 0,
                ..Default::default()
            },
            QuicSettings {
                max_bidi_streams: MAX_BIDI_STREAMS_LIMIT + 1,
                ..Default::default()
            },
            QuicSettings {
                keep_alive: MAX_IDLE_TIMEOUT,
                ..Default::default()
            },
            QuicSettings {
                idle_timeout: Duration::ZERO,
                ..Default::default()
            },
            QuicSettings {
                max_udp_payload_size: 1400,
                ..Default::default()
            },
            QuicSettings {
                initial_mtu: 1000,
                ..Default::default()
            },
            QuicSettings {
                connection_receive_window: STREAM_RECEIVE_WINDOW - 1,
                ..Default::default()
            },
        ];
        for settings in bad {
            assert!(settings.validate().is_err(), "{settings:?} accepted");
            assert!(settings.transport_config().is_err());
        }
    }
}
