//! The SQLite backend's writer: the file opened in WAL mode, one writer thread with group
//! commit, a checkpointer thread, and the pool of read connections (see [`crate::store`] for
//! what the writer promises).
//!
//! Durability: WAL with `synchronous=FULL`, so a committed transaction survives a process crash
//! *and* a power loss; group commit amortises the fsync over every command in the batch.
//!
//! Checkpoints (copying the WAL back into the database file, with its own fsync) run on a
//! separate checkpointer thread and connection (every [`CHECKPOINT_PERIOD`], and again soon
//! while the log keeps growing), not inside the writer's commits as SQLite's automatic
//! checkpoint would: a passive checkpoint does not block the writer, so a commit costs one WAL
//! append and one fsync and no more. At shutdown the writer runs a final checkpoint that also
//! truncates the WAL.
//!
//! A WAL only starts again from its beginning when a write transaction begins just after a
//! checkpoint has copied *every* frame; under sustained writes the background checkpointer
//! never catches the writer at that instant, so the log would grow without end (measured:
//! 1.5 GB in 8 s of ingest, every append extending the file). So once the log holds
//! [`WAL_RESTART_FRAMES`] frames (SQLite's WAL hook reports the count after each commit), the
//! writer itself finishes the checkpoint between two transactions, copying only the few frames
//! the background thread has not, and its next transaction rewrites the log from the start. A
//! log left larger by a burst is truncated to [`WAL_SIZE_LIMIT`] when it restarts.

use crate::store::{
    batch_ended, check, complete, gauge, import, schema, Batch, Completion, Db, Job, Role, Store,
    StoreError, MAX_GROUP_COMMIT, READ_POOL_SIZE,
};
use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// How long a connection waits for a lock held by another process before failing, in ms.
pub const BUSY_TIMEOUT_MS: u64 = 5_000;
/// How often the checkpointer copies committed WAL frames into the database file.
pub const CHECKPOINT_PERIOD: std::time::Duration = std::time::Duration::from_millis(100);
/// Pause between background checkpoints while the WAL keeps growing.
pub const CHECKPOINT_BUSY_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);
/// WAL length, in frames (one page each), at which the writer completes a checkpoint itself so
/// that the log restarts from its beginning (16 MiB with 4 KiB pages; SQLite's own automatic
/// checkpoint uses 1,000).
pub const WAL_RESTART_FRAMES: i32 = 4096;
/// Bytes a restarting WAL file is truncated to when a burst left it larger: room for two
/// cycles of [`WAL_RESTART_FRAMES`], so steady writing never shrinks and regrows the file.
pub const WAL_SIZE_LIMIT: i64 = 2 * WAL_RESTART_FRAMES as i64 * WAL_FRAME_BYTES;
/// Bytes of one WAL frame: a 4 KiB page and its 24-byte frame header.
const WAL_FRAME_BYTES: i64 = 4096 + 24;
/// Page cache of the writer connection, in KiB. Group commits touch a few pages of every
/// active chat's tables; with SQLite's default (2 MiB) the writer re-read them from the OS
/// (a tenth of its time in the ingest profile).
pub const WRITER_CACHE_KIB: i64 = 32 * 1024;
/// Prepared statements cached per connection (every statement of the store fits).
pub const STATEMENT_CACHE: usize = 128;

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

/// Opens (creating if needed) the database at `path`, importing a legacy file first
/// ([`import`]), checking it before use only up to `quick_check_max` bytes and in the
/// background above (see [`check`]), then starts the writer.
pub(crate) fn open(path: &Path, quick_check_max: u64) -> Result<Store, StoreError> {
    import::import(path, &mut import::ServiceProgress)?;
    let mut conn = Connection::open(path)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, "database is not in WAL mode");
    }
    configure(&conn)?;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let check_later = size > quick_check_max;
    if !check_later {
        if let check::Integrity::Damaged(e) = check::quick_check(&conn)? {
            return Err(StoreError::Corrupt(e));
        }
    }
    schema::prepare(&mut conn)?;
    // The checkpointer thread does this work instead (see the module docs).
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    let checkpointer = Connection::open(path)?;
    configure(&checkpointer)?;
    let mut readers: Vec<Box<dyn Db + Send>> = Vec::with_capacity(READ_POOL_SIZE);
    for _ in 0..READ_POOL_SIZE {
        let r = Connection::open(path)?;
        configure(&r)?;
        readers.push(Box::new(r));
    }
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || checkpoint_loop(checkpointer, stop_rx))
        .map_err(|source| StoreError::Spawn {
            what: "checkpoint",
            source,
        })?;
    let integrity = Arc::new(Mutex::new(if check_later {
        check::Integrity::Checking
    } else {
        check::Integrity::Ok
    }));
    if check_later {
        check::spawn(path.to_path_buf(), integrity.clone()).map_err(|source| {
            StoreError::Spawn {
                what: "integrity check",
                source,
            }
        })?;
    }
    Store::start(
        "sqlite-writer",
        readers,
        Some(path.to_path_buf()),
        integrity,
        Role::Standalone,
        move |rx, dispatch, gauge| writer_loop(conn, rx, dispatch, stop_tx, gauge),
    )
}

/// Passive checkpoints until the writer stops: again after [`CHECKPOINT_BUSY_PAUSE`] while
/// each one finds new frames to copy (the writer is busy), else after [`CHECKPOINT_PERIOD`].
/// The more of the log this thread copies, the less the writer has left to copy when it
/// restarts the WAL.
fn checkpoint_loop(conn: Connection, stop: std::sync::mpsc::Receiver<()>) {
    let mut pause = CHECKPOINT_PERIOD;
    let mut last = (0, 0);
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(pause) {
        let copied = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        pause = match copied {
            // Frames were copied that the last round had not seen.
            Ok(now) if now.1 > 0 && now != last => {
                last = now;
                CHECKPOINT_BUSY_PAUSE
            }
            Ok(now) => {
                last = now;
                CHECKPOINT_PERIOD
            }
            Err(e) => {
                tracing::warn!(error = %e, "checkpoint failed");
                CHECKPOINT_PERIOD
            }
        };
    }
}

thread_local! {
    /// Frames in the WAL after the writer thread's last commit (each store has its own writer
    /// thread, so this is per store).
    static WAL_FRAMES: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

/// SQLite's WAL hook on the writer connection: runs inside each COMMIT with the log's length.
fn note_wal_frames(_: &rusqlite::hooks::Wal, frames: std::os::raw::c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.set(frames);
    Ok(())
}

/// Copies the frames the background checkpointer has not yet copied, between two of the
/// writer's transactions, so that the next one restarts the WAL. When the checkpointer holds
/// the checkpoint lock at that moment (a passive checkpoint does not wait), or a reader still
/// needs old frames, the log stays long and this runs again after the next commit.
fn finish_checkpoint(conn: &Connection) {
    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    });
    match done {
        Ok((0, log, copied)) if log == copied => WAL_FRAMES.set(0),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "checkpoint failed"),
    }
}

fn writer_loop(
    conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    dispatch: Option<mpsc::UnboundedSender<Batch>>,
    stop_checkpoints: std::sync::mpsc::Sender<()>,
    gauge: &gauge::WriterGauge,
) {
    let mut completions: Vec<Completion> = Vec::with_capacity(MAX_GROUP_COMMIT);
    // After `wal_autocheckpoint` (which would replace it): see the module docs.
    conn.wal_hook(Some(note_wal_frames));
    while let Some(first) = rx.blocking_recv() {
        gauge.batch_started();
        let began = std::time::Instant::now();
        if let Err(e) = exec_cached(&conn, "BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "cannot begin transaction");
            let e = Arc::new(StoreError::from(e));
            let (_, c) = first.into_run()(Err(&e));
            complete(vec![c], &Err(e));
            gauge.batch_done();
            continue;
        }
        run_job(&conn, first, &mut completions);
        while completions.len() < MAX_GROUP_COMMIT {
            match rx.try_recv() {
                Ok(job) => run_job(&conn, job, &mut completions),
                Err(_) => break,
            }
        }
        let committing = std::time::Instant::now();
        let commit = exec_cached(&conn, "COMMIT").map_err(|e| {
            tracing::error!(error = %e, "commit failed");
            let _ = exec_cached(&conn, "ROLLBACK");
            Arc::new(StoreError::from(e))
        });
        batch_ended(
            gauge,
            &dispatch,
            &mut completions,
            commit,
            began,
            committing,
        );
        if WAL_FRAMES.get() >= WAL_RESTART_FRAMES {
            finish_checkpoint(&conn);
        }
    }
    drop(stop_checkpoints);
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "final checkpoint failed");
    }
    if let Err((_, e)) = conn.close() {
        tracing::error!(error = %e, "closing the database");
    }
}

/// Runs one transaction-control statement through the connection's statement cache: these
/// run several times per command, and re-parsing them showed in the ingest profile.
fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn run_job(conn: &Connection, job: Job, completions: &mut Vec<Completion>) {
    let job = job.into_run();
    if let Err(e) = exec_cached(conn, "SAVEPOINT cmd") {
        tracing::error!(error = %e, "savepoint failed");
        let (_, c) = job(Err(&Arc::new(StoreError::from(e))));
        completions.push(c);
        return;
    }
    // A bug in one command must not stop the writer for everyone: a panicking job counts
    // as failed and its caller sees the writer's error.
    let (failed, completion) =
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(conn as &dyn Db)))) {
            Ok(r) => r,
            Err(_) => {
                tracing::error!("a write job panicked; its changes are rolled back");
                (true, Completion::late(|_| {}))
            }
        };
    if failed {
        let _ = exec_cached(conn, "ROLLBACK TO cmd");
    }
    let _ = exec_cached(conn, "RELEASE cmd");
    completions.push(completion);
}
