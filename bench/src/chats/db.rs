//! The data directories of the `chats` scenario, written directly with SQL (no proof of work):
//! a `mediator.key` and a `mediator.db` holding N chats, either in the current schema
//! (version 5, created by `mediatord::store::schema::create` itself, so the benchmark and the
//! daemon share one definition) or in the legacy per-chat layout of version 4, for the
//! import measurement.
//!
//! Every chat has a settings row, [`MEMBERS_PER_CHAT`] members and [`MESSAGES_PER_CHAT`]
//! messages of [`BODY_BYTES`]. Who is a member where is the [`Layout`]: the owner comes from
//! a pool of [`USER_POOL`] keys (so pool keys belong to many chats, more the more chats there
//! are), the second member is one of the benchmark's sender keys (sender `s` is in every chat
//! `c` with `c mod senders == s`, so the senders together reach every chat), and the third is
//! another pool key, except in `heavy_chats` chats spread evenly over the id range, where it
//! is the "heavy" key: the one key whose chat count is the same whatever N is.
//!
//! A version-4 file has three tables and three triggers per chat. Built naively this is
//! quadratic: every CREATE in SQLite walks every table its connection knows (the foreign-key
//! trigger cache is cleared on each schema change) and scans `sqlite_master` to parse the new
//! entry, and every AUTOINCREMENT insert scans `sqlite_sequence` (measured: 4,000 chats take
//! 19 s, 20,000 would take a quarter of an hour). So [`build_v4`] writes the chats in batches
//! of [`V4_BATCH`], each on a fresh connection with `writable_schema`: after a batch its
//! `sqlite_master` and `sqlite_sequence` rows are taken out (the tables' pages stay allocated)
//! and at the end all of them are written back at once; the finished file passes
//! `PRAGMA quick_check`.

use anyhow::{bail, ensure, Context, Result};
use ed25519_dalek::SigningKey;
use mediator_wire::codes::perms;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::{params, Connection};
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Keys that own chats and fill the third member slot (pool keys have no sessions).
pub const USER_POOL: usize = 1_000;
/// Members of every chat: its owner, a sender (or the heavy key) and one more pool key.
pub const MEMBERS_PER_CHAT: usize = 3;
/// Messages stored in every chat.
pub const MESSAGES_PER_CHAT: i64 = 5;
/// Body size of the stored messages, bytes.
pub const BODY_BYTES: usize = 200;
/// Page cache of the connections that build a database, KiB: the `members` index is written
/// in random key order and would otherwise re-read its pages from the OS.
pub const BUILD_CACHE_KIB: i64 = 256 * 1024;
/// Chats written per connection when building a version-4 file (see the module docs).
pub const V4_BATCH: usize = 100;
/// `mediatord`'s data directory files.
pub const KEY_FILE: &str = "mediator.key";
pub const DB_FILE: &str = "mediator.db";

/// Who is a member of which chat (see the module docs).
pub struct Layout {
    /// Chat ids (random positive 63-bit values like the daemon's), ascending; chat `c` of
    /// the layout is `ids[c]`.
    pub ids: Vec<i64>,
    pub senders: Vec<SigningKey>,
    pub heavy: SigningKey,
    /// The heavy key is a member of chat `c` when `c % heavy_stride == 0` and
    /// `c / heavy_stride < heavy_chats`.
    pub heavy_stride: usize,
    pub heavy_chats: usize,
    pool: Vec<[u8; 32]>,
    created_at: i64,
}

impl Layout {
    /// A layout of `chats` chats with these sender keys and heavy key.
    pub fn new(
        chats: usize,
        senders: Vec<SigningKey>,
        heavy: SigningKey,
        heavy_chats: usize,
    ) -> Result<Layout> {
        ensure!(
            chats > 0 && !senders.is_empty(),
            "a layout needs chats and senders"
        );
        ensure!(
            heavy_chats <= chats && senders.len() <= chats,
            "more heavy chats or senders than chats"
        );
        let mut rng = StdRng::from_entropy();
        let mut ids = std::collections::BTreeSet::new();
        while ids.len() < chats {
            ids.insert(rng.gen_range(1..=i64::MAX));
        }
        Ok(Layout {
            ids: ids.into_iter().collect(),
            senders,
            heavy,
            heavy_stride: (chats / heavy_chats.max(1)).max(1),
            heavy_chats,
            pool: (0..USER_POOL).map(|_| rng.gen()).collect(),
            created_at: mediator_client::now_secs(),
        })
    }

    pub fn chats(&self) -> usize {
        self.ids.len()
    }

    fn is_heavy(&self, c: usize) -> bool {
        c % self.heavy_stride == 0 && c / self.heavy_stride < self.heavy_chats
    }

    /// The chat ids the heavy key belongs to.
    pub fn heavy_ids(&self) -> Vec<i64> {
        (0..self.chats())
            .filter(|&c| self.is_heavy(c))
            .map(|c| self.ids[c])
            .collect()
    }

    /// The chat ids sender `s` belongs to: every `senders`-th chat from `s`.
    pub fn sender_ids(&self, s: usize) -> Vec<i64> {
        (s..self.chats())
            .step_by(self.senders.len())
            .map(|c| self.ids[c])
            .collect()
    }

    /// Members of chat `c` with their permission bits, the owner first.
    fn members(&self, c: usize, rng: &mut StdRng) -> [([u8; 32], u8); MEMBERS_PER_CHAT] {
        let owner = rng.gen_range(0..self.pool.len());
        let mut other = rng.gen_range(0..self.pool.len() - 1);
        if other >= owner {
            other += 1;
        }
        let sender = self.senders[c % self.senders.len()].verifying_key();
        let third = if self.is_heavy(c) {
            self.heavy.verifying_key().to_bytes()
        } else {
            self.pool[other]
        };
        [
            (self.pool[owner], perms::CREATOR),
            (sender.to_bytes(), perms::USER),
            (third, perms::USER),
        ]
    }
}

/// Creates `dir` (mode 0700) with a fresh `mediator.key` in Go's format: the 32-byte ed25519
/// seed followed by its public key, mode 0600.
fn write_key(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let key = mediator_client::random_key();
    let mut bytes = [0u8; 64];
    bytes[..32].copy_from_slice(&key.to_bytes());
    bytes[32..].copy_from_slice(key.verifying_key().as_bytes());
    let path = dir.join(KEY_FILE);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(&bytes))
        .with_context(|| format!("writing {}", path.display()))
}

/// Opens the database being built, unjournalled (a failed build is thrown away).
fn open_for_build(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    conn.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")?;
    conn.pragma_update(None, "cache_size", -BUILD_CACHE_KIB)?;
    Ok(conn)
}

/// Writes `dir/mediator.key` and `dir/mediator.db` in schema version 5 holding `layout`.
pub fn build_v5(dir: &Path, layout: &Layout) -> Result<()> {
    write_key(dir)?;
    let mut conn = open_for_build(&dir.join(DB_FILE))?;
    // The daemon's page layout, as it creates new files.
    mediatord::store::schema::set_incremental_vacuum(&conn)?;
    anyhow::ensure!(mediatord::store::schema::has_incremental_vacuum(&conn)?);
    let tx = conn.transaction()?;
    mediatord::store::schema::create(&tx).context("creating the schema")?;
    {
        let mut chat = tx.prepare(
            "INSERT INTO chats (id, owner, created_at, last_message_id) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut settings = tx.prepare(
            "INSERT INTO chat_settings (chat_id, name, description) VALUES (?1, ?2, 'benchmark')",
        )?;
        let mut member = tx.prepare(
            "INSERT INTO members (chat_id, pubkey, text_rank, perms_flags, accepted_at, changed_at)
             VALUES (?1, ?2, '', ?3, ?4, ?4)",
        )?;
        let mut message = tx.prepare(
            "INSERT INTO messages (chat_id, id, guid, ts, author, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut rng = StdRng::from_entropy();
        let mut body = vec![0u8; BODY_BYTES];
        let now = layout.created_at;
        for (c, &id) in layout.ids.iter().enumerate() {
            let members = layout.members(c, &mut rng);
            chat.execute(params![id, members[0].0, now, MESSAGES_PER_CHAT])?;
            settings.execute(params![id, format!("chat {c}")])?;
            for (key, p) in &members {
                member.execute(params![id, key, i64::from(*p), now])?;
            }
            for m in 1..=MESSAGES_PER_CHAT {
                rng.fill(&mut body[..]);
                let author = &members[m as usize % MEMBERS_PER_CHAT].0;
                message.execute(params![id, m, rng.gen::<i64>(), now, author, body])?;
            }
        }
    }
    mediatord::store::schema::recount(&tx)?;
    tx.commit()?;
    Ok(())
}

/// The global tables of a version-4 file (as in `tests/fixtures/v4/mediator.db`, written by
/// the last release with per-chat tables).
const V4_GLOBAL: &str = "
CREATE TABLE chats (
    id INTEGER PRIMARY KEY,
    owner_pubkey BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE invites (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp INTEGER NOT NULL,
    from_pubkey BLOB NOT NULL,
    to_pubkey BLOB NOT NULL,
    chat_id INTEGER NOT NULL,
    encrypted_data BLOB NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    UNIQUE(to_pubkey, chat_id)
);
CREATE TABLE nonces (
    pubkey BLOB NOT NULL,
    nonce BLOB NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (pubkey, nonce)
) WITHOUT ROWID;
CREATE INDEX nonces_ts ON nonces (ts);
CREATE INDEX chats_owner ON chats (owner_pubkey);
CREATE INDEX invites_chat ON invites (chat_id);
CREATE INDEX invites_ts ON invites (timestamp);
CREATE TABLE memberships (
    pubkey BLOB NOT NULL,
    chat_id INTEGER NOT NULL,
    PRIMARY KEY (pubkey, chat_id)
) WITHOUT ROWID;
CREATE INDEX memberships_chat ON memberships (chat_id);
CREATE TABLE bans (
    chat_id INTEGER NOT NULL,
    pubkey BLOB NOT NULL,
    rank INTEGER NOT NULL,
    PRIMARY KEY (chat_id, pubkey)
) WITHOUT ROWID;
PRAGMA user_version = 4;
";

/// The tables and triggers of one chat in a version-4 file (`{id}` is the chat id), as in
/// `tests/fixtures/v4/mediator.db`.
const V4_CHAT: &str = r#"
CREATE TABLE "settings-{id}" (
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    avatar BLOB,
    perms_flags INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    extra TEXT
);
CREATE TABLE "users-{id}" (
    pubkey BLOB PRIMARY KEY,
    text_rank TEXT,
    perms_flags INTEGER NOT NULL,
    accepted_at INTEGER NOT NULL,
    changed_at INTEGER NOT NULL,
    banned INTEGER NOT NULL DEFAULT 0,
    info BLOB,
    last_seen INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE "messages-{id}" (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER NOT NULL,
    guid INTEGER NOT NULL UNIQUE,
    author BLOB NOT NULL,
    body BLOB
);
CREATE TRIGGER "users-{id}-join" AFTER INSERT ON "users-{id}" WHEN NEW.banned = 0
 BEGIN INSERT OR IGNORE INTO memberships (pubkey, chat_id) VALUES (NEW.pubkey, {id}); END;
CREATE TRIGGER "users-{id}-leave" AFTER DELETE ON "users-{id}"
 BEGIN DELETE FROM memberships WHERE pubkey = OLD.pubkey AND chat_id = {id}; END;
CREATE TRIGGER "users-{id}-change" AFTER UPDATE OF pubkey, banned ON "users-{id}"
 BEGIN
     DELETE FROM memberships WHERE pubkey = OLD.pubkey AND chat_id = {id};
     INSERT OR IGNORE INTO memberships (pubkey, chat_id)
         SELECT NEW.pubkey, {id} WHERE NEW.banned = 0;
 END;
"#;

/// Per-chat schema rows: every per-chat name has a '-' in it, no global one does.
const PER_CHAT_NAMES: &str = "name GLOB '*-*'";

/// One `sqlite_master` row taken out while building.
type MasterRow = (String, String, String, i64, Option<String>);

/// The SQL that creates chat `c` of `layout` in a version-4 file and fills it.
fn v4_chat_sql(layout: &Layout, c: usize, rng: &mut StdRng) -> String {
    let id = layout.ids[c];
    let now = layout.created_at;
    let mut sql = V4_CHAT.replace("{id}", &id.to_string());
    let members = layout.members(c, rng);
    let owner = hex::encode(members[0].0);
    let _ = writeln!(
        sql,
        "INSERT INTO chats VALUES ({id}, x'{owner}', {now});
         INSERT INTO \"settings-{id}\" VALUES ('chat {c}', 'benchmark', NULL, 0, {now}, NULL);"
    );
    for (key, p) in &members {
        let _ = writeln!(
            sql,
            "INSERT INTO \"users-{id}\" VALUES (x'{}', '', {p}, {now}, {now}, 0, NULL, 0);",
            hex::encode(key)
        );
    }
    let mut body = vec![0u8; BODY_BYTES];
    for m in 0..MESSAGES_PER_CHAT {
        rng.fill(&mut body[..]);
        let author = hex::encode(members[m as usize % MEMBERS_PER_CHAT].0);
        let _ = writeln!(
            sql,
            "INSERT INTO \"messages-{id}\" (ts, guid, author, body) VALUES ({now}, {}, x'{author}', x'{}');",
            rng.gen::<i64>(),
            hex::encode(&body)
        );
    }
    sql
}

/// Copies the per-chat rows of `sqlite_master` and `sqlite_sequence` out of `conn` into
/// `master` and `sequence` (the caller then deletes them).
fn take_out(
    conn: &Connection,
    master: &mut Vec<MasterRow>,
    sequence: &mut Vec<(String, i64)>,
) -> Result<()> {
    let mut st = conn.prepare(&format!(
        "SELECT type, name, tbl_name, rootpage, sql FROM sqlite_master WHERE {PER_CHAT_NAMES}"
    ))?;
    let rows = st.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })?;
    for r in rows {
        master.push(r?);
    }
    let mut st = conn.prepare(&format!(
        "SELECT name, seq FROM sqlite_sequence WHERE {PER_CHAT_NAMES}"
    ))?;
    for r in st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
        sequence.push(r?);
    }
    Ok(())
}

/// Writes `dir/mediator.key` and `dir/mediator.db` in the version-4 layout holding `layout`
/// (see the module docs for how).
pub fn build_v4(dir: &Path, layout: &Layout) -> Result<()> {
    write_key(dir)?;
    let path = dir.join(DB_FILE);
    open_for_build(&path)?.execute_batch(V4_GLOBAL)?;
    let mut rng = StdRng::from_entropy();
    let mut master: Vec<MasterRow> = Vec::new();
    let mut sequence: Vec<(String, i64)> = Vec::new();
    let all: Vec<usize> = (0..layout.chats()).collect();
    for batch in all.chunks(V4_BATCH) {
        let mut conn = open_for_build(&path)?;
        conn.pragma_update(None, "writable_schema", "ON")?;
        let tx = conn.transaction()?;
        for &c in batch {
            tx.execute_batch(&v4_chat_sql(layout, c, &mut rng))
                .with_context(|| format!("writing chat {c}"))?;
        }
        take_out(&tx, &mut master, &mut sequence)?;
        tx.execute_batch(&format!(
            "DELETE FROM sqlite_master WHERE {PER_CHAT_NAMES};
             DELETE FROM sqlite_sequence WHERE {PER_CHAT_NAMES};"
        ))?;
        tx.commit()?;
    }
    {
        let mut conn = open_for_build(&path)?;
        conn.pragma_update(None, "writable_schema", "ON")?;
        let tx = conn.transaction()?;
        {
            let mut ins = tx.prepare(
                "INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (t, name, table, root, sql) in &master {
                ins.execute(params![t, name, table, root, sql])?;
            }
            let mut ins = tx.prepare("INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)")?;
            for (name, seq) in &sequence {
                ins.execute(params![name, seq])?;
            }
        }
        // Other connections notice the changed schema by its version.
        let version: i64 = tx.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
        tx.pragma_update(None, "schema_version", version + 1)?;
        tx.commit()?;
        conn.pragma_update(None, "writable_schema", "OFF")?;
    }
    let conn = Connection::open(&path)?;
    let verdict: String = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0))?;
    if verdict != "ok" {
        bail!("the version-4 database built for the import is corrupt: {verdict}");
    }
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name GLOB 'users-*'",
        [],
        |r| r.get(0),
    )?;
    ensure!(
        tables as usize == layout.chats(),
        "the version-4 database has {tables} users tables for {} chats",
        layout.chats()
    );
    Ok(())
}

/// Size of the database file in `dir`, bytes.
pub fn db_bytes(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(DB_FILE))
        .map(|m| m.len())
        .unwrap_or(0)
}
