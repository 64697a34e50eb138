//! mediatord as a library: the pieces the daemon binary wires together, public so that the
//! control API and tests can reach them.

#![forbid(unsafe_code)]

pub mod backups;
pub mod blocks;
pub mod clock;
pub mod config;
pub mod connections;
pub mod control;
pub mod datadir;
pub mod deleted_chats;
pub mod events;
pub mod handlers;
pub mod hub;
pub mod key;
pub mod limits;
pub mod logging;
pub mod manpage;
pub mod metrics;
pub mod nonces;
pub mod notify;
pub mod outbox;
pub mod peer;
pub mod quic;
pub mod ratelimit;
pub mod retention;
pub mod server;
pub mod session;
pub mod shares;
pub mod store;
pub mod stream;
