//! Retention end to end, through the real binaries: `mediatorctl messages purge` removes
//! exactly the messages past the age (of one chat, then of all), records the caller in the
//! audit log, gives the space back (the database file shrinks), and a client's sync still
//! completes, from the start or from a purged id, with what remains. `[retention]` in the
//! configuration trims chats to their count and then removes messages past their age in
//! the background.
//!
//! Message times are the server's clock in whole seconds, so the age test waits a few real
//! seconds between its old and new messages (the daemon runs on the system clock).

use mediator_client::Session;
use mediator_tests::{daemon_with_config, user, Daemon};
use std::path::Path;
use std::time::{Duration, Instant};

/// Bodies large enough that the purged ones dominate the file.
const BODY: usize = 4000;

fn db_bytes(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("mediator.db"))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Polls `f` every 100 ms until it holds, for up to `secs` seconds.
async fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    f()
}

async fn send(s: &mut Session, chat: i64, from: i64, n: i64, size: usize) {
    for i in from..from + n {
        s.send_message(chat, i, &vec![(i % 251) as u8; size])
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_by_age_removes_the_right_rows_frees_space_and_sync_completes() {
    let d = Daemon::start();
    let (mut s, _) = user(d.addr).await;
    let a = s.create_chat("a", "", None).await.unwrap();
    let b = s.create_chat("b", "", None).await.unwrap();
    send(&mut s, a, 1, 300, BODY).await;
    send(&mut s, b, 1, 30, 100).await;
    // Old messages reach the database file (the checkpointer runs every 100 ms).
    assert!(eventually(10, || db_bytes(&d.data_dir) > 300 * BODY as u64).await);
    let full = db_bytes(&d.data_dir);
    tokio::time::sleep(Duration::from_secs(4)).await;
    send(&mut s, a, 1_000, 20, 100).await;
    send(&mut s, b, 1_000, 5, 100).await;

    // Without a terminal the purge needs --yes; an age of 0 is refused.
    let out = d.ctl(&["messages", "purge", "--older-than", "3s"]);
    assert!(!out.status.success());
    let out = d.ctl(&["messages", "purge", "--older-than", "0", "--yes"]);
    assert!(!out.status.success());
    let out = d.ctl(&[
        "messages",
        "purge",
        "--older-than",
        "3s",
        "--chat",
        "12345",
        "--yes",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no chat 12345"));

    // One chat first: only its old messages go.
    let r = d.ctl_json(&[
        "messages",
        "purge",
        "--older-than",
        "3s",
        "--chat",
        &a.to_string(),
        "--yes",
    ]);
    assert_eq!(r["removed"], 300, "{r}");
    assert!(
        r["bytes_freed"].as_u64().unwrap() > 200 * BODY as u64,
        "{r}"
    );
    assert_eq!(s.sync(b, 0).await.unwrap().len(), 35);
    // Then every chat.
    let r = d.ctl_json(&["messages", "purge", "--older-than", "3s", "--yes"]);
    assert_eq!(r["removed"], 30, "{r}");
    let r = d.ctl_json(&["messages", "purge", "--older-than", "3s", "--yes"]);
    assert_eq!(r["removed"], 0, "nothing left to remove: {r}");

    // Sync from the start and from a purged id returns what remains, and ends.
    let all = s.sync(a, 0).await.unwrap();
    assert_eq!(
        all.iter().map(|m| m.id).collect::<Vec<_>>(),
        (301..=320).collect::<Vec<i64>>()
    );
    assert_eq!(all[0].guid, 1_000);
    assert_eq!(s.sync(a, 150).await.unwrap(), all);
    assert_eq!(s.sync(b, 10).await.unwrap().len(), 5);
    // New messages continue the ids: none is reused.
    let (_, id) = s.send_message(a, 5_000, b"after").await.unwrap();
    assert_eq!(id, 321);

    let status = d.ctl_json(&["status"]);
    assert_eq!(status["messages"], 26, "{status}");
    let shown = d.ctl_json(&["chats", "show", &a.to_string()]);
    assert_eq!(shown["messages"], 21, "{shown}");

    // The space is given back: the file shrinks once the checkpoint completes.
    assert!(
        eventually(15, || db_bytes(&d.data_dir) < full / 3).await,
        "database file {} bytes, {full} before the purge",
        db_bytes(&d.data_dir)
    );

    let log = d.ctl_json(&["audit", "list"]);
    let purges: Vec<_> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "messages purge")
        .collect();
    // Three purges ran; the one naming no chat was refused before it began, as other
    // calls naming something that does not exist are.
    assert_eq!(purges.len(), 3, "{log}");
    let uid = unsafe { libc::getuid() };
    assert!(purges.iter().all(|e| e["uid"] == uid), "{log}");
    assert!(
        purges.iter().any(|e| e["result"] == "ok: 300 removed"
            && e["target"] == format!("chat {a}, older than 3s")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_retention_trims_chats_then_ages_them_out() {
    let d = daemon_with_config(
        "[retention]\nmax_messages_per_chat = 10\nmax_age = \"5s\"\n\
         [limits]\njanitor_period_secs = 1\n",
    );
    let (mut s, _) = user(d.addr).await;
    let chat = s.create_chat("kept short", "", None).await.unwrap();
    send(&mut s, chat, 1, 25, 200).await;
    let mut kept = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        kept = s.sync(chat, 0).await.unwrap();
        if kept.len() == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        kept.iter().map(|m| m.id).collect::<Vec<_>>(),
        (16..=25).collect::<Vec<i64>>(),
        "the newest 10 stay"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while !kept.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        kept = s.sync(chat, 0).await.unwrap();
    }
    assert!(kept.is_empty(), "{} messages past 5 s remain", kept.len());
    // The chat goes on: the next message takes the next id.
    let (_, id) = s.send_message(chat, 99, b"new").await.unwrap();
    assert_eq!(id, 26);
    assert_eq!(s.sync(chat, 0).await.unwrap().len(), 1);
    // The janitor's work is not in the audit log (only operators' actions are).
    let log = d.ctl_json(&["audit", "list"]);
    assert_eq!(log.as_array().map(Vec::len), Some(0), "{log}");
}
