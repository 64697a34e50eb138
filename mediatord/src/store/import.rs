//! One-time import of a database with per-chat tables (the Go mediator's, version 0, and
//! mediatord's versions 1–4) into the single schema of [`super::schema`].
//!
//! The legacy file is never written: the import reads it through `ATTACH` and writes a new
//! file beside it (`mediator.db.import`), all in one transaction, reading whatever columns
//! each legacy table has (old Go tables lack `changed_at`, `last_seen`, `info`, `body` or
//! `sent`; missing ones get the defaults the migrations of those versions gave them). Once
//! the new file is complete and synced, the original is hard-linked to its backup name
//! (`mediator.db.v4-backup`, `mediator.db.go-backup` for a Go file) and the new file is
//! renamed over `mediator.db`. Every state a crash can leave is safe: before the rename the
//! original is still `mediator.db` and the next start begins again (a half-written import
//! file is discarded); after it, the import is done and the backup stays until the operator
//! removes it.
//!
//! Progress is reported every [`PROGRESS_STEPS`]th of the chats, and more often through the
//! callback's `keep_alive` (the daemon turns it into systemd's `EXTEND_TIMEOUT_USEC`, so a
//! long import does not hit the start timeout).

use super::schema::{self, Found, SCHEMA_VERSION};
use super::StoreError;
use rusqlite::{params, Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Progress lines per import (one each time another such fraction of the chats is done).
pub const PROGRESS_STEPS: usize = 10;
/// Longest time between two keep-alive calls while importing.
pub const KEEP_ALIVE_PERIOD: Duration = Duration::from_secs(5);
/// Suffix of the file an import writes before it replaces the database.
const IMPORT_SUFFIX: &str = ".import";

/// What a legacy database holds, as the import will see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Survey {
    /// `PRAGMA user_version` (0 for a Go database).
    pub version: i64,
    pub chats: u64,
    pub members: u64,
    pub banned: u64,
    pub messages: u64,
    /// Messages stored without a body (the Go server kept bodies in a cache): imported, and
    /// skipped by sync as before.
    pub bodiless: u64,
    pub invites: u64,
    pub nonces: u64,
    /// Per-chat tables whose chat has no row in `chats`: left behind (they are in the backup).
    pub orphan_tables: u64,
    /// Chats listed in `chats` that lack one of their tables (imported with what exists).
    pub incomplete_chats: u64,
    /// Size of the database file, in bytes.
    pub bytes: u64,
}

/// Where an import is, for progress lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub chats_done: u64,
    pub chats_total: u64,
    pub messages_done: u64,
    pub elapsed: Duration,
}

/// Receives an import's progress.
pub trait Observer {
    /// Another [`PROGRESS_STEPS`]th of the chats is done.
    fn progress(&mut self, p: &Progress);
    /// Called at least every [`KEEP_ALIVE_PERIOD`] while the import works.
    fn keep_alive(&mut self) {}
}

/// An observer that only logs.
pub struct LogProgress;

impl Observer for LogProgress {
    fn progress(&mut self, p: &Progress) {
        log_progress(p);
    }
}

/// The progress line every import logs.
pub fn log_progress(p: &Progress) {
    tracing::info!(
        chats = p.chats_done,
        of = p.chats_total,
        messages = p.messages_done,
        elapsed_ms = p.elapsed.as_millis() as u64,
        "importing the database"
    );
}

/// The daemon's observer: logs, and asks systemd (if it started us) for more start-up time.
pub struct ServiceProgress;

impl Observer for ServiceProgress {
    fn progress(&mut self, p: &Progress) {
        log_progress(p);
    }
    fn keep_alive(&mut self) {
        let usec = u32::try_from((2 * KEEP_ALIVE_PERIOD).as_micros()).unwrap_or(u32::MAX);
        crate::notify::notify(&[crate::notify::State::ExtendTimeoutUsec(usec)]);
    }
}

/// What [`import`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub survey: Survey,
    /// Where the original file now is.
    pub backup: PathBuf,
    pub elapsed: Duration,
}

/// What the database at `path` needs: nothing, creation, or an import (with its survey).
pub fn plan(path: &Path) -> Result<(Found, Option<Survey>), StoreError> {
    if !path.exists() {
        return Ok((Found::Empty, None));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    match schema::inspect(&conn)? {
        Found::Legacy(v) => {
            let mut s = survey(&conn, "main")?;
            s.version = v;
            s.bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            Ok((Found::Legacy(v), Some(s)))
        }
        found => Ok((found, None)),
    }
}

/// The name the original of a version-`version` database is kept under.
pub fn backup_path(db: &Path, version: i64) -> PathBuf {
    let tag = if version == 0 {
        "go".to_string()
    } else {
        format!("v{version}")
    };
    with_suffix(db, &format!(".{tag}-backup"))
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Imports the legacy database at `db` if it is one; `Ok(None)` if there was nothing to do.
/// The caller must own the data directory (no other process may use the file).
pub fn import(db: &Path, obs: &mut dyn Observer) -> Result<Option<Imported>, StoreError> {
    let started = Instant::now();
    let staging = with_suffix(db, IMPORT_SUFFIX);
    remove_if_present(&staging)?;
    remove_if_present(&with_suffix(&staging, "-journal"))?;
    if !db.exists() {
        return Ok(None);
    }
    // Fold a write-ahead log into the file first, so the backup is one self-contained file.
    let version = {
        let legacy = Connection::open(db)?;
        let found = schema::inspect(&legacy)?;
        let Found::Legacy(version) = found else {
            return Ok(None);
        };
        legacy.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        version
    };
    for side in ["-wal", "-shm"] {
        let p = with_suffix(db, side);
        if std::fs::metadata(&p).is_ok_and(|m| m.len() > 0 && side == "-wal") {
            return Err(StoreError::Import(format!(
                "{} still holds data after a checkpoint: is another process using the database?",
                p.display()
            )));
        }
        remove_if_present(&p)?;
    }
    tracing::info!(
        version,
        from = %db.display(),
        "converting the database to schema {SCHEMA_VERSION} (one table per kind, not per chat)"
    );
    let mut survey = {
        let mut conn = Connection::open(&staging)?;
        conn.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")?;
        schema::set_incremental_vacuum(&conn)?;
        conn.execute("ATTACH DATABASE ?1 AS old", [path_str(db)?])?;
        let tx = conn.transaction()?;
        schema::create(&tx)?;
        let mut survey = survey(&tx, "old")?;
        survey.version = version;
        copy_all(&tx, &survey, started, obs)?;
        schema::recount(&tx)?;
        tx.commit()?;
        conn.execute_batch("DETACH DATABASE old")?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        debug_assert!(mode.eq_ignore_ascii_case("wal"));
        survey
    };
    survey.bytes = std::fs::metadata(db).map(|m| m.len()).unwrap_or(0);
    sync_file(&staging)?;
    let backup = free_backup_name(db, version)?;
    if !backup.exists() {
        std::fs::hard_link(db, &backup).map_err(|e| io(&backup, e))?;
    }
    std::fs::rename(&staging, db).map_err(|e| io(db, e))?;
    sync_dir(db)?;
    let elapsed = started.elapsed();
    tracing::info!(
        chats = survey.chats,
        members = survey.members,
        messages = survey.messages,
        invites = survey.invites,
        elapsed_ms = elapsed.as_millis() as u64,
        backup = %backup.display(),
        "database imported; the original is kept as the backup file until you remove it"
    );
    Ok(Some(Imported {
        survey,
        backup,
        elapsed,
    }))
}

/// The backup name to use: the usual one, unless a different file already has it (an
/// earlier import's backup), then the first free `.N` after it. A name that is already a
/// link to `db` (an import interrupted after linking) is reused.
fn free_backup_name(db: &Path, version: i64) -> Result<PathBuf, StoreError> {
    use std::os::unix::fs::MetadataExt;
    let base = backup_path(db, version);
    let own = std::fs::metadata(db).map_err(|e| io(db, e))?;
    for n in 0u32.. {
        let p = if n == 0 {
            base.clone()
        } else {
            with_suffix(&base, &format!(".{n}"))
        };
        match std::fs::metadata(&p) {
            Err(_) => return Ok(p),
            Ok(m) if m.ino() == own.ino() && m.dev() == own.dev() => return Ok(p),
            Ok(_) => continue,
        }
    }
    unreachable!("u32 names run out")
}

fn path_str(p: &Path) -> Result<&str, StoreError> {
    p.to_str()
        .ok_or_else(|| StoreError::Import(format!("{} is not valid UTF-8", p.display())))
}

fn io(p: &Path, e: std::io::Error) -> StoreError {
    StoreError::Import(format!("{}: {e}", p.display()))
}

fn remove_if_present(p: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(p, e)),
        _ => Ok(()),
    }
}

pub(crate) fn sync_file(p: &Path) -> Result<(), StoreError> {
    std::fs::File::open(p)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(p, e))
}

pub(crate) fn sync_dir(db: &Path) -> Result<(), StoreError> {
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    sync_file(dir)
}

/// The tables of schema `db` ("main" or "old") whose names start with `prefix`, with the
/// chat id that follows it.
fn chat_tables(
    conn: &Connection,
    db: &str,
    prefix: &str,
) -> rusqlite::Result<std::collections::HashSet<i64>> {
    let mut st = conn.prepare(&format!(
        "SELECT name FROM {db}.sqlite_master WHERE type = 'table' AND name LIKE ?1"
    ))?;
    let names = st.query_map([format!("{prefix}%")], |r| r.get::<_, String>(0))?;
    let mut out = std::collections::HashSet::new();
    for n in names {
        if let Some(id) = n?.strip_prefix(prefix).and_then(|s| s.parse().ok()) {
            out.insert(id);
        }
    }
    Ok(out)
}

fn columns(conn: &Connection, db: &str, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare(&format!("PRAGMA {db}.table_info(\"{table}\")"))?;
    let rows = st.query_map([], |r| r.get::<_, String>(1))?;
    rows.collect()
}

fn has_table(conn: &Connection, db: &str, table: &str) -> rusqlite::Result<bool> {
    conn.prepare(&format!(
        "SELECT 1 FROM {db}.sqlite_master WHERE type = 'table' AND name = ?1"
    ))?
    .exists([table])
}

/// The legacy tables of one schema, by kind.
struct Tables {
    settings: std::collections::HashSet<i64>,
    users: std::collections::HashSet<i64>,
    messages: std::collections::HashSet<i64>,
}

fn tables(conn: &Connection, db: &str) -> rusqlite::Result<Tables> {
    Ok(Tables {
        settings: chat_tables(conn, db, "settings-")?,
        users: chat_tables(conn, db, "users-")?,
        messages: chat_tables(conn, db, "messages-")?,
    })
}

fn chat_ids(conn: &Connection, db: &str) -> rusqlite::Result<Vec<i64>> {
    conn.prepare(&format!("SELECT id FROM {db}.chats ORDER BY id"))?
        .query_map([], |r| r.get(0))?
        .collect()
}

fn count(conn: &Connection, sql: &str) -> rusqlite::Result<u64> {
    conn.query_row(sql, [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

/// Counts what the legacy schema `db` holds.
fn survey(conn: &Connection, db: &str) -> rusqlite::Result<Survey> {
    let t = tables(conn, db)?;
    let ids = chat_ids(conn, db)?;
    let known: std::collections::HashSet<i64> = ids.iter().copied().collect();
    let mut s = Survey {
        chats: ids.len() as u64,
        ..Survey::default()
    };
    for id in &ids {
        let (has_s, has_u, has_m) = (
            t.settings.contains(id),
            t.users.contains(id),
            t.messages.contains(id),
        );
        if !(has_s && has_u && has_m) {
            s.incomplete_chats += 1;
        }
        if has_u {
            let (all, banned): (i64, i64) = conn.query_row(
                &format!("SELECT COUNT(*), IFNULL(SUM(banned != 0), 0) FROM {db}.\"users-{id}\""),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            s.members += all as u64;
            s.banned += banned as u64;
        }
        if has_m {
            s.messages += count(
                conn,
                &format!("SELECT COUNT(*) FROM {db}.\"messages-{id}\""),
            )?;
            if columns(conn, db, &format!("messages-{id}"))?
                .iter()
                .any(|c| c == "body")
            {
                s.bodiless += count(
                    conn,
                    &format!("SELECT COUNT(*) FROM {db}.\"messages-{id}\" WHERE body IS NULL"),
                )?;
            } else {
                s.bodiless += count(
                    conn,
                    &format!("SELECT COUNT(*) FROM {db}.\"messages-{id}\""),
                )?;
            }
        }
    }
    for set in [&t.settings, &t.users, &t.messages] {
        s.orphan_tables += set.iter().filter(|id| !known.contains(id)).count() as u64;
    }
    if has_table(conn, db, "invites")? {
        s.invites = count(conn, &format!("SELECT COUNT(*) FROM {db}.invites"))?;
    }
    if has_table(conn, db, "nonces")? {
        s.nonces = count(conn, &format!("SELECT COUNT(*) FROM {db}.nonces"))?;
    }
    Ok(s)
}

/// The select list that reads `wanted` from a legacy table with `cols`: each wanted column
/// as itself, under one of its older names, or as its default.
fn select_list(cols: &[String], wanted: &[Wanted]) -> String {
    wanted
        .iter()
        .map(|(name, older, default)| {
            std::iter::once(name)
                .chain(older.iter())
                .find(|c| cols.iter().any(|x| x == *c))
                .map(|c| format!("\"{c}\""))
                .unwrap_or_else(|| default.to_string())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A column of the new schema read from a legacy table: its name, older names it had, and
/// the value to use when the legacy table has none of them.
type Wanted = (&'static str, &'static [&'static str], &'static str);

/// What a per-chat `messages-N` table gives.
const MESSAGE_COLUMNS: &[Wanted] = &[
    ("id", &[], "NULL"),
    ("guid", &[], "0"),
    ("ts", &[], "0"),
    ("author", &[], "X''"),
    ("body", &[], "NULL"),
];
/// What a per-chat `settings-N` table gives.
const SETTINGS_COLUMNS: &[Wanted] = &[
    ("name", &[], "''"),
    ("description", &[], "''"),
    ("avatar", &[], "NULL"),
    ("perms_flags", &[], "0"),
    ("extra", &[], "NULL"),
];
/// What a per-chat `users-N` table gives.
const MEMBER_COLUMNS: &[Wanted] = &[
    ("pubkey", &[], "NULL"),
    ("text_rank", &[], "''"),
    ("perms_flags", &[], "0"),
    ("accepted_at", &[], "0"),
    ("changed_at", &["last_perm_change"], "0"),
    ("banned", &[], "0"),
    ("info", &[], "NULL"),
    ("last_seen", &[], "0"),
];
/// What the legacy `invites` table gives.
const INVITE_COLUMNS: &[Wanted] = &[
    ("id", &[], "NULL"),
    ("timestamp", &[], "0"),
    ("from_pubkey", &[], "X''"),
    ("to_pubkey", &[], "X''"),
    ("chat_id", &[], "0"),
    ("encrypted_data", &[], "X''"),
    ("sent", &[], "0"),
];

/// Copies the rows of the legacy table `old.from` into `main.into`, each column of `wanted`
/// read under its name, an older name, or as its default; `chat` (when given) fills the
/// `chat_id` column first. `tail` orders or limits the rows. Returns the rows copied.
fn copy_table(
    conn: &Connection,
    from: &str,
    into: &str,
    chat: Option<i64>,
    wanted: &[Wanted],
    tail: &str,
) -> rusqlite::Result<usize> {
    let list = select_list(&columns(conn, "old", from)?, wanted);
    let names: Vec<&str> = wanted.iter().map(|w| w.0).collect();
    let (lead, value) = match chat {
        Some(id) => ("chat_id, ", format!("{id}, ")),
        None => ("", String::new()),
    };
    conn.execute(
        &format!(
            "INSERT INTO main.{into} ({lead}{}) SELECT {value}{list} FROM old.\"{from}\" {tail}",
            names.join(", ")
        ),
        [],
    )
}

/// Copies every chat, then invites, nonces and ban ranks, from `old` into `main`.
fn copy_all(
    conn: &Connection,
    survey: &Survey,
    started: Instant,
    obs: &mut dyn Observer,
) -> rusqlite::Result<()> {
    let t = tables(conn, "old")?;
    let ids = chat_ids(conn, "old")?;
    let total = ids.len() as u64;
    let step = (ids.len() / PROGRESS_STEPS).max(1);
    let mut last_alive = Instant::now();
    let mut messages_done = 0u64;
    // The legacy AUTOINCREMENT counters, read once: `sqlite_sequence` has no index, and a
    // lookup per chat made the import quadratic (48 s for 20,000 chats).
    let seq = has_table(conn, "old", "sqlite_sequence")?;
    let counters: std::collections::HashMap<String, i64> = if seq {
        conn.prepare("SELECT name, seq FROM old.sqlite_sequence")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?
    } else {
        Default::default()
    };
    for (n, id) in ids.iter().copied().enumerate() {
        let (created, owner): (i64, Vec<u8>) = conn
            .prepare_cached("SELECT created_at, owner_pubkey FROM old.chats WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let mut last_id = 0i64;
        if t.messages.contains(&id) {
            let table = format!("messages-{id}");
            let copied = copy_table(
                conn,
                &table,
                "messages",
                Some(id),
                MESSAGE_COLUMNS,
                "ORDER BY id",
            )?;
            messages_done += copied as u64;
            last_id = conn.query_row(
                &format!("SELECT IFNULL(MAX(id), 0) FROM old.\"{table}\""),
                [],
                |r| r.get(0),
            )?;
            last_id = last_id.max(counters.get(&table).copied().unwrap_or(0));
        }
        conn.prepare_cached(
            "INSERT INTO main.chats (id, owner, created_at, last_message_id) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![id, owner, created, last_id])?;
        if t.settings.contains(&id) {
            let table = format!("settings-{id}");
            copy_table(
                conn,
                &table,
                "chat_settings",
                Some(id),
                SETTINGS_COLUMNS,
                "LIMIT 1",
            )?;
        }
        if t.users.contains(&id) {
            // In join order (the rowid), as GET_MEMBERS lists them.
            let table = format!("users-{id}");
            copy_table(
                conn,
                &table,
                "members",
                Some(id),
                MEMBER_COLUMNS,
                "ORDER BY rowid",
            )?;
        }
        let done = n + 1;
        if done % step == 0 || done == ids.len() {
            obs.progress(&Progress {
                chats_done: done as u64,
                chats_total: total,
                messages_done,
                elapsed: started.elapsed(),
            });
        }
        if last_alive.elapsed() >= KEEP_ALIVE_PERIOD / 2 {
            obs.keep_alive();
            last_alive = Instant::now();
        }
    }
    // Banned flags as the Go server wrote them may be any non-zero value.
    conn.execute_batch("UPDATE main.members SET banned = 1 WHERE banned NOT IN (0, 1)")?;
    if has_table(conn, "old", "bans")? {
        conn.execute_batch(
            "UPDATE main.members SET ban_rank = b.rank FROM old.bans b
             WHERE b.chat_id = members.chat_id AND b.pubkey = members.pubkey",
        )?;
    }
    if survey.invites > 0 {
        copy_table(
            conn,
            "invites",
            "invites",
            None,
            INVITE_COLUMNS,
            "ORDER BY id",
        )?;
    }
    {
        // Invite ids are never reused either: carry the legacy counter.
        if let Some(&used) = counters.get("invites") {
            let n = conn.execute(
                "UPDATE main.sqlite_sequence SET seq = max(seq, ?1) WHERE name = 'invites'",
                [used],
            )?;
            if n == 0 {
                conn.execute(
                    "INSERT INTO main.sqlite_sequence (name, seq) VALUES ('invites', ?1)",
                    [used],
                )?;
            }
        }
    }
    if survey.nonces > 0 {
        conn.execute_batch(
            "INSERT OR IGNORE INTO main.nonces (pubkey, nonce, ts)
             SELECT pubkey, nonce, ts FROM old.nonces",
        )?;
    }
    obs.keep_alive();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The v4 fixture (written by the last per-chat release, see tests/fixtures/make-v4.sh).
    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/v4/mediator.db")
    }

    /// Every row of `sql` as text, one string per row.
    fn rows(conn: &Connection, sql: &str) -> Vec<String> {
        let mut st = conn.prepare(sql).unwrap();
        let n = st.column_count();
        st.query_map([], |r| {
            let mut cols = Vec::with_capacity(n);
            for i in 0..n {
                cols.push(format!("{:?}", r.get_ref(i)?));
            }
            Ok(cols.join("|"))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    struct Quiet;
    impl Observer for Quiet {
        fn progress(&mut self, _: &Progress) {}
    }

    /// Every row of every per-chat table arrives, in order, with its values; ids and the
    /// message counter carry over; the original is kept byte for byte.
    #[test]
    fn v4_fixture_imports_row_for_row() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("mediator.db");
        std::fs::copy(fixture(), &db).unwrap();
        let original = std::fs::read(&db).unwrap();
        let old = Connection::open(fixture()).unwrap();
        let chats: Vec<i64> = old
            .prepare("SELECT id FROM chats ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(chats.len(), 2);

        let done = import(&db, &mut Quiet).unwrap().expect("imported");
        assert_eq!(done.backup, tmp.path().join("mediator.db.v4-backup"));
        assert_eq!(std::fs::read(&done.backup).unwrap(), original);
        assert_eq!(
            (done.survey.chats, done.survey.members, done.survey.messages),
            (2, 6, 49)
        );
        let new = Connection::open(&db).unwrap();
        assert_eq!(schema::inspect(&new).unwrap(), Found::Current);
        for id in chats {
            assert_eq!(
                rows(&old, &format!("SELECT id, guid, ts, author, body FROM \"messages-{id}\" ORDER BY id")),
                rows(&new, &format!("SELECT id, guid, ts, author, body FROM messages WHERE chat_id = {id} ORDER BY id")),
            );
            assert_eq!(
                rows(&old, &format!("SELECT pubkey, text_rank, perms_flags, accepted_at, changed_at, banned, info, last_seen FROM \"users-{id}\" ORDER BY rowid")),
                rows(&new, &format!("SELECT pubkey, text_rank, perms_flags, accepted_at, changed_at, banned, info, last_seen FROM members WHERE chat_id = {id} ORDER BY rowid")),
            );
            assert_eq!(
                rows(&old, &format!("SELECT name, description, avatar, perms_flags, extra FROM \"settings-{id}\"")),
                rows(&new, &format!("SELECT name, description, avatar, perms_flags, extra FROM chat_settings WHERE chat_id = {id}")),
            );
            assert_eq!(
                rows(&old, &format!("SELECT owner_pubkey, created_at, (SELECT seq FROM sqlite_sequence WHERE name = 'messages-{id}') FROM chats WHERE id = {id}")),
                rows(&new, &format!("SELECT owner, created_at, last_message_id FROM chats WHERE id = {id}")),
            );
        }
        assert_eq!(
            rows(&old, "SELECT chat_id, pubkey, rank FROM bans ORDER BY 1, 2"),
            rows(&new, "SELECT chat_id, pubkey, ban_rank FROM members WHERE ban_rank IS NOT NULL ORDER BY 1, 2"),
        );
        assert_eq!(
            rows(&old, "SELECT * FROM invites ORDER BY id"),
            rows(&new, "SELECT * FROM invites ORDER BY id"),
        );
        // Nothing left to do the second time.
        assert_eq!(import(&db, &mut Quiet).unwrap(), None);
        assert_eq!(plan(&db).unwrap(), (Found::Current, None));
    }

    /// An import whose new file was half written (a crash) starts again; a backup name that
    /// an earlier, different file holds is not overwritten.
    #[test]
    fn stale_import_files_and_taken_backup_names() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("mediator.db");
        std::fs::copy(fixture(), &db).unwrap();
        std::fs::write(with_suffix(&db, IMPORT_SUFFIX), b"half an import").unwrap();
        std::fs::write(backup_path(&db, 4), b"an older backup").unwrap();
        let (found, survey) = plan(&db).unwrap();
        assert_eq!(found, Found::Legacy(4));
        assert_eq!(survey.unwrap().chats, 2);
        let done = import(&db, &mut Quiet).unwrap().unwrap();
        assert_eq!(done.backup, tmp.path().join("mediator.db.v4-backup.1"));
        assert_eq!(
            std::fs::read(backup_path(&db, 4)).unwrap(),
            b"an older backup"
        );
        assert!(!with_suffix(&db, IMPORT_SUFFIX).exists());
        let new = Connection::open(&db).unwrap();
        assert_eq!(
            rows(&new, "SELECT COUNT(*) FROM messages"),
            vec!["Integer(49)"]
        );
    }

    #[test]
    fn empty_and_missing_files_need_no_import() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("mediator.db");
        assert_eq!(plan(&db).unwrap(), (Found::Empty, None));
        assert_eq!(import(&db, &mut Quiet).unwrap(), None);
        Connection::open(&db).unwrap();
        assert_eq!(import(&db, &mut Quiet).unwrap(), None);
        assert_eq!(
            backup_path(&db, 0),
            tmp.path().join("mediator.db.go-backup")
        );
    }
}
