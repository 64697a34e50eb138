//! The sessions of the `chats` scenario: opening an authenticated session, GET_USER_CHATS,
//! the proofs of work of the timed CREATE_CHAT requests, the readers that keep the daemon
//! busy meanwhile, and the closed-loop senders.

use super::{NONCES_PER_SESSION, READER_PAGE, SEND_BYTES};
use crate::client::{now_ns, Session};
use crate::load::DRAIN_TIMEOUT;
use crate::metrics::Metrics;
use anyhow::{ensure, Context, Result};
use ed25519_dalek::SigningKey;
use mediator_wire::Command;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Opens a session on `conn` authenticated as `key`.
pub async fn session(
    conn: &quinn::Connection,
    key: &SigningKey,
    metrics: &Arc<Metrics>,
) -> Result<Session> {
    let mut s = Session::open(conn, metrics.clone(), 1).await?;
    s.auth(key).await?;
    Ok(s)
}

/// GET_USER_CHATS: the number of chats in the answer.
pub async fn user_chats(s: &mut Session) -> Result<usize> {
    let p = s.request(Command::GetUserChats, &[]).await?;
    Ok(mediator_wire::response::decode_user_chats(&p)
        .map_err(|e| anyhow::anyhow!("GET_USER_CHATS answer: {e}"))?
        .len())
}

/// A CREATE_CHAT whose proof of work is done: creator session, nonce, counter, signature.
pub type Ticket = (usize, [u8; 32], u32, [u8; 64]);

/// Takes [`NONCES_PER_SESSION`] nonces on each creator and computes their proofs of work,
/// as many at once as there are cores.
pub async fn proofs(creators: &mut [Session], samples: usize) -> Result<Vec<Ticket>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let limit = Arc::new(Semaphore::new(cores));
    let mut set = JoinSet::new();
    let mut k = 0;
    for (i, c) in creators.iter_mut().enumerate() {
        let key = c.key.clone().context("creator not authenticated")?;
        for _ in 0..NONCES_PER_SESSION.min(samples - k) {
            let nonce = c.nonce(&key.verifying_key().to_bytes()).await?;
            let (key, limit) = (key.clone(), limit.clone());
            set.spawn(async move {
                let _permit = limit.acquire_owned().await?;
                let (counter, sig) = tokio::task::spawn_blocking(move || {
                    mediator_client::proof_of_work(&key, &nonce)
                })
                .await?;
                anyhow::Ok((k, (i, nonce, counter, sig)))
            });
            k += 1;
        }
    }
    let mut out = Vec::with_capacity(k);
    while let Some(r) = set.join_next().await {
        out.push(r??);
    }
    out.sort_by_key(|(k, _)| *k);
    Ok(out.into_iter().map(|(_, t)| t).collect())
}

/// A reader: GET_USER_CHATS then a page of a random chat, until `stop`.
pub async fn reader(
    mut s: Session,
    chats: Arc<Vec<i64>>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> Result<()> {
    let mut rng = StdRng::from_entropy();
    while !stop.load(Relaxed) {
        user_chats(&mut s).await?;
        let chat = chats[rng.gen_range(0..chats.len())];
        s.messages_since(chat, 0, READER_PAGE).await?;
        done.fetch_add(2, Relaxed);
    }
    Ok(())
}

/// A closed-loop sender: SEND_MESSAGE to random chats of `chats` until `until`; the reader
/// task of the session counts the answers in its metrics.
pub async fn sender(
    mut s: Session,
    idx: usize,
    chats: Vec<i64>,
    until: Instant,
) -> Result<Session> {
    ensure!(!chats.is_empty(), "sender {idx} belongs to no chat");
    let mut rng = StdRng::from_entropy();
    let mut blob = vec![0u8; SEND_BYTES];
    s.set_live(true);
    while Instant::now() < until {
        s.acquire_slot().await?;
        let chat = chats[rng.gen_range(0..chats.len())];
        s.send_message(chat, rng.gen(), &mut blob, idx as u64, now_ns(), 0)
            .await?;
    }
    let drain = Instant::now() + DRAIN_TIMEOUT;
    while s.in_flight() > 0 && Instant::now() < drain {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s.set_live(false);
    Ok(s)
}
