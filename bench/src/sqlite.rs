//! The raw SQLite baselines: the rows mediatord stores, written and read with rusqlite alone.
//!
//! The table is mediatord's own `messages` (schema 5, created by the daemon's schema code:
//! rows in arrival order with bodies inline, indexes on (chat, id) and (chat, guid)), the
//! database uses WAL with `synchronous=FULL` like the daemon, and inserts are batched
//! [`INSERT_BATCH`] rows per durable COMMIT, the best case that group commit can approach
//! (ids are counted in memory, where the daemon also bumps the chat's counter row). Reads
//! page through one chat with the daemon's query shape.

use anyhow::{Context, Result};
use rusqlite::{params, Connection};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// Rows per transaction in the best-case insert baseline.
pub const INSERT_BATCH: usize = 1_000;

/// The outcome of one baseline.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SqliteReport {
    pub rows: u64,
    pub seconds: f64,
    pub rows_per_s: f64,
}

fn open(path: &Path) -> Result<Connection> {
    let c = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    // A new file gets the daemon's page layout (a no-op on an existing one).
    mediatord::store::schema::set_incremental_vacuum(&c)?;
    let mode: String = c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    anyhow::ensure!(mode.eq_ignore_ascii_case("wal"), "no WAL: {mode}");
    c.pragma_update(None, "synchronous", "FULL")?;
    Ok(c)
}

/// The daemon's own schema (one source for the table shape), in a fresh file.
fn create_table(c: &Connection) -> Result<()> {
    mediatord::store::schema::create(c).context("creating the schema")?;
    Ok(())
}

fn insert_rows(
    c: &mut Connection,
    rows: u64,
    chats: usize,
    blob: &[u8],
    batch: usize,
) -> Result<()> {
    let author = [9u8; 32];
    let mut next_id = vec![0i64; chats];
    let mut done = 0u64;
    while done < rows {
        let n = (rows - done).min(batch.max(1) as u64);
        let tx = c.transaction()?;
        let mut st = tx.prepare_cached(
            "INSERT INTO messages (chat_id, id, guid, ts, author, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for k in done..done + n {
            let chat = k as usize % chats;
            next_id[chat] += 1;
            st.execute(params![
                chat as i64 + 1,
                next_id[chat],
                k as i64,
                1_700_000_000i64,
                &author[..],
                blob
            ])?;
        }
        drop(st);
        tx.commit()?;
        done += n;
    }
    Ok(())
}

/// Inserts `rows` rows with `blob_size`-byte bodies, spread over `tables` chats, `batch` rows
/// per COMMIT, into a fresh database in `dir`.
pub fn insert(
    dir: &Path,
    rows: u64,
    tables: usize,
    blob_size: usize,
    batch: usize,
) -> Result<SqliteReport> {
    let mut c = open(&dir.join(format!("insert-{batch}.db")))?;
    create_table(&c)?;
    let blob = vec![0x5au8; blob_size];
    let t0 = Instant::now();
    insert_rows(&mut c, rows, tables.max(1), &blob, batch)?;
    let seconds = t0.elapsed().as_secs_f64();
    Ok(SqliteReport {
        rows,
        seconds,
        rows_per_s: rows as f64 / seconds,
    })
}

/// Fills one chat with `rows` rows, then reads them all back in pages of `page` rows
/// (`WHERE chat_id = 1 AND id > ? ORDER BY id LIMIT ?`, every column), `passes` times. Times
/// the reading only and reports the median pass.
pub fn read_pages(
    dir: &Path,
    rows: u64,
    blob_size: usize,
    page: u32,
    passes: usize,
) -> Result<SqliteReport> {
    let path = dir.join("read.db");
    {
        let mut c = open(&path)?;
        create_table(&c)?;
        insert_rows(&mut c, rows, 1, &vec![0x5au8; blob_size], INSERT_BATCH)?;
    }
    let c = open(&path)?;
    let mut st = c.prepare(
        "SELECT id, guid, ts, author, body FROM messages WHERE chat_id = 1 AND id > ?1
         ORDER BY id LIMIT ?2",
    )?;
    let mut times = Vec::with_capacity(passes.max(1));
    let mut total = 0;
    for _ in 0..passes.max(1) {
        let t0 = Instant::now();
        let mut since = 0i64;
        total = 0u64;
        loop {
            let mut n = 0;
            let mut rs = st.query(params![since, page])?;
            while let Some(r) = rs.next()? {
                since = r.get(0)?;
                let _guid: i64 = r.get(1)?;
                let _ts: i64 = r.get(2)?;
                let _author: Vec<u8> = r.get(3)?;
                let _body: Vec<u8> = r.get(4)?;
                n += 1;
            }
            if n == 0 {
                break;
            }
            total += n;
        }
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let seconds = times[times.len() / 2];
    anyhow::ensure!(total == rows, "read {total} of {rows} rows");
    Ok(SqliteReport {
        rows: total,
        seconds,
        rows_per_s: total as f64 / seconds,
    })
}
