//! The store on PostgreSQL: the same handle ([`Store`]) as the SQLite file, with the same
//! guarantees. One writer thread owns one connection and runs every write job in its own
//! savepoint inside a transaction per batch, so all jobs queued while the previous batch
//! committed share one `COMMIT` (group commit: one WAL flush on the server for the batch);
//! a caller is answered only after that commit returned, and after-commit hooks run in
//! commit order on the store's dispatcher. Reads run on a small pool of connections.
//!
//! Each statement is a round trip to the server, and the writer is serial, so round trips
//! bound ingest. SEND_MESSAGE, the one command that comes in floods, is queued as data
//! (`SendJob`) rather than as a closure: the writer takes the run of send jobs at the head
//! of its queue and stores all of their messages with one statement (a server-side function,
//! see [`super::schema::FUNCTIONS`]), so a batch of a hundred messages costs a handful of
//! round trips instead of three hundred.
//!
//! Durability is the server's: with `synchronous_commit = on` (PostgreSQL's default) a
//! returned COMMIT is on the server's disk, and with synchronous replication also on a
//! replica's.
//!
//! On first use of an empty database the schema is created; a database that holds another
//! program's `chats` table is refused. Opening marks the database `serving`, so a later
//! `mediatord migrate --to` will not copy over what this daemon writes without `--replace`.

use super::conn::Pg;
use super::connect::ConnString;
use super::lease;
use super::schema::{FUNCTIONS, META_TABLE, SCHEMA, STATE_SERVING};
use crate::store::queries::NewMessage;
use crate::store::schema::SCHEMA_VERSION;
use crate::store::{
    batch_ended, check, complete, gauge, Batch, Completion, Db, Job, Reject, Role, RunJob, SendJob,
    Store, StoreError, MAX_GROUP_COMMIT, READ_POOL_SIZE,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Bodies one statement of `run_sends` carries at most (a run stops growing once it holds
/// this much; one larger message goes alone): the statement's parameters are built in memory
/// on both sides, and the request budget would otherwise let a run reach hundreds of MB.
pub const MAX_SEND_RUN_BYTES: usize = 8 * 1024 * 1024;

/// Connects to the server of `conn` (in clear or over TLS, see [`super::connect`]).
fn connect(conn: &ConnString, tls: &Option<MakeRustlsConnect>) -> Result<Pg, StoreError> {
    Ok(Pg::new(conn.connect_blocking(tls)?))
}

/// Creates the schema in an empty database, or checks the one there, and marks it served.
fn prepare(pg: &Pg, origin: &str) -> Result<(), StoreError> {
    pg.batch("BEGIN")?;
    let done = (|| {
        let r = pg.one(
            "SELECT to_regclass($1) IS NOT NULL, to_regclass('chats') IS NOT NULL",
            &[&META_TABLE],
        )?;
        let (has_meta, has_chats): (bool, bool) = (r.get(0), r.get(1));
        if !has_meta {
            if has_chats {
                return Err(StoreError::Postgres(
                    "the database has a table named chats but no mediatord_schema: it is not \
                     a mediatord store"
                        .into(),
                ));
            }
            pg.batch(SCHEMA)?;
        }
        pg.batch(FUNCTIONS)?;
        if let Some(r) = pg.opt(&format!("SELECT version FROM {META_TABLE}"), &[])? {
            let version: i64 = r.get(0);
            if version != SCHEMA_VERSION {
                return Err(StoreError::TooNew {
                    found: version,
                    supported: SCHEMA_VERSION,
                });
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        pg.exec(&format!("DELETE FROM {META_TABLE}"), &[])?;
        pg.exec(
            &format!(
                "INSERT INTO {META_TABLE} (version, state, origin, changed_at)
                 VALUES ($1, $2, $3, $4)"
            ),
            &[&SCHEMA_VERSION, &STATE_SERVING, &origin, &now],
        )?;
        Ok(())
    })();
    match done {
        Ok(()) => pg.batch("COMMIT"),
        Err(e) => {
            let _ = pg.batch("ROLLBACK");
            Err(e)
        }
    }
}

/// What a standby calls while it waits for the lease (with the attempts so far), and what
/// tells it to give up.
pub struct Standby {
    pub waiting: Box<dyn FnMut(u64) + Send>,
    pub stop: Arc<AtomicBool>,
}

/// The writer's connection (holding the lease when `standby` is given), with the schema
/// prepared, and the readers'; `None` when the standby was told to stop first.
#[allow(clippy::type_complexity)]
fn connect_all(
    url: &str,
    standby: Option<Standby>,
) -> Result<Option<(Pg, Vec<Box<dyn Db + Send>>)>, StoreError> {
    let conn = ConnString::parse(url)?;
    let tls = conn.connector()?;
    let writer = connect(&conn, &tls)?;
    if let Some(mut s) = standby {
        let stop = s.stop.clone();
        if !lease::acquire(&writer, &mut *s.waiting, &|| stop.load(Ordering::Relaxed))? {
            return Ok(None);
        }
    }
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    prepare(&writer, &format!("served by mediatord on {}", host.trim()))?;
    let mut readers: Vec<Box<dyn Db + Send>> = Vec::with_capacity(READ_POOL_SIZE);
    for _ in 0..READ_POOL_SIZE {
        readers.push(Box::new(connect(&conn, &tls)?));
    }
    Ok(Some((writer, readers)))
}

/// Opens the store on the PostgreSQL database at `url`, without a lease (tools and tests:
/// a daemon uses [`open_leased`]), and starts its writer. Connecting blocks the calling
/// thread for as long as the server takes to answer.
pub fn open(url: &str) -> Result<Store, StoreError> {
    // The blocking driver runs a small runtime of its own, which must not be started on a
    // thread of the daemon's: connect on a thread of its own.
    let url = url.to_owned();
    let (writer, readers) = std::thread::spawn(move || connect_all(&url, None))
        .join()
        .map_err(|_| StoreError::Postgres("the connecting thread panicked".into()))??
        .ok_or_else(|| StoreError::Postgres("no connection".into()))?;
    start(writer, readers, Role::Standalone)
}

/// Waits for the hot standby's lease on `url` (see [`super::lease`]), then opens the store
/// with the writer on the lease session; `None` when `standby.stop` was set first.
pub async fn open_leased(url: &str, standby: Standby) -> Result<Option<Store>, StoreError> {
    let url = url.to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("pg-standby".into())
        .spawn(move || {
            let _ = tx.send(connect_all(&url, Some(standby)));
        })
        .map_err(|source| StoreError::Spawn {
            what: "standby",
            source,
        })?;
    match rx
        .await
        .map_err(|_| StoreError::Postgres("the connecting thread panicked".into()))??
    {
        Some((writer, readers)) => start(writer, readers, Role::Active).map(Some),
        None => Ok(None),
    }
}

/// Starts the writer thread over `writer` and the store handle over both.
fn start(writer: Pg, readers: Vec<Box<dyn Db + Send>>, role: Role) -> Result<Store, StoreError> {
    Store::start(
        "pg-writer",
        readers,
        None,
        Arc::new(Mutex::new(check::Integrity::Ok)),
        role,
        move |rx, dispatch, gauge| writer_loop(writer, rx, dispatch, gauge),
    )
}

/// Runs one job in the savepoint `cmd`, which the caller has set at the job's start; leaves
/// the savepoint set again for the next job, in one round trip: released and set anew after
/// a job that succeeded, rolled back to (which keeps it) after one that failed or panicked.
/// A job that said it succeeded but left the transaction failed (it swallowed a database
/// error) is rolled back and answered with that error. `Err`: the transaction cannot go on
/// (not even the rollback to the savepoint worked), so the whole batch must be rolled back.
fn run_job(pg: &Pg, job: RunJob, completions: &mut Vec<Completion>) -> Result<(), Arc<StoreError>> {
    let (failed, completion) =
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(pg as &dyn Db)))) {
            Ok(r) => r,
            Err(_) => {
                tracing::error!("a write job panicked; its changes are rolled back");
                (true, Completion::late(|_| {}))
            }
        };
    if !failed {
        match pg.batch("RELEASE cmd; SAVEPOINT cmd") {
            Ok(()) => {
                completions.push(completion);
                return Ok(());
            }
            Err(e) => {
                tracing::error!(error = %e, "a write job left its transaction failed");
                completions.push(completion.failing(Arc::new(e)));
            }
        }
    } else {
        completions.push(completion);
    }
    rollback_to_savepoint(pg)
}

/// Rolls back to the savepoint `cmd` (keeping it set); `Err` when even that failed.
fn rollback_to_savepoint(pg: &Pg) -> Result<(), Arc<StoreError>> {
    pg.batch("ROLLBACK TO cmd").map_err(|e| {
        tracing::error!(error = %e, "cannot roll back to the savepoint");
        Arc::new(e)
    })
}

/// Stores the messages of consecutive send jobs in one statement
/// ([`Pg::send_messages`]) with the savepoint `cmd` set, and leaves it set again. A refused
/// message writes nothing, so the others need no savepoint of their own. Should the
/// statement fail (no refusal makes it fail), it is rolled back and the jobs run again one by
/// one, each in its own savepoint, so only the one at fault fails. `Err` as for [`run_job`].
fn run_sends(
    pg: &Pg,
    sends: Vec<SendJob>,
    completions: &mut Vec<Completion>,
) -> Result<(), Arc<StoreError>> {
    let now = sends[0].clock.now_secs();
    let msgs: Vec<&NewMessage> = sends.iter().map(|s| &s.msg).collect();
    let stored = pg.send_messages(&msgs, now);
    drop(msgs);
    match stored {
        // The boundary keeps these writes from a later job's rollback to `cmd`.
        Ok(outcomes) => match pg.batch("RELEASE cmd; SAVEPOINT cmd") {
            Ok(()) => {
                for (s, outcome) in sends.into_iter().zip(outcomes) {
                    completions.push((s.finish)(outcome));
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot set the savepoint after storing messages");
                Err(fail_sends(sends, Arc::new(e), completions))
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, messages = sends.len(),
                "storing messages together failed; storing them one by one");
            if let Err(e) = rollback_to_savepoint(pg) {
                return Err(fail_sends(sends, e, completions));
            }
            let mut sends = sends.into_iter();
            while let Some(s) = sends.next() {
                if let Err(e) = run_job(pg, Job::Send(s).into_run(), completions) {
                    return Err(fail_sends(sends.collect(), e, completions));
                }
            }
            Ok(())
        }
    }
}

/// Completes `sends` with `e`, the error that ended their batch; returns it.
fn fail_sends(
    sends: Vec<SendJob>,
    e: Arc<StoreError>,
    completions: &mut Vec<Completion>,
) -> Arc<StoreError> {
    for s in sends {
        let err = Reject::Store(StoreError::NoTransaction(e.clone()));
        completions.push((s.finish)(Err(err)));
    }
    e
}

/// Runs `first` and the jobs queued behind it in the open transaction, until the queue is
/// empty, the batch is full or the transaction cannot go on; consecutive send jobs are stored
/// together ([`run_sends`]). Returns how the batch went, and a job taken from the queue that
/// did not fit it.
fn run_batch(
    pg: &Pg,
    first: Job,
    rx: &mut mpsc::Receiver<Job>,
    completions: &mut Vec<Completion>,
) -> (Result<(), Arc<StoreError>>, Option<Job>) {
    let mut next = Some(first);
    while let Some(job) = next.take() {
        let ran = match job {
            Job::Run(f) => run_job(pg, f, completions),
            Job::Send(s) => {
                let mut bytes = s.msg.body.len();
                let mut sends = vec![s];
                while completions.len() + sends.len() < MAX_GROUP_COMMIT
                    && bytes < MAX_SEND_RUN_BYTES
                {
                    match rx.try_recv() {
                        Ok(Job::Send(s)) => {
                            bytes += s.msg.body.len();
                            sends.push(s);
                        }
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                run_sends(pg, sends, completions)
            }
        };
        if ran.is_err() || completions.len() >= MAX_GROUP_COMMIT {
            return (ran, next);
        }
        if next.is_none() {
            next = rx.try_recv().ok();
        }
    }
    (Ok(()), None)
}

fn writer_loop(
    pg: Pg,
    mut rx: mpsc::Receiver<Job>,
    dispatch: Option<mpsc::UnboundedSender<Batch>>,
    gauge: &gauge::WriterGauge,
) {
    let mut completions: Vec<Completion> = Vec::with_capacity(MAX_GROUP_COMMIT);
    // A job taken from the queue that did not fit the previous batch.
    let mut held: Option<Job> = None;
    while let Some(first) = held.take().or_else(|| rx.blocking_recv()) {
        gauge.batch_started();
        let began = std::time::Instant::now();
        if let Err(e) = pg.batch("BEGIN; SAVEPOINT cmd") {
            tracing::error!(error = %e, "cannot begin transaction");
            let e = Arc::new(e);
            let (_, c) = first.into_run()(Err(&e));
            complete(vec![c], &Err(e));
            gauge.batch_done();
            continue;
        }
        let (ran, rest) = run_batch(&pg, first, &mut rx, &mut completions);
        held = rest;
        let committing = std::time::Instant::now();
        let commit = ran.and_then(|()| {
            pg.batch("COMMIT").map_err(|e| {
                tracing::error!(error = %e, "commit failed");
                Arc::new(e)
            })
        });
        if commit.is_err() {
            let _ = pg.batch("ROLLBACK");
        }
        batch_ended(
            gauge,
            &dispatch,
            &mut completions,
            commit,
            began,
            committing,
        );
    }
}
