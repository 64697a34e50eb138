//! Server-wide blocks and kicks, end to end: the real daemon, real QUIC clients and the
//! real `mediatorctl`. A blocked key's sessions end and its AUTH is refused with a clear
//! text; a timed block lapses by itself; a blocked source cannot connect; blocks survive a
//! restart; kicks end sessions by id or key; everything is in the audit log.

use ed25519_dalek::SigningKey;
use mediator_client::{connect, Session};
use mediator_tests::Daemon;
use std::time::{Duration, Instant};

const BLOCKED: &str = "blocked by the server operator";

/// A session authenticated as `key`, or the server's error text.
async fn login(d: &Daemon, key: &SigningKey) -> Result<Session, String> {
    let conn = connect(d.addr).await.map_err(|e| format!("connect: {e}"))?;
    let mut s = Session::open(&conn).await.map_err(|e| e.to_string())?;
    std::mem::forget(conn);
    match s.auth(key).await {
        Ok(()) => Ok(s),
        Err(e) => Err(e.server_text().map(str::to_string).unwrap_or(e.to_string())),
    }
}

/// Waits until the daemon has ended `s`.
async fn ended(s: &mut Session) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if s.ping().await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_and_kicks_end_sessions_and_refuse_what_they_cover() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let d = Daemon::start_in(&dir, &[]);
    let (ka, kb) = (mediator_client::random_key(), mediator_client::random_key());
    let ah = hex::encode(ka.verifying_key().to_bytes());
    let mut a = login(&d, &ka).await.unwrap();
    let mut b = login(&d, &kb).await.unwrap();

    // A key block ends the key's sessions and refuses its AUTH; others are untouched.
    let r = d.ctl_json(&["keys", "block", &ah.to_uppercase(), "--reason", "spam"]);
    assert_eq!(r["value"], ah, "stored as the checks compare it: {r}");
    assert_eq!(r["sessions_ended"], 1, "{r}");
    assert!(ended(&mut a).await, "the blocked key's session goes on");
    assert_eq!(login(&d, &ka).await.err().as_deref(), Some(BLOCKED));
    b.ping().await.expect("another key's session stays");
    let list = d.ctl_json(&["keys", "blocks"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["value"], ah);
    assert_eq!(list[0]["reason"], "spam");
    assert_eq!(list[0]["until"], 0);
    assert_eq!(d.ctl_json(&["keys", "unblock", &ah])["changed"], true);
    login(&d, &ka).await.expect("AUTH after the unblock");

    // A timed block lapses by itself.
    d.ctl_json(&["keys", "block", &ah, "--for", "2s"]);
    assert_eq!(login(&d, &ka).await.err().as_deref(), Some(BLOCKED));
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    login(&d, &ka).await.expect("AUTH once the block lapsed");
    assert_eq!(
        d.ctl_json(&["keys", "blocks"]).as_array().map(Vec::len),
        Some(0)
    );

    // Kicks: by key, then by session id.
    let r = d.ctl_json(&[
        "sessions",
        "kick",
        "--key",
        &hex::encode(kb.verifying_key().to_bytes()),
    ]);
    assert_eq!(r["sessions_ended"], 1, "{r}");
    assert!(ended(&mut b).await);
    let mut b = login(&d, &kb).await.unwrap();
    let subs = d.ctl_json(&["subscribers", "list"]);
    let id = subs
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["user"] == hex::encode(kb.verifying_key().to_bytes()))
        .map(|s| {
            s["session_id"]
                .as_str()
                .expect("ids are strings")
                .to_string()
        })
        .expect("B's session listed");
    assert_eq!(d.ctl_json(&["sessions", "kick", &id])["sessions_ended"], 1);
    assert!(ended(&mut b).await);

    // A source block: every session from it ends and no connection gets through.
    let mut b = login(&d, &kb).await.unwrap();
    let r = d.ctl_json(&["sources", "block", "127.0.0.1", "--reason", "flood"]);
    assert!(r["sessions_ended"].as_u64() >= Some(1), "{r}");
    assert!(ended(&mut b).await);
    assert!(login(&d, &kb).await.is_err(), "a blocked source connected");
    d.ctl_json(&["sources", "unblock", "127.0.0.1"]);
    login(&d, &kb).await.expect("connect after the unblock");

    // Blocks survive a restart.
    d.ctl_json(&["keys", "block", &ah]);
    let audit = d.ctl_json(&["audit", "list"]);
    drop(d);
    let d = Daemon::start_in(&dir, &[]);
    assert_eq!(login(&d, &ka).await.err().as_deref(), Some(BLOCKED));
    login(&d, &kb).await.expect("the unblocked source and key");

    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "keys block",
            "keys unblock",
            "keys block",
            "sessions kick",
            "sessions kick",
            "sources block",
            "sources unblock",
            "keys block",
        ],
        "{audit}"
    );
}
