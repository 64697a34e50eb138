//! The moderation calls of the control service: each finds the chat's owner and runs the
//! protocol's own change (`crate::handlers::moderation`) with the owner as actor, so members
//! see exactly what an owner's command would have produced; each is recorded in the audit
//! log (in the change's own transaction when it succeeds).

use super::service::{Caller, Service};
use crate::handlers::moderation::{self, After, Change};
use crate::store::prelude::*;
use crate::store::Reject;
use mediator_control::v1::*;
use mediator_wire::codes::perms;
use mediator_wire::PublicKey;
use tonic::{Response, Status};

/// The perms byte an operator's `role` gives (as CHANGE_MEMBER_STATUS would carry it).
pub fn role_perms(role: &str) -> Option<u8> {
    Some(match role {
        "user" => perms::USER,
        "read-only" => perms::READ_ONLY,
        "moderator" => perms::MODERATOR,
        "admin" => perms::ADMIN,
        _ => return None,
    })
}

fn key(bytes: &[u8]) -> Result<PublicKey, Status> {
    bytes
        .try_into()
        .map_err(|_| Status::invalid_argument("the member key must be 32 bytes"))
}

/// A refusal by the protocol's rules becomes FAILED_PRECONDITION with the protocol's text
/// (NOT_FOUND for a missing chat, member or message); a database failure INTERNAL.
fn refused(e: Reject) -> Status {
    use mediator_wire::WireError as W;
    match e {
        Reject::Wire(
            w @ (W::NoSuchChat | W::TargetNotAMember | W::NotAMember | W::MessageNotFound),
        ) => Status::not_found(w.text()),
        Reject::Wire(w) => Status::failed_precondition(w.text()),
        other => Status::internal(format!("database error: {other}")),
    }
}

impl Service {
    /// The chat's owner, or NOT_FOUND.
    async fn owner(&self, chat: i64) -> Result<PublicKey, Status> {
        let owner = self
            .server
            .store
            .read(move |c| Ok(c.chat_owner(chat)?))
            .await
            .map_err(refused)?
            .ok_or_else(|| Status::not_found(format!("no chat {chat}")))?;
        owner
            .as_slice()
            .try_into()
            .map_err(|_| Status::internal(format!("chat {chat} has a malformed owner key")))
    }

    /// Runs a moderated change for `caller`, recording it in the audit log.
    async fn moderate(
        &self,
        caller: &Caller,
        action: &str,
        target: String,
        chat: i64,
        change: Change,
        after: After,
    ) -> Result<Response<ModerationReply>, Status> {
        let ok = self.entry(caller, action, target.clone(), "ok".into());
        let unchanged = self.entry(
            caller,
            action,
            target.clone(),
            "ok: nothing to change".into(),
        );
        let logged = move |c: &dyn Db| {
            let ev = change(c)?;
            c.record(if ev.is_some() { &ok } else { &unchanged })?;
            Ok(ev)
        };
        match moderation::announce(&self.server, chat, None, Box::new(logged), after).await {
            Ok(changed) => Ok(Response::new(ModerationReply { changed })),
            Err(e) => {
                let result = format!("failed: {e}");
                self.note(self.entry(caller, action, target, result)).await;
                Err(refused(e))
            }
        }
    }

    pub(super) async fn moderate_member(
        &self,
        caller: Caller,
        action: &str,
        r: MemberRequest,
    ) -> Result<Response<ModerationReply>, Status> {
        let user = key(&r.key)?;
        let chat = r.chat_id;
        let owner = self.owner(chat).await?;
        let clock = self.server.clock.clone();
        let (change, after): (Change, After) = match action {
            "members ban" => moderation::ban(clock, chat, owner, user),
            "members unban" => (
                moderation::unban(clock, chat, owner, user),
                Box::new(|_: &crate::hub::Hub| {}),
            ),
            "members remove" => moderation::depart(chat, user),
            other => return Err(Status::internal(format!("unknown action {other}"))),
        };
        let target = format!("chat {chat} member {}", hex::encode(user));
        self.moderate(&caller, action, target, chat, change, after)
            .await
    }

    pub(super) async fn set_role_as_owner(
        &self,
        caller: Caller,
        r: SetRoleRequest,
    ) -> Result<Response<ModerationReply>, Status> {
        let user = key(&r.key)?;
        let new = role_perms(&r.role).ok_or_else(|| {
            Status::invalid_argument(format!(
                "unknown role '{}' (user, read-only, moderator or admin)",
                r.role
            ))
        })?;
        let chat = r.chat_id;
        let owner = self.owner(chat).await?;
        let (change, after) =
            moderation::set_perms(self.server.clock.clone(), chat, owner, user, new);
        let target = format!("chat {chat} member {} role {}", hex::encode(user), r.role);
        self.moderate(&caller, "members role", target, chat, change, after)
            .await
    }

    pub(super) async fn delete_message_by_id(
        &self,
        caller: Caller,
        r: DeleteMessageRequest,
    ) -> Result<Response<ModerationReply>, Status> {
        let (chat, id) = (r.chat_id, r.message_id);
        let owner = self.owner(chat).await?;
        let guid = self
            .server
            .store
            .read(move |c| Ok(c.message_guid(chat, id)?))
            .await
            .map_err(refused)?
            .ok_or_else(|| Status::not_found(format!("no message {id} in chat {chat}")))?;
        let change = moderation::delete_message(chat, owner, guid);
        let target = format!("chat {chat} message {id}");
        self.moderate(
            &caller,
            "messages delete",
            target,
            chat,
            change,
            Box::new(|_: &crate::hub::Hub| {}),
        )
        .await
    }

    pub(super) async fn delete_chat_as_owner(
        &self,
        caller: Caller,
        r: DeleteChatRequest,
    ) -> Result<Response<ModerationReply>, Status> {
        let chat = r.chat_id;
        let owner = self.owner(chat).await?;
        let target = format!("chat {chat}");
        match moderation::delete_chat(&self.server, chat, owner, None).await {
            Ok(()) => {
                self.note(self.entry(&caller, "chats delete", target, "ok".into()))
                    .await;
                Ok(Response::new(ModerationReply { changed: true }))
            }
            Err(e) => {
                let result = format!("failed: {e}");
                self.note(self.entry(&caller, "chats delete", target, result))
                    .await;
                Err(refused(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_map_to_single_perms_bits() {
        assert_eq!(role_perms("user"), Some(0x10));
        assert_eq!(role_perms("read-only"), Some(0x08));
        assert_eq!(role_perms("moderator"), Some(0x20));
        assert_eq!(role_perms("admin"), Some(0x40));
        assert_eq!(
            role_perms("owner"),
            None,
            "ownership is not an operator's to move"
        );
        assert_eq!(role_perms("banned"), None, "bans have their own command");
    }
}
