//! Two endpoints joined by channels (optionally losing packets), on tokio's paused clock:
//! echo through a listener, a lossy link, refusals, resets, and no connection left behind.

use super::*;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const KA: Key = [1; 32];
const KB: Key = [2; 32];

/// Sends into a channel, dropping `drop_pct` packets out of 100 (deterministically).
struct Pipe {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    drop_pct: u64,
    n: AtomicU64,
}

impl Outbound for Pipe {
    fn send(&self, _to: Key, packet: Vec<u8>) {
        let n = self.n.fetch_add(1, Ordering::Relaxed);
        // A fixed scramble of the packet's number decides whether it is lost.
        if (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % 100 < self.drop_pct {
            return;
        }
        let _ = self.tx.send(packet);
    }
}

/// Endpoints A and B and the tasks that carry their packets.
fn pair(drop_pct: u64) -> (Endpoint, Endpoint) {
    let (ta, mut ra) = mpsc::unbounded_channel();
    let (tb, mut rb) = mpsc::unbounded_channel();
    let pipe = |tx| Pipe {
        tx,
        drop_pct,
        n: AtomicU64::new(0),
    };
    let a = Endpoint::new(pipe(ta), 1);
    let b = Endpoint::new(pipe(tb), 2);
    let (a2, b2) = (a.clone(), b.clone());
    tokio::spawn(async move {
        while let Some(p) = ra.recv().await {
            b2.handle_message(KA, &p);
        }
    });
    tokio::spawn(async move {
        while let Some(p) = rb.recv().await {
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
            n: AtomicU64::new(0),
        },
        3,
    );
    let start = tokio::time::Instant::now();
    let e = a.connect(KB, 42).await.err().expect("timed out");
    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    assert_eq!(start.elapsed(), crate::conn::CONNECT_TIMEOUT);
}
