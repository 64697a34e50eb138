//! `mediatord migrate --from sqlite:PATH --to postgres://…` against a real PostgreSQL server
//! (#18). The daemon fills its SQLite store through the protocol and the control socket
//! (chats, members with info, roles and a ban, messages and a deleted one, an invite, nonces,
//! a block and the audit log); the copy is then read back table by table and compared with
//! the source value by value, by this test's own queries. More traffic and a rerun replace
//! the copy. A source value the copy could not carry unchanged fails the whole copy and
//! leaves the previous one as it was; `--check` copies and rolls back; a database a daemon
//! has served from is copied over only with `--replace`; another program's tables are not
//! touched.

use mediator_client::{connect, random_key, Session};
use mediator_tests::{bin_dir, Daemon, Postgres};
use std::path::Path;
use std::process::{Command, Output};
use tokio_postgres::NoTls;

/// A value as both sides hold it (text and bytes compare as bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
enum V {
    Null,
    Int(i64),
    Bytes(Vec<u8>),
}

/// Each table: the SQLite select list, the PostgreSQL one, the order, and the kinds of the
/// columns (`i` integer, `b` bytes, `t` text).
const TABLES: &[(&str, &str, &str, &str, &str)] = &[
    ("chats", "id, owner, created_at, last_message_id, message_count, message_bytes",
     "id, owner, created_at, last_message_id, message_count, message_bytes", "id", "ibiiii"),
    ("chat_settings", "chat_id, name, description, avatar, perms_flags, extra",
     "chat_id, name, description, avatar, perms_flags, extra", "chat_id", "ibbbib"),
    ("members", "rowid, chat_id, pubkey, text_rank, perms_flags, accepted_at, changed_at, banned, ban_rank, info, last_seen",
     "seq, chat_id, pubkey, text_rank, perms_flags, accepted_at, changed_at, banned, ban_rank, info, last_seen", "1", "iibbiiiiibi"),
    ("messages", "seq, chat_id, id, guid, ts, author, body",
     "seq, chat_id, id, guid, ts, author, body", "seq", "iiiiibb"),
    ("invites", "id, timestamp, from_pubkey, to_pubkey, chat_id, encrypted_data, sent",
     "id, timestamp, from_pubkey, to_pubkey, chat_id, encrypted_data, sent", "id", "iibbibi"),
    ("nonces", "pubkey, nonce, ts", "pubkey, nonce, ts", "1, 2", "bbi"),
    ("audit", "id, ts, uid, user, action, target, result",
     "id, ts, uid, \"user\", action, target, result", "id", "iiitttt"),
    ("blocks", "kind, value, until, reason, created_at",
     "kind, value, until, reason, created_at", "1, 2", "ttiti"),
];

type Dump = Vec<(&'static str, Vec<Vec<V>>)>;

fn sqlite_dump(db: &Path) -> Dump {
    let c = rusqlite::Connection::open(db).unwrap();
    TABLES
        .iter()
        .map(|(t, cols, _, order, kinds)| {
            let mut st = c
                .prepare(&format!("SELECT {cols} FROM {t} ORDER BY {order}"))
                .unwrap();
            let rows = st
                .query_map([], |r| {
                    Ok((0..kinds.len())
                        .map(|i| match r.get_ref(i).unwrap() {
                            rusqlite::types::ValueRef::Null => V::Null,
                            rusqlite::types::ValueRef::Integer(n) => V::Int(n),
                            rusqlite::types::ValueRef::Text(b)
                            | rusqlite::types::ValueRef::Blob(b) => V::Bytes(b.to_vec()),
                            rusqlite::types::ValueRef::Real(_) => panic!("a real in {t}"),
                        })
                        .collect())
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            (*t, rows)
        })
        .collect()
}

async fn pg_dump(url: &str) -> Dump {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    let mut dump = Vec::new();
    for (t, _, cols, order, kinds) in TABLES {
        let rows = client
            .query(&format!("SELECT {cols} FROM {t} ORDER BY {order}"), &[])
            .await
            .unwrap();
        let rows = rows
            .iter()
            .map(|r| {
                kinds
                    .bytes()
                    .enumerate()
                    .map(|(i, k)| match k {
                        b'i' => r.get::<_, Option<i64>>(i).map_or(V::Null, V::Int),
                        b'b' => r.get::<_, Option<Vec<u8>>>(i).map_or(V::Null, V::Bytes),
                        _ => r
                            .get::<_, Option<String>>(i)
                            .map_or(V::Null, |s| V::Bytes(s.into_bytes())),
                    })
                    .collect()
            })
            .collect();
        dump.push((*t, rows));
    }
    dump
}

fn migrate(db: &Path, args: &[&str]) -> Output {
    Command::new(bin_dir().join("mediatord"))
        .arg("migrate")
        .arg("--from")
        .arg(format!("sqlite:{}", db.display()))
        .args(args)
        .output()
        .expect("running mediatord migrate")
}

fn ok(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn refused(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn login(d: &Daemon, key: &ed25519_dalek::SigningKey) -> Session {
    let conn = connect(d.addr).await.unwrap();
    let mut s = Session::open(&conn).await.unwrap();
    std::mem::forget(conn);
    s.auth(key).await.unwrap();
    s
}

/// Traffic that writes every table; `round` makes each round's rows its own.
async fn traffic(d: &Daemon, round: i64) {
    let (ko, kb, kc, kx) = (random_key(), random_key(), random_key(), random_key());
    let mut owner = login(d, &ko).await;
    let chat = owner
        .create_chat(&format!("chat {round}"), "a description", Some(&[1, 2, 3]))
        .await
        .unwrap();
    let mut b = login(d, &kb).await;
    let _c = login(d, &kc).await;
    let _x = login(d, &kx).await;
    owner
        .add_user(chat, kb.verifying_key().as_bytes())
        .await
        .unwrap();
    owner
        .add_user(chat, kx.verifying_key().as_bytes())
        .await
        .unwrap();
    owner
        .ban_user(chat, kx.verifying_key().as_bytes())
        .await
        .unwrap();
    owner
        .change_member_status(chat, kb.verifying_key().as_bytes(), 0x20)
        .await
        .unwrap();
    owner
        .send_invite(chat, kc.verifying_key().as_bytes(), b"invite data")
        .await
        .unwrap();
    b.update_member_info(chat, 1_700_000_000 + round, b"b's info")
        .await
        .unwrap();
    for i in 0..30 {
        let body = vec![(i + round) as u8; 100 + i as usize * 37];
        b.send_message(chat, round * 1000 + i, &body).await.unwrap();
    }
    owner.delete_message(chat, round * 1000 + 5).await.unwrap();
    let key = hex::encode(kx.verifying_key().as_bytes());
    d.ctl_json(&["keys", "block", &key, "--reason", &format!("round {round}")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_store_is_copied_into_postgres_whole_and_can_be_copied_again() {
    let pg = Postgres::start();
    let url = pg.create_database("mediator");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let db = dir.join("mediator.db");

    let mut d = Daemon::start_in(&dir, &[]);
    traffic(&d, 1).await;
    // Refused while the daemon holds the data directory.
    let e = refused(&migrate(&db, &["--to", &url]));
    assert!(e.contains("stop it first"), "{e}");
    d.signal_and_wait(libc::SIGTERM);
    // Nonces live in the daemon's memory; the table keeps what an imported Go store held.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "INSERT INTO nonces (pubkey, nonce, ts) VALUES (x'0101', x'0202', 5)",
            [],
        )
        .unwrap();

    // --check copies, checks and rolls back.
    let out = ok(&migrate(&db, &["--to", &url, "--check"]));
    assert!(out.contains("would copy"), "{out}");
    assert_eq!(
        pg.psql("mediator", "SELECT to_regclass('mediatord_schema')")
            .unwrap(),
        ""
    );

    let out = ok(&migrate(&db, &["--to", &url]));
    assert!(out.contains("every table's row count matches"), "{out}");
    let source = sqlite_dump(&db);
    for (t, rows) in &source {
        assert!(!rows.is_empty(), "the traffic wrote nothing into {t}");
    }
    assert_eq!(pg_dump(&url).await, source);
    // Ids continue after the copied ones.
    let next = pg
        .psql(
            "mediator",
            "SELECT nextval(pg_get_serial_sequence('messages', 'seq'))",
        )
        .unwrap();
    let last = pg
        .psql("mediator", "SELECT max(seq) FROM messages")
        .unwrap();
    assert_eq!(
        next.parse::<i64>().unwrap(),
        last.parse::<i64>().unwrap() + 1
    );

    // More traffic, and a rerun replaces the copy.
    let mut d = Daemon::start_in(&dir, &[]);
    traffic(&d, 2).await;
    d.signal_and_wait(libc::SIGTERM);
    let out = ok(&migrate(&db, &["--to", &url]));
    assert!(out.contains("replacing the previous copy"), "{out}");
    let source = sqlite_dump(&db);
    assert_eq!(pg_dump(&url).await, source);

    // A value that would have to change fails the copy and leaves the previous one.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute("UPDATE members SET info = 42 WHERE rowid = 2", [])
        .unwrap();
    let e = refused(&migrate(&db, &["--to", &url]));
    assert!(
        e.contains(
            "members.info, row 2 of the source: an integer where text or a blob is expected"
        ),
        "{e}"
    );
    assert_eq!(pg_dump(&url).await, source);
    c.execute("UPDATE members SET info = NULL WHERE rowid = 2", [])
        .unwrap();
    drop(c);

    // A database a daemon served from is replaced only when asked.
    pg.psql("mediator", "UPDATE mediatord_schema SET state = 'serving'")
        .unwrap();
    let e = refused(&migrate(&db, &["--to", &url]));
    assert!(e.contains("pass --replace"), "{e}");
    ok(&migrate(&db, &["--to", &url, "--replace"]));
    assert_eq!(pg_dump(&url).await, sqlite_dump(&db));
    assert_eq!(
        pg.psql("mediator", "SELECT version, state FROM mediatord_schema")
            .unwrap(),
        "7|copied"
    );

    // Another program's database is left alone.
    let other = pg.create_database("other");
    pg.psql("other", "CREATE TABLE chats (x INT)").unwrap();
    let e = refused(&migrate(&db, &["--to", &other]));
    assert!(e.contains("not a mediatord store"), "{e}");
    assert_eq!(
        pg.psql("other", "SELECT to_regclass('messages')").unwrap(),
        ""
    );
}
