//! The hot standby's lease against a real PostgreSQL server (#18): one holder at a time; a
//! standby waits and takes the lock as soon as the holder's session closes (a crashed
//! process); a holder that stops pinging (a paused process, a cut network) loses its session
//! to PostgreSQL after `LEASE_TIMEOUT`, its successor takes the lock, and the old holder's
//! lease session can write nothing any more (fencing); a holder that keeps pinging keeps
//! its lease, and learns at once when its session is ended under it.

use mediator_tests::Postgres;
use mediatord::store::postgres::lease::{Lease, LeaseError, LEASE_PING, LEASE_TIMEOUT};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn contender(url: &str) -> (tokio::task::JoinHandle<Lease>, Arc<AtomicU64>) {
    let waits = Arc::new(AtomicU64::new(0));
    let w = waits.clone();
    let url = url.to_string();
    let task = tokio::spawn(async move {
        Lease::acquire(&url, |n| w.store(n, Ordering::Relaxed))
            .await
            .expect("acquire")
    });
    (task, waits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_holder_at_a_time_and_a_silent_holder_is_fenced() {
    let pg = Postgres::start();
    let url = pg.create_database("lease");

    // One holder; a standby waits.
    let first = Lease::acquire(&url, |_| panic!("the lock was free"))
        .await
        .unwrap();
    first.ping().await.unwrap();
    let (second, waits) = contender(&url);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!second.is_finished(), "two holders");
    assert!(waits.load(Ordering::Relaxed) >= 2);

    // The holder's process dies (its socket closes): the standby takes over at its next try.
    let t0 = Instant::now();
    drop(first);
    let second = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("the standby took over")
        .unwrap();
    eprintln!(
        "takeover after the holder's socket closed: {:?}",
        t0.elapsed()
    );
    second.ping().await.unwrap();

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
    // The old holder wakes up: its lease is gone and its session writes nothing.
    assert!(matches!(second.ping().await, Err(LeaseError::Lost(_))));
    assert!(second
        .client()
        .batch_execute("CREATE TABLE written_after_the_lease (x INT)")
        .await
        .is_err());
    assert_eq!(
        pg.psql("lease", "SELECT to_regclass('written_after_the_lease')")
            .unwrap(),
        ""
    );

    // A holder that pings keeps its lease past the timeout...
    let kept = tokio::time::timeout(LEASE_TIMEOUT + Duration::from_secs(2), third.hold()).await;
    assert!(kept.is_err(), "lost while pinging: {:?}", kept.unwrap());
    third.ping().await.unwrap();
    // ... and learns within a ping when its session is ended under it.
    let holding = tokio::spawn(async move { third.hold().await });
    pg.psql(
        "lease",
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted",
    )
    .unwrap();
    let lost = tokio::time::timeout(LEASE_PING * 3, holding)
        .await
        .expect("the holder noticed")
        .unwrap();
    assert!(matches!(lost, LeaseError::Lost(_)), "{lost}");
}
