//! The one-time import of a per-chat database, interrupted: a daemon SIGKILLed half way
//! through leaves the original file exactly as it was (no backup made, nothing renamed),
//! and the next start imports everything; after an import the daemon restarts in place;
//! `mediatord migrate` reports, imports and upgrades with the daemon stopped.
//!
//! The database is the v4 fixture grown to [`EXTRA_CHATS`] more chats, each made with the
//! fixture's own per-chat table definitions (so exactly as the v4 release made them), with
//! the fixture's owner and a member in each and [`MESSAGES_PER_CHAT`] messages.

use ed25519_dalek::SigningKey;
use mediator_client::{connect, Session};
use mediator_tests::{bin_dir, workspace_root, Daemon};
use rusqlite::{params, Connection};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Chats added to the fixture: enough that the import takes many progress steps.
const EXTRA_CHATS: i64 = 1_500;
const MESSAGES_PER_CHAT: i64 = 5;
/// Seeds of the fixture's keys (see `fixture_v4.rs`).
const OWNER: u8 = 2;
const MEMBER: u8 = 3;
/// The first added chat's id (the fixture's two ids are far larger; the counts below
/// name the range).
const FIRST: i64 = 1_000_000;

fn pk(seed: u8) -> [u8; 32] {
    SigningKey::from_bytes(&[seed; 32])
        .verifying_key()
        .to_bytes()
}

/// The fixture with [`EXTRA_CHATS`] more chats, in `dir`.
fn grow_fixture(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let fixture = workspace_root().join("tests/fixtures/v4");
    for f in ["mediator.db", "mediator.key"] {
        std::fs::copy(fixture.join(f), dir.join(f)).unwrap();
    }
    let mut c = Connection::open(dir.join("mediator.db")).unwrap();
    let (model,): (i64,) = c
        .query_row("SELECT id FROM chats ORDER BY id LIMIT 1", [], |r| {
            Ok((r.get(0)?,))
        })
        .unwrap();
    let ddl: Vec<String> = c
        .prepare("SELECT sql FROM sqlite_master WHERE tbl_name LIKE ?1 AND sql IS NOT NULL")
        .unwrap()
        .query_map([format!("%-{model}")], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(ddl.len() >= 3, "the fixture's per-chat tables: {ddl:?}");
    let tx = c.transaction().unwrap();
    let (owner, member) = (pk(OWNER), pk(MEMBER));
    for n in 0..EXTRA_CHATS {
        let id = FIRST + n;
        for sql in &ddl {
            tx.execute_batch(&sql.replace(&model.to_string(), &id.to_string()))
                .unwrap();
        }
        tx.execute(
            "INSERT INTO chats (id, owner_pubkey, created_at) VALUES (?1, ?2, 1000)",
            params![id, owner],
        )
        .unwrap();
        tx.execute(
            &format!("INSERT INTO \"settings-{id}\" (name, description, avatar, perms_flags, created_at) VALUES (?1, 'd', NULL, 0, 1000)"),
            params![format!("chat {n}")],
        )
        .unwrap();
        for (key, perms) in [(owner, 0x90), (member, 0x10)] {
            tx.execute(
                &format!("INSERT INTO \"users-{id}\" (pubkey, text_rank, perms_flags, accepted_at, changed_at, banned) VALUES (?1, '', ?2, 1000, 0, 0)"),
                params![key, perms],
            )
            .unwrap();
        }
        for m in 1..=MESSAGES_PER_CHAT {
            tx.execute(
                &format!("INSERT INTO \"messages-{id}\" (ts, guid, author, body) VALUES (1000, ?1, ?2, ?3)"),
                params![m, member, format!("{id}/{m}").into_bytes()],
            )
            .unwrap();
        }
    }
    tx.commit().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_killed_half_way_leaves_the_original_and_completes_next_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    grow_fixture(&dir);
    let original = std::fs::read(dir.join("mediator.db")).unwrap();

    // First start: killed at the first progress line of the import.
    let mut child = Command::new(bin_dir().join("mediatord"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["--quic-listen", "127.0.0.1:0", "--log", "info"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    for line in stderr.lines().map_while(Result::ok) {
        if line.contains("importing the database") {
            child.kill().unwrap();
            break;
        }
        seen.push(line);
        assert!(Instant::now() < deadline, "no progress line: {seen:#?}");
    }
    child.wait().unwrap();
    assert_eq!(
        std::fs::read(dir.join("mediator.db")).unwrap(),
        original,
        "the original is untouched"
    );
    assert!(
        !dir.join("mediator.db.v4-backup").exists(),
        "the kill landed after the import finished: make the database larger"
    );

    // Second start: the import runs again from the beginning and completes.
    let d = Daemon::start_in(&dir, &[]);
    let conn = connect(d.addr).await.unwrap();
    let mut m = Session::open(&conn).await.unwrap();
    m.auth(&SigningKey::from_bytes(&[MEMBER; 32]))
        .await
        .unwrap();
    let last = FIRST + EXTRA_CHATS - 1;
    let h = m.sync(last, 0).await.unwrap();
    let bodies: Vec<Vec<u8>> = h.iter().map(|x| x.blob.clone()).collect();
    let want: Vec<Vec<u8>> = (1..=MESSAGES_PER_CHAT)
        .map(|i| format!("{last}/{i}").into_bytes())
        .collect();
    assert_eq!(bodies, want);
    let (_, id) = m.send_message(last, 77, b"after the import").await.unwrap();
    assert_eq!(id, MESSAGES_PER_CHAT + 1);
    drop(m);
    drop(conn);
    drop(d);
    assert_eq!(
        std::fs::read(dir.join("mediator.db.v4-backup")).unwrap(),
        original
    );
    assert!(!dir.join("mediator.db.import").exists());
    let c = Connection::open(dir.join("mediator.db")).unwrap();
    let count = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("PRAGMA user_version"), 7);
    assert_eq!(count("SELECT COUNT(*) FROM chats"), EXTRA_CHATS + 2);
    assert_eq!(
        count("SELECT COUNT(*) FROM members WHERE chat_id BETWEEN 1000000 AND 1001499"),
        2 * EXTRA_CHATS
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM messages WHERE chat_id BETWEEN 1000000 AND 1001499"),
        MESSAGES_PER_CHAT * EXTRA_CHATS + 1
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'users-%'"),
        0
    );
}

/// After an import the daemon starts over in place (exec: same process, so the memory the
/// legacy schema took is given back) and then serves from the imported file.
#[test]
fn import_restarts_the_daemon_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let fixture = workspace_root().join("tests/fixtures/v4");
    for f in ["mediator.db", "mediator.key"] {
        std::fs::copy(fixture.join(f), dir.join(f)).unwrap();
    }
    let mut child = Command::new(bin_dir().join("mediatord"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["--quic-listen", "127.0.0.1:0", "--log", "info"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let restarting = line.contains("restarting in place");
        seen.push(line);
        if restarting {
            break;
        }
    }
    if !seen
        .last()
        .is_some_and(|l| l.contains("restarting in place"))
    {
        child.kill().unwrap();
        panic!("no restart: {seen:#?}");
    }
    // The same child process, now the fresh program, comes up and listens.
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let listening = stdout
        .lines()
        .map_while(Result::ok)
        .any(|l| l.starts_with("listening quic "));
    assert!(listening, "the restarted daemon did not listen");
    assert!(child.try_wait().unwrap().is_none(), "the daemon exited");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(dir.join("mediator.db.v4-backup").exists());
}

/// `mediatord migrate` with the daemon stopped: `--check` reports and changes nothing, then
/// a version-4 file is imported, a version-5 file (the first shared-table layout) upgraded in
/// place, and a current file left alone.
#[test]
fn migrate_reports_imports_and_upgrades() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("mediator.db");
    std::fs::copy(workspace_root().join("tests/fixtures/v4/mediator.db"), &db).unwrap();
    let migrate = |args: &[&str]| -> String {
        let out = Command::new(bin_dir().join("mediatord"))
            .arg("migrate")
            .args(args)
            .arg(&db)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "migrate {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let version = || -> i64 {
        Connection::open(&db)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    };
    let original = std::fs::read(&db).unwrap();

    let report = migrate(&["--check"]);
    assert!(report.contains("per-chat layout, version 4"), "{report}");
    assert!(
        report.contains("would import into schema version 7"),
        "{report}"
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        original,
        "--check changes nothing"
    );

    migrate(&[]);
    assert_eq!(version(), 7);
    assert_eq!(
        std::fs::read(dir.join("mediator.db.v4-backup")).unwrap(),
        original
    );

    // Back to what the first shared-table release wrote: none of the tables, columns,
    // index and triggers of versions 6 and 7, no auto-vacuum, version 5.
    {
        let c = Connection::open(&db).unwrap();
        c.execute_batch(
            "DROP TABLE audit; DROP TABLE blocks;
             DROP TRIGGER messages_uncounted;
             DROP TRIGGER messages_recounted; DROP INDEX messages_ts;
             ALTER TABLE chats DROP COLUMN message_count;
             ALTER TABLE chats DROP COLUMN message_bytes;
             PRAGMA user_version = 5; PRAGMA auto_vacuum = NONE; VACUUM;",
        )
        .unwrap();
    }
    let auto_vacuum = || -> i64 {
        Connection::open(&db)
            .unwrap()
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(auto_vacuum(), 0);
    let report = migrate(&["--check"]);
    assert!(
        report.contains("would be upgraded in place to 7 (adds the audit log"),
        "{report}"
    );
    assert_eq!(version(), 5);
    let report = migrate(&[]);
    assert!(
        report.contains("upgraded from schema version 5 to 7"),
        "{report}"
    );
    assert_eq!(auto_vacuum(), 2, "rewritten for incremental vacuum");
    let (counted, stored): (i64, i64) = Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT (SELECT SUM(message_count) FROM chats), (SELECT COUNT(*) FROM messages)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        counted, stored,
        "the counters start from the rows already there"
    );
    assert_eq!(version(), 7);
    let audit: i64 = Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'audit'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(audit, 1);
    let chats: i64 = Connection::open(&db)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM chats", [], |r| r.get(0))
        .unwrap();
    assert_eq!(chats, 2, "the fixture's chats survive the upgrade");

    let report = migrate(&["--check"]);
    assert!(report.contains("up to date"), "{report}");
}
