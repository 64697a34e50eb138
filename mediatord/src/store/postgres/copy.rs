//! `mediatord migrate --from sqlite:PATH --to postgres://…`: copies a SQLite store into a
//! PostgreSQL database, all of it or nothing.
//!
//! The SQLite file is read in one read transaction (one snapshot, even if something writes
//! to it meanwhile). On the PostgreSQL side everything happens in one transaction, under a
//! transaction-level advisory lock so that two copies never interleave: the schema is
//! created if the database has none, every table is emptied and filled again with a binary
//! `COPY`, the identity sequences continue after the highest copied id (for invites, after
//! the highest id SQLite ever gave out), and the row count of every table and the total
//! bytes of message bodies are compared with the source before the commit. So a copy can be
//! rerun (it replaces the previous copy) and a copy that fails leaves the target as it was.
//! A database a daemon has served from is not replaced unless the caller says so.

use super::connect::ConnString;
use super::schema::{META_TABLE, SCHEMA, STATE_COPIED, STATE_SERVING, TABLES};
use super::tables::{Kind, TableSpec, SPECS};
use crate::store::schema::SCHEMA_VERSION;
use futures::pin_mut;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Transaction;

/// Key of the transaction-level advisory lock every copy takes on the target.
pub const COPY_LOCK_KEY: i64 = 0x6d65_6469_6d69_6772; // "medimigr"

/// Why a copy did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("reading the SQLite store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {0}")]
    Postgres(String),
    #[error("{0}")]
    Refused(String),
    #[error("{table}.{column}, row {row} of the source: {found} where {expected} is expected")]
    Value {
        table: &'static str,
        column: &'static str,
        row: u64,
        found: &'static str,
        expected: &'static str,
    },
    #[error("the copy does not match the source ({0}); nothing was committed")]
    Mismatch(String),
}

impl From<crate::store::StoreError> for CopyError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Postgres(s) => CopyError::Postgres(s),
            other => CopyError::Postgres(other.to_string()),
        }
    }
}

impl From<tokio_postgres::Error> for CopyError {
    fn from(e: tokio_postgres::Error) -> Self {
        CopyError::Postgres(super::describe(&e))
    }
}

/// What the caller asks of a copy.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Replace a database a daemon has served from (its own writes are lost).
    pub replace: bool,
    /// Do all of it and roll back: shows that the copy would succeed, changes nothing.
    pub dry_run: bool,
}

/// One table copied.
#[derive(Debug, Clone)]
pub struct TableCopy {
    pub table: &'static str,
    pub rows: u64,
    pub elapsed: Duration,
}

/// A finished copy.
#[derive(Debug, Clone)]
pub struct CopyReport {
    pub tables: Vec<TableCopy>,
    /// Total bytes of message bodies, the same on both sides.
    pub body_bytes: i64,
    /// Whether the target already held a copy (or a served database) that was replaced.
    pub replaced: bool,
    /// Whether the transaction was committed (not a dry run).
    pub committed: bool,
    pub elapsed: Duration,
}

/// One value on its way from SQLite to PostgreSQL.
#[derive(Debug)]
enum Cell {
    Int(Option<i64>),
    Bytes(Option<Vec<u8>>),
    Text(Option<String>),
}

impl Cell {
    fn sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Cell::Int(v) => v,
            Cell::Bytes(v) => v,
            Cell::Text(v) => v,
        }
    }
}

fn type_name(v: ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Null => "NULL",
        ValueRef::Integer(_) => "an integer",
        ValueRef::Real(_) => "a real number",
        ValueRef::Text(_) => "text",
        ValueRef::Blob(_) => "a blob",
    }
}

/// Converts one SQLite value; never changes its bytes, refuses what would have to change.
fn cell(
    table: &'static str,
    column: &'static str,
    row: u64,
    kind: Kind,
    v: ValueRef<'_>,
) -> Result<Cell, CopyError> {
    let wrong = |found: &'static str, expected: &'static str| CopyError::Value {
        table,
        column,
        row,
        found,
        expected,
    };
    Ok(match (kind, v) {
        (Kind::Int, ValueRef::Null) => Cell::Int(None),
        (Kind::Int, ValueRef::Integer(i)) => Cell::Int(Some(i)),
        (Kind::Bytes, ValueRef::Null) => Cell::Bytes(None),
        (Kind::Bytes, ValueRef::Blob(b) | ValueRef::Text(b)) => Cell::Bytes(Some(b.to_vec())),
        (Kind::Text, ValueRef::Null) => Cell::Text(None),
        (Kind::Text, ValueRef::Text(t)) => Cell::Text(Some(
            String::from_utf8(t.to_vec()).map_err(|_| wrong("text that is not UTF-8", "text"))?,
        )),
        (Kind::Int, other) => return Err(wrong(type_name(other), "an integer")),
        (Kind::Bytes, other) => return Err(wrong(type_name(other), "text or a blob")),
        (Kind::Text, other) => return Err(wrong(type_name(other), "text")),
    })
}

/// Opens the SQLite store read-only and starts the read transaction the copy reads in.
fn open_source(path: &Path) -> Result<Connection, CopyError> {
    if !path.exists() {
        return Err(CopyError::Refused(format!(
            "{}: no such file",
            path.display()
        )));
    }
    let src = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let version: i64 = src.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version != SCHEMA_VERSION {
        return Err(CopyError::Refused(format!(
            "{} has schema version {version}; only version {SCHEMA_VERSION} is copied: run \
             `mediatord migrate {}` first",
            path.display(),
            path.display()
        )));
    }
    src.execute_batch("BEGIN")?;
    // The first read fixes the snapshot every later read sees.
    src.query_row("SELECT count(*) FROM chats", [], |_| Ok(()))?;
    Ok(src)
}

/// Creates the schema in an empty database, or checks the one there: returns whether the
/// database already held a mediatord store (which the copy replaces).
async fn prepare_target(tx: &Transaction<'_>, opts: &CopyOptions) -> Result<bool, CopyError> {
    let row = tx
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL, to_regclass('chats') IS NOT NULL",
            &[&META_TABLE],
        )
        .await?;
    let (has_meta, has_chats): (bool, bool) = (row.get(0), row.get(1));
    if !has_meta {
        if has_chats {
            return Err(CopyError::Refused(
                "the target database has a table named chats but no mediatord_schema: it is \
                 not a mediatord store, so nothing is copied over it"
                    .into(),
            ));
        }
        tx.batch_execute(SCHEMA).await?;
        return Ok(false);
    }
    let meta = tx
        .query_opt(
            &format!("SELECT version, state, origin FROM {META_TABLE}"),
            &[],
        )
        .await?;
    if let Some(meta) = meta {
        let (version, state, origin): (i64, String, String) =
            (meta.get(0), meta.get(1), meta.get(2));
        if version != SCHEMA_VERSION {
            return Err(CopyError::Refused(format!(
                "the target holds schema version {version}, this mediatord writes \
                 {SCHEMA_VERSION}"
            )));
        }
        if state == STATE_SERVING && !opts.replace {
            return Err(CopyError::Refused(format!(
                "a mediatord has served from the target database (copied from {origin}): \
                 copying over it would lose what it wrote; pass --replace to do it anyway"
            )));
        }
    }
    Ok(true)
}

/// Copies one table; returns the rows written.
async fn copy_table(
    src: &Connection,
    tx: &Transaction<'_>,
    spec: &TableSpec,
) -> Result<u64, CopyError> {
    let reads: Vec<&str> = spec.columns.iter().map(|c| c.1).collect();
    let names: Vec<String> = spec
        .columns
        .iter()
        .map(|c| format!("\"{}\"", c.0))
        .collect();
    let types: Vec<Type> = spec.columns.iter().map(|c| c.2.pg()).collect();
    let sink = tx
        .copy_in(&format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            spec.name,
            names.join(", ")
        ))
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    let mut stmt = src.prepare(&format!(
        "SELECT {} FROM {} ORDER BY {}",
        reads.join(", "),
        spec.name,
        spec.order
    ))?;
    let mut rows = stmt.query([])?;
    let mut n = 0u64;
    let mut cells = Vec::with_capacity(spec.columns.len());
    while let Some(row) = rows.next()? {
        n += 1;
        cells.clear();
        for (i, c) in spec.columns.iter().enumerate() {
            cells.push(cell(spec.name, c.0, n, c.2, row.get_ref(i)?)?);
        }
        let refs: Vec<&(dyn ToSql + Sync)> = cells.iter().map(Cell::sql).collect();
        writer.as_mut().write(&refs).await?;
    }
    let written = writer.finish().await?;
    if let Some(col) = spec.identity {
        let read = spec
            .columns
            .iter()
            .find(|c| c.0 == col)
            .map_or(col, |c| c.1);
        continue_identity(src, tx, spec.name, col, read).await?;
    }
    Ok(written)
}

/// Sets `table.col`'s identity sequence to continue after the highest id SQLite holds (in
/// `read`) or, for AUTOINCREMENT tables, ever gave out.
async fn continue_identity(
    src: &Connection,
    tx: &Transaction<'_>,
    table: &str,
    col: &str,
    read: &str,
) -> Result<(), CopyError> {
    let mut last: i64 = src.query_row(
        &format!("SELECT IFNULL(MAX({read}), 0) FROM {table}"),
        [],
        |r| r.get(0),
    )?;
    let has_sequence: bool = src.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'sqlite_sequence'",
        [],
        |r| r.get(0),
    )?;
    if has_sequence {
        let given: Option<i64> = src
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = ?1",
                [table],
                |r| r.get(0),
            )
            .ok();
        last = last.max(given.unwrap_or(0));
    }
    let (value, called) = if last > 0 { (last, true) } else { (1, false) };
    tx.execute(
        "SELECT setval(pg_get_serial_sequence($1, $2), $3, $4)",
        &[&table, &col, &value, &called],
    )
    .await?;
    Ok(())
}

/// Row counts and body bytes, compared on both sides before the commit.
async fn verify(src: &Connection, tx: &Transaction<'_>) -> Result<i64, CopyError> {
    let mut differ = Vec::new();
    for table in TABLES {
        let mine: i64 =
            src.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
        let theirs: i64 = tx
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await?
            .get(0);
        if mine != theirs {
            differ.push(format!(
                "{table}: {mine} rows in the source, {theirs} copied"
            ));
        }
    }
    let mine: i64 = src.query_row(
        "SELECT IFNULL(SUM(length(CAST(body AS BLOB))), 0) FROM messages",
        [],
        |r| r.get(0),
    )?;
    let theirs: i64 = tx
        .query_one(
            "SELECT COALESCE(SUM(length(body)), 0)::BIGINT FROM messages",
            &[],
        )
        .await?
        .get(0);
    if mine != theirs {
        differ.push(format!(
            "message bodies: {mine} bytes in the source, {theirs} copied"
        ));
    }
    if differ.is_empty() {
        Ok(mine)
    } else {
        Err(CopyError::Mismatch(differ.join("; ")))
    }
}

/// Copies the SQLite store at `source` into the PostgreSQL database at `url`, calling
/// `on_table` after each table.
pub async fn copy_sqlite_to_postgres(
    source: &Path,
    url: &str,
    opts: &CopyOptions,
    mut on_table: impl FnMut(&TableCopy),
) -> Result<CopyReport, CopyError> {
    let t0 = Instant::now();
    let src = open_source(source)?;
    let mut client = ConnString::parse(url)?.connect().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&COPY_LOCK_KEY])
        .await?;
    let replaced = prepare_target(&tx, opts).await?;
    tx.batch_execute(&format!("TRUNCATE {} RESTART IDENTITY", TABLES.join(", ")))
        .await?;
    let mut tables = Vec::new();
    for spec in SPECS {
        let t = Instant::now();
        let rows = copy_table(&src, &tx, spec).await?;
        let done = TableCopy {
            table: spec.name,
            rows,
            elapsed: t.elapsed(),
        };
        on_table(&done);
        tables.push(done);
    }
    let body_bytes = verify(&src, &tx).await?;
    let origin = format!("sqlite:{}", source.display());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    tx.execute(&format!("DELETE FROM {META_TABLE}"), &[])
        .await?;
    tx.execute(
        &format!(
            "INSERT INTO {META_TABLE} (version, state, origin, changed_at) VALUES ($1, $2, $3, $4)"
        ),
        &[&SCHEMA_VERSION, &STATE_COPIED, &origin, &now],
    )
    .await?;
    let committed = !opts.dry_run;
    if committed {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    drop(client);
    Ok(CopyReport {
        tables,
        body_bytes,
        replaced,
        committed,
        elapsed: t0.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value of the wrong kind is refused with its place, never converted.
    #[test]
    fn values_are_copied_as_they_are_or_refused() {
        assert!(matches!(
            cell("m", "body", 1, Kind::Bytes, ValueRef::Text(b"\xff\x00")),
            Ok(Cell::Bytes(Some(b))) if b == b"\xff\x00"
        ));
        let e = cell("members", "info", 7, Kind::Bytes, ValueRef::Integer(42)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "members.info, row 7 of the source: an integer where text or a blob is expected"
        );
        assert!(cell("audit", "user", 1, Kind::Text, ValueRef::Text(b"\xff")).is_err());
        assert!(cell("chats", "id", 1, Kind::Int, ValueRef::Real(1.0)).is_err());
    }
}
