//! The database schema: one fixed set of tables for every chat, keyed by chat id.
//!
//! No table is created or dropped at run time: a new chat is a row in `chats` and one in
//! `chat_settings`, its members are rows of `members`, its messages rows of `messages`. So
//! every connection's schema stays the same size whatever the number of chats (the per-chat
//! tables of versions 0–4 made each connection hold ~45 KiB per chat and re-parse the whole
//! schema after every chat creation), and start-up reads a handful of table definitions.
//!
//! Indexes follow the protocol's queries:
//! - `messages` is an ordinary rowid table in arrival order (`seq`), bodies inline, with
//!   `messages_id` on (chat, id) for sync pages and the chat's last id, and `messages_guid`
//!   on (chat, guid) for SEND_MESSAGE's retry and collision check and for DELETE_MESSAGE.
//!   Clustering the table itself on (chat, id) (`WITHOUT ROWID`) was measured and dropped:
//!   such a table keeps at most ~1,000 bytes of a row in its B-tree page (a rowid table
//!   ~4,000), so every 1 KiB message spilled onto an overflow page of its own: raw inserts
//!   over 100 chats ran at 20k rows/s instead of 46k and raw page reads at 0.77M rows/s
//!   instead of 1.7M. In arrival order, a group commit appends to one end of the table,
//!   retention deletes from the other, and the two indexes take small entries.
//!   `messages_guid` is not declared unique: tables written by old Go servers allowed one
//!   guid twice in a chat and an import must not lose either row; every new message is
//!   checked by [`super::queries::Protocol::insert_message`], which is the only writer of
//!   messages and runs on the single writer connection.
//! - `members` is keyed by (chat, key) and indexed by (key, banned, chat), which answers
//!   GET_USER_CHATS and "is this key established" from the index alone. Its rowid keeps the
//!   order members joined in, as GET_MEMBERS lists them.
//! - `chats.last_message_id` is the chat's message counter: ids are never reused, even after
//!   the newest message is deleted (as `AUTOINCREMENT` did per chat table).
//!
//! - `audit` records every state-changing control action (who, what, when, result), in
//!   order, and `blocks` the operator's server-wide blocks of keys and sources (version 6).
//! - `chats.message_count` and `message_bytes` (counted by the insert, by triggers on
//!   delete) and `messages_ts` serve retention and `status` without reading messages
//!   (version 7).
//!
//! Files of versions 0 (the Go mediator) to 4 are converted once by [`super::import`]; files
//! of version [`FIRST_SHARED_VERSION`] and later are upgraded in place by [`UPGRADES`], in one
//! transaction at start. `PRAGMA user_version` holds the version.

use super::StoreError;
use rusqlite::Connection;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 7;

/// The first version with one set of tables for every chat: older files are imported, this
/// one and later ones upgraded in place.
pub const FIRST_SHARED_VERSION: i64 = 5;

/// The audit log of control actions (added in version 6).
const AUDIT: &str = "
CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    user TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    result TEXT NOT NULL
);
";

/// Server-wide blocks of keys and sources (added in version 6): `kind` is `key` or `source`,
/// `value` the key in hex or the source as connections count it, `until` Unix seconds (NULL:
/// until lifted).
const BLOCKS: &str = "
CREATE TABLE blocks (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    until INTEGER,
    reason TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (kind, value)
) WITHOUT ROWID;
";

/// Per-chat message counts and body bytes, and an index by arrival time (added in version
/// 7). They let retention find the chats over their limits and the messages past their age
/// without scanning, and `status` sum counts over chats instead of counting messages. An
/// insert counts itself in the statement that takes the chat's next id
/// ([`super::queries`]'s `NEXT_ID`, the one path that adds messages: a trigger doing the same
/// cost ~10 % of ingest), deletes and body changes by triggers, whatever their path
/// (protocol, moderation, retention). Files written outside that path (import, benchmarks)
/// are [`recount`]ed. The time index takes its entries at its right edge, as the table does.
const COUNTERS: &str = "
ALTER TABLE chats ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chats ADD COLUMN message_bytes INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_ts ON messages (ts);
CREATE TRIGGER messages_uncounted AFTER DELETE ON messages BEGIN
    UPDATE chats SET message_count = message_count - 1,
        message_bytes = message_bytes - IFNULL(length(old.body), 0)
    WHERE id = old.chat_id;
END;
CREATE TRIGGER messages_recounted AFTER UPDATE OF body ON messages BEGIN
    UPDATE chats SET
        message_bytes = message_bytes - IFNULL(length(old.body), 0) + IFNULL(length(new.body), 0)
    WHERE id = new.chat_id;
END;
";

/// Sets every chat's counters from its rows (one pass over `messages_id`).
const RECOUNT: &str = "
UPDATE chats SET
    message_count = (SELECT COUNT(*) FROM messages WHERE chat_id = chats.id),
    message_bytes = (SELECT IFNULL(SUM(length(body)), 0) FROM messages WHERE chat_id = chats.id);
";

/// Sets every chat's message counters from the rows there are: after an upgrade to version
/// 7, an import, or rows written by hand (tests, benchmarks).
pub fn recount(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(RECOUNT)
}

/// The in-place upgrades: the SQL that takes a file from each version to the next, and what
/// it adds (for `mediatord migrate --check` and the log). A new file is created as version
/// 5 plus all of them, so new and upgraded files have the same schema text.
pub const UPGRADES: &[(i64, &str, &str)] = &[
    (5, AUDIT, "the audit log of control actions"),
    (5, BLOCKS, "server-wide blocks of keys and sources"),
    (
        6,
        COUNTERS,
        "message counts per chat and an index by time (for retention)",
    ),
];

/// Every table and index of version [`FIRST_SHARED_VERSION`]; [`UPGRADES`] add the rest.
const SCHEMA: &str = "
CREATE TABLE chats (
    id INTEGER PRIMARY KEY,
    owner BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    last_message_id INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX chats_owner ON chats (owner);
CREATE TABLE chat_settings (
    chat_id INTEGER PRIMARY KEY,
    name NOT NULL,
    description NOT NULL,
    avatar BLOB,
    perms_flags INTEGER NOT NULL DEFAULT 0,
    extra TEXT
);
CREATE TABLE members (
    chat_id INTEGER NOT NULL,
    pubkey BLOB NOT NULL,
    text_rank TEXT,
    perms_flags INTEGER NOT NULL,
    accepted_at INTEGER NOT NULL,
    changed_at INTEGER NOT NULL DEFAULT 0,
    banned INTEGER NOT NULL DEFAULT 0,
    ban_rank INTEGER,
    info BLOB,
    last_seen INTEGER NOT NULL DEFAULT 0,
    UNIQUE (chat_id, pubkey)
);
CREATE INDEX members_by_key ON members (pubkey, banned, chat_id);
CREATE TABLE messages (
    seq INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    guid INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    author BLOB NOT NULL,
    body BLOB
);
CREATE UNIQUE INDEX messages_id ON messages (chat_id, id);
CREATE INDEX messages_guid ON messages (chat_id, guid);
CREATE TABLE invites (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp INTEGER NOT NULL,
    from_pubkey BLOB NOT NULL,
    to_pubkey BLOB NOT NULL,
    chat_id INTEGER NOT NULL,
    encrypted_data BLOB NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    UNIQUE (to_pubkey, chat_id)
);
CREATE INDEX invites_chat ON invites (chat_id);
CREATE INDEX invites_ts ON invites (timestamp);
CREATE TABLE nonces (
    pubkey BLOB NOT NULL,
    nonce BLOB NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (pubkey, nonce)
) WITHOUT ROWID;
CREATE INDEX nonces_ts ON nonces (ts);
";

/// Creates every table of [`SCHEMA_VERSION`] in an empty database and sets its version.
/// Call [`set_incremental_vacuum`] first, outside the transaction, on a new file.
pub fn create(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)?;
    upgrade(conn, FIRST_SHARED_VERSION)
}

/// Makes a new, still empty file give freed pages back to the file system on demand
/// (`PRAGMA incremental_vacuum`, run by retention after it deletes): the mode must be
/// chosen before the first table is created.
pub fn set_incremental_vacuum(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
}

/// Whether the file can give space back with `PRAGMA incremental_vacuum`.
pub fn has_incremental_vacuum(conn: &Connection) -> rusqlite::Result<bool> {
    Ok(conn.query_row("PRAGMA auto_vacuum", [], |r| r.get::<_, i64>(0))? == 2)
}

/// Rewrites a file created before version 7 (no auto-vacuum) once, so that it can give
/// space back from then on. Runs outside any transaction and needs free disk about the size
/// of the file; a no-op on a file that already can.
fn enable_incremental_vacuum(conn: &Connection) -> rusqlite::Result<()> {
    if has_incremental_vacuum(conn)? {
        return Ok(());
    }
    tracing::info!("rewriting the database once (VACUUM) so that retention can give space back");
    let started = std::time::Instant::now();
    set_incremental_vacuum(conn)?;
    conn.execute_batch("VACUUM")?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "database rewritten"
    );
    Ok(())
}

/// What upgrading a version-`from` file adds, one line per step.
pub fn upgrade_steps(from: i64) -> Vec<&'static str> {
    UPGRADES
        .iter()
        .filter(|(v, _, _)| *v >= from)
        .map(|(_, _, what)| *what)
        .collect()
}

/// Upgrades a file of version `from` (at least [`FIRST_SHARED_VERSION`]) to
/// [`SCHEMA_VERSION`], in the caller's transaction.
fn upgrade(conn: &Connection, from: i64) -> rusqlite::Result<()> {
    for (v, sql, _) in UPGRADES {
        if *v >= from {
            conn.execute_batch(sql)?;
        }
    }
    if from <= 6 {
        recount(conn)?;
    }
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
}

/// What a database file holds, as far as the schema goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// No tables at all: a new file.
    Empty,
    /// This build's schema.
    Current,
    /// An older version with shared tables, upgraded in place at start.
    Upgrade(i64),
    /// An older layout with per-chat tables (0 = the Go mediator's), to be imported.
    Legacy(i64),
}

/// Reads the schema version of an open database and whether it holds any table.
pub fn inspect(conn: &Connection) -> Result<Found, StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == SCHEMA_VERSION {
        return Ok(Found::Current);
    }
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
        [],
        |r| r.get(0),
    )?;
    Ok(if tables == 0 {
        Found::Empty
    } else if version >= FIRST_SHARED_VERSION {
        Found::Upgrade(version)
    } else {
        Found::Legacy(version)
    })
}

/// Makes an open database ready for use: creates the schema in an empty file, accepts the
/// current one, upgrades an older shared-table one in place, and refuses a legacy file (which [`super::import`] converts before the store
/// opens it).
pub fn prepare(conn: &mut Connection) -> Result<(), StoreError> {
    match inspect(conn)? {
        Found::Current => Ok(()),
        Found::Empty => {
            set_incremental_vacuum(conn)?;
            if !has_incremental_vacuum(conn)? {
                // Switching to WAL has already written the header: rewrite the empty file.
                conn.execute_batch("VACUUM")?;
            }
            let tx = conn.transaction()?;
            create(&tx)?;
            tx.commit()?;
            tracing::info!(version = SCHEMA_VERSION, "database created");
            Ok(())
        }
        Found::Upgrade(from) => {
            let tx = conn.transaction()?;
            upgrade(&tx, from)?;
            tx.commit()?;
            enable_incremental_vacuum(conn)?;
            tracing::info!(
                from,
                to = SCHEMA_VERSION,
                adds = %upgrade_steps(from).join(", "),
                "database upgraded"
            );
            Ok(())
        }
        Found::Legacy(found) => Err(StoreError::NeedsImport { found }),
    }
}

/// [`prepare`] on the file at `path` (`mediatord migrate` with the daemon stopped).
pub fn prepare_file(path: &std::path::Path) -> Result<(), StoreError> {
    prepare(&mut Connection::open(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_current_and_legacy_files_are_told_apart() {
        let conn = Connection::open_in_memory().unwrap();
        assert_eq!(inspect(&conn).unwrap(), Found::Empty);
        conn.execute_batch("CREATE TABLE chats (id INTEGER PRIMARY KEY)")
            .unwrap();
        assert_eq!(inspect(&conn).unwrap(), Found::Legacy(0));
        conn.pragma_update(None, "user_version", 4).unwrap();
        assert_eq!(inspect(&conn).unwrap(), Found::Legacy(4));
        let conn = Connection::open_in_memory().unwrap();
        create(&conn).unwrap();
        assert_eq!(inspect(&conn).unwrap(), Found::Current);
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(matches!(
            inspect(&conn),
            Err(StoreError::TooNew { found, .. }) if found == SCHEMA_VERSION + 1
        ));
    }

    /// A version-5 file (as the first shared-table release wrote it) is upgraded in place to
    /// the current schema, keeping its rows; the result has exactly the tables, indexes and
    /// columns a new file gets.
    #[test]
    fn version_5_files_are_upgraded_in_place() {
        let mut old = Connection::open_in_memory().unwrap();
        old.execute_batch(SCHEMA).unwrap();
        old.pragma_update(None, "user_version", 5).unwrap();
        old.execute_batch(
            "INSERT INTO chats (id, owner, created_at) VALUES (7, X'01', 1);
             INSERT INTO messages (chat_id, id, guid, ts, author, body)
                 VALUES (7, 1, 1, 1, X'01', X'0102030405'), (7, 2, 2, 1, X'01', NULL);",
        )
        .unwrap();
        assert!(!has_incremental_vacuum(&old).unwrap());
        assert_eq!(inspect(&old).unwrap(), Found::Upgrade(5));
        assert_eq!(
            upgrade_steps(5),
            vec![
                "the audit log of control actions",
                "server-wide blocks of keys and sources",
                "message counts per chat and an index by time (for retention)"
            ]
        );
        prepare(&mut old).unwrap();
        assert_eq!(inspect(&old).unwrap(), Found::Current);
        let n: i64 = old
            .query_row("SELECT COUNT(*) FROM chats", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        let counted: (i64, i64) = old
            .query_row(
                "SELECT message_count, message_bytes FROM chats WHERE id = 7",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            counted,
            (2, 5),
            "counts filled in from the rows already there"
        );
        assert!(has_incremental_vacuum(&old).unwrap());
        let mut fresh = Connection::open_in_memory().unwrap();
        prepare(&mut fresh).unwrap();
        assert!(has_incremental_vacuum(&fresh).unwrap());
        let shape = |c: &Connection| -> Vec<(String, String)> {
            let mut st = c
                .prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
                .unwrap();
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        assert_eq!(shape(&old), shape(&fresh));
    }

    /// Each chat's count and bytes follow inserts (through the one insert path), body
    /// changes and deletes (triggers, whichever statement makes them), and a recount agrees.
    #[test]
    fn message_counters_follow_every_change() {
        let mut c = Connection::open_in_memory().unwrap();
        prepare(&mut c).unwrap();
        let counts = |c: &Connection, chat: i64| -> (i64, i64) {
            c.query_row(
                "SELECT message_count, message_bytes FROM chats WHERE id = ?1",
                [chat],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        };
        c.execute_batch(
            "INSERT INTO chats (id, owner, created_at) VALUES (1, X'01', 0), (2, X'01', 0);",
        )
        .unwrap();
        for (chat, guid, len) in [(1, 1, 100), (1, 2, 50), (2, 1, 7)] {
            super::super::queries::Protocol::insert_message(&c, chat, guid, &[1], &vec![0; len], 0)
                .unwrap();
        }
        assert_eq!(counts(&c, 1), (2, 150));
        assert_eq!(counts(&c, 2), (1, 7));
        c.execute(
            "UPDATE messages SET body = NULL WHERE chat_id = 1 AND id = 2",
            [],
        )
        .unwrap();
        assert_eq!(counts(&c, 1), (2, 100));
        c.execute("DELETE FROM messages WHERE chat_id = 1 AND id = 1", [])
            .unwrap();
        assert_eq!(counts(&c, 1), (1, 0));
        assert_eq!(counts(&c, 2), (1, 7));
        c.execute(
            "UPDATE chats SET message_count = 99, message_bytes = 99",
            [],
        )
        .unwrap();
        recount(&c).unwrap();
        assert_eq!((counts(&c, 1), counts(&c, 2)), ((1, 0), (1, 7)));
    }
}
