//! A Rust client for the Mimir mediator protocol over QUIC, for tests, benchmarks and interop
//! checks.
//!
//! [`connect`] opens a QUIC connection configured like a yggquic peer (no ALPN, no
//! certificate verification); [`Session::open`] opens one bidirectional stream, writes the
//! preamble and starts a reader task that routes responses by reqId and pushes (OK frames
//! whose reqId is a push code) to a queue. Every command has a typed helper, including
//! CREATE_CHAT with its proof of work.

use ed25519_dalek::{Signer, SigningKey};
use mediator_wire::frame::{decode_error_text, FrameWriter, ResponseHeader, HEADER_LEN, PREAMBLE};
use mediator_wire::response::{self as resp, GotMemberInfo, GotMessage, Invite};
use mediator_wire::tlv::{tag, TlvMap};
use mediator_wire::{Command, PublicKey, PushCode, Status};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

pub use mediator_wire::response::{MemberInfoRecord, MemberRecord, MessageRecord};
pub use mediator_wire::system::SystemEvent;

/// How long a request waits for its response (the real client's REQ_TIMEOUT_MS).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pushes buffered per session before the reader waits.
pub const PUSH_QUEUE: usize = 65_536;

/// A client-side failure.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("server error: {0}")]
    Server(String),
    #[error("timeout")]
    Timeout,
    #[error("session closed")]
    Closed,
    #[error("connect: {0}")]
    Connect(String),
    #[error("bad response: {0}")]
    Decode(String),
    #[error("io: {0}")]
    Io(String),
}

impl ClientError {
    /// The server's error text, if this is a server error.
    pub fn server_text(&self) -> Option<&str> {
        match self {
            ClientError::Server(t) => Some(t),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, ClientError>;

/// A server-initiated frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    Message(GotMessage),
    Invite(Invite),
    RequestMemberInfo(resp::RequestMemberInfo),
    MemberInfo(GotMemberInfo),
}

/// Opens a QUIC connection to a mediator on `addr`.
pub async fn connect(addr: SocketAddr) -> Result<quinn::Connection> {
    let from: std::net::IpAddr = if addr.is_ipv6() {
        std::net::Ipv6Addr::LOCALHOST.into()
    } else {
        std::net::Ipv4Addr::LOCALHOST.into()
    };
    connect_from(from, addr).await
}

/// Opens a QUIC connection to a mediator on `addr` from the local address `from` (another
/// loopback address, 127.0.0.2 say, is another source to the mediator's per-source limits).
pub async fn connect_from(from: std::net::IpAddr, addr: SocketAddr) -> Result<quinn::Connection> {
    let bind = SocketAddr::new(from, 0);
    let settings = mediator_quic::QuicSettings::default();
    let mut endpoint =
        quinn::Endpoint::client(bind).map_err(|e| ClientError::Connect(e.to_string()))?;
    endpoint.set_default_client_config(
        mediator_quic::client_config(&settings).map_err(|e| ClientError::Connect(e.to_string()))?,
    );
    endpoint
        .connect(addr, "mediator")
        .map_err(|e| ClientError::Connect(e.to_string()))?
        .await
        .map_err(|e| ClientError::Connect(e.to_string()))
}

type Pending = Arc<Mutex<HashMap<u16, oneshot::Sender<(Status, Vec<u8>)>>>>;

/// One session: one bidirectional stream (QUIC for Mimir 2.x, ygg_stream for 3.x).
pub struct Session {
    send: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
    pending: Pending,
    pushes: mpsc::Receiver<Push>,
    next_req: u16,
    reader: tokio::task::JoinHandle<()>,
    /// The key this session authenticated with.
    pub key: Option<SigningKey>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Session {
    /// Opens a stream on `conn` and writes the preamble (a Mimir 2.x session).
    pub async fn open(conn: &quinn::Connection) -> Result<Session> {
        let (send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        Session::over(recv, send, false).await
    }

    /// A session over any byte stream, writing the preamble. `mimir3` makes it behave as a
    /// Mimir 3.x client: pushes are recognised only with status 2, as that client does
    /// (a status-0 push is an unmatched answer); a 2.x session takes them only with status 0.
    pub async fn over<R, W>(mut recv: R, send: W, mimir3: bool) -> Result<Session>
    where
        R: tokio::io::AsyncRead + Send + Unpin + 'static,
        W: tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let mut send: Box<dyn tokio::io::AsyncWrite + Send + Unpin> = Box::new(send);
        send.write_all(&PREAMBLE)
            .await
            .map_err(|e| ClientError::Io(e.to_string()))?;
        let pending: Pending = Arc::default();
        let (ptx, prx) = mpsc::channel(PUSH_QUEUE);
        let p2 = pending.clone();
        let push_status = if mimir3 { Status::Push } else { Status::Ok };
        let reader = tokio::spawn(async move {
            let _ = read_loop(&mut recv, p2, ptx, push_status).await;
        });
        Ok(Session {
            send,
            pending,
            pushes: prx,
            next_req: rand::random(),
            reader,
            key: None,
        })
    }

    /// Stops reading (answers and pushes stay unread on the stream) and hands back the
    /// writing half: a client that no longer reads, for flood tests.
    pub fn into_writer(mut self) -> Box<dyn tokio::io::AsyncWrite + Send + Unpin> {
        std::mem::replace(&mut self.send, Box::new(tokio::io::sink()))
    }

    fn req_id(&mut self) -> u16 {
        loop {
            self.next_req = self.next_req.wrapping_add(1);
            let id = self.next_req;
            if id != 0 && PushCode::from_u16(id).is_none() {
                return id;
            }
        }
    }

    /// Sends raw bytes on the stream (for malformed-input tests).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.send
            .write_all(bytes)
            .await
            .map_err(|e| ClientError::Io(e.to_string()))
    }

    /// Closes the send side (FIN).
    pub async fn finish(&mut self) {
        let _ = self.send.shutdown().await;
    }

    /// Whether the server has closed the stream (the reader ended).
    pub fn is_closed(&self) -> bool {
        self.reader.is_finished()
    }

    /// Sends a request with a TLV payload built by `build`; returns the OK payload or the
    /// server's error text.
    pub async fn request(
        &mut self,
        cmd: Command,
        build: impl FnOnce(&mut FrameWriter),
    ) -> Result<Vec<u8>> {
        let id = self.req_id();
        let mut w = FrameWriter::request(cmd, id);
        build(&mut w);
        self.request_frame(id, w.finish()).await
    }

    /// Sends a prepared frame whose reqId is `id` and waits for its response.
    pub async fn request_frame(&mut self, id: u16, frame: Vec<u8>) -> Result<Vec<u8>> {
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        self.send_raw(&frame).await?;
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(Err(_)) => Err(ClientError::Closed),
            Ok(Ok((Status::Ok, payload))) => Ok(payload),
            Ok(Ok((Status::Err, payload))) => Err(ClientError::Server(
                decode_error_text(&payload).map_err(|e| ClientError::Decode(e.to_string()))?,
            )),
            Ok(Ok((Status::Push, _))) => {
                Err(ClientError::Decode("an answer with the push status".into()))
            }
        }
    }

    /// Waits up to `wait` for the next push.
    pub async fn next_push(&mut self, wait: Duration) -> Option<Push> {
        tokio::time::timeout(wait, self.pushes.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits for the next GOT_MESSAGE push that matches `pred`, skipping others.
    pub async fn wait_message(
        &mut self,
        wait: Duration,
        mut pred: impl FnMut(&GotMessage) -> bool,
    ) -> Option<GotMessage> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_push(left).await? {
                Push::Message(m) if pred(&m) => return Some(m),
                _ => continue,
            }
        }
    }

    /// Drains pushes already received.
    pub fn drain_pushes(&mut self) -> Vec<Push> {
        let mut v = Vec::new();
        while let Ok(p) = self.pushes.try_recv() {
            v.push(p);
        }
        v
    }

    pub async fn ping(&mut self) -> Result<()> {
        self.request(Command::Ping, |_| {}).await.map(|_| ())
    }

    pub async fn get_nonce(&mut self, key: &PublicKey) -> Result<[u8; 32]> {
        let p = self
            .request(Command::GetNonce, |w| {
                w.tlv(tag::PUBKEY, key);
            })
            .await?;
        fixed(&p, tag::NONCE)
    }

    /// GET_NONCE then AUTH with `key`.
    pub async fn auth(&mut self, key: &SigningKey) -> Result<()> {
        let pk = key.verifying_key().to_bytes();
        let nonce = self.get_nonce(&pk).await?;
        let sig = key.sign(&nonce).to_bytes();
        self.auth_with(&pk, &nonce, &sig).await?;
        self.key = Some(key.clone());
        Ok(())
    }

    /// AUTH with explicit fields.
    pub async fn auth_with(
        &mut self,
        pk: &PublicKey,
        nonce: &[u8; 32],
        sig: &[u8; 64],
    ) -> Result<()> {
        self.request(Command::Auth, |w| {
            w.tlv(tag::PUBKEY, pk)
                .tlv(tag::NONCE, nonce)
                .tlv(tag::SIGNATURE, sig);
        })
        .await
        .map(|_| ())
    }

    /// GET_NONCE, proof of work, CREATE_CHAT. Returns the chat id.
    pub async fn create_chat(
        &mut self,
        name: &str,
        desc: &str,
        avatar: Option<&[u8]>,
    ) -> Result<i64> {
        let key = self
            .key
            .clone()
            .ok_or(ClientError::Server("not authenticated".into()))?;
        let pk = key.verifying_key().to_bytes();
        let nonce = self.get_nonce(&pk).await?;
        // About 65,536 signatures: off the runtime's threads, or a few sessions solving at
        // once starve every other task of the runtime (their transports included) for
        // seconds, long enough for requests in flight to time out.
        let (counter, sig) = {
            let key = key.clone();
            tokio::task::spawn_blocking(move || proof_of_work(&key, &nonce))
                .await
                .map_err(|e| ClientError::Io(format!("proof of work: {e}")))?
        };
        let p = self
            .request(Command::CreateChat, |w| {
                w.tlv(tag::PUBKEY, &pk)
                    .tlv(tag::NONCE, &nonce)
                    .tlv(tag::COUNTER, &counter.to_be_bytes())
                    .tlv(tag::SIGNATURE, &sig)
                    .tlv(tag::CHAT_NAME, name.as_bytes())
                    .tlv(tag::CHAT_DESC, desc.as_bytes());
                if let Some(a) = avatar {
                    w.tlv(tag::CHAT_AVATAR, a);
                }
            })
            .await?;
        i64_of(&p, tag::CHAT_ID)
    }

    pub async fn delete_chat(&mut self, chat: i64) -> Result<Vec<u8>> {
        self.request(Command::DeleteChat, |w| {
            w.tlv(tag::CHAT_ID, &chat.to_be_bytes());
        })
        .await
    }

    pub async fn update_chat_info(
        &mut self,
        chat: i64,
        name: Option<&str>,
        desc: Option<&str>,
        avatar: Option<&[u8]>,
    ) -> Result<()> {
        self.request(Command::UpdateChatInfo, |w| {
            w.tlv(tag::CHAT_ID, &chat.to_be_bytes());
            if let Some(n) = name {
                w.tlv(tag::CHAT_NAME, n.as_bytes());
            }
            if let Some(d) = desc {
                w.tlv(tag::CHAT_DESC, d.as_bytes());
            }
            if let Some(a) = avatar {
                w.tlv(tag::CHAT_AVATAR, a);
            }
        })
        .await
        .map(|_| ())
    }

    async fn chat_user(&mut self, cmd: Command, chat: i64, user: &PublicKey) -> Result<()> {
        self.request(cmd, |w| {
            w.tlv(tag::CHAT_ID, &chat.to_be_bytes())
                .tlv(tag::USER_PUBKEY, user);
        })
        .await
        .map(|_| ())
    }

    pub async fn add_user(&mut self, chat: i64, user: &PublicKey) -> Result<()> {
        self.chat_user(Command::AddUser, chat, user).await
    }

    /// DELETE_USER: ban.
    pub async fn ban_user(&mut self, chat: i64, user: &PublicKey) -> Result<()> {
        self.chat_user(Command::DeleteUser, chat, user).await
    }

    async fn chat_only(&mut self, cmd: Command, chat: i64) -> Result<Vec<u8>> {
        self.request(cmd, |w| {
            w.tlv(tag::CHAT_ID, &chat.to_be_bytes());
        })
        .await
    }

    pub async fn leave_chat(&mut self, chat: i64) -> Result<()> {
        self.chat_only(Command::LeaveChat, chat).await.map(|_| ())
    }

    pub async fn user_chats(&mut self) -> Result<Vec<i64>> {
        let p = self.request(Command::GetUserChats, |_| {}).await?;
        resp::decode_user_chats(&p).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// SEND_MESSAGE; returns (final guid, message id).
    pub async fn send_message(&mut self, chat: i64, guid: i64, blob: &[u8]) -> Result<(i64, i64)> {
        let p = self
            .request(Command::SendMessage, |w| {
                w.tlv(tag::CHAT_ID, &chat.to_be_bytes())
                    .tlv(tag::MESSAGE_GUID, &guid.to_be_bytes())
                    .tlv(tag::TIMESTAMP, &(now_secs() * 1000).to_be_bytes())
                    .tlv(tag::MESSAGE_BLOB, blob);
            })
            .await?;
        Ok((i64_of(&p, tag::MESSAGE_GUID)?, i64_of(&p, tag::MESSAGE_ID)?))
    }

    pub async fn delete_message(&mut self, chat: i64, guid: i64) -> Result<()> {
        self.request(Command::DeleteMessage, |w| {
            w.tlv(tag::CHAT_ID, &chat.to_be_bytes())
                .tlv(tag::MESSAGE_GUID, &guid.to_be_bytes());
        })
        .await
        .map(|_| ())
    }

    pub async fn last_message_id(&mut self, chat: i64) -> Result<i64> {
        let p = self.chat_only(Command::GetLastMessageId, chat).await?;
        i64_of(&p, tag::MESSAGE_ID)
    }

    /// SUBSCRIBE; returns the last message id.
    pub async fn subscribe(&mut self, chat: i64) -> Result<i64> {
        let p = self.chat_only(Command::Subscribe, chat).await?;
        i64_of(&p, tag::MESSAGE_ID)
    }

    pub async fn messages_since(
        &mut self,
        chat: i64,
        since: i64,
        limit: u32,
    ) -> Result<Vec<MessageRecord>> {
        let p = self
            .request(Command::GetMessagesSince, |w| {
                w.tlv(tag::CHAT_ID, &chat.to_be_bytes())
                    .tlv(tag::SINCE_ID, &since.to_be_bytes())
                    .tlv(tag::LIMIT, &limit.to_be_bytes());
            })
            .await?;
        resp::decode_messages(&p).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Pages through GET_MESSAGES_SINCE from `since` until an empty batch, like the real client.
    pub async fn sync(&mut self, chat: i64, since: i64) -> Result<Vec<MessageRecord>> {
        let mut out = Vec::new();
        let mut current = since;
        loop {
            let batch = self.messages_since(chat, current, 100).await?;
            let Some(last) = batch.last() else { break };
            current = last.id;
            out.extend(batch);
        }
        Ok(out)
    }

    pub async fn send_invite(&mut self, chat: i64, to: &PublicKey, data: &[u8]) -> Result<()> {
        self.request(Command::SendInvite, |w| {
            w.tlv(tag::CHAT_ID, &chat.to_be_bytes())
                .tlv(tag::USER_PUBKEY, to)
                .tlv(tag::INVITE_DATA, data);
        })
        .await
        .map(|_| ())
    }

    pub async fn invite_response(&mut self, invite: i64, accept: bool) -> Result<()> {
        self.request(Command::InviteResponse, |w| {
            w.tlv(tag::INVITE_ID, &invite.to_be_bytes())
                .tlv(tag::ACCEPTED, &[u8::from(accept)]);
        })
        .await
        .map(|_| ())
    }

    pub async fn update_member_info(&mut self, chat: i64, ts: i64, info: &[u8]) -> Result<()> {
        self.request(Command::UpdateMemberInfo, |w| {
            w.tlv(tag::CHAT_ID, &chat.to_be_bytes())
                .tlv(tag::TIMESTAMP, &ts.to_be_bytes())
                .tlv(tag::MEMBER_INFO, info);
        })
        .await
        .map(|_| ())
    }

    pub async fn members_info(
        &mut self,
        chat: i64,
        last_update: i64,
    ) -> Result<Vec<MemberInfoRecord>> {
        let p = self
            .request(Command::GetMembersInfo, |w| {
                w.tlv(tag::CHAT_ID, &chat.to_be_bytes());
                if last_update != 0 {
                    w.tlv(tag::LAST_UPDATE, &last_update.to_be_bytes());
                }
            })
            .await?;
        resp::decode_members_info(&p).map_err(|e| ClientError::Decode(e.to_string()))
    }

    pub async fn members(&mut self, chat: i64) -> Result<Vec<MemberRecord>> {
        let p = self.chat_only(Command::GetMembers, chat).await?;
        resp::decode_members(&p).map_err(|e| ClientError::Decode(e.to_string()))
    }

    pub async fn change_member_status(
        &mut self,
        chat: i64,
        user: &PublicKey,
        perms: u8,
    ) -> Result<()> {
        self.request(Command::ChangeMemberStatus, |w| {
            w.tlv(tag::CHAT_ID, &chat.to_be_bytes())
                .tlv(tag::USER_PUBKEY, user)
                .tlv(tag::PERMS, &[perms]);
        })
        .await
        .map(|_| ())
    }
}

async fn read_loop<R: tokio::io::AsyncRead + Unpin>(
    recv: &mut R,
    pending: Pending,
    pushes: mpsc::Sender<Push>,
    push_status: Status,
) -> std::result::Result<(), ClientError> {
    let io = |e: std::io::Error| ClientError::Io(e.to_string());
    loop {
        let mut h = [0u8; HEADER_LEN];
        AsyncReadExt::read_exact(recv, &mut h).await.map_err(io)?;
        let header = ResponseHeader::decode(&h).map_err(|e| ClientError::Decode(e.to_string()))?;
        let mut payload = vec![0u8; header.len as usize];
        AsyncReadExt::read_exact(recv, &mut payload)
            .await
            .map_err(io)?;
        if header.status == push_status {
            if let Some(code) = PushCode::from_u16(header.req_id) {
                let push = decode_push(code, &payload)?;
                if pushes.send(push).await.is_err() {
                    return Ok(());
                }
                continue;
            }
        }
        let waiter = pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&header.req_id);
        if let Some(w) = waiter {
            let _ = w.send((header.status, payload));
        }
    }
}

fn decode_push(code: PushCode, p: &[u8]) -> Result<Push> {
    let d = |e: mediator_wire::response::DecodeError| ClientError::Decode(e.to_string());
    Ok(match code {
        PushCode::GotMessage => Push::Message(GotMessage::decode(p).map_err(d)?),
        PushCode::GotInvite => Push::Invite(Invite::decode(p).map_err(d)?),
        PushCode::RequestMemberInfo => {
            Push::RequestMemberInfo(resp::RequestMemberInfo::decode(p).map_err(d)?)
        }
        PushCode::GotMemberInfo => Push::MemberInfo(GotMemberInfo::decode(p).map_err(d)?),
    })
}

fn fixed<const N: usize>(p: &[u8], t: u8) -> Result<[u8; N]> {
    let m = TlvMap::parse(p).map_err(|e| ClientError::Decode(e.to_string()))?;
    m.fixed(t)
        .ok_or_else(|| ClientError::Decode(format!("missing tag {t:#04x}")))
}

fn i64_of(p: &[u8], t: u8) -> Result<i64> {
    fixed::<8>(p, t).map(i64::from_be_bytes)
}

/// Finds the counter whose signature over `nonce ‖ counter` starts with two zero bytes.
pub fn proof_of_work(key: &SigningKey, nonce: &[u8; 32]) -> (u32, [u8; 64]) {
    let mut msg = [0u8; 36];
    msg[..32].copy_from_slice(nonce);
    let mut counter: u32 = 0;
    loop {
        msg[32..].copy_from_slice(&counter.to_be_bytes());
        let sig = key.sign(&msg).to_bytes();
        if sig[0] == 0 && sig[1] == 0 {
            return (counter, sig);
        }
        counter = counter.wrapping_add(1);
    }
}

/// A fresh random ed25519 key.
pub fn random_key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

/// Current Unix time in seconds.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
