//! The protocol's operations ([`Protocol`]) on PostgreSQL, over the tables of
//! [`super::schema`].
//!
//! The statements are those of the SQLite backend in PostgreSQL's dialect, with fewer round
//! trips where PostgreSQL allows it: a message takes its chat's next id and is inserted in one
//! statement (an `UPDATE … RETURNING` feeding the `INSERT`), member infos come in one query
//! over an array of keys, and pending invites arrive with their chats' settings in one join.
//! Lengths are `octet_length(…)::bigint` (PostgreSQL's `length` of `BYTEA` is a 32-bit
//! integer) and every integer column is `BIGINT`, bound as `i64`.

use super::conn::Pg;
use crate::store::queries::{
    take_invite, DbResult, Inserted, InviteRow, Member, MemberRow, MessageView, NewMessage,
    PageBudget, Protocol, Settings, Stored, GUID_ATTEMPTS,
};
use crate::store::{Reject, StoreError};
use mediator_wire::codes::perms;
use mediator_wire::WireError;
use std::collections::HashMap;

/// Takes the chat's next id, counts the message and its body bytes, and stores it.
const APPEND: &str = "WITH next AS (
        UPDATE chats SET last_message_id = last_message_id + 1,
            message_count = message_count + 1, message_bytes = message_bytes + $5
        WHERE id = $1 RETURNING last_message_id)
    INSERT INTO messages (chat_id, id, guid, ts, author, body)
    SELECT $1, last_message_id, $2, $3, $4, $6 FROM next RETURNING id";

/// A page of messages; a body longer than $4 bytes is not sent (NULL), only its length.
const PAGE: &str = "SELECT id, guid, ts, author, octet_length(body)::bigint,
        CASE WHEN octet_length(body)::bigint <= $4 THEN body END FROM messages
    WHERE chat_id = $1 AND id > $2 AND body IS NOT NULL ORDER BY id LIMIT $3";

const INVITE_COLUMNS: &str = "i.id, i.timestamp, i.from_pubkey, i.to_pubkey, i.chat_id,
    i.encrypted_data";

fn invite_from_row(r: &postgres::Row) -> InviteRow {
    InviteRow {
        id: r.get(0),
        timestamp: r.get(1),
        from: r.get(2),
        to: r.get(3),
        chat_id: r.get(4),
        data: r.get(5),
    }
}

/// Stores a run of messages in one round trip, in order.
const SEND_MESSAGES: &str = "SELECT out_n, out_status, out_id, out_guid, out_ts, out_duplicate
    FROM mediatord_send_messages($1, $2, $3, $4, $5, $6, $7)";

/// `mediatord_send_messages`'s status of a stored message (or a retry of a stored one).
const SENT: i32 = 0;
/// Its status for an author who is not a member, or is banned.
const NOT_A_MEMBER: i32 = 1;
/// Its status for a read-only member.
const READ_ONLY: i32 = 2;
/// Its status when the guid collided [`GUID_ATTEMPTS`] times.
const COLLIDED: i32 = 3;

impl Pg {
    /// [`Protocol::send_message`] for each of `msgs`, in order, at `now`, in one round trip
    /// (see [`super::schema::FUNCTIONS`]): one outcome per message. `Err` when the statement
    /// failed, and then nothing of it is left but a failed transaction.
    pub fn send_messages(
        &self,
        msgs: &[&NewMessage],
        now: i64,
    ) -> DbResult<Vec<Result<Inserted, Reject>>> {
        let chats: Vec<i64> = msgs.iter().map(|m| m.chat).collect();
        let guids: Vec<i64> = msgs.iter().map(|m| m.guid).collect();
        let authors: Vec<&[u8]> = msgs.iter().map(|m| &m.author[..]).collect();
        let bodies: Vec<&[u8]> = msgs.iter().map(|m| &m.body[..]).collect();
        let read_only = i64::from(perms::READ_ONLY);
        let rows = self.rows(
            SEND_MESSAGES,
            &[
                &chats,
                &guids,
                &authors,
                &bodies,
                &now,
                &GUID_ATTEMPTS,
                &read_only,
            ],
        )?;
        let numbered = rows
            .iter()
            .enumerate()
            .all(|(i, r)| r.get::<_, i32>(0) as usize == i + 1);
        if rows.len() != msgs.len() || !numbered {
            return Err(StoreError::Postgres(format!(
                "mediatord_send_messages answered {} rows for {} messages",
                rows.len(),
                msgs.len()
            )));
        }
        rows.iter()
            .map(|r| {
                Ok(match r.get::<_, i32>(1) {
                    SENT => Ok(Inserted {
                        id: r.get(2),
                        guid: r.get(3),
                        ts: r.get(4),
                        duplicate: r.get(5),
                    }),
                    NOT_A_MEMBER => Err(Reject::Wire(WireError::NotAMemberOrBanned)),
                    READ_ONLY => Err(Reject::Wire(WireError::ReadOnlyUser)),
                    COLLIDED => Err(Reject::Wire(WireError::GuidCollisions)),
                    other => {
                        return Err(StoreError::Postgres(format!(
                            "mediatord_send_messages answered status {other}"
                        )))
                    }
                })
            })
            .collect()
    }
}

impl Protocol for Pg {
    fn chat_exists(&self, chat: i64) -> DbResult<bool> {
        Ok(self
            .opt("SELECT 1 FROM chats WHERE id = $1", &[&chat])?
            .is_some())
    }

    fn chat_id_taken(&self, chat: i64) -> DbResult<bool> {
        Ok(self
            .one(
                "SELECT EXISTS (SELECT 1 FROM chats WHERE id = $1)
                     OR EXISTS (SELECT 1 FROM messages WHERE chat_id = $1)",
                &[&chat],
            )?
            .get(0))
    }

    fn chat_owner(&self, chat: i64) -> DbResult<Option<Vec<u8>>> {
        Ok(self
            .opt("SELECT owner FROM chats WHERE id = $1", &[&chat])?
            .map(|r| r.get(0)))
    }

    fn member(&self, chat: i64, key: &[u8]) -> DbResult<Option<Member>> {
        Ok(self
            .opt(
                "SELECT perms_flags, banned FROM members WHERE chat_id = $1 AND pubkey = $2",
                &[&chat, &key],
            )?
            .map(|r| Member {
                perms: (r.get::<_, i64>(0) & 0xff) as u8,
                banned: r.get::<_, i64>(1) != 0,
            }))
    }

    fn nonce_count(&self) -> DbResult<i64> {
        Ok(self.one("SELECT COUNT(*) FROM nonces", &[])?.get(0))
    }

    fn purge_nonces(&self, before: i64) -> DbResult<usize> {
        self.exec("DELETE FROM nonces WHERE ts < $1", &[&before])
    }

    fn chats_owned_by(&self, key: &[u8]) -> DbResult<i64> {
        Ok(self
            .one("SELECT COUNT(*) FROM chats WHERE owner = $1", &[&key])?
            .get(0))
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
        self.exec(
            "INSERT INTO chats (id, owner, created_at) VALUES ($1, $2, $3)",
            &[&chat, &owner, &now],
        )?;
        self.exec(
            "INSERT INTO chat_settings (chat_id, name, description, avatar)
             VALUES ($1, $2, $3, $4)",
            &[&chat, &name, &desc, &avatar],
        )?;
        self.exec(
            "INSERT INTO members (chat_id, pubkey, text_rank, perms_flags, accepted_at)
             VALUES ($1, $2, '', $3, $4)",
            &[&chat, &owner, &i64::from(perms::CREATOR), &now],
        )?;
        Ok(())
    }

    fn delete_chat(&self, chat: i64) -> DbResult<()> {
        for sql in [
            "DELETE FROM chats WHERE id = $1",
            "DELETE FROM members WHERE chat_id = $1",
            "DELETE FROM chat_settings WHERE chat_id = $1",
            "DELETE FROM invites WHERE chat_id = $1",
        ] {
            self.exec(sql, &[&chat])?;
        }
        Ok(())
    }

    fn settings(&self, chat: i64) -> DbResult<Option<Settings>> {
        Ok(self
            .opt(
                "SELECT s.name, s.description, s.avatar, c.created_at
                 FROM chats c JOIN chat_settings s ON s.chat_id = c.id WHERE c.id = $1",
                &[&chat],
            )?
            .map(|r| Settings {
                name: r.get(0),
                desc: r.get(1),
                avatar: r.get(2),
                created_at: r.get(3),
            }))
    }

    fn update_settings(
        &self,
        chat: i64,
        name: Option<&[u8]>,
        desc: Option<&[u8]>,
        avatar: Option<&[u8]>,
    ) -> DbResult<()> {
        if let Some(n) = name {
            self.exec(
                "UPDATE chat_settings SET name = $2 WHERE chat_id = $1",
                &[&chat, &n],
            )?;
        }
        if let Some(d) = desc {
            self.exec(
                "UPDATE chat_settings SET description = $2 WHERE chat_id = $1",
                &[&chat, &d],
            )?;
        }
        if let Some(a) = avatar {
            self.exec(
                "UPDATE chat_settings SET avatar = $2 WHERE chat_id = $1",
                &[&chat, &a],
            )?;
        }
        Ok(())
    }

    fn message_by_guid(&self, chat: i64, guid: i64) -> DbResult<Option<Stored>> {
        Ok(self
            .opt(
                "SELECT id, ts, author, body FROM messages WHERE chat_id = $1 AND guid = $2
                 LIMIT 1",
                &[&chat, &guid],
            )?
            .map(|r| Stored {
                id: r.get(0),
                ts: r.get(1),
                author: r.get(2),
                body: r.get(3),
            }))
    }

    fn append_message(
        &self,
        chat: i64,
        guid: i64,
        author: &[u8],
        body: &[u8],
        now: i64,
    ) -> DbResult<i64> {
        let len = body.len() as i64;
        Ok(self
            .one(APPEND, &[&chat, &guid, &now, &author, &len, &body])?
            .get(0))
    }

    /// The guid rule in one round trip: the server-side function of [`super::schema::FUNCTIONS`]
    /// does what the provided method does statement by statement.
    fn insert_message(
        &self,
        chat: i64,
        guid: i64,
        author: &[u8],
        body: &[u8],
        now: i64,
    ) -> Result<Inserted, Reject> {
        let row = self.opt(
            "SELECT out_id, out_guid, out_ts, out_duplicate
             FROM mediatord_insert_message($1, $2, $3, $4, $5, $6)",
            &[&chat, &guid, &author, &body, &now, &GUID_ATTEMPTS],
        )?;
        match row {
            Some(r) => Ok(Inserted {
                id: r.get(0),
                guid: r.get(1),
                ts: r.get(2),
                duplicate: r.get(3),
            }),
            None => Err(Reject::Wire(WireError::GuidCollisions)),
        }
    }

    fn last_message_id(&self, chat: i64) -> DbResult<i64> {
        Ok(self
            .opt(
                "SELECT id FROM messages WHERE chat_id = $1 ORDER BY id DESC LIMIT 1",
                &[&chat],
            )?
            .map_or(0, |r| r.get(0)))
    }

    fn messages_since_size(
        &self,
        chat: i64,
        since: i64,
        limit: u32,
        max_bytes: usize,
    ) -> DbResult<(u32, usize)> {
        let rows = self.rows(
            "SELECT octet_length(body)::bigint FROM messages
             WHERE chat_id = $1 AND id > $2 AND body IS NOT NULL ORDER BY id LIMIT $3",
            &[&chat, &since, &i64::from(limit)],
        )?;
        let mut page = PageBudget::new(max_bytes, true);
        for r in &rows {
            if !page.take(r.get::<_, i64>(0) as usize) {
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
        let mut page = PageBudget::new(max_bytes, at_least_one);
        let rows = self.rows(
            PAGE,
            &[&chat, &since, &i64::from(limit), &page.load_limit()],
        )?;
        for r in &rows {
            if !page.take(r.get::<_, i64>(4) as usize) {
                return Ok((page.count, true));
            }
            visit(MessageView {
                id: r.get(0),
                guid: r.get(1),
                ts: r.get(2),
                author: r.get(3),
                body: r.get(5),
            });
        }
        Ok((page.count, false))
    }

    fn message_author(&self, chat: i64, guid: i64) -> DbResult<Option<Vec<u8>>> {
        Ok(self
            .opt(
                "SELECT author FROM messages WHERE chat_id = $1 AND guid = $2 LIMIT 1",
                &[&chat, &guid],
            )?
            .map(|r| r.get(0)))
    }

    fn message_guid(&self, chat: i64, id: i64) -> DbResult<Option<i64>> {
        Ok(self
            .opt(
                "SELECT guid FROM messages WHERE chat_id = $1 AND id = $2",
                &[&chat, &id],
            )?
            .map(|r| r.get(0)))
    }

    fn delete_message(&self, chat: i64, guid: i64) -> DbResult<usize> {
        self.exec(
            "DELETE FROM messages WHERE chat_id = $1 AND guid = $2",
            &[&chat, &guid],
        )
    }

    fn add_member(&self, chat: i64, key: &[u8], now: i64, changed_at: i64) -> DbResult<()> {
        self.exec(
            "INSERT INTO members (chat_id, pubkey, text_rank, perms_flags, accepted_at, changed_at)
             VALUES ($1, $2, '', $3, $4, $5)",
            &[&chat, &key, &i64::from(perms::USER), &now, &changed_at],
        )?;
        Ok(())
    }

    fn set_perms(&self, chat: i64, key: &[u8], p: u8, now: i64) -> DbResult<()> {
        self.exec(
            "UPDATE members SET perms_flags = $3, banned = $4, changed_at = $5
             WHERE chat_id = $1 AND pubkey = $2",
            &[
                &chat,
                &key,
                &i64::from(p),
                &i64::from(p & perms::BANNED),
                &now,
            ],
        )?;
        Ok(())
    }

    fn record_ban(&self, chat: i64, key: &[u8], rank: u8) -> DbResult<()> {
        self.exec(
            "UPDATE members SET ban_rank = $3 WHERE chat_id = $1 AND pubkey = $2",
            &[&chat, &key, &i64::from(rank)],
        )?;
        Ok(())
    }

    fn ban_rank(&self, chat: i64, key: &[u8]) -> DbResult<u8> {
        Ok(self
            .opt(
                "SELECT ban_rank FROM members WHERE chat_id = $1 AND pubkey = $2",
                &[&chat, &key],
            )?
            .and_then(|r| r.get::<_, Option<i64>>(0))
            .map_or(0, |r| u8::try_from(r).unwrap_or(u8::MAX)))
    }

    fn clear_ban(&self, chat: i64, key: &[u8]) -> DbResult<()> {
        self.exec(
            "UPDATE members SET ban_rank = NULL WHERE chat_id = $1 AND pubkey = $2",
            &[&chat, &key],
        )?;
        Ok(())
    }

    fn remove_member(&self, chat: i64, key: &[u8]) -> DbResult<()> {
        self.exec(
            "DELETE FROM members WHERE chat_id = $1 AND pubkey = $2",
            &[&chat, &key],
        )?;
        Ok(())
    }

    fn set_member_info(&self, chat: i64, key: &[u8], info: &[u8], changed_at: i64) -> DbResult<()> {
        self.exec(
            "UPDATE members SET info = $3, changed_at = $4 WHERE chat_id = $1 AND pubkey = $2",
            &[&chat, &key, &info, &changed_at],
        )?;
        Ok(())
    }

    fn changed_at(&self, chat: i64, key: &[u8]) -> DbResult<i64> {
        Ok(self
            .opt(
                "SELECT changed_at FROM members WHERE chat_id = $1 AND pubkey = $2",
                &[&chat, &key],
            )?
            .map_or(0, |r| r.get(0)))
    }

    fn set_last_seen(&self, chat: i64, key: &[u8], now: i64) -> DbResult<()> {
        self.exec(
            "UPDATE members SET last_seen = $3 WHERE chat_id = $1 AND pubkey = $2",
            &[&chat, &key, &now],
        )?;
        Ok(())
    }

    fn members(&self, chat: i64, include_banned: bool) -> DbResult<Vec<MemberRow>> {
        let rows = self.rows(
            "SELECT pubkey, perms_flags, banned, octet_length(info)::bigint, changed_at,
                 last_seen, accepted_at
             FROM members WHERE chat_id = $1 AND ($2 OR banned = 0) ORDER BY seq",
            &[&chat, &include_banned],
        )?;
        Ok(rows
            .iter()
            .map(|r| MemberRow {
                pubkey: r.get(0),
                perms: (r.get::<_, i64>(1) & 0xff) as u8,
                banned: r.get::<_, i64>(2) != 0,
                info_len: r.get::<_, Option<i64>>(3).map(|n| n as usize),
                changed_at: r.get(4),
                last_seen: r.get(5),
                accepted_at: r.get(6),
            })
            .collect())
    }

    fn member_infos(&self, chat: i64, keys: &[&[u8]]) -> DbResult<HashMap<Vec<u8>, Vec<u8>>> {
        let rows = self.rows(
            "SELECT pubkey, info FROM members
             WHERE chat_id = $1 AND pubkey = ANY($2) AND info IS NOT NULL",
            &[&chat, &keys],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn is_established(&self, key: &[u8]) -> DbResult<bool> {
        Ok(self
            .one(
                "SELECT EXISTS (SELECT 1 FROM members WHERE pubkey = $1 AND banned = 0)
                     OR EXISTS (SELECT 1 FROM invites WHERE to_pubkey = $1)",
                &[&key],
            )?
            .get(0))
    }

    fn user_chats(&self, key: &[u8]) -> DbResult<Vec<i64>> {
        Ok(self
            .rows(
                "SELECT chat_id FROM members WHERE pubkey = $1 AND banned = 0 ORDER BY chat_id",
                &[&key],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    fn pending_invite(&self, to: &[u8], chat: i64) -> DbResult<Option<(i64, i64)>> {
        Ok(self
            .opt(
                "SELECT id, timestamp FROM invites WHERE to_pubkey = $1 AND chat_id = $2",
                &[&to, &chat],
            )?
            .map(|r| (r.get(0), r.get(1))))
    }

    fn refresh_invite(&self, id: i64, from: &[u8], data: &[u8], now: i64) -> DbResult<()> {
        self.exec(
            "UPDATE invites SET timestamp = $2, from_pubkey = $3, encrypted_data = $4, sent = 0
             WHERE id = $1",
            &[&id, &now, &from, &data],
        )?;
        Ok(())
    }

    fn pending_invites_for(&self, to: &[u8]) -> DbResult<i64> {
        Ok(self
            .one("SELECT COUNT(*) FROM invites WHERE to_pubkey = $1", &[&to])?
            .get(0))
    }

    fn insert_invite(
        &self,
        from: &[u8],
        to: &[u8],
        chat: i64,
        data: &[u8],
        now: i64,
    ) -> DbResult<i64> {
        Ok(self
            .one(
                "INSERT INTO invites (timestamp, from_pubkey, to_pubkey, chat_id, encrypted_data,
                     sent)
                 VALUES ($1, $2, $3, $4, $5, 0) RETURNING id",
                &[&now, &from, &to, &chat, &data],
            )?
            .get(0))
    }

    fn invite(&self, id: i64) -> DbResult<Option<InviteRow>> {
        Ok(self
            .opt(
                &format!("SELECT {INVITE_COLUMNS} FROM invites i WHERE i.id = $1"),
                &[&id],
            )?
            .map(|r| invite_from_row(&r)))
    }

    fn invites_for(
        &self,
        to: &[u8],
        min_ts: i64,
        max_bytes: usize,
    ) -> DbResult<Vec<(InviteRow, Settings)>> {
        let rows = self.rows(
            &format!(
                "SELECT {INVITE_COLUMNS}, s.name, s.description, s.avatar, c.created_at
                 FROM invites i JOIN chats c ON c.id = i.chat_id
                     JOIN chat_settings s ON s.chat_id = i.chat_id
                 WHERE i.to_pubkey = $1 AND i.timestamp >= $2 ORDER BY i.sent, i.id DESC"
            ),
            &[&to, &min_ts],
        )?;
        let (mut out, mut taken) = (Vec::new(), 0usize);
        for r in &rows {
            let inv = invite_from_row(r);
            let s = Settings {
                name: r.get(6),
                desc: r.get(7),
                avatar: r.get(8),
                created_at: r.get(9),
            };
            if !take_invite(&mut taken, out.is_empty(), &inv, &s, max_bytes) {
                break;
            }
            out.push((inv, s));
        }
        Ok(out)
    }

    fn mark_invite_sent(&self, id: i64) -> DbResult<()> {
        self.exec("UPDATE invites SET sent = 1 WHERE id = $1", &[&id])?;
        Ok(())
    }

    fn delete_invite(&self, id: i64) -> DbResult<()> {
        self.exec("DELETE FROM invites WHERE id = $1", &[&id])?;
        Ok(())
    }

    fn purge_invites(&self, before: i64) -> DbResult<usize> {
        self.exec("DELETE FROM invites WHERE timestamp < $1", &[&before])
    }
}
