//! The data directory: created with mode 0700, held under an exclusive lock for the
//! daemon's whole life, and checked before anything in it is used.
//!
//! Two daemons on one directory would both accept writes to one database while neither
//! sees the other's sessions, so a second daemon exits with a clear error instead. The key
//! and the database belong together: a database without its key is refused rather than
//! given a new identity (its chats would all be owned by a mediator key nobody has any
//! more), and a database file that is empty or does not start with SQLite's header is
//! refused rather than silently replaced by an empty one.

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The lock file inside the data directory; it holds the owner's pid, for operators.
pub const LOCK_FILE: &str = "mediatord.lock";
/// The node key file.
pub const KEY_FILE: &str = "mediator.key";
/// The database file.
pub const DB_FILE: &str = "mediator.db";
/// The first 16 bytes of every SQLite 3 database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Takes the lock of the data directory `dir` (which must exist) without checking its
/// files, for offline work on them (`mediatord migrate`); held until the value is dropped.
pub fn lock_dir(dir: &Path) -> Result<Flock<File>> {
    lock(&dir.join(LOCK_FILE))
}

/// A locked data directory. The lock is released when this is dropped (or the process ends,
/// however it ends).
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: Flock<File>,
}

impl DataDir {
    /// Creates `path` if needed (mode 0700), takes its lock and checks that the key and the
    /// database can be used together.
    pub fn open(path: &Path) -> Result<DataDir> {
        if !path.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .with_context(|| format!("creating data dir {}", path.display()))?;
        }
        let lock = lock(&path.join(LOCK_FILE))?;
        let dir = DataDir {
            path: path.to_path_buf(),
            _lock: lock,
        };
        check_database_file(&dir.db_path())?;
        if !dir.key_path().exists() && has_database(&dir.db_path()) {
            bail!(
                "{} is missing but {} holds a database: a new key would be a new mediator \
                 identity for existing chats. Restore the key file from a backup, or move the \
                 database away to start afresh",
                dir.key_path().display(),
                dir.db_path().display()
            );
        }
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn key_path(&self) -> PathBuf {
        self.path.join(KEY_FILE)
    }

    pub fn db_path(&self) -> PathBuf {
        self.path.join(DB_FILE)
    }
}

/// Takes an exclusive, non-blocking `flock` on `path` and writes our pid into it.
fn lock(path: &Path) -> Result<Flock<File>> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    let mut f = match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(locked) => locked,
        Err((mut f, Errno::EWOULDBLOCK)) => {
            let mut owner = String::new();
            let _ = f.read_to_string(&mut owner);
            bail!(
                "another mediatord (pid {}) is using this data directory (lock {})",
                owner.trim(),
                path.display()
            );
        }
        Err((_, e)) => {
            return Err(std::io::Error::from(e))
                .with_context(|| format!("locking {}", path.display()))
        }
    };
    f.set_len(0)
        .and_then(|_| writeln!(f, "{}", std::process::id()))
        .with_context(|| format!("writing lock file {}", path.display()))?;
    Ok(f)
}

/// Whether `db` exists with any content (or a write-ahead log with content).
fn has_database(db: &Path) -> bool {
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    len(db) > 0 || len(&wal_path(db)) > 0
}

fn wal_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

/// Refuses an empty database file (unless its write-ahead log holds data) and a file that is
/// not an SQLite database. A missing file is fine: it is created.
fn check_database_file(db: &Path) -> Result<()> {
    let mut f = match File::open(db) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("opening {}", db.display())),
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        if has_database(db) {
            return Ok(());
        }
        bail!(
            "{} is empty (0 bytes): it was truncated or never written. Restore it from a \
             backup, or delete it to start with an empty database",
            db.display()
        );
    }
    let mut head = [0u8; 16];
    let n = f.read(&mut head).unwrap_or(0);
    if n < head.len() || &head != SQLITE_HEADER {
        bail!(
            "{} is not an SQLite database (its header is wrong): restore it from a backup",
            db.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_is_refused_until_the_first_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        let first = DataDir::open(&dir).unwrap();
        let err = DataDir::open(&dir).unwrap_err().to_string();
        assert!(err.contains("another mediatord"), "{err}");
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(first);
        DataDir::open(&dir).unwrap();
    }

    #[test]
    fn database_without_key_and_bad_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join(DB_FILE), b"").unwrap();
        let err = DataDir::open(dir).unwrap_err().to_string();
        assert!(err.contains("is empty"), "{err}");
        std::fs::write(dir.join(DB_FILE), [7u8; 4096]).unwrap();
        let err = DataDir::open(dir).unwrap_err().to_string();
        assert!(err.contains("not an SQLite database"), "{err}");
        let mut good = SQLITE_HEADER.to_vec();
        good.resize(4096, 0);
        std::fs::write(dir.join(DB_FILE), &good).unwrap();
        let err = DataDir::open(dir).unwrap_err().to_string();
        assert!(err.contains("mediator.key is missing"), "{err}");
        std::fs::write(dir.join(KEY_FILE), [0u8; 64]).unwrap();
        DataDir::open(dir).unwrap();
    }
}
