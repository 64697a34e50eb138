//! Queries for the operator (the control API): totals, per-chat figures, a chat's details,
//! member lists, expiry of nonces and invites. Like [`super::queries`] they are a trait,
//! [`Admin`], implemented by each backend (`super::sqlite`, `super::postgres`), that the
//! caller runs through [`super::Store::read`] or [`super::Store::write`]; they return the
//! store's own types, and the control service turns them into its messages. The online
//! backup is SQLite's own ([`super::sqlite::backup_to`]).

use super::queries::{DbResult, MemberRow, Protocol, Settings};
use std::collections::BTreeMap;

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

/// An order the chats table itself can give (see [`Admin::chat_page`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatOrder {
    Id,
    Created,
    Messages,
}

/// A chat as the chats table lists it: (id, owner key, creation time).
pub type ChatRow = (i64, Vec<u8>, i64);

/// The operator's queries on one database connection (or transaction).
pub trait Admin: Protocol {
    /// Every chat, by id.
    fn all_chats(&self) -> DbResult<Vec<ChatRow>>;

    /// The number of chats (one count over the chats table).
    fn totals_chats(&self) -> DbResult<u64>;

    /// Whole-database counts. None reads the messages: their number is the sum of the
    /// chats' counters (see [`super::schema`]); the others count the chats, the members
    /// index and the invites.
    fn totals(&self) -> DbResult<Totals>;

    /// Bytes the database takes on the server's disk (PostgreSQL: `pg_database_size`;
    /// SQLite: its pages, without the write-ahead log, which `Store::file_bytes` adds).
    fn database_bytes(&self) -> DbResult<u64>;

    /// One chat's figures, from its tables (the counters, and one row each for the newest
    /// message and the member counts, however long the chat).
    fn figures(&self, id: i64, owner: Vec<u8>, created_at: i64) -> DbResult<ChatFigures>;

    /// One page of chats (of `owner`, or all) in an order the chats table gives, and how
    /// many chats there are.
    fn chat_rows(
        &self,
        owner: Option<&[u8]>,
        order: ChatOrder,
        descending: bool,
        offset: u64,
        limit: u64,
    ) -> DbResult<(Vec<ChatRow>, u64)>;

    /// When a chat was created, `None` when there is no such chat.
    fn chat_created(&self, id: i64) -> DbResult<Option<i64>>;

    /// Invites waiting for an answer in a chat.
    fn chat_invites(&self, id: i64) -> DbResult<u64>;

    /// Figures of every chat, or of those `owner` owns, by id.
    fn chat_list(&self, owner: Option<&[u8]>) -> DbResult<Vec<ChatFigures>> {
        let mut out = Vec::new();
        for (id, o, created) in self.all_chats()? {
            if owner.is_none_or(|k| k == o.as_slice()) {
                out.push(self.figures(id, o, created)?);
            }
        }
        Ok(out)
    }

    /// One page of chats with their figures, and how many chats there are: it reads the
    /// page's chats only, so paging through 100,000 chats costs each page its own rows, not
    /// a pass over all of them.
    fn chat_page(
        &self,
        owner: Option<&[u8]>,
        order: ChatOrder,
        descending: bool,
        offset: u64,
        limit: u64,
    ) -> DbResult<(Vec<ChatFigures>, u64)> {
        let (rows, total) = self.chat_rows(owner, order, descending, offset, limit)?;
        let page = rows
            .into_iter()
            .map(|(id, o, created)| self.figures(id, o, created))
            .collect::<DbResult<_>>()?;
        Ok((page, total))
    }

    /// One chat's details, `None` when there is no such chat.
    fn chat_details(&self, id: i64) -> DbResult<Option<ChatDetails>> {
        let (Some(owner), Some(created)) = (self.chat_owner(id)?, self.chat_created(id)?) else {
            return Ok(None);
        };
        let mut roles = BTreeMap::new();
        for m in self.members(id, true)? {
            *roles
                .entry(role_name(m.perms, m.banned).to_string())
                .or_insert(0u64) += 1;
        }
        Ok(Some(ChatDetails {
            figures: self.figures(id, owner, created)?,
            settings: self.settings(id)?,
            roles,
            pending_invites: self.chat_invites(id)?,
        }))
    }

    /// Every member of a chat, banned ones included, `None` when there is no such chat.
    fn chat_members(&self, id: i64) -> DbResult<Option<Vec<MemberRow>>> {
        if !self.chat_exists(id)? {
            return Ok(None);
        }
        self.members(id, true).map(Some)
    }

    /// Removes database nonces issued before `nonces_before` (left by versions that kept
    /// nonces in the database) and invites sent before `invites_before`; returns both
    /// counts. The daemon's janitor runs this; `mediatorctl nonces purge` runs the nonce
    /// half at once.
    fn expire(&self, nonces_before: i64, invites_before: Option<i64>) -> DbResult<(usize, usize)> {
        let nonces = self.purge_nonces(nonces_before)?;
        let invites = match invites_before {
            Some(before) => self.purge_invites(before)?,
            None => 0,
        };
        Ok((nonces, invites))
    }
}
