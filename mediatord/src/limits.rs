//! Operating limits of the daemon, each with its unit, default and reason.

use std::time::Duration;

/// Limits and timers that bound what one client can cost the server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// How long a nonce from GET_NONCE stays usable. It must cover CREATE_CHAT's proof of work
    /// on a slow phone (about 65,536 signatures, §8). Default 10 minutes.
    pub nonce_ttl: Duration,
    /// Outstanding nonces kept per key (several devices may log in at once, §11 S4). Default 8.
    pub nonces_per_key: u32,
    /// Nonces kept in total; the oldest are purged beyond this (§11 S5). Default 100,000.
    pub max_nonces: u32,
    /// Unanswered invites expire after this long (the Go server's 3 days). Default 3 days.
    pub invite_ttl: Duration,
    /// Largest MESSAGE_BLOB and MEMBER_INFO accepted, in bytes. Default 16 MiB.
    pub max_blob_bytes: usize,
    /// Chats one key may own. Default 1,000.
    pub max_chats_per_user: u32,
    /// Unanswered invites addressed to one key. Default 1,000.
    pub max_invites_per_user: u32,
    /// Chats one session may subscribe to. Default 10,000.
    pub max_subscriptions_per_session: usize,
    /// Live sessions in total. Default 100,000.
    pub max_sessions: usize,
    /// Live sessions from one remote node. Default 1,000.
    pub max_sessions_per_remote: usize,
    /// Frames queued for one session before it counts as too slow and is disconnected.
    /// Default 1,024.
    pub session_queue: usize,
    /// A session that sends no complete request for this long is closed (§1.5). Default 5 min.
    pub idle_timeout: Duration,
    /// Bytes of message bodies in one GET_MESSAGES_SINCE answer (at least one message is
    /// always sent); keeps answers well under the client's 50 MiB frame limit. Default 8 MiB.
    pub max_sync_bytes: usize,
    /// How often expired nonces and invites are purged. Default 1 minute.
    pub janitor_period: Duration,
    /// Bytes of request payload buffers held at once across all sessions beyond each
    /// session's first [`PAYLOAD_FREE_BYTES`]. A request is read into a buffer that grows
    /// only as its bytes arrive and takes its growth from this budget, waiting while it is
    /// spent; so a header claiming 32 MiB costs nothing until 32 MiB arrive, and many large
    /// uploads at once cannot exhaust memory. At least the largest request (32 MiB).
    /// Default 256 MiB.
    pub request_budget_bytes: usize,
}

/// Bytes of request payload every session may buffer without drawing on
/// [`Limits::request_budget_bytes`]: enough for every ordinary request (a 1 KiB message with
/// its fields), so the common path never touches the shared budget. Buffers larger than this
/// are released after their request.
pub const PAYLOAD_FREE_BYTES: usize = 16 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            nonce_ttl: Duration::from_secs(600),
            nonces_per_key: 8,
            max_nonces: 100_000,
            invite_ttl: Duration::from_secs(3 * 24 * 3600),
            max_blob_bytes: 16 * 1024 * 1024,
            max_chats_per_user: 1_000,
            max_invites_per_user: 1_000,
            max_subscriptions_per_session: 10_000,
            max_sessions: 100_000,
            max_sessions_per_remote: 1_000,
            session_queue: 1_024,
            idle_timeout: Duration::from_secs(300),
            max_sync_bytes: 8 * 1024 * 1024,
            janitor_period: Duration::from_secs(60),
            request_budget_bytes: 256 * 1024 * 1024,
        }
    }
}
