//! PostgreSQL as a second store (#18), for operators who run mediatord with a hot standby.
//!
//! So far it holds the schema ([`schema`]: the SQLite store's version 7 in PostgreSQL's
//! types, [`tables`]: how each SQLite column maps onto it), the copy of a SQLite store into
//! a PostgreSQL database ([`copy`], behind `mediatord migrate --from sqlite:PATH --to
//! postgres://…`), and the lease that decides which of a group of daemons serves
//! ([`lease`]). The daemon does not serve from PostgreSQL yet. The driver is
//! tokio-postgres: asynchronous on the runtime mediatord already runs, pipelined queries and
//! binary `COPY`, and no code generation or connection pool it does not need.

pub mod copy;
pub mod lease;
pub mod schema;
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
