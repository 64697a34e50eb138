//! The hot standby (#18), end to end with real daemons and a real PostgreSQL server: three
//! mediatord processes with one key and one `[store] url`, each with its own data directory
//! and QUIC port on loopback. The first serves; the second waits as a standby. The active is
//! SIGKILLed while four writers send: the standby takes over, and every acknowledged message
//! is there. Then the new active is paused (SIGSTOP) with a request on its way; the third
//! takes over once PostgreSQL has ended the paused one's session, and when the paused one
//! resumes it writes nothing and exits at once with status 3.

use mediator_client::{connect, random_key, Session};
use mediator_tests::{
    check_all_present, free_tcp_port, spawn_writers, Daemon, GoWatcher, Postgres, Standby,
    YggDaemon,
};
use mediatord::store::postgres::lease::LEASE_TIMEOUT;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_and_a_paused_active_is_fenced() {
    let pg = Postgres::start();
    let url = pg.create_database("failover");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("m.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\nurl = \"{url}\"\n\
             [limits]\nrate_send_message_per_key = {{ per_sec = 1e9, burst = 1e9 }}\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    let args = ["--config", cfg.to_str().unwrap()];
    let dirs: Vec<_> = ["a", "b", "c"].iter().map(|n| tmp.path().join(n)).collect();

    // The first daemon finds the lease free and serves; the others get its key.
    let mut a = Daemon::start_in(&dirs[0], &args);
    assert!(
        a.announced.iter().any(|l| l == "active"),
        "{:?}",
        a.announced
    );
    for d in &dirs[1..] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::copy(dirs[0].join("mediator.key"), d.join("mediator.key")).unwrap();
    }
    let status = a.ctl_json(&["status"]);
    assert_eq!(
        (status["role"].as_str(), status["store"].as_str()),
        (Some("active"), Some("postgresql"))
    );
    // The server's own figure for the database (an empty store is several MB there).
    assert!(
        status["database_bytes"].as_u64() > Some(1 << 20),
        "{}",
        status["database_bytes"]
    );
    // The metric too (the janitor's first pass asks the server at start).
    let metrics = a
        .announced_after("listening metrics ")
        .expect("metrics URL announced")
        .to_string();
    let database_bytes = || mediator_tests::scrape(&metrics).1["mediatord_store_database_bytes"];
    let t0 = Instant::now();
    while database_bytes() <= f64::from(1 << 20) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{}",
            database_bytes()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let b = Standby::start(&dirs[1], &args);
    // The standby tells its role and refuses what needs the data.
    let out = b.ctl(&["--json", "status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (status["role"].as_str(), status["public_key"].as_str()),
        (Some("standby"), Some(hex::encode(a.key).as_str()))
    );
    // A standby that answers is a healthy standby (monitoring must not page for it).
    let out = b.ctl(&["--json", "health"]);
    let health: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            out.status.code(),
            health["status"].as_str(),
            health["role"].as_str()
        ),
        (Some(0), Some("ok"), Some("standby")),
        "{health}"
    );
    let out = b.ctl(&["chats", "list"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("standby"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let owner = random_key();
    let conn = connect(a.addr).await.unwrap();
    let mut s = Session::open(&conn).await.unwrap();
    s.auth(&owner).await.unwrap();
    let chat = s.create_chat("failover", "", None).await.unwrap();
    drop(s);
    let (writers, acked) = spawn_writers(a.addr, &owner, chat, 4);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The active dies under the writers; the standby takes over.
    let killed = Instant::now();
    a.signal_and_wait(libc::SIGKILL);
    let serving = tokio::task::spawn_blocking(move || {
        let b = b.serving(Duration::from_secs(20));
        (b, killed.elapsed())
    });
    // The writers learn of the death only at their QUIC idle timeout.
    for w in writers {
        let _ = w.await;
    }
    let (mut b, takeover) = serving.await.unwrap();
    eprintln!("takeover after SIGKILL: {takeover:?}");
    assert!(takeover < Duration::from_secs(5), "{takeover:?}");
    assert_eq!(b.key, a.key, "the same identity");
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "only {} acknowledged", acked.len());
    check_all_present(b.addr, &owner, chat, &acked).await;
    eprintln!("{} acknowledged messages all present", acked.len());
    assert_eq!(b.ctl_json(&["status"])["role"].as_str(), Some("active"));

    // The new active is paused with a request on its way to it.
    let c = Standby::start(&dirs[2], &args);
    let conn = connect(b.addr).await.unwrap();
    let mut late = Session::open(&conn).await.unwrap();
    late.auth(&owner).await.unwrap();
    signal(b.pid(), libc::SIGSTOP);
    let paused = Instant::now();
    let sent = tokio::spawn(async move {
        let r = late
            .send_message(chat, 777, b"sent to the paused daemon")
            .await;
        (r.is_ok(), late, conn)
    });
    let mut c =
        tokio::task::spawn_blocking(move || c.serving(LEASE_TIMEOUT + Duration::from_secs(20)))
            .await
            .unwrap();
    let took = paused.elapsed();
    eprintln!("takeover from a paused active: {took:?}");
    assert!(took >= LEASE_TIMEOUT - Duration::from_secs(1), "{took:?}");

    // It wakes up: it must not write, and stops serving at once.
    signal(b.pid(), libc::SIGCONT);
    let woke = Instant::now();
    let status = b
        .exit_within(Duration::from_secs(10))
        .expect("the fenced daemon stopped");
    eprintln!(
        "the fenced daemon exited {:?} after it resumed",
        woke.elapsed()
    );
    assert_eq!(status.code(), Some(3), "exit status of a lost lease");
    let (acknowledged, _, _) = tokio::time::timeout(Duration::from_secs(30), sent)
        .await
        .expect("the request ended")
        .unwrap();
    assert!(!acknowledged, "the fenced daemon acknowledged a write");
    assert_eq!(
        pg.psql(
            "failover",
            "SELECT count(*) FROM messages WHERE body = 'sent to the paused daemon'::bytea"
        )
        .unwrap()
        .trim(),
        "0",
        "the fenced daemon wrote"
    );
    check_all_present(c.addr, &owner, chat, &acked).await;
    assert!(c.alive());
}

/// Failover as Mimir 2.x users meet it: both daemons reach the network only through a real
/// yggdrasil 0.5 daemon (their nodes peer with it), and a Go 2.x client, QUIC inside its own
/// Yggdrasil node peered with the same daemon, dials the mediator's key. The active is
/// SIGKILLed under writers; after the standby takes over, a Go member reaches the key at its
/// new node and finds every acknowledged message, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_client_finds_every_acknowledged_message_through_yggdrasil() {
    let pg = Postgres::start();
    let url = pg.create_database("failover_ygg");
    let hub = format!("tcp://127.0.0.1:{}", free_tcp_port());
    let _ygg = YggDaemon::start(std::slice::from_ref(&hub), &[]);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("m.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\nurl = \"{url}\"\n[yggdrasil]\npeers = [\"{hub}\"]\n\
             [limits]\nrate_send_message_per_key = {{ per_sec = 1e9, burst = 1e9 }}\n"
        ),
    )
    .unwrap();
    let args = ["--config", cfg.to_str().unwrap()];
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let mut a = Daemon::start_in(&dir_a, &args);
    std::fs::create_dir_all(&dir_b).unwrap();
    std::fs::copy(dir_a.join("mediator.key"), dir_b.join("mediator.key")).unwrap();
    let b = Standby::start(&dir_b, &args);

    // The owner works over plain QUIC; four writers send until the active dies.
    let owner = random_key();
    let conn = connect(a.addr).await.unwrap();
    let mut s = Session::open(&conn).await.unwrap();
    s.auth(&owner).await.unwrap();
    let chat = s.create_chat("through yggdrasil", "", None).await.unwrap();
    drop(s);
    let (writers, acked) = spawn_writers(a.addr, &owner, chat, 4);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.signal_and_wait(libc::SIGKILL);
    let serving = tokio::task::spawn_blocking(move || b.serving(Duration::from_secs(20)));
    for w in writers {
        let _ = w.await;
    }
    let b = serving.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "only {} acknowledged", acked.len());

    // A Go 2.x member dials the key through the yggdrasil daemon and reaches the new node.
    let dialled = Instant::now();
    let (mut go, go_key) = tokio::task::spawn_blocking({
        let (key, hub) = (b.key, hub.clone());
        move || GoWatcher::start(&key, &["-ygg-peer", &hub, "-connect-timeout", "60s"])
    })
    .await
    .unwrap();
    eprintln!(
        "the Go client reached the new active through Yggdrasil in {:?}",
        dialled.elapsed()
    );
    let conn = connect(b.addr).await.unwrap();
    let mut s = Session::open(&conn).await.unwrap();
    s.auth(&owner).await.unwrap();
    s.add_user(chat, &go_key).await.unwrap();
    let stored: BTreeMap<i64, Vec<u8>> = tokio::task::spawn_blocking(move || {
        let all = go.sync(chat);
        go.end();
        all
    })
    .await
    .unwrap()
    .into_iter()
    .collect();
    for (id, body) in &acked {
        assert_eq!(
            stored.get(id),
            Some(body),
            "acknowledged message {id} lost or changed"
        );
    }
    eprintln!(
        "the Go client found all {} acknowledged messages ({} stored)",
        acked.len(),
        stored.len()
    );
}
