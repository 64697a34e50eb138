//! The database's integrity check (`PRAGMA quick_check`). A small file is checked before the
//! daemon serves and refused if damaged; a larger one would delay every start by seconds per
//! 100 MiB, so it is checked on a connection of its own while the daemon already serves, and
//! the verdict goes to the log and to `mediatorctl health`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Databases up to this size are checked before the daemon serves (about 0.3 s on a small
/// machine with a cold cache); larger ones are checked in the background after start.
pub const QUICK_CHECK_MAX_BYTES: u64 = 32 * 1024 * 1024;

/// What the integrity check found so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    /// The background check is still reading the file.
    Checking,
    Ok,
    /// quick_check's first complaint.
    Damaged(String),
    /// The check itself could not run.
    Failed(String),
}

impl Integrity {
    /// One word or line for the control API: `ok`, `checking`, `damaged: …`, `failed: …`.
    pub fn describe(&self) -> String {
        match self {
            Integrity::Checking => "checking".into(),
            Integrity::Ok => "ok".into(),
            Integrity::Damaged(e) => format!("damaged: {e}"),
            Integrity::Failed(e) => format!("failed: {e}"),
        }
    }
}

/// Runs `PRAGMA quick_check(1)` on `conn`: `Ok` or its first complaint.
pub fn quick_check(conn: &rusqlite::Connection) -> rusqlite::Result<Integrity> {
    let verdict: String = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0))?;
    Ok(if verdict == "ok" {
        Integrity::Ok
    } else {
        Integrity::Damaged(verdict)
    })
}

/// Checks the database at `path` on a thread and connection of its own, recording the verdict
/// in `state` (which should read [`Integrity::Checking`] until then).
pub fn spawn(path: PathBuf, state: Arc<Mutex<Integrity>>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("sqlite-check".into())
        .spawn(move || {
            let started = std::time::Instant::now();
            let verdict = rusqlite::Connection::open_with_flags(
                &path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .and_then(|c| quick_check(&c))
            .unwrap_or_else(|e| Integrity::Failed(e.to_string()));
            match &verdict {
                Integrity::Ok => tracing::info!(
                    secs = started.elapsed().as_secs_f64(),
                    "database integrity check passed"
                ),
                other => tracing::error!(
                    verdict = %other.describe(),
                    "database integrity check failed: restore it from a backup"
                ),
            }
            *state.lock().unwrap_or_else(|p| p.into_inner()) = verdict;
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use std::io::{Seek, SeekFrom, Write};
    use std::time::{Duration, Instant};

    /// A database with enough rows to span many pages, closed.
    fn filled(path: &std::path::Path) {
        let c = rusqlite::Connection::open(path).unwrap();
        crate::store::schema::create(&c).unwrap();
        c.execute_batch("PRAGMA journal_mode=DELETE; BEGIN")
            .unwrap();
        for i in 0..2_000i64 {
            c.execute(
                "INSERT INTO messages (chat_id, id, guid, ts, author, body) VALUES (1, ?1, ?1, 0, X'00', zeroblob(200))",
                [i],
            )
            .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
    }

    fn wait_for_verdict(store: &Store) -> Integrity {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match store.integrity() {
                Integrity::Checking if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                v => return v,
            }
        }
    }

    /// Above the size limit the store opens at once and the check runs beside it: a sound
    /// file ends `Ok`, a file with a smashed page opens too and ends `Damaged`, while the
    /// same file under the limit is refused at open.
    #[test]
    fn large_files_are_checked_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let sound = dir.path().join("sound.db");
        filled(&sound);
        let store = Store::open_checking(&sound, 0).unwrap();
        assert_eq!(wait_for_verdict(&store), Integrity::Ok);
        store.shutdown();

        let bad = dir.path().join("bad.db");
        filled(&bad);
        let len = std::fs::metadata(&bad).unwrap().len();
        let mut f = std::fs::OpenOptions::new().write(true).open(&bad).unwrap();
        // A page in the middle of the messages: its header and cells become garbage.
        f.seek(SeekFrom::Start((len / 4096 / 2) * 4096)).unwrap();
        f.write_all(&[0xA5; 4096]).unwrap();
        drop(f);
        let store = Store::open_checking(&bad, 0).unwrap();
        match wait_for_verdict(&store) {
            Integrity::Damaged(e) => assert!(!e.is_empty()),
            v => panic!("expected damage, got {v:?}"),
        }
        assert!(store.integrity().describe().starts_with("damaged: "));
        store.shutdown();
        assert!(matches!(
            Store::open_checking(&bad, u64::MAX),
            Err(crate::store::StoreError::Corrupt(_))
        ));
    }
}
