//! Command handlers: one function per command of `mediator-protocol.md` §5, with the
//! Go server's check order and error strings, and the fixes of §11.
//!
//! A handler never touches a socket: it returns the response frame (and pushes meant for its
//! own session after the response); pushes to other sessions go through the hub from the
//! store's after-commit hook, so they leave in commit order. Every command's database changes,
//! system message included, run in one savepoint: a failing command applies nothing (C9).
//! Failures map to wire strings in exactly one place, [`Fail::text`].

use crate::events::{self, Event};
use crate::hub::{Hub, SessionHandle};
use crate::limits::Limits;
use crate::nonces::NonceBook;
use crate::outbox::QUEUE_FAIR_SHARE;
use crate::ratelimit::{Kind, Rate, RateLimiter, RATE_LIMITED};
use crate::shares::{Grant, SharedBudget};
use crate::store::queries::{self as q, now_secs, Member};
use crate::store::{Reject, Store, StoreError};
use bytes::Bytes;
use mediator_wire::codes::perms;
use mediator_wire::frame::{error_frame, FrameWriter};
use mediator_wire::request::{CreateChat, FieldError, UpdateChatInfo};
use mediator_wire::response::{self as resp, GotMemberInfo, GotMessage, Invite, MemberRecord};
use mediator_wire::system::SystemEvent;
use mediator_wire::tlv::{tag, TlvError, TlvMap};
use mediator_wire::{Command, PublicKey, Request};
use rand::RngCore;
use std::borrow::Cow;
use std::sync::Arc;

/// Most member info in one GET_MEMBERS_INFO answer when members share a time at the cut (see
/// [`members_info_page`]); under the real client's 50 MiB frame limit.
pub const MEMBERS_INFO_TIE_CEILING: usize = 40 * 1024 * 1024;

/// Bytes an answer adds to its bodies (record headers and tags), reserved with them.
const ANSWER_OVERHEAD: usize = 64 * 1024;

/// How far ahead of the server's clock a client's UPDATE_MEMBER_INFO time may be; later
/// times are stored as now plus this.
const MAX_CLOCK_AHEAD_SECS: i64 = 300;

/// Attempts to draw an unused random chat id before giving up.
const CHAT_ID_ATTEMPTS: usize = 8;

/// Everything the handlers share.
pub struct Server {
    pub store: Store,
    pub hub: Hub,
    /// The mediator's public key: author of system messages.
    pub key: PublicKey,
    pub limits: Limits,
    pub started: std::time::SystemTime,
    /// [`Limits::request_budget_bytes`], with a share per source.
    pub request_budget: SharedBudget,
    /// Outstanding nonces in all sessions ([`Limits::max_nonces`]).
    pub nonces: Arc<std::sync::atomic::AtomicUsize>,
    /// Rate limits per key and per source.
    pub rates: RateLimiter,
}

impl Server {
    /// Shared state for a daemon with these parts and limits.
    pub fn new(store: Store, key: PublicKey, limits: Limits) -> Server {
        Server {
            store,
            hub: Hub::new(&limits),
            key,
            started: std::time::SystemTime::now(),
            request_budget: SharedBudget::new(
                limits.request_budget_bytes,
                limits.max_request_bytes_per_source,
            ),
            nonces: Arc::default(),
            rates: RateLimiter::default(),
            limits,
        }
    }
}

/// Why a command failed.
#[derive(Debug)]
pub enum Fail {
    Wire(&'static str),
    Store(StoreError),
}

impl From<FieldError> for Fail {
    fn from(e: FieldError) -> Self {
        Fail::Wire(e.0)
    }
}
impl From<TlvError> for Fail {
    fn from(_: TlvError) -> Self {
        Fail::Wire("bad tlv payload")
    }
}
impl From<Reject> for Fail {
    fn from(r: Reject) -> Self {
        match r {
            Reject::Wire(t) => Fail::Wire(t),
            Reject::Store(e) => Fail::Store(e),
        }
    }
}

impl Fail {
    /// The one place where failures become wire error strings.
    pub fn text(&self, cmd: Command) -> Cow<'static, str> {
        match self {
            Fail::Wire(t) => Cow::Borrowed(t),
            Fail::Store(e) => {
                tracing::error!(cmd = cmd.name(), error = %e, "database error");
                match (cmd, e) {
                    (Command::SendMessage, StoreError::Sqlite(e)) => {
                        Cow::Owned(format!("db error - failed to insert message: {e}"))
                    }
                    _ => Cow::Borrowed("db error"),
                }
            }
        }
    }
}

/// A handler's result: the response frame, then frames for this session only. A large
/// answer carries the room it reserved in the queue budget.
pub struct Reply {
    pub frame: Bytes,
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
}

type Result<T> = std::result::Result<T, Fail>;

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
        return Err(Reject::Wire("insufficient perms"));
    }
    Ok(())
}

/// Text stored in a TEXT column when it is valid UTF-8, else the raw bytes as a BLOB, so
/// that names are kept byte for byte.
fn text_value(b: &[u8]) -> rusqlite::types::Value {
    match std::str::from_utf8(b) {
        Ok(s) => rusqlite::types::Value::Text(s.to_owned()),
        Err(_) => rusqlite::types::Value::Blob(b.to_vec()),
    }
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
    /// [`RATE_LIMITED`] (counted and logged with the source).
    fn limit(&self, kind: Kind, subject: &str, rate: Rate) -> Result<()> {
        if self.server.rates.allow(kind, subject, rate) {
            return Ok(());
        }
        events::note(
            Event::RateLimited,
            &self.handle.source,
            &format!("{kind:?} {subject}"),
        );
        Err(Fail::Wire(RATE_LIMITED))
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

    fn authed(&self, text: &'static str) -> Result<PublicKey> {
        self.user.ok_or(Fail::Wire(text))
    }

    /// Handles one request and returns its reply (an ERR frame on failure).
    pub async fn handle(&mut self, cmd: Command, req_id: u16, payload: &[u8]) -> Reply {
        match self.dispatch(cmd, req_id, payload).await {
            Ok(reply) => reply,
            Err(fail) => Reply::error(req_id, &fail.text(cmd)),
        }
    }

    async fn dispatch(&mut self, cmd: Command, req_id: u16, payload: &[u8]) -> Result<Reply> {
        let only = |frame: Bytes| Ok(Reply::only(frame));
        match cmd {
            // PING: payload ignored, no authentication (§5.3).
            Command::Ping => return only(ok_empty(req_id)),
            // CREATE_CHAT checks authentication before parsing, with its own text (§5.4).
            Command::CreateChat => {
                let me = self.authed("not authenticated")?;
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
            self.authed("auth required")?;
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
            Request::GetUserChats => {
                let chats = self
                    .server
                    .store
                    .read(move |c| Ok(q::user_chats(c, &me)?))
                    .await?;
                only(Bytes::from(resp::encode_user_chats(req_id, &chats)))
            }
            Request::SendMessage {
                chat_id,
                guid,
                blob,
            } => only(self.send_message(req_id, me, chat_id, guid, blob).await?),
            Request::DeleteMessage { chat_id, guid } => {
                only(self.delete_message(req_id, me, chat_id, guid).await?)
            }
            Request::GetLastMessageId { chat_id } => {
                let id = self
                    .server
                    .store
                    .read(move |c| {
                        q::require_member(c, chat_id, &me)?;
                        Ok(q::last_message_id(c, chat_id)?)
                    })
                    .await?;
                only(Bytes::from(resp::encode_i64(req_id, tag::MESSAGE_ID, id)))
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

    fn get_nonce(&mut self, req_id: u16, pubkey: PublicKey) -> Result<Bytes> {
        let nonce = random32();
        if self.nonces.issue(pubkey, nonce).is_err() {
            events::note(
                Event::NonceRefused,
                &self.handle.source,
                "max_nonces reached",
            );
            return Err(Fail::Wire("too many nonces"));
        }
        Ok(Bytes::from(resp::encode_nonce(req_id, &nonce)))
    }

    async fn auth(
        &mut self,
        req_id: u16,
        pubkey: PublicKey,
        nonce: [u8; 32],
        sig: [u8; 64],
    ) -> Result<Reply> {
        // A source that spent its failed-AUTH allowance costs no signature check.
        let (rate, source) = (
            self.server.limits.rate_failed_auth_per_source,
            self.handle.source.clone(),
        );
        if self
            .server
            .rates
            .spent(Kind::FailedAuthBySource, &source, rate)
        {
            events::note(Event::RateLimited, &source, "failed AUTH");
            return Err(Fail::Wire(RATE_LIMITED));
        }
        // The Go server's precedence: the nonce, then the signature.
        let failed = if !self.nonces.valid(&pubkey, &nonce) {
            Some(("unknown nonce", "unknown nonce".to_string()))
        } else {
            yggnode::identity::check(&pubkey, &nonce, &sig)
                .err()
                .map(|why| ("invalid signature", why.to_string()))
        };
        if let Some((text, why)) = failed {
            let detail = format!("key {}: {why}", hex::encode(pubkey));
            events::note(Event::AuthFailed, &source, &detail);
            self.server
                .rates
                .allow(Kind::FailedAuthBySource, &source, rate);
            return Err(Fail::Wire(text));
        }
        self.nonces.consume(&pubkey, &nonce);
        // Keys that belong to a chat or hold an invite are established: their sessions
        // never give way to newcomers at the session cap.
        let established = self
            .server
            .store
            .read(move |c| Ok(q::is_established(c, &pubkey)?))
            .await?;
        self.user = Some(pubkey);
        let done = self
            .server
            .hub
            .authenticate(self.handle.id, pubkey, established);
        if let Some(old) = done.replaced {
            tracing::debug!(old = old.id, new = self.handle.id, "session replaced");
            old.kill();
        }
        self.announce_offline(done.left).await;
        let after = self.pending_invites(pubkey).await;
        Ok(Reply {
            frame: ok_empty(req_id),
            after,
            reserved: None,
        })
    }

    /// Unanswered, unexpired invites for `user`, as GOT_INVITE frames (§11 L2: pushed on
    /// each AUTH until answered, not only once), at most about
    /// [`Limits::max_invite_push_bytes`] per AUTH: those never delivered first, then the
    /// newest, so a pile of spam invites costs a login little and every invite is still
    /// delivered over successive logins.
    async fn pending_invites(&self, user: PublicKey) -> Vec<Bytes> {
        let min_ts = now_secs() - self.server.limits.invite_ttl.as_secs() as i64;
        let max_bytes = self.server.limits.max_invite_push_bytes;
        let res = self
            .server
            .store
            .read(move |c| {
                Ok(q::invites_for(c, &user, min_ts, max_bytes)?
                    .into_iter()
                    .map(|(inv, s)| (inv.id, invite_frame(&inv, s)))
                    .collect::<Vec<_>>())
            })
            .await;
        match res {
            Ok(list) => {
                let ids: Vec<i64> = list.iter().map(|(id, _)| *id).collect();
                if !ids.is_empty() {
                    let store = self.server.store.clone();
                    tokio::spawn(async move {
                        let _ = store
                            .write(move |c| {
                                for id in ids {
                                    q::mark_invite_sent(c, id)?;
                                }
                                Ok(())
                            })
                            .await;
                    });
                }
                list.into_iter().map(|(_, f)| f).collect()
            }
            Err(e) => {
                tracing::error!(error = %e, "reading pending invites");
                Vec::new()
            }
        }
    }

    async fn create_chat(
        &mut self,
        req_id: u16,
        me: PublicKey,
        req: CreateChat<'_>,
    ) -> Result<Bytes> {
        let filter_ok = req.signature[0] == 0 && req.signature[1] == 0;
        let mut msg = [0u8; 36];
        msg[..32].copy_from_slice(&req.nonce);
        msg[32..].copy_from_slice(&req.counter);
        let sig_ok = filter_ok && verify(&me, &msg, &req.signature);
        let nonce_ok = self.nonces.valid(&me, &req.nonce);
        let max_chats = i64::from(self.server.limits.max_chats_per_user);
        let nonce = req.nonce;
        let name = text_value(req.name);
        let desc = text_value(req.desc);
        let avatar = req.avatar.map(<[u8]>::to_vec);
        let id = self
            .server
            .store
            .write(move |c| {
                if !nonce_ok {
                    return Err(Reject::Wire("unknown nonce"));
                }
                if !filter_ok {
                    return Err(Reject::Wire("signature filter failed"));
                }
                if !sig_ok {
                    return Err(Reject::Wire("invalid signature"));
                }
                if q::chats_owned_by(c, &me)? >= max_chats {
                    return Err(Reject::Wire("too many chats"));
                }
                let now = now_secs();
                for _ in 0..CHAT_ID_ATTEMPTS {
                    let mut b = [0u8; 8];
                    rand::rngs::OsRng.fill_bytes(&mut b);
                    let id = match (u64::from_be_bytes(b) & 0x7fff_ffff_ffff_ffff) as i64 {
                        0 => 1,
                        id => id,
                    };
                    if q::chat_exists(c, id)? {
                        continue;
                    }
                    q::create_chat(c, id, &me, &name, &desc, avatar.as_deref(), now)?;
                    return Ok(id);
                }
                Err(Reject::Wire("db chat meta"))
            })
            .await?;
        self.nonces.consume(&me, &nonce);
        self.server.hub.establish(&me);
        tracing::info!(chat = id, owner = %hex::encode(me), "chat created");
        Ok(Bytes::from(resp::encode_i64(req_id, tag::CHAT_ID, id)))
    }

    async fn delete_chat(&self, req_id: u16, chat: i64) -> Result<Bytes> {
        // §11 S7: authentication before existence, so nothing leaks to anonymous sessions.
        let me = self.authed("auth required")?;
        let (hub, key, sid) = (self.server.hub.clone(), self.server.key, self.handle.id);
        self.server
            .store
            .write_then(
                move |c| {
                    match q::chat_owner(c, chat)? {
                        None => return Err(Reject::Wire("no such chat")),
                        Some(owner) if owner != me => return Err(Reject::Wire("not an owner")),
                        Some(_) => {}
                    }
                    q::delete_chat(c, chat)?;
                    Ok(now_secs())
                },
                move |now| {
                    // §11 B1: a TLV GOT_MESSAGE with message id 0, not the old binary layout.
                    let body = SystemEvent::ChatDeleted {
                        actor: me,
                        random: random32(),
                    }
                    .encode();
                    let guid = mediator_wire::system::system_guid(&body, *now);
                    let frame = Bytes::from(GotMessage::frame(chat, 0, guid, *now, &key, &body));
                    hub.publish(chat, &frame, Some(sid));
                    hub.drop_chat(chat);
                },
            )
            .await?;
        tracing::info!(chat, "chat deleted");
        Ok(Bytes::from(resp::encode_delete_chat(req_id)))
    }

    /// Stores a system message in the current transaction and returns its push frame.
    fn system_message(
        c: &rusqlite::Connection,
        chat: i64,
        key: &PublicKey,
        event: &SystemEvent,
    ) -> std::result::Result<Bytes, Reject> {
        let body = event.encode();
        let now = now_secs();
        let ins = q::insert_system_message(c, chat, key, &body, now)?;
        Ok(Bytes::from(GotMessage::frame(
            chat, ins.id, ins.guid, ins.ts, key, &body,
        )))
    }

    async fn update_chat_info(
        &self,
        req_id: u16,
        me: PublicKey,
        u: UpdateChatInfo<'_>,
    ) -> Result<Bytes> {
        let chat = u.chat_id;
        let (name, desc, avatar) = (
            u.name.map(<[u8]>::to_vec),
            u.desc.map(<[u8]>::to_vec),
            u.avatar.map(<[u8]>::to_vec),
        );
        let (hub, key) = (self.server.hub.clone(), self.server.key);
        self.server
            .store
            .write_then(
                move |c| {
                    let m = q::require_member(c, chat, &me)?;
                    if m.perms & (perms::OWNER | perms::ADMIN) == 0 {
                        return Err(Reject::Wire("insufficient perms"));
                    }
                    q::update_settings(
                        c,
                        chat,
                        name.as_deref().map(text_value).as_ref(),
                        desc.as_deref().map(text_value).as_ref(),
                        avatar.as_deref(),
                    )?;
                    let ev = SystemEvent::ChatInfoChange {
                        actor: me,
                        name,
                        desc,
                        avatar,
                    };
                    Self::system_message(c, chat, &key, &ev)
                },
                move |frame| hub.publish(chat, frame, None),
            )
            .await?;
        Ok(ok_empty(req_id))
    }

    async fn add_user(
        &self,
        req_id: u16,
        me: PublicKey,
        chat: i64,
        user: PublicKey,
    ) -> Result<Bytes> {
        let (hub, key, sid) = (self.server.hub.clone(), self.server.key, self.handle.id);
        self.server
            .store
            .write_then(
                move |c| {
                    let caller = q::require_member(c, chat, &me)?;
                    require_moderator(caller)?;
                    let now = now_secs();
                    match q::member(c, chat, &user)? {
                        // Already a member: nothing changes (§11 S1: no demotion by upsert).
                        Some(t) if !t.banned => return Ok(None),
                        // Un-banning needs a caller who outranks the target (§11 S1) and
                        // ranks at least as high as whoever banned it.
                        Some(t) => {
                            if rank(caller.perms) <= rank(t.perms)
                                || rank(caller.perms) < q::ban_rank(c, chat, &user)?
                            {
                                return Err(Reject::Wire("insufficient perms"));
                            }
                            q::set_perms(c, chat, &user, perms::USER, now)?;
                            q::clear_ban(c, chat, &user)?;
                        }
                        None => q::add_member(c, chat, &user, now, now)?,
                    }
                    let ev = SystemEvent::UserAdded {
                        target: user,
                        actor: me,
                        random: random32(),
                    };
                    Ok(Some(Self::system_message(c, chat, &key, &ev)?))
                },
                move |frame| {
                    if let Some(f) = frame {
                        hub.publish(chat, f, Some(sid));
                        hub.establish(&user);
                    }
                },
            )
            .await?;
        Ok(ok_empty(req_id))
    }

    async fn ban_user(
        &self,
        req_id: u16,
        me: PublicKey,
        chat: i64,
        user: PublicKey,
    ) -> Result<Bytes> {
        let (hub, key, sid) = (self.server.hub.clone(), self.server.key, self.handle.id);
        self.server
            .store
            .write_then(
                move |c| {
                    let caller = q::require_member(c, chat, &me)?;
                    require_moderator(caller)?;
                    if user == me {
                        return Err(Reject::Wire("cannot ban yourself"));
                    }
                    let Some(target) = q::member(c, chat, &user)? else {
                        return Err(Reject::Wire("target user not a member"));
                    };
                    // §11 S2: the caller must outrank the target.
                    if rank(caller.perms) <= rank(target.perms) {
                        return Err(Reject::Wire("insufficient perms"));
                    }
                    if target.banned {
                        return Ok(None);
                    }
                    q::set_perms(c, chat, &user, target.perms | perms::BANNED, now_secs())?;
                    q::record_ban(c, chat, &user, rank(caller.perms))?;
                    let ev = SystemEvent::UserBanned {
                        target: user,
                        actor: me,
                        random: random32(),
                    };
                    Ok(Some(Self::system_message(c, chat, &key, &ev)?))
                },
                move |frame| {
                    if let Some(f) = frame {
                        hub.publish(chat, f, Some(sid));
                        // A banned member stops receiving the chat's pushes at once.
                        hub.unsubscribe_user(chat, &user);
                    }
                },
            )
            .await?;
        Ok(ok_empty(req_id))
    }

    async fn leave_chat(&self, req_id: u16, me: PublicKey, chat: i64) -> Result<Bytes> {
        let (hub, key, sid) = (self.server.hub.clone(), self.server.key, self.handle.id);
        self.server
            .store
            .write_then(
                move |c| {
                    let Some(m) = q::member(c, chat, &me)? else {
                        return Err(Reject::Wire("not a member"));
                    };
                    if m.perms & perms::OWNER != 0 {
                        return Err(Reject::Wire("owner can't leave"));
                    }
                    if m.banned {
                        return Err(Reject::Wire("banned user"));
                    }
                    let ev = SystemEvent::UserLeft {
                        user: me,
                        random: random32(),
                    };
                    let frame = Self::system_message(c, chat, &key, &ev)?;
                    q::remove_member(c, chat, &me)?;
                    Ok(frame)
                },
                move |frame| {
                    hub.unsubscribe(sid, chat);
                    hub.publish(chat, frame, Some(sid));
                    // The user's other devices are told, then stop receiving the chat.
                    hub.unsubscribe_user(chat, &me);
                },
            )
            .await?;
        Ok(ok_empty(req_id))
    }

    async fn send_message(
        &self,
        req_id: u16,
        me: PublicKey,
        chat: i64,
        guid: i64,
        blob: &[u8],
    ) -> Result<Bytes> {
        if blob.len() > self.server.limits.max_blob_bytes {
            return Err(Fail::Wire("message too large"));
        }
        let blob = blob.to_vec();
        let (hub, sid) = (self.server.hub.clone(), self.handle.id);
        let ins = self
            .server
            .store
            .write_answer_first(
                move |c| {
                    let m = q::require_member(c, chat, &me)?;
                    if m.perms & perms::READ_ONLY != 0 {
                        return Err(Reject::Wire("read-only user"));
                    }
                    let ins = q::insert_message(c, chat, guid, &me, &blob, now_secs())?;
                    let frame = (!ins.duplicate).then(|| {
                        Bytes::from(GotMessage::frame(
                            chat, ins.id, ins.guid, ins.ts, &me, &blob,
                        ))
                    });
                    Ok((ins, frame))
                },
                move |frame| {
                    if let Some(f) = frame {
                        hub.publish(chat, &f, Some(sid));
                    }
                },
            )
            .await?;
        Ok(Bytes::from(resp::encode_send_message(
            req_id, ins.guid, ins.id,
        )))
    }

    async fn delete_message(
        &self,
        req_id: u16,
        me: PublicKey,
        chat: i64,
        guid: i64,
    ) -> Result<Bytes> {
        let (hub, key) = (self.server.hub.clone(), self.server.key);
        self.server
            .store
            .write_then(
                move |c| {
                    let Some(author) = q::message_author(c, chat, guid)? else {
                        return Err(Reject::Wire("message not found"));
                    };
                    // §11 S9: deleting needs current membership, even for one's own message.
                    let caller = q::require_member(c, chat, &me)?;
                    if author != me {
                        require_moderator(caller)?;
                        if let Some(a) = q::member(c, chat, &author)? {
                            if !a.banned && rank(caller.perms) <= rank(a.perms) {
                                return Err(Reject::Wire("insufficient perms"));
                            }
                        }
                    }
                    q::delete_message(c, chat, guid)?;
                    let ev = SystemEvent::MessageDeleted { guid, deleter: me };
                    Self::system_message(c, chat, &key, &ev)
                },
                move |frame| hub.publish(chat, frame, None),
            )
            .await?;
        Ok(ok_empty(req_id))
    }

    async fn subscribe(&mut self, req_id: u16, me: PublicKey, chat: i64) -> Result<Reply> {
        if self.server.hub.subscription_count(self.handle.id)
            >= self.server.limits.max_subscriptions_per_session
        {
            return Err(Fail::Wire("too many subscriptions"));
        }
        let (hub, key, sid) = (self.server.hub.clone(), self.server.key, self.handle.id);
        // Runs through the writer so that it is ordered with bans and leaves; §11 B4:
        // read-only members may subscribe.
        let (last_id, changed_at) = self
            .server
            .store
            .write_then(
                move |c| {
                    q::require_member(c, chat, &me)?;
                    Ok((q::last_message_id(c, chat)?, q::changed_at(c, chat, &me)?))
                },
                move |_| {
                    hub.subscribe(sid, chat);
                    let now = now_secs();
                    let body = SystemEvent::MemberOnline {
                        user: me,
                        online: true,
                        timestamp: now,
                    }
                    .encode();
                    let guid = mediator_wire::system::system_guid(&body, now);
                    let f = Bytes::from(GotMessage::frame(chat, 0, guid, now, &key, &body));
                    hub.publish(chat, &f, None);
                },
            )
            .await?;
        let info = resp::RequestMemberInfo {
            chat_id: chat,
            last_update: changed_at,
        };
        Ok(Reply {
            frame: Bytes::from(resp::encode_i64(req_id, tag::MESSAGE_ID, last_id)),
            after: vec![Bytes::from(info.frame())],
            reserved: None,
        })
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

    async fn messages_since(
        &self,
        req_id: u16,
        me: PublicKey,
        chat: i64,
        since: i64,
        limit: u32,
    ) -> Result<Reply> {
        let max_bytes = self.server.limits.max_sync_bytes;
        let store = &self.server.store;
        // Sizes first; small pages are read at once, large ones after their room is free.
        let (count, bytes, rows) = store
            .read(move |c| {
                q::require_member(c, chat, &me)?;
                let (count, bytes) = q::messages_since_size(c, chat, since, limit, max_bytes)?;
                let rows = if bytes <= QUEUE_FAIR_SHARE && count > 0 {
                    Some(q::messages_since(c, chat, since, count, bytes)?)
                } else {
                    None
                };
                Ok((count, bytes, rows))
            })
            .await?;
        let reserved = self.room_for(bytes).await;
        let rows = match rows {
            Some(rows) => rows,
            None if count == 0 => Vec::new(),
            None => {
                store
                    .read(move |c| Ok(q::messages_since(c, chat, since, count, bytes)?))
                    .await?
            }
        };
        let cap = rows
            .iter()
            .map(|r| resp::message_record_len(r.body.len()))
            .sum::<usize>()
            + 6;
        let mut w = FrameWriter::ok_with_capacity(req_id, cap);
        resp::put_list_count(&mut w, rows.len());
        for r in &rows {
            let author: PublicKey = r.author.as_slice().try_into().unwrap_or([0; 32]);
            resp::put_message(&mut w, r.id, r.guid, r.ts, &author, &r.body);
        }
        Ok(Reply {
            frame: Bytes::from(w.finish()),
            after: Vec::new(),
            reserved,
        })
    }

    async fn send_invite(
        &self,
        req_id: u16,
        me: PublicKey,
        chat: i64,
        to: PublicKey,
        data: &[u8],
    ) -> Result<Bytes> {
        if data.len() > self.server.limits.max_blob_bytes {
            return Err(Fail::Wire("field too large"));
        }
        let data = data.to_vec();
        let max_invites = i64::from(self.server.limits.max_invites_per_user);
        let (hub, store) = (self.server.hub.clone(), self.server.store.clone());
        let delivered = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let delivered_hook = delivered.clone();
        let (id, _) = self
            .server
            .store
            .write_then(
                move |c| {
                    let caller = q::require_member(c, chat, &me)?;
                    require_moderator(caller)?;
                    // §11 S8: no invites to members or banned users.
                    match q::member(c, chat, &to)? {
                        Some(t) if t.banned => return Err(Reject::Wire("user is banned")),
                        Some(_) => return Err(Reject::Wire("user is already a member")),
                        None => {}
                    }
                    if q::invite_exists(c, &to, chat)? {
                        return Err(Reject::Wire("invite already exists"));
                    }
                    if q::pending_invites_for(c, &to)? >= max_invites {
                        return Err(Reject::Wire("too many invites"));
                    }
                    let now = now_secs();
                    let id = q::insert_invite(c, &me, &to, chat, &data, now)?;
                    let settings = q::settings(c, chat)?.ok_or(Reject::Wire("no such chat"))?;
                    let row = q::InviteRow {
                        id,
                        timestamp: now,
                        from: me.to_vec(),
                        to: to.to_vec(),
                        chat_id: chat,
                        data,
                    };
                    Ok((id, invite_frame(&row, settings)))
                },
                move |(_, frame)| {
                    if hub.send_to_user(&to, frame) > 0 {
                        delivered_hook.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                },
            )
            .await?;
        if delivered.load(std::sync::atomic::Ordering::Relaxed) {
            if let Err(e) = store.write(move |c| Ok(q::mark_invite_sent(c, id)?)).await {
                tracing::warn!(error = %e, "marking invite sent");
            }
        }
        Ok(ok_empty(req_id))
    }

    async fn invite_response(
        &self,
        req_id: u16,
        me: PublicKey,
        invite_id: i64,
        accepted: bool,
    ) -> Result<Bytes> {
        let (hub, key) = (self.server.hub.clone(), self.server.key);
        // The closure commits the invite's removal even when the answer is refused
        // (inviter without rights, banned invitee), so it reports those as an outcome.
        type Outcome = std::result::Result<Option<(i64, Bytes)>, &'static str>;
        let outcome: Outcome = self
            .server
            .store
            .write_then(
                move |c| {
                    let Some(inv) = q::invite(c, invite_id)? else {
                        return Err(Reject::Wire("invite not found"));
                    };
                    if inv.to != me {
                        return Err(Reject::Wire("not recipient of this invite"));
                    }
                    q::delete_invite(c, invite_id)?;
                    if !accepted {
                        return Ok(Ok(None));
                    }
                    let chat = inv.chat_id;
                    if !q::chat_exists(c, chat)? {
                        return Ok(Err("chat deleted"));
                    }
                    // §11 S8: the inviter must still be allowed to invite.
                    match q::member(c, chat, &inv.from)? {
                        Some(m) if !m.banned && m.perms & perms::MODERATION != 0 => {}
                        _ => return Ok(Err("inviter lost invite rights")),
                    }
                    match q::member(c, chat, &me)? {
                        // §11 S1: accepting an invite never lifts a ban.
                        Some(m) if m.banned => return Ok(Err("banned user")),
                        Some(_) => return Ok(Ok(None)),
                        None => {}
                    }
                    q::add_member(c, chat, &me, now_secs(), 0)?;
                    let inviter: PublicKey = inv.from.as_slice().try_into().unwrap_or([0; 32]);
                    let ev = SystemEvent::UserAdded {
                        target: me,
                        actor: inviter,
                        random: random32(),
                    };
                    Ok(Ok(Some((chat, Self::system_message(c, chat, &key, &ev)?))))
                },
                move |outcome: &Outcome| {
                    if let Ok(Some((chat, frame))) = outcome {
                        hub.publish(*chat, frame, None);
                        hub.establish(&me);
                    }
                },
            )
            .await?;
        match outcome {
            Ok(_) => Ok(ok_empty(req_id)),
            Err(text) => Err(Fail::Wire(text)),
        }
    }

    async fn update_member_info(
        &self,
        req_id: u16,
        me: PublicKey,
        chat: i64,
        ts: i64,
        info: &[u8],
    ) -> Result<Bytes> {
        if info.len() > self.server.limits.max_blob_bytes {
            return Err(Fail::Wire("field too large"));
        }
        let info = info.to_vec();
        let hub = self.server.hub.clone();
        // The time is the client's; a far-future one would make every member's client skip
        // later updates (GET_MEMBERS_INFO sends info changed after the newest time it has).
        let ts = ts.min(now_secs() + MAX_CLOCK_AHEAD_SECS);
        self.server
            .store
            .write_then(
                move |c| {
                    q::require_member(c, chat, &me)?;
                    q::set_member_info(c, chat, &me, &info, ts)?;
                    Ok(Bytes::from(GotMemberInfo::frame(chat, &me, &info, ts)))
                },
                move |frame| hub.publish(chat, frame, None),
            )
            .await?;
        Ok(ok_empty(req_id))
    }

    /// GET_MEMBERS_INFO, with at most [`Limits::max_sync_bytes`] of member info in one
    /// answer (see [`members_info_page`]), so four members with 16 MiB of info each no
    /// longer make an answer over the client's 50 MiB frame limit. Only the infos the
    /// answer includes are read, after their room in the queue budget is free.
    async fn members_info(
        &self,
        req_id: u16,
        me: PublicKey,
        chat: i64,
        last: i64,
    ) -> Result<Reply> {
        let max_bytes = self.server.limits.max_sync_bytes;
        let rows = self
            .server
            .store
            .read(move |c| {
                q::require_member(c, chat, &me)?;
                Ok(q::members(c, chat, false)?)
            })
            .await?;
        let page = members_info_page(&rows, last, max_bytes);
        let bytes: usize = page
            .iter()
            .map(|(i, _, _)| rows[*i].info_len.unwrap_or(0))
            .sum();
        let reserved = self.room_for(bytes + 64 * page.len()).await;
        let keys: Vec<Vec<u8>> = page
            .iter()
            .filter(|(_, with_info, _)| *with_info)
            .map(|(i, _, _)| rows[*i].pubkey.clone())
            .collect();
        let infos = if keys.is_empty() {
            Default::default()
        } else {
            self.server
                .store
                .read(move |c| {
                    let k: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
                    Ok(q::member_infos(c, chat, &k)?)
                })
                .await?
        };
        let cap = bytes + 64 * page.len() + 6;
        let mut w = FrameWriter::ok_with_capacity(req_id, cap);
        resp::put_list_count(&mut w, page.len());
        for (i, with_info, changed_at) in &page {
            let r = &rows[*i];
            let user: PublicKey = r.pubkey.as_slice().try_into().unwrap_or([0; 32]);
            let info = match with_info {
                true => infos.get(&r.pubkey).map_or(&[][..], Vec::as_slice),
                false => &[],
            };
            resp::put_member_info(&mut w, &user, info, *changed_at);
        }
        Ok(Reply {
            frame: Bytes::from(w.finish()),
            after: Vec::new(),
            reserved,
        })
    }

    async fn members(&self, req_id: u16, me: PublicKey, chat: i64) -> Result<Bytes> {
        let rows = self
            .server
            .store
            .read(move |c| {
                q::require_member(c, chat, &me)?;
                Ok(q::members(c, chat, false)?)
            })
            .await?;
        let mut w = FrameWriter::ok_with_capacity(req_id, 50 * rows.len() + 6);
        let recs: Vec<MemberRecord> = rows
            .iter()
            .filter_map(|r| {
                let user: PublicKey = r.pubkey.as_slice().try_into().ok()?;
                Some(MemberRecord {
                    user,
                    perms: r.perms,
                    online: self.server.hub.online(chat, &user),
                    last_seen: r.last_seen,
                })
            })
            .collect();
        resp::put_list_count(&mut w, recs.len());
        for r in &recs {
            r.put(&mut w);
        }
        Ok(Bytes::from(w.finish()))
    }

    async fn change_status(
        &self,
        req_id: u16,
        me: PublicKey,
        chat: i64,
        user: PublicKey,
        new: u8,
    ) -> Result<Bytes> {
        let (hub, key, sid) = (self.server.hub.clone(), self.server.key, self.handle.id);
        self.server
            .store
            .write_then(
                move |c| {
                    let caller = q::require_member(c, chat, &me)?;
                    if user == me {
                        return Err(Reject::Wire("cannot modify own permissions"));
                    }
                    let Some(target) = q::member(c, chat, &user)? else {
                        return Err(Reject::Wire("target user not a member"));
                    };
                    if caller.perms & (perms::OWNER | perms::ADMIN) == 0 {
                        return Err(Reject::Wire("insufficient perms"));
                    }
                    let caller_owner = caller.perms & perms::OWNER != 0;
                    if !caller_owner && target.perms & perms::OWNER != 0 {
                        return Err(Reject::Wire("cannot modify owner permissions"));
                    }
                    if new & !perms::VALID != 0 || new & perms::VALID == 0 {
                        return Err(Reject::Wire("invalid permission flags"));
                    }
                    // §11 S3: only the owner grants or removes owner/admin, or touches admins.
                    if !caller_owner
                        && (target.perms & perms::ADMIN != 0
                            || new & (perms::OWNER | perms::ADMIN) != 0)
                    {
                        return Err(Reject::Wire("insufficient perms"));
                    }
                    // A ban is lifted only by an equal or higher rank than whoever set it.
                    let lifts = target.perms & perms::BANNED != 0 && new & perms::BANNED == 0;
                    if lifts && rank(caller.perms) < q::ban_rank(c, chat, &user)? {
                        return Err(Reject::Wire("insufficient perms"));
                    }
                    q::set_perms(c, chat, &user, new, now_secs())?;
                    if lifts {
                        q::clear_ban(c, chat, &user)?;
                    } else if new & perms::BANNED != 0 && target.perms & perms::BANNED == 0 {
                        q::record_ban(c, chat, &user, rank(caller.perms))?;
                    }
                    let ev = SystemEvent::PermsChanged {
                        target: user,
                        perms: new,
                        actor: me,
                        random: random32(),
                    };
                    Self::system_message(c, chat, &key, &ev)
                },
                move |frame| {
                    hub.publish(chat, frame, Some(sid));
                    if new & perms::BANNED != 0 {
                        hub.unsubscribe_user(chat, &user);
                    }
                },
            )
            .await?;
        Ok(ok_empty(req_id))
    }

    /// Disconnect clean-up (§10, with C6/C8): unsubscribe, record `last_seen`, and tell each
    /// chat the user went offline where this was their last subscribed session.
    pub async fn finish(&self) {
        let dep = self.server.hub.unregister(self.handle.id);
        self.announce_offline(dep).await;
    }

    /// Records `last_seen` and pushes the offline event for each chat a departing identity
    /// (a session's end, or its re-AUTH as another key) has left.
    async fn announce_offline(&self, dep: crate::hub::Departure) {
        let Some(user) = dep.user else { return };
        if dep.offline_chats.is_empty() {
            return;
        }
        let (hub, key) = (self.server.hub.clone(), self.server.key);
        let chats = dep.offline_chats;
        let res = self
            .server
            .store
            .write_then(
                move |c| {
                    let now = now_secs();
                    for chat in &chats {
                        q::set_last_seen(c, *chat, &user, now)?;
                    }
                    Ok((now, chats))
                },
                move |(now, chats)| {
                    let body = SystemEvent::MemberOnline {
                        user,
                        online: false,
                        timestamp: *now,
                    }
                    .encode();
                    let guid = mediator_wire::system::system_guid(&body, *now);
                    for chat in chats {
                        // Another session may have subscribed since; then the user is online.
                        if hub.online(*chat, &user) {
                            continue;
                        }
                        let f = Bytes::from(GotMessage::frame(*chat, 0, guid, *now, &key, &body));
                        hub.publish(*chat, &f, None);
                    }
                },
            )
            .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "recording last_seen");
        }
    }
}

/// The entries of a GET_MEMBERS_INFO answer, in member order: (row index, whether its
/// info is sent, the time sent), with at most about `max_bytes` of info (one member's info
/// always fits). Fresh info (changed after `last`, §5.18) is taken oldest first; members
/// whose info does not fit this time are listed with empty info and `last` as their time,
/// so the client, which asks again with the newest time it stored, is sent them on its next
/// request. Info sharing its time with the last one taken goes with it, up to
/// [`MEMBERS_INFO_TIE_CEILING`]. Rows whose key is not 32 bytes are skipped.
pub fn members_info_page(
    rows: &[q::MemberRow],
    last: i64,
    max_bytes: usize,
) -> Vec<(usize, bool, i64)> {
    let fresh = |r: &q::MemberRow| r.info_len.is_some() && (last == 0 || r.changed_at > last);
    let mut order: Vec<usize> = (0..rows.len()).filter(|i| fresh(&rows[*i])).collect();
    order.sort_by_key(|i| rows[*i].changed_at);
    let info_len = |i: usize| rows[i].info_len.unwrap_or(0);
    let (mut fit, mut bytes) = (0, 0usize);
    while fit < order.len() && (fit == 0 || bytes + info_len(order[fit]) <= max_bytes) {
        bytes += info_len(order[fit]);
        fit += 1;
    }
    // Members sharing the time of the last one taken go in the same answer, up to the
    // ceiling: the client would skip those left out, as their time is not after the one it
    // keeps. Past the ceiling, the whole tie waits for the next request.
    if fit < order.len() && fit > 0 {
        let tie = rows[order[fit - 1]].changed_at;
        let mut with_tie = (fit, bytes);
        while with_tie.0 < order.len()
            && rows[order[with_tie.0]].changed_at == tie
            && with_tie.1 + info_len(order[with_tie.0]) <= MEMBERS_INFO_TIE_CEILING
        {
            with_tie.1 += info_len(order[with_tie.0]);
            with_tie.0 += 1;
        }
        fit = with_tie.0;
        if fit < order.len() && rows[order[fit]].changed_at == tie {
            while fit > 1 && rows[order[fit - 1]].changed_at == tie {
                fit -= 1;
            }
        }
    }
    let mut sent = vec![false; rows.len()];
    for i in &order[..fit] {
        sent[*i] = true;
    }
    rows.iter()
        .enumerate()
        .filter(|(_, r)| r.pubkey.len() == 32)
        .map(|(i, r)| match (sent[i], fresh(r)) {
            (true, _) => (i, true, r.changed_at),
            (false, true) => (i, false, last),
            (false, false) => (i, false, r.changed_at),
        })
        .collect()
}

/// GOT_INVITE frame for an invite row and its chat's settings.
fn invite_frame(inv: &q::InviteRow, s: q::Settings) -> Bytes {
    Bytes::from(
        Invite {
            invite_id: inv.id,
            chat_id: inv.chat_id,
            from: inv.from.as_slice().try_into().unwrap_or([0; 32]),
            timestamp: inv.timestamp,
            name: s.name,
            desc: s.desc,
            avatar: s.avatar,
            data: inv.data.clone(),
        }
        .frame(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(k: u8, info_len: Option<usize>, changed_at: i64) -> q::MemberRow {
        q::MemberRow {
            pubkey: vec![k; 32],
            perms: 0,
            banned: false,
            info_len,
            changed_at,
            last_seen: 0,
            accepted_at: 0,
        }
    }

    /// Four members with large info: each answer takes what fits, oldest first, and a
    /// client that asks again with the newest time it got receives the rest in turn.
    #[test]
    fn members_info_pages_cover_everyone_in_turn() {
        let rows = vec![
            row(1, Some(6), 40),
            row(2, Some(6), 10),
            row(3, None, 5),
            row(4, Some(6), 30),
            row(5, Some(6), 30),
        ];
        let mut last = 0;
        let mut seen = Vec::new();
        for _ in 0..4 {
            let page = members_info_page(&rows, last, 10);
            assert_eq!(page.len(), rows.len());
            let sent: Vec<usize> = page.iter().filter(|p| p.1).map(|p| p.0).collect();
            assert!(!sent.is_empty() || seen.len() == 4);
            // The client keeps the newest time it was sent.
            last = page.iter().map(|p| p.2).max().unwrap().max(last);
            seen.extend(sent);
        }
        seen.sort_unstable();
        assert_eq!(seen, vec![0, 1, 3, 4]);
        // Members sharing the time at the cut (3 and 4, at 30) go together.
        let page = members_info_page(&rows, 10, 7);
        let sent: Vec<usize> = page.iter().filter(|p| p.1).map(|p| p.0).collect();
        assert_eq!(sent, vec![3, 4]);
        assert_eq!(page[0], (0, false, 10));
    }
}
