//! Durability: every acknowledged message survives SIGTERM and SIGKILL, with its body, and
//! the node key is never rewritten.

use mediator_client::{connect, random_key, Session};
use mediator_tests::{check_all_present, spawn_writers, Daemon, Postgres};
use std::time::Duration;

/// Runs the writers against a daemon on the SQLite file, or on `pg` (a database of its own)
/// when given, kills it with `sig`, restarts it and checks every acknowledged message.
async fn run(sig: i32, pg: Option<&Postgres>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    // Four writers of one key send as fast as the daemon acknowledges, up to the kill: the
    // per-key SEND_MESSAGE rate limit is raised so that writes are in flight when it comes.
    let cfg = tmp.path().join("m.toml");
    let store = pg.map_or(String::new(), |pg| {
        format!("[store]\nurl = \"{}\"\n", pg.create_database("durable"))
    });
    std::fs::write(
        &cfg,
        format!("[limits]\nrate_send_message_per_key = {{ per_sec = 1e9, burst = 1e9 }}\n{store}"),
    )
    .unwrap();
    let cfg_args = ["--config", cfg.to_str().unwrap()];
    let mut d = Daemon::start_in(&dir, &cfg_args);
    let key_before = std::fs::read(dir.join("mediator.key")).unwrap();
    let owner = random_key();
    let conn = connect(d.addr).await.unwrap();
    let mut s = Session::open(&conn).await.unwrap();
    s.auth(&owner).await.unwrap();
    let chat = s.create_chat("durable", "", None).await.unwrap();
    drop(s);

    // Four writers send concurrently (so commits are grouped) until the daemon dies.
    let (writers, acked) = spawn_writers(d.addr, &owner, chat, 4);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = d.signal_and_wait(sig);
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "only {} messages were acknowledged",
        acked.len()
    );
    if sig == libc::SIGTERM {
        assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    }
    let d2 = Daemon::start_in(&dir, &cfg_args);
    assert_eq!(
        std::fs::read(dir.join("mediator.key")).unwrap(),
        key_before,
        "key unchanged"
    );
    assert_eq!(d2.key.as_slice(), &key_before[32..], "same public key");
    check_all_present(d2.addr, &owner, chat, &acked).await;
    eprintln!(
        "signal {sig}: {} acknowledged messages all present",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_sigkill() {
    run(libc::SIGKILL, None).await;
}

/// The same on the PostgreSQL store (#18): an acknowledged message is committed on the
/// server before the answer leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_sigkill_on_postgresql() {
    let pg = Postgres::start();
    run(libc::SIGKILL, Some(&pg)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_sigterm() {
    run(libc::SIGTERM, None).await;
}

#[test]
fn invalid_key_file_stops_the_daemon_and_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mediator.key"), b"not a key").unwrap();
    let out = std::process::Command::new(mediator_tests::bin_dir().join("mediatord"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["--quic-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid key file"), "clear error: {err}");
    assert_eq!(
        std::fs::read(dir.join("mediator.key")).unwrap(),
        b"not a key"
    );
}
