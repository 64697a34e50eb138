//! Shared helpers for the black-box tests: build the real binaries once, start `mediatord` on
//! a loopback port with a temporary data directory, and stop it with a real signal.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a daemon may take to print its listening line.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Builds the workspace binaries (once per test process) and returns the directory holding
/// them. Running `cargo build` here keeps the binaries in step with the sources even when
/// only `cargo test -p mediator-tests` is run.
///
/// `MEDIATOR_TEST_BIN_DIR` names another directory holding `mediatord` and `mediatorctl`
/// (an older build, say, to show that a test fails there); nothing is built then.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("MEDIATOR_TEST_BIN_DIR") {
            return PathBuf::from(dir);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace_root())
            .args(["build", "--quiet", "-p", "mediatord", "-p", "mediatorctl"])
            .status()
            .expect("running cargo build");
        assert!(status.success(), "cargo build of the binaries failed");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| workspace_root().join("target"));
        target.join("debug")
    })
}

/// A running `mediatord`.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub key: [u8; 32],
    pub data_dir: PathBuf,
    /// The lines the daemon printed on stdout while starting (what it listens on).
    pub announced: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl Daemon {
    /// Starts a daemon with a fresh temporary data directory.
    pub fn start() -> Daemon {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let mut d = Daemon::start_in(&dir, &[]);
        d._tmp = Some(tmp);
        d
    }

    /// Starts a daemon on `data_dir` with extra arguments.
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> Daemon {
        Daemon::start_wrapped(&[], data_dir, extra)
    }

    /// Starts `daemon` (a mediatord binary) in a private mount namespace (`unshare --mount`,
    /// so root is needed) after `script` has run there: a `sh` script that sets the
    /// namespace up (mounts, environment) and ends with `exec "$0" "$@"` (possibly through
    /// a wrapper such as `setpriv`), which starts the daemon with its arguments.
    pub fn start_after_mounts(
        script: &str,
        daemon: &Path,
        data_dir: &Path,
        extra: &[&str],
    ) -> Daemon {
        let daemon = daemon.to_str().expect("utf-8 path");
        Daemon::start_wrapped(
            &["unshare", "--mount", "sh", "-c", script, daemon],
            data_dir,
            extra,
        )
    }

    /// [`Daemon::start_in`] with `command` (program, arguments, ending with the mediatord
    /// binary to run, e.g. through `setpriv`) instead of the built daemon; the daemon's
    /// arguments are appended, and the command must exec it in the same process.
    pub fn start_wrapped(command: &[&str], data_dir: &Path, extra: &[&str]) -> Daemon {
        let mut cmd = match command.split_first() {
            None => Command::new(bin_dir().join("mediatord")),
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args);
                c
            }
        };
        let mut child = cmd
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--quic-listen", "127.0.0.1:0", "--log", "warn"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting mediatord");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut addr, mut key) = (None, None);
        let mut announced = Vec::new();
        let deadline = Instant::now() + START_TIMEOUT;
        while addr.is_none() || key.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("mediatord did not start within {START_TIMEOUT:?}"));
            if let Some(a) = line.strip_prefix("listening quic ") {
                addr = Some(a.trim().parse().expect("listen address"));
            } else if let Some(k) = line.strip_prefix("mediatord public key ") {
                let bytes = hex::decode(k.trim()).expect("hex key");
                key = Some(bytes.try_into().expect("32-byte key"));
            }
            announced.push(line);
        }
        Daemon {
            child,
            addr: addr.expect("addr"),
            key: key.expect("key"),
            data_dir: data_dir.to_path_buf(),
            announced,
            _tmp: None,
        }
    }

    /// The address after `prefix` in the daemon's start-up lines (e.g. "listening metrics ").
    pub fn announced_after(&self, prefix: &str) -> Option<&str> {
        self.announced
            .iter()
            .find_map(|l| l.strip_prefix(prefix).map(str::trim))
    }

    /// Sends a signal and waits for the process to exit; returns its exit status.
    pub fn signal_and_wait(&mut self, sig: i32) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "mediatord did not exit after signal {sig}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// `mediatorctl ARGS…` against this daemon's control socket, with no terminal on stdin
    /// (destructive commands then need `--yes`).
    pub fn ctl(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin_dir().join("mediatorctl"))
            .arg("--socket")
            .arg(self.data_dir.join("control.sock"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running mediatorctl")
    }

    /// `mediatorctl --json ARGS…` against this daemon's control socket; panics with
    /// mediatorctl's error output if it fails.
    pub fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ctl(&all);
        assert!(
            out.status.success(),
            "mediatorctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("mediatorctl JSON")
    }

    /// Takes ownership of the temporary directory so it outlives this daemon.
    pub fn take_tempdir(&mut self) -> Option<tempfile::TempDir> {
        self._tmp.take()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("/proc status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Starts a daemon on a fresh temporary data directory with `config` as its configuration
/// file.
pub fn daemon_with_config(config: &str) -> Daemon {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = tmp.path().join("mediatord.toml");
    std::fs::write(&cfg, config).expect("writing the configuration");
    let mut d = Daemon::start_in(
        &tmp.path().join("data"),
        &["--config", cfg.to_str().expect("utf-8 path")],
    );
    d._tmp = Some(tmp);
    d
}

/// A connected, authenticated session for a fresh random user.
pub async fn user(addr: SocketAddr) -> (mediator_client::Session, ed25519_dalek::SigningKey) {
    let conn = mediator_client::connect(addr).await.expect("connect");
    let mut s = mediator_client::Session::open(&conn).await.expect("open");
    let key = mediator_client::random_key();
    s.auth(&key).await.expect("auth");
    (s, key)
}

/// Builds the Go interop client (`tests/go/mimirclient`) once and returns its path. Fails
/// with a clear message when Go is missing: these tests never pass silently.
pub fn go_client() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let go = std::env::var("GO").unwrap_or_else(|_| "go".into());
        let out = std::env::temp_dir().join(format!("mimirclient-{}", std::process::id()));
        let status = Command::new(&go)
            .current_dir(workspace_root().join("tests/go/mimirclient"))
            .args(["build", "-mod=readonly", "-o"])
            .arg(&out)
            .arg(".")
            .status()
            .unwrap_or_else(|e| {
                panic!("cannot run `{go}` to build the Go client ({e}); install Go (see .ci/run)")
            });
        assert!(status.success(), "building tests/go/mimirclient failed");
        out
    })
}

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

/// One scrape of a metrics endpoint: the response's head, and every sample line as
/// "name{labels}" → value.
pub fn scrape(url: &str) -> (String, std::collections::HashMap<String, f64>) {
    let (head, body) = scrape_head(url);
    let samples = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("sample");
            (k.to_string(), v.parse::<f64>().expect("value"))
        })
        .collect();
    assert!(body.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    (head, samples)
}

/// The head (status line and headers) and the body of a GET of `url`.
pub fn scrape_head(url: &str) -> (String, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("path");
    let mut s = std::net::TcpStream::connect(host).expect("connect to metrics");
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_string(), body.to_string())
}

/// How long the Go member must stay silent before the pushes of an action are all in.
pub const GO_QUIET: Duration = Duration::from_millis(600);
/// How long the Go member may take to start (over Yggdrasil the tree must settle first).
pub const GO_START: Duration = Duration::from_secs(60);
/// How long the Go member may take to answer a line.
pub const GO_WAIT: Duration = Duration::from_secs(10);

/// The Go interop client as a chat member (`-scenario watch`): it authenticates, prints its
/// key, subscribes on command and prints every push (it takes pushes only with status 0, as
/// the Mimir 2.x app does).
pub struct GoWatcher {
    child: Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl GoWatcher {
    /// Starts it against the mediator `server_key`, reached by `transport` (the Go client's
    /// flags: `-udp ADDR`, or `-ygg-peer URI` for QUIC inside its own Yggdrasil node); returns
    /// it and its public key once it has authenticated.
    pub fn start(server_key: &[u8; 32], transport: &[&str]) -> (GoWatcher, [u8; 32]) {
        let mut child = Command::new(go_client())
            .args(transport)
            .args(["-server-key", &hex::encode(server_key)])
            .args(["-scenario", "watch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the Go client");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let w = GoWatcher {
            child,
            stdin,
            lines,
        };
        let line = w.next(GO_START).expect("the Go member's key");
        let key = hex::decode(line.strip_prefix("key ").expect("key line")).unwrap();
        (w, key.try_into().unwrap())
    }

    pub fn next(&self, wait: Duration) -> Option<String> {
        match self.lines.recv_timeout(wait) {
            Ok(l) => Some(l),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("the Go member exited"),
        }
    }

    pub fn send(&mut self, line: &str) {
        use std::io::Write;
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    pub fn subscribe(&mut self, chat: i64) {
        self.send(&format!("subscribe {chat}"));
        let deadline = Instant::now() + GO_WAIT;
        while Instant::now() < deadline {
            if let Some(l) = self.next(GO_WAIT) {
                if l.starts_with(&format!("subscribed {chat} ")) {
                    return;
                }
            }
        }
        panic!("the Go member did not subscribe to {chat}");
    }

    /// The pushes an action causes: waits up to [`GO_WAIT`] for the first, then takes every
    /// push until the member has been quiet for [`GO_QUIET`].
    pub fn expect_pushes(&self) -> Vec<(u16, Vec<u8>)> {
        let mut out = self.pushes_within(GO_WAIT, 1);
        out.extend(self.pushes());
        out
    }

    /// Every push until the member has been quiet for [`GO_QUIET`], as (code, payload).
    pub fn pushes(&self) -> Vec<(u16, Vec<u8>)> {
        self.pushes_within(GO_QUIET, usize::MAX)
    }

    /// Up to `most` pushes, each within `wait` of the one before.
    pub fn pushes_within(&self, wait: Duration, most: usize) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        while out.len() < most {
            let Some(l) = self.next(wait) else { break };
            let mut parts = l.splitn(3, ' ');
            if parts.next() == Some("push") {
                let code: u16 = parts.next().unwrap().parse().unwrap();
                out.push((code, hex::decode(parts.next().unwrap()).unwrap()));
            } else {
                assert_ne!(l, "closed", "the Go member's session ended");
            }
        }
        out
    }
}

impl GoWatcher {
    /// Tells it to end and checks that it exits successfully (no failed step, every
    /// GOT_MESSAGE push parsed).
    pub fn end(&mut self) {
        self.send("end");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the Go member failed");
    }
}

impl Drop for GoWatcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
                let stream = ep.connect(*key, 42).await.expect("ygg_stream connect");
                let (r, w) = tokio::io::split(stream);
                mediator_client::Session::over(r, w, true)
                    .await
                    .expect("session")
            }
        }
    }
}
