//! The operator's side of storage on the embedded SQLite file: [`Admin`], [`Audit`],
//! [`Blocks`] and [`Retention`], and SQLite's online backup.
//!
//! Space: new files are created with `auto_vacuum = INCREMENTAL` (older ones are rewritten
//! once when upgraded to version 7), so `vacuum_step` moves free pages to the end of the file
//! and truncates them; in WAL mode the file shrinks when the next checkpoint completes.

use crate::store::admin::{Admin, ChatFigures, ChatOrder, ChatRow, Totals};
use crate::store::audit::{Audit, AuditEntry, AUDIT_KEEP, AUDIT_PAGE_MAX};
use crate::store::blocks::{BlockRow, Blocks};
use crate::store::queries::{DbResult, Protocol};
use crate::store::retention::{OverLimit, Retention};
use crate::store::{Db, StoreError};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::time::Duration;

/// Pages copied per step of an online backup; between steps the writer may commit.
pub const BACKUP_STEP_PAGES: i32 = 256;
/// Pause between backup steps, so a large backup does not hold the database busy.
pub const BACKUP_STEP_PAUSE: Duration = Duration::from_millis(1);

/// The oldest messages everywhere, through the time index.
pub(crate) const PURGE_OLDER: &str = "DELETE FROM messages WHERE seq IN
     (SELECT seq FROM messages WHERE ts < ?1 ORDER BY ts LIMIT ?2)";

/// Copies the database into a new file at `dest` with SQLite's online backup, in steps that
/// let the writer go on, and leaves it in rollback-journal mode (one self-contained file).
/// Returns the pages copied. Other backends are backed up by their own server's tools.
pub fn backup_to(db: &dyn Db, dest: &Path) -> DbResult<i32> {
    let c = db.as_sqlite().ok_or(StoreError::NotOnThisBackend(
        "the database is PostgreSQL: back it up with pg_dump or the server's own backups",
    ))?;
    let mut out = Connection::open(dest)?;
    let b = rusqlite::backup::Backup::new(c, &mut out)?;
    b.run_to_completion(BACKUP_STEP_PAGES, BACKUP_STEP_PAUSE, None)?;
    let pages = b.progress().pagecount;
    drop(b);
    out.execute_batch("PRAGMA journal_mode=DELETE")?;
    Ok(pages)
}

fn count(c: &Connection, sql: &str) -> DbResult<u64> {
    Ok(c.prepare_cached(sql)?
        .query_row([], |r| r.get::<_, i64>(0))
        .map(|n| n.max(0) as u64)?)
}

impl Admin for Connection {
    fn all_chats(&self) -> DbResult<Vec<ChatRow>> {
        let mut st = self.prepare_cached("SELECT id, owner, created_at FROM chats ORDER BY id")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn totals_chats(&self) -> DbResult<u64> {
        count(self, "SELECT COUNT(*) FROM chats")
    }

    fn database_bytes(&self) -> DbResult<u64> {
        Ok(self
            .query_row(
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                [],
                |r| r.get::<_, i64>(0),
            )?
            .max(0) as u64)
    }

    fn totals(&self) -> DbResult<Totals> {
        Ok(Totals {
            chats: count(self, "SELECT COUNT(*) FROM chats")?,
            users: count(self, "SELECT COUNT(DISTINCT pubkey) FROM members")?,
            messages: count(self, "SELECT IFNULL(SUM(message_count), 0) FROM chats")?,
            invites: count(self, "SELECT COUNT(*) FROM invites")?,
        })
    }

    fn figures(&self, id: i64, owner: Vec<u8>, created_at: i64) -> DbResult<ChatFigures> {
        let name = self.settings(id)?.map(|s| s.name).unwrap_or_default();
        let (members, banned): (i64, i64) = self
            .prepare_cached(
                "SELECT COUNT(*), IFNULL(SUM(banned != 0), 0) FROM members WHERE chat_id = ?1",
            )?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        // The counter, and the newest message's time: one row each, however long the chat.
        let (messages, last): (i64, i64) = self
            .prepare_cached(
                "SELECT message_count, IFNULL((SELECT ts FROM messages WHERE chat_id = ?1
                     ORDER BY id DESC LIMIT 1), 0) FROM chats WHERE id = ?1",
            )?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(ChatFigures {
            id,
            owner,
            created_at,
            name,
            members: (members - banned) as u64,
            banned: banned as u64,
            messages: messages.max(0) as u64,
            last_activity: last.max(created_at),
        })
    }

    fn chat_rows(
        &self,
        owner: Option<&[u8]>,
        order: ChatOrder,
        descending: bool,
        offset: u64,
        limit: u64,
    ) -> DbResult<(Vec<ChatRow>, u64)> {
        let sql = format!(
            "SELECT id, owner, created_at FROM chats {} ORDER BY {} LIMIT ?1 OFFSET ?2",
            if owner.is_some() {
                "WHERE owner = ?3"
            } else {
                ""
            },
            order_by(order, descending)
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let mut st = self.prepare_cached(&sql)?;
        let map = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?));
        let rows = match owner {
            Some(o) => st
                .query_map(params![limit, offset, o], map)?
                .collect::<rusqlite::Result<_>>()?,
            None => st
                .query_map(params![limit, offset], map)?
                .collect::<rusqlite::Result<_>>()?,
        };
        let total: i64 = match owner {
            Some(o) => self
                .prepare_cached("SELECT COUNT(*) FROM chats WHERE owner = ?1")?
                .query_row([o], |r| r.get(0))?,
            None => self
                .prepare_cached("SELECT COUNT(*) FROM chats")?
                .query_row([], |r| r.get(0))?,
        };
        Ok((rows, total.max(0) as u64))
    }

    fn chat_created(&self, id: i64) -> DbResult<Option<i64>> {
        Ok(self
            .prepare_cached("SELECT created_at FROM chats WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?)
    }

    fn chat_invites(&self, id: i64) -> DbResult<u64> {
        let n: i64 = self
            .prepare_cached("SELECT COUNT(*) FROM invites WHERE chat_id = ?1")?
            .query_row([id], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }
}

/// The ORDER BY of a page of chats (the same text on every backend).
pub(crate) fn order_by(order: ChatOrder, descending: bool) -> String {
    let column = match order {
        ChatOrder::Id => "",
        ChatOrder::Created => "created_at",
        ChatOrder::Messages => "message_count",
    };
    let dir = if descending { "DESC" } else { "ASC" };
    if column.is_empty() {
        format!("id {dir}")
    } else {
        format!("{column} {dir}, id {dir}")
    }
}

impl Audit for Connection {
    fn record(&self, e: &AuditEntry) -> DbResult<i64> {
        self.prepare_cached(
            "INSERT INTO audit (ts, uid, user, action, target, result)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![e.ts, e.uid, e.user, e.action, e.target, e.result])?;
        let id = self.last_insert_rowid();
        self.prepare_cached("DELETE FROM audit WHERE id <= ?1")?
            .execute([id - AUDIT_KEEP])?;
        Ok(id)
    }

    fn list(&self, limit: u32, before: Option<i64>) -> DbResult<Vec<AuditEntry>> {
        let mut st = self.prepare_cached(
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
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl Blocks for Connection {
    fn put_block(&self, b: &BlockRow) -> DbResult<()> {
        self.prepare_cached(
            "INSERT OR REPLACE INTO blocks (kind, value, until, reason, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![b.kind, b.value, b.until, b.reason, b.created_at])?;
        Ok(())
    }

    fn remove_block(&self, kind: &str, value: &str) -> DbResult<bool> {
        Ok(self
            .prepare_cached("DELETE FROM blocks WHERE kind = ?1 AND value = ?2")?
            .execute(params![kind, value])?
            > 0)
    }

    fn active_blocks(&self, now: i64) -> DbResult<Vec<BlockRow>> {
        let mut st = self.prepare_cached(
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
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn purge_lapsed_blocks(&self, now: i64) -> DbResult<usize> {
        Ok(self
            .prepare_cached("DELETE FROM blocks WHERE until IS NOT NULL AND until <= ?1")?
            .execute([now])?)
    }
}

/// [`Retention::message_chats`]: a loose scan of `messages_id`, one seek per chat id.
const MESSAGE_CHATS_SQLITE: &str = "WITH RECURSIVE ids(chat, n) AS (
        SELECT (SELECT min(chat_id) FROM messages WHERE chat_id > ?1), 1
        UNION ALL
        SELECT (SELECT min(chat_id) FROM messages WHERE chat_id > ids.chat), ids.n + 1
        FROM ids WHERE ids.chat IS NOT NULL AND ids.n < ?2
    )
    SELECT chat, EXISTS (SELECT 1 FROM chats WHERE id = ids.chat) FROM ids
    WHERE chat IS NOT NULL";

impl Retention for Connection {
    fn message_chats(&self, after: i64, limit: u32) -> DbResult<Vec<(i64, bool)>> {
        let mut st = self.prepare_cached(MESSAGE_CHATS_SQLITE)?;
        let rows = st.query_map(params![after, limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn sweep_deleted_chat(&self, chat: i64, batch: u32) -> DbResult<usize> {
        Ok(self
            .prepare_cached(
                "DELETE FROM messages WHERE seq IN
                     (SELECT seq FROM messages WHERE chat_id = ?1 LIMIT ?2)
                 AND NOT EXISTS (SELECT 1 FROM chats WHERE id = ?1)",
            )?
            .execute(params![chat, batch])?)
    }

    fn purge_older(&self, chat: Option<i64>, before: i64, batch: u32) -> DbResult<usize> {
        Ok(match chat {
            None => self
                .prepare_cached(PURGE_OLDER)?
                .execute(params![before, batch])?,
            Some(chat) => self
                .prepare_cached(
                    "DELETE FROM messages WHERE seq IN
                         (SELECT seq FROM messages WHERE chat_id = ?1 AND ts < ?2 LIMIT ?3)",
                )?
                .execute(params![chat, before, batch])?,
        })
    }

    fn chats_over(
        &self,
        max_messages: Option<u64>,
        max_bytes: Option<u64>,
        after: i64,
        limit: u32,
    ) -> DbResult<Vec<OverLimit>> {
        let cap = |v: Option<u64>| v.map_or(i64::MAX, |v| i64::try_from(v).unwrap_or(i64::MAX));
        let mut st = self.prepare_cached(
            "SELECT id, message_count, message_bytes FROM chats
             WHERE id > ?1 AND (message_count > ?2 OR message_bytes > ?3) ORDER BY id LIMIT ?4",
        )?;
        let rows = st.query_map(
            params![after, cap(max_messages), cap(max_bytes), limit],
            |r| {
                Ok(OverLimit {
                    chat: r.get(0)?,
                    messages: r.get::<_, i64>(1)?.max(0) as u64,
                    bytes: r.get::<_, i64>(2)?.max(0) as u64,
                })
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn chat_counters(&self, chat: i64) -> DbResult<(u64, u64)> {
        let (count, bytes): (i64, i64) = self
            .prepare_cached("SELECT message_count, message_bytes FROM chats WHERE id = ?1")?
            .query_row(params![chat], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((0, 0));
        Ok((count.max(0) as u64, bytes.max(0) as u64))
    }

    fn oldest_messages(&self, chat: i64, batch: u32) -> DbResult<Vec<(i64, u64)>> {
        let mut st = self.prepare_cached(
            "SELECT id, IFNULL(length(body), 0) FROM messages WHERE chat_id = ?1
             ORDER BY id LIMIT ?2",
        )?;
        let rows = st.query_map(params![chat, batch], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn delete_through(&self, chat: i64, last: i64) -> DbResult<usize> {
        Ok(self
            .prepare_cached("DELETE FROM messages WHERE chat_id = ?1 AND id <= ?2")?
            .execute(params![chat, last])?)
    }

    fn page_size(&self) -> DbResult<u64> {
        Ok(self.query_row("PRAGMA page_size", [], |r| r.get(0))?)
    }

    fn free_pages(&self) -> DbResult<u32> {
        Ok(self.query_row("PRAGMA freelist_count", [], |r| r.get(0))?)
    }

    fn vacuum_step(&self, pages: u32) -> DbResult<u32> {
        let before = self.free_pages()?;
        // The pragma returns one row per page it frees: step it to the end.
        let mut st = self.prepare(&format!("PRAGMA incremental_vacuum({pages})"))?;
        let mut rows = st.query([])?;
        while rows.next()?.is_some() {}
        drop(rows);
        Ok(before.saturating_sub(self.free_pages()?))
    }
}

#[cfg(test)]
mod admin_tests {
    use super::*;
    use crate::store::admin::role_name;

    /// Pages in the table's orders match sorting every chat's figures.
    #[test]
    fn pages_match_a_full_sort() {
        let c = Connection::open_in_memory().unwrap();
        crate::store::schema::create(&c).unwrap();
        for id in 1..=30i64 {
            let owner = if id % 3 == 0 { vec![3u8] } else { vec![1u8] };
            c.execute(
                "INSERT INTO chats (id, owner, created_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![id, owner, 1000 - (id % 7)],
            )
            .unwrap();
            for m in 0..(id % 5) {
                c.insert_message(id, m, &[1], b"x", 0).unwrap();
            }
        }
        let all = c.chat_list(None).unwrap();
        for (order, key) in [
            (
                ChatOrder::Id,
                (|f: &ChatFigures| (0, f.id)) as fn(&ChatFigures) -> (i64, i64),
            ),
            (ChatOrder::Created, |f| (f.created_at, f.id)),
            (ChatOrder::Messages, |f| (f.messages as i64, f.id)),
        ] {
            for descending in [false, true] {
                let mut want = all.clone();
                want.sort_by_key(key);
                if descending {
                    want.reverse();
                }
                let mut got = Vec::new();
                for offset in (0..30).step_by(7) {
                    let (page, total) = c.chat_page(None, order, descending, offset, 7).unwrap();
                    assert_eq!(total, 30);
                    got.extend(page);
                }
                assert_eq!(got, want, "{order:?} descending={descending}");
            }
        }
        let (mine, total) = c
            .chat_page(Some(&[3]), ChatOrder::Id, false, 0, 100)
            .unwrap();
        assert_eq!(total, 10);
        assert_eq!(mine, c.chat_list(Some(&[3])).unwrap());
    }

    #[test]
    fn roles() {
        assert_eq!(role_name(0x90, false), "owner");
        assert_eq!(role_name(0x11, true), "banned");
        assert_eq!(role_name(0x08, false), "read-only");
    }
}

#[cfg(test)]
mod audit_tests {
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
        let a = c.record(&entry("first")).unwrap();
        let b = c.record(&entry("second")).unwrap();
        let all = c.list(10, None).unwrap();
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
        let older = c.list(10, Some(b)).unwrap();
        assert_eq!(older.len(), 1);
        assert_eq!(older[0].id, a);
        assert_eq!(c.list(1, None).unwrap().len(), 1);
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
        c.record(&entry("a")).unwrap();
        assert_eq!(
            c.list(10, None).unwrap().len(),
            3,
            "id {AUDIT_KEEP}: all kept"
        );
        c.record(&entry("b")).unwrap();
        let left: Vec<String> = c
            .list(10, None)
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(left, ["b", "a", "mid"], "the first entry went");
    }
}

#[cfg(test)]
mod blocks_tests {
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
        c.put_block(&row("key", "ab", Some(200))).unwrap();
        c.put_block(&row("source", "10.0.0.1", None)).unwrap();
        assert_eq!(c.active_blocks(150).unwrap().len(), 2);
        assert_eq!(
            c.active_blocks(200).unwrap(),
            vec![row("source", "10.0.0.1", None)]
        );
        // Setting again replaces (here: makes it permanent).
        c.put_block(&row("key", "ab", None)).unwrap();
        assert_eq!(c.active_blocks(1_000).unwrap().len(), 2);
        c.put_block(&row("key", "cd", Some(300))).unwrap();
        assert_eq!(c.purge_lapsed_blocks(300).unwrap(), 1);
        assert!(c.remove_block("key", "ab").unwrap());
        assert!(!c.remove_block("key", "ab").unwrap());
        assert_eq!(
            c.active_blocks(0).unwrap(),
            vec![row("source", "10.0.0.1", None)]
        );
    }
}

#[cfg(test)]
mod retention_tests {
    use super::*;
    use crate::store::retention::PURGE_BATCH;
    use crate::store::schema;

    /// A file-backed database (auto-vacuum needs pages on disk) with `chats` chats of `per`
    /// messages of `size` bytes each, stamped 0, 1, 2… in arrival order.
    fn database(dir: &std::path::Path, chats: i64, per: i64, size: i64) -> Connection {
        let mut c = Connection::open(dir.join("r.db")).unwrap();
        schema::prepare(&mut c).unwrap();
        let tx = c.transaction().unwrap();
        for chat in 1..=chats {
            tx.execute(
                "INSERT INTO chats (id, owner, created_at) VALUES (?1, X'01', 0)",
                [chat],
            )
            .unwrap();
        }
        for id in 1..=per {
            for chat in 1..=chats {
                tx.execute(
                    "INSERT INTO messages (chat_id, id, guid, ts, author, body)
                     VALUES (?1, ?2, ?2, ?2, X'01', zeroblob(?3))",
                    params![chat, id, size],
                )
                .unwrap();
            }
        }
        schema::recount(&tx).unwrap();
        tx.commit().unwrap();
        c
    }

    fn ids(c: &Connection, chat: i64) -> Vec<i64> {
        let mut st = c
            .prepare("SELECT id FROM messages WHERE chat_id = ?1 ORDER BY id")
            .unwrap();
        st.query_map([chat], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// Purging by age searches the time index, not the table.
    #[test]
    fn age_purge_uses_the_time_index() {
        let c = Connection::open_in_memory().unwrap();
        schema::create(&c).unwrap();
        let plan: Vec<String> = c
            .prepare(&format!("EXPLAIN QUERY PLAN {PURGE_OLDER}"))
            .unwrap()
            .query_map(params![1, 1], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let plan = plan.join("; ");
        assert!(
            plan.contains("SEARCH messages USING COVERING INDEX messages_ts (ts<?)"),
            "{plan}"
        );
        assert!(!plan.contains("SCAN messages"), "{plan}");
    }

    #[test]
    fn purges_by_age_in_batches_everywhere_or_in_one_chat() {
        let dir = tempfile::tempdir().unwrap();
        let c = database(dir.path(), 3, 10, 10);
        assert_eq!(c.purge_older(Some(2), 4, 100).unwrap(), 3);
        assert_eq!(ids(&c, 2), (4..=10).collect::<Vec<_>>());
        assert_eq!(ids(&c, 1), (1..=10).collect::<Vec<_>>());
        // Everywhere, two at a time: batches never exceed their size.
        let mut removed = Vec::new();
        loop {
            let n = c.purge_older(None, 6, 2).unwrap();
            removed.push(n);
            if n < 2 {
                break;
            }
        }
        assert!(removed.iter().all(|n| *n <= 2));
        assert_eq!(removed.iter().sum::<usize>(), 5 + 5 + 2);
        for chat in 1..=3 {
            assert_eq!(ids(&c, chat), (6..=10).collect::<Vec<_>>());
        }
    }

    #[test]
    fn trims_chats_over_count_and_size_from_their_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let c = database(dir.path(), 3, 10, 100);
        c.execute_batch("DELETE FROM messages WHERE chat_id = 3 AND id > 2")
            .unwrap();
        let over = c.chats_over(Some(4), None, 0, 10).unwrap();
        assert_eq!(
            over.iter().map(|o| o.chat).collect::<Vec<_>>(),
            vec![1, 2],
            "chat 3 holds 2 messages"
        );
        assert_eq!(over[0].messages, 10);
        assert_eq!(over[0].bytes, 1000);
        assert_eq!(c.chats_over(Some(4), None, 1, 10).unwrap().len(), 1);
        assert!(c.chats_over(None, None, 0, 10).unwrap().is_empty());
        // By count, in batches of 4: 10 → 6 → 4.
        assert_eq!(c.trim_chat(1, Some(4), None, 4).unwrap(), 4);
        assert_eq!(c.trim_chat(1, Some(4), None, 4).unwrap(), 2);
        assert_eq!(c.trim_chat(1, Some(4), None, 4).unwrap(), 0);
        assert_eq!(ids(&c, 1), vec![7, 8, 9, 10]);
        // By size: 1,000 bytes to at most 250 takes the 8 oldest.
        assert_eq!(c.trim_chat(2, None, Some(250), 100).unwrap(), 8);
        assert_eq!(ids(&c, 2), vec![9, 10]);
        assert!(c.chats_over(Some(4), Some(500), 0, 10).unwrap().is_empty());
        assert_eq!(c.trim_chat(99, Some(1), Some(1), 100).unwrap(), 0);
    }

    #[test]
    fn vacuum_gives_freed_pages_back() {
        let dir = tempfile::tempdir().unwrap();
        let c = database(dir.path(), 2, 500, 2000);
        let pages =
            |c: &Connection| -> u32 { c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap() };
        let full = pages(&c);
        while c.purge_older(None, 400, PURGE_BATCH).unwrap() > 0 {}
        let free = c.free_pages().unwrap();
        assert!(free > 300, "{free} free pages after deleting 80%");
        let mut given = 0;
        loop {
            let n = c.vacuum_step(100).unwrap();
            assert!(n <= 100);
            given += n;
            if n == 0 {
                break;
            }
        }
        assert_eq!(given, free);
        assert_eq!(c.free_pages().unwrap(), 0);
        assert!(pages(&c) < full / 3, "{} of {full} pages left", pages(&c));
    }
}
