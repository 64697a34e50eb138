//! The operator's side of storage on PostgreSQL: [`Admin`], [`Audit`], [`Blocks`] and
//! [`Retention`]. Backups and giving space back are the database server's own business
//! (`pg_dump`, streaming replicas, autovacuum): [`Retention::free_pages`] is always 0 here.

use super::conn::{count, Pg};
use crate::store::admin::{Admin, ChatFigures, ChatOrder, ChatRow, Totals};
use crate::store::audit::{Audit, AuditEntry, AUDIT_KEEP, AUDIT_PAGE_MAX};
use crate::store::blocks::{BlockRow, Blocks};
use crate::store::queries::{DbResult, Protocol};
use crate::store::retention::{OverLimit, Retention};
use crate::store::sqlite::control::order_by;

/// Bytes per page reported for PostgreSQL (its default block size); nothing is vacuumed by
/// mediatord, so the figure only labels the zero free pages.
pub const PAGE_BYTES: u64 = 8192;

fn chat_row(r: &postgres::Row) -> ChatRow {
    (r.get(0), r.get(1), r.get(2))
}

impl Pg {
    fn count_of(&self, sql: &str) -> DbResult<u64> {
        Ok(count(self.one(sql, &[])?.get(0)))
    }
}

impl Admin for Pg {
    fn all_chats(&self) -> DbResult<Vec<ChatRow>> {
        Ok(self
            .rows("SELECT id, owner, created_at FROM chats ORDER BY id", &[])?
            .iter()
            .map(chat_row)
            .collect())
    }

    fn totals_chats(&self) -> DbResult<u64> {
        self.count_of("SELECT COUNT(*) FROM chats")
    }

    fn database_bytes(&self) -> DbResult<u64> {
        self.count_of("SELECT pg_database_size(current_database())")
    }

    fn totals(&self) -> DbResult<Totals> {
        Ok(Totals {
            chats: self.count_of("SELECT COUNT(*) FROM chats")?,
            users: self.count_of("SELECT COUNT(DISTINCT pubkey) FROM members")?,
            messages: self.count_of("SELECT COALESCE(SUM(message_count), 0)::bigint FROM chats")?,
            invites: self.count_of("SELECT COUNT(*) FROM invites")?,
        })
    }

    fn figures(&self, id: i64, owner: Vec<u8>, created_at: i64) -> DbResult<ChatFigures> {
        let name = self.settings(id)?.map(|s| s.name).unwrap_or_default();
        let r = self.one(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN banned != 0 THEN 1 ELSE 0 END), 0)::bigint
             FROM members WHERE chat_id = $1",
            &[&id],
        )?;
        let (members, banned): (i64, i64) = (r.get(0), r.get(1));
        let r = self.one(
            "SELECT message_count, COALESCE((SELECT ts FROM messages WHERE chat_id = $1
                 ORDER BY id DESC LIMIT 1), 0) FROM chats WHERE id = $1",
            &[&id],
        )?;
        let (messages, last): (i64, i64) = (r.get(0), r.get(1));
        Ok(ChatFigures {
            id,
            owner,
            created_at,
            name,
            members: count(members - banned),
            banned: count(banned),
            messages: count(messages),
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
            "SELECT id, owner, created_at FROM chats {} ORDER BY {} LIMIT $1 OFFSET $2",
            if owner.is_some() {
                "WHERE owner = $3"
            } else {
                ""
            },
            order_by(order, descending)
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let (rows, total) = match owner {
            Some(o) => (
                self.rows(&sql, &[&limit, &offset, &o])?,
                self.one("SELECT COUNT(*) FROM chats WHERE owner = $1", &[&o])?,
            ),
            None => (
                self.rows(&sql, &[&limit, &offset])?,
                self.one("SELECT COUNT(*) FROM chats", &[])?,
            ),
        };
        Ok((rows.iter().map(chat_row).collect(), count(total.get(0))))
    }

    fn chat_created(&self, id: i64) -> DbResult<Option<i64>> {
        Ok(self
            .opt("SELECT created_at FROM chats WHERE id = $1", &[&id])?
            .map(|r| r.get(0)))
    }

    fn chat_invites(&self, id: i64) -> DbResult<u64> {
        Ok(count(
            self.one("SELECT COUNT(*) FROM invites WHERE chat_id = $1", &[&id])?
                .get(0),
        ))
    }
}

impl Audit for Pg {
    fn record(&self, e: &AuditEntry) -> DbResult<i64> {
        let id: i64 = self
            .one(
                "INSERT INTO audit (ts, uid, \"user\", action, target, result)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &e.ts,
                    &i64::from(e.uid),
                    &e.user,
                    &e.action,
                    &e.target,
                    &e.result,
                ],
            )?
            .get(0);
        self.exec("DELETE FROM audit WHERE id <= $1", &[&(id - AUDIT_KEEP)])?;
        Ok(id)
    }

    fn list(&self, limit: u32, before: Option<i64>) -> DbResult<Vec<AuditEntry>> {
        let rows = self.rows(
            "SELECT id, ts, uid, \"user\", action, target, result FROM audit
             WHERE id < $1 ORDER BY id DESC LIMIT $2",
            &[
                &before.unwrap_or(i64::MAX),
                &i64::from(limit.min(AUDIT_PAGE_MAX)),
            ],
        )?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                id: r.get(0),
                ts: r.get(1),
                uid: u32::try_from(r.get::<_, i64>(2)).unwrap_or(u32::MAX),
                user: r.get(3),
                action: r.get(4),
                target: r.get(5),
                result: r.get(6),
            })
            .collect())
    }
}

impl Blocks for Pg {
    fn put_block(&self, b: &BlockRow) -> DbResult<()> {
        self.exec(
            "INSERT INTO blocks (kind, value, until, reason, created_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (kind, value) DO UPDATE SET until = EXCLUDED.until,
                 reason = EXCLUDED.reason, created_at = EXCLUDED.created_at",
            &[&b.kind, &b.value, &b.until, &b.reason, &b.created_at],
        )?;
        Ok(())
    }

    fn remove_block(&self, kind: &str, value: &str) -> DbResult<bool> {
        Ok(self.exec(
            "DELETE FROM blocks WHERE kind = $1 AND value = $2",
            &[&kind, &value],
        )? > 0)
    }

    fn active_blocks(&self, now: i64) -> DbResult<Vec<BlockRow>> {
        Ok(self
            .rows(
                "SELECT kind, value, until, reason, created_at FROM blocks
                 WHERE until IS NULL OR until > $1 ORDER BY kind, value",
                &[&now],
            )?
            .iter()
            .map(|r| BlockRow {
                kind: r.get(0),
                value: r.get(1),
                until: r.get(2),
                reason: r.get(3),
                created_at: r.get(4),
            })
            .collect())
    }

    fn purge_lapsed_blocks(&self, now: i64) -> DbResult<usize> {
        self.exec(
            "DELETE FROM blocks WHERE until IS NOT NULL AND until <= $1",
            &[&now],
        )
    }
}

/// [`Retention::message_chats`]: a loose scan of `messages (chat_id, id)`, one seek per
/// chat id.
const MESSAGE_CHATS_POSTGRES: &str = "WITH RECURSIVE ids(chat, n) AS (
        SELECT (SELECT min(chat_id) FROM messages WHERE chat_id > $1), 1::bigint
        UNION ALL
        SELECT (SELECT min(m.chat_id) FROM messages m WHERE m.chat_id > ids.chat), ids.n + 1
        FROM ids WHERE ids.chat IS NOT NULL AND ids.n < $2
    )
    SELECT chat, EXISTS (SELECT 1 FROM chats WHERE id = ids.chat) FROM ids
    WHERE chat IS NOT NULL";

impl Retention for Pg {
    fn message_chats(&self, after: i64, limit: u32) -> DbResult<Vec<(i64, bool)>> {
        Ok(self
            .rows(MESSAGE_CHATS_POSTGRES, &[&after, &i64::from(limit)])?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    fn sweep_deleted_chat(&self, chat: i64, batch: u32) -> DbResult<usize> {
        self.exec(
            "DELETE FROM messages WHERE seq IN
                 (SELECT seq FROM messages WHERE chat_id = $1 LIMIT $2)
             AND NOT EXISTS (SELECT 1 FROM chats WHERE id = $1)",
            &[&chat, &i64::from(batch)],
        )
    }

    fn purge_older(&self, chat: Option<i64>, before: i64, batch: u32) -> DbResult<usize> {
        let batch = i64::from(batch);
        match chat {
            None => self.exec(
                "DELETE FROM messages WHERE seq IN
                     (SELECT seq FROM messages WHERE ts < $1 ORDER BY ts LIMIT $2)",
                &[&before, &batch],
            ),
            Some(chat) => self.exec(
                "DELETE FROM messages WHERE seq IN
                     (SELECT seq FROM messages WHERE chat_id = $1 AND ts < $2 LIMIT $3)",
                &[&chat, &before, &batch],
            ),
        }
    }

    fn chats_over(
        &self,
        max_messages: Option<u64>,
        max_bytes: Option<u64>,
        after: i64,
        limit: u32,
    ) -> DbResult<Vec<OverLimit>> {
        let cap = |v: Option<u64>| v.map_or(i64::MAX, |v| i64::try_from(v).unwrap_or(i64::MAX));
        Ok(self
            .rows(
                "SELECT id, message_count, message_bytes FROM chats
                 WHERE id > $1 AND (message_count > $2 OR message_bytes > $3)
                 ORDER BY id LIMIT $4",
                &[
                    &after,
                    &cap(max_messages),
                    &cap(max_bytes),
                    &i64::from(limit),
                ],
            )?
            .iter()
            .map(|r| OverLimit {
                chat: r.get(0),
                messages: count(r.get(1)),
                bytes: count(r.get(2)),
            })
            .collect())
    }

    fn chat_counters(&self, chat: i64) -> DbResult<(u64, u64)> {
        Ok(self
            .opt(
                "SELECT message_count, message_bytes FROM chats WHERE id = $1",
                &[&chat],
            )?
            .map_or((0, 0), |r| (count(r.get(0)), count(r.get(1)))))
    }

    fn oldest_messages(&self, chat: i64, batch: u32) -> DbResult<Vec<(i64, u64)>> {
        Ok(self
            .rows(
                "SELECT id, COALESCE(octet_length(body), 0)::bigint FROM messages
                 WHERE chat_id = $1 ORDER BY id LIMIT $2",
                &[&chat, &i64::from(batch)],
            )?
            .iter()
            .map(|r| (r.get(0), count(r.get(1))))
            .collect())
    }

    fn delete_through(&self, chat: i64, last: i64) -> DbResult<usize> {
        self.exec(
            "DELETE FROM messages WHERE chat_id = $1 AND id <= $2",
            &[&chat, &last],
        )
    }

    fn page_size(&self) -> DbResult<u64> {
        Ok(PAGE_BYTES)
    }

    fn free_pages(&self) -> DbResult<u32> {
        Ok(0)
    }

    fn vacuum_step(&self, _pages: u32) -> DbResult<u32> {
        Ok(0)
    }
}

impl crate::store::Db for Pg {
    fn as_postgres(&self) -> Option<&Pg> {
        Some(self)
    }
}
