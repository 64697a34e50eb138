//! PostgreSQL as a second store (#18), for operators who run mediatord with a hot standby.
//!
//! It holds the schema ([`schema`]: the SQLite store's version 7 in PostgreSQL's types,
//! [`tables`]: how each SQLite column maps onto it), the store's operations in PostgreSQL's
//! dialect ([`queries`], [`control`], over one blocking connection: [`conn`]), the store
//! itself ([`store`]: a writer thread with group commit and a pool of readers behind the
//! same [`crate::store::Store`] handle as SQLite), the copy of a SQLite store into a
//! PostgreSQL database ([`copy`], behind `mediatord migrate --from sqlite:PATH --to
//! postgres://…`), the lease that decides which of a group of daemons serves ([`lease`]),
//! and the connection itself, in clear or over TLS ([`connect`]).
//!
//! Drivers: tokio-postgres for the copy (asynchronous on the daemon's runtime, binary
//! `COPY`), and its blocking wrapper `postgres` for the store, whose jobs
//! are synchronous closures run on the writer thread exactly as on SQLite: each command
//! composes several dependent statements, and the blocking client lets one closure serve
//! both backends. Neither brings code generation or a connection pool we do not need.

pub mod conn;
pub mod connect;
pub mod control;
pub mod copy;
pub mod lease;
pub mod queries;
pub mod schema;
pub mod store;
pub mod tables;

/// A driver error as an operator should read it: the server's own message for an error the
/// server reported, else the error with its cause (a refused connection, a closed socket).
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{}: {} ({d})", db.severity(), db.message()),
            None => format!("{}: {}", db.severity(), db.message()),
        },
        None => match std::error::Error::source(e) {
            Some(s) => format!("{e}: {s}"),
            None => e.to_string(),
        },
    }
}
