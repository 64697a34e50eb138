//! The protocol's operations ([`Protocol`]) on the embedded SQLite file.
//!
//! Every statement is a fixed string over the fixed tables of [`crate::store::schema`],
//! cached per connection. Names and descriptions go into TEXT columns when they are valid
//! UTF-8 and as BLOBs otherwise, so they are kept byte for byte.

use crate::store::queries::{
    take_invite, DbResult, InviteRow, Member, MemberRow, MessageView, PageBudget, Protocol,
    Settings, Stored,
};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;

/// The statements of the hot paths, named so that a test checks their query plans
/// ([`tests::hot_statements_use_their_indexes`]). Guid lookups name their index: without
/// statistics SQLite's planner may prefer another index of the same chat (it did, with a
/// clustered table, and scanned the chat's whole range for every SEND_MESSAGE).
pub(crate) mod sql {
    pub const MEMBER: &str =
        "SELECT perms_flags, banned FROM members WHERE chat_id = ?1 AND pubkey = ?2";
    pub const BY_GUID: &str = "SELECT id, ts, author, body FROM messages INDEXED BY messages_guid
         WHERE chat_id = ?1 AND guid = ?2 LIMIT 1";
    pub const AUTHOR_BY_GUID: &str = "SELECT author FROM messages INDEXED BY messages_guid
         WHERE chat_id = ?1 AND guid = ?2 LIMIT 1";
    /// Bumps the chat's message counter; [`COUNTER`] then reads it. (`RETURNING` would do both
    /// in one statement but builds a temporary table each time: 3–7% of the writer's time per
    /// message, measured with the SEND_MESSAGE statements alone.)
    /// Takes the chat's next message id and counts the new message and its ?2 body bytes
    /// (see the schema's counters).
    pub const NEXT_ID: &str = "UPDATE chats SET last_message_id = last_message_id + 1,
         message_count = message_count + 1, message_bytes = message_bytes + ?2 WHERE id = ?1";
    pub const COUNTER: &str = "SELECT last_message_id FROM chats WHERE id = ?1";
    pub const INSERT_MESSAGE: &str = "INSERT INTO messages (chat_id, id, guid, ts, author, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    pub const LAST_ID: &str = "SELECT id FROM messages WHERE chat_id = ?1 ORDER BY id DESC LIMIT 1";
    /// A page of messages; a body longer than ?4 bytes is not loaded (NULL), only its
    /// length (`length()` of a blob reads the row header, not the blob).
    pub const PAGE: &str = "SELECT id, guid, ts, author, length(body),
         CASE WHEN length(body) <= ?4 THEN body END FROM messages
         WHERE chat_id = ?1 AND id > ?2 AND body IS NOT NULL ORDER BY id LIMIT ?3";
    pub const PAGE_SIZES: &str = "SELECT length(body) FROM messages
         WHERE chat_id = ?1 AND id > ?2 AND body IS NOT NULL ORDER BY id LIMIT ?3";
    pub const DELETE_BY_GUID: &str =
        "DELETE FROM messages INDEXED BY messages_guid WHERE chat_id = ?1 AND guid = ?2";
    pub const USER_CHATS: &str =
        "SELECT chat_id FROM members WHERE pubkey = ?1 AND banned = 0 ORDER BY chat_id";
    pub const ESTABLISHED: &str = "SELECT 1 FROM members WHERE pubkey = ?1 AND banned = 0 LIMIT 1";
    pub const OWNED: &str = "SELECT COUNT(*) FROM chats WHERE owner = ?1";
}

/// Text stored in a TEXT column when it is valid UTF-8, else the raw bytes as a BLOB, so
/// that names are kept byte for byte.
fn text_value(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::Text(s.to_owned()),
        Err(_) => Value::Blob(b.to_vec()),
    }
}

/// Reads a TEXT (or BLOB) column as raw bytes: names are stored as given, unvalidated.
fn text_bytes(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Vec<u8>> {
    Ok(match r.get_ref(i)? {
        ValueRef::Text(t) | ValueRef::Blob(t) => t.to_vec(),
        _ => Vec::new(),
    })
}

/// A BLOB column borrowed from the row (a column of another type is an error).
fn blob<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r [u8]> {
    r.get_ref(i)?.as_blob().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Blob, Box::new(e))
    })
}

fn invite_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<InviteRow> {
    Ok(InviteRow {
        id: r.get(0)?,
        timestamp: r.get(1)?,
        from: r.get(2)?,
        to: r.get(3)?,
        chat_id: r.get(4)?,
        data: r.get(5)?,
    })
}

const INVITE_COLUMNS: &str = "id, timestamp, from_pubkey, to_pubkey, chat_id, encrypted_data";

impl Protocol for Connection {
    fn chat_exists(&self, chat: i64) -> DbResult<bool> {
        Ok(self
            .prepare_cached("SELECT 1 FROM chats WHERE id = ?1")?
            .exists(params![chat])?)
    }

    fn chat_id_taken(&self, chat: i64) -> DbResult<bool> {
        Ok(self
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM chats WHERE id = ?1)
                     OR EXISTS (SELECT 1 FROM messages WHERE chat_id = ?1)",
            )?
            .query_row(params![chat], |r| r.get(0))?)
    }

    fn chat_owner(&self, chat: i64) -> DbResult<Option<Vec<u8>>> {
        Ok(self
            .prepare_cached("SELECT owner FROM chats WHERE id = ?1")?
            .query_row(params![chat], |r| r.get(0))
            .optional()?)
    }

    fn member(&self, chat: i64, key: &[u8]) -> DbResult<Option<Member>> {
        Ok(self
            .prepare_cached(sql::MEMBER)?
            .query_row(params![chat, key], |r| {
                Ok(Member {
                    perms: (r.get::<_, i64>(0)? & 0xff) as u8,
                    banned: r.get::<_, i64>(1)? != 0,
                })
            })
            .optional()?)
    }

    fn nonce_count(&self) -> DbResult<i64> {
        Ok(self
            .prepare_cached("SELECT COUNT(*) FROM nonces")?
            .query_row([], |r| r.get(0))?)
    }

    fn purge_nonces(&self, before: i64) -> DbResult<usize> {
        Ok(self
            .prepare_cached("DELETE FROM nonces WHERE ts < ?1")?
            .execute(params![before])?)
    }

    fn chats_owned_by(&self, key: &[u8]) -> DbResult<i64> {
        Ok(self
            .prepare_cached(sql::OWNED)?
            .query_row(params![key], |r| r.get(0))?)
    }

    fn create_chat(
        &self,
        chat: i64,
        owner: &[u8],
        name: &[u8],
        desc: &[u8],
        avatar: Option<&[u8]>,
        now: i64,
    ) -> DbResult<()> {
        self.prepare_cached("INSERT INTO chats (id, owner, created_at) VALUES (?1, ?2, ?3)")?
            .execute(params![chat, owner, now])?;
        self.prepare_cached(
            "INSERT INTO chat_settings (chat_id, name, description, avatar)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![chat, text_value(name), text_value(desc), avatar])?;
        self.prepare_cached(
            "INSERT INTO members (chat_id, pubkey, text_rank, perms_flags, accepted_at)
             VALUES (?1, ?2, '', ?3, ?4)",
        )?
        .execute(params![
            chat,
            owner,
            i64::from(mediator_wire::codes::perms::CREATOR),
            now
        ])?;
        Ok(())
    }

    fn delete_chat(&self, chat: i64) -> DbResult<()> {
        for sql in [
            "DELETE FROM chats WHERE id = ?1",
            "DELETE FROM members WHERE chat_id = ?1",
            "DELETE FROM chat_settings WHERE chat_id = ?1",
            "DELETE FROM invites WHERE chat_id = ?1",
        ] {
            self.prepare_cached(sql)?.execute(params![chat])?;
        }
        Ok(())
    }

    fn settings(&self, chat: i64) -> DbResult<Option<Settings>> {
        Ok(self
            .prepare_cached(
                "SELECT s.name, s.description, s.avatar, c.created_at
                 FROM chats c JOIN chat_settings s ON s.chat_id = c.id WHERE c.id = ?1",
            )?
            .query_row(params![chat], |r| {
                Ok(Settings {
                    name: text_bytes(r, 0)?,
                    desc: text_bytes(r, 1)?,
                    avatar: r.get(2)?,
                    created_at: r.get(3)?,
                })
            })
            .optional()?)
    }

    fn update_settings(
        &self,
        chat: i64,
        name: Option<&[u8]>,
        desc: Option<&[u8]>,
        avatar: Option<&[u8]>,
    ) -> DbResult<()> {
        if let Some(n) = name {
            self.prepare_cached("UPDATE chat_settings SET name = ?2 WHERE chat_id = ?1")?
                .execute(params![chat, text_value(n)])?;
        }
        if let Some(d) = desc {
            self.prepare_cached("UPDATE chat_settings SET description = ?2 WHERE chat_id = ?1")?
                .execute(params![chat, text_value(d)])?;
        }
        if let Some(a) = avatar {
            self.prepare_cached("UPDATE chat_settings SET avatar = ?2 WHERE chat_id = ?1")?
                .execute(params![chat, a])?;
        }
        Ok(())
    }

    fn message_by_guid(&self, chat: i64, guid: i64) -> DbResult<Option<Stored>> {
        Ok(self
            .prepare_cached(sql::BY_GUID)?
            .query_row(params![chat, guid], |r| {
                Ok(Stored {
                    id: r.get(0)?,
                    ts: r.get(1)?,
                    author: r.get(2)?,
                    body: r.get(3)?,
                })
            })
            .optional()?)
    }

    fn append_message(
        &self,
        chat: i64,
        guid: i64,
        author: &[u8],
        body: &[u8],
        now: i64,
    ) -> DbResult<i64> {
        self.prepare_cached(sql::NEXT_ID)?
            .execute(params![chat, body.len() as i64])?;
        let id: i64 = self
            .prepare_cached(sql::COUNTER)?
            .query_row(params![chat], |r| r.get(0))?;
        self.prepare_cached(sql::INSERT_MESSAGE)?
            .execute(params![chat, id, guid, now, author, body])?;
        Ok(id)
    }

    fn last_message_id(&self, chat: i64) -> DbResult<i64> {
        Ok(self
            .prepare_cached(sql::LAST_ID)?
            .query_row(params![chat], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    fn messages_since_size(
        &self,
        chat: i64,
        since: i64,
        limit: u32,
        max_bytes: usize,
    ) -> DbResult<(u32, usize)> {
        let mut st = self.prepare_cached(sql::PAGE_SIZES)?;
        let mut rows = st.query(params![chat, since, limit])?;
        let mut page = PageBudget::new(max_bytes, true);
        while let Some(r) = rows.next()? {
            if !page.take(r.get::<_, i64>(0)? as usize) {
                break;
            }
        }
        Ok((page.count, page.bytes))
    }

    fn each_message_since(
        &self,
        chat: i64,
        since: i64,
        limit: u32,
        max_bytes: usize,
        at_least_one: bool,
        visit: &mut dyn FnMut(MessageView<'_>),
    ) -> DbResult<(u32, bool)> {
        let mut st = self.prepare_cached(sql::PAGE)?;
        let mut page = PageBudget::new(max_bytes, at_least_one);
        let mut rows = st.query(params![chat, since, limit, page.load_limit()])?;
        while let Some(r) = rows.next()? {
            if !page.take(r.get::<_, i64>(4)? as usize) {
                return Ok((page.count, true));
            }
            visit(MessageView {
                id: r.get(0)?,
                guid: r.get(1)?,
                ts: r.get(2)?,
                author: blob(r, 3)?,
                body: blob(r, 5)?,
            });
        }
        Ok((page.count, false))
    }

    fn message_author(&self, chat: i64, guid: i64) -> DbResult<Option<Vec<u8>>> {
        Ok(self
            .prepare_cached(sql::AUTHOR_BY_GUID)?
            .query_row(params![chat, guid], |r| r.get(0))
            .optional()?)
    }

    fn message_guid(&self, chat: i64, id: i64) -> DbResult<Option<i64>> {
        Ok(self
            .prepare_cached("SELECT guid FROM messages WHERE chat_id = ?1 AND id = ?2")?
            .query_row(params![chat, id], |r| r.get(0))
            .optional()?)
    }

    fn delete_message(&self, chat: i64, guid: i64) -> DbResult<usize> {
        Ok(self
            .prepare_cached(sql::DELETE_BY_GUID)?
            .execute(params![chat, guid])?)
    }

    fn add_member(&self, chat: i64, key: &[u8], now: i64, changed_at: i64) -> DbResult<()> {
        self.prepare_cached(
            "INSERT INTO members (chat_id, pubkey, text_rank, perms_flags, accepted_at, changed_at)
             VALUES (?1, ?2, '', ?3, ?4, ?5)",
        )?
        .execute(params![
            chat,
            key,
            i64::from(mediator_wire::codes::perms::USER),
            now,
            changed_at
        ])?;
        Ok(())
    }

    fn set_perms(&self, chat: i64, key: &[u8], perms: u8, now: i64) -> DbResult<()> {
        self.prepare_cached(
            "UPDATE members SET perms_flags = ?3, banned = ?4, changed_at = ?5
             WHERE chat_id = ?1 AND pubkey = ?2",
        )?
        .execute(params![
            chat,
            key,
            i64::from(perms),
            i64::from(perms & mediator_wire::codes::perms::BANNED),
            now
        ])?;
        Ok(())
    }

    fn record_ban(&self, chat: i64, key: &[u8], rank: u8) -> DbResult<()> {
        self.prepare_cached("UPDATE members SET ban_rank = ?3 WHERE chat_id = ?1 AND pubkey = ?2")?
            .execute(params![chat, key, rank])?;
        Ok(())
    }

    fn ban_rank(&self, chat: i64, key: &[u8]) -> DbResult<u8> {
        Ok(self
            .prepare_cached("SELECT ban_rank FROM members WHERE chat_id = ?1 AND pubkey = ?2")?
            .query_row(params![chat, key], |r| r.get::<_, Option<u8>>(0))
            .optional()?
            .flatten()
            .unwrap_or(0))
    }

    fn clear_ban(&self, chat: i64, key: &[u8]) -> DbResult<()> {
        self.prepare_cached(
            "UPDATE members SET ban_rank = NULL WHERE chat_id = ?1 AND pubkey = ?2",
        )?
        .execute(params![chat, key])?;
        Ok(())
    }

    fn remove_member(&self, chat: i64, key: &[u8]) -> DbResult<()> {
        self.prepare_cached("DELETE FROM members WHERE chat_id = ?1 AND pubkey = ?2")?
            .execute(params![chat, key])?;
        Ok(())
    }

    fn set_member_info(&self, chat: i64, key: &[u8], info: &[u8], changed_at: i64) -> DbResult<()> {
        self.prepare_cached(
            "UPDATE members SET info = ?3, changed_at = ?4 WHERE chat_id = ?1 AND pubkey = ?2",
        )?
        .execute(params![chat, key, info, changed_at])?;
        Ok(())
    }

    fn changed_at(&self, chat: i64, key: &[u8]) -> DbResult<i64> {
        Ok(self
            .prepare_cached("SELECT changed_at FROM members WHERE chat_id = ?1 AND pubkey = ?2")?
            .query_row(params![chat, key], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    fn set_last_seen(&self, chat: i64, key: &[u8], now: i64) -> DbResult<()> {
        self.prepare_cached(
            "UPDATE members SET last_seen = ?3 WHERE chat_id = ?1 AND pubkey = ?2",
        )?
        .execute(params![chat, key, now])?;
        Ok(())
    }

    fn members(&self, chat: i64, include_banned: bool) -> DbResult<Vec<MemberRow>> {
        let mut st = self.prepare_cached(
            "SELECT pubkey, perms_flags, banned, length(info), changed_at, last_seen, accepted_at
             FROM members WHERE chat_id = ?1 AND (?2 OR banned = 0) ORDER BY rowid",
        )?;
        let rows = st.query_map(params![chat, include_banned], |r| {
            Ok(MemberRow {
                pubkey: r.get(0)?,
                perms: (r.get::<_, i64>(1)? & 0xff) as u8,
                banned: r.get::<_, i64>(2)? != 0,
                info_len: r.get::<_, Option<i64>>(3)?.map(|n| n as usize),
                changed_at: r.get(4)?,
                last_seen: r.get(5)?,
                accepted_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn member_infos(&self, chat: i64, keys: &[&[u8]]) -> DbResult<HashMap<Vec<u8>, Vec<u8>>> {
        let mut st = self.prepare_cached(
            "SELECT info FROM members WHERE chat_id = ?1 AND pubkey = ?2 AND info IS NOT NULL",
        )?;
        let mut out = HashMap::with_capacity(keys.len());
        for k in keys {
            if let Some(info) = st.query_row(params![chat, k], |r| r.get(0)).optional()? {
                out.insert(k.to_vec(), info);
            }
        }
        Ok(out)
    }

    fn is_established(&self, key: &[u8]) -> DbResult<bool> {
        Ok(self
            .prepare_cached(sql::ESTABLISHED)?
            .exists(params![key])?
            || self
                .prepare_cached("SELECT 1 FROM invites WHERE to_pubkey = ?1 LIMIT 1")?
                .exists(params![key])?)
    }

    fn user_chats(&self, key: &[u8]) -> DbResult<Vec<i64>> {
        Ok(self
            .prepare_cached(sql::USER_CHATS)?
            .query_map(params![key], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    fn pending_invite(&self, to: &[u8], chat: i64) -> DbResult<Option<(i64, i64)>> {
        Ok(self
            .prepare_cached(
                "SELECT id, timestamp FROM invites WHERE to_pubkey = ?1 AND chat_id = ?2",
            )?
            .query_row(params![to, chat], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    fn refresh_invite(&self, id: i64, from: &[u8], data: &[u8], now: i64) -> DbResult<()> {
        self.prepare_cached(
            "UPDATE invites SET timestamp = ?2, from_pubkey = ?3, encrypted_data = ?4, sent = 0
             WHERE id = ?1",
        )?
        .execute(params![id, now, from, data])?;
        Ok(())
    }

    fn pending_invites_for(&self, to: &[u8]) -> DbResult<i64> {
        Ok(self
            .prepare_cached("SELECT COUNT(*) FROM invites WHERE to_pubkey = ?1")?
            .query_row(params![to], |r| r.get(0))?)
    }

    fn insert_invite(
        &self,
        from: &[u8],
        to: &[u8],
        chat: i64,
        data: &[u8],
        now: i64,
    ) -> DbResult<i64> {
        self.prepare_cached(
            "INSERT INTO invites (timestamp, from_pubkey, to_pubkey, chat_id, encrypted_data, sent)
             VALUES (?1, ?2, ?3, ?4, ?5, 0)",
        )?
        .execute(params![now, from, to, chat, data])?;
        Ok(self.last_insert_rowid())
    }

    fn invite(&self, id: i64) -> DbResult<Option<InviteRow>> {
        Ok(self
            .prepare_cached(&format!(
                "SELECT {INVITE_COLUMNS} FROM invites WHERE id = ?1"
            ))?
            .query_row(params![id], invite_from_row)
            .optional()?)
    }

    fn invites_for(
        &self,
        to: &[u8],
        min_ts: i64,
        max_bytes: usize,
    ) -> DbResult<Vec<(InviteRow, Settings)>> {
        let mut st = self.prepare_cached(&format!(
            "SELECT {INVITE_COLUMNS} FROM invites WHERE to_pubkey = ?1 AND timestamp >= ?2
             ORDER BY sent, id DESC"
        ))?;
        let mut rows = st.query(params![to, min_ts])?;
        let (mut out, mut taken) = (Vec::new(), 0usize);
        while let Some(r) = rows.next()? {
            let inv = invite_from_row(r)?;
            let Some(s) = self.settings(inv.chat_id)? else {
                continue;
            };
            if !take_invite(&mut taken, out.is_empty(), &inv, &s, max_bytes) {
                break;
            }
            out.push((inv, s));
        }
        Ok(out)
    }

    fn mark_invite_sent(&self, id: i64) -> DbResult<()> {
        self.prepare_cached("UPDATE invites SET sent = 1 WHERE id = ?1")?
            .execute(params![id])?;
        Ok(())
    }

    fn delete_invite(&self, id: i64) -> DbResult<()> {
        self.prepare_cached("DELETE FROM invites WHERE id = ?1")?
            .execute(params![id])?;
        Ok(())
    }

    fn purge_invites(&self, before: i64) -> DbResult<usize> {
        Ok(self
            .prepare_cached("DELETE FROM invites WHERE timestamp < ?1")?
            .execute(params![before])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::queries::Protocol;

    /// Each hot statement's plan: a search on the index meant for it, never a scan of a
    /// chat's range where a key lookup was meant, never a sort.
    #[test]
    fn hot_statements_use_their_indexes() {
        let c = Connection::open_in_memory().unwrap();
        crate::store::schema::create(&c).unwrap();
        for (stmt, wanted) in [
            (
                sql::MEMBER,
                "members USING INDEX sqlite_autoindex_members_1 (chat_id=? AND pubkey=?)",
            ),
            (
                sql::BY_GUID,
                "messages USING INDEX messages_guid (chat_id=? AND guid=?)",
            ),
            (
                sql::AUTHOR_BY_GUID,
                "messages USING INDEX messages_guid (chat_id=? AND guid=?)",
            ),
            (sql::NEXT_ID, "chats USING INTEGER PRIMARY KEY (rowid=?)"),
            (sql::COUNTER, "chats USING INTEGER PRIMARY KEY (rowid=?)"),
            (
                sql::LAST_ID,
                "messages USING COVERING INDEX messages_id (chat_id=?)",
            ),
            (
                sql::PAGE,
                "messages USING INDEX messages_id (chat_id=? AND id>?)",
            ),
            (
                sql::PAGE_SIZES,
                "messages USING INDEX messages_id (chat_id=? AND id>?)",
            ),
            (
                sql::DELETE_BY_GUID,
                // Covering: with the counting trigger on delete, the rows are collected first.
                "messages USING COVERING INDEX messages_guid (chat_id=? AND guid=?)",
            ),
            (
                sql::USER_CHATS,
                "members USING COVERING INDEX members_by_key (pubkey=? AND banned=?)",
            ),
            (
                sql::ESTABLISHED,
                "members USING COVERING INDEX members_by_key (pubkey=? AND banned=?)",
            ),
            (
                sql::OWNED,
                "chats USING COVERING INDEX chats_owner (owner=?)",
            ),
        ] {
            let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {stmt}")).unwrap();
            let args = vec![1i64; st.parameter_count()];
            let plan: Vec<String> = st
                .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let plan = plan.join("; ");
            assert!(
                plan.contains(&format!("SEARCH {wanted}")),
                "{stmt}\n  plan: {plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{stmt}: sorts: {plan}");
        }
    }

    /// The guid lookup and GET_LAST_MESSAGE_ID cost the same in a chat of 10 messages and
    /// of 2,000 (a scan of the chat's range would take steps in proportion).
    #[test]
    fn lookups_do_not_grow_with_the_chat() {
        let c = Connection::open_in_memory().unwrap();
        crate::store::schema::create(&c).unwrap();
        c.create_chat(7, &[1; 32], b"c", b"c", None, 1).unwrap();
        let steps = |c: &Connection, stmt: &str, args: &[i64]| {
            let mut st = c.prepare(stmt).unwrap();
            let mut rows = st.query(rusqlite::params_from_iter(args)).unwrap();
            while rows.next().unwrap().is_some() {}
            drop(rows);
            st.get_status(rusqlite::StatementStatus::VmStep)
        };
        for g in 0..10 {
            c.insert_message(7, g, &[1; 32], b"x", 1).unwrap();
        }
        let few = (
            steps(&c, sql::LAST_ID, &[7]),
            steps(&c, sql::BY_GUID, &[7, 1_000_000]),
        );
        for g in 10..2000 {
            c.insert_message(7, g, &[1; 32], b"x", 1).unwrap();
        }
        let many = (
            steps(&c, sql::LAST_ID, &[7]),
            steps(&c, sql::BY_GUID, &[7, 1_000_000]),
        );
        assert_eq!(few, many);
        assert_eq!(c.last_message_id(7).unwrap(), 2000);
    }

    /// Page limits of `each_message_since`: the count, the byte budget (with or without the
    /// one-message minimum), bodiless rows skipped, ids never reused after a deletion.
    #[test]
    fn message_pages_and_ids() {
        let c = Connection::open_in_memory().unwrap();
        crate::store::schema::create(&c).unwrap();
        c.create_chat(7, &[1; 32], b"c", b"c", None, 1).unwrap();
        for (guid, size) in [(1, 10), (2, 5000), (3, 10), (4, 10)] {
            let ins = c
                .insert_message(7, guid, &[1; 32], &vec![0; size], 1)
                .unwrap();
            assert_eq!((ins.id, ins.duplicate), (guid, false));
        }
        let again = c.insert_message(7, 3, &[1; 32], &[0; 10], 2).unwrap();
        assert_eq!((again.id, again.duplicate), (3, true));
        c.execute("UPDATE messages SET body = NULL WHERE id = 3", [])
            .unwrap();
        let page = |since, limit, max, one| {
            let mut ids = Vec::new();
            let (n, cut) = c
                .each_message_since(7, since, limit, max, one, &mut |m| ids.push(m.id))
                .unwrap();
            assert_eq!(n as usize, ids.len());
            (ids, cut)
        };
        assert_eq!(page(0, 10, 1 << 20, false), (vec![1, 2, 4], false));
        assert_eq!(page(0, 2, 1 << 20, false), (vec![1, 2], false));
        assert_eq!(page(0, 10, 1000, false), (vec![1], true));
        assert_eq!(page(1, 10, 1000, false), (vec![], true));
        assert_eq!(page(1, 10, 1000, true), (vec![2], true));
        assert_eq!(page(4, 10, 1000, true), (vec![], false));
        assert_eq!(c.delete_message(7, 4).unwrap(), 1);
        assert_eq!(c.last_message_id(7).unwrap(), 3);
        let next = c.insert_message(7, 9, &[1; 32], b"x", 3).unwrap();
        assert_eq!(next.id, 5, "an id is never given twice");
    }
}
