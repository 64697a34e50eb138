//! Chat commands: CREATE_CHAT (proof of work and nonce, §5.4), DELETE_CHAT (owner only,
//! authentication checked after the chat id, §11 S7), UPDATE_CHAT_INFO and GET_USER_CHATS.

use super::{moderation, ok_empty, verify, Result, Session};
use crate::store::prelude::*;
use crate::store::Reject;
use bytes::Bytes;
use mediator_wire::codes::perms;
use mediator_wire::request::{CreateChat, UpdateChatInfo};
use mediator_wire::response as resp;
use mediator_wire::system::SystemEvent;
use mediator_wire::tlv::tag;
use mediator_wire::{PublicKey, WireError};
use rand::RngCore;

/// Attempts to draw an unused random chat id before giving up.
const CHAT_ID_ATTEMPTS: usize = 8;

impl Session {
    pub(super) async fn create_chat(
        &mut self,
        req_id: u16,
        me: PublicKey,
        req: CreateChat<'_>,
    ) -> Result<Bytes> {
        let clock = self.server.clock.clone();
        // A blocked key's sessions end when the block is set; this covers the race.
        if self.server.blocks.blocks_key(&me, clock.now_secs()) {
            return Err(Reject::Wire(WireError::Blocked));
        }
        let filter_ok = req.signature[0] == 0 && req.signature[1] == 0;
        let mut msg = [0u8; 36];
        msg[..32].copy_from_slice(&req.nonce);
        msg[32..].copy_from_slice(&req.counter);
        let sig_ok = filter_ok && verify(&me, &msg, &req.signature);
        let nonce_ok = self.nonces.valid(&me, &req.nonce);
        let max_chats = i64::from(self.server.limits.max_chats_per_user);
        let nonce = req.nonce;
        let name = req.name.to_vec();
        let desc = req.desc.to_vec();
        let avatar = req.avatar.map(<[u8]>::to_vec);
        let id = self
            .server
            .store
            .write(move |c| {
                if !nonce_ok {
                    return Err(Reject::Wire(WireError::UnknownNonce));
                }
                if !filter_ok {
                    return Err(Reject::Wire(WireError::SignatureFilterFailed));
                }
                if !sig_ok {
                    return Err(Reject::Wire(WireError::InvalidSignature));
                }
                if c.chats_owned_by(&me)? >= max_chats {
                    return Err(Reject::Wire(WireError::TooManyChats));
                }
                let now = clock.now_secs();
                for _ in 0..CHAT_ID_ATTEMPTS {
                    let mut b = [0u8; 8];
                    rand::rngs::OsRng.fill_bytes(&mut b);
                    let id = match (u64::from_be_bytes(b) & 0x7fff_ffff_ffff_ffff) as i64 {
                        0 => 1,
                        id => id,
                    };
                    if c.chat_id_taken(id)? {
                        continue;
                    }
                    c.create_chat(id, &me, &name, &desc, avatar.as_deref(), now)?;
                    return Ok(id);
                }
                Err(Reject::Wire(WireError::NoChatId))
            })
            .await?;
        self.nonces.consume(&me, &nonce);
        self.server.hub.establish(&me);
        tracing::info!(chat = id, owner = %hex::encode(me), "chat created");
        Ok(Bytes::from(resp::encode_i64(req_id, tag::CHAT_ID, id)))
    }

    pub(super) async fn delete_chat(&self, req_id: u16, chat: i64) -> Result<Bytes> {
        // §11 S7: authentication before existence, so nothing leaks to anonymous sessions.
        let me = self.authed(WireError::AuthRequired)?;
        moderation::delete_chat(&self.server, chat, me, Some(self.handle.id)).await?;
        Ok(Bytes::from(resp::encode_delete_chat(req_id)))
    }

    pub(super) async fn update_chat_info(
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
        let change = move |c: &dyn Db| {
            let m = c.require_member(chat, &me)?;
            if m.perms & (perms::OWNER | perms::ADMIN) == 0 {
                return Err(Reject::Wire(WireError::InsufficientPerms));
            }
            c.update_settings(chat, name.as_deref(), desc.as_deref(), avatar.as_deref())?;
            Ok(Some(SystemEvent::ChatInfoChange {
                actor: me,
                name,
                desc,
                avatar,
            }))
        };
        self.change_and_announce(chat, true, change, |_| {}).await?;
        Ok(ok_empty(req_id))
    }

    pub(super) async fn user_chats(&self, req_id: u16, me: PublicKey) -> Result<Bytes> {
        let chats = self
            .server
            .store
            .read(move |c| Ok(c.user_chats(&me)?))
            .await?;
        Ok(Bytes::from(resp::encode_user_chats(req_id, &chats)))
    }
}
