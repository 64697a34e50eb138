//! The `/metrics` endpoint seen from outside: a daemon with `[metrics] listen` is scraped
//! over HTTP before and after a scenario, and the counters move by exactly what the
//! scenario did: commands by code and result, their latency counts, pushes, sessions and
//! connections by transport, failed authentications, group commits and traffic.

use mediator_client::{connect, random_key, Session};
use mediator_tests::{daemon_with_config, scrape, scrape_head, user};
use std::collections::HashMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn get(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, key: &str) -> f64 {
    get(after, key) - get(before, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_scenario() {
    let d = daemon_with_config("[metrics]\nlisten = \"127.0.0.1:0\"\n");
    let url = d
        .announced_after("listening metrics ")
        .expect("metrics address announced")
        .to_string();
    let (head, idle) = scrape(&url);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    assert_eq!(
        get(
            &idle,
            r#"mediatord_sessions{transport="quic",state="authenticated"}"#
        ),
        0.0
    );
    assert_eq!(get(&idle, r#"mediatord_build_info{version="0.1.0"}"#), 1.0);
    assert_eq!(
        get(
            &idle,
            r#"mediatord_role_info{role="standalone",store="sqlite"}"#
        ),
        1.0
    );
    assert!(get(&idle, "mediatord_store_database_bytes") > 0.0);

    // A chat with two members, both subscribed.
    let (mut a, _) = user(d.addr).await;
    let (mut b, kb) = user(d.addr).await;
    let chat = a.create_chat("metrics", "", None).await.unwrap();
    a.add_user(chat, &kb.verifying_key().to_bytes())
        .await
        .unwrap();
    a.subscribe(chat).await.unwrap();
    b.subscribe(chat).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.drain_pushes();
    b.drain_pushes();

    let (_, before) = scrape(&url);
    assert_eq!(
        get(
            &before,
            r#"mediatord_sessions{transport="quic",state="authenticated"}"#
        ),
        2.0
    );
    assert_eq!(
        get(&before, r#"mediatord_connections{transport="quic"}"#),
        2.0
    );
    assert_eq!(get(&before, "mediatord_subscriptions"), 2.0);

    // Five messages from A: five answers, five pushes to B (none to A, its own session).
    const SENT: usize = 5;
    let blob = [7u8; 100];
    for guid in 0..SENT as i64 {
        a.send_message(chat, 1000 + guid, &blob).await.unwrap();
    }
    for _ in 0..SENT {
        b.wait_message(WAIT, |m| m.message.blob == blob)
            .await
            .expect("push");
    }
    let (_, sent_all) = scrape(&url);
    // One refused command and one failed authentication.
    a.subscribe(chat ^ 1).await.unwrap_err();
    let conn = connect(d.addr).await.unwrap();
    let mut stranger = Session::open(&conn).await.unwrap();
    let key = random_key();
    let pk = key.verifying_key().to_bytes();
    let nonce = stranger.get_nonce(&pk).await.unwrap();
    stranger
        .auth_with(&pk, &nonce, &[0u8; 64])
        .await
        .unwrap_err();

    let (_, after) = scrape(&url);
    let sent = SENT as f64;
    let ok = r#"mediatord_commands_total{command="send_message",result="ok"}"#;
    assert_eq!(delta(&before, &after, ok), sent);
    assert_eq!(
        delta(
            &before,
            &after,
            r#"mediatord_command_duration_seconds_count{command="send_message"}"#
        ),
        sent
    );
    assert_eq!(
        delta(
            &before,
            &after,
            r#"mediatord_commands_total{command="subscribe",result="error"}"#
        ),
        1.0
    );
    assert_eq!(
        delta(
            &before,
            &after,
            r#"mediatord_limit_hits_total{kind="auth_failed"}"#
        ),
        1.0
    );
    assert_eq!(delta(&before, &after, "mediatord_pushes_total"), sent);
    assert_eq!(
        delta(&before, &after, "mediatord_pushes_dropped_total"),
        0.0
    );
    // Each message is a write of its own or shares a group commit: at least five commands
    // were committed, in at least one and at most five batches.
    assert!(delta(&before, &sent_all, "mediatord_store_batch_commands_sum") >= sent);
    let batches = delta(&before, &sent_all, "mediatord_store_batch_commands_count");
    assert!((1.0..=sent).contains(&batches), "{batches} batches");
    assert_eq!(
        delta(
            &before,
            &sent_all,
            "mediatord_store_commit_duration_seconds_count"
        ),
        batches
    );
    // Every SEND_MESSAGE request carried the 100-byte blob, every push to B carried it too.
    let bytes_in = delta(
        &before,
        &after,
        r#"mediatord_session_bytes_total{direction="in"}"#,
    );
    let bytes_out = delta(
        &before,
        &after,
        r#"mediatord_session_bytes_total{direction="out"}"#,
    );
    assert!(bytes_in >= sent * 100.0, "{bytes_in}");
    assert!(bytes_out >= 2.0 * sent * 100.0, "{bytes_out}");
    assert_eq!(
        delta(
            &before,
            &after,
            r#"mediatord_sessions_opened_total{transport="quic"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            &after,
            r#"mediatord_sessions{transport="quic",state="guest"}"#
        ),
        1.0
    );
    assert_eq!(
        get(&after, r#"mediatord_connections{transport="quic"}"#),
        3.0
    );

    // Anything but /metrics is not found.
    let other = url.replace("/metrics", "/other");
    let (head, _) = scrape_head(&other);
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    drop((a, b, stranger, conn));
}
