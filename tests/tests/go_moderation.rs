//! Operator moderation seen by the Go client (quic-go, yggquic's settings): a Go member
//! (`-scenario watch`) sits in two twin chats; in one the owner acts through the protocol,
//! in the other the operator runs the same action with mediatorctl. The Go client must
//! receive the same pushes for both chats, byte for byte once each chat's own ids, the
//! timestamps and the 32 random bytes some system events carry are set aside.

use mediator_client::{connect, Session};
use mediator_tests::{go_client, Daemon};
use mediator_wire::codes::PushCode;
use mediator_wire::response::GotMessage;
use mediator_wire::system::code;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long the Go member must stay silent before the pushes of an action are all in.
const QUIET: Duration = Duration::from_millis(600);
/// How long the Go member may take to answer a line.
const WAIT: Duration = Duration::from_secs(10);

/// The Go member: its process, its stdin and its stdout lines.
struct Watcher {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Watcher {
    fn start(d: &Daemon) -> (Watcher, [u8; 32]) {
        let mut child = Command::new(go_client())
            .args([
                "-udp",
                &d.addr.to_string(),
                "-server-key",
                &hex::encode(d.key),
            ])
            .args(["-scenario", "watch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the Go client");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let w = Watcher {
            child,
            stdin,
            lines,
        };
        let line = w.next(WAIT).expect("the Go member's key");
        let key = hex::decode(line.strip_prefix("key ").expect("key line")).unwrap();
        (w, key.try_into().unwrap())
    }

    fn next(&self, wait: Duration) -> Option<String> {
        match self.lines.recv_timeout(wait) {
            Ok(l) => Some(l),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => panic!("the Go member exited"),
        }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn subscribe(&mut self, chat: i64) {
        self.send(&format!("subscribe {chat}"));
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(l) = self.next(WAIT) {
                if l.starts_with(&format!("subscribed {chat} ")) {
                    return;
                }
            }
        }
        panic!("the Go member did not subscribe to {chat}");
    }

    /// The pushes an action causes: waits up to [`WAIT`] for the first, then takes every
    /// push until the member has been quiet for [`QUIET`].
    fn expect_pushes(&self) -> Vec<(u16, Vec<u8>)> {
        let mut out = self.pushes_within(WAIT, 1);
        out.extend(self.pushes());
        out
    }

    /// Every push until the member has been quiet for [`QUIET`], as (code, payload).
    fn pushes(&self) -> Vec<(u16, Vec<u8>)> {
        self.pushes_within(QUIET, usize::MAX)
    }

    /// Up to `most` pushes, each within `wait` of the one before.
    fn pushes_within(&self, wait: Duration, most: usize) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        while out.len() < most {
            let Some(l) = self.next(wait) else { break };
            let mut parts = l.splitn(3, ' ');
            if parts.next() == Some("push") {
                let code: u16 = parts.next().unwrap().parse().unwrap();
                out.push((code, hex::decode(parts.next().unwrap()).unwrap()));
            } else {
                assert_ne!(l, "closed", "the Go member's session ended");
            }
        }
        out
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    let (mut w, pw) = Watcher::start(&d);
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
    w.pushes_within(WAIT, 2);
    w.pushes();
    a.delete_message(proto, gp).await.unwrap();
    let p = w.expect_pushes();
    d.ctl_json(&["messages", "delete", &os, &io.to_string(), "--yes"]);
    same(&p, &w.expect_pushes(), "message deletion");

    a.delete_chat(proto).await.unwrap();
    let p = w.expect_pushes();
    d.ctl_json(&["chats", "delete", &os, "--yes"]);
    same(&p, &w.expect_pushes(), "chat deletion");

    w.send("end");
    let status = w.child.wait().unwrap();
    assert!(status.success(), "the Go member failed");
}
