//! Log records as log shippers and the journal receive them.
//!
//! journald: the daemon runs in a mount namespace where `/run/systemd/journal/socket` is a
//! datagram socket this test binds, with `JOURNAL_STREAM` naming its stderr as systemd does,
//! and the default `log_format = "auto"`; the test parses what arrives in journald's native
//! protocol (`KEY=value` lines, or `KEY`, a 64-bit little-endian length and the raw value):
//! each record has its priority, the identifier and the session's fields. Needs root (the
//! mount namespace), as CI runs. JSON: one object per line on stderr, with the fields of the
//! record and of its session.

use mediator_client::{connect, random_key, Session};
use mediator_tests::{bin_dir, Daemon};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One journal record: its fields (a field given twice keeps the last value).
type Record = HashMap<String, String>;

/// Parses a datagram of journald's native protocol.
fn parse_native(mut b: &[u8]) -> Record {
    let mut rec = Record::new();
    while !b.is_empty() {
        let nl = b
            .iter()
            .position(|&c| c == b'\n')
            .expect("field ends in a newline");
        let line = &b[..nl];
        b = &b[nl + 1..];
        if let Some(eq) = line.iter().position(|&c| c == b'=') {
            let (k, v) = (&line[..eq], &line[eq + 1..]);
            rec.insert(
                String::from_utf8_lossy(k).into(),
                String::from_utf8_lossy(v).into(),
            );
        } else {
            let len = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
            let v = &b[8..8 + len];
            assert_eq!(b[8 + len], b'\n', "binary value ends in a newline");
            rec.insert(
                String::from_utf8_lossy(line).into(),
                String::from_utf8_lossy(v).into(),
            );
            b = &b[8 + len + 1..];
        }
    }
    rec
}

/// Opens a session from a fresh key and fails its AUTH: a warning inside the session's span.
async fn fail_an_auth(addr: std::net::SocketAddr) {
    let conn = connect(addr).await.unwrap();
    let mut s = Session::open(&conn).await.unwrap();
    let key = random_key();
    let pk = key.verifying_key().to_bytes();
    let nonce = s.get_nonce(&pk).await.unwrap();
    s.auth_with(&pk, &nonce, &[0u8; 64]).await.unwrap_err();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journald_gets_priorities_and_session_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let journal_dir = tmp.path().join("journal");
    std::fs::create_dir(&journal_dir).unwrap();
    let journal = UnixDatagram::bind(journal_dir.join("socket")).unwrap();
    journal
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // A private /run with the test's socket where journald's would be, and stderr named as
    // the journal's stream (device:inode), as systemd sets it.
    let script = format!(
        "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal && \
         mount --bind {} /run/systemd/journal && \
         export JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) && exec \"$0\" \"$@\"",
        journal_dir.display()
    );
    let daemon = bin_dir().join("mediatord");
    let d = Daemon::start_after_mounts(&script, &daemon, &tmp.path().join("data"), &[]);
    fail_an_auth(d.addr).await;

    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0u8; 65536];
    let failure = loop {
        assert!(
            Instant::now() < deadline,
            "no AUTH failure record: {records:#?}"
        );
        let Ok(n) = journal.recv(&mut buf) else {
            continue;
        };
        if n == 0 {
            continue; // the layer's probe at start
        }
        let rec = parse_native(&buf[..n]);
        if rec.get("EVENT").map(String::as_str) == Some("auth_failed") {
            break rec;
        }
        records.push(rec);
    };
    for key in [
        "PRIORITY",
        "SYSLOG_IDENTIFIER",
        "MESSAGE",
        "SOURCE",
        "REMOTE",
        "SESSION",
    ] {
        assert!(failure.contains_key(key), "no {key} in {failure:#?}");
    }
    assert_eq!(failure["PRIORITY"], "4", "a warning: {failure:#?}");
    assert_eq!(failure["SYSLOG_IDENTIFIER"], "mediatord");
    assert_eq!(failure["MESSAGE"], "limit or authentication failure");
    assert_eq!(failure["SOURCE"], "127.0.0.1");
    assert!(failure["REMOTE"].starts_with("127.0.0.1:"), "{failure:#?}");
    assert!(failure["SESSION"].parse::<u64>().is_ok(), "{failure:#?}");
    assert!(failure.contains_key("CODE_FILE") || failure.contains_key("TARGET"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_carry_the_session_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin_dir().join("mediatord"))
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .args(["--quic-listen", "127.0.0.1:0", "--log", "info"])
        .args(["--log-format", "json"])
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr: std::net::SocketAddr = stdout
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("listening quic ")
                .map(|a| a.parse().unwrap())
        })
        .expect("listening line");
    // Keep reading: a closed pipe would fail the daemon's next start-up line.
    std::thread::spawn(move || stdout.for_each(drop));
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    fail_an_auth(addr).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let failure = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no AUTH failure line in {seen:#?}"));
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["event"] == "auth_failed" {
            break v;
        }
        seen.push(v);
    };
    assert_eq!(failure["level"], "WARN", "{failure}");
    assert_eq!(failure["message"], "limit or authentication failure");
    assert_eq!(failure["source"], "127.0.0.1");
    assert!(failure["timestamp"].is_string(), "{failure}");
    let span = &failure["span"];
    assert_eq!(span["name"], "session", "{failure}");
    assert!(span["session"].is_u64(), "{failure}");
    assert!(
        span["remote"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{failure}"
    );
    assert!(
        seen.iter().any(|v| v["message"] == "mediatord started"),
        "{seen:#?}"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
}
