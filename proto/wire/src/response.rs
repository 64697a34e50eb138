//! Typed responses and pushes with their fixed element order (`mediator-protocol.md` §5, §6).
//!
//! The server encodes with the `encode_*`/`write` functions straight into a [`FrameWriter`];
//! clients decode with the `decode` functions, which read list payloads element by element
//! the way the real client does (a record ends at its terminating tag: MESSAGE_BLOB for
//! messages, TIMESTAMP for member info, LAST_SEEN for members). Records are flat: a COUNT
//! element, then each record's elements in order, with no grouping (§3.3).

use crate::codes::PushCode;
use crate::frame::FrameWriter;
use crate::tlv::{self, tag, TlvError, TlvIter, TlvMap};
use crate::PublicKey;
use thiserror::Error;

/// The raw payload of a successful DELETE_CHAT response (not TLV, §5.5).
pub const DELETE_CHAT_OK_PAYLOAD: [u8; 1] = [0x01];

/// Why a response or push payload could not be decoded (client side).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error(transparent)]
    Tlv(#[from] TlvError),
    #[error("missing or invalid {0}")]
    Missing(&'static str),
    #[error("record incomplete at end of payload")]
    TruncatedRecord,
}

fn need<T>(v: Option<T>, what: &'static str) -> Result<T, DecodeError> {
    v.ok_or(DecodeError::Missing(what))
}

fn be_i64(v: &[u8], what: &'static str) -> Result<i64, DecodeError> {
    Ok(i64::from_be_bytes(need(v.try_into().ok(), what)?))
}

fn key(v: &[u8], what: &'static str) -> Result<PublicKey, DecodeError> {
    need(v.try_into().ok(), what)
}

fn byte(v: &[u8], what: &'static str) -> Result<u8, DecodeError> {
    match v {
        [b] => Ok(*b),
        _ => Err(DecodeError::Missing(what)),
    }
}

fn put_count(w: &mut FrameWriter, n: usize) {
    w.tlv(tag::COUNT, &(n as u32).to_be_bytes());
}

/// One stored message: a GET_MESSAGES_SINCE record and the body of a GOT_MESSAGE push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub id: i64,
    pub guid: i64,
    /// Server Unix seconds.
    pub timestamp: i64,
    pub author: PublicKey,
    pub blob: Vec<u8>,
}

/// Writes one message record (MESSAGE_ID, MESSAGE_GUID, TIMESTAMP, PUBKEY, MESSAGE_BLOB).
pub fn put_message(
    w: &mut FrameWriter,
    id: i64,
    guid: i64,
    timestamp: i64,
    author: &PublicKey,
    blob: &[u8],
) {
    w.tlv(tag::MESSAGE_ID, &id.to_be_bytes())
        .tlv(tag::MESSAGE_GUID, &guid.to_be_bytes())
        .tlv(tag::TIMESTAMP, &timestamp.to_be_bytes())
        .tlv(tag::PUBKEY, author)
        .tlv(tag::MESSAGE_BLOB, blob);
}

/// Encoded size of one message record with a blob of `blob_len` bytes.
pub fn message_record_len(blob_len: usize) -> usize {
    3 * tlv::element_len(8) + tlv::element_len(32) + tlv::element_len(blob_len)
}

/// A GET_MESSAGES_SINCE answer (§5.14) built one record at a time while the rows are read,
/// with no copy of the rows in between; the COUNT in front is filled in by [`finish`].
/// The bytes equal [`put_list_count`] followed by one [`put_message`] per record.
///
/// [`finish`]: MessagesAnswer::finish
pub struct MessagesAnswer {
    w: FrameWriter,
    count: u32,
}

impl MessagesAnswer {
    /// An empty answer to `req_id` with room for `capacity` bytes of records.
    pub fn new(req_id: u16, capacity: usize) -> Self {
        let mut w = FrameWriter::ok_with_capacity(req_id, tlv::element_len(4) + capacity);
        put_count(&mut w, 0);
        MessagesAnswer { w, count: 0 }
    }

    /// Appends one record.
    pub fn push(&mut self, id: i64, guid: i64, timestamp: i64, author: &PublicKey, blob: &[u8]) {
        put_message(&mut self.w, id, guid, timestamp, author, blob);
        self.count += 1;
    }

    /// Records so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The frame, with its COUNT.
    pub fn finish(mut self) -> Vec<u8> {
        // The COUNT element opens the payload: tag, one length byte, four value bytes.
        self.w
            .overwrite(tlv::element_len(4) - 4, &self.count.to_be_bytes());
        self.w.finish()
    }
}

/// GET_MESSAGES_SINCE response (§5.14): COUNT, then records.
pub fn decode_messages(payload: &[u8]) -> Result<Vec<MessageRecord>, DecodeError> {
    let mut out = Vec::new();
    let (mut id, mut guid, mut ts, mut author) = (None, None, None, None);
    for item in TlvIter::new(payload) {
        let (t, v) = item?;
        match t {
            tag::MESSAGE_ID => id = Some(be_i64(v, "message id")?),
            tag::MESSAGE_GUID => guid = Some(be_i64(v, "message guid")?),
            tag::TIMESTAMP => ts = Some(be_i64(v, "timestamp")?),
            tag::PUBKEY => author = Some(key(v, "author")?),
            tag::MESSAGE_BLOB => out.push(MessageRecord {
                id: need(id.take(), "message id")?,
                guid: need(guid.take(), "message guid")?,
                timestamp: need(ts.take(), "timestamp")?,
                author: need(author.take(), "author")?,
                blob: v.to_vec(),
            }),
            _ => {}
        }
    }
    if id.is_some() || guid.is_some() || ts.is_some() || author.is_some() {
        return Err(DecodeError::TruncatedRecord);
    }
    Ok(out)
}

/// GOT_MESSAGE push (§6.1): CHAT_ID, MESSAGE_ID, MESSAGE_GUID, TIMESTAMP, PUBKEY, MESSAGE_BLOB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GotMessage {
    pub chat_id: i64,
    pub message: MessageRecord,
}

impl GotMessage {
    /// Encodes the whole push frame.
    pub fn frame(
        chat_id: i64,
        id: i64,
        guid: i64,
        timestamp: i64,
        author: &PublicKey,
        blob: &[u8],
    ) -> Vec<u8> {
        let mut w = FrameWriter::push(
            PushCode::GotMessage,
            tlv::element_len(8) + message_record_len(blob.len()),
        );
        w.tlv(tag::CHAT_ID, &chat_id.to_be_bytes());
        put_message(&mut w, id, guid, timestamp, author, blob);
        w.finish()
    }

    /// Decodes the payload. Like the real client, a missing blob reads as empty.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let m = TlvMap::parse(payload)?;
        Ok(GotMessage {
            chat_id: need(m.i64(tag::CHAT_ID), "chat id")?,
            message: MessageRecord {
                id: need(m.i64(tag::MESSAGE_ID), "message id")?,
                guid: need(m.i64(tag::MESSAGE_GUID), "message guid")?,
                timestamp: need(m.i64(tag::TIMESTAMP), "timestamp")?,
                author: need(m.fixed(tag::PUBKEY), "author")?,
                blob: m.get(tag::MESSAGE_BLOB).unwrap_or(&[]).to_vec(),
            },
        })
    }
}

/// GOT_INVITE push (§6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub invite_id: i64,
    pub chat_id: i64,
    pub from: PublicKey,
    pub timestamp: i64,
    pub name: Vec<u8>,
    pub desc: Vec<u8>,
    /// Present only when the chat has an avatar (NULL avatars are omitted).
    pub avatar: Option<Vec<u8>>,
    pub data: Vec<u8>,
}

impl Invite {
    pub fn frame(&self) -> Vec<u8> {
        let cap = 512 + self.avatar.as_ref().map_or(0, Vec::len) + self.data.len();
        let mut w = FrameWriter::push(PushCode::GotInvite, cap);
        w.tlv(tag::INVITE_ID, &self.invite_id.to_be_bytes())
            .tlv(tag::CHAT_ID, &self.chat_id.to_be_bytes())
            .tlv(tag::PUBKEY, &self.from)
            .tlv(tag::TIMESTAMP, &self.timestamp.to_be_bytes())
            .tlv(tag::CHAT_NAME, &self.name)
            .tlv(tag::CHAT_DESC, &self.desc);
        if let Some(a) = &self.avatar {
            w.tlv(tag::CHAT_AVATAR, a);
        }
        w.tlv(tag::INVITE_DATA, &self.data);
        w.finish()
    }

    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let m = TlvMap::parse(payload)?;
        Ok(Invite {
            invite_id: need(m.i64(tag::INVITE_ID), "invite id")?,
            chat_id: need(m.i64(tag::CHAT_ID), "chat id")?,
            from: need(m.fixed(tag::PUBKEY), "inviter")?,
            timestamp: need(m.i64(tag::TIMESTAMP), "timestamp")?,
            name: need(m.get(tag::CHAT_NAME), "chat name")?.to_vec(),
            desc: m.get(tag::CHAT_DESC).unwrap_or(&[]).to_vec(),
            avatar: m.get(tag::CHAT_AVATAR).map(<[u8]>::to_vec),
            data: need(m.get(tag::INVITE_DATA), "invite data")?.to_vec(),
        })
    }
}

/// REQUEST_MEMBER_INFO push (§6.3): CHAT_ID, LAST_UPDATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestMemberInfo {
    pub chat_id: i64,
    pub last_update: i64,
}

impl RequestMemberInfo {
    pub fn frame(&self) -> Vec<u8> {
        let mut w = FrameWriter::push(PushCode::RequestMemberInfo, 20);
        w.tlv(tag::CHAT_ID, &self.chat_id.to_be_bytes())
            .tlv(tag::LAST_UPDATE, &self.last_update.to_be_bytes());
        w.finish()
    }

    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let m = TlvMap::parse(payload)?;
        Ok(RequestMemberInfo {
            chat_id: need(m.i64(tag::CHAT_ID), "chat id")?,
            last_update: need(m.i64(tag::LAST_UPDATE), "last update")?,
        })
    }
}

/// One GET_MEMBERS_INFO record: USER_PUBKEY, MEMBER_INFO, TIMESTAMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfoRecord {
    pub user: PublicKey,
    /// Empty means "no info or unchanged since LAST_UPDATE" (§5.18).
    pub info: Vec<u8>,
    pub timestamp: i64,
}

/// Writes one member-info record.
pub fn put_member_info(w: &mut FrameWriter, user: &PublicKey, info: &[u8], timestamp: i64) {
    w.tlv(tag::USER_PUBKEY, user)
        .tlv(tag::MEMBER_INFO, info)
        .tlv(tag::TIMESTAMP, &timestamp.to_be_bytes());
}

/// Decodes GET_MEMBERS_INFO (COUNT, then records ending at TIMESTAMP).
pub fn decode_members_info(payload: &[u8]) -> Result<Vec<MemberInfoRecord>, DecodeError> {
    let mut out = Vec::new();
    let (mut user, mut info) = (None, None);
    for item in TlvIter::new(payload) {
        let (t, v) = item?;
        match t {
            tag::USER_PUBKEY => user = Some(key(v, "user pubkey")?),
            tag::MEMBER_INFO => info = Some(v.to_vec()),
            tag::TIMESTAMP => out.push(MemberInfoRecord {
                user: need(user.take(), "user pubkey")?,
                info: info.take().unwrap_or_default(),
                timestamp: be_i64(v, "timestamp")?,
            }),
            _ => {}
        }
    }
    if user.is_some() || info.is_some() {
        return Err(DecodeError::TruncatedRecord);
    }
    Ok(out)
}

/// GOT_MEMBER_INFO push (§6.4): CHAT_ID, COUNT = 1, USER_PUBKEY, MEMBER_INFO, TIMESTAMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GotMemberInfo {
    pub chat_id: i64,
    pub record: MemberInfoRecord,
}

impl GotMemberInfo {
    pub fn frame(chat_id: i64, user: &PublicKey, info: &[u8], timestamp: i64) -> Vec<u8> {
        let mut w = FrameWriter::push(PushCode::GotMemberInfo, 80 + info.len());
        w.tlv(tag::CHAT_ID, &chat_id.to_be_bytes());
        put_count(&mut w, 1);
        put_member_info(&mut w, user, info, timestamp);
        w.finish()
    }

    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let m = TlvMap::parse(payload)?;
        let chat_id = need(m.i64(tag::CHAT_ID), "chat id")?;
        let mut records = decode_members_info(payload)?;
        if records.len() != 1 {
            return Err(DecodeError::Missing("single member-info record"));
        }
        Ok(GotMemberInfo {
            chat_id,
            record: records.remove(0),
        })
    }
}

/// One GET_MEMBERS record: USER_PUBKEY, PERMS, ONLINE, LAST_SEEN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberRecord {
    pub user: PublicKey,
    pub perms: u8,
    pub online: bool,
    /// Unix seconds; 0 = never.
    pub last_seen: i64,
}

impl MemberRecord {
    pub fn put(&self, w: &mut FrameWriter) {
        w.tlv(tag::USER_PUBKEY, &self.user)
            .tlv(tag::PERMS, &[self.perms])
            .tlv(tag::ONLINE, &[u8::from(self.online)])
            .tlv(tag::LAST_SEEN, &self.last_seen.to_be_bytes());
    }
}

/// Decodes GET_MEMBERS (COUNT, then records ending at LAST_SEEN).
pub fn decode_members(payload: &[u8]) -> Result<Vec<MemberRecord>, DecodeError> {
    let mut out = Vec::new();
    let (mut user, mut perms, mut online) = (None, None, None);
    for item in TlvIter::new(payload) {
        let (t, v) = item?;
        match t {
            tag::USER_PUBKEY => user = Some(key(v, "user pubkey")?),
            tag::PERMS => perms = Some(byte(v, "perms")?),
            tag::ONLINE => online = Some(byte(v, "online")? != 0),
            tag::LAST_SEEN => out.push(MemberRecord {
                user: need(user.take(), "user pubkey")?,
                perms: need(perms.take(), "perms")?,
                online: need(online.take(), "online")?,
                last_seen: be_i64(v, "last seen")?,
            }),
            _ => {}
        }
    }
    if user.is_some() || perms.is_some() || online.is_some() {
        return Err(DecodeError::TruncatedRecord);
    }
    Ok(out)
}

/// Writes a COUNT element (list responses start with one).
pub fn put_list_count(w: &mut FrameWriter, n: usize) {
    put_count(w, n);
}

/// GET_USER_CHATS response (§5.9): COUNT, then CHAT_ID repeated.
pub fn encode_user_chats(req_id: u16, chats: &[i64]) -> Vec<u8> {
    let mut w = FrameWriter::ok_with_capacity(req_id, 6 + chats.len() * 10);
    put_count(&mut w, chats.len());
    for c in chats {
        w.tlv(tag::CHAT_ID, &c.to_be_bytes());
    }
    w.finish()
}

/// Decodes GET_USER_CHATS.
pub fn decode_user_chats(payload: &[u8]) -> Result<Vec<i64>, DecodeError> {
    let mut out = Vec::new();
    for item in TlvIter::new(payload) {
        let (t, v) = item?;
        if t == tag::CHAT_ID {
            out.push(be_i64(v, "chat id")?);
        }
    }
    Ok(out)
}

/// An OK response carrying one 8-byte integer element (CHAT_ID, MESSAGE_ID, …).
pub fn encode_i64(req_id: u16, t: u8, v: i64) -> Vec<u8> {
    let mut w = FrameWriter::ok(req_id);
    w.tlv(t, &v.to_be_bytes());
    w.finish()
}

/// SEND_MESSAGE response (§5.10): MESSAGE_GUID then MESSAGE_ID.
pub fn encode_send_message(req_id: u16, guid: i64, id: i64) -> Vec<u8> {
    let mut w = FrameWriter::ok(req_id);
    w.tlv(tag::MESSAGE_GUID, &guid.to_be_bytes())
        .tlv(tag::MESSAGE_ID, &id.to_be_bytes());
    w.finish()
}

/// GET_NONCE response (§5.1).
pub fn encode_nonce(req_id: u16, nonce: &[u8; 32]) -> Vec<u8> {
    let mut w = FrameWriter::ok(req_id);
    w.tlv(tag::NONCE, nonce);
    w.finish()
}

/// DELETE_CHAT response: the raw byte 0x01 (§5.5).
pub fn encode_delete_chat(req_id: u16) -> Vec<u8> {
    let mut w = FrameWriter::ok(req_id);
    w.raw(&DELETE_CHAT_OK_PAYLOAD);
    w.finish()
}
