//! An existing Go mediator's `mediator.key` and `mediator.db` are taken over: the database is
//! imported at the first start (the original kept as `mediator.db.go-backup`, byte for
//! byte), its chats and members are served, the key is kept, and a second start changes
//! nothing. The fixture is built here from the Go schema of `mediator-protocol.md` §9.1,
//! including an older users table (`last_perm_change`, no `last_seen`) and an invites table
//! without `sent`.

use ed25519_dalek::SigningKey;
use mediator_client::{connect, Push, Session};
use mediator_tests::Daemon;
use rusqlite::{params, Connection};
use std::time::Duration;

const CHAT: i64 = 4_242_424_242;
const OLD_CHAT: i64 = 77;

fn build_fixture(
    dir: &std::path::Path,
    node: &SigningKey,
    owner: &[u8; 32],
    member: &[u8; 32],
    invitee: &[u8; 32],
) {
    std::fs::create_dir_all(dir).unwrap();
    let mut key = node.to_bytes().to_vec();
    key.extend_from_slice(node.verifying_key().as_bytes());
    std::fs::write(dir.join("mediator.key"), &key).unwrap();
    let c = Connection::open(dir.join("mediator.db")).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE nonces (pubkey BLOB PRIMARY KEY, nonce BLOB NOT NULL, ts INTEGER NOT NULL);
         CREATE TABLE chats (id INTEGER PRIMARY KEY, owner_pubkey BLOB NOT NULL, created_at INTEGER NOT NULL);
         CREATE TABLE invites (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp INTEGER NOT NULL,
            from_pubkey BLOB NOT NULL, to_pubkey BLOB NOT NULL, chat_id INTEGER NOT NULL,
            encrypted_data BLOB NOT NULL, UNIQUE(to_pubkey, chat_id));",
    )
    .unwrap();
    let now = mediator_client::now_secs();
    for (chat, old) in [(CHAT, false), (OLD_CHAT, true)] {
        c.execute(
            "INSERT INTO chats VALUES (?1, ?2, ?3)",
            params![chat, owner, now - 1000],
        )
        .unwrap();
        c.execute_batch(&format!(
            "CREATE TABLE \"settings-{chat}\" (name TEXT NOT NULL CHECK(length(name) <= 25),
                description TEXT NOT NULL CHECK(length(description) <= 200), avatar BLOB,
                perms_flags INTEGER NOT NULL, created_at INTEGER NOT NULL, extra TEXT);"
        ))
        .unwrap();
        if old {
            c.execute_batch(&format!(
                "CREATE TABLE \"users-{chat}\" (pubkey BLOB PRIMARY KEY, text_rank TEXT, perms_flags INTEGER NOT NULL,
                    accepted_at INTEGER NOT NULL, last_perm_change INTEGER NOT NULL, banned INTEGER NOT NULL DEFAULT 0, info BLOB);
                 CREATE TABLE \"messages-{chat}\" (id INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL,
                    guid INTEGER NOT NULL, author BLOB NOT NULL);"
            ))
            .unwrap();
        } else {
            c.execute_batch(&format!(
                "CREATE TABLE \"users-{chat}\" (pubkey BLOB PRIMARY KEY, text_rank TEXT, perms_flags INTEGER NOT NULL,
                    accepted_at INTEGER NOT NULL, changed_at INTEGER NOT NULL, banned INTEGER NOT NULL DEFAULT 0,
                    info BLOB, last_seen INTEGER NOT NULL DEFAULT 0);
                 CREATE TABLE \"messages-{chat}\" (id INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL,
                    guid INTEGER NOT NULL UNIQUE, author BLOB NOT NULL);"
            ))
            .unwrap();
        }
        c.execute(
            &format!(
                "INSERT INTO \"settings-{chat}\" VALUES (?1, 'from go', X'0102', 0, ?2, NULL)"
            ),
            params![if old { "old chat" } else { "go chat" }, now - 1000],
        )
        .unwrap();
        c.execute(
            &format!("INSERT INTO \"users-{chat}\" (pubkey, text_rank, perms_flags, accepted_at, {}, banned, info) VALUES (?1, '', 144, ?2, 0, 0, NULL)",
                if old { "last_perm_change" } else { "changed_at" }),
            params![owner, now - 1000],
        )
        .unwrap();
        c.execute(
            &format!("INSERT INTO \"users-{chat}\" (pubkey, text_rank, perms_flags, accepted_at, {}, banned, info) VALUES (?1, '', 32, ?2, 5, 0, X'aa')",
                if old { "last_perm_change" } else { "changed_at" }),
            params![member, now - 900],
        )
        .unwrap();
        for i in 1..=3i64 {
            c.execute(
                &format!("INSERT INTO \"messages-{chat}\" (ts, guid, author) VALUES (?1, ?2, ?3)"),
                params![now - 500 + i, 100 + i, owner],
            )
            .unwrap();
        }
    }
    c.execute(
        "INSERT INTO invites (timestamp, from_pubkey, to_pubkey, chat_id, encrypted_data) VALUES (?1, ?2, ?3, ?4, X'beef')",
        params![now - 10, owner, invitee, CHAT],
    )
    .unwrap();
    c.execute(
        "INSERT INTO nonces VALUES (?1, X'00', ?2)",
        params![owner, now],
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_database_opens_and_is_served() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let node = mediator_client::random_key();
    let (owner, member, invitee) = (
        mediator_client::random_key(),
        mediator_client::random_key(),
        mediator_client::random_key(),
    );
    let (po, pm, pi) = (
        owner.verifying_key().to_bytes(),
        member.verifying_key().to_bytes(),
        invitee.verifying_key().to_bytes(),
    );
    build_fixture(&dir, &node, &po, &pm, &pi);
    let key_file = std::fs::read(dir.join("mediator.key")).unwrap();
    let original = std::fs::read(dir.join("mediator.db")).unwrap();

    let d = Daemon::start_in(&dir, &[]);
    assert_eq!(d.key, node.verifying_key().to_bytes(), "the Go key is used");
    assert_eq!(std::fs::read(dir.join("mediator.key")).unwrap(), key_file);

    let conn = connect(d.addr).await.unwrap();
    let mut m = Session::open(&conn).await.unwrap();
    m.auth(&member).await.unwrap();
    let mut chats = m.user_chats().await.unwrap();
    chats.sort_unstable();
    assert_eq!(chats, vec![OLD_CHAT, CHAT]);
    for chat in [CHAT, OLD_CHAT] {
        let members = m.members(chat).await.unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!((members[0].user, members[0].perms), (po, 0x90));
        assert_eq!(
            (members[1].user, members[1].perms, members[1].last_seen),
            (pm, 0x20, 0)
        );
        let infos = m.members_info(chat, 0).await.unwrap();
        assert_eq!(infos[1].info, vec![0xaa]);
        // The Go server's bodies lived in its cache; the rows stay, sync skips them.
        assert_eq!(m.subscribe(chat).await.unwrap(), 3);
        assert!(m.sync(chat, 0).await.unwrap().is_empty());
        // New messages continue the same id sequence.
        let (_, id) = m.send_message(chat, 500, b"after migration").await.unwrap();
        assert_eq!(id, 4);
        let h = m.sync(chat, 0).await.unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(
            (h[0].id, h[0].blob.as_slice()),
            (4, &b"after migration"[..])
        );
    }
    // An old users table gained last_seen: leaving the session records it.
    drop(m);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The pending Go invite is pushed on AUTH, with the Go settings.
    let mut i = Session::open(&conn).await.unwrap();
    i.auth(&invitee).await.unwrap();
    match i
        .next_push(Duration::from_secs(5))
        .await
        .expect("pending invite")
    {
        Push::Invite(inv) => {
            assert_eq!(
                (inv.chat_id, inv.from, inv.data.as_slice()),
                (CHAT, po, &[0xbe, 0xef][..])
            );
            assert_eq!(inv.name, b"go chat");
            assert_eq!(inv.avatar, Some(vec![1, 2]));
            i.invite_response(inv.invite_id, true).await.unwrap();
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(i.subscribe(CHAT).await.unwrap(), 5, "USER_ADDED got id 5");

    // The owner's rights still hold on the migrated chat.
    let mut o = Session::open(&conn).await.unwrap();
    o.auth(&owner).await.unwrap();
    o.update_chat_info(OLD_CHAT, Some("renamed old"), None, None)
        .await
        .unwrap();
    assert_eq!(o.delete_chat(OLD_CHAT).await.unwrap(), vec![1]);
    let members = o.members(CHAT).await.unwrap();
    assert!(
        members.iter().any(|x| x.user == pm && x.last_seen > 0),
        "last_seen recorded"
    );
    drop(o);
    drop(i);
    drop(conn);
    drop(d);
    let version = || -> i64 {
        Connection::open(dir.join("mediator.db"))
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(version(), 7);
    let backup = dir.join("mediator.db.go-backup");
    assert_eq!(
        std::fs::read(&backup).unwrap(),
        original,
        "the Go file is kept as it was"
    );

    // A second start imports nothing and serves the same chats.
    let d = Daemon::start_in(&dir, &[]);
    let conn = connect(d.addr).await.unwrap();
    let mut m = Session::open(&conn).await.unwrap();
    m.auth(&member).await.unwrap();
    assert_eq!(m.user_chats().await.unwrap(), vec![CHAT]);
    let h = m.sync(CHAT, 0).await.unwrap();
    assert_eq!(h.last().map(|x| x.id), Some(5));
    drop(m);
    drop(conn);
    drop(d);
    assert_eq!(version(), 7);
    assert_eq!(std::fs::read(&backup).unwrap(), original);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("backup") || n.contains("import"))
        .collect();
    assert_eq!(names, vec!["mediator.db.go-backup".to_string()]);
}
