//! The embedded SQLite backend's statements: the protocol's ([`queries`]) and the
//! operator's ([`control`]), each an implementation of the store's traits for a
//! `rusqlite::Connection`.

pub mod control;
pub mod queries;
pub mod writer;

pub use control::backup_to;
