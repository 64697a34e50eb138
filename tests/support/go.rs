//! The Go interop client (`tests/go/mimirclient`: quic-go with yggquic's settings, the Mimir
//! 2.x client's transport): built once per test binary, and run as a chat member that prints
//! its pushes ([`GoWatcher`]).

use crate::workspace_root;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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

    /// Every stored message of `chat` as (id, body), read with GET_MESSAGES_SINCE page by
    /// page.
    pub fn sync(&mut self, chat: i64) -> Vec<(i64, Vec<u8>)> {
        self.send(&format!("sync {chat}"));
        let mut out = Vec::new();
        let deadline = Instant::now() + GO_WAIT * 4;
        while Instant::now() < deadline {
            let Some(l) = self.next(GO_WAIT) else {
                continue;
            };
            if let Some(m) = l.strip_prefix("message ") {
                let (id, blob) = m.split_once(' ').expect("message line");
                out.push((id.parse().unwrap(), hex::decode(blob).unwrap()));
            } else if l.starts_with(&format!("synced {chat} ")) {
                return out;
            }
        }
        panic!("the Go member did not finish syncing {chat}");
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
