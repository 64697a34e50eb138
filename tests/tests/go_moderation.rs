//! Operator moderation seen by the Go client (quic-go, yggquic's settings): a Go member
//! (`-scenario watch`) sits in two twin chats; in one the owner acts through the protocol,
//! in the other the operator runs the same action with mediatorctl. The Go client must
//! receive the same pushes for both chats, byte for byte once each chat's own ids, the
//! timestamps and the 32 random bytes some system events carry are set aside.

use mediator_client::{connect, Session};
use mediator_tests::{Daemon, GoWatcher as Watcher, GO_WAIT};
use mediator_wire::codes::PushCode;
use mediator_wire::response::GotMessage;
use mediator_wire::system::code;

/// A push with what legitimately differs between twin chats set aside: the chat id,
/// message id, guid and time of a GOT_MESSAGE, and the random tail of system events.
fn comparable(push: &(u16, Vec<u8>)) -> (u16, Vec<u8>, Vec<u8>) {
    let (c, payload) = push;
    assert_eq!(*c, PushCode::GotMessage as u16, "only GOT_MESSAGE expected");
    let m = GotMessage::decode(payload).expect("GOT_MESSAGE decodes");
    let body = &m.message.blob;
    let kept = match body.first() {
        Some(
            &(code::USER_ADDED
            | code::USER_LEFT
            | code::USER_BANNED
            | code::CHAT_DELETED
            | code::PERMS_CHANGED),
        ) => &body[..body.len() - 32],
        _ => &body[..],
    };
    (*c, m.message.author.to_vec(), kept.to_vec())
}

fn same(proto: &[(u16, Vec<u8>)], op: &[(u16, Vec<u8>)], what: &str) {
    assert!(
        !proto.is_empty(),
        "{what}: the protocol path pushed nothing"
    );
    let p: Vec<_> = proto.iter().map(comparable).collect();
    let o: Vec<_> = op.iter().map(comparable).collect();
    assert_eq!(p, o, "{what}: the Go member saw different pushes");
}

async fn session(d: &Daemon, key: &ed25519_dalek::SigningKey) -> Session {
    let conn = connect(d.addr).await.unwrap();
    let mut s = Session::open(&conn).await.unwrap();
    std::mem::forget(conn);
    s.auth(key).await.unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_member_sees_operator_moderation_as_owner_moderation() {
    let d = Daemon::start();
    let (mut w, pw) = Watcher::start(&d.key, &["-udp", &d.addr.to_string()]);
    let (ka, kb, kc) = (
        mediator_client::random_key(),
        mediator_client::random_key(),
        mediator_client::random_key(),
    );
    let (pb, pc) = (kb.verifying_key().to_bytes(), kc.verifying_key().to_bytes());
    let mut a = session(&d, &ka).await;
    let proto = a.create_chat("protocol", "", None).await.unwrap();
    let op = a.create_chat("operator", "", None).await.unwrap();
    for chat in [proto, op] {
        for k in [&pw, &pb, &pc] {
            a.add_user(chat, k).await.unwrap();
        }
        w.subscribe(chat);
    }
    w.pushes();
    let os = op.to_string();
    let (bh, ch) = (hex::encode(pb), hex::encode(pc));

    a.ban_user(proto, &pb).await.unwrap();
    let p = w.expect_pushes();
    d.ctl_json(&["members", "ban", &os, &bh, "--yes"]);
    same(&p, &w.expect_pushes(), "ban");

    a.change_member_status(proto, &pc, 0x20).await.unwrap();
    let p = w.expect_pushes();
    d.ctl_json(&["members", "role", &os, &ch, "moderator"]);
    same(&p, &w.expect_pushes(), "role");

    let (gp, _) = a.send_message(proto, 7, b"spam").await.unwrap();
    let (_, io) = a.send_message(op, 7, b"spam").await.unwrap();
    w.pushes_within(GO_WAIT, 2);
    w.pushes();
    a.delete_message(proto, gp).await.unwrap();
    let p = w.expect_pushes();
    d.ctl_json(&["messages", "delete", &os, &io.to_string(), "--yes"]);
    same(&p, &w.expect_pushes(), "message deletion");

    a.delete_chat(proto).await.unwrap();
    let p = w.expect_pushes();
    d.ctl_json(&["chats", "delete", &os, "--yes"]);
    same(&p, &w.expect_pushes(), "chat deletion");

    w.end();
}
