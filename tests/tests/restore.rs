//! The backup and restore drill of the operator guide, end to end: acknowledged messages,
//! `mediatorctl backup - --include-key` streamed to a file while the daemon runs, the
//! machine lost, `mediatord restore` into a new data directory, and the restored daemon
//! serving every message acknowledged before the backup under the same key. Restoring
//! beside a running daemon is refused; a plain database backup keeps the key in place.

use ed25519_dalek::SigningKey;
use mediator_client::{connect, Session};
use mediator_tests::{bin_dir, Daemon};
use std::path::Path;
use std::process::{Command, Output};

fn restore(dir: &Path, file: &Path) -> Output {
    Command::new(bin_dir().join("mediatord"))
        .arg("--data-dir")
        .arg(dir)
        .arg("restore")
        .arg(file)
        .output()
        .expect("running mediatord restore")
}

async fn login(d: &Daemon, key: &SigningKey) -> Session {
    let conn = connect(d.addr).await.unwrap();
    let mut s = Session::open(&conn).await.unwrap();
    std::mem::forget(conn);
    s.auth(key).await.unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_backup_restores_every_acknowledged_message_and_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut d = Daemon::start_in(&dir, &[]);
    let owner = mediator_client::random_key();
    let mut s = login(&d, &owner).await;
    let chat = s.create_chat("drill", "", None).await.unwrap();
    for i in 0..20 {
        s.send_message(chat, 1_000 + i, format!("before {i}").as_bytes())
            .await
            .unwrap();
    }
    let before = s.sync(chat, 0).await.unwrap();

    // Streamed while the daemon runs: the archive with the key, and the plain database.
    let out = d.ctl(&["backup", "-", "--include-key"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let archive = tmp.path().join("backup.tar");
    std::fs::write(&archive, &out.stdout).unwrap();
    let out = d.ctl(&["backup", "-"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.starts_with(b"SQLite format 3\0"));
    let plain = tmp.path().join("backup.db");
    std::fs::write(&plain, &out.stdout).unwrap();
    let out = d.ctl(&["backup", "/nonexistent-dir/x.db", "--include-key"]);
    assert!(!out.status.success(), "--include-key needs '-'");

    // After the backup: lost by a restore, as expected of a backup.
    s.send_message(chat, 5_000, b"after").await.unwrap();
    // A restore beside the running daemon is refused and changes nothing.
    let out = restore(&dir, &archive);
    assert!(!out.status.success());
    drop(s);
    let key = d.key;
    d.signal_and_wait(libc::SIGTERM);

    // The machine is lost: restore into a new data directory.
    let fresh = tmp.path().join("new");
    let out = restore(&fresh, &archive);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("restored database and key"), "{said}");
    let d = Daemon::start_in(&fresh, &[]);
    assert_eq!(d.key, key, "the same mediator identity");
    let mut s = login(&d, &owner).await;
    let after = s.sync(chat, 0).await.unwrap();
    assert_eq!(
        after, before,
        "every message acknowledged before the backup, as it was"
    );
    drop(s);
    drop(d);

    // A plain database backup into the old directory: the key stays, the old files are kept.
    let out = restore(&dir, &plain);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("the key stays") && said.contains("pre-restore-"),
        "{said}"
    );
    let d = Daemon::start_in(&dir, &[]);
    assert_eq!(d.key, key);
    let mut s = login(&d, &owner).await;
    assert_eq!(s.sync(chat, 0).await.unwrap(), before);
    let log = d.ctl(&["--json", "audit", "list"]);
    let log: serde_json::Value = serde_json::from_slice(&log.stdout).unwrap();
    let backups = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "backup")
        .count();
    // The restored file is the second copy, which holds the first copy's audit entry (each
    // entry is written once its copy is made).
    assert_eq!(backups, 1, "{log}");
}

/// `[backup]`: a copy every interval into the directory, the newest `keep` kept, each one a
/// sound database that `mediatord restore` accepts.
#[test]
fn scheduled_backups_are_written_and_rotated() {
    let tmp = tempfile::tempdir().unwrap();
    let backups = tmp.path().join("backups");
    let config = tmp.path().join("mediatord.toml");
    std::fs::write(
        &config,
        format!(
            "[backup]\ndir = {:?}\ninterval_secs = 1\nkeep = 2\n",
            backups.display().to_string()
        ),
    )
    .unwrap();
    let dir = tmp.path().join("data");
    let d = Daemon::start_in(&dir, &["--config", config.to_str().unwrap()]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let names = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&backups)
            .map(|r| {
                r.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .filter(|n| n.ends_with(".db"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    // Wait for a fourth backup to have been written: two rotated away by then.
    let first = loop {
        let n = names();
        if !n.is_empty() {
            break n[0].clone();
        }
        assert!(std::time::Instant::now() < deadline, "no backup written");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    loop {
        let n = names();
        if !n.contains(&first) && n.len() == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no rotation: {n:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(d);
    let left = names();
    assert!(left.len() <= 3, "{left:?}");
    let newest = backups.join(left.last().unwrap());
    let out = restore(&tmp.path().join("check"), &newest);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
