//! The state every session shares: the store, the live-session hub, the mediator's key, the
//! limits, and the budgets and rate limits that hold across sessions. The daemon builds one
//! [`Server`] at start-up and hands an `Arc` of it to every listener, session and the
//! control API; nothing in it belongs to one command.

use crate::clock::Clock;
use crate::hub::Hub;
use crate::limits::Limits;
use crate::ratelimit::RateLimiter;
use crate::shares::SharedBudget;
use crate::store::Store;
use mediator_wire::PublicKey;
use std::sync::Arc;

/// Everything the handlers share.
pub struct Server {
    pub store: Store,
    pub hub: Hub,
    /// The mediator's public key: author of system messages.
    pub key: PublicKey,
    pub limits: Limits,
    pub started: std::time::SystemTime,
    /// [`Limits::request_budget_bytes`], with a share per source.
    pub request_budget: SharedBudget,
    /// Outstanding nonces in all sessions ([`Limits::max_nonces`]).
    pub nonces: Arc<std::sync::atomic::AtomicUsize>,
    /// Rate limits per key and per source.
    pub rates: RateLimiter,
    /// The wall clock everything is stamped with.
    pub clock: Clock,
    /// The operator's server-wide blocks of keys and sources.
    pub blocks: crate::blocks::Blocklist,
    /// Counters and histograms of the session path (`crate::metrics`).
    pub metrics: crate::metrics::Instruments,
    /// The ygg_stream endpoint, once `crate::stream` serves (for the metrics).
    pub stream: std::sync::OnceLock<yggstream::Endpoint>,
    /// Every QUIC connection, plain UDP and Yggdrasil, bounded together.
    pub quic_connections: Arc<crate::connections::Connections>,
    /// Deleted chats whose messages the sweeper is to remove (`deleted_chats`).
    pub deleted_chats: Arc<crate::deleted_chats::DeletedChats>,
}

impl Server {
    /// Shared state for a daemon with these parts and limits, on the system clock.
    pub fn new(store: Store, key: PublicKey, limits: Limits) -> Server {
        Server::with_clock(store, key, limits, Clock::system())
    }

    /// [`Server::new`] on the given clock (tests set and advance a manual one).
    pub fn with_clock(store: Store, key: PublicKey, limits: Limits, clock: Clock) -> Server {
        Server {
            store,
            hub: Hub::new(&limits),
            key,
            started: std::time::SystemTime::now(),
            request_budget: SharedBudget::new(
                limits.request_budget_bytes,
                limits.max_request_bytes_per_source,
            ),
            nonces: Arc::default(),
            quic_connections: crate::connections::Connections::new(limits.max_connections),
            rates: RateLimiter::default(),
            limits,
            clock,
            blocks: Default::default(),
            metrics: Default::default(),
            stream: Default::default(),
            deleted_chats: Default::default(),
        }
    }
}
