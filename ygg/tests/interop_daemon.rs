//! Interop with the real yggdrasil-go 0.5 daemon, on loopback only.
//!
//! Needs `yggdrasil` and `yggdrasilctl` on PATH: run
//! `sudo .ci/install-yggdrasil.sh` (Debian bookworm-backports). Each test
//! starts its own daemon (no TUN, no multicast, admin socket in a temp dir),
//! peers our node with it in one direction, and checks the daemon's
//! `getPeers` (and `getTree`) through `yggdrasilctl -json`.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use yggnode::{Node, NodeConfig, PublicKey};

const INSTALL_HINT: &str = "the real yggdrasil daemon is required for the interop tests: \
run `sudo bash .ci/install-yggdrasil.sh` (installs yggdrasil 0.5 from Debian bookworm-backports)";
/// How long to wait for peering/tree convergence before failing.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(250);

fn find_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in
        std::env::split_paths(&path).chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
    {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{name}` not found. {INSTALL_HINT}");
}

fn free_port() -> u16 {
    let l = StdListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().unwrap().port()
}

/// A loopback-only yggdrasil daemon, killed on drop.
struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    ctl: PathBuf,
    key: PublicKey,
}

/// A fresh daemon config from `yggdrasil -genconf -json`, and its key.
fn genconf() -> (Value, PublicKey) {
    let out = Command::new(find_tool("yggdrasil"))
        .args(["-genconf", "-json"])
        .output()
        .expect("yggdrasil -genconf");
    assert!(out.status.success(), "genconf failed");
    let cfg: Value = serde_json::from_slice(&out.stdout).expect("genconf json");
    let priv_hex = cfg["PrivateKey"].as_str().unwrap().to_string();
    let key: PublicKey = hex::decode(&priv_hex[64..]).unwrap().try_into().unwrap();
    (cfg, key)
}

impl Daemon {
    fn start(listen: Vec<String>, peers: Vec<String>) -> Daemon {
        Self::start_with(genconf(), listen, peers)
    }

    fn start_with(
        (mut cfg, key): (Value, PublicKey),
        listen: Vec<String>,
        peers: Vec<String>,
    ) -> Daemon {
        let bin = find_tool("yggdrasil");
        let ctl = find_tool("yggdrasilctl");
        let dir = tempfile::tempdir().unwrap();
        let admin = format!("unix://{}", dir.path().join("admin.sock").display());
        cfg["Listen"] = listen.into();
        cfg["Peers"] = peers.into();
        cfg["MulticastInterfaces"] = Value::Array(vec![]);
        cfg["IfName"] = "none".into();
        cfg["AdminListen"] = admin.into();
        cfg["NodeInfoPrivacy"] = true.into();
        let cfg_path = dir.path().join("ygg.json");
        std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        let child = Command::new(&bin)
            .arg("-useconffile")
            .arg(&cfg_path)
            .args(["-logto", "stdout", "-loglevel", "debug"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn yggdrasil");
        let d = Daemon {
            child,
            dir,
            ctl,
            key,
        };
        let sock = d.dir.path().join("admin.sock");
        let t0 = Instant::now();
        while !sock.exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "daemon did not start:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    fn ctl(&self, cmd: &str) -> Value {
        let endpoint = format!("unix://{}", self.dir.path().join("admin.sock").display());
        let out = Command::new(&self.ctl)
            .args(["-endpoint", &endpoint, "-json", cmd])
            .output()
            .expect("yggdrasilctl");
        assert!(
            out.status.success(),
            "yggdrasilctl {cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("yggdrasilctl json")
    }

    /// Runs `yggdrasilctl -json <args…>`; `Err` carries stderr on failure.
    fn try_ctl(&self, args: &[&str]) -> Result<Value, String> {
        let endpoint = format!("unix://{}", self.dir.path().join("admin.sock").display());
        let out = Command::new(&self.ctl)
            .args(["-endpoint", &endpoint, "-json"])
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
    }

    /// Keys of peers the daemon reports as up.
    fn up_peer_keys(&self) -> Vec<String> {
        let v = self.ctl("getPeers");
        v["peers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|p| p["up"].as_bool() == Some(true))
                    .filter_map(|p| p["key"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// (key, parent) pairs of the daemon's tree.
    fn tree(&self) -> Vec<(String, String)> {
        let v = self.ctl("getTree");
        v["tree"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["key"].as_str().unwrap_or_default().to_string(),
                            e["parent"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn admin_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A seed whose key is below (or above) `other`, so both root roles get tested.
fn seed_with_key(below: bool, other: &PublicKey) -> [u8; 32] {
    loop {
        let seed: [u8; 32] = rand::random();
        let id = yggnode::identity::Identity::from_seed(&seed);
        if (id.public_key() < *other) == below {
            return seed;
        }
    }
}

async fn wait_for<F: FnMut() -> bool>(what: &str, daemon: &Daemon, mut f: F) {
    let t0 = Instant::now();
    while !f() {
        if t0.elapsed() > CONVERGE_TIMEOUT {
            panic!(
                "timed out waiting for {what}; daemon log ({}):\n{}",
                daemon.admin_dir().display(),
                daemon.log()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Checks the daemon lists our key as an up peer, and we list its key.
async fn assert_peered(node: &Node, daemon: &Daemon) {
    let ours = hex::encode(node.public_key());
    wait_for("both sides to list each other as peers", daemon, || {
        daemon.up_peer_keys().contains(&ours) && node.peers().iter().any(|p| p.key == daemon.key)
    })
    .await;
}

/// Checks both sides agree on the root (the smaller key) and the parent.
async fn assert_tree_agrees(node: &Node, daemon: &Daemon) {
    let ours = node.public_key();
    let root = std::cmp::min(ours, daemon.key);
    let child = std::cmp::max(ours, daemon.key);
    let (root_hex, child_hex) = (hex::encode(root), hex::encode(child));
    wait_for("daemon getTree to agree on the root", daemon, || {
        let t = daemon.tree();
        t.contains(&(root_hex.clone(), root_hex.clone()))
            && t.contains(&(child_hex.clone(), root_hex.clone()))
    })
    .await;
    let t0 = Instant::now();
    loop {
        let me = node.self_info().await.unwrap();
        let tree = node.tree().await.unwrap();
        let ok = me.root == root
            && tree.iter().any(|e| e.key == child && e.parent == root)
            && tree.iter().any(|e| e.key == root && e.parent == root);
        if ok {
            break;
        }
        assert!(
            t0.elapsed() < CONVERGE_TIMEOUT,
            "our tree did not converge: self {me:?}, tree {tree:?}"
        );
        tokio::time::sleep(POLL).await;
    }
    // Peering must stay up across several liveness periods.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(daemon.up_peer_keys().contains(&hex::encode(ours)));
    assert!(node.peers().iter().any(|p| p.key == daemon.key));
    let log = daemon.log();
    if std::env::var_os("YGG_SHOW_DAEMON_LOG").is_some() {
        eprintln!("{log}");
    }
    assert!(
        !log.contains("Disconnected"),
        "the daemon dropped the link:\n{log}"
    );
}

async fn we_dial(password: Option<&str>, we_are_root: bool) {
    let port = free_port();
    let q = password
        .map(|p| format!("?password={p}"))
        .unwrap_or_default();
    let daemon = Daemon::start(vec![format!("tcp://127.0.0.1:{port}{q}")], vec![]);
    let key_q = format!("key={}", hex::encode(daemon.key));
    let uri = match password {
        Some(p) => format!("tcp://127.0.0.1:{port}?{key_q}&password={p}"),
        None => format!("tcp://127.0.0.1:{port}?{key_q}"),
    };
    let cfg = NodeConfig {
        peers: vec![uri.parse().unwrap()],
        ..NodeConfig::default()
    };
    let node = Node::start(seed_with_key(we_are_root, &daemon.key), cfg)
        .await
        .unwrap();
    assert_peered(&node, &daemon).await;
    assert_tree_agrees(&node, &daemon).await;
    node.shutdown().await;
}

async fn daemon_dials(password: Option<&str>, we_are_root: bool) {
    let q = password
        .map(|p| format!("?password={p}"))
        .unwrap_or_default();
    let port = free_port();
    let listen = format!("tcp://127.0.0.1:{port}{q}");
    let cfg = NodeConfig {
        listen: vec![listen.parse().unwrap()],
        ..NodeConfig::default()
    };
    // The daemon's key is known from its config, so our seed can be chosen
    // for the wanted root role; our node listens before the daemon dials.
    let (dcfg, dkey) = genconf();
    let node = Node::start(seed_with_key(we_are_root, &dkey), cfg)
        .await
        .unwrap();
    let daemon = Daemon::start_with(
        (dcfg, dkey),
        vec![],
        vec![format!("tcp://127.0.0.1:{port}{q}")],
    );
    assert_peered(&node, &daemon).await;
    assert_tree_agrees(&node, &daemon).await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_dial_daemon_no_password() {
    we_dial(None, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_dial_daemon_with_password() {
    we_dial(Some("s3cret-pw"), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_dials_us_no_password() {
    daemon_dials(None, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_dials_us_with_password() {
    daemon_dials(Some("another%20pw"), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_refused() {
    let port = free_port();
    let daemon = Daemon::start(
        vec![format!("tcp://127.0.0.1:{port}?password=right")],
        vec![],
    );
    let cfg = NodeConfig {
        peers: vec![format!("tcp://127.0.0.1:{port}?password=wrong")
            .parse()
            .unwrap()],
        ..NodeConfig::default()
    };
    let node = Node::start(rand::random(), cfg).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(node.peers().is_empty());
    assert!(!daemon
        .up_peer_keys()
        .contains(&hex::encode(node.public_key())));
    node.shutdown().await;
}

/// Sends `msg` from `a` to `b` every 100 ms until `b` receives it (the first
/// datagrams wait for a lookup and a session, and only the latest is
/// buffered), and returns how long it took.
async fn deliver(a: &Node, b: &Node, msg: &[u8], timeout: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        a.send_to(b.public_key(), msg).await.unwrap();
        let got = tokio::time::timeout(Duration::from_millis(100), async {
            loop {
                let (from, data) = b.recv_from().await.unwrap();
                if from == a.public_key() && data == msg {
                    return;
                }
            }
        })
        .await;
        if got.is_ok() {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < timeout,
            "datagram not delivered in {timeout:?}"
        );
    }
}

fn our_node_info() -> serde_json::Map<String, Value> {
    let v = serde_json::json!({"name": "mediatord", "version": "test-1"});
    v.as_object().unwrap().clone()
}

/// The daemon's `getNodeInfo` reaches our node: proof that its lookup, our
/// notify, path storage, traffic routing and both directions of the
/// encrypted session interoperate. Also checks `getPaths`/`getSessions`
/// list us and that we can fetch the daemon's own NodeInfo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_gets_our_nodeinfo() {
    let port = free_port();
    let daemon = Daemon::start(vec![format!("tcp://127.0.0.1:{port}")], vec![]);
    let cfg = NodeConfig {
        peers: vec![format!("tcp://127.0.0.1:{port}").parse().unwrap()],
        node_info: our_node_info(),
        ..NodeConfig::default()
    };
    let node = Node::start(rand::random(), cfg).await.unwrap();
    assert_peered(&node, &daemon).await;
    let ours = hex::encode(node.public_key());
    let key_arg = format!("key={ours}");
    let t0 = Instant::now();
    let info = loop {
        match daemon.try_ctl(&["getNodeInfo", &key_arg]) {
            Ok(v) => break v,
            Err(e) => assert!(
                t0.elapsed() < CONVERGE_TIMEOUT,
                "getNodeInfo failed: {e}\n{}",
                daemon.log()
            ),
        }
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(info[&ours]["name"], "mediatord", "{info}");
    assert_eq!(info[&ours]["version"], "test-1", "{info}");
    let paths = daemon.ctl("getPaths").to_string();
    assert!(paths.contains(&ours), "getPaths: {paths}");
    let sessions = daemon.ctl("getSessions").to_string();
    assert!(sessions.contains(&ours), "getSessions: {sessions}");
    // The other direction: our request, the daemon's answer.
    let theirs = node.get_node_info(daemon.key).await.unwrap();
    assert!(theirs.is_object(), "{theirs}");
    assert!(node
        .paths()
        .await
        .unwrap()
        .iter()
        .any(|p| p.key == daemon.key));
    assert!(node
        .sessions()
        .await
        .unwrap()
        .iter()
        .any(|s| s.key == daemon.key));
    node.shutdown().await;
}

/// The daemon's debug remote-get requests are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_debug_remote_get() {
    let port = free_port();
    let daemon = Daemon::start(vec![format!("tcp://127.0.0.1:{port}")], vec![]);
    let cfg = NodeConfig {
        peers: vec![format!("tcp://127.0.0.1:{port}").parse().unwrap()],
        ..NodeConfig::default()
    };
    let node = Node::start(rand::random(), cfg).await.unwrap();
    assert_peered(&node, &daemon).await;
    let ours = hex::encode(node.public_key());
    let key_arg = format!("key={ours}");
    for cmd in [
        "debug_remoteGetSelf",
        "debug_remoteGetPeers",
        "debug_remoteGetTree",
    ] {
        let t0 = Instant::now();
        let v = loop {
            match daemon.try_ctl(&[cmd, &key_arg]) {
                Ok(v) => break v,
                Err(e) => assert!(t0.elapsed() < CONVERGE_TIMEOUT, "{cmd} failed: {e}"),
            }
            tokio::time::sleep(POLL).await;
        };
        let text = v.to_string();
        if cmd == "debug_remoteGetSelf" {
            assert!(text.contains(&ours), "{cmd}: {text}");
        } else {
            assert!(text.contains(&hex::encode(daemon.key)), "{cmd}: {text}");
        }
    }
    node.shutdown().await;
}

async fn two_nodes_through_daemon() -> (Daemon, Node, Node) {
    let port = free_port();
    let daemon = Daemon::start(vec![format!("tcp://127.0.0.1:{port}")], vec![]);
    let cfg = || NodeConfig {
        peers: vec![format!("tcp://127.0.0.1:{port}").parse().unwrap()],
        ..NodeConfig::default()
    };
    let a = Node::start(rand::random(), cfg()).await.unwrap();
    let b = Node::start(rand::random(), cfg()).await.unwrap();
    assert_peered(&a, &daemon).await;
    assert_peered(&b, &daemon).await;
    (daemon, a, b)
}

/// Two of our nodes, connected only through the real daemon, exchange
/// datagrams both ways (the daemon forwards lookups, notifies and traffic).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_exchange_datagrams_through_daemon() {
    let (daemon, a, b) = two_nodes_through_daemon().await;
    deliver(&a, &b, b"hello b", CONVERGE_TIMEOUT).await;
    deliver(&b, &a, b"hello a", CONVERGE_TIMEOUT).await;
    let big = vec![0x5au8; 60_000];
    deliver(&a, &b, &big, CONVERGE_TIMEOUT).await;
    for i in 0..50u32 {
        deliver(&b, &a, &i.to_be_bytes(), Duration::from_secs(5)).await;
    }
    drop(daemon);
    a.shutdown().await;
    b.shutdown().await;
}

/// Long soak: datagrams both ways through the daemon for over three
/// minutes, across session key rotations (ironwood ratchets at most once a
/// minute, on the first packet from the remote's next key). Node `a` gets a
/// key below almost every daemon key, so it usually becomes the root: the
/// topology in which a lookup sent before the blooms converge used to strand
/// the first session Ack for good (see `router::pathfinder`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long (3 min): run by .ci/soak"]
async fn soak_three_minutes_through_daemon() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let port = free_port();
    let daemon = Daemon::start(vec![format!("tcp://127.0.0.1:{port}")], vec![]);
    let cfg = || NodeConfig {
        peers: vec![format!("tcp://127.0.0.1:{port}").parse().unwrap()],
        ..NodeConfig::default()
    };
    let low_seed = loop {
        let s: [u8; 32] = rand::random();
        if ed25519_dalek::SigningKey::from_bytes(&s)
            .verifying_key()
            .to_bytes()[0]
            < 0x08
        {
            break s;
        }
    };
    let a = Node::start(low_seed, cfg()).await.unwrap();
    let b = Node::start(rand::random(), cfg()).await.unwrap();
    assert_peered(&a, &daemon).await;
    assert_peered(&b, &daemon).await;
    // The first exchange waits for the tree, the blooms, lookups and the
    // session handshake; after that every datagram must arrive promptly.
    deliver(&a, &b, b"first", CONVERGE_TIMEOUT).await;
    deliver(&b, &a, b"first", CONVERGE_TIMEOUT).await;
    let t0 = Instant::now();
    let mut i = 0u64;
    let mut worst = Duration::ZERO;
    while t0.elapsed() < Duration::from_secs(190) {
        worst = worst.max(deliver(&a, &b, &i.to_be_bytes(), Duration::from_secs(5)).await);
        worst = worst.max(deliver(&b, &a, &i.to_be_bytes(), Duration::from_secs(5)).await);
        i += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("soak: {i} rounds, slowest delivery {worst:?}");
    let sa = a.sessions().await.unwrap();
    let s = sa.iter().find(|s| s.key == b.public_key()).unwrap();
    assert!(s.rotations >= 3, "keys did not rotate: {s:?}");
    let st = a.stats().await.unwrap();
    assert!(
        st.sessions <= 2 && st.paths <= 2 && st.session_buffers == 0,
        "{st:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// `tls://` both ways: we dial the daemon's TLS listener, and the daemon
/// dials ours; the tree forms and NodeInfo works over the TLS link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_links_both_directions() {
    // We dial.
    let port = free_port();
    let daemon = Daemon::start(vec![format!("tls://127.0.0.1:{port}")], vec![]);
    let cfg = NodeConfig {
        peers: vec![format!(
            "tls://127.0.0.1:{port}?key={}&sni=ygg.example",
            hex::encode(daemon.key)
        )
        .parse()
        .unwrap()],
        node_info: our_node_info(),
        ..NodeConfig::default()
    };
    let node = Node::start(seed_with_key(true, &daemon.key), cfg)
        .await
        .unwrap();
    assert_peered(&node, &daemon).await;
    assert_tree_agrees(&node, &daemon).await;
    let theirs = node.get_node_info(daemon.key).await.unwrap();
    assert!(theirs.is_object());
    node.shutdown().await;
    drop(daemon);

    // The daemon dials.
    let port = free_port();
    let cfg = NodeConfig {
        listen: vec![format!("tls://127.0.0.1:{port}").parse().unwrap()],
        ..NodeConfig::default()
    };
    let (dcfg, dkey) = genconf();
    let node = Node::start(seed_with_key(false, &dkey), cfg).await.unwrap();
    let daemon = Daemon::start_with(
        (dcfg, dkey),
        vec![],
        vec![format!("tls://127.0.0.1:{port}")],
    );
    assert_peered(&node, &daemon).await;
    assert_tree_agrees(&node, &daemon).await;
    node.shutdown().await;
}
