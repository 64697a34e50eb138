//! Message commands: SEND_MESSAGE (answered once durable, pushed in commit order),
//! DELETE_MESSAGE (§11 S9), GET_LAST_MESSAGE_ID, SUBSCRIBE (through the writer so it is
//! ordered with bans and leaves, §11 B4) and GET_MESSAGES_SINCE, whose answer is encoded
//! straight from the rows as SQLite reads them (one pass, no copy of the rows) when it fits
//! the fair share of the queue budget; a larger page is sized first and read only once its
//! room in the budget is free.

use super::{live_system_frame, moderation, ok_empty, Reply, Result, Session};
use crate::outbox::QUEUE_FAIR_SHARE;
use crate::store::queries as q;
use crate::store::Reject;
use bytes::Bytes;
use mediator_wire::response::{self as resp, GotMessage, MessagesAnswer};
use mediator_wire::system::SystemEvent;
use mediator_wire::tlv::tag;
use mediator_wire::{PublicKey, WireError};

impl Session {
    pub(super) async fn send_message(
        &self,
        req_id: u16,
        me: PublicKey,
        chat: i64,
        guid: i64,
        blob: &[u8],
    ) -> Result<Bytes> {
        let clock = self.server.clock.clone();
        if blob.len() > self.server.limits.max_blob_bytes {
            return Err(Reject::Wire(WireError::MessageTooLarge));
        }
        let body = Bytes::copy_from_slice(blob);
        let pushed = body.clone();
        let (hub, sid) = (self.server.hub.clone(), self.handle.id);
        let msg = q::NewMessage {
            chat,
            guid,
            author: me,
            body,
        };
        let ins = self
            .server
            .store
            .send_message(msg, clock, move |ins| {
                // The push is encoded after the commit, off the writer thread; a retried
                // message was pushed when it was first stored.
                if !ins.duplicate {
                    let f = GotMessage::frame(chat, ins.id, ins.guid, ins.ts, &me, &pushed);
                    hub.publish(chat, &Bytes::from(f), Some(sid));
                }
            })
            .await?;
        Ok(Bytes::from(resp::encode_send_message(
            req_id, ins.guid, ins.id,
        )))
    }

    pub(super) async fn delete_message(
        &self,
        req_id: u16,
        me: PublicKey,
        chat: i64,
        guid: i64,
    ) -> Result<Bytes> {
        let change = moderation::delete_message(chat, me, guid);
        self.change_and_announce(chat, true, change, |_| {}).await?;
        Ok(ok_empty(req_id))
    }

    pub(super) async fn last_message_id(
        &self,
        req_id: u16,
        me: PublicKey,
        chat: i64,
    ) -> Result<Bytes> {
        let id = self
            .server
            .store
            .read(move |c| {
                c.require_member(chat, &me)?;
                Ok(c.last_message_id(chat)?)
            })
            .await?;
        Ok(Bytes::from(resp::encode_i64(req_id, tag::MESSAGE_ID, id)))
    }

    pub(super) async fn subscribe(
        &mut self,
        req_id: u16,
        me: PublicKey,
        chat: i64,
    ) -> Result<Reply> {
        let clock = self.server.clock.clone();
        if self.server.hub.subscription_count(self.handle.id)
            >= self.server.limits.max_subscriptions_per_session
        {
            return Err(Reject::Wire(WireError::TooManySubscriptions));
        }
        let (hub, key, sid) = (self.server.hub.clone(), self.server.key, self.handle.id);
        // Runs through the writer so that it is ordered with bans and leaves; §11 B4:
        // read-only members may subscribe.
        let (last_id, changed_at) = self
            .server
            .store
            .write_then(
                move |c| {
                    c.require_member(chat, &me)?;
                    Ok((c.last_message_id(chat)?, c.changed_at(chat, &me)?))
                },
                move |_| {
                    hub.subscribe(sid, chat);
                    let now = clock.now_secs();
                    let body = SystemEvent::MemberOnline {
                        user: me,
                        online: true,
                        timestamp: now,
                    }
                    .encode();
                    hub.publish(chat, &live_system_frame(chat, &key, &body, now), None);
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

    pub(super) async fn messages_since(
        &self,
        req_id: u16,
        me: PublicKey,
        chat: i64,
        since: i64,
        limit: u32,
    ) -> Result<Reply> {
        let max_bytes = self.server.limits.max_sync_bytes;
        let store = &self.server.store;
        // One pass for a page within the fair share; `None` when the page may be larger.
        let quick = max_bytes.min(QUEUE_FAIR_SHARE);
        let answer = store
            .read(move |c| {
                c.require_member(chat, &me)?;
                let mut a = MessagesAnswer::new(req_id, PAGE_START_CAPACITY);
                let (n, cut) =
                    c.each_message_since(chat, since, limit, quick, false, &mut |m| {
                        put(&mut a, m)
                    })?;
                let complete = !cut || (n > 0 && max_bytes <= QUEUE_FAIR_SHARE);
                Ok(complete.then_some(a))
            })
            .await?;
        if let Some(a) = answer {
            return Ok(Reply {
                frame: Bytes::from(a.finish()),
                after: Vec::new(),
                reserved: None,
            });
        }
        // A large page: its size first, then its room in the budget, then the rows.
        let (count, bytes) = store
            .read(move |c| Ok(c.messages_since_size(chat, since, limit, max_bytes)?))
            .await?;
        let reserved = self.room_for(bytes).await;
        let frame = store
            .read(move |c| {
                let mut a = MessagesAnswer::new(req_id, bytes);
                c.each_message_since(chat, since, count, bytes, true, &mut |m| put(&mut a, m))?;
                Ok(a.finish())
            })
            .await?;
        Ok(Reply {
            frame: Bytes::from(frame),
            after: Vec::new(),
            reserved,
        })
    }
}

/// Bytes a one-pass GET_MESSAGES_SINCE answer starts with (it grows as rows come).
const PAGE_START_CAPACITY: usize = 16 * 1024;

/// Appends one stored message to an answer.
fn put(a: &mut MessagesAnswer, m: q::MessageView<'_>) {
    let author: PublicKey = m.author.try_into().unwrap_or([0; 32]);
    a.push(m.id, m.guid, m.ts, &author, m.body);
}
