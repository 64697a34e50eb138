//! Permission matrix: every moderation command × every role of actor and target, against the
//! real daemon, including each escalation of `mediator-protocol.md` §11 (S1–S3, S8, S9, B4).
//!
//! Roles are set by the owner with CHANGE_MEMBER_STATUS between cases. The expected outcome of
//! each case is written out from the spec's rules (owner > admin > moderator > user; only the
//! owner touches owner/admin; a caller must outrank its target), not taken from the server.

use mediator_client::Session;
use mediator_tests::{daemon_on_postgres, user, Daemon, Postgres};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Owner,
    Admin,
    Moderator,
    User,
    ReadOnly,
    Banned,
}

impl Role {
    const ALL: [Role; 6] = [
        Role::Owner,
        Role::Admin,
        Role::Moderator,
        Role::User,
        Role::ReadOnly,
        Role::Banned,
    ];
    fn perms(self) -> u8 {
        match self {
            Role::Owner => 0x90,
            Role::Admin => 0x40,
            Role::Moderator => 0x20,
            Role::User => 0x10,
            Role::ReadOnly => 0x08,
            Role::Banned => 0x11,
        }
    }
    /// Moderation rank per §11 S2; a banned member keeps the rank of its other bits (user).
    fn rank(self) -> u8 {
        match self {
            Role::Owner => 4,
            Role::Admin => 3,
            Role::Moderator => 2,
            _ => 1,
        }
    }
    fn moderates(self) -> bool {
        matches!(self, Role::Owner | Role::Admin | Role::Moderator)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Ban,
    Unban,
    SetPerms(u8),
    Invite,
    DeleteOthersMessage,
    UpdateChatInfo,
}

/// The rank of whoever banned a Banned target in the matrix: the room's owner sets roles.
const BANNED_BY: u8 = 4;

/// The spec's answer for `actor` doing `action` to `target` (None = success).
fn expected(actor: Role, target: Role, action: Action) -> Option<&'static str> {
    if actor == Role::Banned {
        return Some("not a member or banned");
    }
    match action {
        Action::Ban => {
            if !actor.moderates() || actor.rank() <= target.rank() {
                return Some("insufficient perms");
            }
            None
        }
        Action::Unban => {
            if !actor.moderates() {
                return Some("insufficient perms");
            }
            if target == Role::Banned && actor.rank() <= target.rank() {
                return Some("insufficient perms");
            }
            // Only an equal or higher rank lifts a ban; here the owner set every ban.
            if target == Role::Banned && actor.rank() < BANNED_BY {
                return Some("insufficient perms");
            }
            None
        }
        Action::SetPerms(p) => {
            if !matches!(actor, Role::Owner | Role::Admin) {
                return Some("insufficient perms");
            }
            if actor != Role::Owner && target == Role::Owner {
                return Some("cannot modify owner permissions");
            }
            if actor != Role::Owner && (target == Role::Admin || p & 0xc0 != 0) {
                return Some("insufficient perms");
            }
            if target == Role::Banned && p & 0x01 == 0 && actor.rank() < BANNED_BY {
                return Some("insufficient perms");
            }
            None
        }
        Action::Invite => {
            if !actor.moderates() {
                return Some("insufficient perms");
            }
            None
        }
        Action::DeleteOthersMessage => {
            if !actor.moderates() {
                return Some("insufficient perms");
            }
            if target != Role::Banned && actor.rank() <= target.rank() {
                return Some("insufficient perms");
            }
            None
        }
        Action::UpdateChatInfo => {
            if !matches!(actor, Role::Owner | Role::Admin) {
                return Some("insufficient perms");
            }
            None
        }
    }
}

struct Room {
    owner: Session,
    owner_key: [u8; 32],
    chat: i64,
}

impl Room {
    async fn set(&mut self, who: &[u8; 32], role: Role) {
        if *who == self.owner_key {
            assert_eq!(role, Role::Owner);
            return;
        }
        self.owner
            .change_member_status(self.chat, who, role.perms())
            .await
            .expect("owner sets role");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderation_matrix() {
    moderation_matrix_on(&Daemon::start()).await;
}

/// The matrix and the escalations on the PostgreSQL store (#18).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_on_postgresql() {
    let pg = Postgres::start();
    moderation_matrix_on(&daemon_on_postgres(&pg, "matrix", "")).await;
    escalations_on(&daemon_on_postgres(&pg, "escalations", "")).await;
}

async fn moderation_matrix_on(d: &Daemon) {
    let (mut owner, ko) = user(d.addr).await;
    let owner_key = ko.verifying_key().to_bytes();
    let chat = owner.create_chat("matrix", "", None).await.unwrap();
    let (mut actor, ka) = user(d.addr).await;
    let (target, kt) = user(d.addr).await;
    let (pa, pt) = (ka.verifying_key().to_bytes(), kt.verifying_key().to_bytes());
    drop(target);
    for k in [&pa, &pt] {
        owner.add_user(chat, k).await.unwrap();
    }
    let mut room = Room {
        owner,
        owner_key,
        chat,
    };
    let actions = [
        Action::Ban,
        Action::Unban,
        Action::SetPerms(0x10),
        Action::SetPerms(0x20),
        Action::SetPerms(0x40),
        Action::SetPerms(0x80),
        Action::Invite,
        Action::DeleteOthersMessage,
        Action::UpdateChatInfo,
    ];
    let mut results: BTreeMap<(Role, Role, Action), Option<String>> = BTreeMap::new();
    let mut mismatches = Vec::new();
    let mut guid = 1_000_000i64;
    for actor_role in Role::ALL {
        if actor_role == Role::Owner {
            continue; // the owner acts in its own loop below
        }
        for target_role in Role::ALL {
            for action in actions {
                // Target Owner is the room's owner; the target otherwise gets the role.
                let target_key = if target_role == Role::Owner {
                    owner_key
                } else {
                    pt
                };
                room.set(&pa, Role::User).await;
                if target_role != Role::Owner {
                    room.set(&pt, target_role).await;
                }
                guid += 1;
                let msg_guid = guid;
                if action == Action::DeleteOthersMessage {
                    // The target's message exists; write it through the owner if needed.
                    let (mut ts, _) = if target_key == owner_key {
                        (None, ())
                    } else {
                        let conn = mediator_client::connect(d.addr).await.unwrap();
                        let mut s = Session::open(&conn).await.unwrap();
                        s.auth(&kt).await.unwrap();
                        room.set(&pt, Role::User).await;
                        s.send_message(chat, msg_guid, b"m").await.unwrap();
                        room.set(&pt, target_role).await;
                        (Some(s), ())
                    };
                    if ts.is_none() {
                        room.owner.send_message(chat, msg_guid, b"m").await.unwrap();
                    }
                    ts.take();
                }
                room.set(&pa, actor_role).await;
                let r = match action {
                    Action::Ban => actor.ban_user(chat, &target_key).await,
                    Action::Unban => actor.add_user(chat, &target_key).await,
                    Action::SetPerms(p) => actor.change_member_status(chat, &target_key, p).await,
                    Action::Invite => {
                        let fresh = mediator_client::random_key().verifying_key().to_bytes();
                        actor.send_invite(chat, &fresh, b"x").await
                    }
                    Action::DeleteOthersMessage => actor.delete_message(chat, msg_guid).await,
                    Action::UpdateChatInfo => {
                        actor.update_chat_info(chat, Some("n"), None, None).await
                    }
                };
                let got = r
                    .err()
                    .map(|e| e.server_text().expect("server error").to_string());
                let want = expected(actor_role, target_role, action);
                if got.as_deref() != want {
                    mismatches.push(format!(
                        "{actor_role:?} -> {target_role:?} {action:?}: got {got:?}, want {want:?}"
                    ));
                }
                results.insert((actor_role, target_role, action), got);
                // Side effects of a refused action: none. Of an accepted ban: target banned.
                let members = room.owner.members(chat).await.unwrap();
                let listed = members
                    .iter()
                    .find(|m| m.user == target_key)
                    .map(|m| m.perms);
                match (action, want) {
                    (Action::Ban, None) => assert_eq!(listed, None, "banned target is not listed"),
                    (_, Some(_)) if target_role != Role::Banned => {
                        assert_eq!(
                            listed,
                            Some(target_role.perms()),
                            "refused {action:?} changed nothing"
                        )
                    }
                    (_, Some(_)) => assert_eq!(listed, None, "refused {action:?} kept the ban"),
                    _ => {}
                }
            }
        }
    }
    // The owner against every other role.
    for target_role in Role::ALL.into_iter().filter(|r| *r != Role::Owner) {
        for action in [
            Action::Ban,
            Action::Unban,
            Action::SetPerms(0x40),
            Action::SetPerms(0x10),
        ] {
            room.set(&pt, target_role).await;
            let r = match action {
                Action::Ban => room.owner.ban_user(chat, &pt).await,
                Action::Unban => room.owner.add_user(chat, &pt).await,
                Action::SetPerms(p) => room.owner.change_member_status(chat, &pt, p).await,
                _ => unreachable!(),
            };
            let got = r.err().map(|e| e.server_text().unwrap().to_string());
            if got.as_deref() != expected(Role::Owner, target_role, action) {
                mismatches.push(format!("Owner -> {target_role:?} {action:?}: got {got:?}"));
            }
        }
    }
    // Self-targeting is refused for everyone.
    room.set(&pa, Role::Admin).await;
    assert_eq!(
        actor.ban_user(chat, &pa).await.unwrap_err().server_text(),
        Some("cannot ban yourself")
    );
    assert_eq!(
        actor
            .change_member_status(chat, &pa, 0x80)
            .await
            .unwrap_err()
            .server_text(),
        Some("cannot modify own permissions")
    );
    assert!(
        mismatches.is_empty(),
        "permission mismatches:\n{}",
        mismatches.join("\n")
    );
    assert!(results.len() > 250, "matrix ran {} cases", results.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalations_of_section_11() {
    escalations_on(&Daemon::start()).await;
}

async fn escalations_on(d: &Daemon) {
    let (mut owner, ko) = user(d.addr).await;
    let po = ko.verifying_key().to_bytes();
    let chat = owner.create_chat("esc", "", None).await.unwrap();
    let (mut m, km) = user(d.addr).await;
    let pm = km.verifying_key().to_bytes();
    let (mut b, kb) = user(d.addr).await;
    let pb = kb.verifying_key().to_bytes();
    owner.add_user(chat, &pm).await.unwrap();
    owner.change_member_status(chat, &pm, 0x20).await.unwrap();

    // S1: a moderator's ADD_USER does not demote the owner.
    m.add_user(chat, &po).await.unwrap();
    let perms_of = |ms: &[mediator_client::MemberRecord], k: &[u8; 32]| {
        ms.iter().find(|x| &x.user == k).map(|x| x.perms)
    };
    assert_eq!(
        perms_of(&owner.members(chat).await.unwrap(), &po),
        Some(0x90)
    );

    // S1/S8: a banned user holding an invite cannot un-ban themselves by accepting it.
    owner.send_invite(chat, &pb, b"k").await.unwrap();
    let invite = match b
        .next_push(std::time::Duration::from_secs(5))
        .await
        .unwrap()
    {
        mediator_client::Push::Invite(i) => i,
        other => panic!("{other:?}"),
    };
    owner.add_user(chat, &pb).await.unwrap();
    owner.ban_user(chat, &pb).await.unwrap();
    assert_eq!(
        b.invite_response(invite.invite_id, true)
            .await
            .unwrap_err()
            .server_text(),
        Some("banned user")
    );
    assert_eq!(perms_of(&owner.members(chat).await.unwrap(), &pb), None);
    assert_eq!(
        b.subscribe(chat).await.unwrap_err().server_text(),
        Some("not a member or banned")
    );
    // S8: no invites to banned users or members.
    assert_eq!(
        owner
            .send_invite(chat, &pb, b"k")
            .await
            .unwrap_err()
            .server_text(),
        Some("user is banned")
    );
    assert_eq!(
        owner
            .send_invite(chat, &pm, b"k")
            .await
            .unwrap_err()
            .server_text(),
        Some("user is already a member")
    );
    // S9: a banned author cannot delete their own message any more.
    owner.add_user(chat, &pb).await.unwrap();
    b.send_message(chat, 77, b"mine").await.unwrap();
    owner.ban_user(chat, &pb).await.unwrap();
    assert_eq!(
        b.delete_message(chat, 77).await.unwrap_err().server_text(),
        Some("not a member or banned")
    );
    // S2: banning a non-member is refused without a system message.
    let stranger = mediator_client::random_key().verifying_key().to_bytes();
    let before = owner.last_message_id(chat).await.unwrap();
    assert_eq!(
        m.ban_user(chat, &stranger).await.unwrap_err().server_text(),
        Some("target user not a member")
    );
    assert_eq!(owner.last_message_id(chat).await.unwrap(), before);
    // B4: a read-only member can subscribe but not send.
    let (mut r, kr) = user(d.addr).await;
    let pr = kr.verifying_key().to_bytes();
    owner.add_user(chat, &pr).await.unwrap();
    owner.change_member_status(chat, &pr, 0x08).await.unwrap();
    r.subscribe(chat).await.unwrap();
    assert_eq!(
        r.send_message(chat, 1, b"x")
            .await
            .unwrap_err()
            .server_text(),
        Some("read-only user")
    );
    owner.send_message(chat, 999, b"to readers").await.unwrap();
    assert!(r
        .wait_message(std::time::Duration::from_secs(5), |x| x.message.guid == 999)
        .await
        .is_some());
    // S7: DELETE_CHAT on an unauthenticated session says the same for any chat id.
    let conn = mediator_client::connect(d.addr).await.unwrap();
    let mut anon = Session::open(&conn).await.unwrap();
    let e1 = anon.delete_chat(chat).await.unwrap_err();
    let e2 = anon.delete_chat(chat ^ 0x5555).await.unwrap_err();
    assert_eq!(e1.server_text(), e2.server_text());
}
