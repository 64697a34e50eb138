//! Writers for the durability and failover tests: sessions of one key that send as fast as
//! the daemon answers until it stops answering, remembering every acknowledged message, and
//! the check that every one of them is stored.

use mediator_client::{connect, Session};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The messages the writers saw acknowledged: id → body.
pub type Acked = Arc<Mutex<BTreeMap<i64, Vec<u8>>>>;

/// Starts `count` writers of `owner` sending to `chat` at `addr` (each on a connection of
/// its own, so their commands share group commits) until a send fails; returns their tasks
/// and what they saw acknowledged. Bodies vary in length; guids never collide.
pub fn spawn_writers(
    addr: SocketAddr,
    owner: &ed25519_dalek::SigningKey,
    chat: i64,
    count: i64,
) -> (Vec<tokio::task::JoinHandle<()>>, Acked) {
    let acked = Acked::default();
    let tasks = (0..count)
        .map(|w| {
            let (owner, acked) = (owner.clone(), acked.clone());
            tokio::spawn(async move {
                let conn = connect(addr).await.unwrap();
                let mut s = Session::open(&conn).await.unwrap();
                s.auth(&owner).await.unwrap();
                for i in 0..10_000_000i64 {
                    let body = format!("writer {w} message {i} {}", "x".repeat((i % 50) as usize))
                        .into_bytes();
                    match s.send_message(chat, w * 10_000_000 + i, &body).await {
                        Ok((_, id)) => {
                            acked.lock().unwrap().insert(id, body);
                        }
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    (tasks, acked)
}

/// Asserts that every message of `acked` is in `chat` as the daemon at `addr` serves it to
/// `key`, with its body.
pub async fn check_all_present(
    addr: SocketAddr,
    key: &ed25519_dalek::SigningKey,
    chat: i64,
    acked: &BTreeMap<i64, Vec<u8>>,
) {
    let conn = connect(addr).await.unwrap();
    let mut s = Session::open(&conn).await.unwrap();
    s.auth(key).await.unwrap();
    let history = s.sync(chat, 0).await.unwrap();
    let stored: BTreeMap<i64, Vec<u8>> = history.into_iter().map(|m| (m.id, m.blob)).collect();
    for (id, body) in acked {
        assert_eq!(
            stored.get(id),
            Some(body),
            "acknowledged message {id} lost or changed"
        );
    }
}
