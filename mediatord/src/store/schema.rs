//! The database schema and its ordered migrations.
//!
//! The layout follows the Go mediator (`mediator-protocol.md` §9.1) so that an existing
//! `mediator.db` opens in place: global tables `nonces`, `chats`, `invites`, and per chat the
//! tables `settings-N`, `users-N` and `messages-N`, created with the chat and dropped with it.
//! mediatord adds what the Go server kept elsewhere or lacked: message bodies in a `body`
//! column of `messages-N` (the Go server kept them in a 24-hour cache), several outstanding
//! nonces per key, and indexes for its queries. `PRAGMA user_version` holds the schema version;
//! a Go database has version 0 and is brought forward by the same migrations as a new file.

use super::StoreError;
use rusqlite::{params, Connection};

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 2;

/// Quoted per-chat table names.
pub fn settings_table(chat: i64) -> String {
    format!("\"settings-{chat}\"")
}
pub fn users_table(chat: i64) -> String {
    format!("\"users-{chat}\"")
}
pub fn messages_table(chat: i64) -> String {
    format!("\"messages-{chat}\"")
}

/// Creates the three per-chat tables of a new chat.
pub fn create_chat_tables(conn: &Connection, chat: i64) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "CREATE TABLE {s} (
            name TEXT NOT NULL,
            description TEXT NOT NULL,
            avatar BLOB,
            perms_flags INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            extra TEXT
        );
        CREATE TABLE {u} (
            pubkey BLOB PRIMARY KEY,
            text_rank TEXT,
            perms_flags INTEGER NOT NULL,
            accepted_at INTEGER NOT NULL,
            changed_at INTEGER NOT NULL,
            banned INTEGER NOT NULL DEFAULT 0,
            info BLOB,
            last_seen INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE {m} (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts INTEGER NOT NULL,
            guid INTEGER NOT NULL UNIQUE,
            author BLOB NOT NULL,
            body BLOB
        );",
        s = settings_table(chat),
        u = users_table(chat),
        m = messages_table(chat),
    ))
}

/// Drops the per-chat tables.
pub fn drop_chat_tables(conn: &Connection, chat: i64) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {};",
        settings_table(chat),
        users_table(chat),
        messages_table(chat)
    ))
}

fn tables_like(conn: &Connection, prefix: &str) -> rusqlite::Result<Vec<String>> {
    let mut st =
        conn.prepare("SELECT name FROM sqlite_master WHERE type='table' AND name LIKE ?1")?;
    let rows = st.query_map(params![format!("{prefix}%")], |r| r.get::<_, String>(0))?;
    rows.collect()
}

fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare(&format!("PRAGMA table_info(\"{table}\")"))?;
    let rows = st.query_map([], |r| r.get::<_, String>(1))?;
    rows.collect()
}

/// Version 1: the Go mediator's global tables and its own start-up migrations.
fn migrate_v1(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS nonces (
            pubkey BLOB PRIMARY KEY,
            nonce BLOB NOT NULL,
            ts INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS chats (
            id INTEGER PRIMARY KEY,
            owner_pubkey BLOB NOT NULL,
            created_at INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS invites (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            timestamp INTEGER NOT NULL,
            from_pubkey BLOB NOT NULL,
            to_pubkey BLOB NOT NULL,
            chat_id INTEGER NOT NULL,
            encrypted_data BLOB NOT NULL,
            sent INTEGER NOT NULL DEFAULT 0,
            UNIQUE(to_pubkey, chat_id)
        );",
    )?;
    if !columns(conn, "invites")?.iter().any(|c| c == "sent") {
        conn.execute_batch("ALTER TABLE invites ADD COLUMN sent INTEGER NOT NULL DEFAULT 0")?;
    }
    for t in tables_like(conn, "users-")? {
        let cols = columns(conn, &t)?;
        let has = |c: &str| cols.iter().any(|x| x == c);
        if !has("changed_at") {
            if has("last_perm_change") {
                conn.execute_batch(&format!(
                    "ALTER TABLE \"{t}\" RENAME COLUMN last_perm_change TO changed_at"
                ))?;
            } else {
                conn.execute_batch(&format!(
                    "ALTER TABLE \"{t}\" ADD COLUMN changed_at INTEGER NOT NULL DEFAULT 0"
                ))?;
            }
        }
        if !has("last_seen") {
            conn.execute_batch(&format!(
                "ALTER TABLE \"{t}\" ADD COLUMN last_seen INTEGER NOT NULL DEFAULT 0"
            ))?;
        }
        if !has("info") {
            // Tables older than the member-info commands (§9.1 [H]); the Go server never
            // added it, so member info failed on such chats.
            conn.execute_batch(&format!("ALTER TABLE \"{t}\" ADD COLUMN info BLOB"))?;
        }
    }
    Ok(())
}

/// Version 2: durable message bodies, several nonces per key, indexes.
fn migrate_v2(conn: &Connection) -> rusqlite::Result<()> {
    for t in tables_like(conn, "messages-")? {
        if !columns(conn, &t)?.iter().any(|c| c == "body") {
            // Bodies of messages stored by the Go server lived in its cache and are gone;
            // those rows keep a NULL body and are skipped by sync.
            conn.execute_batch(&format!("ALTER TABLE \"{t}\" ADD COLUMN body BLOB"))?;
        }
    }
    conn.execute_batch(
        "CREATE TABLE nonces_v2 (
            pubkey BLOB NOT NULL,
            nonce BLOB NOT NULL,
            ts INTEGER NOT NULL,
            PRIMARY KEY (pubkey, nonce)
        ) WITHOUT ROWID;
        INSERT OR IGNORE INTO nonces_v2 (pubkey, nonce, ts) SELECT pubkey, nonce, ts FROM nonces;
        DROP TABLE nonces;
        ALTER TABLE nonces_v2 RENAME TO nonces;
        CREATE INDEX IF NOT EXISTS nonces_ts ON nonces (ts);
        CREATE INDEX IF NOT EXISTS chats_owner ON chats (owner_pubkey);
        CREATE INDEX IF NOT EXISTS invites_chat ON invites (chat_id);
        CREATE INDEX IF NOT EXISTS invites_ts ON invites (timestamp);",
    )
}

/// One migration step.
type Migration = fn(&Connection) -> rusqlite::Result<()>;

/// Brings the database to [`SCHEMA_VERSION`], each step in its own transaction.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let steps: [(i64, Migration); 2] = [(1, migrate_v1), (2, migrate_v2)];
    for (version, step) in steps {
        if found < version {
            let tx = conn.transaction()?;
            step(&tx)?;
            tx.pragma_update(None, "user_version", version)?;
            tx.commit()?;
            tracing::info!(version, "database migrated");
        }
    }
    Ok(())
}
