//! How each table of the SQLite store maps onto its PostgreSQL twin: for every column, its
//! PostgreSQL name, the SQLite expression that reads it (`rowid` where SQLite's implicit
//! row id carries meaning) and what it holds; the order rows are read in; the identity
//! column whose sequence must continue after a copy.

use tokio_postgres::types::Type;

/// What a column holds, on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Bytes,
    Text,
}

impl Kind {
    pub fn pg(self) -> Type {
        match self {
            Kind::Int => Type::INT8,
            Kind::Bytes => Type::BYTEA,
            Kind::Text => Type::TEXT,
        }
    }
}

/// A column: its PostgreSQL name, the SQLite expression that reads it, and its kind.
pub struct Column(pub &'static str, pub &'static str, pub Kind);

/// A table: its columns, the order rows are read in, and its identity column if any.
pub struct TableSpec {
    pub name: &'static str,
    pub columns: &'static [Column],
    pub order: &'static str,
    pub identity: Option<&'static str>,
}

use Kind::{Bytes, Int, Text};

/// Every table of schema version 7, in [`TABLES`](super::schema::TABLES)'s order.
pub const SPECS: &[TableSpec] = &[
    TableSpec {
        name: "chats",
        columns: &[
            Column("id", "id", Int),
            Column("owner", "owner", Bytes),
            Column("created_at", "created_at", Int),
            Column("last_message_id", "last_message_id", Int),
            Column("message_count", "message_count", Int),
            Column("message_bytes", "message_bytes", Int),
        ],
        order: "id",
        identity: None,
    },
    TableSpec {
        name: "chat_settings",
        columns: &[
            Column("chat_id", "chat_id", Int),
            Column("name", "name", Bytes),
            Column("description", "description", Bytes),
            Column("avatar", "avatar", Bytes),
            Column("perms_flags", "perms_flags", Int),
            Column("extra", "extra", Bytes),
        ],
        order: "chat_id",
        identity: None,
    },
    TableSpec {
        name: "members",
        columns: &[
            Column("seq", "rowid", Int),
            Column("chat_id", "chat_id", Int),
            Column("pubkey", "pubkey", Bytes),
            Column("text_rank", "text_rank", Bytes),
            Column("perms_flags", "perms_flags", Int),
            Column("accepted_at", "accepted_at", Int),
            Column("changed_at", "changed_at", Int),
            Column("banned", "banned", Int),
            Column("ban_rank", "ban_rank", Int),
            Column("info", "info", Bytes),
            Column("last_seen", "last_seen", Int),
        ],
        order: "rowid",
        identity: Some("seq"),
    },
    TableSpec {
        name: "messages",
        columns: &[
            Column("seq", "seq", Int),
            Column("chat_id", "chat_id", Int),
            Column("id", "id", Int),
            Column("guid", "guid", Int),
            Column("ts", "ts", Int),
            Column("author", "author", Bytes),
            Column("body", "body", Bytes),
        ],
        order: "seq",
        identity: Some("seq"),
    },
    TableSpec {
        name: "invites",
        columns: &[
            Column("id", "id", Int),
            Column("timestamp", "timestamp", Int),
            Column("from_pubkey", "from_pubkey", Bytes),
            Column("to_pubkey", "to_pubkey", Bytes),
            Column("chat_id", "chat_id", Int),
            Column("encrypted_data", "encrypted_data", Bytes),
            Column("sent", "sent", Int),
        ],
        order: "id",
        identity: Some("id"),
    },
    TableSpec {
        name: "nonces",
        columns: &[
            Column("pubkey", "pubkey", Bytes),
            Column("nonce", "nonce", Bytes),
            Column("ts", "ts", Int),
        ],
        order: "pubkey, nonce",
        identity: None,
    },
    TableSpec {
        name: "audit",
        columns: &[
            Column("id", "id", Int),
            Column("ts", "ts", Int),
            Column("uid", "uid", Int),
            Column("user", "user", Text),
            Column("action", "action", Text),
            Column("target", "target", Text),
            Column("result", "result", Text),
        ],
        order: "id",
        identity: Some("id"),
    },
    TableSpec {
        name: "blocks",
        columns: &[
            Column("kind", "kind", Text),
            Column("value", "value", Text),
            Column("until", "until", Int),
            Column("reason", "reason", Text),
            Column("created_at", "created_at", Int),
        ],
        order: "kind, value",
        identity: None,
    },
];

#[cfg(test)]
mod tests {
    use super::super::schema::TABLES;
    use super::*;
    use rusqlite::Connection;

    /// Every table of the schema has a copy spec, in the same order, and every spec names
    /// each of its table's SQLite columns: a column added to the schema without a spec
    /// would be lost by the copy.
    #[test]
    fn specs_cover_every_column_of_the_sqlite_schema() {
        let names: Vec<&str> = SPECS.iter().map(|s| s.name).collect();
        assert_eq!(names, TABLES);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let conn = Connection::open(&path).unwrap();
        crate::store::schema::create(&conn).unwrap();
        for spec in SPECS {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT name FROM pragma_table_info('{}')",
                    spec.name
                ))
                .unwrap();
            let cols: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let read: Vec<&str> = spec.columns.iter().map(|c| c.1).collect();
            for c in &cols {
                assert!(
                    read.contains(&c.as_str()),
                    "{}.{c} is not copied",
                    spec.name
                );
            }
        }
    }
}
