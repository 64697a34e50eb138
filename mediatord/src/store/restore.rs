//! Backups as files and their restore. A backup is either the SQLite file itself (what
//! `mediatorctl backup` writes) or a tar archive holding `mediator.db` and `mediator.key`
//! (`mediatorctl backup - --include-key`). [`restore`] puts one in place in a stopped
//! daemon's data directory: it unpacks beside the live files, checks the database in full
//! (`PRAGMA integrity_check`) and its schema version, keeps the files it replaces aside
//! (`*.pre-restore-<unix time>`) and only then renames the new ones into place.

use super::import::{sync_dir, sync_file};
use super::schema::{self, Found};
use super::StoreError;
use crate::datadir::{DB_FILE, KEY_FILE};
use rusqlite::{Connection, OpenFlags};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The first bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// Where a ustar header carries its magic.
const TAR_MAGIC_AT: usize = 257;
/// The largest key file an archive may carry (Go's 64-byte key and the 64-hex-character
/// form are both far below).
pub const MAX_KEY_BYTES: u64 = 4096;
/// Suffix of the staged files while a restore checks them.
const STAGING: &str = ".restore";

/// Writes a backup archive of the database file `db` (open, `db_len` bytes) and the key
/// file's bytes `key` to `out`.
pub fn write_archive<W: Write>(
    out: W,
    db: &mut File,
    db_len: u64,
    key: &[u8],
    mtime: u64,
) -> std::io::Result<W> {
    let mut tar = tar::Builder::new(out);
    let header = |len: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_size(len);
        h.set_mode(0o600);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Regular);
        h
    };
    let mut h = header(db_len);
    tar.append_data(&mut h, DB_FILE, db.take(db_len))?;
    let mut h = header(key.len() as u64);
    tar.append_data(&mut h, KEY_FILE, key)?;
    tar.into_inner()
}

/// What [`restore`] put in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// Whether the backup carried the key (and it was restored too).
    pub key: bool,
    /// The schema version of the restored database (older ones are imported or upgraded at
    /// the next start).
    pub version: i64,
    pub chats: i64,
    pub messages: i64,
    /// Where the replaced files were kept.
    pub kept: Vec<PathBuf>,
}

fn refuse(msg: impl Into<String>) -> StoreError {
    StoreError::Restore(msg.into())
}

fn io(p: &Path, e: std::io::Error) -> StoreError {
    refuse(format!("{}: {e}", p.display()))
}

/// Restores the backup `from` into the data directory `dir`, whose daemon must be stopped
/// (the caller holds the directory's lock). `now` names the kept files.
pub fn restore(from: &Path, dir: &Path, now: i64) -> Result<Restored, StoreError> {
    let mut head = [0u8; 512];
    let n = File::open(from)
        .and_then(|mut f| read_up_to(&mut f, &mut head))
        .map_err(|e| io(from, e))?;
    let staged_db = dir.join(format!("{DB_FILE}{STAGING}"));
    let staged_key = dir.join(format!("{KEY_FILE}{STAGING}"));
    for p in [&staged_db, &staged_key] {
        let _ = std::fs::remove_file(p);
    }
    let key = if n >= SQLITE_MAGIC.len() && head.starts_with(SQLITE_MAGIC) {
        std::fs::copy(from, &staged_db).map_err(|e| io(from, e))?;
        false
    } else if n == head.len() && &head[TAR_MAGIC_AT..TAR_MAGIC_AT + 5] == b"ustar" {
        unpack(from, &staged_db, &staged_key)?
    } else {
        return Err(refuse(format!(
            "{} is neither a SQLite database nor a backup archive",
            from.display()
        )));
    };
    let checked = check(&staged_db);
    let (version, chats, messages) = match checked {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&staged_db);
            let _ = std::fs::remove_file(&staged_key);
            return Err(e);
        }
    };
    sync_file(&staged_db)?;
    if key {
        sync_file(&staged_key)?;
    }
    // Keep what is replaced, then move the new files in.
    let mut kept = Vec::new();
    let mut moves = vec![(staged_db, DB_FILE)];
    if key {
        moves.push((staged_key, KEY_FILE));
    }
    for side in ["-wal", "-shm"] {
        let p = dir.join(format!("{DB_FILE}{side}"));
        if p.exists() {
            let aside = dir.join(format!("{DB_FILE}{side}.pre-restore-{now}"));
            std::fs::rename(&p, &aside).map_err(|e| io(&p, e))?;
            kept.push(aside);
        }
    }
    for (staged, name) in moves {
        let live = dir.join(name);
        if live.exists() {
            let aside = dir.join(format!("{name}.pre-restore-{now}"));
            std::fs::rename(&live, &aside).map_err(|e| io(&live, e))?;
            kept.push(aside);
        }
        std::fs::rename(&staged, &live).map_err(|e| io(&staged, e))?;
    }
    sync_dir(&dir.join(DB_FILE))?;
    Ok(Restored {
        key,
        version,
        chats,
        messages,
        kept,
    })
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Unpacks an archive's database and key into the staging paths; whether it had a key.
fn unpack(from: &Path, db: &Path, key: &Path) -> Result<bool, StoreError> {
    let file = File::open(from).map_err(|e| io(from, e))?;
    let mut archive = tar::Archive::new(file);
    let (mut got_db, mut got_key) = (false, false);
    for entry in archive.entries().map_err(|e| io(from, e))? {
        let mut entry = entry.map_err(|e| io(from, e))?;
        let name = entry.path().map_err(|e| io(from, e))?.into_owned();
        let (dest, limit) = match name.to_str() {
            Some(DB_FILE) if !got_db => (db, u64::MAX),
            Some(KEY_FILE) if !got_key => (key, MAX_KEY_BYTES),
            _ => {
                return Err(refuse(format!(
                    "{}: unexpected entry {} (a backup archive holds {DB_FILE} and {KEY_FILE})",
                    from.display(),
                    name.display()
                )))
            }
        };
        if entry.size() > limit {
            return Err(refuse(format!(
                "{}: {} is too large",
                from.display(),
                name.display()
            )));
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .map_err(|e| io(dest, e))?;
        std::io::copy(&mut entry, &mut out).map_err(|e| io(dest, e))?;
        if dest == db {
            got_db = true;
        } else {
            got_key = true;
        }
    }
    if !got_db {
        return Err(refuse(format!(
            "{}: no {DB_FILE} in the archive",
            from.display()
        )));
    }
    Ok(got_key)
}

/// The full integrity check and the schema of a staged database: (version, chats, messages).
fn check(db: &Path) -> Result<(i64, i64, i64), StoreError> {
    let c = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let verdict: String = c.query_row("PRAGMA integrity_check(1)", [], |r| r.get(0))?;
    if verdict != "ok" {
        return Err(refuse(format!("the backup is damaged: {verdict}")));
    }
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let counts = |sql: &str| -> Result<i64, StoreError> { Ok(c.query_row(sql, [], |r| r.get(0))?) };
    match schema::inspect(&c)? {
        Found::Empty => Err(refuse("the backup holds no tables")),
        Found::Current | Found::Upgrade(_) => Ok((
            version,
            counts("SELECT COUNT(*) FROM chats")?,
            counts("SELECT COUNT(*) FROM messages")?,
        )),
        // A per-chat file (Go or mediatord before schema 5) is imported at the next start.
        Found::Legacy(_) => Ok((version, counts("SELECT COUNT(*) FROM chats")?, -1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(path: &Path, chats: i64) {
        let c = Connection::open(path).unwrap();
        schema::create(&c).unwrap();
        for id in 1..=chats {
            c.execute(
                "INSERT INTO chats (id, owner, created_at) VALUES (?1, X'01', 0)",
                [id],
            )
            .unwrap();
        }
    }

    #[test]
    fn archives_and_plain_files_restore_and_keep_what_they_replace() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        database(&dir.join(DB_FILE), 1);
        std::fs::write(dir.join(KEY_FILE), b"old key").unwrap();

        // An archive with three chats and a key.
        let backup_db = tmp.path().join("b.db");
        database(&backup_db, 3);
        let len = std::fs::metadata(&backup_db).unwrap().len();
        let mut f = File::open(&backup_db).unwrap();
        let tar = write_archive(Vec::new(), &mut f, len, b"new key", 1).unwrap();
        let archive = tmp.path().join("b.tar");
        std::fs::write(&archive, tar).unwrap();
        let r = restore(&archive, &dir, 100).unwrap();
        assert!(r.key);
        assert_eq!((r.chats, r.messages), (3, 0));
        assert_eq!(std::fs::read(dir.join(KEY_FILE)).unwrap(), b"new key");
        assert_eq!(
            std::fs::read(dir.join("mediator.key.pre-restore-100")).unwrap(),
            b"old key"
        );
        assert!(dir.join("mediator.db.pre-restore-100").exists());

        // A plain database file: the key stays.
        database(&tmp.path().join("c.db"), 5);
        let r = restore(&tmp.path().join("c.db"), &dir, 200).unwrap();
        assert!(!r.key);
        assert_eq!(r.chats, 5);
        assert_eq!(std::fs::read(dir.join(KEY_FILE)).unwrap(), b"new key");

        // Anything else is refused and nothing changes.
        std::fs::write(tmp.path().join("junk"), b"hello").unwrap();
        assert!(matches!(
            restore(&tmp.path().join("junk"), &dir, 300),
            Err(StoreError::Restore(_))
        ));
        let mut damaged = std::fs::read(tmp.path().join("c.db")).unwrap();
        // Page 2 (a table's root) becomes garbage.
        damaged[4096..8192].fill(0xA5);
        std::fs::write(tmp.path().join("damaged.db"), &damaged).unwrap();
        let before = std::fs::read(dir.join(DB_FILE)).unwrap();
        let e = restore(&tmp.path().join("damaged.db"), &dir, 400);
        assert!(
            matches!(e, Err(StoreError::Restore(ref m)) if m.contains("damaged")),
            "{e:?}"
        );
        assert_eq!(std::fs::read(dir.join(DB_FILE)).unwrap(), before);
        assert!(!dir.join("mediator.db.restore").exists());
    }
}
