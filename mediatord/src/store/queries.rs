//! The SQL of every command, as plain functions over a connection.
//!
//! Handlers compose these inside one [`super::Store::write`] closure (one savepoint per
//! command) or one [`super::Store::read`] closure. Every statement is a fixed string over
//! the fixed tables of [`super::schema`] (cached per connection); a chat that does not exist
//! reads like a chat the caller is not a member of.

use super::Reject;
use mediator_wire::{PublicKey, WireError};
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

/// Attempts to place a message under its guid, bumping the guid by one on each collision
/// (§5.10), before giving up.
pub const GUID_ATTEMPTS: i64 = 10;

/// A member row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Low byte of `perms_flags`.
    pub perms: u8,
    pub banned: bool,
}

/// Chat settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub name: Vec<u8>,
    pub desc: Vec<u8>,
    pub avatar: Option<Vec<u8>>,
    pub created_at: i64,
}

/// An invite row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRow {
    pub id: i64,
    pub timestamp: i64,
    pub from: Vec<u8>,
    pub to: Vec<u8>,
    pub chat_id: i64,
    pub data: Vec<u8>,
}

pub fn chat_exists(conn: &Connection, chat: i64) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM chats WHERE id = ?1")?
        .exists(params![chat])
}

pub fn chat_owner(conn: &Connection, chat: i64) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT owner FROM chats WHERE id = ?1")?
        .query_row(params![chat], |r| r.get(0))
        .optional()
}

/// The caller's row in a chat, banned or not; `None` if no row or no such chat.
pub fn member(conn: &Connection, chat: i64, key: &[u8]) -> rusqlite::Result<Option<Member>> {
    conn.prepare_cached(sql::MEMBER)?
        .query_row(params![chat, key], |r| {
            Ok(Member {
                perms: (r.get::<_, i64>(0)? & 0xff) as u8,
                banned: r.get::<_, i64>(1)? != 0,
            })
        })
        .optional()
}

/// The member row if the caller is a member and not banned, else "not a member or banned".
pub fn require_member(conn: &Connection, chat: i64, key: &[u8]) -> Result<Member, Reject> {
    match member(conn, chat, key)? {
        Some(m) if !m.banned => Ok(m),
        _ => Err(Reject::Wire(WireError::NotAMemberOrBanned)),
    }
}

// ---- nonces ----

/// Stores a fresh nonce, keeping at most `per_key` per key: the oldest others are dropped,
/// never the one just stored.
pub fn put_nonce(
    conn: &Connection,
    key: &[u8],
    nonce: &[u8],
    now: i64,
    per_key: u32,
) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO nonces (pubkey, nonce, ts) VALUES (?1, ?2, ?3)")?
        .execute(params![key, nonce, now])?;
    let count: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM nonces WHERE pubkey = ?1")?
        .query_row(params![key], |r| r.get(0))?;
    let excess = count - i64::from(per_key);
    if excess > 0 {
        conn.prepare_cached(
            "DELETE FROM nonces WHERE pubkey = ?1 AND nonce IN
                (SELECT nonce FROM nonces WHERE pubkey = ?1 AND nonce != ?2 ORDER BY ts LIMIT ?3)",
        )?
        .execute(params![key, nonce, excess])?;
    }
    Ok(())
}

/// Number of stored nonces.
pub fn nonce_count(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT COUNT(*) FROM nonces")?
        .query_row([], |r| r.get(0))
}

/// Whether `nonce` is outstanding for `key` and not older than `min_ts`.
pub fn nonce_valid(
    conn: &Connection,
    key: &[u8],
    nonce: &[u8],
    min_ts: i64,
) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM nonces WHERE pubkey = ?1 AND nonce = ?2 AND ts >= ?3")?
        .exists(params![key, nonce, min_ts])
}

pub fn consume_nonce(conn: &Connection, key: &[u8], nonce: &[u8]) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM nonces WHERE pubkey = ?1 AND nonce = ?2")?
        .execute(params![key, nonce])?;
    Ok(())
}

/// Deletes nonces older than `before` (Unix seconds); returns how many.
pub fn purge_nonces(conn: &Connection, before: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM nonces WHERE ts < ?1")?
        .execute(params![before])
}

// ---- chats ----

pub fn chats_owned_by(conn: &Connection, key: &[u8]) -> rusqlite::Result<i64> {
    conn.prepare_cached(sql::OWNED)?
        .query_row(params![key], |r| r.get(0))
}

/// Creates a chat: its row, its settings and its owner's member row (perms 0x90).
pub fn create_chat(
    conn: &Connection,
    chat: i64,
    owner: &[u8],
    name: &rusqlite::types::Value,
    desc: &rusqlite::types::Value,
    avatar: Option<&[u8]>,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO chats (id, owner, created_at) VALUES (?1, ?2, ?3)")?
        .execute(params![chat, owner, now])?;
    conn.prepare_cached(
        "INSERT INTO chat_settings (chat_id, name, description, avatar) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![chat, name, desc, avatar])?;
    conn.prepare_cached(
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

/// Deletes a chat: its row, settings, members, messages and pending invites.
pub fn delete_chat(conn: &Connection, chat: i64) -> rusqlite::Result<()> {
    // The chat's row goes first, so the message triggers find no counts left to update.
    for sql in [
        "DELETE FROM chats WHERE id = ?1",
        "DELETE FROM messages WHERE chat_id = ?1",
        "DELETE FROM members WHERE chat_id = ?1",
        "DELETE FROM chat_settings WHERE chat_id = ?1",
        "DELETE FROM invites WHERE chat_id = ?1",
    ] {
        conn.prepare_cached(sql)?.execute(params![chat])?;
    }
    Ok(())
}

pub fn settings(conn: &Connection, chat: i64) -> rusqlite::Result<Option<Settings>> {
    conn.prepare_cached(
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
    .optional()
}

/// Reads a TEXT (or BLOB) column as raw bytes: names are stored as given, unvalidated.
fn text_bytes(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Vec<u8>> {
    use rusqlite::types::ValueRef;
    Ok(match r.get_ref(i)? {
        ValueRef::Text(t) | ValueRef::Blob(t) => t.to_vec(),
        _ => Vec::new(),
    })
}

/// Updates the given settings columns (name and description as TEXT or raw BLOB values).
pub fn update_settings(
    conn: &Connection,
    chat: i64,
    name: Option<&rusqlite::types::Value>,
    desc: Option<&rusqlite::types::Value>,
    avatar: Option<&[u8]>,
) -> rusqlite::Result<()> {
    if let Some(n) = name {
        conn.prepare_cached("UPDATE chat_settings SET name = ?2 WHERE chat_id = ?1")?
            .execute(params![chat, n])?;
    }
    if let Some(d) = desc {
        conn.prepare_cached("UPDATE chat_settings SET description = ?2 WHERE chat_id = ?1")?
            .execute(params![chat, d])?;
    }
    if let Some(a) = avatar {
        conn.prepare_cached("UPDATE chat_settings SET avatar = ?2 WHERE chat_id = ?1")?
            .execute(params![chat, a])?;
    }
    Ok(())
}

// ---- messages ----

/// Outcome of [`insert_message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    pub id: i64,
    pub guid: i64,
    pub ts: i64,
    /// The same author already stored the same body under this guid: a retried send.
    pub duplicate: bool,
}

/// (id, ts, author, body) of a message already stored under a guid.
type Existing = (i64, i64, Vec<u8>, Option<Vec<u8>>);

/// Stores a message under the chat's next id, bumping the guid on collision. A row with the
/// same guid, author and body is the same message sent again (a retry after a lost
/// response) and is returned as is, so retries are idempotent.
pub fn insert_message(
    conn: &Connection,
    chat: i64,
    guid: i64,
    author: &[u8],
    body: &[u8],
    now: i64,
) -> Result<Inserted, Reject> {
    let mut guid = guid;
    for _ in 0..GUID_ATTEMPTS {
        let existing: Option<Existing> = conn
            .prepare_cached(sql::BY_GUID)?
            .query_row(params![chat, guid], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        match existing {
            None => {
                conn.prepare_cached(sql::NEXT_ID)?
                    .execute(params![chat, body.len() as i64])?;
                let id: i64 = conn
                    .prepare_cached(sql::COUNTER)?
                    .query_row(params![chat], |r| r.get(0))?;
                conn.prepare_cached(sql::INSERT_MESSAGE)?
                    .execute(params![chat, id, guid, now, author, body])?;
                return Ok(Inserted {
                    id,
                    guid,
                    ts: now,
                    duplicate: false,
                });
            }
            Some((id, ts, a, b)) if a == author && b.as_deref() == Some(body) => {
                return Ok(Inserted {
                    id,
                    guid,
                    ts,
                    duplicate: true,
                });
            }
            Some(_) => guid = guid.wrapping_add(1),
        }
    }
    Err(Reject::Wire(WireError::GuidCollisions))
}

pub fn last_message_id(conn: &Connection, chat: i64) -> rusqlite::Result<i64> {
    Ok(conn
        .prepare_cached(sql::LAST_ID)?
        .query_row(params![chat], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// How many messages after `since` (in id order, skipping rows without a body, at most
/// `limit`) one answer takes so that their bodies make at most about `max_bytes` (always at
/// least one), and the bytes of those bodies. Reads lengths only, no bodies.
pub fn messages_since_size(
    conn: &Connection,
    chat: i64,
    since: i64,
    limit: u32,
    max_bytes: usize,
) -> rusqlite::Result<(u32, usize)> {
    let mut st = conn.prepare_cached(sql::PAGE_SIZES)?;
    let mut rows = st.query(params![chat, since, limit])?;
    let (mut count, mut bytes) = (0u32, 0usize);
    while let Some(r) = rows.next()? {
        let len = r.get::<_, i64>(0)? as usize;
        if count > 0 && bytes + len > max_bytes {
            break;
        }
        bytes += len + 80;
        count += 1;
    }
    Ok((count, bytes))
}

/// One stored message, borrowed from the row being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageView<'a> {
    pub id: i64,
    pub guid: i64,
    pub ts: i64,
    pub author: &'a [u8],
    pub body: &'a [u8],
}

/// Hands `visit` the messages after `since` in id order, skipping rows without a body
/// (imported from the Go server, whose bodies are gone): at most `limit`, and no more once
/// about `max_bytes` of bodies are visited (at least one if `at_least_one`, even a larger
/// one). Rows are borrowed from SQLite, not copied, so an answer is encoded straight from
/// them; a body that cannot fit `max_bytes` is not even loaded (unless `at_least_one` makes
/// it the page's only message), so sessions asking for large messages hold no memory before
/// their room in the queue budget is granted. Returns how many were visited and whether rows
/// were left unvisited because of `max_bytes`.
pub fn each_message_since(
    conn: &Connection,
    chat: i64,
    since: i64,
    limit: u32,
    max_bytes: usize,
    at_least_one: bool,
    mut visit: impl FnMut(MessageView<'_>),
) -> rusqlite::Result<(u32, bool)> {
    let mut st = conn.prepare_cached(sql::PAGE)?;
    let load = if at_least_one {
        i64::MAX
    } else {
        i64::try_from(max_bytes).unwrap_or(i64::MAX)
    };
    let mut rows = st.query(params![chat, since, limit, load])?;
    let (mut count, mut bytes) = (0u32, 0usize);
    while let Some(r) = rows.next()? {
        let len = r.get::<_, i64>(4)? as usize;
        if (count > 0 || !at_least_one) && bytes + len > max_bytes {
            return Ok((count, true));
        }
        let body = r.get_ref(5)?.as_blob()?;
        bytes += len + 80;
        count += 1;
        visit(MessageView {
            id: r.get(0)?,
            guid: r.get(1)?,
            ts: r.get(2)?,
            author: r.get_ref(3)?.as_blob()?,
            body,
        });
    }
    Ok((count, false))
}

pub fn message_author(
    conn: &Connection,
    chat: i64,
    guid: i64,
) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached(sql::AUTHOR_BY_GUID)?
        .query_row(params![chat, guid], |r| r.get(0))
        .optional()
}

/// The guid of the chat's message `id`, if there is one.
pub fn message_guid(conn: &Connection, chat: i64, id: i64) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT guid FROM messages WHERE chat_id = ?1 AND id = ?2")?
        .query_row(params![chat, id], |r| r.get(0))
        .optional()
}

/// Deletes a message (row and body together).
pub fn delete_message(conn: &Connection, chat: i64, guid: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql::DELETE_BY_GUID)?
        .execute(params![chat, guid])
}

// ---- members ----

/// Adds a member with perms 0x10, or returns the existing row untouched.
pub fn add_member(
    conn: &Connection,
    chat: i64,
    key: &[u8],
    now: i64,
    changed_at: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
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

/// Sets a member's perms byte and the banned flag (mirroring bit 0x01).
pub fn set_perms(
    conn: &Connection,
    chat: i64,
    key: &[u8],
    perms: u8,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
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

/// Records that `key` was banned in `chat` by someone of `rank`.
pub fn record_ban(conn: &Connection, chat: i64, key: &[u8], rank: u8) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE members SET ban_rank = ?3 WHERE chat_id = ?1 AND pubkey = ?2")?
        .execute(params![chat, key, rank])?;
    Ok(())
}

/// The rank of whoever banned `key` in `chat`; 0 for a ban from before ranks were recorded.
pub fn ban_rank(conn: &Connection, chat: i64, key: &[u8]) -> rusqlite::Result<u8> {
    Ok(conn
        .prepare_cached("SELECT ban_rank FROM members WHERE chat_id = ?1 AND pubkey = ?2")?
        .query_row(params![chat, key], |r| r.get::<_, Option<u8>>(0))
        .optional()?
        .flatten()
        .unwrap_or(0))
}

/// Forgets the ban record of `key` in `chat` (the ban was lifted).
pub fn clear_ban(conn: &Connection, chat: i64, key: &[u8]) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE members SET ban_rank = NULL WHERE chat_id = ?1 AND pubkey = ?2")?
        .execute(params![chat, key])?;
    Ok(())
}

pub fn remove_member(conn: &Connection, chat: i64, key: &[u8]) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM members WHERE chat_id = ?1 AND pubkey = ?2")?
        .execute(params![chat, key])?;
    Ok(())
}

pub fn set_member_info(
    conn: &Connection,
    chat: i64,
    key: &[u8],
    info: &[u8],
    changed_at: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE members SET info = ?3, changed_at = ?4 WHERE chat_id = ?1 AND pubkey = ?2",
    )?
    .execute(params![chat, key, info, changed_at])?;
    Ok(())
}

pub fn changed_at(conn: &Connection, chat: i64, key: &[u8]) -> rusqlite::Result<i64> {
    Ok(conn
        .prepare_cached("SELECT changed_at FROM members WHERE chat_id = ?1 AND pubkey = ?2")?
        .query_row(params![chat, key], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

pub fn set_last_seen(conn: &Connection, chat: i64, key: &[u8], now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE members SET last_seen = ?3 WHERE chat_id = ?1 AND pubkey = ?2")?
        .execute(params![chat, key, now])?;
    Ok(())
}

/// A member as listed by GET_MEMBERS / GET_MEMBERS_INFO and the control API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub pubkey: Vec<u8>,
    pub perms: u8,
    pub banned: bool,
    /// Length of the member's info, `None` when it has none (the info itself is read only
    /// for the members an answer includes: [`member_infos`]).
    pub info_len: Option<usize>,
    pub changed_at: i64,
    pub last_seen: i64,
    pub accepted_at: i64,
}

/// Members in the order they joined; banned ones only if `include_banned`.
pub fn members(
    conn: &Connection,
    chat: i64,
    include_banned: bool,
) -> rusqlite::Result<Vec<MemberRow>> {
    let mut st = conn.prepare_cached(
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
    rows.collect()
}

/// The info of each member in `keys` that has one.
pub fn member_infos(
    conn: &Connection,
    chat: i64,
    keys: &[&[u8]],
) -> rusqlite::Result<HashMap<Vec<u8>, Vec<u8>>> {
    let mut st = conn.prepare_cached(
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

/// Whether `key` is an unbanned member of any chat or holds an unanswered invite.
pub fn is_established(conn: &Connection, key: &[u8]) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(sql::ESTABLISHED)?
        .exists(params![key])?
        || conn
            .prepare_cached("SELECT 1 FROM invites WHERE to_pubkey = ?1 LIMIT 1")?
            .exists(params![key])?)
}

/// Chats in which `key` is a member and not banned, in id order.
pub fn user_chats(conn: &Connection, key: &[u8]) -> rusqlite::Result<Vec<i64>> {
    conn.prepare_cached(sql::USER_CHATS)?
        .query_map(params![key], |r| r.get(0))?
        .collect()
}

// ---- invites ----

/// The pending invite of `to` into `chat`, if any: its id and when it was sent.
pub fn pending_invite(
    conn: &Connection,
    to: &[u8],
    chat: i64,
) -> rusqlite::Result<Option<(i64, i64)>> {
    conn.prepare_cached("SELECT id, timestamp FROM invites WHERE to_pubkey = ?1 AND chat_id = ?2")?
        .query_row(params![to, chat], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// Sends invite `id` again, from `from` with `data`, as if new: its time is `now` and it is
/// pushed again.
pub fn refresh_invite(
    conn: &Connection,
    id: i64,
    from: &[u8],
    data: &[u8],
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE invites SET timestamp = ?2, from_pubkey = ?3, encrypted_data = ?4, sent = 0
         WHERE id = ?1",
    )?
    .execute(params![id, now, from, data])?;
    Ok(())
}

pub fn pending_invites_for(conn: &Connection, to: &[u8]) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT COUNT(*) FROM invites WHERE to_pubkey = ?1")?
        .query_row(params![to], |r| r.get(0))
}

pub fn insert_invite(
    conn: &Connection,
    from: &[u8],
    to: &[u8],
    chat: i64,
    data: &[u8],
    now: i64,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO invites (timestamp, from_pubkey, to_pubkey, chat_id, encrypted_data, sent)
         VALUES (?1, ?2, ?3, ?4, ?5, 0)",
    )?
    .execute(params![now, from, to, chat, data])?;
    Ok(conn.last_insert_rowid())
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

pub fn invite(conn: &Connection, id: i64) -> rusqlite::Result<Option<InviteRow>> {
    conn.prepare_cached(&format!(
        "SELECT {INVITE_COLUMNS} FROM invites WHERE id = ?1"
    ))?
    .query_row(params![id], invite_from_row)
    .optional()
}

/// Unanswered invites for `to` not older than `min_ts`: those never delivered first, then
/// the newest, with their chat's settings; rows stop once about `max_bytes` of invite data
/// and avatars are read (at least one row is returned).
pub fn invites_for(
    conn: &Connection,
    to: &[u8],
    min_ts: i64,
    max_bytes: usize,
) -> rusqlite::Result<Vec<(InviteRow, Settings)>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {INVITE_COLUMNS} FROM invites WHERE to_pubkey = ?1 AND timestamp >= ?2
         ORDER BY sent, id DESC"
    ))?;
    let mut rows = st.query(params![to, min_ts])?;
    let (mut out, mut bytes) = (Vec::new(), 0usize);
    while let Some(r) = rows.next()? {
        let inv = invite_from_row(r)?;
        let Some(s) = settings(conn, inv.chat_id)? else {
            continue;
        };
        let avatar = s.avatar.as_ref().map_or(0, Vec::len);
        let size = inv.data.len() + s.name.len() + s.desc.len() + avatar + 128;
        if !out.is_empty() && bytes + size > max_bytes {
            break;
        }
        bytes += size;
        out.push((inv, s));
    }
    Ok(out)
}

pub fn mark_invite_sent(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE invites SET sent = 1 WHERE id = ?1")?
        .execute(params![id])?;
    Ok(())
}

pub fn delete_invite(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM invites WHERE id = ?1")?
        .execute(params![id])?;
    Ok(())
}

/// Deletes invites older than `before`; returns how many.
pub fn purge_invites(conn: &Connection, before: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM invites WHERE timestamp < ?1")?
        .execute(params![before])
}

/// Stores a system message (author = the mediator key), bumping its guid on collision.
pub fn insert_system_message(
    conn: &Connection,
    chat: i64,
    mediator: &PublicKey,
    body: &[u8],
    now: i64,
) -> Result<Inserted, Reject> {
    let guid = mediator_wire::system::system_guid(body, now);
    insert_message(conn, chat, guid, mediator, body, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each hot statement's plan: a search on the index meant for it, never a scan of a
    /// chat's range where a key lookup was meant, never a sort.
    #[test]
    fn hot_statements_use_their_indexes() {
        let c = Connection::open_in_memory().unwrap();
        super::super::schema::create(&c).unwrap();
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
        super::super::schema::create(&c).unwrap();
        let name = rusqlite::types::Value::Text("c".into());
        create_chat(&c, 7, &[1; 32], &name, &name, None, 1).unwrap();
        let steps = |c: &Connection, stmt: &str, args: &[i64]| {
            let mut st = c.prepare(stmt).unwrap();
            let mut rows = st.query(rusqlite::params_from_iter(args)).unwrap();
            while rows.next().unwrap().is_some() {}
            drop(rows);
            st.get_status(rusqlite::StatementStatus::VmStep)
        };
        for g in 0..10 {
            insert_message(&c, 7, g, &[1; 32], b"x", 1).unwrap();
        }
        let few = (
            steps(&c, sql::LAST_ID, &[7]),
            steps(&c, sql::BY_GUID, &[7, 1_000_000]),
        );
        for g in 10..2000 {
            insert_message(&c, 7, g, &[1; 32], b"x", 1).unwrap();
        }
        let many = (
            steps(&c, sql::LAST_ID, &[7]),
            steps(&c, sql::BY_GUID, &[7, 1_000_000]),
        );
        assert_eq!(few, many);
        assert_eq!(last_message_id(&c, 7).unwrap(), 2000);
    }

    /// Page limits of `each_message_since`: the count, the byte budget (with or without the
    /// one-message minimum), bodiless rows skipped, ids never reused after a deletion.
    #[test]
    fn message_pages_and_ids() {
        let c = Connection::open_in_memory().unwrap();
        super::super::schema::create(&c).unwrap();
        let name = rusqlite::types::Value::Text("c".into());
        create_chat(&c, 7, &[1; 32], &name, &name, None, 1).unwrap();
        for (guid, size) in [(1, 10), (2, 5000), (3, 10), (4, 10)] {
            let ins = insert_message(&c, 7, guid, &[1; 32], &vec![0; size], 1).unwrap();
            assert_eq!((ins.id, ins.duplicate), (guid, false));
        }
        let again = insert_message(&c, 7, 3, &[1; 32], &[0; 10], 2).unwrap();
        assert_eq!((again.id, again.duplicate), (3, true));
        c.execute("UPDATE messages SET body = NULL WHERE id = 3", [])
            .unwrap();
        let page = |since, limit, max, one| {
            let mut ids = Vec::new();
            let (n, cut) =
                each_message_since(&c, 7, since, limit, max, one, |m| ids.push(m.id)).unwrap();
            assert_eq!(n as usize, ids.len());
            (ids, cut)
        };
        assert_eq!(page(0, 10, 1 << 20, false), (vec![1, 2, 4], false));
        assert_eq!(page(0, 2, 1 << 20, false), (vec![1, 2], false));
        assert_eq!(page(0, 10, 1000, false), (vec![1], true));
        assert_eq!(page(1, 10, 1000, false), (vec![], true));
        assert_eq!(page(1, 10, 1000, true), (vec![2], true));
        assert_eq!(page(4, 10, 1000, true), (vec![], false));
        assert_eq!(delete_message(&c, 7, 4).unwrap(), 1);
        assert_eq!(last_message_id(&c, 7).unwrap(), 3);
        let next = insert_message(&c, 7, 9, &[1; 32], b"x", 3).unwrap();
        assert_eq!(next.id, 5, "an id is never given twice");
    }
}
