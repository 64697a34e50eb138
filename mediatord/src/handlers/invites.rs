//! Invites: SEND_INVITE (moderators only, never to members or banned users, §11 S8; pushed
//! at once to the invitee's live sessions; sent again only once the pending one is
//! [`REINVITE_AFTER_SECS`] old, as Mimir 3.x's mediator allows), INVITE_RESPONSE (the inviter's rights are checked
//! again on acceptance, and a ban is never lifted by one, §11 S1) and the GOT_INVITE frame
//! that AUTH also sends for invites still unanswered.

use super::{ok_empty, random32, require_moderator, stored_system_message, Result, Session};
use crate::store::queries as q;
use crate::store::Reject;
use bytes::Bytes;
use mediator_wire::codes::perms;
use mediator_wire::response::Invite;
use mediator_wire::system::SystemEvent;
use mediator_wire::{PublicKey, WireError};
use std::sync::Arc;

/// A pending invite may be sent again (renewed: new time, inviter and data, pushed again)
/// once it is this old; before, SEND_INVITE gets "invite already exists". One hour, as the
/// Mimir 3.x reference mediator does.
pub const REINVITE_AFTER_SECS: i64 = 3600;

impl Session {
    pub(super) async fn send_invite(
        &self,
        req_id: u16,
        me: PublicKey,
        chat: i64,
        to: PublicKey,
        data: &[u8],
    ) -> Result<Bytes> {
        let clock = self.server.clock.clone();
        if data.len() > self.server.limits.max_blob_bytes {
            return Err(Reject::Wire(WireError::FieldTooLarge));
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
                    let caller = c.require_member(chat, &me)?;
                    require_moderator(caller)?;
                    // §11 S8: no invites to members or banned users.
                    match c.member(chat, &to)? {
                        Some(t) if t.banned => return Err(Reject::Wire(WireError::UserIsBanned)),
                        Some(_) => return Err(Reject::Wire(WireError::AlreadyAMember)),
                        None => {}
                    }
                    let now = clock.now_secs();
                    let id = match c.pending_invite(&to, chat)? {
                        // Mimir 3.x's rule (docs/mimir3.md §2.3): an invite may be sent
                        // again once it is an hour old; it is renewed and pushed again.
                        Some((_, sent)) if now - sent < REINVITE_AFTER_SECS => {
                            return Err(Reject::Wire(WireError::InviteExists));
                        }
                        Some((id, _)) => {
                            c.refresh_invite(id, &me, &data, now)?;
                            id
                        }
                        None => {
                            if c.pending_invites_for(&to)? >= max_invites {
                                return Err(Reject::Wire(WireError::TooManyInvites));
                            }
                            c.insert_invite(&me, &to, chat, &data, now)?
                        }
                    };
                    let settings = c
                        .settings(chat)?
                        .ok_or(Reject::Wire(WireError::NoSuchChat))?;
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
            if let Err(e) = store.write(move |c| Ok(c.mark_invite_sent(id)?)).await {
                tracing::warn!(error = %e, "marking invite sent");
            }
        }
        Ok(ok_empty(req_id))
    }

    pub(super) async fn invite_response(
        &self,
        req_id: u16,
        me: PublicKey,
        invite_id: i64,
        accepted: bool,
    ) -> Result<Bytes> {
        let clock = self.server.clock.clone();
        let (hub, key) = (self.server.hub.clone(), self.server.key);
        // The closure commits the invite's removal even when the answer is refused
        // (inviter without rights, banned invitee), so it reports those as an outcome.
        type Outcome = std::result::Result<Option<(i64, Bytes)>, WireError>;
        let outcome: Outcome = self
            .server
            .store
            .write_then(
                move |c| {
                    let Some(inv) = c.invite(invite_id)? else {
                        return Err(Reject::Wire(WireError::InviteNotFound));
                    };
                    if inv.to != me {
                        return Err(Reject::Wire(WireError::NotInviteRecipient));
                    }
                    c.delete_invite(invite_id)?;
                    if !accepted {
                        return Ok(Ok(None));
                    }
                    let chat = inv.chat_id;
                    if !c.chat_exists(chat)? {
                        return Ok(Err(WireError::ChatDeleted));
                    }
                    // §11 S8: the inviter must still be allowed to invite.
                    match c.member(chat, &inv.from)? {
                        Some(m) if !m.banned && m.perms & perms::MODERATION != 0 => {}
                        _ => return Ok(Err(WireError::InviterLostRights)),
                    }
                    match c.member(chat, &me)? {
                        // §11 S1: accepting an invite never lifts a ban.
                        Some(m) if m.banned => return Ok(Err(WireError::BannedUser)),
                        Some(_) => return Ok(Ok(None)),
                        None => {}
                    }
                    c.add_member(chat, &me, clock.now_secs(), 0)?;
                    let inviter: PublicKey = inv.from.as_slice().try_into().unwrap_or([0; 32]);
                    let ev = SystemEvent::UserAdded {
                        target: me,
                        actor: inviter,
                        random: random32(),
                    };
                    Ok(Ok(Some((
                        chat,
                        stored_system_message(c, chat, &key, &ev, clock.now_secs())?,
                    ))))
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
            Err(text) => Err(Reject::Wire(text)),
        }
    }
}

/// GOT_INVITE frame for an invite row and its chat's settings.
pub(super) fn invite_frame(inv: &q::InviteRow, s: q::Settings) -> Bytes {
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
