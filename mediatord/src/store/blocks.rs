//! Server-wide blocks set by the operator: of keys (no AUTH, no CREATE_CHAT, live sessions
//! ended) and of sources (connections refused, live sessions ended). The daemon keeps them in
//! memory (`crate::blocks`); these rows make them survive restarts. Timed blocks lapse by
//! themselves; the janitor removes lapsed rows ([`Blocks::purge_lapsed_blocks`]).

use super::queries::DbResult;

/// One block as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRow {
    /// `key` or `source`.
    pub kind: String,
    /// The key in lowercase hex, or the source as connections count it.
    pub value: String,
    /// Unix seconds when it lapses; `None`: until lifted.
    pub until: Option<i64>,
    pub reason: String,
    pub created_at: i64,
}

/// The blocks table on one database connection (or transaction).
pub trait Blocks {
    /// Sets (or replaces) a block.
    fn put_block(&self, b: &BlockRow) -> DbResult<()>;

    /// Lifts a block; whether there was one.
    fn remove_block(&self, kind: &str, value: &str) -> DbResult<bool>;

    /// Blocks in force at `now`, by kind and value.
    fn active_blocks(&self, now: i64) -> DbResult<Vec<BlockRow>>;

    /// Removes blocks that lapsed by `now`; returns how many.
    fn purge_lapsed_blocks(&self, now: i64) -> DbResult<usize>;
}
