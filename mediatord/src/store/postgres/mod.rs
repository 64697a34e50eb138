//! PostgreSQL as a second store (#18), for operators who run mediatord with a hot standby.
//!
//! This first step holds the schema ([`schema`]: the SQLite store's version 7 in
//! PostgreSQL's types) and the copy of a SQLite store into a PostgreSQL database
//! ([`copy`], behind `mediatord migrate --from sqlite:PATH --to postgres://…`). The driver is
//! tokio-postgres: asynchronous on the runtime mediatord already runs, pipelined queries and
//! binary `COPY`, and no code generation or connection pool it does not need.

pub mod copy;
pub mod schema;
pub mod tables;
