//! In-process networks of our own nodes over real loopback TCP links: a
//! line, a star and a ring of 12 nodes. Every node must reach every other
//! with datagrams (lookups, notifies, sessions and multi-hop forwarding);
//! in the ring one link is then cut (through a test proxy that refuses
//! redials) and every pair must still reach each other over the rerouted
//! tree. Table sizes are checked to stay bounded by the network size.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use yggnode::{Node, NodeConfig, PublicKey};

const N: usize = 12;
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);
const DELIVER_TIMEOUT: Duration = Duration::from_secs(60);
const RESEND_EVERY: Duration = Duration::from_millis(300);

/// A TCP forwarder standing in for one link; dropping it cuts the link and
/// refuses any redial.
struct Proxy {
    addr: std::net::SocketAddr,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let tasks = Arc::new(Mutex::new(JoinSet::new()));
        let t2 = tasks.clone();
        tasks.lock().unwrap().spawn(async move {
            while let Ok((mut inbound, _)) = l.accept().await {
                let Ok(mut out) = TcpStream::connect(target).await else {
                    continue;
                };
                t2.lock().unwrap().spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                });
            }
        });
        Proxy { addr, tasks }
    }

    fn cut(self) {
        self.tasks.lock().unwrap().abort_all();
    }
}

struct Net {
    nodes: Vec<Node>,
    keys: Vec<PublicKey>,
    got: Arc<Mutex<HashSet<(u8, usize, usize)>>>,
    proxy: Option<Proxy>,
}

/// Starts `N` nodes; for each edge `(i, j)` with `j < i`, node `i` dials
/// node `j`. The `proxied` edge goes through a [`Proxy`].
async fn build(edges: &[(usize, usize)], proxied: Option<(usize, usize)>) -> Net {
    let mut nodes: Vec<Node> = Vec::new();
    let mut proxy = None;
    // Node 0 gets the smallest key (the root), so the ring's closing edge
    // (N−1, 0) is a tree edge and cutting it must move coordinates.
    let mut seeds: Vec<([u8; 32], PublicKey)> = (0..N)
        .map(|_| {
            let s: [u8; 32] = rand::random();
            (s, yggnode::identity::Identity::from_seed(&s).public_key())
        })
        .collect();
    seeds.sort_by_key(|(_, k)| *k);
    for (i, (seed, _)) in seeds.iter().enumerate() {
        let mut peers = Vec::new();
        for &(a, b) in edges {
            assert!(b < a);
            if a != i {
                continue;
            }
            let mut target = nodes[b].listen_addrs()[0];
            if proxied == Some((a, b)) {
                let p = Proxy::start(target).await;
                target = p.addr;
                proxy = Some(p);
            }
            peers.push(format!("tcp://{target}").parse().unwrap());
        }
        let cfg = NodeConfig {
            peers,
            listen: vec!["tcp://127.0.0.1:0".parse().unwrap()],
            ..NodeConfig::default()
        };
        nodes.push(Node::start(*seed, cfg).await.unwrap());
    }
    let keys: Vec<PublicKey> = nodes.iter().map(Node::public_key).collect();
    let got = Arc::new(Mutex::new(HashSet::new()));
    for (to, n) in nodes.iter().enumerate() {
        let mut rx = n.take_receiver().unwrap();
        let got = got.clone();
        let keys = keys.clone();
        tokio::spawn(async move {
            while let Some((from, data)) = rx.recv().await {
                if let [phase, f, t] = data[..] {
                    let (f, t) = (f as usize, t as usize);
                    if t == to && keys.get(f) == Some(&from) {
                        got.lock().unwrap().insert((phase, f, t));
                    }
                }
            }
        });
    }
    Net {
        nodes,
        keys,
        got,
        proxy,
    }
}

impl Net {
    /// Waits until the live nodes agree on the root (the smallest key).
    async fn converge(&self, live: &[usize]) {
        let root = live.iter().map(|&i| self.keys[i]).min().unwrap();
        let t0 = Instant::now();
        loop {
            let mut ok = true;
            for &i in live {
                if self.nodes[i].self_info().await.unwrap().root != root {
                    ok = false;
                }
            }
            if ok {
                return;
            }
            assert!(t0.elapsed() < CONVERGE_TIMEOUT, "tree did not converge");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every ordered pair exchanges a datagram tagged `phase`.
    async fn all_pairs(&self, phase: u8) {
        let t0 = Instant::now();
        loop {
            let mut missing = Vec::new();
            {
                let got = self.got.lock().unwrap();
                for f in 0..N {
                    for t in 0..N {
                        if f != t && !got.contains(&(phase, f, t)) {
                            missing.push((f, t));
                        }
                    }
                }
            }
            if missing.is_empty() {
                return;
            }
            assert!(
                t0.elapsed() < DELIVER_TIMEOUT,
                "phase {phase}: {} pairs never delivered, e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(5)]
            );
            for (f, t) in missing {
                let _ = self.nodes[f].try_send_to(self.keys[t], &[phase, f as u8, t as u8]);
            }
            tokio::time::sleep(RESEND_EVERY).await;
        }
    }

    /// No table grows beyond what the network size explains.
    async fn assert_bounded(&self) {
        for (i, n) in self.nodes.iter().enumerate() {
            let st = n.stats().await.unwrap();
            assert!(st.tree_infos <= N, "node {i}: {st:?}");
            assert!(st.paths < N, "node {i}: {st:?}");
            assert!(st.rumors < N, "node {i}: {st:?}");
            assert!(st.sessions < N, "node {i}: {st:?}");
            assert!(st.session_buffers < N, "node {i}: {st:?}");
            assert!(st.pending_requests == 0, "node {i}: {st:?}");
            assert!(st.queued_bytes < 1 << 20, "node {i}: {st:?}");
        }
    }

    async fn shutdown(self) {
        for n in self.nodes {
            n.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_of_twelve_all_pairs() {
    let edges: Vec<(usize, usize)> = (1..N).map(|i| (i, i - 1)).collect();
    let net = build(&edges, None).await;
    let all: Vec<usize> = (0..N).collect();
    net.converge(&all).await;
    net.all_pairs(1).await;
    net.all_pairs(2).await;
    net.assert_bounded().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn star_of_twelve_all_pairs() {
    let edges: Vec<(usize, usize)> = (1..N).map(|i| (i, 0)).collect();
    let net = build(&edges, None).await;
    let all: Vec<usize> = (0..N).collect();
    net.converge(&all).await;
    net.all_pairs(1).await;
    net.assert_bounded().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_of_twelve_reroutes_after_cut() {
    let mut edges: Vec<(usize, usize)> = (1..N).map(|i| (i, i - 1)).collect();
    let cut = (N - 1, 0);
    edges.push(cut);
    let mut net = build(&edges, Some(cut)).await;
    let all: Vec<usize> = (0..N).collect();
    net.converge(&all).await;
    net.all_pairs(1).await;
    net.assert_bounded().await;
    net.proxy.take().unwrap().cut();
    // Wait until both ends notice the cut.
    let t0 = Instant::now();
    while net.nodes[0]
        .peers()
        .iter()
        .any(|p| p.key == net.keys[N - 1])
    {
        assert!(t0.elapsed() < Duration::from_secs(10), "cut not noticed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    net.converge(&all).await;
    // Node N−1 hung off the root; now it sits at the end of the line.
    let me = net.nodes[N - 1].self_info().await.unwrap();
    let t0 = Instant::now();
    let mut me = me;
    while me.coords.len() != N - 1 {
        assert!(
            t0.elapsed() < CONVERGE_TIMEOUT,
            "coords not updated: {me:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        me = net.nodes[N - 1].self_info().await.unwrap();
    }
    net.all_pairs(2).await;
    net.assert_bounded().await;
    net.shutdown().await;
}
