//! Moderation by the operator, end to end: the real daemon, real clients subscribed to two
//! twin chats, and the real `mediatorctl`. In one chat the owner acts through the protocol,
//! in the other the operator runs the same action with mediatorctl; the other members must
//! see the same system message (byte for byte but for the 32 random bytes some events
//! carry, and the chat's own ids), the banned member's session must stop receiving the chat,
//! and every action must land in the audit log.

use ed25519_dalek::SigningKey;
use mediator_client::{connect, Push, Session};
use mediator_tests::Daemon;
use mediator_wire::response::GotMessage;
use mediator_wire::system::{code, SystemEvent};
use serde_json::Value;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);
/// How long a session must stay silent to count as no longer receiving a chat.
const QUIET: Duration = Duration::from_millis(700);

async fn session(d: &Daemon, key: &SigningKey) -> Session {
    let conn = connect(d.addr).await.unwrap();
    let mut s = Session::open(&conn).await.unwrap();
    // The connection lives as long as the session's streams.
    std::mem::forget(conn);
    s.auth(key).await.unwrap();
    s
}

/// The next system message (authored by the mediator's key `server`) pushed for `chat`,
/// decoded, with its push.
async fn system_push(s: &mut Session, server: &[u8; 32], chat: i64) -> (GotMessage, SystemEvent) {
    let m = s
        .wait_message(WAIT, |m| m.chat_id == chat && m.message.author == *server)
        .await
        .unwrap_or_else(|| panic!("no system message in chat {chat}"));
    let ev = SystemEvent::decode(&m.message.blob).expect("a system message");
    (m, ev)
}

/// The first system message pushed for `chat` whose event satisfies `want`, skipping others
/// (a push from an earlier step may still arrive late on a loaded machine).
async fn system_event(
    s: &mut Session,
    server: &[u8; 32],
    chat: i64,
    want: impl Fn(&SystemEvent) -> bool,
) -> SystemEvent {
    let m = s
        .wait_message(WAIT, |m| {
            m.chat_id == chat
                && m.message.author == *server
                && SystemEvent::decode(&m.message.blob).is_ok_and(|ev| want(&ev))
        })
        .await
        .unwrap_or_else(|| panic!("no such system message in chat {chat}"));
    SystemEvent::decode(&m.message.blob).expect("a system message")
}

/// A system body without its trailing random bytes (events that carry them).
fn without_random(body: &[u8]) -> &[u8] {
    match body[0] {
        code::USER_ADDED
        | code::USER_LEFT
        | code::USER_BANNED
        | code::CHAT_DELETED
        | code::PERMS_CHANGED => &body[..body.len() - 32],
        _ => body,
    }
}

/// Whether `s` gets the message `body` in `chat` within [`QUIET`]. (Only that message: a
/// system message about the action itself may still arrive late on a loaded machine.)
async fn hears(s: &mut Session, chat: i64, body: &[u8]) -> bool {
    let deadline = tokio::time::Instant::now() + QUIET;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match s.next_push(left).await {
            None => return false,
            Some(Push::Message(m)) if m.chat_id == chat && m.message.blob == body => return true,
            Some(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_moderates_as_the_owner_would() {
    let d = Daemon::start();
    let (ka, kb, kc) = (
        mediator_client::random_key(),
        mediator_client::random_key(),
        mediator_client::random_key(),
    );
    let (pa, pb, pc) = (
        ka.verifying_key().to_bytes(),
        kb.verifying_key().to_bytes(),
        kc.verifying_key().to_bytes(),
    );
    let mut a = session(&d, &ka).await;
    let mut b = session(&d, &kb).await;
    let mut c = session(&d, &kc).await;
    // Twin chats: the owner acts in `proto`, the operator in `op`.
    let proto = a.create_chat("protocol", "", None).await.unwrap();
    let op = a.create_chat("operator", "", None).await.unwrap();
    for chat in [proto, op] {
        a.add_user(chat, &pb).await.unwrap();
        a.add_user(chat, &pc).await.unwrap();
        for s in [&mut a, &mut b, &mut c] {
            s.subscribe(chat).await.unwrap();
        }
    }
    for s in [&mut a, &mut b, &mut c] {
        s.drain_pushes();
    }
    let (bh, ch) = (hex::encode(pb), hex::encode(pc));
    let os = op.to_string();

    // Without a terminal and without --yes nothing happens.
    let out = d.ctl(&["members", "ban", &os, &bh]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Refusing without --yes"), "{err}");

    // Ban: the same event, with the owner as actor; the banned session goes quiet.
    a.ban_user(proto, &pb).await.unwrap();
    let (pm, pev) = system_push(&mut c, &d.key, proto).await;
    assert_eq!(
        d.ctl_json(&["members", "ban", &os, &bh, "--yes"])["changed"],
        true
    );
    let (om, oev) = system_push(&mut c, &d.key, op).await;
    assert!(
        matches!(oev, SystemEvent::UserBanned { target, actor, .. } if target == pb && actor == pa)
    );
    assert_eq!(
        without_random(&pm.message.blob),
        without_random(&om.message.blob)
    );
    assert_eq!(
        pm.message.author, om.message.author,
        "both from the mediator"
    );
    assert!(matches!(pev, SystemEvent::UserBanned { .. }));
    b.drain_pushes();
    a.send_message(op, 1, b"after the ban").await.unwrap();
    assert!(
        !hears(&mut b, op, b"after the ban").await,
        "a banned member still receives the chat"
    );
    c.drain_pushes();
    // A second ban changes nothing and pushes nothing.
    assert_eq!(
        d.ctl_json(&["members", "ban", &os, &bh, "--yes"])["changed"],
        false
    );

    // Unban (a perms change lifting the ban), as CHANGE_MEMBER_STATUS would.
    assert_eq!(d.ctl_json(&["members", "unban", &os, &bh])["changed"], true);
    let (_, ev) = system_push(&mut c, &d.key, op).await;
    assert!(
        matches!(ev, SystemEvent::PermsChanged { target, actor, perms, .. } if target == pb && actor == pa && perms & 0x01 == 0),
        "{ev:?}"
    );

    // Role. (The owner's sessions get the operator's events too: no session acted.)
    a.drain_pushes();
    d.ctl_json(&["members", "role", &os, &ch, "moderator"]);
    let ev = system_event(
        &mut a,
        &d.key,
        op,
        |ev| matches!(ev, SystemEvent::PermsChanged { target, .. } if *target == pc),
    )
    .await;
    assert!(
        matches!(ev, SystemEvent::PermsChanged { perms: 0x20, .. }),
        "{ev:?}"
    );
    let members = d.ctl_json(&["members", "list", &os]);
    let role = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == ch)
        .map(|m| m["role"].clone());
    assert_eq!(role, Some(Value::from("moderator")), "{members}");

    // Message deletion by id: the same MESSAGE_DELETED a protocol deletion stores.
    let (guid, id) = a.send_message(op, 4242, b"spam").await.unwrap();
    a.send_message(proto, 4242, b"spam").await.unwrap();
    a.delete_message(proto, 4242).await.unwrap();
    let (pm, _) = system_push(&mut c, &d.key, proto).await;
    let out = d.ctl_json(&["messages", "delete", &os, &id.to_string(), "--yes"]);
    assert_eq!(out["changed"], true);
    let (om, oev) = system_push(&mut c, &d.key, op).await;
    assert!(
        matches!(oev, SystemEvent::MessageDeleted { guid: g, deleter } if g == guid && deleter == pa)
    );
    assert_eq!(
        pm.message.blob, om.message.blob,
        "identical MESSAGE_DELETED bodies"
    );
    let rest = c.sync(op, 0).await.unwrap();
    assert!(
        !rest.iter().any(|m| m.blob == b"spam"),
        "the message is gone"
    );

    // Removal: C leaves as if by LEAVE_CHAT.
    a.drain_pushes();
    d.ctl_json(&["members", "remove", &os, &ch, "--yes"]);
    let ev = system_event(&mut a, &d.key, op, |ev| {
        matches!(ev, SystemEvent::UserLeft { .. })
    })
    .await;
    assert!(matches!(ev, SystemEvent::UserLeft { user, .. } if user == pc));
    c.drain_pushes();
    a.send_message(op, 2, b"after the removal").await.unwrap();
    assert!(
        !hears(&mut c, op, b"after the removal").await,
        "a removed member still receives the chat"
    );
    let members = d.ctl_json(&["members", "list", &os]);
    assert!(
        !members.as_array().unwrap().iter().any(|m| m["key"] == ch),
        "{members}"
    );
    // The protocol's rules hold: the owner cannot be removed.
    let out = d.ctl(&["members", "remove", &os, &hex::encode(pa), "--yes"]);
    assert!(!out.status.success());

    // Chat deletion: subscribers (the owner's session among them: no session acted) get
    // CHAT_DELETED (not stored: id 0), and the chat is gone. (B was unsubscribed by the ban.)
    d.ctl_json(&["chats", "delete", &os, "--yes"]);
    let m = a
        .wait_message(WAIT, |m| m.chat_id == op && m.message.id == 0)
        .await
        .expect("CHAT_DELETED");
    assert!(
        matches!(SystemEvent::decode(&m.message.blob), Ok(SystemEvent::ChatDeleted { actor, .. }) if actor == pa)
    );
    let out = d.ctl(&["chats", "show", &os]);
    assert!(!out.status.success());
    assert!(a.user_chats().await.unwrap() == vec![proto]);

    // Every action is in the audit log, refusals included.
    let log = d.ctl_json(&["audit", "list"]);
    let actions: Vec<(String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("members ban", "ok"),
        ("members ban", "ok: nothing to change"),
        ("members unban", "ok"),
        ("members role", "ok"),
        ("messages delete", "ok"),
        ("members remove", "ok"),
    ];
    for (i, (action, result)) in want.iter().enumerate() {
        assert_eq!(
            (actions[i].0.as_str(), actions[i].1.as_str()),
            (*action, *result),
            "{log}"
        );
    }
    assert_eq!(actions[6].0, "members remove");
    assert!(actions[6].1.starts_with("failed: "), "{log}");
    assert_eq!(actions[7], ("chats delete".to_string(), "ok".to_string()));
}
