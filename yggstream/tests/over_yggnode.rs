//! ygg_stream over two real yggnode nodes peered on loopback TCP: the endpoint's packets go
//! out as raw session payloads (no type byte) and come back through the node's raw queue,
//! 16 KiB segments included. A 1 MiB echo, then no connection left on either side.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use yggnode::{Node, NodeConfig};
use yggstream::{Endpoint, Outbound};

/// Sends the endpoint's packets as raw payloads of the node.
struct Raw(Arc<Node>);

impl Outbound for Raw {
    fn send(&self, to: [u8; 32], packet: Vec<u8>) {
        // A full queue drops the packet; the connection retransmits.
        let _ = self.0.try_send_raw(to, packet);
    }
}

/// An endpoint on `node`, fed by the node's raw queue.
fn endpoint(node: &Arc<Node>, seed: u64) -> Endpoint {
    let ep = Endpoint::new(Raw(node.clone()), seed);
    let mut rx = node.take_raw_receiver().expect("raw receiver");
    let feed = ep.clone();
    tokio::spawn(async move {
        while let Some((from, msg)) = rx.recv().await {
            feed.handle_message(from, &msg);
        }
    });
    ep
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_over_two_nodes() {
    let a = Arc::new(
        Node::start(
            [7; 32],
            NodeConfig {
                listen: vec!["tcp://127.0.0.1:0".parse().unwrap()],
                ..NodeConfig::default()
            },
        )
        .await
        .unwrap(),
    );
    let uri = format!("tcp://{}", a.listen_addrs()[0]);
    let b = Arc::new(
        Node::start(
            [8; 32],
            NodeConfig {
                peers: vec![uri.parse().unwrap()],
                ..NodeConfig::default()
            },
        )
        .await
        .unwrap(),
    );
    let t0 = Instant::now();
    while a.peers().is_empty() || b.peers().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(10), "no peering");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (ea, eb) = (endpoint(&a, 1), endpoint(&b, 2));
    let listener = ea.listen(42);
    let server = tokio::spawn(async move {
        let mut s = listener.accept().await;
        let mut buf = vec![0u8; 65536];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).await.unwrap();
        }
        s.shutdown().await.unwrap();
    });
    // The first SYNs may be lost while the session and path are set up: the connect retries.
    let c = eb.connect(a.public_key(), 42).await.expect("connected");
    assert_eq!(c.peer().unwrap(), (a.public_key(), 42));
    let (mut r, mut w) = tokio::io::split(c);
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 253) as u8).collect();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
        w
    });
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), r.read_to_end(&mut back))
        .await
        .expect("echo in time")
        .unwrap();
    assert!(back == data, "echo differs ({} bytes back)", back.len());
    drop(r.unsplit(writer.await.unwrap()));
    server.await.unwrap();
    let t0 = Instant::now();
    while ea.connections() + eb.connections() > 0 {
        assert!(t0.elapsed() < Duration::from_secs(15), "connections left");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
