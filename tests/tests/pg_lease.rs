//! The hot standby's lease against a real PostgreSQL server (#18), at the store: the store
//! writer's own session holds the lock, so the lease fences the writes themselves. One holder
//! at a time; a standby waits and takes the lock as soon as the holder's session closes (a
//! crashed process); a holder that stops pinging (a paused process, a cut network) loses its
//! session to PostgreSQL after `LEASE_TIMEOUT`, its successor takes the lock, and the old
//! holder's writer can commit nothing any more, even when it was paused in the middle of a
//! batch; a holder that keeps pinging keeps its lease, and learns at once when its session is
//! ended under it; a long statement keeps the lease, a writer stuck between statements loses
//! it before PostgreSQL frees the lock.

use mediator_tests::Postgres;
use mediatord::store::postgres::lease::{hold, LEASE_PING, LEASE_PING_TIMEOUT, LEASE_TIMEOUT};
use mediatord::store::postgres::store::{open_leased, Standby};
use mediatord::store::{Store, StoreError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn contender(url: &str) -> (tokio::task::JoinHandle<Store>, Arc<AtomicU64>) {
    let waits = Arc::new(AtomicU64::new(0));
    let w = waits.clone();
    let url = url.to_string();
    let task = tokio::spawn(async move {
        let standby = Standby {
            waiting: Box::new(move |n| w.store(n, Ordering::Relaxed)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        open_leased(&url, standby)
            .await
            .expect("acquire")
            .expect("not stopped")
    });
    (task, waits)
}

async fn holds(store: &Store) -> bool {
    store.write(|c| Ok(c.lease_held()?)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_holder_at_a_time_and_a_silent_holder_is_fenced() {
    let pg = Postgres::start();
    let url = pg.create_database("lease");

    // One holder; a standby waits.
    let (first, waits) = contender(&url);
    let first = first.await.unwrap();
    assert_eq!(waits.load(Ordering::Relaxed), 0, "the lock was free");
    assert!(holds(&first).await);
    let (second, waits) = contender(&url);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!second.is_finished(), "two holders");
    assert!(waits.load(Ordering::Relaxed) >= 2);

    // The holder's process dies (its sessions close): the standby takes over at its next try.
    let t0 = Instant::now();
    tokio::task::spawn_blocking(move || first.shutdown())
        .await
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("the standby took over")
        .unwrap();
    eprintln!(
        "takeover after the holder's session closed: {:?}",
        t0.elapsed()
    );
    assert!(holds(&second).await);

    // The holder goes silent (paused: no pings). PostgreSQL ends its session after
    // LEASE_TIMEOUT and the next standby takes over.
    let t0 = Instant::now();
    let (third, _) = contender(&url);
    let third = tokio::time::timeout(LEASE_TIMEOUT + Duration::from_secs(10), third)
        .await
        .expect("the standby took over from a silent holder")
        .unwrap();
    let took = t0.elapsed();
    eprintln!("takeover from a silent holder: {took:?}");
    assert!(took >= LEASE_TIMEOUT - Duration::from_secs(1), "{took:?}");
    // The old holder wakes up: its writer's session is gone and commits nothing.
    let late = second
        .write(|c| Ok(c.create_chat(99, &[1; 32], b"late", b"", None, 1)?))
        .await;
    assert!(late.is_err(), "the fenced holder wrote");
    assert_eq!(
        pg.psql("lease", "SELECT count(*) FROM chats WHERE id = 99")
            .unwrap()
            .trim(),
        "0"
    );

    // A holder that pings keeps its lease past the timeout...
    let kept = tokio::time::timeout(LEASE_TIMEOUT + Duration::from_secs(2), hold(&third)).await;
    assert!(kept.is_err(), "lost while pinging: {}", kept.unwrap());
    assert!(holds(&third).await);
    // ... and learns within a ping when its session is ended under it.
    let store = third.clone();
    let holding = tokio::spawn(async move { hold(&store).await });
    pg.psql(
        "lease",
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted",
    )
    .unwrap();
    let lost = tokio::time::timeout(LEASE_PING * 3, holding)
        .await
        .expect("the holder noticed")
        .unwrap();
    assert!(matches!(lost, StoreError::LeaseLost(_)), "{lost}");
    drop(third);
    drop(second);
}

/// A holder paused in the middle of a batch: its session is idle inside a transaction, where
/// `idle_session_timeout` does not apply, so the lease needs `idle_in_transaction_session_timeout`
/// too. PostgreSQL ends the session after `LEASE_TIMEOUT`, the standby takes over while the old
/// holder is still paused, and nothing of the paused batch is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_paused_inside_a_transaction_is_fenced() {
    let pg = Postgres::start();
    let url = pg.create_database("midbatch");
    let (first, _) = contender(&url);
    let first = first.await.unwrap();
    assert!(holds(&first).await);
    let paused = LEASE_TIMEOUT + Duration::from_secs(5);
    let t0 = Instant::now();
    let writer = first.clone();
    let batch = tokio::spawn(async move {
        writer
            .write(move |c| {
                c.create_chat(77, &[1; 32], b"before the pause", b"", None, 1)?;
                // The process stops here (the writer thread sleeps: no statement runs).
                std::thread::sleep(paused);
                c.create_chat(78, &[1; 32], b"after the pause", b"", None, 1)?;
                Ok(())
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (second, _) = contender(&url);
    let second = tokio::time::timeout(LEASE_TIMEOUT + Duration::from_secs(3), second)
        .await
        .expect("the standby took over from a holder paused inside a transaction")
        .unwrap();
    let took = t0.elapsed();
    eprintln!("takeover from a holder paused mid-batch: {took:?}");
    assert!(took < paused, "{took:?}: the holder was no longer paused");
    assert!(holds(&second).await);
    // The paused batch resumes: its caller is told, and none of it is in the database.
    let late = batch.await.unwrap();
    assert!(late.is_err(), "the fenced holder's batch was acknowledged");
    assert_eq!(
        pg.psql(
            "midbatch",
            "SELECT count(*) FROM chats WHERE id IN (77, 78)"
        )
        .unwrap()
        .trim(),
        "0"
    );
    drop(first);
    drop(second);
}

/// A long command keeps the lease; a writer stuck between statements loses it in time. While
/// the writer runs one statement for longer than `LEASE_PING_TIMEOUT` (a chat of millions of
/// messages deleted), the holder's ping waits behind it, but the lease session is seen
/// running it: the holder keeps serving and the standby keeps waiting. When the writer waits
/// inside a transaction instead (its session idle, the process not paused), the holder
/// counts the lease lost within `LEASE_PING_TIMEOUT` of the session going idle, before
/// PostgreSQL can end the session and give the lock to the standby.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_statement_keeps_the_lease_and_a_stuck_writer_loses_it() {
    let pg = Postgres::start();
    let url = pg.create_database("long");
    let (first, _) = contender(&url);
    let first = first.await.unwrap();
    let store = first.clone();
    let holding = tokio::spawn(async move { hold(&store).await });
    let (second, waits) = contender(&url);
    // The holder is pinging (its set-up is not queued behind the long statement).
    tokio::time::sleep(LEASE_PING * 2).await;
    let long = LEASE_TIMEOUT + Duration::from_secs(2);
    assert!(long > LEASE_PING_TIMEOUT * 2);

    let t0 = Instant::now();
    first
        .write(move |c| {
            let pg = c.as_postgres().expect("a PostgreSQL store");
            pg.batch(&format!("SELECT pg_sleep({})", long.as_secs_f64()))?;
            c.create_chat(5, &[1; 32], b"after a long statement", b"", None, 1)?;
            Ok(())
        })
        .await
        .expect("the long command committed");
    assert!(t0.elapsed() >= long, "{:?}", t0.elapsed());
    if holding.is_finished() {
        panic!(
            "the holder gave up during a long statement: {}",
            holding.await.unwrap()
        );
    }
    assert!(
        !second.is_finished(),
        "a standby took over from a busy holder"
    );
    assert!(
        waits.load(Ordering::Relaxed) >= 5,
        "the standby stopped trying"
    );
    assert!(holds(&first).await);
    assert_eq!(
        pg.psql("long", "SELECT count(*) FROM chats WHERE id = 5")
            .unwrap()
            .trim(),
        "1"
    );

    // The writer waits inside a transaction for longer than LEASE_TIMEOUT.
    let writer = first.clone();
    let stuck = tokio::spawn(async move {
        writer
            .write(move |c| {
                c.create_chat(6, &[1; 32], b"stuck", b"", None, 1)?;
                std::thread::sleep(long);
                Ok(())
            })
            .await
    });
    let t0 = Instant::now();
    let why = tokio::time::timeout(LEASE_TIMEOUT, holding)
        .await
        .expect("the holder noticed its stuck writer before PostgreSQL freed the lock")
        .unwrap();
    let took = t0.elapsed();
    eprintln!("lease counted lost {took:?} after the writer got stuck: {why}");
    assert!(matches!(why, StoreError::LeaseLost(_)), "{why}");
    assert!(
        took >= LEASE_PING_TIMEOUT - LEASE_PING,
        "{took:?}: lost too early"
    );
    assert!(
        !second.is_finished(),
        "the lock went free before the holder knew"
    );
    // PostgreSQL ends the idle session; the standby takes over; nothing of the stuck batch.
    let second = tokio::time::timeout(LEASE_TIMEOUT, second)
        .await
        .expect("the standby took over")
        .unwrap();
    assert!(
        stuck.await.unwrap().is_err(),
        "the stuck batch was acknowledged"
    );
    assert_eq!(
        pg.psql("long", "SELECT count(*) FROM chats WHERE id = 6")
            .unwrap()
            .trim(),
        "0"
    );
    drop(first);
    drop(second);
}
