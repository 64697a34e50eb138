//! Datagram benchmark for `yggnode` (not a test; loopback only).
//!
//! Measures, between two of our nodes A → B:
//!
//! 1. over a direct `tcp://127.0.0.1` link: round-trip latency (A pings, B
//!    echoes; p50/p99/max) and one-way throughput for 64, 1200 and 1452 B
//!    payloads (A sends with `send_to` for a fixed time; datagrams/s and
//!    MB/s of what B received, plus sent vs delivered);
//! 2. the same with A and B both peered only to a real `yggdrasil` daemon
//!    on loopback (skipped with a message when the binary is missing);
//! 3. NodeInfo round trips (`get_node_info`) from A to that daemon.
//!
//! Run: `cargo run --release -p yggnode --example datagram_bench`
//! (`YGG_BENCH_SECS` sets the seconds per throughput run, default 3).
//! The daemon is looked up on `PATH`, then `/usr/sbin` (install it with
//! `sudo bash .ci/install-yggdrasil.sh`).

use std::error::Error;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};
use yggnode::{Datagram, Node, NodeConfig, PublicKey};

type Res<T> = Result<T, Box<dyn Error>>;

const SIZES: [usize; 3] = [64, 1200, 1452];
const PINGS: u64 = 1000;
const PING_SIZE: usize = 64;
const NODEINFO_REQS: u64 = 200;
const PING_TIMEOUT: Duration = Duration::from_secs(1);
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// First payload byte: B echoes `PING` datagrams and counts `DATA` ones.
const PING: u8 = 1;
const DATA: u8 = 2;

const HEADER: [&str; 11] = [
    "path",
    "measure",
    "size B",
    "sent",
    "delivered",
    "loss %",
    "dgram/s",
    "MB/s",
    "p50 µs",
    "p99 µs",
    "max µs",
];
type Row = [String; 11];

/// What B's responder has counted, for throughput runs.
#[derive(Default)]
struct Counter {
    count: AtomicU64,
    /// Nanoseconds since `Pair::base` of the last `DATA` arrival.
    last_ns: AtomicU64,
}

/// Sender A (whose receiver we read) and responder B.
struct Pair {
    a: Arc<Node>,
    b: Arc<Node>,
    a_rx: Receiver<Datagram>,
    counter: Arc<Counter>,
    responder: JoinHandle<()>,
    base: Instant,
}

impl Pair {
    fn new(a: Node, b: Node) -> Pair {
        let (a, b) = (Arc::new(a), Arc::new(b));
        let a_rx = a.take_receiver().expect("receiver");
        let mut b_rx = b.take_receiver().expect("receiver");
        let counter = Arc::new(Counter::default());
        let base = Instant::now();
        let (node, c) = (b.clone(), counter.clone());
        let responder = tokio::spawn(async move {
            // Drain in batches so the bench's own receiver costs little.
            let mut batch = Vec::with_capacity(256);
            while b_rx.recv_many(&mut batch, 256).await > 0 {
                let mut data = 0;
                for (from, d) in batch.drain(..) {
                    match d.first() {
                        Some(&PING) => {
                            let _ = node.send_to(from, &d).await;
                        }
                        Some(&DATA) => data += 1,
                        _ => {}
                    }
                }
                if data > 0 {
                    c.count.fetch_add(data, Relaxed);
                    c.last_ns.store(base.elapsed().as_nanos() as u64, Relaxed);
                }
            }
        });
        Pair {
            a,
            b,
            a_rx,
            counter,
            responder,
            base,
        }
    }

    /// One ping: `Some(rtt)`, or `None` after [`PING_TIMEOUT`].
    async fn ping(&mut self, seq: u64) -> Option<Duration> {
        let mut buf = [0u8; PING_SIZE];
        buf[0] = PING;
        buf[1..9].copy_from_slice(&seq.to_be_bytes());
        let t0 = Instant::now();
        self.a.send_to(self.b.public_key(), &buf).await.ok()?;
        let rx = &mut self.a_rx;
        let wait = async {
            while let Some((_, d)) = rx.recv().await {
                if d.len() >= 9 && d[0] == PING && d[1..9] == seq.to_be_bytes() {
                    return Some(t0.elapsed());
                }
            }
            None
        };
        timeout(PING_TIMEOUT, wait).await.ok().flatten()
    }

    /// Pings until the first echo: path lookup and sessions both ways.
    async fn warm_up(&mut self) -> Res<()> {
        let t0 = Instant::now();
        while self.ping(u64::MAX).await.is_none() {
            if t0.elapsed() > SETUP_TIMEOUT {
                return Err("no echo from B: path/session setup failed".into());
            }
        }
        Ok(())
    }

    async fn latency(&mut self, path: &str) -> Row {
        let mut rtts = Vec::new();
        for seq in 0..PINGS {
            rtts.extend(self.ping(seq).await);
        }
        lat_row(path, "ping-pong RTT", &PING_SIZE.to_string(), PINGS, rtts)
    }

    async fn throughput(&self, path: &str, size: usize, dur: Duration) -> Row {
        let before = self.counter.count.load(Relaxed);
        let drops = |s: yggnode::NodeStats| (s.recv_dropped, s.link_traffic_dropped);
        let b0 = self.b.stats().await.map(drops).unwrap_or_default();
        let mut buf = vec![0u8; size];
        buf[0] = DATA;
        let key = self.b.public_key();
        let t0 = Instant::now();
        let mut sent = 0u64;
        while t0.elapsed() < dur {
            if self.a.send_to(key, &buf).await.is_err() {
                break;
            }
            sent += 1;
        }
        // Let queued datagrams arrive: wait until B's count stops moving.
        let mut last = self.counter.count.load(Relaxed);
        loop {
            sleep(Duration::from_millis(300)).await;
            let now = self.counter.count.load(Relaxed);
            if now == last {
                break;
            }
            last = now;
        }
        let delivered = last - before;
        let b1 = self.b.stats().await.map(drops).unwrap_or_default();
        eprintln!(
            "    B dropped {} (app recv queue) + {} (link traffic queue)",
            b1.0 - b0.0,
            b1.1 - b0.1
        );
        let start_ns = (t0 - self.base).as_nanos() as u64;
        let window =
            Duration::from_nanos(self.counter.last_ns.load(Relaxed).saturating_sub(start_ns));
        let secs = window.as_secs_f64().max(1e-9);
        let (dps, mbps) = match delivered {
            0 => (0.0, 0.0),
            n => (n as f64 / secs, (n * size as u64) as f64 / secs / 1e6),
        };
        [
            path.into(),
            "throughput A→B".into(),
            size.to_string(),
            sent.to_string(),
            delivered.to_string(),
            loss(sent, delivered),
            format!("{dps:.0}"),
            format!("{mbps:.1}"),
            "-".into(),
            "-".into(),
            "-".into(),
        ]
    }

    async fn close(self) {
        self.responder.abort();
        let _ = self.responder.await;
        drop(self.a_rx);
        for n in [self.a, self.b] {
            if let Ok(n) = Arc::try_unwrap(n) {
                n.shutdown().await;
            }
        }
    }
}

fn loss(sent: u64, got: u64) -> String {
    match sent {
        0 => "-".into(),
        s => format!("{:.2}", 100.0 * s.saturating_sub(got) as f64 / s as f64),
    }
}

fn lat_row(path: &str, what: &str, size: &str, sent: u64, mut rtts: Vec<Duration>) -> Row {
    rtts.sort();
    let pct = |q: f64| match rtts.len() {
        0 => "-".to_string(),
        n => rtts[((n - 1) as f64 * q).round() as usize]
            .as_micros()
            .to_string(),
    };
    [
        path.into(),
        what.into(),
        size.into(),
        sent.to_string(),
        rtts.len().to_string(),
        loss(sent, rtts.len() as u64),
        "-".into(),
        "-".into(),
        pct(0.5),
        pct(0.99),
        pct(1.0),
    ]
}

async fn bench_pair(mut p: Pair, path: &str, dur: Duration, rows: &mut Vec<Row>) -> Res<Pair> {
    p.warm_up().await?;
    eprintln!("[{path}] latency: {PINGS} pings");
    rows.push(p.latency(path).await);
    for size in SIZES {
        eprintln!("[{path}] throughput: {size} B for {dur:?}");
        rows.push(p.throughput(path, size, dur).await);
    }
    Ok(p)
}

async fn wait_peered(node: &Node, key: PublicKey) -> Res<()> {
    let t0 = Instant::now();
    while !node.peers().iter().any(|p| p.key == key) {
        if t0.elapsed() > SETUP_TIMEOUT {
            return Err("peering timed out".into());
        }
        sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn direct_pair() -> Res<Pair> {
    let a = Node::start(
        rand::random(),
        NodeConfig {
            listen: vec!["tcp://127.0.0.1:0".parse()?],
            ..NodeConfig::default()
        },
    )
    .await?;
    let uri = format!("tcp://{}", a.listen_addrs()[0]);
    let b = Node::start(
        rand::random(),
        NodeConfig {
            peers: vec![uri.parse()?],
            ..NodeConfig::default()
        },
    )
    .await?;
    wait_peered(&a, b.public_key()).await?;
    Ok(Pair::new(a, b))
}

/// A loopback-only yggdrasil daemon (no TUN, no multicast, admin socket in
/// a temp dir, as in `tests/interop_daemon.rs`), killed on drop.
struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    key: PublicKey,
    port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_daemon() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("yggdrasil"))
        .find(|p| p.is_file())
}

fn start_daemon(bin: &PathBuf) -> Res<Daemon> {
    let out = Command::new(bin).args(["-genconf", "-json"]).output()?;
    let mut cfg: Value = serde_json::from_slice(&out.stdout)?;
    let priv_hex = cfg["PrivateKey"]
        .as_str()
        .ok_or("no PrivateKey")?
        .to_string();
    let key: PublicKey = hex::decode(&priv_hex[64..])?
        .try_into()
        .map_err(|_| "bad key")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = tempfile::tempdir()?;
    let sock = dir.path().join("admin.sock");
    cfg["Listen"] = vec![format!("tcp://127.0.0.1:{port}")].into();
    cfg["Peers"] = Value::Array(vec![]);
    cfg["MulticastInterfaces"] = Value::Array(vec![]);
    cfg["IfName"] = "none".into();
    cfg["AdminListen"] = format!("unix://{}", sock.display()).into();
    let cfg_path = dir.path().join("ygg.json");
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg)?)?;
    let log = std::fs::File::create(dir.path().join("daemon.log"))?;
    let child = Command::new(bin)
        .arg("-useconffile")
        .arg(&cfg_path)
        .args(["-logto", "stdout"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let d = Daemon {
        child,
        dir,
        key,
        port,
    };
    let t0 = Instant::now();
    while !sock.exists() {
        if t0.elapsed() > Duration::from_secs(10) {
            let log = std::fs::read_to_string(d.dir.path().join("daemon.log"));
            return Err(format!("daemon did not start: {}", log.unwrap_or_default()).into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(d)
}

async fn daemon_pair(d: &Daemon) -> Res<Pair> {
    let cfg = || -> Res<NodeConfig> {
        Ok(NodeConfig {
            peers: vec![format!("tcp://127.0.0.1:{}", d.port).parse()?],
            ..NodeConfig::default()
        })
    };
    let a = Node::start(rand::random(), cfg()?).await?;
    let b = Node::start(rand::random(), cfg()?).await?;
    wait_peered(&a, d.key).await?;
    wait_peered(&b, d.key).await?;
    Ok(Pair::new(a, b))
}

async fn nodeinfo_row(node: &Node, key: PublicKey, path: &str) -> Res<Row> {
    let t0 = Instant::now();
    while node.get_node_info(key).await.is_err() {
        if t0.elapsed() > SETUP_TIMEOUT {
            return Err("the daemon never answered NodeInfo".into());
        }
    }
    eprintln!("[{path}] NodeInfo: {NODEINFO_REQS} requests");
    let mut rtts = Vec::new();
    for _ in 0..NODEINFO_REQS {
        let t = Instant::now();
        if node.get_node_info(key).await.is_ok() {
            rtts.push(t.elapsed());
        }
    }
    Ok(lat_row(path, "NodeInfo RTT", "-", NODEINFO_REQS, rtts))
}

fn print_table(rows: &[Row]) {
    let mut w = HEADER.map(|h| h.chars().count());
    for r in rows {
        for (w, c) in w.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .zip(w)
            .enumerate()
            .map(|(i, (c, w))| match i {
                0 | 1 => format!("{c:<w$}"),
                _ => format!("{c:>w$}"),
            })
            .collect();
        println!("| {} |", s.join(" | "));
    };
    line(HEADER.to_vec());
    let rule: Vec<String> = w.iter().map(|&n| "-".repeat(n)).collect();
    line(rule.iter().map(String::as_str).collect());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

#[tokio::main]
async fn main() -> Res<()> {
    let secs = std::env::var("YGG_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let dur = Duration::from_secs_f64(secs);
    let mut rows = Vec::new();

    let direct = "ours↔ours tcp";
    let p = bench_pair(direct_pair().await?, direct, dur, &mut rows).await?;
    p.close().await;

    match find_daemon() {
        None => eprintln!(
            "SKIPPED parts 2 and 3: `yggdrasil` not found on PATH or in /usr/sbin \
             (install it with `sudo bash .ci/install-yggdrasil.sh`)"
        ),
        Some(bin) => {
            let d = start_daemon(&bin)?;
            let via = "ours↔daemon↔ours";
            let p = bench_pair(daemon_pair(&d).await?, via, dur, &mut rows).await?;
            rows.push(nodeinfo_row(&p.a, d.key, "ours→daemon").await?);
            p.close().await;
        }
    }

    println!("\nyggnode datagram bench ({secs} s per throughput run; MB = 10^6 payload bytes)");
    print_table(&rows);
    Ok(())
}
