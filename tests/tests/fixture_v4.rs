//! A database written by the release with schema v4 (per-chat tables, `memberships`, `bans`),
//! kept in `tests/fixtures/v4/` so that the single-schema storage can prove it imports what
//! real deployments hold. `tests/fixtures/make-v4.sh` regenerates it: it builds the v4
//! release's binaries and runs [`generate_v4_fixture`] against them, which drives that daemon
//! through the protocol with fixed keys (no SQL of ours touches the file).
//!
//! [`v4_fixture_is_served`] checks, through the protocol, everything the fixture holds: chats,
//! settings, members and roles, a ban, a departure, messages with a deletion, member info and a
//! pending invite.

use ed25519_dalek::SigningKey;
use mediator_client::{connect, Push, Session, SystemEvent};
use mediator_tests::{workspace_root, Daemon};
use mediator_wire::codes::perms;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Seeds of the fixture's keys: the mediator, then the users.
const NODE: u8 = 1;
const OWNER: u8 = 2;
const MEMBER: u8 = 3;
const MODERATOR: u8 = 4;
const BANNED: u8 = 5;
const INVITEE: u8 = 6;
const LEAVER: u8 = 7;
/// Messages the member sends to the first chat (guids 1..=N, bodies from [`body`]).
const MESSAGES: i64 = 40;
/// The guid of the member's message that the moderator deletes.
const DELETED: i64 = 7;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn pk(seed: u8) -> [u8; 32] {
    key(seed).verifying_key().to_bytes()
}

fn body(guid: i64) -> Vec<u8> {
    format!("fixture message {guid}").into_bytes()
}

fn fixture_dir() -> PathBuf {
    workspace_root().join("tests/fixtures/v4")
}

async fn session(addr: std::net::SocketAddr, seed: u8) -> Session {
    let conn = connect(addr).await.expect("connect");
    let mut s = Session::open(&conn).await.expect("open");
    s.auth(&key(seed)).await.expect("auth");
    s
}

/// The chats the fixture holds, read back from `chats.txt` (written by the generator, since
/// chat ids are random): "ID NAME" per line.
fn chats(dir: &Path) -> Vec<(i64, String)> {
    std::fs::read_to_string(dir.join("chats.txt"))
        .expect("tests/fixtures/v4/chats.txt")
        .lines()
        .map(|l| {
            let (id, name) = l.split_once(' ').expect("ID NAME");
            (id.parse().expect("chat id"), name.to_string())
        })
        .collect()
}

/// Writes the fixture into `$FIXTURE_OUT` with the daemon of `$MEDIATOR_TEST_BIN_DIR`.
#[tokio::test]
#[ignore = "generates tests/fixtures/v4: run by tests/fixtures/make-v4.sh"]
async fn generate_v4_fixture() {
    let out = PathBuf::from(std::env::var_os("FIXTURE_OUT").expect("FIXTURE_OUT"));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let node = key(NODE);
    let mut k = node.to_bytes().to_vec();
    k.extend_from_slice(node.verifying_key().as_bytes());
    std::fs::write(data.join("mediator.key"), &k).unwrap();
    let mut d = Daemon::start_in(&data, &[]);
    let addr = d.addr;
    let mut owner = session(addr, OWNER).await;
    let one = owner
        .create_chat("fixture one", "the first chat", None)
        .await
        .unwrap();
    let two = owner
        .create_chat(
            "fixture two",
            "with an avatar",
            Some(&[0x89, b'P', b'N', b'G', 0, 1]),
        )
        .await
        .unwrap();
    for user in [MEMBER, MODERATOR, BANNED, LEAVER] {
        owner.add_user(one, &pk(user)).await.unwrap();
    }
    owner.add_user(two, &pk(MEMBER)).await.unwrap();
    owner
        .change_member_status(one, &pk(MODERATOR), perms::MODERATOR | perms::USER)
        .await
        .unwrap();
    let mut member = session(addr, MEMBER).await;
    for guid in 1..=MESSAGES {
        member.send_message(one, guid, &body(guid)).await.unwrap();
    }
    member
        .send_message(two, 1, b"in the second chat")
        .await
        .unwrap();
    member
        .update_member_info(one, 1_000, b"member card")
        .await
        .unwrap();
    let mut moderator = session(addr, MODERATOR).await;
    moderator.ban_user(one, &pk(BANNED)).await.unwrap();
    moderator.delete_message(one, DELETED).await.unwrap();
    let mut leaver = session(addr, LEAVER).await;
    leaver.leave_chat(one).await.unwrap();
    owner
        .send_invite(two, &pk(INVITEE), b"invite key material")
        .await
        .unwrap();
    assert!(d.signal_and_wait(libc::SIGTERM).success());
    std::fs::create_dir_all(&out).unwrap();
    for f in ["mediator.db", "mediator.key"] {
        std::fs::copy(data.join(f), out.join(f)).unwrap();
    }
    assert!(
        !data.join("mediator.db-wal").exists() || {
            std::fs::metadata(data.join("mediator.db-wal"))
                .unwrap()
                .len()
                == 0
        }
    );
    std::fs::write(
        out.join("chats.txt"),
        format!("{one} fixture one\n{two} fixture two\n"),
    )
    .unwrap();
}

/// The fixture's content, all of it, as the daemon of this tree serves it.
#[tokio::test]
async fn v4_fixture_is_served() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for f in ["mediator.db", "mediator.key"] {
        std::fs::copy(fixture_dir().join(f), data.join(f)).unwrap();
    }
    // The fixture's invite was sent when it was generated: a TTL of a century keeps it
    // pending whenever this runs.
    let cfg = tmp.path().join("mediatord.toml");
    std::fs::write(&cfg, "[limits]\ninvite_ttl_secs = 3153600000\n").unwrap();
    let d = Daemon::start_in(&data, &["--config", cfg.to_str().unwrap()]);
    assert_eq!(d.key, pk(NODE), "the fixture's key is kept");
    let chats = chats(&fixture_dir());
    let (one, two) = (chats[0].0, chats[1].0);
    let mut owner = session(d.addr, OWNER).await;
    let mut mine = owner.user_chats().await.unwrap();
    mine.sort_unstable();
    let mut want = vec![one, two];
    want.sort_unstable();
    assert_eq!(mine, want);

    // Members and roles: the leaver is gone, the ban holds, the moderator kept its rank.
    let members = owner.members(one).await.unwrap();
    let role = |seed: u8| members.iter().find(|m| m.user == pk(seed)).map(|m| m.perms);
    assert_eq!(role(OWNER), Some(perms::OWNER | perms::USER));
    assert_eq!(role(MODERATOR), Some(perms::MODERATOR | perms::USER));
    assert_eq!(role(MEMBER), Some(perms::USER));
    assert_eq!(role(LEAVER), None);
    assert_eq!(role(BANNED), None, "GET_MEMBERS lists no banned member");
    let mut banned = session(d.addr, BANNED).await;
    let err = banned.send_message(one, 999, b"x").await.unwrap_err();
    assert_eq!(err.server_text(), Some("not a member or banned"));

    // Messages: every one the member sent but the deleted one, then the system messages.
    let all = owner.sync(one, 0).await.unwrap();
    let sent: Vec<i64> = all
        .iter()
        .filter(|m| m.author == pk(MEMBER))
        .map(|m| m.guid)
        .collect();
    let want: Vec<i64> = (1..=MESSAGES).filter(|g| *g != DELETED).collect();
    assert_eq!(sent, want);
    assert!(all
        .iter()
        .filter(|m| m.author == pk(MEMBER))
        .all(|m| m.blob == body(m.guid)));
    let events: Vec<SystemEvent> = all
        .iter()
        .filter(|m| m.author == pk(NODE))
        .map(|m| SystemEvent::decode(&m.blob).expect("system message"))
        .collect();
    assert!(events
        .iter()
        .any(|e| matches!(e, SystemEvent::MessageDeleted { guid: DELETED, .. })));
    assert!(events
        .iter()
        .any(|e| matches!(e, SystemEvent::UserBanned { target, .. } if *target == pk(BANNED))));
    assert!(events
        .iter()
        .any(|e| matches!(e, SystemEvent::UserLeft { user, .. } if *user == pk(LEAVER))));
    let two_msgs = owner.sync(two, 0).await.unwrap();
    assert!(two_msgs.iter().any(|m| m.blob == b"in the second chat"));

    // Member info, and the pending invite pushed at the invitee's AUTH.
    let infos = owner.members_info(one, 0).await.unwrap();
    assert!(infos
        .iter()
        .any(|i| i.user == pk(MEMBER) && i.info == b"member card" && i.timestamp == 1_000));
    let mut invitee = session(d.addr, INVITEE).await;
    let mut invited = None;
    while let Some(p) = invitee.next_push(Duration::from_secs(5)).await {
        if let Push::Invite(i) = p {
            invited = Some(i);
            break;
        }
    }
    let invite = invited.expect("the pending invite is pushed at AUTH");
    assert_eq!(
        (invite.chat_id, invite.from, invite.data.as_slice()),
        (two, pk(OWNER), &b"invite key material"[..])
    );
    assert_eq!(invite.name, b"fixture two");
    assert_eq!(
        invite.avatar.as_deref(),
        Some(&[0x89, b'P', b'N', b'G', 0, 1][..])
    );
    drop((owner, banned, invitee));
    drop(d);
    // The original file is kept aside, unchanged.
    assert_eq!(
        std::fs::read(data.join("mediator.db.v4-backup")).unwrap(),
        std::fs::read(fixture_dir().join("mediator.db")).unwrap()
    );
}
