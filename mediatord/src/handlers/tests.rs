//! In-process tests of [`Session::handle`]: real sessions admitted by a real hub, a real
//! SQLite store in a temporary directory, requests encoded as a client would send them and
//! answers and pushes decoded from the frames the session would write. No sockets: what is
//! tested here is the command logic, one family per test, with its pushes to other members.

use super::invites::REINVITE_AFTER_SECS;
use super::Session;
use crate::clock::Clock;
use crate::limits::Limits;
use crate::outbox::OutboxReceiver;
use crate::server::Server;
use crate::store::Store;
use ed25519_dalek::{Signer, SigningKey};
use mediator_wire::codes::perms;
use mediator_wire::frame::{decode_error_text, FrameWriter, RequestFrame, ResponseFrame};
use mediator_wire::response::{self as resp, GotMessage, Invite};
use mediator_wire::system::SystemEvent;
use mediator_wire::tlv::{tag, TlvMap};
use mediator_wire::{Command, PublicKey, PushCode, Status};
use std::sync::Arc;
use std::time::Duration;

/// How long a test waits for a push that a commit hook sends.
const PUSH_WAIT: Duration = Duration::from_secs(5);

/// A daemon without transports: the shared state over a store in a temporary directory.
struct Daemon {
    server: Arc<Server>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn new() -> Daemon {
        Daemon::with_clock(Clock::system())
    }

    fn with_clock(clock: Clock) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("mediator.db")).expect("store");
        let key = SigningKey::generate(&mut rand::rngs::OsRng)
            .verifying_key()
            .to_bytes();
        Daemon {
            server: Arc::new(Server::with_clock(store, key, Limits::default(), clock)),
            _dir: dir,
        }
    }

    /// A new session from `source`, as a transport would admit it.
    fn connect(&self, source: &str) -> Client {
        let (handle, rx) = self
            .server
            .hub
            .admit(
                crate::peer::Peer::quic(format!("{source}:1"), source),
                &self.server.limits,
            )
            .expect("admitted");
        Client {
            session: Session::new(self.server.clone(), handle),
            rx,
            key: SigningKey::generate(&mut rand::rngs::OsRng),
            req_id: 0,
            own: Vec::new(),
        }
    }
}

/// A push a session received, decoded.
#[derive(Debug)]
enum Push {
    Message(GotMessage),
    Invite(Invite),
    Other(PushCode),
}

impl Push {
    /// The system event of a GOT_MESSAGE whose author is the mediator.
    fn system(&self, mediator: &PublicKey) -> Option<SystemEvent> {
        match self {
            Push::Message(m) if &m.message.author == mediator => {
                SystemEvent::decode(&m.message.blob).ok()
            }
            _ => None,
        }
    }
}

/// One client session driven in-process.
struct Client {
    session: Session,
    rx: OutboxReceiver,
    key: SigningKey,
    req_id: u16,
    /// Frames the handler returned for this session after its answer.
    own: Vec<bytes::Bytes>,
}

impl Client {
    fn pk(&self) -> PublicKey {
        self.key.verifying_key().to_bytes()
    }

    /// Sends one request; the OK payload, or the ERR text.
    async fn req(
        &mut self,
        cmd: Command,
        build: impl FnOnce(&mut FrameWriter),
    ) -> Result<Vec<u8>, String> {
        self.req_id = self.req_id.wrapping_add(1).max(1);
        let mut w = FrameWriter::request(cmd, self.req_id);
        build(&mut w);
        let bytes = w.finish();
        let (frame, _) = RequestFrame::decode(&bytes).expect("request frame");
        let reply = self
            .session
            .handle(cmd, frame.header.req_id, frame.payload)
            .await;
        self.own.extend(reply.after);
        let (answer, used) = ResponseFrame::decode(&reply.frame).expect("response frame");
        assert_eq!(used, reply.frame.len(), "one frame per answer");
        assert_eq!(answer.header.req_id, self.req_id, "answer to this request");
        match answer.header.status {
            Status::Ok => Ok(answer.payload.to_vec()),
            Status::Err => Err(decode_error_text(answer.payload).expect("error text")),
            Status::Push => panic!("an answer with the push status"),
        }
    }

    /// Pushes received so far: frames the hub queued, then those the handler returned.
    fn pushes(&mut self) -> Vec<Push> {
        let mut frames = Vec::new();
        while let Ok(out) = self.rx.try_recv() {
            frames.push(out.frame);
        }
        frames.append(&mut self.own);
        frames
            .iter()
            .map(|f| {
                let (frame, _) = ResponseFrame::decode(f).expect("push frame");
                match frame.push_code().expect("a push") {
                    PushCode::GotMessage => {
                        Push::Message(GotMessage::decode(frame.payload).expect("message"))
                    }
                    PushCode::GotInvite => {
                        Push::Invite(Invite::decode(frame.payload).expect("invite"))
                    }
                    other => Push::Other(other),
                }
            })
            .collect()
    }

    /// Waits until a push matches `pred` (pushes from commit hooks may trail the answer).
    async fn wait_for(&mut self, mut pred: impl FnMut(&Push) -> bool) -> Push {
        let deadline = tokio::time::Instant::now() + PUSH_WAIT;
        loop {
            if let Some(p) = self.pushes().into_iter().find(|p| pred(p)) {
                return p;
            }
            assert!(tokio::time::Instant::now() < deadline, "no such push");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn nonce(&mut self) -> [u8; 32] {
        let pk = self.pk();
        let p = self
            .req(Command::GetNonce, |w| {
                w.tlv(tag::PUBKEY, &pk);
            })
            .await
            .expect("nonce");
        TlvMap::parse(&p).unwrap().fixed(tag::NONCE).unwrap()
    }

    async fn auth_as(
        &mut self,
        pk: PublicKey,
        nonce: [u8; 32],
        sig: [u8; 64],
    ) -> Result<(), String> {
        self.req(Command::Auth, |w| {
            w.tlv(tag::PUBKEY, &pk)
                .tlv(tag::NONCE, &nonce)
                .tlv(tag::SIGNATURE, &sig);
        })
        .await
        .map(drop)
    }

    async fn auth(&mut self) {
        let nonce = self.nonce().await;
        let sig = self.key.sign(&nonce).to_bytes();
        self.auth_as(self.pk(), nonce, sig).await.expect("auth");
    }

    /// GET_NONCE, proof of work and CREATE_CHAT.
    async fn create_chat(&mut self, name: &str) -> i64 {
        let nonce = self.nonce().await;
        let mut msg = [0u8; 36];
        msg[..32].copy_from_slice(&nonce);
        let (counter, sig) = (0u32..)
            .find_map(|c| {
                msg[32..].copy_from_slice(&c.to_be_bytes());
                let sig = self.key.sign(&msg).to_bytes();
                (sig[0] == 0 && sig[1] == 0).then_some((c, sig))
            })
            .unwrap();
        let pk = self.pk();
        let p = self
            .req(Command::CreateChat, |w| {
                w.tlv(tag::PUBKEY, &pk)
                    .tlv(tag::NONCE, &nonce)
                    .tlv(tag::COUNTER, &counter.to_be_bytes())
                    .tlv(tag::SIGNATURE, &sig)
                    .tlv(tag::CHAT_NAME, name.as_bytes())
                    .tlv(tag::CHAT_DESC, b"a test chat");
            })
            .await
            .expect("chat created");
        TlvMap::parse(&p).unwrap().i64(tag::CHAT_ID).unwrap()
    }

    async fn on_chat(&mut self, cmd: Command, chat: i64) -> Result<Vec<u8>, String> {
        self.req(cmd, |w| {
            w.tlv(tag::CHAT_ID, &chat.to_be_bytes());
        })
        .await
    }

    async fn on_user(&mut self, cmd: Command, chat: i64, user: &PublicKey) -> Result<(), String> {
        self.req(cmd, |w| {
            w.tlv(tag::CHAT_ID, &chat.to_be_bytes())
                .tlv(tag::USER_PUBKEY, user);
        })
        .await
        .map(drop)
    }

    async fn set_perms(&mut self, chat: i64, user: &PublicKey, p: u8) -> Result<(), String> {
        self.req(Command::ChangeMemberStatus, |w| {
            w.tlv(tag::CHAT_ID, &chat.to_be_bytes())
                .tlv(tag::USER_PUBKEY, user)
                .tlv(tag::PERMS, &[p]);
        })
        .await
        .map(drop)
    }

    async fn send(&mut self, chat: i64, guid: i64, blob: &[u8]) -> Result<(), String> {
        self.req(Command::SendMessage, |w| {
            w.tlv(tag::CHAT_ID, &chat.to_be_bytes())
                .tlv(tag::MESSAGE_GUID, &guid.to_be_bytes())
                .tlv(tag::MESSAGE_BLOB, blob);
        })
        .await
        .map(drop)
    }

    async fn members(&mut self, chat: i64) -> Vec<resp::MemberRecord> {
        let p = self.on_chat(Command::GetMembers, chat).await.unwrap();
        resp::decode_members(&p).unwrap()
    }
}

/// A daemon with an owner who created a chat and a second member added by the owner; both
/// subscribed, pushes so far drained.
async fn chat_of_two(d: &Daemon) -> (Client, Client, i64) {
    let (mut owner, mut member) = (d.connect("10.0.0.1"), d.connect("10.0.0.2"));
    owner.auth().await;
    member.auth().await;
    let chat = owner.create_chat("two").await;
    owner
        .on_user(Command::AddUser, chat, &member.pk())
        .await
        .unwrap();
    owner.on_chat(Command::Subscribe, chat).await.unwrap();
    member.on_chat(Command::Subscribe, chat).await.unwrap();
    let key = d.server.key;
    let me = member.pk();
    owner
        .wait_for(|p| {
            matches!(p.system(&key), Some(SystemEvent::MemberOnline { user, online: true, .. }) if user == me)
        })
        .await;
    owner.pushes();
    member.pushes();
    (owner, member, chat)
}

#[tokio::test]
async fn auth_family_checks_nonce_signature_and_order() {
    let d = Daemon::new();
    let mut c = d.connect("10.0.0.1");
    // PING needs nothing; other commands need AUTH first, CREATE_CHAT with its own text.
    assert!(c.req(Command::Ping, |_| {}).await.is_ok());
    assert_eq!(
        c.req(Command::GetUserChats, |_| {}).await.unwrap_err(),
        "auth required"
    );
    assert_eq!(
        c.req(Command::CreateChat, |_| {}).await.unwrap_err(),
        "not authenticated"
    );
    // A nonce never issued, then a wrong signature, then a weak key: all refused.
    let pk = c.pk();
    let err = c.auth_as(pk, [7; 32], [0; 64]).await.unwrap_err();
    assert_eq!(err, "unknown nonce");
    let nonce = c.nonce().await;
    let wrong = SigningKey::generate(&mut rand::rngs::OsRng)
        .sign(&nonce)
        .to_bytes();
    assert_eq!(
        c.auth_as(pk, nonce, wrong).await.unwrap_err(),
        "invalid signature"
    );
    let mut small_order = [0u8; 32];
    small_order[0] = 1; // the identity point
    let p = c
        .req(Command::GetNonce, |w| {
            w.tlv(tag::PUBKEY, &small_order);
        })
        .await
        .unwrap();
    let weak_nonce = TlvMap::parse(&p).unwrap().fixed(tag::NONCE).unwrap();
    let mut forged = [0u8; 64];
    forged[0] = 1; // R = identity, s = 0: "valid" for a small-order key under lax checks
    let err = c
        .auth_as(small_order, weak_nonce, forged)
        .await
        .unwrap_err();
    assert_eq!(err, "invalid signature");
    // The right signature over the issued nonce logs in, once per nonce.
    let sig = c.key.sign(&nonce).to_bytes();
    c.auth_as(pk, nonce, sig).await.unwrap();
    assert_eq!(
        c.auth_as(pk, nonce, sig).await.unwrap_err(),
        "unknown nonce"
    );
    let p = c.req(Command::GetUserChats, |_| {}).await.unwrap();
    assert!(resp::decode_user_chats(&p).unwrap().is_empty());
}

#[tokio::test]
async fn chats_family_creates_updates_lists_and_deletes() {
    let d = Daemon::new();
    let key = d.server.key;
    let (mut owner, mut member, chat) = chat_of_two(&d).await;
    let p = owner.req(Command::GetUserChats, |_| {}).await.unwrap();
    assert_eq!(resp::decode_user_chats(&p).unwrap(), vec![chat]);
    // Only owners and admins change the chat's info; both subscribers see the change.
    let update = |w: &mut FrameWriter| {
        w.tlv(tag::CHAT_ID, &chat.to_be_bytes())
            .tlv(tag::CHAT_NAME, b"renamed");
    };
    assert_eq!(
        member
            .req(Command::UpdateChatInfo, update)
            .await
            .unwrap_err(),
        "insufficient perms"
    );
    owner.req(Command::UpdateChatInfo, update).await.unwrap();
    for c in [&mut owner, &mut member] {
        let ev = c.wait_for(|p| p.system(&key).is_some()).await.system(&key);
        assert!(
            matches!(ev, Some(SystemEvent::ChatInfoChange { name: Some(ref n), .. }) if n == b"renamed")
        );
    }
    // Only the owner deletes it; the other subscriber is told, the deleter is not.
    assert_eq!(
        member.on_chat(Command::DeleteChat, chat).await.unwrap_err(),
        "not an owner"
    );
    owner.on_chat(Command::DeleteChat, chat).await.unwrap();
    let ev = member.wait_for(|p| p.system(&key).is_some()).await;
    assert!(
        matches!(ev.system(&key), Some(SystemEvent::ChatDeleted { actor, .. }) if actor == owner.pk())
    );
    assert!(owner.pushes().is_empty());
    assert_eq!(
        owner.on_chat(Command::DeleteChat, chat).await.unwrap_err(),
        "no such chat"
    );
    // Unauthenticated sessions learn nothing about which chats exist (§11 S7).
    let mut guest = d.connect("10.0.0.9");
    assert_eq!(
        guest.on_chat(Command::DeleteChat, chat).await.unwrap_err(),
        "auth required"
    );
}

#[tokio::test]
async fn members_family_enforces_ranks_and_pushes_changes() {
    let d = Daemon::new();
    let key = d.server.key;
    let (mut owner, mut member, chat) = chat_of_two(&d).await;
    let (o, m) = (owner.pk(), member.pk());
    // A plain member can neither ban nor promote; nobody bans the owner or themselves.
    assert_eq!(
        member
            .on_user(Command::DeleteUser, chat, &o)
            .await
            .unwrap_err(),
        "insufficient perms"
    );
    assert_eq!(
        member.set_perms(chat, &m, perms::ADMIN).await.unwrap_err(),
        "cannot modify own permissions"
    );
    assert_eq!(
        owner
            .on_user(Command::DeleteUser, chat, &o)
            .await
            .unwrap_err(),
        "cannot ban yourself"
    );
    assert_eq!(
        owner
            .req(Command::LeaveChat, |w| {
                w.tlv(tag::CHAT_ID, &chat.to_be_bytes());
            })
            .await
            .unwrap_err(),
        "owner can't leave"
    );
    // A moderator may not ban an admin (§11 S2).
    let mut admin = d.connect("10.0.0.3");
    admin.auth().await;
    owner
        .on_user(Command::AddUser, chat, &admin.pk())
        .await
        .unwrap();
    admin.on_chat(Command::Subscribe, chat).await.unwrap();
    owner
        .set_perms(chat, &admin.pk(), perms::ADMIN | perms::USER)
        .await
        .unwrap();
    owner
        .set_perms(chat, &m, perms::MODERATOR | perms::USER)
        .await
        .unwrap();
    assert_eq!(
        member
            .on_user(Command::DeleteUser, chat, &admin.pk())
            .await
            .unwrap_err(),
        "insufficient perms"
    );
    let roles: Vec<(PublicKey, u8)> = owner
        .members(chat)
        .await
        .iter()
        .map(|r| (r.user, r.perms))
        .collect();
    assert!(
        roles.contains(&(m, perms::MODERATOR | perms::USER)),
        "{roles:?}"
    );
    // The owner bans the member: the ban is pushed, and the member is cut off at once.
    owner.pushes();
    owner.on_user(Command::DeleteUser, chat, &m).await.unwrap();
    member
        .wait_for(|p| {
            matches!(p.system(&key), Some(SystemEvent::UserBanned { target, .. }) if target == m)
        })
        .await;
    assert_eq!(
        member.send(chat, 1, b"hi").await.unwrap_err(),
        "not a member or banned"
    );
    owner.send(chat, 2, b"after the ban").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(member
        .pushes()
        .iter()
        .all(|p| !matches!(p, Push::Message(g) if g.message.guid == 2)));
    // Only the owner lifts a ban the owner set; then the member may leave.
    assert_eq!(
        admin.on_user(Command::AddUser, chat, &m).await.unwrap_err(),
        "insufficient perms"
    );
    owner.on_user(Command::AddUser, chat, &m).await.unwrap();
    member.on_chat(Command::LeaveChat, chat).await.unwrap();
    let ev = owner
        .wait_for(|p| matches!(p.system(&key), Some(SystemEvent::UserLeft { .. })))
        .await;
    assert!(matches!(ev.system(&key), Some(SystemEvent::UserLeft { user, .. }) if user == m));
    assert!(owner.members(chat).await.iter().all(|r| r.user != m));
    // Member info: stored, pushed, and listed.
    owner
        .req(Command::UpdateMemberInfo, |w| {
            w.tlv(tag::CHAT_ID, &chat.to_be_bytes())
                .tlv(tag::TIMESTAMP, &100i64.to_be_bytes())
                .tlv(tag::MEMBER_INFO, b"owner's card");
        })
        .await
        .unwrap();
    admin
        .wait_for(|p| matches!(p, Push::Other(PushCode::GotMemberInfo)))
        .await;
    let p = admin.on_chat(Command::GetMembersInfo, chat).await.unwrap();
    let infos = resp::decode_members_info(&p).unwrap();
    assert!(
        infos
            .iter()
            .any(|i| i.user == o && i.info == b"owner's card" && i.timestamp == 100),
        "{infos:?}"
    );
}

#[tokio::test]
async fn messages_family_sends_syncs_and_deletes() {
    let d = Daemon::new();
    let key = d.server.key;
    let (mut owner, mut member, chat) = chat_of_two(&d).await;
    member.send(chat, 41, b"hello").await.unwrap();
    let got = owner
        .wait_for(|p| matches!(p, Push::Message(m) if m.message.guid == 41))
        .await;
    let Push::Message(got) = got else {
        unreachable!()
    };
    assert_eq!(
        (got.chat_id, got.message.blob.as_slice()),
        (chat, &b"hello"[..])
    );
    assert!(
        member.pushes().is_empty(),
        "the sender gets no push of its own message"
    );
    // The same guid again is answered and stored once.
    member.send(chat, 41, b"hello").await.unwrap();
    let p = owner
        .on_chat(Command::GetLastMessageId, chat)
        .await
        .unwrap();
    let last = TlvMap::parse(&p).unwrap().i64(tag::MESSAGE_ID).unwrap();
    assert_eq!(last, got.message.id);
    let p = owner
        .req(Command::GetMessagesSince, |w| {
            w.tlv(tag::CHAT_ID, &chat.to_be_bytes())
                .tlv(tag::SINCE_ID, &0i64.to_be_bytes())
                .tlv(tag::LIMIT, &500u32.to_be_bytes());
        })
        .await
        .unwrap();
    let all = resp::decode_messages(&p).unwrap();
    assert_eq!(all.iter().filter(|r| r.guid == 41).count(), 1);
    assert_eq!(all.last().map(|r| r.id), Some(last));
    // A plain member may not delete the owner's message; the author deletes its own, and
    // every subscriber, the author too, sees the deletion.
    owner.send(chat, 42, b"owner's").await.unwrap();
    let del = |g: i64| {
        move |w: &mut FrameWriter| {
            w.tlv(tag::CHAT_ID, &chat.to_be_bytes())
                .tlv(tag::MESSAGE_GUID, &g.to_be_bytes());
        }
    };
    assert_eq!(
        member
            .req(Command::DeleteMessage, del(42))
            .await
            .unwrap_err(),
        "insufficient perms"
    );
    member.req(Command::DeleteMessage, del(41)).await.unwrap();
    for c in [&mut owner, &mut member] {
        c.wait_for(|p| {
            matches!(
                p.system(&key),
                Some(SystemEvent::MessageDeleted { guid: 41, .. })
            )
        })
        .await;
    }
    assert_eq!(
        member
            .req(Command::DeleteMessage, del(41))
            .await
            .unwrap_err(),
        "message not found"
    );
    // Outsiders see nothing.
    let mut outsider = d.connect("10.0.0.7");
    outsider.auth().await;
    assert_eq!(
        outsider
            .on_chat(Command::Subscribe, chat)
            .await
            .unwrap_err(),
        "not a member or banned"
    );
}

#[tokio::test]
async fn invites_family_delivers_accepts_and_refuses() {
    let d = Daemon::new();
    let key = d.server.key;
    let (mut owner, mut member, chat) = chat_of_two(&d).await;
    let mut guest = d.connect("10.0.0.5");
    guest.auth().await;
    let invite = |to: PublicKey| {
        move |w: &mut FrameWriter| {
            w.tlv(tag::CHAT_ID, &chat.to_be_bytes())
                .tlv(tag::USER_PUBKEY, &to)
                .tlv(tag::INVITE_DATA, b"key material");
        }
    };
    // No invites from plain members, to members, or twice.
    assert_eq!(
        member
            .req(Command::SendInvite, invite(guest.pk()))
            .await
            .unwrap_err(),
        "insufficient perms"
    );
    assert_eq!(
        owner
            .req(Command::SendInvite, invite(member.pk()))
            .await
            .unwrap_err(),
        "user is already a member"
    );
    owner
        .req(Command::SendInvite, invite(guest.pk()))
        .await
        .unwrap();
    assert_eq!(
        owner
            .req(Command::SendInvite, invite(guest.pk()))
            .await
            .unwrap_err(),
        "invite already exists"
    );
    // The live invitee gets it at once, and again on its next AUTH while unanswered.
    let Push::Invite(inv) = guest.wait_for(|p| matches!(p, Push::Invite(_))).await else {
        unreachable!()
    };
    assert_eq!(
        (inv.chat_id, inv.from, inv.data.as_slice()),
        (chat, owner.pk(), &b"key material"[..])
    );
    let mut again = d.connect("10.0.0.6");
    again.key = guest.key.clone();
    again.auth().await;
    assert!(again
        .pushes()
        .iter()
        .any(|p| matches!(p, Push::Invite(i) if i.invite_id == inv.invite_id)));
    // Only the invitee answers it; accepting makes it a member, announced to the chat.
    let answer = |id: i64| {
        move |w: &mut FrameWriter| {
            w.tlv(tag::INVITE_ID, &id.to_be_bytes())
                .tlv(tag::ACCEPTED, &[1]);
        }
    };
    assert_eq!(
        member
            .req(Command::InviteResponse, answer(inv.invite_id))
            .await
            .unwrap_err(),
        "not recipient of this invite"
    );
    again
        .req(Command::InviteResponse, answer(inv.invite_id))
        .await
        .unwrap();
    let g = guest.pk();
    owner
        .wait_for(|p| matches!(p.system(&key), Some(SystemEvent::UserAdded { target, .. }) if target == g))
        .await;
    assert!(owner.members(chat).await.iter().any(|r| r.user == g));
    assert_eq!(
        again
            .req(Command::InviteResponse, answer(inv.invite_id))
            .await
            .unwrap_err(),
        "invite not found"
    );
}

/// Invite expiry follows the daemon's clock: an invite is pushed on each AUTH until its TTL
/// has passed on that clock, and not after (no waiting three days).
#[tokio::test]
async fn invites_expire_by_the_injected_clock() {
    let clock = Clock::manual(1_800_000_000);
    let d = Daemon::with_clock(clock.clone());
    let (mut owner, _member, chat) = chat_of_two(&d).await;
    let invitee = SigningKey::generate(&mut rand::rngs::OsRng);
    let to = invitee.verifying_key().to_bytes();
    owner
        .req(Command::SendInvite, |w| {
            w.tlv(tag::CHAT_ID, &chat.to_be_bytes())
                .tlv(tag::USER_PUBKEY, &to)
                .tlv(tag::INVITE_DATA, b"k");
        })
        .await
        .unwrap();
    let login = |source: &str| {
        let mut c = d.connect(source);
        c.key = invitee.clone();
        c
    };
    let ttl = d.server.limits.invite_ttl.as_secs() as i64;
    clock.advance(ttl - 1);
    let mut c = login("10.0.1.1");
    c.auth().await;
    let invites = |c: &mut Client| {
        c.pushes()
            .iter()
            .filter(|p| matches!(p, Push::Invite(i) if i.chat_id == chat))
            .count()
    };
    assert_eq!(invites(&mut c), 1, "still valid one second before its TTL");
    clock.advance(2);
    let mut c = login("10.0.1.2");
    c.auth().await;
    assert_eq!(invites(&mut c), 0, "expired one second after its TTL");
}

/// A pending invite can be sent again once it is an hour old (Mimir 3.x's rule): it is
/// renewed (new data and inviter, pushed again), not doubled.
#[tokio::test]
async fn an_hour_old_invite_can_be_sent_again() {
    let clock = Clock::manual(1_800_000_000);
    let d = Daemon::with_clock(clock.clone());
    let (mut owner, _member, chat) = chat_of_two(&d).await;
    let mut invitee = d.connect("10.0.2.1");
    invitee.auth().await;
    let to = invitee.pk();
    let invite = |data: &'static [u8]| {
        move |w: &mut FrameWriter| {
            w.tlv(tag::CHAT_ID, &chat.to_be_bytes())
                .tlv(tag::USER_PUBKEY, &to)
                .tlv(tag::INVITE_DATA, data);
        }
    };
    let got = |c: &mut Client| {
        c.pushes()
            .into_iter()
            .filter_map(|p| match p {
                Push::Invite(i) => Some(i),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    owner
        .req(Command::SendInvite, invite(b"first"))
        .await
        .unwrap();
    let first = invitee.wait_for(|p| matches!(p, Push::Invite(_))).await;
    let Push::Invite(first) = first else {
        unreachable!()
    };
    clock.advance(REINVITE_AFTER_SECS - 1);
    assert_eq!(
        owner
            .req(Command::SendInvite, invite(b"again"))
            .await
            .unwrap_err(),
        "invite already exists"
    );
    clock.advance(1);
    owner
        .req(Command::SendInvite, invite(b"again"))
        .await
        .unwrap();
    let Push::Invite(again) = invitee.wait_for(|p| matches!(p, Push::Invite(_))).await else {
        unreachable!()
    };
    assert_eq!(again.invite_id, first.invite_id, "renewed, not doubled");
    assert_eq!(again.data, b"again");
    assert_eq!(again.timestamp, first.timestamp + REINVITE_AFTER_SECS);
    // A fresh login sees the one renewed invite.
    let mut c = d.connect("10.0.2.2");
    c.key = invitee.key.clone();
    c.auth().await;
    let pending = got(&mut c);
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].data, b"again");
}

/// What a session logs carries its span: the session id, the remote, and after AUTH the user.
#[tokio::test]
async fn session_logs_carry_id_remote_and_user() {
    use mediator_wire::frame::{ResponseHeader, HEADER_LEN, PREAMBLE};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[derive(Clone, Default)]
    struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let d = Daemon::new();
    let (mut client, server_end) = tokio::io::duplex(1 << 16);
    let (r, w) = tokio::io::split(server_end);
    let peer = crate::session::Peer::quic("192.0.2.7:4242", "192.0.2.7");
    let session = tokio::spawn(crate::session::run(d.server.clone(), r, w, peer));
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let pk = key.verifying_key().to_bytes();
    client.write_all(&PREAMBLE).await.unwrap();
    let mut ask = async |cmd: Command, build: &dyn Fn(&mut FrameWriter)| -> Vec<u8> {
        let mut w = FrameWriter::request(cmd, 7);
        build(&mut w);
        client.write_all(&w.finish()).await.unwrap();
        let mut h = [0u8; HEADER_LEN];
        client.read_exact(&mut h).await.unwrap();
        let h = ResponseHeader::decode(&h).unwrap();
        let mut p = vec![0u8; h.len as usize];
        client.read_exact(&mut p).await.unwrap();
        assert_eq!((h.status, h.req_id), (Status::Ok, 7), "{p:?}");
        p
    };
    let p = ask(Command::GetNonce, &|w| {
        w.tlv(tag::PUBKEY, &pk);
    })
    .await;
    let nonce: [u8; 32] = TlvMap::parse(&p).unwrap().fixed(tag::NONCE).unwrap();
    let sig = key.sign(&nonce).to_bytes();
    ask(Command::Auth, &|w| {
        w.tlv(tag::PUBKEY, &pk)
            .tlv(tag::NONCE, &nonce)
            .tlv(tag::SIGNATURE, &sig);
    })
    .await;
    // The line every session logs is its end.
    drop(client);
    session.await.unwrap();
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let ended = text
        .lines()
        .find(|l| l.contains("session ended"))
        .unwrap_or_else(|| panic!("no end line in {text}"));
    assert!(ended.contains("session{session="), "{ended}");
    assert!(ended.contains("remote=192.0.2.7:4242"), "{ended}");
    assert!(
        ended.contains(&format!("user={}", hex::encode(pk))),
        "{ended}"
    );
}
