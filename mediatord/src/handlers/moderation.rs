//! Moderation as changes: the database change and the hub's follow-up of each moderating
//! command (ban, role change, departure, message deletion, chat deletion), as functions of
//! the acting key. Sessions run them for their authenticated user; the control service runs
//! them for the chat's owner (an operator acts as the owner would), so both paths store the
//! same rows and system messages and push the same frames.

use super::{live_system_frame, random32, rank, require_moderator, stored_system_message};
use crate::clock::Clock;
use crate::hub::Hub;
use crate::server::Server;
use crate::store::prelude::*;
use crate::store::Reject;
use mediator_wire::codes::perms;
use mediator_wire::system::SystemEvent;
use mediator_wire::{PublicKey, WireError};

/// A moderated change: runs in one write transaction and returns the system event it caused
/// (`None`: nothing changed, nothing is stored or pushed).
pub type Change = Box<dyn FnOnce(&dyn Db) -> Result<Option<SystemEvent>, Reject> + Send>;
/// What the hub does once the change's event is pushed.
pub type After = Box<dyn FnOnce(&Hub) + Send>;

/// Runs `change` in one write transaction, stores its event as a system message in the same
/// transaction and, after the commit, pushes it to the chat's subscribers (except the session
/// `except`), then runs `after` on the hub. Returns whether an event was published.
pub async fn announce(
    server: &Server,
    chat: i64,
    except: Option<u64>,
    change: Change,
    after: After,
) -> Result<bool, Reject> {
    let (hub, key) = (server.hub.clone(), server.key);
    let clock = server.clock.clone();
    let published = server
        .store
        .write_then(
            move |c| match change(c)? {
                Some(ev) => {
                    let frame = stored_system_message(c, chat, &key, &ev, clock.now_secs())?;
                    Ok(Some(frame))
                }
                None => Ok(None),
            },
            move |frame| {
                if let Some(f) = frame {
                    hub.publish(chat, f, except);
                    after(&hub);
                }
            },
        )
        .await?;
    Ok(published.is_some())
}

/// DELETE_USER: `actor` bans `user` (§11 S2: the actor must outrank the target). A banned
/// member stops receiving the chat's pushes at once.
pub fn ban(clock: Clock, chat: i64, actor: PublicKey, user: PublicKey) -> (Change, After) {
    let change = move |c: &dyn Db| {
        let caller = c.require_member(chat, &actor)?;
        require_moderator(caller)?;
        if user == actor {
            return Err(Reject::Wire(WireError::CannotBanYourself));
        }
        let Some(target) = c.member(chat, &user)? else {
            return Err(Reject::Wire(WireError::TargetNotAMember));
        };
        if rank(caller.perms) <= rank(target.perms) {
            return Err(Reject::Wire(WireError::InsufficientPerms));
        }
        if target.banned {
            return Ok(None);
        }
        c.set_perms(chat, &user, target.perms | perms::BANNED, clock.now_secs())?;
        c.record_ban(chat, &user, rank(caller.perms))?;
        Ok(Some(SystemEvent::UserBanned {
            target: user,
            actor,
            random: random32(),
        }))
    };
    let after = move |hub: &Hub| hub.unsubscribe_user(chat, &user);
    (Box::new(change), Box::new(after))
}

/// CHANGE_MEMBER_STATUS: `actor` gives `user` the perms byte `new` (see `apply_perms`).
pub fn set_perms(
    clock: Clock,
    chat: i64,
    actor: PublicKey,
    user: PublicKey,
    new: u8,
) -> (Change, After) {
    let change = move |c: &dyn Db| apply_perms(c, &clock, chat, actor, user, new);
    (Box::new(change), perms_after(chat, user, new))
}

/// An operator's unban: `actor` (the owner) gives `user` their perms without the ban bit, as a
/// CHANGE_MEMBER_STATUS would; nothing happens when `user` is not banned.
pub fn unban(clock: Clock, chat: i64, actor: PublicKey, user: PublicKey) -> Change {
    Box::new(move |c: &dyn Db| {
        let Some(target) = c.member(chat, &user)? else {
            return Err(Reject::Wire(WireError::TargetNotAMember));
        };
        if !target.banned {
            return Ok(None);
        }
        apply_perms(c, &clock, chat, actor, user, target.perms & !perms::BANNED)
    })
}

/// The rules of CHANGE_MEMBER_STATUS (§11 S3: only the owner grants or removes owner and
/// admin, or touches admins; a ban is lifted only by a rank at least that of whoever set it),
/// then the change and its event.
fn apply_perms(
    c: &dyn Db,
    clock: &Clock,
    chat: i64,
    actor: PublicKey,
    user: PublicKey,
    new: u8,
) -> Result<Option<SystemEvent>, Reject> {
    let caller = c.require_member(chat, &actor)?;
    if user == actor {
        return Err(Reject::Wire(WireError::CannotModifyOwnPerms));
    }
    let Some(target) = c.member(chat, &user)? else {
        return Err(Reject::Wire(WireError::TargetNotAMember));
    };
    if caller.perms & (perms::OWNER | perms::ADMIN) == 0 {
        return Err(Reject::Wire(WireError::InsufficientPerms));
    }
    let caller_owner = caller.perms & perms::OWNER != 0;
    if !caller_owner && target.perms & perms::OWNER != 0 {
        return Err(Reject::Wire(WireError::CannotModifyOwnerPerms));
    }
    if new & !perms::VALID != 0 || new & perms::VALID == 0 {
        return Err(Reject::Wire(WireError::InvalidPermFlags));
    }
    if !caller_owner
        && (target.perms & perms::ADMIN != 0 || new & (perms::OWNER | perms::ADMIN) != 0)
    {
        return Err(Reject::Wire(WireError::InsufficientPerms));
    }
    let lifts = target.perms & perms::BANNED != 0 && new & perms::BANNED == 0;
    if lifts && rank(caller.perms) < c.ban_rank(chat, &user)? {
        return Err(Reject::Wire(WireError::InsufficientPerms));
    }
    c.set_perms(chat, &user, new, clock.now_secs())?;
    if lifts {
        c.clear_ban(chat, &user)?;
    } else if new & perms::BANNED != 0 && target.perms & perms::BANNED == 0 {
        c.record_ban(chat, &user, rank(caller.perms))?;
    }
    Ok(Some(SystemEvent::PermsChanged {
        target: user,
        perms: new,
        actor,
        random: random32(),
    }))
}

/// After a perms change: a member now banned stops receiving the chat.
pub fn perms_after(chat: i64, user: PublicKey, new: u8) -> After {
    Box::new(move |hub: &Hub| {
        if new & perms::BANNED != 0 {
            hub.unsubscribe_user(chat, &user);
        }
    })
}

/// LEAVE_CHAT for `user` (who leaves, or whom an operator removes): the owner cannot leave
/// and a banned member stays banned. Every session of the user stops receiving the chat.
pub fn depart(chat: i64, user: PublicKey) -> (Change, After) {
    let change = move |c: &dyn Db| {
        let Some(m) = c.member(chat, &user)? else {
            return Err(Reject::Wire(WireError::NotAMember));
        };
        if m.perms & perms::OWNER != 0 {
            return Err(Reject::Wire(WireError::OwnerCannotLeave));
        }
        if m.banned {
            return Err(Reject::Wire(WireError::BannedUser));
        }
        c.remove_member(chat, &user)?;
        Ok(Some(SystemEvent::UserLeft {
            user,
            random: random32(),
        }))
    };
    let after = move |hub: &Hub| hub.unsubscribe_user(chat, &user);
    (Box::new(change), Box::new(after))
}

/// DELETE_MESSAGE: `actor` deletes the message `guid` (§11 S9: current membership needed,
/// and a moderator outranking the author for someone else's message).
pub fn delete_message(chat: i64, actor: PublicKey, guid: i64) -> Change {
    Box::new(move |c: &dyn Db| {
        let Some(author) = c.message_author(chat, guid)? else {
            return Err(Reject::Wire(WireError::MessageNotFound));
        };
        let caller = c.require_member(chat, &actor)?;
        if author != actor {
            require_moderator(caller)?;
            if let Some(a) = c.member(chat, &author)? {
                if !a.banned && rank(caller.perms) <= rank(a.perms) {
                    return Err(Reject::Wire(WireError::InsufficientPerms));
                }
            }
        }
        c.delete_message(chat, guid)?;
        Ok(Some(SystemEvent::MessageDeleted {
            guid,
            deleter: actor,
        }))
    })
}

/// DELETE_CHAT by its owner `actor`: the chat's rows go, and after the commit its
/// subscribers (except the session `except`) get CHAT_DELETED (pushed, not stored) and lose
/// the subscription, and its messages go to the sweeper (`crate::deleted_chats`).
pub async fn delete_chat(
    server: &Server,
    chat: i64,
    actor: PublicKey,
    except: Option<u64>,
) -> Result<(), Reject> {
    let clock = server.clock.clone();
    let (hub, key) = (server.hub.clone(), server.key);
    let deleted = server.deleted_chats.clone();
    server
        .store
        .write_then(
            move |c| {
                match c.chat_owner(chat)? {
                    None => return Err(Reject::Wire(WireError::NoSuchChat)),
                    Some(owner) if owner != actor => {
                        return Err(Reject::Wire(WireError::NotAnOwner))
                    }
                    Some(_) => {}
                }
                c.delete_chat(chat)?;
                Ok(clock.now_secs())
            },
            move |now| {
                let body = SystemEvent::ChatDeleted {
                    actor,
                    random: random32(),
                }
                .encode();
                hub.publish(chat, &live_system_frame(chat, &key, &body, *now), except);
                hub.drop_chat(chat);
                deleted.push(chat);
            },
        )
        .await?;
    tracing::info!(chat, "chat deleted");
    Ok(())
}
