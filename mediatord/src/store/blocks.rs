//! Server-wide blocks set by the operator: of keys (no AUTH, no CREATE_CHAT, live sessions
//! ended) and of sources (connections refused, live sessions ended). The daemon keeps them in
//! memory (`crate::blocks`); these rows make them survive restarts. Timed blocks lapse by
//! themselves; the janitor removes lapsed rows ([`purge_lapsed`]).

use rusqlite::{params, Connection};

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

/// Sets (or replaces) a block.
pub fn put(c: &Connection, b: &BlockRow) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT OR REPLACE INTO blocks (kind, value, until, reason, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![b.kind, b.value, b.until, b.reason, b.created_at])?;
    Ok(())
}

/// Lifts a block; whether there was one.
pub fn remove(c: &Connection, kind: &str, value: &str) -> rusqlite::Result<bool> {
    Ok(
        c.prepare_cached("DELETE FROM blocks WHERE kind = ?1 AND value = ?2")?
            .execute(params![kind, value])?
            > 0,
    )
}

/// Blocks in force at `now`, by kind and value.
pub fn active(c: &Connection, now: i64) -> rusqlite::Result<Vec<BlockRow>> {
    let mut st = c.prepare_cached(
        "SELECT kind, value, until, reason, created_at FROM blocks
         WHERE until IS NULL OR until > ?1 ORDER BY kind, value",
    )?;
    let rows = st.query_map([now], |r| {
        Ok(BlockRow {
            kind: r.get(0)?,
            value: r.get(1)?,
            until: r.get(2)?,
            reason: r.get(3)?,
            created_at: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// Removes blocks that lapsed by `now`; returns how many.
pub fn purge_lapsed(c: &Connection, now: i64) -> rusqlite::Result<usize> {
    c.prepare_cached("DELETE FROM blocks WHERE until IS NOT NULL AND until <= ?1")?
        .execute([now])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, value: &str, until: Option<i64>) -> BlockRow {
        BlockRow {
            kind: kind.into(),
            value: value.into(),
            until,
            reason: "spam".into(),
            created_at: 100,
        }
    }

    #[test]
    fn blocks_are_set_replaced_listed_lapse_and_lift() {
        let c = Connection::open_in_memory().unwrap();
        crate::store::schema::create(&c).unwrap();
        put(&c, &row("key", "ab", Some(200))).unwrap();
        put(&c, &row("source", "10.0.0.1", None)).unwrap();
        assert_eq!(active(&c, 150).unwrap().len(), 2);
        assert_eq!(
            active(&c, 200).unwrap(),
            vec![row("source", "10.0.0.1", None)]
        );
        // Setting again replaces (here: makes it permanent).
        put(&c, &row("key", "ab", None)).unwrap();
        assert_eq!(active(&c, 1_000).unwrap().len(), 2);
        put(&c, &row("key", "cd", Some(300))).unwrap();
        assert_eq!(purge_lapsed(&c, 300).unwrap(), 1);
        assert!(remove(&c, "key", "ab").unwrap());
        assert!(!remove(&c, "key", "ab").unwrap());
        assert_eq!(
            active(&c, 0).unwrap(),
            vec![row("source", "10.0.0.1", None)]
        );
    }
}
