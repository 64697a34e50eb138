//! One round of each flood of [`crate::floods`]: what one attacker task does once (opens a
//! session and claims 32 MiB, asks for a big answer and never reads, sends a batch of
//! GET_NONCE, a garbage stream, a big member-info update, invites), and the constants that
//! shape it. The floods repeat these rounds on many tasks until their deadline.

use crate::attacker::{self, Cost, Raw, ATTACKER_IP, ERROR_PAUSE};
use anyhow::{anyhow, Result};
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use mediator_client::random_key;
use mediator_wire::frame::{FrameWriter, RequestHeader, MAX_REQUEST_PAYLOAD};
use mediator_wire::tlv::tag;
use mediator_wire::Command;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Bytes a stalled upload sends after its header: past the daemon's 16 KiB of free payload,
/// so the upload draws its whole claim on the request budget.
pub const STALL_BYTES: usize = 17 * 1024;
/// Bytes a guest sends after a header claiming 32 MiB.
pub const GUEST_CLAIM_BYTES: usize = 1024;
/// GET_MESSAGES_SINCE requests each unread-answers session writes.
pub const UNREAD_REQUESTS: usize = 4;
/// Page size the unread-answers sessions ask for.
pub const UNREAD_LIMIT: u32 = 10;
/// GET_NONCE requests written at once before their answers are read.
pub const NONCE_BATCH: usize = 32;
/// How long a garbage stream waits for an answer or a close before it is dropped.
pub const GARBAGE_WAIT: Duration = Duration::from_secs(2);
/// Malformed frames written on one admitted garbage stream.
pub const GARBAGE_FRAMES: usize = 20;
/// How far ahead of now attacker member info is dated (ten years).
pub const FAR_FUTURE_SECS: i64 = 10 * 365 * 24 * 3600;
/// Invite data of the invite spam.
pub const INVITE_DATA: &[u8] = b"join my chat";
/// How often the sessions flood tries one more connection once it has its connections.
pub const KNOCK_PERIOD: Duration = Duration::from_millis(100);
/// A worker whose stream (or AUTH, or 32 MiB claim) was refused waits this long before it tries
/// again. Without it the workers spin as fast as this machine allows, and the legitimate
/// figures would measure this process taking the CPU from the daemon rather than the daemon.
pub const REFUSED_PAUSE: Duration = Duration::from_millis(10);
/// Pause between two garbage streams of one worker, for the same reason.
pub const GARBAGE_PAUSE: Duration = Duration::from_millis(5);
/// How long an attacker waits for the answer to a big upload.
pub const BIG_ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Opens a session, pausing [`REFUSED_PAUSE`] when it is refused.
pub async fn open(conn: &quinn::Connection, cost: &Arc<Cost>) -> Result<Option<Raw>> {
    let r = Raw::open(conn, cost).await?;
    if r.is_none() {
        tokio::time::sleep(REFUSED_PAUSE).await;
    }
    Ok(r)
}

/// Opens a session authenticated as `key`, pausing [`REFUSED_PAUSE`] when the stream or
/// the AUTH is refused.
pub async fn open_as(
    conn: &quinn::Connection,
    cost: &Arc<Cost>,
    key: &SigningKey,
) -> Result<Option<Raw>> {
    let Some(mut raw) = open(conn, cost).await? else {
        return Ok(None);
    };
    if raw.auth(key).await? {
        return Ok(Some(raw));
    }
    tokio::time::sleep(REFUSED_PAUSE).await;
    Ok(None)
}

/// Keeps asking for one more connection every [`KNOCK_PERIOD`]; those admitted are held.
pub async fn knock(addr: SocketAddr, cost: Arc<Cost>, until: Instant) {
    let mut extra = Vec::new();
    while Instant::now() + KNOCK_PERIOD < until {
        if let Some(c) = attacker::connect(ATTACKER_IP, addr, &cost).await {
            extra.push(c);
        }
        tokio::time::sleep(KNOCK_PERIOD).await;
    }
}

/// One budget claim: a guest's 32 MiB header (refused at once), or an authenticated 32 MiB
/// SEND_MESSAGE that sends [`STALL_BYTES`] and stalls until the daemon ends it.
pub async fn claim(
    conn: &quinn::Connection,
    cost: &Arc<Cost>,
    guest: bool,
    until: Instant,
) -> Result<()> {
    let raw = if guest {
        open(conn, cost).await?
    } else {
        open_as(conn, cost, &random_key()).await?
    };
    let Some(mut raw) = raw else {
        return Ok(());
    };
    let header = RequestHeader {
        cmd: Command::SendMessage as u8,
        req_id: raw.id(),
        len: MAX_REQUEST_PAYLOAD,
    };
    let mut bytes = header.encode().to_vec();
    bytes.resize(
        bytes.len()
            + if guest {
                GUEST_CLAIM_BYTES
            } else {
                STALL_BYTES
            },
        0,
    );
    cost.requests.fetch_add(1, Relaxed);
    raw.write(&bytes).await?;
    if guest {
        let _ = tokio::time::timeout(attacker::ANSWER_TIMEOUT, raw.answer()).await;
        raw.hold(until).await;
        tokio::time::sleep(REFUSED_PAUSE).await;
    } else {
        raw.hold(until).await;
    }
    Ok(())
}

/// A member's session that asks for the big message [`UNREAD_REQUESTS`] times and is then
/// never read.
pub async fn unread(
    conn: &quinn::Connection,
    cost: &Arc<Cost>,
    key: &SigningKey,
    chat: i64,
) -> Result<Option<Raw>> {
    let Some(mut raw) = open_as(conn, cost, key).await? else {
        return Ok(None);
    };
    for _ in 0..UNREAD_REQUESTS {
        raw.request(
            Command::GetMessagesSince,
            &[
                (tag::CHAT_ID, &chat.to_be_bytes()),
                (tag::SINCE_ID, &0i64.to_be_bytes()),
                (tag::LIMIT, &UNREAD_LIMIT.to_be_bytes()),
            ],
        )
        .await?;
    }
    Ok(Some(raw))
}

/// `per_conn` sessions on `conn` (the first a guest, the others throwaway keys), each asking
/// for nonces in batches of [`NONCE_BATCH`], half of them for `victim`'s key; a session the
/// daemon ends is replaced.
pub async fn nonces(conn: &quinn::Connection, cost: &Arc<Cost>, per_conn: usize, victim: [u8; 32]) {
    let mut sessions: Vec<Option<Raw>> = (0..per_conn).map(|_| None).collect();
    let mut i = 0usize;
    loop {
        i = (i + 1) % per_conn;
        if sessions[i].is_none() {
            let r = if i == 0 {
                open(conn, cost).await
            } else {
                open_as(conn, cost, &random_key()).await
            };
            match r {
                Ok(s) => sessions[i] = s,
                Err(_) => {
                    cost.local_error();
                    tokio::time::sleep(ERROR_PAUSE).await;
                }
            }
            continue;
        }
        let raw = sessions[i].as_mut().expect("checked");
        let mut batch = Vec::new();
        for b in 0..NONCE_BATCH {
            let pk = if b % 2 == 0 { victim } else { rand::random() };
            batch.extend_from_slice(&attacker::request(
                Command::GetNonce,
                raw.id(),
                &[(tag::PUBKEY, &pk)],
            ));
        }
        let ok = async {
            raw.write(&batch).await?;
            cost.requests.fetch_add(NONCE_BATCH as u64, Relaxed);
            for _ in 0..NONCE_BATCH {
                if raw.answer().await?.is_none() {
                    anyhow::bail!("closed");
                }
            }
            anyhow::Ok(())
        }
        .await;
        if ok.is_err() {
            sessions[i] = None;
        }
    }
}

/// Kinds of garbage streams [`garbage`] cycles through.
pub const GARBAGE_VARIANTS: usize = 6;

/// One garbage stream of kind `variant`.
pub async fn garbage(conn: &quinn::Connection, cost: &Arc<Cost>, variant: usize) -> Result<()> {
    let junk = |n: usize| -> Vec<u8> { (0..n).map(|_| rand::random::<u8>()).collect() };
    if variant < 2 {
        // A bad preamble, or a good one followed by random bytes: no PING to probe first.
        let (mut send, mut recv) = conn.open_bi().await?;
        let mut bytes = if variant == 0 {
            vec![0xff, 0xff]
        } else {
            mediator_wire::frame::PREAMBLE.to_vec()
        };
        bytes.extend(junk(64 + rand::random::<usize>() % 1024));
        send.write_all(&bytes).await?;
        cost.bytes_sent.fetch_add(bytes.len() as u64, Relaxed);
        let _ = tokio::time::timeout(GARBAGE_WAIT, recv.read_to_end(1 << 16)).await;
        return Ok(());
    }
    let Some(mut raw) = open(conn, cost).await? else {
        return Ok(());
    };
    match variant {
        2 => {
            // Known commands with random TLV payloads, each answered with an error.
            for _ in 0..GARBAGE_FRAMES {
                let cmd =
                    [Command::GetNonce, Command::Auth, Command::Ping][rand::random::<usize>() % 3];
                let mut w = FrameWriter::request(cmd, raw.id());
                w.raw(&junk(rand::random::<usize>() % 512));
                raw.write(&w.finish()).await?;
                cost.requests.fetch_add(1, Relaxed);
                match tokio::time::timeout(GARBAGE_WAIT, raw.answer()).await {
                    Ok(Ok(Some(_))) => {}
                    _ => break,
                }
            }
        }
        3 => {
            // A header claiming more than is sent, then the end of the stream.
            let h = RequestHeader {
                cmd: Command::GetNonce as u8,
                req_id: raw.id(),
                len: 1000,
            };
            let mut bytes = h.encode().to_vec();
            bytes.extend(junk(100));
            raw.write(&bytes).await?;
            let _ = raw.send.finish();
        }
        4 => {
            // An unknown command: "unknown cmd" and the stream is closed.
            let mut w = FrameWriter::raw_request(0xee, raw.id());
            w.raw(&junk(32));
            raw.write(&w.finish()).await?;
        }
        _ => {
            // Half a request, then the stream is reset.
            raw.write(&junk(5)).await?;
            let _ = raw.send.reset(0u32.into());
            return Ok(());
        }
    }
    let _ = tokio::time::timeout(GARBAGE_WAIT, raw.hold(Instant::now() + GARBAGE_WAIT)).await;
    Ok(())
}

/// An UPDATE_MEMBER_INFO frame with `size` bytes of info dated [`FAR_FUTURE_SECS`] ahead;
/// built once and written again and again (its reqId does not matter).
pub fn member_info_frame(chat: i64, size: usize) -> Vec<u8> {
    let ts = mediator_client::now_secs() + FAR_FUTURE_SECS;
    let mut w = FrameWriter::request(Command::UpdateMemberInfo, 1);
    w.tlv(tag::CHAT_ID, &chat.to_be_bytes())
        .tlv(tag::TIMESTAMP, &ts.to_be_bytes())
        .tlv(tag::MEMBER_INFO, &vec![0x77; size]);
    w.finish()
}

/// A member's session that sets its big member info over and over.
pub async fn member_info(
    conn: &quinn::Connection,
    cost: &Arc<Cost>,
    key: &SigningKey,
    frame: Bytes,
) -> Result<()> {
    let Some(mut raw) = open_as(conn, cost, key).await? else {
        return Ok(());
    };
    loop {
        raw.write_bytes(frame.clone()).await?;
        cost.requests.fetch_add(1, Relaxed);
        match tokio::time::timeout(BIG_ANSWER_TIMEOUT, raw.answer()).await {
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(anyhow!("no answer to UPDATE_MEMBER_INFO")),
        }
    }
}

/// The chats' owner sending invites: to the legitimate key (already invited) and to fresh
/// keys, from each chat in turn.
pub async fn invites(
    conn: &quinn::Connection,
    cost: &Arc<Cost>,
    owner: &SigningKey,
    chats: &[i64],
    victim: [u8; 32],
) -> Result<()> {
    let Some(mut raw) = open_as(conn, cost, owner).await? else {
        return Ok(());
    };
    let mut k = 0usize;
    loop {
        k += 1;
        let chat = chats[k % chats.len()];
        let to: [u8; 32] = if k % 2 == 0 {
            victim
        } else {
            random_key().verifying_key().to_bytes()
        };
        let r = raw
            .call(
                Command::SendInvite,
                &[
                    (tag::CHAT_ID, &chat.to_be_bytes()),
                    (tag::USER_PUBKEY, &to),
                    (tag::INVITE_DATA, INVITE_DATA),
                ],
            )
            .await?;
        if r.is_none() {
            return Ok(());
        }
    }
}
