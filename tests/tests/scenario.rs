//! The full protocol scenario against the real daemon, with two and three clients: every
//! response and push field is checked. It runs as Mimir 2.x clients over QUIC, and as Mimir
//! 3.x clients over ygg_stream with the Go 2.x client (QUIC inside Yggdrasil) as a fourth
//! member who must receive every event of the chat, byte for byte, with status 0.

use mediator_client::{connect, random_key, Push, Session, SystemEvent};
use mediator_tests::{
    daemon_on_postgres, daemon_with_config, free_tcp_port, user, Daemon, Dial, GoWatcher, Postgres,
    YggDaemon,
};
use mediator_wire::codes::perms;
use mediator_wire::response::GotMessage;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

fn near_now(ts: i64) {
    let now = mediator_client::now_secs();
    assert!((now - ts).abs() <= 5, "timestamp {ts} not near now {now}");
}

/// Waits for a system message with the given event code in `chat`.
async fn system(s: &mut Session, chat: i64, code: u8, mediator: &[u8; 32]) -> (i64, SystemEvent) {
    let m = s
        .wait_message(WAIT, |m| {
            m.chat_id == chat
                && m.message.blob.first() == Some(&code)
                && &m.message.author == mediator
        })
        .await
        .unwrap_or_else(|| panic!("no system message {code:#04x}"));
    near_now(m.message.timestamp);
    (
        m.message.id,
        SystemEvent::decode(&m.message.blob).expect("system body"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_scenario_three_clients() {
    let d = Daemon::start();
    full_scenario(&d, &Dial::Quic(d.addr), None).await;
}

/// The same on the PostgreSQL store (#18), with Mimir 3.x clients over ygg_stream and a Go
/// 2.x member over Yggdrasil, so both generations' paths run on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_scenario_on_postgresql() {
    let pg = Postgres::start();
    let d = daemon_on_postgres(&pg, "quic", "");
    full_scenario(&d, &Dial::Quic(d.addr), None).await;
    full_scenario_with_a_go_member(&daemon_on_postgres(&pg, "stream", NODE_LISTENS)).await;
}

/// The configuration of a daemon whose Yggdrasil node listens on loopback.
const NODE_LISTENS: &str = "[yggdrasil]\nlisten = [\"tcp://127.0.0.1:0\"]\n";

/// The scenario with Mimir 3.x clients over ygg_stream to `d`'s node, and a Go 2.x member
/// over Yggdrasil.
async fn full_scenario_with_a_go_member(d: &Daemon) {
    let dial = Dial::stream_to(d);
    let Dial::Stream { uri, .. } = &dial else {
        unreachable!()
    };
    let mut go = GoWatcher::start(&d.key, &["-ygg-peer", uri, "-connect-timeout", "60s"]);
    full_scenario(d, &dial, Some(&mut go)).await;
    go.0.end();
}

/// The same with Mimir 3.x clients over ygg_stream, and a Go 2.x member over Yggdrasil.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_scenario_over_ygg_stream_with_a_go_member() {
    full_scenario_with_a_go_member(&daemon_with_config(NODE_LISTENS)).await;
}

/// The same across a real yggdrasil 0.5 daemon: mediatord's node, every 3.x client's node
/// and the Go member's node peer only with it, so every packet takes two hops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_scenario_through_the_real_yggdrasil_daemon() {
    let listen = format!("tcp://127.0.0.1:{}", free_tcp_port());
    let ygg = YggDaemon::start(std::slice::from_ref(&listen), &[]);
    let hub = format!("{listen}?key={}", ygg.key);
    let d = daemon_with_config(&format!("[yggdrasil]\npeers = [\"{hub}\"]\n"));
    let dial = Dial::Stream {
        uri: hub.clone(),
        key: d.key,
    };
    let mut go = GoWatcher::start(&d.key, &["-ygg-peer", &hub, "-connect-timeout", "60s"]);
    full_scenario(&d, &dial, Some(&mut go)).await;
    go.0.end();
    drop(ygg);
}

/// Every stored event of `chat` from `since` on, and its deletion, must have reached the
/// Go member as a push, with the same bytes.
fn go_saw_everything(go: &GoWatcher, chat: i64, stored: &[mediator_wire::response::MessageRecord]) {
    let pushes: Vec<GotMessage> = go
        .expect_pushes()
        .into_iter()
        .filter(|(c, _)| *c == mediator_wire::codes::PushCode::GotMessage as u16)
        .map(|(_, p)| GotMessage::decode(&p).expect("GOT_MESSAGE"))
        .filter(|m| m.chat_id == chat)
        .collect();
    for m in stored {
        assert!(
            pushes.iter().any(|p| p.message == *m),
            "the Go member missed message {} ({:02x?}…)",
            m.id,
            m.blob.first()
        );
    }
    assert!(
        pushes
            .iter()
            .any(|p| p.message.id == 0 && p.message.blob.first() == Some(&0x05)),
        "the Go member missed CHAT_DELETED"
    );
}

/// The scenario, its clients reaching the daemon by `dial`. With `go`, the Go member (and
/// its key) joins the chat once A, B and C are in, and must see every later event.
async fn full_scenario(d: &Daemon, dial: &Dial, mut go: Option<&mut (GoWatcher, [u8; 32])>) {
    let med = d.key;

    // Auth: a bad signature is refused and the session stays usable.
    let conn = dial.link().await;
    let mut a = conn.session().await;
    let ka = random_key();
    let pa = ka.verifying_key().to_bytes();
    let nonce = a.get_nonce(&pa).await.unwrap();
    let err = a.auth_with(&pa, &nonce, &[7; 64]).await.unwrap_err();
    assert_eq!(err.server_text(), Some("invalid signature"));
    let err = a.auth_with(&pa, &[9; 32], &[7; 64]).await.unwrap_err();
    assert_eq!(err.server_text(), Some("unknown nonce"));
    let err = a.subscribe(1).await.unwrap_err();
    assert_eq!(err.server_text(), Some("auth required"));
    a.ping().await.unwrap();
    a.auth(&ka).await.unwrap();

    // Create with proof of work; a signature without the two zero bytes is refused.
    {
        use ed25519_dalek::Signer;
        use mediator_wire::tlv::tag;
        let n = a.get_nonce(&pa).await.unwrap();
        let mut counter = 0u32;
        let sig = loop {
            let mut msg = n.to_vec();
            msg.extend_from_slice(&counter.to_be_bytes());
            let sig = ka.sign(&msg).to_bytes();
            if sig[0] != 0 || sig[1] != 0 {
                break sig;
            }
            counter += 1;
        };
        let err = a
            .request(mediator_wire::Command::CreateChat, |w| {
                w.tlv(tag::PUBKEY, &pa)
                    .tlv(tag::NONCE, &n)
                    .tlv(tag::COUNTER, &counter.to_be_bytes())
                    .tlv(tag::SIGNATURE, &sig)
                    .tlv(tag::CHAT_NAME, b"x")
                    .tlv(tag::CHAT_DESC, b"");
            })
            .await
            .unwrap_err();
        assert_eq!(err.server_text(), Some("signature filter failed"));
    }
    let chat = a.create_chat("Friends", "a test chat", None).await.unwrap();
    assert!(chat > 0);

    // Subscribe: own online event and REQUEST_MEMBER_INFO.
    assert_eq!(a.subscribe(chat).await.unwrap(), 0);
    let mut saw_online = false;
    let mut saw_request_info = false;
    while !(saw_online && saw_request_info) {
        match a.next_push(WAIT).await.expect("push after subscribe") {
            Push::Message(m) => {
                assert_eq!(m.chat_id, chat);
                assert_eq!(m.message.id, 0);
                assert_eq!(m.message.author, med);
                match SystemEvent::decode(&m.message.blob).unwrap() {
                    SystemEvent::MemberOnline {
                        user,
                        online,
                        timestamp,
                    } => {
                        assert_eq!(user, pa);
                        assert!(online);
                        near_now(timestamp);
                        saw_online = true;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            Push::RequestMemberInfo(r) => {
                assert_eq!((r.chat_id, r.last_update), (chat, 0));
                saw_request_info = true;
            }
            other => panic!("unexpected push {other:?}"),
        }
    }

    // Invite B; B gets GOT_INVITE live with every field.
    let (mut b, kb) = dial.user().await;
    let pb = kb.verifying_key().to_bytes();
    a.send_invite(chat, &pb, &[0x5a; 92]).await.unwrap();
    assert_eq!(
        a.send_invite(chat, &pb, &[1])
            .await
            .unwrap_err()
            .server_text(),
        Some("invite already exists")
    );
    let inv = match b.next_push(WAIT).await.expect("invite push") {
        Push::Invite(i) => i,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(inv.chat_id, chat);
    assert_eq!(inv.from, pa);
    assert_eq!(inv.name, b"Friends");
    assert_eq!(inv.desc, b"a test chat");
    assert_eq!(inv.avatar, None);
    assert_eq!(inv.data, vec![0x5a; 92]);
    near_now(inv.timestamp);
    // The invite is delivered again on a new AUTH until it is answered (§11 L2).
    {
        let conn2 = dial.link().await;
        let mut b2 = conn2.session().await;
        b2.auth(&kb).await.unwrap();
        match b2.next_push(WAIT).await.expect("invite again") {
            Push::Invite(i) => assert_eq!(i.invite_id, inv.invite_id),
            other => panic!("unexpected {other:?}"),
        }
    }
    b.invite_response(inv.invite_id, true).await.unwrap();
    let (_, ev) = system(&mut a, chat, 0x01, &med).await;
    assert!(
        matches!(ev, SystemEvent::UserAdded { target, actor, .. } if target == pb && actor == pa)
    );
    assert_eq!(
        b.subscribe(chat).await.unwrap(),
        1,
        "the USER_ADDED message has id 1"
    );
    b.drain_pushes();

    // Messages both ways with every field checked.
    let (g, id1) = a.send_message(chat, 1001, b"hello from A").await.unwrap();
    assert_eq!(g, 1001);
    let m = b
        .wait_message(WAIT, |m| m.message.author == pa)
        .await
        .expect("B gets A's message");
    assert_eq!(m.chat_id, chat);
    assert_eq!(m.message.id, id1);
    assert_eq!(m.message.guid, 1001);
    assert_eq!(m.message.blob, b"hello from A");
    near_now(m.message.timestamp);
    let (g2, id2) = b.send_message(chat, 2002, b"hi A").await.unwrap();
    assert_eq!((g2, id2), (2002, id1 + 1));
    let m = a
        .wait_message(WAIT, |m| m.message.author == pb)
        .await
        .expect("A gets B's message");
    assert_eq!(
        (m.message.id, m.message.guid, m.message.blob.as_slice()),
        (id2, 2002, &b"hi A"[..])
    );
    // Same guid from another author collides and is bumped; a retry by the same author with
    // the same body is idempotent.
    let (g3, id3) = b.send_message(chat, 1001, b"collide").await.unwrap();
    assert_eq!(g3, 1002);
    assert_eq!(
        b.send_message(chat, 1001, b"collide").await.unwrap(),
        (1002, id3)
    );
    assert_eq!(
        a.send_message(chat, 1001, b"hello from A").await.unwrap(),
        (1001, id1)
    );

    // Member info.
    b.update_member_info(chat, 1234, b"enc-profile-B")
        .await
        .unwrap();
    for s in [&mut a, &mut b] {
        loop {
            match s.next_push(WAIT).await.expect("member info push") {
                Push::MemberInfo(mi) => {
                    assert_eq!(mi.chat_id, chat);
                    assert_eq!(mi.record.user, pb);
                    assert_eq!(mi.record.info, b"enc-profile-B");
                    assert_eq!(mi.record.timestamp, 1234);
                    break;
                }
                _ => continue,
            }
        }
    }
    let infos = a.members_info(chat, 0).await.unwrap();
    assert_eq!(infos.len(), 2);
    assert_eq!(infos[0].user, pa);
    assert!(infos[0].info.is_empty());
    assert_eq!(
        (infos[1].user, infos[1].info.as_slice(), infos[1].timestamp),
        (pb, &b"enc-profile-B"[..], 1234)
    );
    let infos = a.members_info(chat, 1234).await.unwrap();
    assert!(infos[1].info.is_empty(), "unchanged since LAST_UPDATE");

    let members = b.members(chat).await.unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(
        (members[0].user, members[0].perms, members[0].online),
        (pa, 0x90, true)
    );
    assert_eq!(
        (members[1].user, members[1].perms, members[1].online),
        (pb, 0x10, true)
    );

    // A third member, C, via invite.
    let (mut c, kc) = dial.user().await;
    let pc = kc.verifying_key().to_bytes();
    a.send_invite(chat, &pc, b"k").await.unwrap();
    let inv = match c.next_push(WAIT).await.unwrap() {
        Push::Invite(i) => i,
        other => panic!("unexpected {other:?}"),
    };
    c.invite_response(inv.invite_id, true).await.unwrap();
    c.subscribe(chat).await.unwrap();
    // The Go member joins now; what it must see is stored after this.
    let mut go_since = None;
    if let Some((w, key)) = go.as_deref_mut() {
        a.add_user(chat, key).await.unwrap();
        let since = a.last_message_id(chat).await.unwrap();
        w.subscribe(chat);
        go_since = Some(since);
        a.send_message(chat, 3003, b"welcome").await.unwrap();
    }

    // Role change: A makes B moderator; B and C see PERMS_CHANGED, A's own session does not.
    a.change_member_status(chat, &pb, perms::MODERATOR)
        .await
        .unwrap();
    for s in [&mut b, &mut c] {
        let (id, ev) = system(s, chat, 0x07, &med).await;
        assert!(id > 0);
        assert!(
            matches!(ev, SystemEvent::PermsChanged { target, perms: 0x20, actor, .. } if target == pb && actor == pa)
        );
    }
    let members = c.members(chat).await.unwrap();
    assert_eq!(members.iter().find(|m| m.user == pb).unwrap().perms, 0x20);

    // Chat info change goes to everyone.
    a.update_chat_info(chat, Some("Renamed"), None, None)
        .await
        .unwrap();
    for s in [&mut a, &mut b, &mut c] {
        let (_, ev) = system(s, chat, 0x06, &med).await;
        assert_eq!(
            ev,
            SystemEvent::ChatInfoChange {
                actor: pa,
                name: Some(b"Renamed".to_vec()),
                desc: None,
                avatar: None
            }
        );
    }
    assert_eq!(
        c.update_chat_info(chat, Some("nope"), None, None)
            .await
            .unwrap_err()
            .server_text(),
        Some("insufficient perms")
    );

    let last = a.last_message_id(chat).await.unwrap();
    assert!(last >= id3);

    // B drops its stream and opens a new one on the same connection: re-auth, subscribe, sync.
    drop(b);
    let conn_b = dial.link().await;
    let mut b = conn_b.session().await;
    b.auth(&kb).await.unwrap();
    assert_eq!(b.subscribe(chat).await.unwrap(), last);
    let history = b.sync(chat, 0).await.unwrap();
    let ids: Vec<i64> = history.iter().map(|m| m.id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "history in id order");
    assert_eq!(*ids.last().unwrap(), last);
    let by_guid = |g: i64| {
        history
            .iter()
            .find(|m| m.guid == g)
            .expect("message in history")
    };
    assert_eq!(by_guid(1001).blob, b"hello from A");
    assert_eq!(by_guid(1001).author, pa);
    assert_eq!(by_guid(2002).blob, b"hi A");
    assert_eq!(by_guid(1002).blob, b"collide");
    assert!(
        history.iter().any(|m| m.author == med && m.blob[0] == 0x07),
        "system messages are stored"
    );
    // A new stream on an existing connection also works.
    let mut b_second = conn_b.session().await;
    b_second.ping().await.unwrap();

    // Delete a message: everyone, the deleter included, sees MESSAGE_DELETED.
    a.delete_message(chat, 2002).await.unwrap();
    for s in [&mut a, &mut b, &mut c] {
        let (_, ev) = system(s, chat, 0x08, &med).await;
        assert_eq!(
            ev,
            SystemEvent::MessageDeleted {
                guid: 2002,
                deleter: pa
            }
        );
    }
    assert_eq!(
        a.delete_message(chat, 2002)
            .await
            .unwrap_err()
            .server_text(),
        Some("message not found")
    );
    assert!(b
        .sync(chat, 0)
        .await
        .unwrap()
        .iter()
        .all(|m| m.guid != 2002));

    // B leaves: A and C see USER_LEFT.
    b.leave_chat(chat).await.unwrap();
    for s in [&mut a, &mut c] {
        let (_, ev) = system(s, chat, 0x03, &med).await;
        assert!(matches!(ev, SystemEvent::UserLeft { user, .. } if user == pb));
    }
    assert_eq!(
        b.send_message(chat, 5, b"x")
            .await
            .unwrap_err()
            .server_text(),
        Some("not a member or banned")
    );
    assert_eq!(
        a.leave_chat(chat).await.unwrap_err().server_text(),
        Some("owner can't leave")
    );
    assert_eq!(c.user_chats().await.unwrap(), vec![chat]);

    // A deletes the chat: C is told with a TLV GOT_MESSAGE it can parse (§11 B1).
    assert_eq!(
        c.delete_chat(chat).await.unwrap_err().server_text(),
        Some("not an owner")
    );
    let stored_for_go = match go_since {
        Some(since) => a.sync(chat, since).await.unwrap(),
        None => Vec::new(),
    };
    assert_eq!(a.delete_chat(chat).await.unwrap(), vec![0x01]);
    if let (Some((w, _)), Some(_)) = (go.as_deref(), go_since) {
        let kinds: Vec<u8> = stored_for_go.iter().map(|m| m.blob[0]).collect();
        // A's message, PERMS_CHANGED, CHAT_INFO_CHANGE, MESSAGE_DELETED, USER_LEFT.
        assert_eq!(kinds, [b'w', 0x07, 0x06, 0x08, 0x03]);
        go_saw_everything(w, chat, &stored_for_go);
    }
    let m = c
        .wait_message(WAIT, |m| m.message.blob.first() == Some(&0x05))
        .await
        .expect("chat deleted push");
    assert_eq!((m.chat_id, m.message.id, m.message.author), (chat, 0, med));
    assert_eq!(m.message.blob.len(), 65);
    assert!(
        matches!(SystemEvent::decode(&m.message.blob).unwrap(), SystemEvent::ChatDeleted { actor, .. } if actor == pa)
    );
    assert_eq!(
        c.subscribe(chat).await.unwrap_err().server_text(),
        Some("not a member or banned")
    );
    assert_eq!(
        a.delete_chat(chat).await.unwrap_err().server_text(),
        Some("no such chat")
    );
    assert!(c.user_chats().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_event_and_last_seen() {
    let d = Daemon::start();
    let (mut a, ka) = user(d.addr).await;
    let pa = ka.verifying_key().to_bytes();
    let chat = a.create_chat("c", "", None).await.unwrap();
    a.subscribe(chat).await.unwrap();
    let (mut b, kb) = user(d.addr).await;
    let pb = kb.verifying_key().to_bytes();
    a.add_user(chat, &pb).await.unwrap();
    b.subscribe(chat).await.unwrap();
    a.drain_pushes();
    // A second session of B from another connection; closing one keeps B online (C8).
    let conn2 = connect(d.addr).await.unwrap();
    let mut b2 = Session::open(&conn2).await.unwrap();
    b2.auth(&kb).await.unwrap();
    b2.subscribe(chat).await.unwrap();
    a.drain_pushes();
    drop(b2);
    drop(conn2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        a.members(chat)
            .await
            .unwrap()
            .iter()
            .find(|m| m.user == pb)
            .unwrap()
            .online
    );
    assert!(a.drain_pushes().iter().all(|p| !matches!(p, Push::Message(m) if m.message.blob.first() == Some(&0x09) && m.message.blob[33] == 0)));
    drop(b);
    let m = a
        .wait_message(WAIT, |m| m.message.blob.first() == Some(&0x09))
        .await
        .expect("offline event");
    match SystemEvent::decode(&m.message.blob).unwrap() {
        SystemEvent::MemberOnline { user, online, .. } => assert_eq!((user, online), (pb, false)),
        other => panic!("unexpected {other:?}"),
    }
    let me = a.members(chat).await.unwrap();
    let rec = me.iter().find(|m| m.user == pb).unwrap();
    assert!(!rec.online);
    assert!(rec.last_seen > 0);
    let _ = pa;
}
