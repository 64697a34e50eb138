//! Queries for the operator (the control API): totals, per-chat figures, a chat's details,
//! member lists, expiry of nonces and invites, and the online backup. Like [`super::queries`]
//! these are plain functions on a connection that the caller runs through
//! [`super::Store::read`] or [`super::Store::write`]; they return the store's own types, and
//! the control service turns them into its messages.

use super::queries::{self as q, MemberRow, Settings};
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Pages copied per step of an online backup; between steps the writer may commit.
pub const BACKUP_STEP_PAGES: i32 = 256;
/// Pause between backup steps, so a large backup does not hold the database busy.
pub const BACKUP_STEP_PAUSE: Duration = Duration::from_millis(1);

/// Whole-database counts for `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub chats: u64,
    /// Distinct keys that belong to at least one chat (banned included).
    pub users: u64,
    pub messages: u64,
    pub invites: u64,
}

/// One chat's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatFigures {
    pub id: i64,
    pub owner: Vec<u8>,
    pub created_at: i64,
    pub name: Vec<u8>,
    /// Members not banned.
    pub members: u64,
    pub banned: u64,
    pub messages: u64,
    /// The newest message's time, or the creation time.
    pub last_activity: i64,
}

/// What `chats show` tells about one chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatDetails {
    pub figures: ChatFigures,
    pub settings: Option<Settings>,
    /// Members per role name (see [`role_name`]).
    pub roles: BTreeMap<String, u64>,
    pub pending_invites: u64,
}

/// A human name for a perms byte.
pub fn role_name(perms: u8, banned: bool) -> &'static str {
    use mediator_wire::codes::perms as p;
    if banned {
        "banned"
    } else if perms & p::OWNER != 0 {
        "owner"
    } else if perms & p::ADMIN != 0 {
        "admin"
    } else if perms & p::MODERATOR != 0 {
        "moderator"
    } else if perms & p::READ_ONLY != 0 {
        "read-only"
    } else {
        "user"
    }
}

/// Every chat as (id, owner key, creation time), by id.
fn all_chats(c: &Connection) -> rusqlite::Result<Vec<(i64, Vec<u8>, i64)>> {
    let mut st = c.prepare_cached("SELECT id, owner, created_at FROM chats ORDER BY id")?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

/// The number of chats (one count over the chats table).
pub fn totals_chats(c: &Connection) -> rusqlite::Result<u64> {
    c.prepare_cached("SELECT COUNT(*) FROM chats")?
        .query_row([], |r| r.get::<_, i64>(0))
        .map(|n| n.max(0) as u64)
}

/// Whole-database counts. None reads the messages: their number is the sum of the chats'
/// counters (see [`super::schema`]); the others count the chats, the members index and the
/// invites.
pub fn totals(c: &Connection) -> rusqlite::Result<Totals> {
    let count = |sql: &str| -> rusqlite::Result<u64> {
        c.prepare_cached(sql)?
            .query_row([], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
    };
    Ok(Totals {
        chats: count("SELECT COUNT(*) FROM chats")?,
        users: count("SELECT COUNT(DISTINCT pubkey) FROM members")?,
        messages: count("SELECT IFNULL(SUM(message_count), 0) FROM chats")?,
        invites: count("SELECT COUNT(*) FROM invites")?,
    })
}

/// One chat's figures, from its tables.
fn figures(
    c: &Connection,
    id: i64,
    owner: Vec<u8>,
    created_at: i64,
) -> rusqlite::Result<ChatFigures> {
    let name = q::settings(c, id)?.map(|s| s.name).unwrap_or_default();
    let (members, banned): (i64, i64) = c
        .prepare_cached(
            "SELECT COUNT(*), IFNULL(SUM(banned != 0), 0) FROM members WHERE chat_id = ?1",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    // The counter, and the newest message's time: one row each, however long the chat.
    let (messages, last): (i64, i64) = c
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

/// Figures of every chat, or of those `owner` owns, by id.
pub fn chat_list(c: &Connection, owner: Option<&[u8]>) -> rusqlite::Result<Vec<ChatFigures>> {
    let mut out = Vec::new();
    for (id, o, created) in all_chats(c)? {
        if owner.is_none_or(|k| k == o.as_slice()) {
            out.push(figures(c, id, o, created)?);
        }
    }
    Ok(out)
}

/// An order the chats table itself can give (see [`chat_page`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatOrder {
    Id,
    Created,
    Messages,
}

/// One page of chats (of `owner`, or all) in an order the chats table gives, with their
/// figures, and how many chats there are: it reads the page's chats only, so paging through
/// 100,000 chats costs each page its own rows, not a pass over all of them.
pub fn chat_page(
    c: &Connection,
    owner: Option<&[u8]>,
    order: ChatOrder,
    descending: bool,
    offset: u64,
    limit: u64,
) -> rusqlite::Result<(Vec<ChatFigures>, u64)> {
    let column = match order {
        ChatOrder::Id => "",
        ChatOrder::Created => "created_at",
        ChatOrder::Messages => "message_count",
    };
    let dir = if descending { "DESC" } else { "ASC" };
    let by = if column.is_empty() {
        format!("id {dir}")
    } else {
        format!("{column} {dir}, id {dir}")
    };
    let filter = if owner.is_some() {
        "WHERE owner = ?3"
    } else {
        ""
    };
    let sql = format!(
        "SELECT id, owner, created_at FROM chats {filter} ORDER BY {by} LIMIT ?1 OFFSET ?2"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let rows: Vec<(i64, Vec<u8>, i64)> = {
        let mut st = c.prepare_cached(&sql)?;
        let map = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?));
        match owner {
            Some(o) => st
                .query_map(rusqlite::params![limit, offset, o], map)?
                .collect::<rusqlite::Result<_>>()?,
            None => st
                .query_map(rusqlite::params![limit, offset], map)?
                .collect::<rusqlite::Result<_>>()?,
        }
    };
    let total: i64 = match owner {
        Some(o) => c
            .prepare_cached("SELECT COUNT(*) FROM chats WHERE owner = ?1")?
            .query_row([o], |r| r.get(0))?,
        None => c
            .prepare_cached("SELECT COUNT(*) FROM chats")?
            .query_row([], |r| r.get(0))?,
    };
    let page = rows
        .into_iter()
        .map(|(id, o, created)| figures(c, id, o, created))
        .collect::<rusqlite::Result<_>>()?;
    Ok((page, total.max(0) as u64))
}

/// One chat's details, `None` when there is no such chat.
pub fn chat_details(c: &Connection, id: i64) -> rusqlite::Result<Option<ChatDetails>> {
    let Some(owner) = q::chat_owner(c, id)? else {
        return Ok(None);
    };
    let created: i64 = c.query_row("SELECT created_at FROM chats WHERE id = ?1", [id], |r| {
        r.get(0)
    })?;
    let mut roles = BTreeMap::new();
    for m in q::members(c, id, true)? {
        *roles
            .entry(role_name(m.perms, m.banned).to_string())
            .or_insert(0u64) += 1;
    }
    let pending_invites: i64 = c.query_row(
        "SELECT COUNT(*) FROM invites WHERE chat_id = ?1",
        [id],
        |r| r.get(0),
    )?;
    Ok(Some(ChatDetails {
        figures: figures(c, id, owner, created)?,
        settings: q::settings(c, id)?,
        roles,
        pending_invites: pending_invites as u64,
    }))
}

/// Every member of a chat, banned ones included, `None` when there is no such chat.
pub fn chat_members(c: &Connection, id: i64) -> rusqlite::Result<Option<Vec<MemberRow>>> {
    if !q::chat_exists(c, id)? {
        return Ok(None);
    }
    q::members(c, id, true).map(Some)
}

/// Removes database nonces issued before `nonces_before` (left by versions that kept nonces
/// in the database) and invites sent before `invites_before`; returns both counts. The
/// daemon's janitor runs this; `mediatorctl nonces purge` runs the nonce half at once.
pub fn expire(
    c: &Connection,
    nonces_before: i64,
    invites_before: Option<i64>,
) -> rusqlite::Result<(usize, usize)> {
    let nonces = q::purge_nonces(c, nonces_before)?;
    let invites = match invites_before {
        Some(before) => q::purge_invites(c, before)?,
        None => 0,
    };
    Ok((nonces, invites))
}

/// Nonces still in the database.
pub fn nonces_left(c: &Connection) -> rusqlite::Result<i64> {
    q::nonce_count(c)
}

/// Copies the database into a new file at `dest` with SQLite's online backup, in steps that
/// let the writer go on, and leaves it in rollback-journal mode (one self-contained file).
/// Returns the pages copied.
pub fn backup_to(c: &Connection, dest: &Path) -> rusqlite::Result<i32> {
    let mut out = Connection::open(dest)?;
    let b = rusqlite::backup::Backup::new(c, &mut out)?;
    b.run_to_completion(BACKUP_STEP_PAGES, BACKUP_STEP_PAUSE, None)?;
    let pages = b.progress().pagecount;
    drop(b);
    out.execute_batch("PRAGMA journal_mode=DELETE")?;
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages in the table's orders match sorting every chat's figures.
    #[test]
    fn pages_match_a_full_sort() {
        let c = Connection::open_in_memory().unwrap();
        super::super::schema::create(&c).unwrap();
        for id in 1..=30i64 {
            let owner = if id % 3 == 0 { vec![3u8] } else { vec![1u8] };
            c.execute(
                "INSERT INTO chats (id, owner, created_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![id, owner, 1000 - (id % 7)],
            )
            .unwrap();
            for m in 0..(id % 5) {
                q::insert_message(&c, id, m, &[1], b"x", 0).unwrap();
            }
        }
        let all = chat_list(&c, None).unwrap();
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
                    let (page, total) = chat_page(&c, None, order, descending, offset, 7).unwrap();
                    assert_eq!(total, 30);
                    got.extend(page);
                }
                assert_eq!(got, want, "{order:?} descending={descending}");
            }
        }
        let (mine, total) = chat_page(&c, Some(&[3]), ChatOrder::Id, false, 0, 100).unwrap();
        assert_eq!(total, 10);
        assert_eq!(mine, chat_list(&c, Some(&[3])).unwrap());
    }

    #[test]
    fn roles() {
        assert_eq!(role_name(0x90, false), "owner");
        assert_eq!(role_name(0x11, true), "banned");
        assert_eq!(role_name(0x08, false), "read-only");
    }
}
