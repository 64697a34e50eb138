//! The audit log: every control action that changes state, with who asked (the caller's uid
//! and user name, from the control socket's credentials), what, when and how it ended.
//! Moderation that chat owners do through the protocol is not logged here. Entries are kept
//! in order; [`AUDIT_KEEP`] bounds how many.

use rusqlite::{params, Connection};

/// Entries kept: recording one more drops the oldest past this count.
pub const AUDIT_KEEP: i64 = 100_000;
/// Most entries one listing returns.
pub const AUDIT_PAGE_MAX: u32 = 1_000;

/// One recorded control action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    /// Unix seconds.
    pub ts: i64,
    pub uid: u32,
    /// The uid's user name when the action ran (the number when it had none).
    pub user: String,
    /// The command, e.g. `nonces purge`.
    pub action: String,
    /// What it acted on, e.g. `older than 3600s`; empty when nothing in particular.
    pub target: String,
    /// `ok`, `ok: <what it did>`, or `failed: <error>`.
    pub result: String,
}

/// Appends an entry (its `id` is ignored) and drops the oldest past [`AUDIT_KEEP`]; returns
/// the new entry's id.
pub fn record(c: &Connection, e: &AuditEntry) -> rusqlite::Result<i64> {
    c.prepare_cached(
        "INSERT INTO audit (ts, uid, user, action, target, result)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![e.ts, e.uid, e.user, e.action, e.target, e.result])?;
    let id = c.last_insert_rowid();
    c.prepare_cached("DELETE FROM audit WHERE id <= ?1")?
        .execute([id - AUDIT_KEEP])?;
    Ok(id)
}

/// The newest entries first, at most `limit` (capped at [`AUDIT_PAGE_MAX`]), older than
/// `before` when given.
pub fn list(c: &Connection, limit: u32, before: Option<i64>) -> rusqlite::Result<Vec<AuditEntry>> {
    let mut st = c.prepare_cached(
        "SELECT id, ts, uid, user, action, target, result FROM audit
         WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = st.query_map(
        params![before.unwrap_or(i64::MAX), limit.min(AUDIT_PAGE_MAX)],
        |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                ts: r.get(1)?,
                uid: r.get(2)?,
                user: r.get(3)?,
                action: r.get(4)?,
                target: r.get(5)?,
                result: r.get(6)?,
            })
        },
    )?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str) -> AuditEntry {
        AuditEntry {
            id: 0,
            ts: 1_700_000_000,
            uid: 1000,
            user: "alice".into(),
            action: action.into(),
            target: "chat 7".into(),
            result: "ok".into(),
        }
    }

    #[test]
    fn entries_come_back_newest_first_and_page_by_id() {
        let c = Connection::open_in_memory().unwrap();
        crate::store::schema::create(&c).unwrap();
        let a = record(&c, &entry("first")).unwrap();
        let b = record(&c, &entry("second")).unwrap();
        let all = list(&c, 10, None).unwrap();
        assert_eq!(
            all.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
            ["second", "first"]
        );
        assert_eq!(all[0].id, b);
        assert_eq!(
            all[1],
            AuditEntry {
                id: a,
                ..entry("first")
            }
        );
        let older = list(&c, 10, Some(b)).unwrap();
        assert_eq!(older.len(), 1);
        assert_eq!(older[0].id, a);
        assert_eq!(list(&c, 1, None).unwrap().len(), 1);
    }

    #[test]
    fn the_oldest_go_past_the_bound() {
        let c = Connection::open_in_memory().unwrap();
        crate::store::schema::create(&c).unwrap();
        // Pretend the log is nearly full: the first entry, and one just below the bound.
        for (id, action) in [(1, "first"), (AUDIT_KEEP - 1, "mid")] {
            c.execute(
                "INSERT INTO audit (id, ts, uid, user, action, target, result)
                 VALUES (?1, 0, 0, 'root', ?2, '', 'ok')",
                params![id, action],
            )
            .unwrap();
        }
        record(&c, &entry("a")).unwrap();
        assert_eq!(
            list(&c, 10, None).unwrap().len(),
            3,
            "id {AUDIT_KEEP}: all kept"
        );
        record(&c, &entry("b")).unwrap();
        let left: Vec<String> = list(&c, 10, None)
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(left, ["b", "a", "mid"], "the first entry went");
    }
}
