//! Yggdrasil for the tests: the real yggdrasil 0.5 daemon as a peer ([`YggDaemon`]), client
//! nodes of our own (`yggnode`) peered with the daemon's node, and the two ways a test client
//! reaches mediatord ([`Dial`]: QUIC on UDP as Mimir 2.x, ygg_stream from a client node as
//! Mimir 3.x).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Daemon;

/// How long a ygg_stream session may take to connect (several attempts while the routes of a
/// fresh client node settle).
pub const CONNECT_PATIENCE: Duration = Duration::from_secs(40);

/// Where the real yggdrasil daemon's tools live (the Debian package puts them in /usr/sbin).
pub fn ygg_tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{name}` not found: install yggdrasil 0.5 with `bash .ci/install-yggdrasil.sh`");
}

/// A real yggdrasil-go daemon on loopback only (no TUN, no multicast, admin socket in a
/// temporary directory), killed on drop.
pub struct YggDaemon {
    child: Child,
    dir: tempfile::TempDir,
    /// The daemon's public key, hex.
    pub key: String,
}

impl YggDaemon {
    /// Starts a daemon listening on `listen` URIs and dialling `peers`.
    pub fn start(listen: &[String], peers: &[String]) -> YggDaemon {
        let out = Command::new(ygg_tool("yggdrasil"))
            .args(["-genconf", "-json"])
            .output()
            .expect("yggdrasil -genconf");
        let mut cfg: serde_json::Value = serde_json::from_slice(&out.stdout).expect("genconf");
        let key = cfg["PrivateKey"].as_str().expect("PrivateKey")[64..].to_string();
        let dir = tempfile::tempdir().expect("tempdir");
        cfg["Listen"] = listen.into();
        cfg["Peers"] = peers.into();
        cfg["MulticastInterfaces"] = serde_json::Value::Array(vec![]);
        cfg["IfName"] = "none".into();
        cfg["AdminListen"] = format!("unix://{}", dir.path().join("admin.sock").display()).into();
        let conf = dir.path().join("ygg.json");
        std::fs::write(&conf, serde_json::to_vec(&cfg).unwrap()).unwrap();
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        let child = Command::new(ygg_tool("yggdrasil"))
            .arg("-useconffile")
            .arg(&conf)
            .args(["-logto", "stdout"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting yggdrasil");
        let d = YggDaemon { child, dir, key };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !d.dir.path().join("admin.sock").exists() {
            assert!(Instant::now() < deadline, "yggdrasil did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    /// `yggdrasilctl -json ARGS…`, or the error text.
    pub fn ctl(&self, args: &[&str]) -> Result<serde_json::Value, String> {
        let endpoint = format!("unix://{}", self.dir.path().join("admin.sock").display());
        let out = Command::new(ygg_tool("yggdrasilctl"))
            .args(["-endpoint", &endpoint, "-json"])
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
    }

    /// Keys of the peers the daemon reports as up.
    pub fn peer_keys(&self) -> Vec<String> {
        self.ctl(&["getPeers"])
            .ok()
            .and_then(|v| {
                v["peers"].as_array().map(|a| {
                    a.iter()
                        .filter(|p| p["up"].as_bool() != Some(false))
                        .filter_map(|p| p["key"].as_str().map(str::to_string))
                        .collect()
                })
            })
            .unwrap_or_default()
    }
}

impl Drop for YggDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Sends a ygg_stream endpoint's packets as raw session payloads of a node.
struct RawPayloads(std::sync::Arc<yggnode::Node>);

impl yggstream::Outbound for RawPayloads {
    fn send(&self, to: [u8; 32], packet: Vec<u8>) {
        // A full queue drops the packet; the connection retransmits.
        let _ = self.0.try_send_raw(to, packet);
    }
}

/// A fresh yggnode peered with `uri` (waits for the link) and a ygg_stream endpoint on it
/// fed by the node's raw queue: the transport of a Mimir 3.x test client.
pub async fn stream_client_node(uri: &str) -> (std::sync::Arc<yggnode::Node>, yggstream::Endpoint) {
    let node = client_node(uri).await;
    let ep = yggstream::Endpoint::new(RawPayloads(node.clone()), rand::random());
    let mut rx = node.take_raw_receiver().expect("raw receiver");
    let feed = ep.clone();
    tokio::spawn(async move {
        while let Some((from, msg)) = rx.recv().await {
            feed.handle_message(from, &msg);
        }
    });
    (node, ep)
}

/// A fresh yggnode with a random key, peered with `uri`; returns once the link is up.
pub async fn client_node(uri: &str) -> std::sync::Arc<yggnode::Node> {
    let node = std::sync::Arc::new(
        yggnode::Node::start(
            rand::random(),
            yggnode::NodeConfig {
                peers: vec![uri.parse().expect("peer URI")],
                ..yggnode::NodeConfig::default()
            },
        )
        .await
        .expect("starting the client node"),
    );
    let t0 = Instant::now();
    while node.peers().is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no peering with {uri}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node
}

/// How a test client reaches the daemon: QUIC on UDP, as a Mimir 2.x client, or ygg_stream
/// from a client node of its own peered with the daemon's node, as a Mimir 3.x client.
#[derive(Debug, Clone)]
pub enum Dial {
    Quic(SocketAddr),
    Stream {
        /// The daemon's Yggdrasil listener with its key pinned (`tcp://…?key=…`).
        uri: String,
        /// The daemon's key.
        key: [u8; 32],
    },
}

/// One client connection: a QUIC connection, or for ygg_stream a client node (its key is
/// the remote the daemon names the sessions by, as a QUIC connection's address is).
pub enum Link {
    Quic(quinn::Connection),
    Stream(std::sync::Arc<yggnode::Node>, yggstream::Endpoint, [u8; 32]),
}

impl Dial {
    /// The ygg_stream dial of daemon `d`, which must listen on Yggdrasil.
    pub fn stream_to(d: &Daemon) -> Dial {
        let ygg = d
            .announced_after("listening yggdrasil ")
            .expect("the daemon listens on Yggdrasil");
        Dial::Stream {
            uri: format!("{ygg}?key={}", hex::encode(d.key)),
            key: d.key,
        }
    }

    /// A new connection.
    pub async fn link(&self) -> Link {
        match self {
            Dial::Quic(addr) => Link::Quic(mediator_client::connect(*addr).await.expect("connect")),
            Dial::Stream { uri, key } => {
                let (node, ep) = stream_client_node(uri).await;
                Link::Stream(node, ep, *key)
            }
        }
    }

    /// A session on a new connection, authenticated as a fresh random user.
    pub async fn user(&self) -> (mediator_client::Session, ed25519_dalek::SigningKey) {
        let mut s = self.link().await.session().await;
        let key = mediator_client::random_key();
        s.auth(&key).await.expect("auth");
        (s, key)
    }
}

impl Link {
    /// A new session on this connection (a stream; for ygg_stream, a connection to port 42
    /// from the same node), its preamble written.
    pub async fn session(&self) -> mediator_client::Session {
        match self {
            Link::Quic(conn) => mediator_client::Session::open(conn).await.expect("stream"),
            Link::Stream(_, ep, key) => {
                // Through other nodes the tree and paths settle after peering: a connect
                // (10 s of SYNs) may find no route yet; try again for a while.
                let t0 = Instant::now();
                let stream = loop {
                    match ep.connect(*key, 42).await {
                        Ok(s) => break s,
                        Err(e) => {
                            assert!(t0.elapsed() < CONNECT_PATIENCE, "ygg_stream connect: {e}")
                        }
                    }
                };
                let (r, w) = tokio::io::split(stream);
                mediator_client::Session::over(r, w, true)
                    .await
                    .expect("session")
            }
        }
    }
}
