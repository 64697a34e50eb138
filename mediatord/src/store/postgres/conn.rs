//! One PostgreSQL connection as the store uses it: blocking (the `postgres` crate, on the
//! store's own writer thread or a blocking-pool thread, like a SQLite connection), with its
//! prepared statements cached by their text, so each statement is parsed and planned once
//! per connection.
//!
//! The store's traits take `&self` (a SQLite connection needs no more), while the driver's
//! client needs `&mut` to send; the client sits in a `RefCell`, borrowed for one statement at
//! a time. A `Pg` is used by one thread at a time and never shared.
//!
//! The driver blocks on a runtime of its own, which tokio forbids on a thread that drives
//! async tasks: a `Pg` is connected, used and dropped only on the store's threads (the
//! writer, the blocking pool's readers), and dropping one hands its client to a thread of
//! its own to close, wherever the last store handle went.

use crate::store::queries::DbResult;
use crate::store::StoreError;
use postgres::types::ToSql;
use postgres::{Client, Row, Statement};
use std::cell::RefCell;
use std::collections::HashMap;

/// Prepared statements kept per connection; the store has fewer, so none is ever dropped
/// (a `chats list` page's text varies with its order: 12 forms).
pub const STATEMENT_CACHE: usize = 128;

/// Arguments of one statement.
pub type Args<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A PostgreSQL connection for the store.
pub struct Pg {
    client: RefCell<Option<Client>>,
    statements: RefCell<HashMap<String, Statement>>,
}

impl Pg {
    pub fn new(client: Client) -> Pg {
        Pg {
            client: RefCell::new(Some(client)),
            statements: RefCell::new(HashMap::new()),
        }
    }

    /// The statement for `sql`, prepared on first use.
    fn statement(&self, sql: &str) -> DbResult<Statement> {
        if let Some(st) = self.statements.borrow().get(sql) {
            return Ok(st.clone());
        }
        let st = self.client().prepare(sql)?;
        let mut cache = self.statements.borrow_mut();
        if cache.len() < STATEMENT_CACHE {
            cache.insert(sql.to_owned(), st.clone());
        }
        Ok(st)
    }

    /// Every row of `sql`.
    pub fn rows(&self, sql: &str, args: Args<'_>) -> DbResult<Vec<Row>> {
        let st = self.statement(sql)?;
        Ok(self.client().query(&st, args)?)
    }

    /// The row of `sql`, if it returns one.
    pub fn opt(&self, sql: &str, args: Args<'_>) -> DbResult<Option<Row>> {
        let st = self.statement(sql)?;
        Ok(self.client().query_opt(&st, args)?)
    }

    /// The one row of `sql` (an error if none).
    pub fn one(&self, sql: &str, args: Args<'_>) -> DbResult<Row> {
        let st = self.statement(sql)?;
        Ok(self.client().query_one(&st, args)?)
    }

    /// Runs `sql`; returns the rows it changed.
    pub fn exec(&self, sql: &str, args: Args<'_>) -> DbResult<usize> {
        let st = self.statement(sql)?;
        let n = self.client().execute(&st, args)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Runs statements without arguments or results (transaction control), in one round
    /// trip.
    pub fn batch(&self, sql: &str) -> DbResult<()> {
        Ok(self.client().batch_execute(sql)?)
    }

    /// Whether the connection is gone (its session ended, the server went away).
    pub fn is_closed(&self) -> bool {
        self.client.borrow().as_ref().is_none_or(Client::is_closed)
    }
}

impl Pg {
    /// The client, for one statement.
    fn client(&self) -> std::cell::RefMut<'_, Client> {
        std::cell::RefMut::map(self.client.borrow_mut(), |c| {
            c.as_mut()
                .expect("a Pg's client is taken only when it is dropped")
        })
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if let Some(client) = self.client.get_mut().take() {
            // Closing blocks on the driver's runtime: not on a thread of the daemon's.
            let _ = std::thread::Builder::new()
                .name("pg-close".into())
                .spawn(move || drop(client));
        }
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        StoreError::Postgres(super::describe(&e))
    }
}

/// A non-negative count or size from a BIGINT.
pub fn count(n: i64) -> u64 {
    n.max(0) as u64
}
