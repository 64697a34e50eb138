//! The database schema and its ordered migrations.
//!
//! The layout follows the Go mediator (`mediator-protocol.md` §9.1) so that an existing
//! `mediator.db` opens in place: global tables `nonces`, `chats`, `invites`, and per chat the
//! tables `settings-N`, `users-N` and `messages-N`, created with the chat and dropped with it.
//! mediatord adds what the Go server kept elsewhere or lacked: message bodies in a `body`
//! column of `messages-N` (the Go server kept them in a 24-hour cache), several outstanding
//! nonces per key, and indexes for its queries. `PRAGMA user_version` holds the schema version;
//! a Go database has version 0 and is brought forward by the same migrations as a new file.
//!
//! `memberships` (key, chat) lists every unbanned member of every chat, so GET_USER_CHATS is
//! one indexed query instead of one per chat on the server. Triggers on each `users-N` keep it
//! in step with every insert, delete and ban, whatever code path writes the row; dropping a
//! chat deletes its rows. A chat whose triggers are missing (created by the Go server after a
//! migration, say) gets them, and its rows rebuilt, each time the database is opened.

use super::StoreError;
use rusqlite::{params, Connection};

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 4;

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

/// Creates the three per-chat tables of a new chat, and its membership triggers.
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
    ))?;
    index_memberships(conn, chat)
}

/// Drops the per-chat tables (and with them the membership triggers) and the chat's rows in
/// `memberships`.
pub fn drop_chat_tables(conn: &Connection, chat: i64) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {};",
        settings_table(chat),
        users_table(chat),
        messages_table(chat)
    ))?;
    conn.execute("DELETE FROM memberships WHERE chat_id = ?1", [chat])?;
    conn.execute("DELETE FROM bans WHERE chat_id = ?1", [chat])?;
    Ok(())
}

/// Names of the three triggers that mirror `users-N` into `memberships`.
fn membership_triggers(chat: i64) -> [String; 3] {
    [
        format!("\"users-{chat}-join\""),
        format!("\"users-{chat}-leave\""),
        format!("\"users-{chat}-change\""),
    ]
}

/// Creates the membership triggers of chat `chat` (if missing) and rebuilds its rows in
/// `memberships` from `users-N`. A member is a row whose `banned` is 0, as in
/// `queries::require_member`.
pub fn index_memberships(conn: &Connection, chat: i64) -> rusqlite::Result<()> {
    let [join, leave, change] = membership_triggers(chat);
    conn.execute_batch(&format!(
        "CREATE TRIGGER IF NOT EXISTS {join} AFTER INSERT ON {u} WHEN NEW.banned = 0
         BEGIN INSERT OR IGNORE INTO memberships (pubkey, chat_id) VALUES (NEW.pubkey, {chat}); END;
         CREATE TRIGGER IF NOT EXISTS {leave} AFTER DELETE ON {u}
         BEGIN DELETE FROM memberships WHERE pubkey = OLD.pubkey AND chat_id = {chat}; END;
         CREATE TRIGGER IF NOT EXISTS {change} AFTER UPDATE OF pubkey, banned ON {u}
         BEGIN
             DELETE FROM memberships WHERE pubkey = OLD.pubkey AND chat_id = {chat};
             INSERT OR IGNORE INTO memberships (pubkey, chat_id)
                 SELECT NEW.pubkey, {chat} WHERE NEW.banned = 0;
         END;
         DELETE FROM memberships WHERE chat_id = {chat};
         INSERT OR IGNORE INTO memberships (pubkey, chat_id)
             SELECT pubkey, {chat} FROM {u} WHERE banned = 0;",
        u = users_table(chat),
    ))
}

/// Indexes every chat whose `users-N` table lacks any of its membership triggers.
pub fn repair_membership_index(conn: &Connection) -> rusqlite::Result<()> {
    let chats: Vec<i64> = conn
        .prepare("SELECT id FROM chats ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut has = conn
        .prepare("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?1")?;
    let mut table =
        conn.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")?;
    for chat in chats {
        let users = format!("users-{chat}");
        if !table.exists([&users])? {
            continue;
        }
        let triggers: i64 = has.query_row([&users], |r| r.get(0))?;
        if triggers < 3 {
            tracing::info!(chat, "indexing the chat's members");
            index_memberships(conn, chat)?;
        }
    }
    Ok(())
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

/// Version 3: the `memberships` index (see the module docs).
fn migrate_v3(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS memberships (
            pubkey BLOB NOT NULL,
            chat_id INTEGER NOT NULL,
            PRIMARY KEY (pubkey, chat_id)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS memberships_chat ON memberships (chat_id);",
    )?;
    repair_membership_index(conn)
}

/// Version 4: `bans` records the rank of whoever banned a member, so that only an equal or
/// higher rank lifts the ban. Bans from before it have no row and count as rank 0 (anyone
/// who outranks the banned member may lift them, as before).
fn migrate_v4(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS bans (
            chat_id INTEGER NOT NULL,
            pubkey BLOB NOT NULL,
            rank INTEGER NOT NULL,
            PRIMARY KEY (chat_id, pubkey)
        ) WITHOUT ROWID;",
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
    let steps: [(i64, Migration); 4] = [
        (1, migrate_v1),
        (2, migrate_v2),
        (3, migrate_v3),
        (4, migrate_v4),
    ];
    for (version, step) in steps {
        if found < version {
            let tx = conn.transaction()?;
            step(&tx)?;
            tx.pragma_update(None, "user_version", version)?;
            tx.commit()?;
            tracing::info!(version, "database migrated");
        }
    }
    let tx = conn.transaction()?;
    repair_membership_index(&tx)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::queries as q;
    use rand::{Rng, SeedableRng};

    /// The first column of every row of `sql`.
    fn column<T: rusqlite::types::FromSql>(conn: &Connection, sql: &str) -> Vec<T> {
        conn.prepare(sql)
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// Chats where `key` has an unbanned row, found the slow way: every chat's table.
    fn scan(conn: &Connection, key: &[u8]) -> Vec<i64> {
        column::<i64>(conn, "SELECT id FROM chats ORDER BY id")
            .into_iter()
            .filter(|&id| matches!(q::member(conn, id, key).unwrap(), Some(m) if !m.banned))
            .collect()
    }

    fn open(path: &std::path::Path) -> Connection {
        let mut conn = Connection::open(path).unwrap();
        migrate(&mut conn).unwrap();
        conn
    }

    /// Random joins, bans, unbans, leaves, chat creations and deletions: the index always
    /// agrees with a scan of every chat's members, and so does a database whose triggers and
    /// index were lost (as an older or Go-written file) once it is opened again.
    #[test]
    fn membership_index_follows_every_change_and_is_rebuilt_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let conn = open(&path);
        let keys: Vec<[u8; 32]> = (0..6u8).map(|i| [i; 32]).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut chats: Vec<i64> = Vec::new();
        let name = rusqlite::types::Value::Text("c".into());
        for step in 0..600 {
            let key = &keys[rng.gen_range(0..keys.len())];
            match (rng.gen_range(0..10), chats.is_empty()) {
                (0, _) | (_, true) => {
                    let id = 1000 + step;
                    q::create_chat(&conn, id, key, &name, &name, None, 1).unwrap();
                    chats.push(id);
                }
                (1, false) if chats.len() > 2 => {
                    let id = chats.swap_remove(rng.gen_range(0..chats.len()));
                    q::delete_chat(&conn, id).unwrap();
                }
                (n, false) => {
                    let chat = chats[rng.gen_range(0..chats.len())];
                    let row = q::member(&conn, chat, key).unwrap();
                    match (n % 3, row) {
                        (_, None) => q::add_member(&conn, chat, key, 1, 1).unwrap(),
                        (0, Some(_)) => q::remove_member(&conn, chat, key).unwrap(),
                        (_, Some(m)) => {
                            let perms = if m.banned { 0x02 } else { 0x01 };
                            q::set_perms(&conn, chat, key, perms, 2).unwrap();
                        }
                    }
                }
            }
            for k in &keys {
                assert_eq!(
                    q::user_chats(&conn, k).unwrap(),
                    scan(&conn, k),
                    "step {step}"
                );
            }
        }
        // Lose the triggers and the index rows, as a file written without them would.
        let triggers: Vec<String> = column(
            &conn,
            "SELECT name FROM sqlite_master WHERE type = 'trigger'",
        );
        assert_eq!(triggers.len(), 3 * chats.len());
        for t in triggers {
            conn.execute_batch(&format!("DROP TRIGGER \"{t}\""))
                .unwrap();
        }
        conn.execute_batch("DELETE FROM memberships").unwrap();
        drop(conn);
        let conn = open(&path);
        for k in &keys {
            assert_eq!(q::user_chats(&conn, k).unwrap(), scan(&conn, k));
        }
        assert!(keys.iter().any(|k| !scan(&conn, k).is_empty()));
    }
}
