//! The raw quinn baseline: a tiny echo/fan-out server with the mediator's framing and the
//! same QUIC configuration (`mediator_quic::server_config`, so TLS and transport parameters are
//! identical) but no mediator logic: no database, no signature checks, no permissions.
//!
//! It answers just enough of the protocol for the load generator to run unchanged: GET_NONCE
//! (a fixed nonce), AUTH (accepted), CREATE_CHAT (a new id), SUBSCRIBE (joins an in-memory
//! subscriber list), SEND_MESSAGE (a GOT_MESSAGE push to every other subscriber of the chat,
//! then the ack) and an empty OK for anything else. With `--keep-messages` it also keeps every
//! message in memory and answers GET_MESSAGES_SINCE with up to LIMIT of them in one answer,
//! encoded by the daemon's own encoder: the sync baseline of the transport and the client,
//! without storage or byte budgets. Like mediatord, each session has one writer
//! task draining a bounded queue of [`SESSION_QUEUE`] frames; unlike mediatord, a full
//! subscriber queue makes the sender wait instead of disconnecting the subscriber, so the
//! baseline's maximum rate is what the transport (and the receiving clients) can sustain
//! without loss.

use anyhow::{Context, Result};
use bytes::Bytes;
use mediator_wire::frame::{FrameWriter, RequestHeader, HEADER_LEN, PREAMBLE};
use mediator_wire::response::{
    encode_i64, encode_nonce, encode_send_message, GotMessage, MessagesAnswer,
};
use mediator_wire::tlv::{tag, TlvMap};
use mediator_wire::Command;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Frames queued per session before a subscriber counts as too slow (mediatord's default).
pub const SESSION_QUEUE: usize = 1_024;

type Subscribers = Arc<Vec<(u64, mpsc::Sender<Bytes>)>>;

/// A kept message: id, guid, timestamp, author, body.
type Kept = (i64, i64, i64, [u8; 32], Bytes);

#[derive(Default)]
struct Hub {
    chats: Mutex<HashMap<i64, Subscribers>>,
    /// Every message by chat, in id order, when the server keeps them (`--keep-messages`).
    kept: Option<Mutex<HashMap<i64, Vec<Kept>>>>,
    next_chat: AtomicI64,
    next_message: AtomicI64,
    next_session: AtomicU64,
}

impl Hub {
    /// A GET_MESSAGES_SINCE answer: up to `limit` kept messages after `since`.
    fn page(&self, rid: u16, chat: i64, since: i64, limit: u32) -> Vec<u8> {
        let Some(kept) = &self.kept else {
            return MessagesAnswer::new(rid, 0).finish();
        };
        let kept = kept.lock().unwrap_or_else(|p| p.into_inner());
        let rows = kept.get(&chat).map(Vec::as_slice).unwrap_or(&[]);
        let start = rows.partition_point(|m| m.0 <= since);
        let rows = &rows[start..(start + limit as usize).min(rows.len())];
        let size: usize = rows.iter().map(|m| m.4.len() + 96).sum();
        let mut answer = MessagesAnswer::new(rid, size);
        for (id, guid, ts, author, body) in rows {
            answer.push(*id, *guid, *ts, author, body);
        }
        answer.finish()
    }
}

/// Serves until the process is killed. Prints `listening quic ADDR` and a key line like
/// mediatord so the same start-up code can drive it. `keep_messages` keeps every message for
/// GET_MESSAGES_SINCE (only for the sync baseline: memory grows with every message).
pub async fn serve(listen: SocketAddr, keep_messages: bool) -> Result<()> {
    let seed: [u8; 32] = rand::random();
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    let settings = mediator_quic::QuicSettings::default();
    let server = mediator_quic::server_config(&seed, &settings).context("QUIC server config")?;
    let endpoint_cfg = mediator_quic::endpoint_config(&settings).context("endpoint config")?;
    let socket = std::net::UdpSocket::bind(listen).with_context(|| format!("binding {listen}"))?;
    let runtime = quinn::default_runtime().context("no quinn runtime")?;
    let endpoint = quinn::Endpoint::new(endpoint_cfg, Some(server), socket, runtime)?;
    println!("listening quic {}", endpoint.local_addr()?);
    println!("mediatord public key {}", hex::encode(public));
    let hub = Arc::new(Hub {
        kept: keep_messages.then(Mutex::default),
        ..Hub::default()
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => break,
            },
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        };
        let hub = hub.clone();
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            while let Ok((send, recv)) = conn.accept_bi().await {
                tokio::spawn(session(hub.clone(), send, recv));
            }
        });
    }
    endpoint.close(0u32.into(), b"shutting down");
    Ok(())
}

async fn session(hub: Arc<Hub>, mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
    let id = hub.next_session.fetch_add(1, Relaxed);
    let mut pre = [0u8; 2];
    if recv.read_exact(&mut pre).await.is_err() || pre != PREAMBLE {
        return;
    }
    let (tx, mut rx) = mpsc::channel::<Bytes>(SESSION_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if send.write_all(&f).await.is_err() {
                return;
            }
        }
        let _ = send.finish();
    });
    let mut author = [0u8; 32];
    let mut subscribed = Vec::new();
    let mut payload = Vec::new();
    loop {
        let mut h = [0u8; HEADER_LEN];
        if recv.read_exact(&mut h).await.is_err() {
            break;
        }
        let header = RequestHeader::decode(&h);
        if header.check_len().is_err() {
            break;
        }
        payload.resize(header.len as usize, 0);
        if recv.read_exact(&mut payload).await.is_err() {
            break;
        }
        let Ok(m) = TlvMap::parse(&payload) else {
            break;
        };
        let rid = header.req_id;
        let reply = match Command::from_u8(header.cmd) {
            Some(Command::GetNonce) => encode_nonce(rid, &[7u8; 32]),
            Some(Command::Auth) => {
                if let Some(k) = m.fixed(tag::PUBKEY) {
                    author = k;
                }
                FrameWriter::ok(rid).finish()
            }
            Some(Command::CreateChat) => {
                encode_i64(rid, tag::CHAT_ID, hub.next_chat.fetch_add(1, Relaxed) + 1)
            }
            Some(Command::Subscribe) => {
                let chat = m.i64(tag::CHAT_ID).unwrap_or(0);
                let mut chats = hub.chats.lock().unwrap_or_else(|p| p.into_inner());
                let subs = chats.entry(chat).or_default();
                let mut v = subs.as_ref().clone();
                v.push((id, tx.clone()));
                *subs = Arc::new(v);
                subscribed.push(chat);
                encode_i64(rid, tag::MESSAGE_ID, 0)
            }
            Some(Command::SendMessage) => {
                let chat = m.i64(tag::CHAT_ID).unwrap_or(0);
                let guid = m.i64(tag::MESSAGE_GUID).unwrap_or(0);
                let blob = m.get(tag::MESSAGE_BLOB).unwrap_or(&[]);
                let now = mediator_client::now_secs();
                let msg = match &hub.kept {
                    // The id is taken under the lock so that each chat's list stays in id
                    // order (pages are found by binary search).
                    Some(kept) => {
                        let body = Bytes::copy_from_slice(blob);
                        let mut kept = kept.lock().unwrap_or_else(|p| p.into_inner());
                        let msg = hub.next_message.fetch_add(1, Relaxed) + 1;
                        let list = kept.entry(chat).or_default();
                        list.push((msg, guid, now, author, body));
                        msg
                    }
                    None => hub.next_message.fetch_add(1, Relaxed) + 1,
                };
                let push = Bytes::from(GotMessage::frame(chat, msg, guid, now, &author, blob));
                let subs = hub
                    .chats
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&chat)
                    .cloned()
                    .unwrap_or_default();
                for (sid, q) in subs.iter() {
                    if *sid != id {
                        // Backpressure rather than loss: the baseline is the transport's
                        // sustainable fan-out.
                        let _ = q.send(push.clone()).await;
                    }
                }
                encode_send_message(rid, guid, msg)
            }
            Some(Command::GetMessagesSince) => hub.page(
                rid,
                m.i64(tag::CHAT_ID).unwrap_or(0),
                m.i64(tag::SINCE_ID).unwrap_or(0),
                m.u32(tag::LIMIT).unwrap_or(100),
            ),
            _ => FrameWriter::ok(rid).finish(),
        };
        if tx.send(Bytes::from(reply)).await.is_err() {
            break;
        }
    }
    {
        let mut chats = hub.chats.lock().unwrap_or_else(|p| p.into_inner());
        for c in subscribed {
            if let Some(subs) = chats.get_mut(&c) {
                let v = subs.iter().filter(|(sid, _)| *sid != id).cloned().collect();
                *subs = Arc::new(v);
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}
