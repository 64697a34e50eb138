//! What every command asks of storage: the protocol's operations as one trait,
//! [`Protocol`], with an implementation per backend (the embedded SQLite file in
//! `super::sqlite`, PostgreSQL in `super::postgres`).
//!
//! Handlers compose these inside one [`super::Store::write`] closure (one savepoint per
//! command) or one [`super::Store::read`] closure, on whichever database the store was opened
//! with. The rules that are the same on every backend (a member must not be banned, a guid is
//! bumped on collision, a retried send is the same message) are written once here, as the
//! trait's provided methods, over the backend's single statements. A chat that does not
//! exist reads like a chat the caller is not a member of.

use super::{Reject, StoreError};
use mediator_wire::codes::perms;
use mediator_wire::{PublicKey, WireError};
use std::collections::HashMap;

/// A storage operation's result.
pub type DbResult<T> = Result<T, StoreError>;

/// Attempts to place a message under its guid, bumping the guid by one on each collision
/// (§5.10), before giving up.
pub const GUID_ATTEMPTS: i64 = 10;

/// Bytes counted per message, beside its body, when a sync answer's size is estimated
/// (record header, author, ids).
pub const MESSAGE_OVERHEAD: usize = 80;

/// Bytes counted per invite, beside its data, name, description and avatar.
pub const INVITE_OVERHEAD: usize = 128;

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

/// Outcome of [`Protocol::insert_message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    pub id: i64,
    pub guid: i64,
    pub ts: i64,
    /// The same author already stored the same body under this guid: a retried send.
    pub duplicate: bool,
}

/// A member's message to store (SEND_MESSAGE): what the writer needs, apart from the caller,
/// so a backend may store several in one round trip (see `super::SendJob`).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub chat: i64,
    /// The guid the client chose (bumped on collision).
    pub guid: i64,
    pub author: PublicKey,
    pub body: bytes::Bytes,
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

/// A member as listed by GET_MEMBERS / GET_MEMBERS_INFO and the control API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub pubkey: Vec<u8>,
    pub perms: u8,
    pub banned: bool,
    /// Length of the member's info, `None` when it has none (the info itself is read only
    /// for the members an answer includes: [`Protocol::member_infos`]).
    pub info_len: Option<usize>,
    pub changed_at: i64,
    pub last_seen: i64,
    pub accepted_at: i64,
}

/// A message already stored under a guid: what a new one with that guid is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub id: i64,
    pub ts: i64,
    pub author: Vec<u8>,
    /// `None` for a message imported without its body.
    pub body: Option<Vec<u8>>,
}

/// The protocol's operations on one database connection (or transaction).
pub trait Protocol {
    fn chat_exists(&self, chat: i64) -> DbResult<bool>;

    /// Whether a new chat may not take the id `chat`: a chat has it, or the messages of a
    /// deleted chat of that id are not all removed yet ([`Protocol::delete_chat`]).
    fn chat_id_taken(&self, chat: i64) -> DbResult<bool>;

    fn chat_owner(&self, chat: i64) -> DbResult<Option<Vec<u8>>>;

    /// The caller's row in a chat, banned or not; `None` if no row or no such chat.
    fn member(&self, chat: i64, key: &[u8]) -> DbResult<Option<Member>>;

    /// Nonces left in the database by versions that kept them there.
    fn nonce_count(&self) -> DbResult<i64>;

    /// Deletes those nonces older than `before` (Unix seconds); returns how many.
    fn purge_nonces(&self, before: i64) -> DbResult<usize>;

    fn chats_owned_by(&self, key: &[u8]) -> DbResult<i64>;

    /// Creates a chat: its row, its settings and its owner's member row (perms 0x90). Names
    /// and descriptions are kept byte for byte, UTF-8 or not.
    #[allow(clippy::too_many_arguments)]
    fn create_chat(
        &self,
        chat: i64,
        owner: &[u8],
        name: &[u8],
        desc: &[u8],
        avatar: Option<&[u8]>,
        now: i64,
    ) -> DbResult<()>;

    /// Deletes a chat: its row, settings, members and pending invites. Its messages are left
    /// to be removed a batch at a time ([`super::retention::Retention::sweep_deleted_chat`]):
    /// deleting them in this job held every other write for 1.3 s per 100,000 messages.
    /// Nothing reads them meanwhile (every read of messages goes through a chat or a
    /// member), and their id is not given to a new chat ([`Protocol::chat_id_taken`]).
    fn delete_chat(&self, chat: i64) -> DbResult<()>;

    fn settings(&self, chat: i64) -> DbResult<Option<Settings>>;

    /// Updates the given settings columns.
    fn update_settings(
        &self,
        chat: i64,
        name: Option<&[u8]>,
        desc: Option<&[u8]>,
        avatar: Option<&[u8]>,
    ) -> DbResult<()>;

    /// The message stored under `guid` in `chat`, if any.
    fn message_by_guid(&self, chat: i64, guid: i64) -> DbResult<Option<Stored>>;

    /// Stores a new message under the chat's next id (counting it and its body bytes in the
    /// chat's counters); returns the id. The caller has checked the guid is free.
    fn append_message(
        &self,
        chat: i64,
        guid: i64,
        author: &[u8],
        body: &[u8],
        now: i64,
    ) -> DbResult<i64>;

    fn last_message_id(&self, chat: i64) -> DbResult<i64>;

    /// How many messages after `since` (in id order, skipping rows without a body, at most
    /// `limit`) one answer takes so that their bodies make at most about `max_bytes` (always
    /// at least one), and the bytes of those bodies. Reads lengths only, no bodies.
    fn messages_since_size(
        &self,
        chat: i64,
        since: i64,
        limit: u32,
        max_bytes: usize,
    ) -> DbResult<(u32, usize)>;

    /// Hands `visit` the messages after `since` in id order, skipping rows without a body
    /// (imported from the Go server, whose bodies are gone): at most `limit`, and no more
    /// once about `max_bytes` of bodies are visited (at least one if `at_least_one`, even a
    /// larger one). Rows are borrowed from the database's row, not copied, so an answer is
    /// encoded straight from them; a body that cannot fit `max_bytes` is not even loaded
    /// (unless `at_least_one` makes it the page's only message), so sessions asking for
    /// large messages hold no memory before their room in the queue budget is granted.
    /// Returns how many were visited and whether rows were left unvisited because of
    /// `max_bytes`.
    #[allow(clippy::too_many_arguments)]
    fn each_message_since(
        &self,
        chat: i64,
        since: i64,
        limit: u32,
        max_bytes: usize,
        at_least_one: bool,
        visit: &mut dyn FnMut(MessageView<'_>),
    ) -> DbResult<(u32, bool)>;

    fn message_author(&self, chat: i64, guid: i64) -> DbResult<Option<Vec<u8>>>;

    /// The guid of the chat's message `id`, if there is one.
    fn message_guid(&self, chat: i64, id: i64) -> DbResult<Option<i64>>;

    /// Deletes a message (row and body together); returns how many rows.
    fn delete_message(&self, chat: i64, guid: i64) -> DbResult<usize>;

    /// Adds a member with perms 0x10 (fails if the row exists).
    fn add_member(&self, chat: i64, key: &[u8], now: i64, changed_at: i64) -> DbResult<()>;

    /// Sets a member's perms byte and the banned flag (mirroring bit 0x01).
    fn set_perms(&self, chat: i64, key: &[u8], perms: u8, now: i64) -> DbResult<()>;

    /// Records that `key` was banned in `chat` by someone of `rank`.
    fn record_ban(&self, chat: i64, key: &[u8], rank: u8) -> DbResult<()>;

    /// The rank of whoever banned `key` in `chat`; 0 for a ban from before ranks were
    /// recorded.
    fn ban_rank(&self, chat: i64, key: &[u8]) -> DbResult<u8>;

    /// Forgets the ban record of `key` in `chat` (the ban was lifted).
    fn clear_ban(&self, chat: i64, key: &[u8]) -> DbResult<()>;

    fn remove_member(&self, chat: i64, key: &[u8]) -> DbResult<()>;

    fn set_member_info(&self, chat: i64, key: &[u8], info: &[u8], changed_at: i64) -> DbResult<()>;

    fn changed_at(&self, chat: i64, key: &[u8]) -> DbResult<i64>;

    fn set_last_seen(&self, chat: i64, key: &[u8], now: i64) -> DbResult<()>;

    /// Members in the order they joined; banned ones only if `include_banned`.
    fn members(&self, chat: i64, include_banned: bool) -> DbResult<Vec<MemberRow>>;

    /// The info of each member in `keys` that has one.
    fn member_infos(&self, chat: i64, keys: &[&[u8]]) -> DbResult<HashMap<Vec<u8>, Vec<u8>>>;

    /// Whether `key` is an unbanned member of any chat or holds an unanswered invite.
    fn is_established(&self, key: &[u8]) -> DbResult<bool>;

    /// Chats in which `key` is a member and not banned, in id order.
    fn user_chats(&self, key: &[u8]) -> DbResult<Vec<i64>>;

    /// The pending invite of `to` into `chat`, if any: its id and when it was sent.
    fn pending_invite(&self, to: &[u8], chat: i64) -> DbResult<Option<(i64, i64)>>;

    /// Sends invite `id` again, from `from` with `data`, as if new: its time is `now` and it
    /// is pushed again.
    fn refresh_invite(&self, id: i64, from: &[u8], data: &[u8], now: i64) -> DbResult<()>;

    fn pending_invites_for(&self, to: &[u8]) -> DbResult<i64>;

    /// Stores an invite; returns its id.
    fn insert_invite(
        &self,
        from: &[u8],
        to: &[u8],
        chat: i64,
        data: &[u8],
        now: i64,
    ) -> DbResult<i64>;

    fn invite(&self, id: i64) -> DbResult<Option<InviteRow>>;

    /// Unanswered invites for `to` not older than `min_ts`: those never delivered first,
    /// then the newest, with their chat's settings; rows stop once about `max_bytes` of
    /// invite data and avatars are read (at least one row is returned).
    fn invites_for(
        &self,
        to: &[u8],
        min_ts: i64,
        max_bytes: usize,
    ) -> DbResult<Vec<(InviteRow, Settings)>>;

    fn mark_invite_sent(&self, id: i64) -> DbResult<()>;

    fn delete_invite(&self, id: i64) -> DbResult<()>;

    /// Deletes invites older than `before`; returns how many.
    fn purge_invites(&self, before: i64) -> DbResult<usize>;

    /// The member row if the caller is a member and not banned, else "not a member or
    /// banned".
    fn require_member(&self, chat: i64, key: &[u8]) -> Result<Member, Reject> {
        match self.member(chat, key)? {
            Some(m) if !m.banned => Ok(m),
            _ => Err(Reject::Wire(WireError::NotAMemberOrBanned)),
        }
    }

    /// Stores a message under the chat's next id, bumping the guid on collision. A row with
    /// the same guid, author and body is the same message sent again (a retry after a lost
    /// response) and is returned as is, so retries are idempotent.
    fn insert_message(
        &self,
        chat: i64,
        guid: i64,
        author: &[u8],
        body: &[u8],
        now: i64,
    ) -> Result<Inserted, Reject> {
        let mut guid = guid;
        for _ in 0..GUID_ATTEMPTS {
            match self.message_by_guid(chat, guid)? {
                None => {
                    let id = self.append_message(chat, guid, author, body, now)?;
                    return Ok(Inserted {
                        id,
                        guid,
                        ts: now,
                        duplicate: false,
                    });
                }
                Some(s) if s.author == author && s.body.as_deref() == Some(body) => {
                    return Ok(Inserted {
                        id: s.id,
                        guid,
                        ts: s.ts,
                        duplicate: true,
                    });
                }
                Some(_) => guid = guid.wrapping_add(1),
            }
        }
        Err(Reject::Wire(WireError::GuidCollisions))
    }

    /// SEND_MESSAGE's storage: the author must be a member, not banned, not read-only; then
    /// the message is stored under the guid rule of [`Protocol::insert_message`] at `now`.
    fn send_message(&self, m: &NewMessage, now: i64) -> Result<Inserted, Reject> {
        let member = self.require_member(m.chat, &m.author)?;
        if member.perms & perms::READ_ONLY != 0 {
            return Err(Reject::Wire(WireError::ReadOnlyUser));
        }
        self.insert_message(m.chat, m.guid, &m.author, &m.body, now)
    }

    /// Stores a system message (author = the mediator key), bumping its guid on collision.
    fn insert_system_message(
        &self,
        chat: i64,
        mediator: &PublicKey,
        body: &[u8],
        now: i64,
    ) -> Result<Inserted, Reject> {
        let guid = mediator_wire::system::system_guid(body, now);
        self.insert_message(chat, guid, mediator, body, now)
    }
}

/// Which rows of a page an answer takes: the byte budget of
/// [`Protocol::messages_since_size`] and [`Protocol::each_message_since`], the same on every
/// backend.
#[derive(Debug, Clone, Copy)]
pub struct PageBudget {
    pub count: u32,
    pub bytes: usize,
    max_bytes: usize,
    at_least_one: bool,
}

impl PageBudget {
    pub fn new(max_bytes: usize, at_least_one: bool) -> PageBudget {
        PageBudget {
            count: 0,
            bytes: 0,
            max_bytes,
            at_least_one,
        }
    }

    /// The largest body worth loading: a larger one cannot be taken (unless it would be the
    /// page's only message), so its bytes need not leave the database.
    pub fn load_limit(&self) -> i64 {
        if self.at_least_one {
            i64::MAX
        } else {
            i64::try_from(self.max_bytes).unwrap_or(i64::MAX)
        }
    }

    /// Takes a message of `len` body bytes into the page, or says the page is full.
    pub fn take(&mut self, len: usize) -> bool {
        if (self.count > 0 || !self.at_least_one) && self.bytes + len > self.max_bytes {
            return false;
        }
        self.bytes += len + MESSAGE_OVERHEAD;
        self.count += 1;
        true
    }
}

/// Takes invites into an answer until about `max_bytes` (at least one): the budget of
/// [`Protocol::invites_for`].
pub fn take_invite(
    taken: &mut usize,
    first: bool,
    inv: &InviteRow,
    s: &Settings,
    max: usize,
) -> bool {
    let avatar = s.avatar.as_ref().map_or(0, Vec::len);
    let size = inv.data.len() + s.name.len() + s.desc.len() + avatar + INVITE_OVERHEAD;
    if !first && *taken + size > max {
        return false;
    }
    *taken += size;
    true
}
