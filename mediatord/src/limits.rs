//! Operating limits of the daemon, each with its unit, default and reason: the one source of
//! every limit. The struct is the `[limits]` section of the configuration file as it is
//! (durations are whole seconds there, under names ending in `_secs`), so a limit is
//! declared, defaulted and documented once.
//!
//! How the limits fit together against a hostile network is described in the README's
//! design section ("Bounded by design").

pub use crate::ratelimit::Rate;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Limits and timers that bound what one client, one source and everyone together can cost
/// the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// How long a nonce from GET_NONCE stays usable. It must cover CREATE_CHAT's proof of work
    /// on a slow phone (about 65,536 signatures, §8). Default 10 minutes.
    #[serde(rename = "nonce_ttl_secs", with = "secs")]
    pub nonce_ttl: Duration,
    /// Outstanding nonces one session holds (a client may ask again before answering). A
    /// nonce belongs to the session that asked for it: only that session can use it, and
    /// only its own newer nonces can replace it, so no flood from elsewhere invalidates it
    /// within its TTL. Default 8.
    #[serde(alias = "nonces_per_key")]
    pub nonces_per_session: u32,
    /// Outstanding nonces across all sessions. Past it GET_NONCE is refused ("too many
    /// nonces") until some are used or expire; nobody's nonce is evicted. Default 100,000.
    pub max_nonces: u32,
    /// Unanswered invites expire after this long (the Go server's 3 days). Default 3 days.
    #[serde(rename = "invite_ttl_secs", with = "secs")]
    pub invite_ttl: Duration,
    /// Largest MESSAGE_BLOB and MEMBER_INFO accepted, in bytes. Default 16 MiB.
    pub max_blob_bytes: usize,
    /// Chats one key may own. Default 1,000.
    pub max_chats_per_user: u32,
    /// Unanswered invites addressed to one key. Default 1,000.
    pub max_invites_per_user: u32,
    /// Chats one session may subscribe to. Default 10,000.
    pub max_subscriptions_per_session: usize,
    /// Live sessions in total. When it is reached, a new session takes the place of the
    /// oldest session that has not authenticated, or else of the oldest one authenticated as
    /// a key that belongs to no chat; established members are never pushed out. Default
    /// 100,000.
    pub max_sessions: usize,
    /// Live sessions from one source: an IP address on plain UDP (an IPv6 /64), a node key
    /// over Yggdrasil. Default 1,000.
    #[serde(alias = "max_sessions_per_remote")]
    pub max_sessions_per_source: usize,
    /// Sessions that have not authenticated yet, in total. Default 10,000.
    pub max_guest_sessions: usize,
    /// Sessions that have not authenticated yet, from one source. Default 64.
    pub max_guest_sessions_per_source: usize,
    /// A session must authenticate within this long of opening, or it is closed. Before
    /// AUTH a session may only send GET_NONCE, AUTH and PING, with payloads of at most
    /// [`GUEST_PAYLOAD_MAX`] bytes. Default 10 seconds.
    #[serde(rename = "auth_timeout_secs", with = "secs")]
    pub auth_timeout: Duration,
    /// QUIC connections from one source on plain UDP (Yggdrasil already keeps one per node
    /// key). Default 64.
    pub max_connections_per_source: usize,
    /// QUIC connections in total, plain UDP and Yggdrasil together, counted from the first
    /// packet. When it is reached, a new connection takes the place of the oldest one that
    /// carries no member's session ([`crate::connections`]); members' connections are never
    /// pushed out. Default 100,000 (as many as sessions).
    pub max_connections: usize,
    /// Frames queued for one session before it counts as too slow and is disconnected.
    /// Default 1,024.
    pub session_queue: usize,
    /// Bytes of pushes queued for one session (not yet written to its stream) before it
    /// counts as too slow and is disconnected; the session's own answer, one at a time,
    /// comes on top. At least two of the largest messages. Default 34 MiB.
    pub max_session_queue_bytes: usize,
    /// Bytes queued for all sessions together. Past it, a push to a session that already
    /// holds more than [`QUEUE_FAIR_SHARE`] disconnects that session (the largest backlogs
    /// go first), and large answers wait for room. Default 256 MiB.
    pub max_queued_bytes: usize,
    /// The part of `max_queued_bytes` the sessions of one source may hold together: large
    /// answers asked from one source and not read wait for that source's own backlog, never
    /// for everyone's. At least two of the largest answers. Default 64 MiB.
    pub max_queued_bytes_per_source: usize,
    /// A session that sends no complete request for this long is closed (§1.5). Default 5 min.
    #[serde(rename = "idle_timeout_secs", with = "secs")]
    pub idle_timeout: Duration,
    /// A request payload that receives no byte for this long ends its session, giving its
    /// share of the request budget back. Default 10 seconds.
    #[serde(rename = "upload_stall_secs", with = "secs")]
    pub upload_stall: Duration,
    /// A session whose stream accepts no byte for this long (its client stopped reading,
    /// with the QUIC flow-control window full) is closed and its queue freed. Default 60
    /// seconds.
    #[serde(rename = "write_stall_secs", with = "secs")]
    pub write_stall: Duration,
    /// Bytes of message bodies in one GET_MESSAGES_SINCE answer (at least one message is
    /// always sent), and of member info in one GET_MEMBERS_INFO answer; keeps answers well
    /// under the client's 50 MiB frame limit. Default 8 MiB.
    pub max_sync_bytes: usize,
    /// Bytes of GOT_INVITE pushes sent at one AUTH (at least one invite is always sent);
    /// the rest follow at later logins, newest first. Default 1 MiB.
    pub max_invite_push_bytes: usize,
    /// How often expired invites are purged. Default 1 minute.
    #[serde(rename = "janitor_period_secs", with = "secs")]
    pub janitor_period: Duration,
    /// GET_NONCE per source (`crate::ratelimit`). Default 50/s, bursts of 200.
    pub rate_nonce_per_source: Rate,
    /// Failed AUTH per source; once spent, AUTH from the source is refused before any
    /// signature is checked. Default 5/s, bursts of 50.
    pub rate_failed_auth_per_source: Rate,
    /// CREATE_CHAT per key (besides its proof of work). Default 0.5/s, bursts of 30.
    pub rate_create_chat_per_key: Rate,
    /// CREATE_CHAT per source. Default 2/s, bursts of 100.
    pub rate_create_chat_per_source: Rate,
    /// SEND_MESSAGE per key (a reconnecting phone resends what was not delivered at once).
    /// Default 50/s, bursts of 500.
    pub rate_send_message_per_key: Rate,
    /// SUBSCRIBE per key (a phone subscribes to each of its chats twice at every connect).
    /// Default 100/s, bursts of 2,000.
    pub rate_subscribe_per_key: Rate,
    /// SEND_INVITE per key. Default 2/s, bursts of 100.
    pub rate_send_invite_per_key: Rate,
    /// UPDATE_MEMBER_INFO per key (a phone answers one REQUEST_MEMBER_INFO per chat at
    /// connect). Default 20/s, bursts of 1,000.
    pub rate_member_info_per_key: Rate,
    /// Bytes of request payload buffers held at once across all sessions beyond each
    /// session's first [`PAYLOAD_FREE_BYTES`]. A request is read into a buffer that grows
    /// only as its bytes arrive and takes its growth from this budget, waiting while it is
    /// spent; so a header claiming 32 MiB costs nothing until 32 MiB arrive, and many large
    /// uploads at once cannot exhaust memory. At least the largest request (32 MiB).
    /// Default 256 MiB.
    pub request_budget_bytes: usize,
    /// The part of `request_budget_bytes` the uploads of one source may hold together, so
    /// stalled or slow uploads from one place never make others wait. At least the largest
    /// request (32 MiB). Default 64 MiB.
    pub max_request_bytes_per_source: usize,
    /// Request payload bytes past each request's first [`PAYLOAD_FREE_BYTES`] per source
    /// (large messages, chat avatars, member info: what is fanned out to a chat's
    /// subscribers and kept on disk). A request over the rate waits for it while its source
    /// is at most one burst behind, and beyond that gets "rate limited, slow down" (its bytes
    /// are read at the rate and dropped, so they slow the source as if kept; the session
    /// stays). Ordinary requests never count. The burst is
    /// at least the largest request. Default 4 MiB/s, bursts of 32 MiB: two full-size pushes
    /// at once, which every subscriber's queue holds.
    pub rate_upload_bytes_per_source: Rate,
    /// Bytes all ygg_stream (Mimir 3.x) connections may hold together in their buffers:
    /// received and not yet read by their session, written and not yet acknowledged by the
    /// client. Past it, a connection that is not a chat member's waits: its data segments
    /// are dropped (the client resends them) and its writes wait. At least 1 MiB (one
    /// connection's two buffers). Default 64 MiB.
    pub stream_buffer_bytes: usize,
    /// Bytes of ygg_stream buffers beyond `stream_buffer_bytes` that only chat members'
    /// connections may use, so strangers filling the shared part never stop a member. At
    /// least 1 MiB. Default 64 MiB.
    pub stream_member_reserve_bytes: usize,
}

/// The least of [`Limits::stream_buffer_bytes`] and [`Limits::stream_member_reserve_bytes`]:
/// one ygg_stream connection's receive and send buffers.
pub const STREAM_BUFFERS_MIN: usize = yggstream::conn::RECV_BUFFER + yggstream::conn::SEND_BUFFER;

/// Bytes of request payload every session may buffer without drawing on
/// [`Limits::request_budget_bytes`]: enough for every ordinary request (a 1 KiB message with
/// its fields), so the common path never touches the shared budget. Buffers larger than this
/// are released after their request.
pub const PAYLOAD_FREE_BYTES: usize = 16 * 1024;

/// Largest request payload of a session that has not authenticated (GET_NONCE, AUTH and
/// PING need under 200 bytes). A larger header ends the session with "payload too large".
pub const GUEST_PAYLOAD_MAX: usize = 1024;

/// Largest payload of a command that carries no blob (everything but SEND_MESSAGE,
/// CREATE_CHAT, UPDATE_CHAT_INFO, SEND_INVITE and UPDATE_MEMBER_INFO): their fields take
/// under 200 bytes. A larger header ends the session with "payload too large".
pub const SMALL_COMMAND_PAYLOAD_MAX: usize = 4 * 1024;

/// A mebibyte, for rates in bytes.
const MIB: f64 = 1024.0 * 1024.0;

/// Bytes a session may have queued and still receive pushes when [`Limits::max_queued_bytes`]
/// is exceeded: a session reading normally holds far less.
pub const QUEUE_FAIR_SHARE: usize = 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            nonce_ttl: Duration::from_secs(600),
            nonces_per_session: 8,
            max_nonces: 100_000,
            invite_ttl: Duration::from_secs(3 * 24 * 3600),
            max_blob_bytes: 16 * 1024 * 1024,
            max_chats_per_user: 1_000,
            max_invites_per_user: 1_000,
            max_subscriptions_per_session: 10_000,
            max_sessions: 100_000,
            max_sessions_per_source: 1_000,
            max_guest_sessions: 10_000,
            max_guest_sessions_per_source: 64,
            auth_timeout: Duration::from_secs(10),
            max_connections_per_source: 64,
            max_connections: 100_000,
            session_queue: 1_024,
            max_session_queue_bytes: 34 * 1024 * 1024,
            max_queued_bytes: 256 * 1024 * 1024,
            max_queued_bytes_per_source: 64 * 1024 * 1024,
            idle_timeout: Duration::from_secs(300),
            upload_stall: Duration::from_secs(10),
            write_stall: Duration::from_secs(60),
            max_sync_bytes: 8 * 1024 * 1024,
            max_invite_push_bytes: 1024 * 1024,
            janitor_period: Duration::from_secs(60),
            request_budget_bytes: 256 * 1024 * 1024,
            max_request_bytes_per_source: 64 * 1024 * 1024,
            rate_upload_bytes_per_source: Rate::new(4.0 * MIB, 32.0 * MIB),
            stream_buffer_bytes: yggstream::stack::BUFFER_BUDGET,
            stream_member_reserve_bytes: yggstream::stack::PROTECTED_RESERVE,
            rate_nonce_per_source: Rate::new(50.0, 200.0),
            rate_failed_auth_per_source: Rate::new(5.0, 50.0),
            rate_create_chat_per_key: Rate::new(0.5, 30.0),
            rate_create_chat_per_source: Rate::new(2.0, 100.0),
            rate_send_message_per_key: Rate::new(50.0, 500.0),
            rate_subscribe_per_key: Rate::new(100.0, 2000.0),
            rate_send_invite_per_key: Rate::new(2.0, 100.0),
            rate_member_info_per_key: Rate::new(20.0, 1000.0),
        }
    }
}

impl Limits {
    /// Why these limits cannot work, naming the setting; `None` when they can.
    pub fn problem(&self) -> Option<&'static str> {
        let l = self;
        let zero_secs = [
            l.nonce_ttl,
            l.idle_timeout,
            l.janitor_period,
            l.auth_timeout,
            l.upload_stall,
            l.write_stall,
        ]
        .iter()
        .any(|d| d.is_zero());
        if zero_secs {
            return Some("limits: every *_secs setting must be at least 1");
        }
        if l.nonces_per_session == 0 || l.max_nonces == 0 {
            return Some("limits.nonces_per_session and limits.max_nonces must be at least 1");
        }
        if l.request_budget_bytes < mediator_wire::frame::MAX_REQUEST_PAYLOAD as usize {
            return Some(
                "limits.request_budget_bytes must be at least 33554432 (the largest request)",
            );
        }
        if l.stream_buffer_bytes < STREAM_BUFFERS_MIN
            || l.stream_member_reserve_bytes < STREAM_BUFFERS_MIN
        {
            return Some(
                "limits.stream_buffer_bytes and limits.stream_member_reserve_bytes must be at \
                 least 1048576 (one connection's buffers)",
            );
        }
        if l.max_connections == 0 {
            return Some("limits.max_connections must be at least 1");
        }
        if l.session_queue < 4 {
            return Some("limits.session_queue must be at least 4");
        }
        if l.max_session_queue_bytes < 2 * l.max_blob_bytes {
            return Some("limits.max_session_queue_bytes must be at least twice max_blob_bytes");
        }
        if l.max_queued_bytes < l.max_session_queue_bytes {
            return Some("limits.max_queued_bytes must be at least max_session_queue_bytes");
        }
        if l.max_queued_bytes_per_source < 2 * l.max_blob_bytes
            || l.max_queued_bytes_per_source > l.max_queued_bytes
        {
            return Some(
                "limits.max_queued_bytes_per_source must be at least twice max_blob_bytes \
                 and at most max_queued_bytes",
            );
        }
        let largest = mediator_wire::frame::MAX_REQUEST_PAYLOAD as usize;
        if l.max_request_bytes_per_source < largest
            || l.max_request_bytes_per_source > l.request_budget_bytes
        {
            return Some(
                "limits.max_request_bytes_per_source must be at least 33554432 (the largest \
                 request) and at most request_budget_bytes",
            );
        }
        if l.rate_upload_bytes_per_source.burst < largest as f64 {
            return Some(
                "limits.rate_upload_bytes_per_source.burst must be at least 33554432 (the \
                 largest request)",
            );
        }
        let rates = [
            l.rate_nonce_per_source,
            l.rate_failed_auth_per_source,
            l.rate_create_chat_per_key,
            l.rate_create_chat_per_source,
            l.rate_send_message_per_key,
            l.rate_subscribe_per_key,
            l.rate_send_invite_per_key,
            l.rate_member_info_per_key,
            l.rate_upload_bytes_per_source,
        ];
        if rates
            .iter()
            .any(|r| !(r.per_sec > 0.0 && r.burst >= 1.0 && r.per_sec.is_finite()))
        {
            return Some("limits: every rate_* needs per_sec > 0 and burst >= 1");
        }
        let counts = [
            l.max_sessions,
            l.max_sessions_per_source,
            l.max_guest_sessions,
            l.max_guest_sessions_per_source,
            l.max_connections_per_source,
        ];
        if counts.contains(&0) {
            return Some(
                "limits.max_sessions, max_sessions_per_source, max_guest_sessions, \
                 max_guest_sessions_per_source and max_connections_per_source must be at least 1",
            );
        }
        None
    }
}

/// A `Duration` as whole seconds in the configuration file.
mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    /// Seconds, or a duration such as "10m" or "3d" (`mediator_control::units`).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Secs {
            Number(u64),
            Text(String),
        }
        match Secs::deserialize(d)? {
            Secs::Number(n) => Ok(Duration::from_secs(n)),
            Secs::Text(t) => mediator_control::units::parse_duration(&t)
                .map(Duration::from_secs)
                .map_err(serde::de::Error::custom),
        }
    }
}
