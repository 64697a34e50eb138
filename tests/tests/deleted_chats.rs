//! Deleting a chat leaves its messages to the sweeper (`mediatord::deleted_chats`), on both
//! stores: the deletion removes the chat and its members at once and no message of it can be
//! read; the id stays taken while its messages remain; the sweep removes them a batch per
//! write job, finds the leftovers of an earlier run by itself, and never touches a live chat.
//! End to end: a chat of several batches deleted through the protocol is emptied by the
//! running daemon's sweeper.

use mediator_client::{connect, random_key, Session};
use mediator_tests::{Daemon, Postgres};
use mediatord::deleted_chats::{sweep_chat, sweep_leftovers};
use mediatord::store::retention::PURGE_BATCH;
use mediatord::store::Store;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const OWNER: [u8; 32] = [1; 32];
/// Messages of the deleted chat: several sweep batches and a part.
const DELETED: i64 = 3 * PURGE_BATCH as i64 + 17;

/// Rows of messages of chats 7 (deleted) and 8 (kept), read as sync pages read them.
async fn counts(store: &Store) -> (u32, u32) {
    store
        .read(|c| {
            let count = |chat| -> mediatord::store::queries::DbResult<u32> {
                Ok(
                    c.each_message_since(chat, 0, 1 << 20, usize::MAX, true, &mut |_| {})?
                        .0,
                )
            };
            Ok((count(7)?, count(8)?))
        })
        .await
        .unwrap()
}

async fn sweeps(store: &Store) {
    store
        .write(|c| {
            c.create_chat(7, &OWNER, b"deleted", b"", None, 1)?;
            c.create_chat(8, &OWNER, b"kept", b"", None, 1)?;
            for n in 0..DELETED {
                c.insert_message(7, n, &OWNER, b"gone", 2)?;
            }
            for n in 0..10 {
                c.insert_message(8, n, &OWNER, b"stays", 2)?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let stop = CancellationToken::new();
    // A live chat is never swept.
    assert_eq!(sweep_chat(store, 8, &stop).await.unwrap(), 0);
    store.write(|c| Ok(c.delete_chat(7)?)).await.unwrap();
    assert_eq!(counts(store).await, (DELETED as u32, 10));
    let (exists, member, taken) = store
        .read(|c| {
            Ok((
                c.chat_exists(7)?,
                c.member(7, &OWNER)?.is_some(),
                c.chat_id_taken(7)?,
            ))
        })
        .await
        .unwrap();
    // Gone for every reader (they all go through the chat or a membership)...
    assert!(!exists && !member);
    // ... but its id is not free while its messages remain.
    assert!(taken, "the id of a chat with messages left was free");
    // The leftovers are found and removed, a batch per job; the other chat keeps its own.
    assert_eq!(sweep_leftovers(store, &stop).await.unwrap(), DELETED as u64);
    assert_eq!(counts(store).await, (0, 10));
    let taken = store.read(|c| Ok(c.chat_id_taken(7)?)).await.unwrap();
    assert!(!taken);
    assert_eq!(sweep_leftovers(store, &stop).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sweeps_deleted_chats() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("m.db")).unwrap();
    sweeps(&store).await;
    store.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sweeps_deleted_chats() {
    let pg = Postgres::start();
    let url = pg.create_database("sweep");
    let store = mediatord::store::postgres::store::open(&url).expect("open postgres");
    sweeps(&store).await;
    tokio::task::spawn_blocking(move || store.shutdown())
        .await
        .unwrap();
}

/// Rows of `messages` in the daemon's file (read beside the running daemon: WAL mode).
fn rows(db: &std::path::Path, chat: i64) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(
        "SELECT count(*) FROM messages WHERE chat_id = ?1",
        [chat],
        |r| r.get(0),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_sweeps_a_deleted_chat() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = tmp.path().join("m.toml");
    std::fs::write(
        &cfg,
        "[limits]\nrate_send_message_per_key = { per_sec = 1e9, burst = 1e9 }\n",
    )
    .unwrap();
    let d = Daemon::start_in(&data, &["--config", cfg.to_str().unwrap()]);
    let conn = connect(d.addr).await.unwrap();
    let mut s = Session::open(&conn).await.unwrap();
    s.auth(&random_key()).await.unwrap();
    let chat = s.create_chat("big", "", None).await.unwrap();
    // Four senders (each send waits for its commit).
    let key = s.key.clone().unwrap();
    let mut senders = Vec::new();
    for k in 0..4 {
        let (addr, key) = (d.addr, key.clone());
        senders.push(tokio::spawn(async move {
            let conn = connect(addr).await.unwrap();
            let mut s = Session::open(&conn).await.unwrap();
            s.auth(&key).await.unwrap();
            for n in (k..DELETED).step_by(4) {
                s.send_message(chat, n, &[7u8; 4096]).await.unwrap();
            }
        }));
    }
    for t in senders {
        t.await.unwrap();
    }
    let db = data.join("mediator.db");
    assert_eq!(rows(&db, chat), DELETED);
    s.delete_chat(chat).await.unwrap();
    let t0 = Instant::now();
    while rows(&db, chat) > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{} messages of the deleted chat left",
            rows(&db, chat)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = d.ctl_json(&["status"]);
    assert_eq!(status["chats"].as_u64(), Some(0), "{status}");
    assert_eq!(status["messages"].as_u64(), Some(0), "{status}");
}
