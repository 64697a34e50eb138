//! mediatord as a library: the pieces the daemon binary wires together, public so that the
//! control API and tests can reach them.

pub mod config;
pub mod control;
pub mod datadir;
pub mod handlers;
pub mod hub;
pub mod key;
pub mod limits;
pub mod notify;
pub mod quic;
pub mod session;
pub mod store;
