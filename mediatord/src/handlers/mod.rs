//! Command handlers: one method per command of `mediator-protocol.md` §5, with the Go
//! server's check order and error strings, and the fixes of §11. The commands live in rooms
//! by family: `auth` (nonces, AUTH, pending invites, departure), `chats` (create, delete,
//! update, list), `members` (add, ban, leave, roles, member lists and info), `messages`
//! (send, delete, subscribe, sync) and `invites`.
//!
//! A handler never touches a socket: it returns the response frame (and pushes meant for its
//! own session after the response); pushes to other sessions go through the hub from the
//! store's after-commit hook, so they leave in commit order. Every command's database changes,
//! system message included, run in one savepoint: a failing command applies nothing (C9).
//! Failures are [`Reject`]s naming a [`WireError`]; they become text in one place,
//! [`error_text`]. [`Session::handle`] is
//! all a transport calls, so handlers are tested in-process against a real store (`tests`).

mod auth;
mod chats;
mod invites;
mod members;
mod messages;
pub mod moderation;
#[cfg(test)]
mod tests;

pub use members::{members_info_page, MEMBERS_INFO_TIE_CEILING};

use crate::events::{self, Event};
use crate::hub::{Hub, SessionHandle};
use crate::nonces::NonceBook;
use crate::outbox::QUEUE_FAIR_SHARE;
use crate::ratelimit::{Kind, Rate};
use crate::server::Server;
use crate::shares::Grant;
use crate::store::prelude::*;
use crate::store::queries::Member;
use crate::store::{Reject, StoreError};
use bytes::Bytes;
use mediator_wire::codes::perms;
use mediator_wire::frame::{error_frame, FrameWriter};
use mediator_wire::request::CreateChat;
use mediator_wire::response::GotMessage;
use mediator_wire::system::SystemEvent;
use mediator_wire::tlv::TlvMap;
use mediator_wire::{Command, PublicKey, Request, WireError};
use rand::RngCore;
use std::borrow::Cow;
use std::sync::Arc;

/// Bytes an answer adds to its bodies (record headers and tags), reserved with them.
const ANSWER_OVERHEAD: usize = 64 * 1024;

/// The ERR text for a failed command: the [`WireError`]'s own text, or for a database
/// error "db error" (with the SQLite error appended for SEND_MESSAGE, as the Go server does).
/// The one place where failures become text; it has no side effects (logging is the
/// caller's, [`Session::handle`]).
pub fn error_text(cmd: Command, failure: &Reject) -> Cow<'static, str> {
    match (failure, cmd) {
        (Reject::Wire(e), _) => Cow::Borrowed(e.text()),
        (Reject::Store(StoreError::Sqlite(e)), Command::SendMessage) => Cow::Owned(format!(
            "{} - failed to insert message: {e}",
            WireError::DbError.text()
        )),
        (Reject::Store(_), _) => Cow::Borrowed(WireError::DbError.text()),
    }
}

/// A handler's result: the response frame, then frames for this session only. A large
/// answer carries the room it reserved in the queue budget.
pub struct Reply {
    pub frame: Bytes,
    /// Pushes to this session itself, after the answer (pending invites after AUTH, the
    /// member-info request after SUBSCRIBE), as status-0 push frames.
    pub after: Vec<Bytes>,
    pub reserved: Option<Grant>,
}

impl Reply {
    fn only(frame: Bytes) -> Reply {
        Reply {
            frame,
            after: Vec::new(),
            reserved: None,
        }
    }

    /// An ERR frame with `text`.
    pub fn error(req_id: u16, text: &str) -> Reply {
        Reply::only(Bytes::from(error_frame(req_id, text)))
    }

    /// An ERR frame for `e`.
    pub fn refusal(req_id: u16, e: WireError) -> Reply {
        Reply::error(req_id, e.text())
    }
}

type Result<T> = std::result::Result<T, Reject>;

fn ok_empty(req_id: u16) -> Bytes {
    Bytes::from(FrameWriter::ok(req_id).finish())
}

fn random32() -> [u8; 32] {
    let mut r = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut r);
    r
}

/// Rank for moderation decisions: owner > admin > moderator > everyone else.
pub fn rank(p: u8) -> u8 {
    if p & perms::OWNER != 0 {
        4
    } else if p & perms::ADMIN != 0 {
        3
    } else if p & perms::MODERATOR != 0 {
        2
    } else {
        1
    }
}

fn require_moderator(m: Member) -> std::result::Result<(), Reject> {
    if m.perms & perms::MODERATION == 0 {
        return Err(Reject::Wire(WireError::InsufficientPerms));
    }
    Ok(())
}

/// Verifies an ed25519 signature strictly: weak (small-order) and non-canonical keys, and
/// small-order or non-canonical R, are refused (`yggnode::identity::check`). No honest
/// client holds or produces those; accepting them let anyone log in as a small-order key.
fn verify(key: &PublicKey, msg: &[u8], sig: &[u8; 64]) -> bool {
    yggnode::identity::verify(key, msg, sig)
}

/// One client session's command state.
pub struct Session {
    pub server: Arc<Server>,
    pub handle: Arc<SessionHandle>,
    pub user: Option<PublicKey>,
    /// Nonces issued to this session and not used yet.
    nonces: NonceBook,
}

impl Session {
    /// Takes a token from the rate limit of `subject` for `kind`, or fails with
    /// [`WireError::RateLimited`] (counted and logged with the source).
    fn limit(&self, kind: Kind, subject: &str, rate: Rate) -> Result<()> {
        if self.server.rates.allow(kind, subject, rate) {
            return Ok(());
        }
        events::note(
            Event::RateLimited,
            &self.handle.source,
            &format!("{kind:?} {subject}"),
        );
        Err(Reject::Wire(WireError::RateLimited))
    }

    /// [`Session::limit`] for the authenticated key's own bucket.
    fn limit_key(&self, kind: Kind, me: &PublicKey, rate: Rate) -> Result<()> {
        self.limit(kind, &hex::encode(me), rate)
    }

    pub fn new(server: Arc<Server>, handle: Arc<SessionHandle>) -> Session {
        let l = &server.limits;
        let nonces = NonceBook::new(
            l.nonces_per_session as usize,
            l.nonce_ttl,
            l.max_nonces as usize,
            server.nonces.clone(),
        );
        Session {
            server,
            handle,
            user: None,
            nonces,
        }
    }

    fn authed(&self, refusal: WireError) -> Result<PublicKey> {
        self.user.ok_or(Reject::Wire(refusal))
    }

    /// Handles one request and returns its reply (an ERR frame on failure).
    pub async fn handle(&mut self, cmd: Command, req_id: u16, payload: &[u8]) -> Reply {
        match self.dispatch(cmd, req_id, payload).await {
            Ok(reply) => reply,
            Err(failure) => {
                if let Reject::Store(e) = &failure {
                    tracing::error!(cmd = cmd.name(), error = %e, "database error");
                }
                Reply::error(req_id, &error_text(cmd, &failure))
            }
        }
    }

    async fn dispatch(&mut self, cmd: Command, req_id: u16, payload: &[u8]) -> Result<Reply> {
        let only = |frame: Bytes| Ok(Reply::only(frame));
        match cmd {
            // PING: payload ignored, no authentication (§5.3).
            Command::Ping => return only(ok_empty(req_id)),
            // CREATE_CHAT checks authentication before parsing, with its own text (§5.4).
            Command::CreateChat => {
                let me = self.authed(WireError::NotAuthenticated)?;
                let m = TlvMap::parse(payload)?;
                let req = CreateChat::decode(&m, &me)?;
                let l = &self.server.limits;
                self.limit_key(Kind::CreateChatByKey, &me, l.rate_create_chat_per_key)?;
                let source = self.handle.source.clone();
                self.limit(
                    Kind::CreateChatBySource,
                    &source,
                    l.rate_create_chat_per_source,
                )?;
                return only(self.create_chat(req_id, me, req).await?);
            }
            _ => {}
        }
        // Commands other than these check authentication first (§5); GET_NONCE, AUTH and
        // DELETE_CHAT (which checks it after the chat id, §11 S7) do not.
        let needs_auth_first =
            !matches!(cmd, Command::GetNonce | Command::Auth | Command::DeleteChat);
        if needs_auth_first {
            self.authed(WireError::AuthRequired)?;
        }
        let m = TlvMap::parse(payload)?;
        let req = Request::decode(cmd, &m)?;
        let me = self.user.unwrap_or([0; 32]);
        let l = &self.server.limits;
        match &req {
            Request::GetNonce { .. } => {
                let source = self.handle.source.clone();
                self.limit(Kind::NonceBySource, &source, l.rate_nonce_per_source)?
            }
            Request::SendMessage { .. } => {
                self.limit_key(Kind::SendMessageByKey, &me, l.rate_send_message_per_key)?
            }
            Request::Subscribe { .. } => {
                self.limit_key(Kind::SubscribeByKey, &me, l.rate_subscribe_per_key)?
            }
            Request::SendInvite { .. } => {
                self.limit_key(Kind::SendInviteByKey, &me, l.rate_send_invite_per_key)?
            }
            Request::UpdateMemberInfo { .. } => {
                self.limit_key(Kind::MemberInfoByKey, &me, l.rate_member_info_per_key)?
            }
            _ => {}
        }
        match req {
            Request::GetNonce { pubkey } => only(self.get_nonce(req_id, pubkey)?),
            Request::Auth {
                pubkey,
                nonce,
                signature,
            } => self.auth(req_id, pubkey, nonce, signature).await,
            Request::DeleteChat { chat_id } => only(self.delete_chat(req_id, chat_id).await?),
            Request::UpdateChatInfo(u) => only(self.update_chat_info(req_id, me, u).await?),
            Request::AddUser { chat_id, user } => {
                only(self.add_user(req_id, me, chat_id, user).await?)
            }
            Request::DeleteUser { chat_id, user } => {
                only(self.ban_user(req_id, me, chat_id, user).await?)
            }
            Request::LeaveChat { chat_id } => only(self.leave_chat(req_id, me, chat_id).await?),
            Request::GetUserChats => only(self.user_chats(req_id, me).await?),
            Request::SendMessage {
                chat_id,
                guid,
                blob,
            } => only(self.send_message(req_id, me, chat_id, guid, blob).await?),
            Request::DeleteMessage { chat_id, guid } => {
                only(self.delete_message(req_id, me, chat_id, guid).await?)
            }
            Request::GetLastMessageId { chat_id } => {
                only(self.last_message_id(req_id, me, chat_id).await?)
            }
            Request::Subscribe { chat_id } => self.subscribe(req_id, me, chat_id).await,
            Request::GetMessagesSince {
                chat_id,
                since_id,
                limit,
            } => {
                self.messages_since(req_id, me, chat_id, since_id, limit)
                    .await
            }
            Request::SendInvite { chat_id, to, data } => {
                only(self.send_invite(req_id, me, chat_id, to, data).await?)
            }
            Request::InviteResponse {
                invite_id,
                accepted,
            } => only(
                self.invite_response(req_id, me, invite_id, accepted)
                    .await?,
            ),
            Request::UpdateMemberInfo {
                chat_id,
                timestamp,
                info,
            } => only(
                self.update_member_info(req_id, me, chat_id, timestamp, info)
                    .await?,
            ),
            Request::GetMembersInfo {
                chat_id,
                last_update,
            } => self.members_info(req_id, me, chat_id, last_update).await,
            Request::GetMembers { chat_id } => only(self.members(req_id, me, chat_id).await?),
            Request::ChangeMemberStatus {
                chat_id,
                user,
                perms,
            } => only(self.change_status(req_id, me, chat_id, user, perms).await?),
            Request::Ping | Request::CreateChat(_) => only(ok_empty(req_id)),
        }
    }

    /// Room in the queue budget for an answer of about `bytes`: none below
    /// [`QUEUE_FAIR_SHARE`] (small answers never wait), else reserved before the answer is
    /// read from the database, so sessions that ask and never read cannot make the daemon
    /// hold more than the budget (see `crate::outbox`). While it is built an answer exists
    /// twice (the rows read and the frame written from them), so twice its size is reserved
    /// until it is queued.
    async fn room_for(&self, bytes: usize) -> Option<Grant> {
        if bytes <= QUEUE_FAIR_SHARE {
            return None;
        }
        Some(self.handle.reserve(2 * bytes + ANSWER_OVERHEAD).await)
    }

    /// The shape of every moderated change: `change` runs in one write transaction and
    /// returns the system event it caused (`None`: nothing changed, nothing is stored or
    /// pushed); the event is stored as a system message in the same transaction, and after
    /// the commit it is pushed to the chat's subscribers (this session too when `to_self`),
    /// then `after` runs on the hub. Returns whether an event was published.
    async fn change_and_announce<F, A>(
        &self,
        chat: i64,
        to_self: bool,
        change: F,
        after: A,
    ) -> Result<bool>
    where
        F: FnOnce(&dyn Db) -> std::result::Result<Option<SystemEvent>, Reject> + Send + 'static,
        A: FnOnce(&Hub) + Send + 'static,
    {
        let except = (!to_self).then_some(self.handle.id);
        moderation::announce(
            &self.server,
            chat,
            except,
            Box::new(change),
            Box::new(after),
        )
        .await
    }
}

/// Stores a system message stamped `now` in the current transaction and returns its push
/// frame.
fn stored_system_message(
    c: &dyn Db,
    chat: i64,
    key: &PublicKey,
    event: &SystemEvent,
    now: i64,
) -> std::result::Result<Bytes, Reject> {
    let body = event.encode();
    let ins = c.insert_system_message(chat, key, &body, now)?;
    Ok(Bytes::from(GotMessage::frame(
        chat, ins.id, ins.guid, ins.ts, key, &body,
    )))
}

/// A system message that is pushed but never stored (chat deleted, member on- or offline):
/// a TLV GOT_MESSAGE with message id 0 (§11 B1) and a guid derived from its body and time.
fn live_system_frame(chat: i64, key: &PublicKey, body: &[u8], now: i64) -> Bytes {
    let guid = mediator_wire::system::system_guid(body, now);
    Bytes::from(GotMessage::frame(chat, 0, guid, now, key, body))
}
