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
