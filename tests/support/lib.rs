//! Shared helpers for the black-box tests: build the real binaries once, start `mediatord` on
//! a loopback port with a temporary data directory, and stop it with a real signal; the Go
//! interop client (`go`), Yggdrasil peers and client nodes (`ygg`), the metrics endpoint
//! (`metrics`), and a real PostgreSQL server (`pg`).

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
    /// Its stdout's later lines.
    lines: std::sync::mpsc::Receiver<String>,
    _tmp: Option<tempfile::TempDir>,
}

/// A daemon started as a hot standby (`[store] url`): it has announced "standby" and serves
/// nothing until it takes the lease ([`Standby::serving`]).
pub struct Standby {
    child: Option<Child>,
    data_dir: PathBuf,
    lines: std::sync::mpsc::Receiver<String>,
    announced: Vec<String>,
}

impl Standby {
    /// Starts `mediatord --data-dir DATA_DIR EXTRA…` and returns once it says it waits.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Standby {
        let (child, lines) = spawn(&[], data_dir, extra);
        let mut s = Standby {
            child: Some(child),
            data_dir: data_dir.to_path_buf(),
            lines,
            announced: Vec::new(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let line = s
                .next_line(deadline)
                .expect("mediatord did not announce standby");
            s.announced.push(line.clone());
            if line == "standby" {
                return s;
            }
            assert_ne!(line, "active", "the standby took the lease at once");
        }
    }

    fn next_line(&mut self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.lines.recv_timeout(left).ok()
    }

    /// Whether it has begun serving by now (without waiting).
    pub fn has_taken_over(&mut self) -> bool {
        while let Ok(line) = self.lines.try_recv() {
            self.announced.push(line);
        }
        self.announced.iter().any(|l| l == "active")
    }

    /// Waits until it has taken the lease and serves, within `limit`; the serving daemon.
    pub fn serving(mut self, limit: Duration) -> Daemon {
        let deadline = Instant::now() + limit;
        let (addr, key) = read_start(&mut self.announced, &self.lines, deadline);
        Daemon {
            child: self.child.take().expect("child"),
            addr,
            key,
            data_dir: self.data_dir.clone(),
            announced: std::mem::take(&mut self.announced),
            lines: std::mem::replace(&mut self.lines, std::sync::mpsc::channel().1),
            _tmp: None,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }

    /// `mediatorctl ARGS…` against this standby's control socket.
    pub fn ctl(&self, args: &[&str]) -> std::process::Output {
        ctl_at(&self.data_dir, args)
    }
}

/// `mediatorctl ARGS…` against the control socket in `data_dir`, with no terminal on stdin.
fn ctl_at(data_dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin_dir().join("mediatorctl"))
        .arg("--socket")
        .arg(data_dir.join("control.sock"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running mediatorctl")
}

impl Drop for Standby {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts mediatord (or `command`, see [`Daemon::start_wrapped`]) on `data_dir`; returns the
/// process and the lines of its stdout.
fn spawn(
    command: &[&str],
    data_dir: &Path,
    extra: &[&str],
) -> (Child, std::sync::mpsc::Receiver<String>) {
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
    (child, rx)
}

/// Reads start-up lines until the QUIC address and the key are announced (by `deadline`).
fn read_start(
    announced: &mut Vec<String>,
    rx: &std::sync::mpsc::Receiver<String>,
    deadline: Instant,
) -> (SocketAddr, [u8; 32]) {
    let (mut addr, mut key) = (None, None);
    while addr.is_none() || key.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("mediatord did not start serving in time"));
        if let Some(a) = line.strip_prefix("listening quic ") {
            addr = Some(a.trim().parse().expect("listen address"));
        } else if let Some(k) = line.strip_prefix("mediatord public key ") {
            let bytes = hex::decode(k.trim()).expect("hex key");
            key = Some(bytes.try_into().expect("32-byte key"));
        }
        announced.push(line);
    }
    (addr.expect("addr"), key.expect("key"))
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
        let (child, lines) = spawn(command, data_dir, extra);
        let mut announced = Vec::new();
        let (addr, key) = read_start(&mut announced, &lines, Instant::now() + START_TIMEOUT);
        Daemon {
            child,
            addr,
            key,
            data_dir: data_dir.to_path_buf(),
            announced,
            lines,
            _tmp: None,
        }
    }

    /// Waits up to `limit` for the process to exit; its status, or `None` if it still runs.
    pub fn exit_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stdout lines printed since start (without waiting).
    pub fn later_lines(&mut self) -> Vec<String> {
        self.lines.try_iter().collect()
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
        ctl_at(&self.data_dir, args)
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

/// Starts a daemon serving from a fresh database `db` on `pg` (`[store] url`), with `config`
/// as the rest of its configuration file.
pub fn daemon_on_postgres(pg: &Postgres, db: &str, config: &str) -> Daemon {
    let url = pg.create_database(db);
    let d = daemon_with_config(&format!("{config}\n[store]\nurl = \"{url}\"\n"));
    assert!(
        d.announced.iter().any(|l| l == "active"),
        "{:?}",
        d.announced
    );
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

mod go;
mod metrics;
mod pg;
mod writers;
mod ygg;

pub use go::{go_client, GoWatcher, GO_QUIET, GO_START, GO_WAIT};
pub use metrics::{scrape, scrape_head};
pub use pg::Postgres;
pub use writers::{check_all_present, spawn_writers, Acked};
pub use ygg::{client_node, free_tcp_port, stream_client_node, ygg_tool, Dial, Link, YggDaemon};
