//! The control plane end to end: the real daemon, the real `mediatorctl` binary, state created
//! through the protocol, and callers of different users and groups.

use mediator_client::{connect, Session};
use mediator_tests::{bin_dir, user, Daemon};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// A world-traversable scratch directory (tempdir() is 0700, which would hide the socket
/// from the unprivileged callers of these tests).
struct OpenDir(PathBuf);

impl OpenDir {
    fn new(tag: &str) -> OpenDir {
        let p = std::env::temp_dir().join(format!("mediatorctl-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        OpenDir(p)
    }
}

impl Drop for OpenDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `mediatorctl --socket SOCKET ARGS…`, with no terminal on stdin and tables as wide as
/// their content (whatever COLUMNS the test runs with).
fn ctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(bin_dir().join("mediatorctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("COLUMNS")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running mediatorctl")
}

fn ok_json(socket: &Path, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let out = ctl(socket, &a);
    assert!(
        out.status.success(),
        "mediatorctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn ok_text(socket: &Path, args: &[&str]) -> String {
    let out = ctl(socket, args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn socket_of(d: &Daemon) -> PathBuf {
    d.data_dir.join("control.sock")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_reflect_protocol_state() {
    let d = Daemon::start();
    let sock = socket_of(&d);
    let (mut a, ka) = user(d.addr).await;
    let (mut b, kb) = user(d.addr).await;
    let (pa, pb) = (ka.verifying_key().to_bytes(), kb.verifying_key().to_bytes());
    let chat1 = a
        .create_chat("alpha", "first", Some(&[1, 2, 3]))
        .await
        .unwrap();
    let chat2 = b.create_chat("beta", "", None).await.unwrap();
    a.add_user(chat1, &pb).await.unwrap();
    a.change_member_status(chat1, &pb, 0x20).await.unwrap();
    let (_c, kc) = user(d.addr).await;
    let pc = kc.verifying_key().to_bytes();
    a.add_user(chat1, &pc).await.unwrap();
    a.ban_user(chat1, &pc).await.unwrap();
    a.subscribe(chat1).await.unwrap();
    b.subscribe(chat1).await.unwrap();
    b.subscribe(chat2).await.unwrap();
    for i in 0..5 {
        a.send_message(chat1, i, b"x").await.unwrap();
    }

    let st = ok_json(&sock, &["status"]);
    assert_eq!(st["public_key"], hex::encode(d.key));
    assert_eq!(st["chats"], 2);
    assert_eq!(st["users"], 3);
    assert!(st["sessions"].as_u64().unwrap() >= 3);
    assert!(st["messages"].as_u64().unwrap() >= 5);
    assert_eq!(st["listeners"][0], format!("quic://{}", d.addr));
    assert!(ok_text(&sock, &["status"]).contains(&hex::encode(d.key)));

    let chats = ok_json(&sock, &["chats", "list", "--sort", "messages", "--desc"]);
    assert_eq!(chats["total"], 2);
    // Ids are strings in JSON (see `ids_survive_jq` in ctl_output.rs).
    assert_eq!(chats["chats"][0]["id"], chat1.to_string());
    assert_eq!(chats["chats"][0]["name"], "alpha");
    assert_eq!(chats["chats"][0]["owner"], hex::encode(pa));
    assert_eq!(chats["chats"][0]["members"], 2, "banned member not counted");
    assert_eq!(chats["chats"][0]["subscribers"], 2);
    let only_b = ok_json(&sock, &["chats", "list", "--owner", &hex::encode(pb)]);
    assert_eq!(only_b["chats"].as_array().unwrap().len(), 1);
    assert_eq!(only_b["chats"][0]["id"], chat2.to_string());
    let limited = ok_json(&sock, &["chats", "list", "--limit", "1"]);
    assert_eq!(limited["chats"].as_array().unwrap().len(), 1);
    assert!(ok_text(&sock, &["chats", "list"]).contains("alpha"));

    let show = ok_json(&sock, &["chats", "show", &chat1.to_string()]);
    assert_eq!(show["description"], "first");
    assert_eq!(show["avatar_bytes"], 3);
    assert_eq!(show["roles"]["owner"], 1);
    assert_eq!(show["roles"]["moderator"], 1);
    assert_eq!(show["roles"]["banned"], 1);
    let missing = ctl(&sock, &["chats", "show", "12345"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no chat with id 12345"));

    let members = ok_json(&sock, &["members", "list", &chat1.to_string()]);
    let m = members.as_array().unwrap();
    assert_eq!(m.len(), 3);
    let find = |k: &[u8; 32]| {
        m.iter()
            .find(|x| x["key"] == hex::encode(k))
            .unwrap()
            .clone()
    };
    assert_eq!(
        (find(&pa)["role"].as_str(), find(&pa)["online"].as_bool()),
        (Some("owner"), Some(true))
    );
    assert_eq!(find(&pb)["role"], "moderator");
    assert_eq!(
        (
            find(&pc)["role"].as_str(),
            find(&pc)["banned"].as_bool(),
            find(&pc)["online"].as_bool()
        ),
        (Some("banned"), Some(true), Some(false))
    );
    let table = ok_text(&sock, &["members", "list", &chat1.to_string()]);
    assert!(table.contains(&hex::encode(pb)) && table.contains("moderator"));

    let subs = ok_json(&sock, &["subscribers", "list"]);
    let bs = subs
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["user"] == hex::encode(pb))
        .expect("B's session listed");
    let mut chats: Vec<i64> = bs["chats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().parse().unwrap())
        .collect();
    chats.sort_unstable();
    let mut want = vec![chat1, chat2];
    want.sort_unstable();
    assert_eq!(chats, want);
    assert!(bs["remote"].as_str().unwrap().starts_with("127.0.0.1:"));

    // Nonces of various ages: three fresh from GET_NONCE, four old ones written directly
    // into the database as an older version left them.
    let conn = connect(d.addr).await.unwrap();
    let mut s = Session::open(&conn).await.unwrap();
    for i in 0..3u8 {
        s.get_nonce(&[i; 32]).await.unwrap();
    }
    {
        let db = rusqlite::Connection::open(d.data_dir.join("mediator.db")).unwrap();
        db.busy_timeout(Duration::from_secs(5)).unwrap();
        let now = mediator_client::now_secs();
        for (i, age) in [7200i64, 7300, 90_000, 3_700].iter().enumerate() {
            db.execute(
                "INSERT INTO nonces (pubkey, nonce, ts) VALUES (?1, ?2, ?3)",
                rusqlite::params![vec![0xa0 + i as u8; 32], vec![i as u8; 32], now - age],
            )
            .unwrap();
        }
    }
    // Fresh nonces live in their session (status counts them); the purge clears the
    // database rows left by older versions.
    assert_eq!(ok_json(&sock, &["status"])["nonces"], 3);
    let purged = ok_json(&sock, &["nonces", "purge", "--older-than", "1h"]);
    assert_eq!(purged["removed"], 4);
    assert_eq!(purged["remaining"], 0);
    assert!(ok_text(&sock, &["nonces", "purge", "--older-than", "1h"]).contains("removed 0 nonces"));
    assert!(!ctl(&sock, &["nonces", "purge", "--older-than", "soon"])
        .status
        .success());
    let peers = ok_text(&sock, &["peers", "list"]);
    assert!(peers.contains("not enabled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_clients_write() {
    // One key writes as fast as the daemon acknowledges: far beyond a person's rate, so the
    // per-key SEND_MESSAGE limit is raised for this load.
    let d = mediator_tests::daemon_with_config(
        "[limits]\nrate_send_message_per_key = { per_sec = 1e9, burst = 1e9 }\n",
    );
    let sock = socket_of(&d);
    let (mut a, ka) = user(d.addr).await;
    let chat = a.create_chat("busy", "", None).await.unwrap();
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (acked, stop, addr) = (acked.clone(), stop.clone(), d.addr);
        tokio::spawn(async move {
            let conn = connect(addr).await.unwrap();
            let mut s = Session::open(&conn).await.unwrap();
            s.auth(&ka).await.unwrap();
            let mut i = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = format!("message {i}").into_bytes();
                let (_, id) = s.send_message(chat, i, &body).await.unwrap();
                acked.lock().unwrap().push((id, body));
                i += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let before: Vec<(i64, Vec<u8>)> = acked.lock().unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("backup.db");
    let out = ok_json(&sock, &["backup", dest.to_str().unwrap()]);
    assert!(out["bytes"].as_u64().unwrap() > 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    assert!(
        before.len() > 10,
        "only {} messages before the backup",
        before.len()
    );

    let db = rusqlite::Connection::open(&dest).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let mut st = db
        .prepare("SELECT id, body FROM messages WHERE chat_id = ?1")
        .unwrap();
    let rows: std::collections::HashMap<i64, Vec<u8>> = st
        .query_map([chat], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (id, body) in &before {
        assert_eq!(
            rows.get(id),
            Some(body),
            "message {id} acknowledged before the backup"
        );
    }
    // An existing destination is refused.
    let again = ctl(&sock, &["backup", dest.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    drop(a);
}

#[test]
fn unreachable_daemon_gives_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    for (path, needle) in [
        (dir.path().join("nope.sock"), "no such socket"),
        (
            PathBuf::from("/nonexistent/dir/control.sock"),
            "no such socket",
        ),
    ] {
        let out = ctl(&path, &["status"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(
            err.contains("cannot reach mediatord") && err.contains(needle),
            "{err}"
        );
    }
    // A stale socket file with nobody behind it: connection refused.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let out = ctl(&stale, &["status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("is it running"), "{err}");
}

/// The packaged unit hides other users' processes from the daemon (`ProtectProc=invisible`),
/// so the daemon cannot read a caller's supplementary groups in /proc: a member of the
/// control group must still get in, its groups then coming from the group database. Here
/// the daemon runs as an unprivileged user in a mount namespace whose /proc is mounted with
/// `hidepid=invisible`; the caller is `nobody`, whose primary group in /etc/passwd is the
/// control group but who calls with another current group.
#[test]
fn group_members_get_in_when_proc_hides_their_processes() {
    use std::os::unix::fs::chown;
    const DAEMON_UID: u32 = 65533;
    let open = OpenDir::new("hidepid");
    for name in ["mediatorctl", "mediatord"] {
        let bin = open.0.join(name);
        std::fs::copy(bin_dir().join(name), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (data, run) = (open.0.join("data"), open.0.join("run"));
    for dir in [&data, &run] {
        std::fs::create_dir(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        chown(dir, Some(DAEMON_UID), Some(DAEMON_UID)).unwrap();
    }
    let sock = run.join("control.sock");
    let sock_s = sock.to_str().unwrap().to_string();
    let daemon = open.0.join("mediatord");
    let script = format!(
        "mount -t proc -o hidepid=invisible proc /proc && \
         exec setpriv --reuid={DAEMON_UID} --regid={DAEMON_UID} --groups=65534 \"$0\" \"$@\""
    );
    let d = Daemon::start_after_mounts(
        &script,
        &daemon,
        &data,
        &["--control-socket", &sock_s, "--control-group", "nogroup"],
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.contains(&DAEMON_UID.to_string())),
        "the daemon runs unprivileged"
    );
    let ctl = open.0.join("mediatorctl");
    let as_user = |ids: &[&str]| {
        Command::new("setpriv")
            .args(ids)
            .arg(&ctl)
            .args(["--socket", &sock_s, "status"])
            .output()
            .expect("setpriv (util-linux)")
    };
    // nobody, calling with group 12345 and nogroup as a supplementary group: the daemon
    // cannot see the process, and finds nogroup as nobody's group in the databases.
    let out = as_user(&["--reuid=65534", "--regid=12345", "--groups=65534"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Someone in neither: still refused (the socket's mode, then the daemon).
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = as_user(&["--reuid=65532", "--regid=12345", "--clear-groups"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("permission denied"),
        "{err}"
    );
    drop(d);
}

#[test]
fn callers_are_checked_by_user_and_group() {
    let open = OpenDir::new("perm");
    let bin = open.0.join("mediatorctl");
    std::fs::copy(bin_dir().join("mediatorctl"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = open.0.join("control.sock");
    let data = tempfile::tempdir().unwrap();
    let sock_s = sock.to_str().unwrap().to_string();
    let d = Daemon::start_in(
        &data.path().join("data"),
        &["--control-socket", &sock_s, "--control-group", "nogroup"],
    );
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let as_user = |ids: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args(ids).arg(&bin).args(["--socket", &sock_s, "status"]);
        c.output().expect("setpriv (util-linux)")
    };
    // Primary group member, supplementary group member: allowed.
    let out = as_user(&["--reuid=65534", "--regid=65534", "--clear-groups"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = as_user(&["--reuid=65534", "--regid=12345", "--groups=65534"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Neither: the socket's mode refuses the connection.
    let out = as_user(&["--reuid=65534", "--regid=12345", "--clear-groups"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("permission denied: add yourself to group"),
        "{err}"
    );
    // Even with the socket opened to everyone, the daemon checks the caller's credentials.
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = as_user(&["--reuid=65534", "--regid=12345", "--clear-groups"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("permission denied: add yourself to group nogroup"),
        "{err}"
    );
    // A second daemon never hijacks a live socket.
    let data2 = tempfile::tempdir().unwrap();
    let out = Command::new(bin_dir().join("mediatord"))
        .arg("--data-dir")
        .arg(data2.path().join("d"))
        .args(["--quic-listen", "127.0.0.1:0", "--control-socket", &sock_s])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by a running mediatord"));
    drop(d);
}

#[test]
fn completions_and_man_page() {
    let sock = Path::new("/nonexistent.sock");
    for shell in ["bash", "zsh", "fish"] {
        let out = ok_text(sock, &["completions", shell]);
        assert!(
            out.contains("mediatorctl") && out.contains("purge"),
            "{shell}"
        );
    }
    let man = ok_text(sock, &["man"]);
    assert!(man.starts_with(".ie") || man.contains(".TH"), "roff output");
    assert!(man.contains("mediatorctl"));
}

/// `mediatorctl … | grep -q KEY` under `set -o pipefail`: the reader leaves before the output
/// is written. That is not an error (no panic, exit 0), for a daemon answer and for the
/// locally rendered man page alike. (The package test failed on exactly this.)
#[test]
fn a_reader_that_leaves_early_is_not_an_error() {
    use std::process::Stdio;
    let d = Daemon::start();
    let sock = socket_of(&d);
    for args in [&["--json", "status"][..], &["status"], &["man"]] {
        let mut child = Command::new(bin_dir().join("mediatorctl"))
            .arg("--socket")
            .arg(&sock)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the read end closes before anything is written
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && err.is_empty(),
            "{args:?}: {:?} {err}",
            out.status
        );
    }
}

/// `mediatorctl health`'s verdicts and exit codes against real daemons: 0 when all is well,
/// 4 (degraded) for a disk under the free-space threshold, for a writer held up by another
/// process's lock on the database, and for a node whose only peer is unreachable; 3 when
/// nobody answers on the socket.
#[test]
fn health_verdicts_and_exit_codes() {
    let health = |sock: &Path, extra: &[&str]| -> (i32, Value) {
        let mut args = vec!["--json", "health"];
        args.extend_from_slice(extra);
        let out = ctl(sock, &args);
        let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "health {extra:?}: {e}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().expect("exit code"), json)
    };
    let has = |v: &Value, needle: &str| {
        v["problems"].as_array().is_some_and(|a| {
            a.iter()
                .any(|p| p.as_str().is_some_and(|s| s.contains(needle)))
        })
    };

    let mut d = Daemon::start();
    let sock = socket_of(&d);
    // The machine's own disk may be nearly full: judge it with a threshold of 0%.
    let (code, v) = health(&sock, &["--min-free-percent", "0"]);
    assert_eq!((code, v["status"].as_str()), (0, Some("ok")), "{v}");
    assert!(v["disk_total_bytes"].as_u64() > Some(0), "{v}");
    let text = ok_text(&sock, &["health", "--min-free-percent", "0"]);
    assert_eq!(text.trim(), "ok");

    let (code, v) = health(&sock, &["--min-free-percent", "100"]);
    assert_eq!(code, 4, "{v}");
    assert!(has(&v, "disk nearly full"), "{v}");

    // Another process holds the write lock: a write waits in the writer (up to its busy
    // timeout), which counts as a stall past --writer-stall.
    let db = rusqlite::Connection::open(d.data_dir.join("mediator.db")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let purge = {
        let sock = sock.clone();
        std::thread::spawn(move || ctl(&sock, &["nonces", "purge"]))
    };
    std::thread::sleep(Duration::from_millis(2_500));
    let (code, v) = health(&sock, &["--min-free-percent", "0", "--writer-stall", "1"]);
    db.execute_batch("COMMIT").unwrap();
    assert_eq!(code, 4, "{v}");
    assert!(has(&v, "writer stalled"), "{v}");
    assert_eq!(v["writer_busy"], true, "{v}");
    let _ = purge.join();
    let (code, v) = health(&sock, &["--min-free-percent", "0", "--writer-stall", "1"]);
    assert_eq!(code, 0, "the writer moves again: {v}");

    d.signal_and_wait(libc::SIGTERM);
    let (code, v) = health(&sock, &[]);
    assert_eq!(
        (code, v["status"].as_str()),
        (3, Some("not running")),
        "{v}"
    );
    let (code, _) = health(&sock.with_file_name("nope.sock"), &[]);
    assert_eq!(code, 3);

    // A node whose one peer never answers (a closed loopback port).
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_in(&dir.path().join("data"), &["--peer", "tcp://127.0.0.1:9"]);
    let (code, v) = health(&socket_of(&d), &["--min-free-percent", "0"]);
    assert_eq!(code, 4, "{v}");
    assert!(has(&v, "no Yggdrasil peer up (1 configured)"), "{v}");
    assert_eq!(v["yggdrasil_enabled"], true, "{v}");
}

/// State-changing commands land in the audit log with the caller's uid and user name (from
/// the socket's credentials), what they did and how it ended; listing pages back by id.
#[test]
fn audit_log_records_who_did_what() {
    let d = Daemon::start();
    let sock = socket_of(&d);
    let empty = ok_json(&sock, &["audit", "list"]);
    assert_eq!(empty.as_array().map(Vec::len), Some(0), "{empty}");
    ok_json(&sock, &["nonces", "purge", "--older-than", "1h"]);
    let dest = d.data_dir.join("audit-backup.db");
    ok_json(&sock, &["backup", dest.to_str().unwrap()]);
    let log = ok_json(&sock, &["audit", "list"]);
    let entries = log.as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{log}");
    // SAFETY: getuid(2) cannot fail.
    let uid = unsafe { libc::getuid() };
    let (backup, purge) = (&entries[0], &entries[1]);
    assert_eq!(purge["action"], "nonces purge", "{log}");
    assert_eq!(purge["target"], "older than 3600s", "{log}");
    assert_eq!(purge["result"], "ok: 0 removed", "{log}");
    assert_eq!(purge["uid"].as_u64(), Some(uid as u64), "{log}");
    assert!(!purge["user"].as_str().unwrap_or("").is_empty(), "{log}");
    if uid == 0 {
        assert_eq!(purge["user"], "root", "{log}");
    }
    assert_eq!(backup["action"], "backup", "{log}");
    assert_eq!(backup["target"], dest.to_str().unwrap(), "{log}");
    assert!(
        backup["result"].as_str().unwrap_or("").starts_with("ok: "),
        "{log}"
    );
    let id = |e: &Value| -> i64 { e["id"].as_str().expect("id string").parse().unwrap() };
    assert!(id(backup) > id(purge), "{log}");
    let older = ok_json(
        &sock,
        &["audit", "list", "--before", &id(backup).to_string()],
    );
    assert_eq!(older.as_array().map(Vec::len), Some(1), "{older}");
    assert_eq!(older[0]["action"], "nonces purge");
    let text = ok_text(&sock, &["audit", "list", "--limit", "1"]);
    assert!(
        text.contains("backup") && !text.contains("nonces purge"),
        "{text}"
    );
}

/// Every failure has its documented exit status, and under `--json` the error is JSON on
/// stdout: 3 not running, 6 not found, 2 invalid (a bad key, no `--yes` without a terminal),
/// 7 refused by the protocol's rules (removing the owner).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_have_kinds_and_exit_codes() {
    let d = Daemon::start();
    let sock = d.data_dir.join("control.sock");
    let (mut a, ka) = user(d.addr).await;
    let chat = a.create_chat("x", "", None).await.unwrap().to_string();
    let owner = hex::encode(ka.verifying_key().to_bytes());
    let missing = d.data_dir.join("nope.sock");
    let cases: [(&Path, Vec<&str>, i32, &str); 5] = [
        (&missing, vec!["status"], 3, "not_running"),
        (&sock, vec!["chats", "show", "999"], 6, "not_found"),
        (
            &sock,
            vec!["members", "ban", &chat, "abcd", "--yes"],
            2,
            "invalid",
        ),
        (&sock, vec!["chats", "delete", &chat], 2, "invalid"),
        (
            &sock,
            vec!["members", "remove", &chat, &owner, "--yes"],
            7,
            "refused",
        ),
    ];
    for (socket, args, code, kind) in cases {
        let out = ctl(socket, &args);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("mediatorctl: "),
            "{args:?}"
        );
        let mut json_args = vec!["--json"];
        json_args.extend_from_slice(&args);
        let out = ctl(socket, &json_args);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {:?}", out.stdout));
        assert_eq!(v["error"]["kind"], kind, "{v}");
        assert_eq!(v["error"]["exit"], code, "{v}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
}
