//! Two endpoints joined by channels (optionally losing packets), on tokio's paused clock:
//! echo through a listener, a lossy link, refusals, resets, no connection left behind, and
//! writers that wait for the shared buffer budget and wake when it has room.

use super::*;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const KA: Key = [1; 32];
const KB: Key = [2; 32];

/// Sends into a channel, dropping `drop_pct` packets out of 100 (deterministically), each
/// to be delivered `delay` after it was sent.
struct Pipe {
    tx: mpsc::UnboundedSender<(tokio::time::Instant, Vec<u8>)>,
    drop_pct: u64,
    delay: Duration,
    n: AtomicU64,
}

impl Outbound for Pipe {
    fn send(&self, _to: Key, packet: Vec<u8>) {
        let n = self.n.fetch_add(1, Ordering::Relaxed);
        // A fixed scramble of the packet's number decides whether it is lost.
        if (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % 100 < self.drop_pct {
            return;
        }
        let _ = self
            .tx
            .send((tokio::time::Instant::now() + self.delay, packet));
    }
}

/// Endpoints A and B and the tasks that carry their packets.
fn pair(drop_pct: u64) -> (Endpoint, Endpoint) {
    pair_with(drop_pct, Duration::ZERO, Budget::default())
}

/// The same with a one-way `delay`, B's connections buffering at most `budget` together.
fn pair_with(drop_pct: u64, delay: Duration, budget: Budget) -> (Endpoint, Endpoint) {
    let (ta, mut ra) = mpsc::unbounded_channel();
    let (tb, mut rb) = mpsc::unbounded_channel();
    let pipe = |tx| Pipe {
        tx,
        drop_pct,
        delay,
        n: AtomicU64::new(0),
    };
    let a = Endpoint::new(pipe(ta), 1);
    let b = Endpoint::with_budget(pipe(tb), 2, budget);
    let (a2, b2) = (a.clone(), b.clone());
    tokio::spawn(async move {
        while let Some((at, p)) = ra.recv().await {
            tokio::time::sleep_until(at).await;
            b2.handle_message(KA, &p);
        }
    });
    tokio::spawn(async move {
        while let Some((at, p)) = rb.recv().await {
            tokio::time::sleep_until(at).await;
            a2.handle_message(KB, &p);
        }
    });
    (a, b)
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// Connects from A to B's port 42, where B echoes every byte; sends `data` and reads it back.
async fn echo(a: &Endpoint, b: &Endpoint, data: &[u8]) {
    let listener = b.listen(42);
    let server = tokio::spawn(async move {
        let mut s = listener.accept().await;
        assert_eq!(s.peer().unwrap().0, KA);
        let mut buf = vec![0u8; 8192];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).await.unwrap();
        }
        s.shutdown().await.unwrap();
    });
    let c = a.connect(KB, 42).await.unwrap();
    let (mut r, mut w) = tokio::io::split(c);
    let sent = data.to_vec();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
        w
    });
    let mut back = Vec::new();
    r.read_to_end(&mut back).await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "echo differs");
    let w = writer.await.unwrap();
    drop(r.unsplit(w));
    server.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn echo_over_a_clean_link_and_nothing_left_behind() {
    let (a, b) = pair(0);
    echo(&a, &b, &pattern(1 << 20)).await;
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    assert_eq!(a.connections(), 0);
    assert_eq!(b.connections(), 0);
}

#[tokio::test(start_paused = true)]
async fn echo_over_a_lossy_link() {
    let (a, b) = pair(15);
    echo(&a, &b, &pattern(200_000)).await;
    tokio::time::sleep(std::time::Duration::from_secs(20)).await;
    assert_eq!(a.connections(), 0);
    assert_eq!(b.connections(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_closed_port_refuses_and_a_dropped_stream_resets() {
    let (a, b) = pair(0);
    let e = a.connect(KB, 7).await.err().expect("refused");
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    let listener = b.listen(42);
    let c = a.connect(KB, 42).await.unwrap();
    let mut s = listener.accept().await;
    drop(c);
    let mut buf = [0u8; 4];
    let e = s.read(&mut buf).await.expect_err("reset");
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
    drop(s);
    assert_eq!(a.connections(), 0);
    assert_eq!(b.connections(), 0);
}

#[tokio::test(start_paused = true)]
async fn connecting_to_a_silent_node_times_out() {
    let (tx, _rx) = mpsc::unbounded_channel();
    let a = Endpoint::new(
        Pipe {
            tx,
            drop_pct: 100,
            delay: Duration::ZERO,
            n: AtomicU64::new(0),
        },
        3,
    );
    let start = tokio::time::Instant::now();
    let e = a.connect(KB, 42).await.err().expect("timed out");
    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    assert_eq!(start.elapsed(), crate::conn::CONNECT_TIMEOUT);
}

/// B's shared budget is filled by a stream whose reader (on A) does not read. Over a link
/// with a 100 ms round trip, a protected stream writes at once from the reserve; an
/// unprotected one is held to its floor per round trip (slowed, not locked out) until the
/// first reader reads, and then finishes at once.
#[tokio::test(start_paused = true)]
async fn writes_wait_for_the_shared_budget_and_wake_when_it_frees() {
    const SHARED: usize = 128 * 1024;
    const RTT: Duration = Duration::from_millis(100);
    let budget = Budget {
        shared: SHARED,
        reserve: 64 * 1024,
    };
    let (a, b) = pair_with(0, RTT / 2, budget);
    let listener = b.listen(42);
    let mut hog_reader = a.connect(KB, 42).await.unwrap();
    let mut hog = listener.accept().await;
    // A buffers 512 KiB unread, B holds what it may of the rest: the shared part is spent.
    let big = pattern(768 * 1024);
    let hog_writer = tokio::spawn(async move {
        hog.write_all(&big).await.unwrap();
        hog
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(b.buffered() >= SHARED, "{}", b.buffered());
    let mut member_reader = a.connect(KB, 42).await.unwrap();
    let mut member = listener.accept().await;
    member.control().protect(true);
    let start = tokio::time::Instant::now();
    member.write_all(&pattern(48 * 1024)).await.unwrap();
    assert!(start.elapsed() < RTT, "the member waited");
    let mut buf = vec![0u8; 48 * 1024];
    member_reader.read_exact(&mut buf).await.unwrap();
    // The stranger: its reader counts what arrives.
    let mut late_reader = a.connect(KB, 42).await.unwrap();
    let mut late = listener.accept().await;
    let stranger = pattern(256 * 1024);
    let arrived = Arc::new(AtomicUsize::new(0));
    let count = arrived.clone();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 8192];
        while got.len() < 256 * 1024 {
            let n = late_reader.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
            count.store(got.len(), Ordering::Relaxed);
        }
        got
    });
    let sent = stranger.clone();
    let late_write = tokio::spawn(async move {
        late.write_all(&sent).await.unwrap();
        late
    });
    tokio::time::sleep(10 * RTT).await;
    let n = arrived.load(Ordering::Relaxed);
    assert!(n > 0, "the stranger is locked out");
    assert!(
        n <= 12 * crate::stack::FLOOR,
        "{n} bytes passed a spent budget"
    );
    assert!(!late_write.is_finished());
    // The hog's reader reads: acknowledgements free the budget, the stranger goes on at once.
    let mut got = vec![0u8; 768 * 1024];
    hog_reader.read_exact(&mut got).await.unwrap();
    let _late = tokio::time::timeout(20 * RTT, late_write)
        .await
        .expect("the waiting writer was not woken in time")
        .unwrap();
    assert!(reader.await.unwrap() == stranger);
    drop(hog_writer.await.unwrap());
}

/// The timer driver ends as soon as the last handle on the endpoint is dropped (no polling).
#[tokio::test(start_paused = true)]
async fn the_driver_ends_with_the_endpoint() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let (tx, _rx) = mpsc::unbounded_channel();
    let e = Endpoint::new(
        Pipe {
            tx,
            drop_pct: 0,
            delay: Duration::ZERO,
            n: AtomicU64::new(0),
        },
        4,
    );
    let listener = e.listen(42);
    tokio::task::yield_now().await;
    assert_eq!(metrics.num_alive_tasks(), before + 1);
    drop((e, listener));
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        metrics.num_alive_tasks(),
        before,
        "the driver is still running"
    );
}
