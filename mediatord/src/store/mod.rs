//! Durable storage behind one handle, [`Store`], on one of two backends: the embedded SQLite
//! file (the default; its writer, checkpoints and WAL handling in [`sqlite::writer`]) or a
//! PostgreSQL database ([`postgres`]). What a command asks of storage is a set of traits
//! ([`queries::Protocol`], [`admin::Admin`], [`audit::Audit`], [`blocks::Blocks`],
//! [`retention::Retention`]; [`Db`] is all of them) that each backend implements.
//!
//! Every change goes through [`Store::write`]: the closure runs on the single writer
//! connection inside its own savepoint, so a command that fails applies nothing, and all
//! closures queued while the previous batch was committing share one `COMMIT` (group commit:
//! one WAL flush for the whole batch). A caller's future resolves only after that commit, so
//! an acknowledged message is durable. Each write may carry an `after_commit` hook that runs
//! right after the commit (on the dispatcher described below), in commit order: that is where
//! fan-out to live sessions happens, so every subscriber sees a chat's events in the order
//! they were committed. SEND_MESSAGE goes through [`Store::send_message`] as data instead
//! of a closure (`SendJob`), with the same guarantees, so that a backend may store a run
//! of queued messages at once (PostgreSQL does, see `postgres::store`).
//!
//! The completions of a committed batch (after-commit hooks, then each caller's answer) are
//! handed to one dispatcher task on the async runtime, in commit order, so the writer thread
//! can begin the next transaction at once instead of waking every waiting session itself.
//! Each caller is still answered only after its own hook ran. The dispatcher's queue needs no
//! bound of its own: every waiting completion belongs to a caller blocked on its answer, and a
//! session has at most one request in progress.
//!
//! Reads that need no serialisation with writes use [`Store::read`] on a pooled read
//! connection (WAL readers, or PostgreSQL sessions of their own, never block the writer).
pub mod admin;
pub mod audit;
pub mod blocks;
pub mod check;
pub mod gauge;
pub mod import;
pub mod postgres;
pub mod queries;
pub mod restore;
pub mod retention;
pub mod schema;
pub mod sqlite;

use crate::clock::Clock;
use mediator_wire::{FieldError, TlvError, WireError};
use queries::{Inserted, NewMessage};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Most commands that one transaction (one fsync) may carry.
pub const MAX_GROUP_COMMIT: usize = 1024;
/// Depth of the queue in front of the writer thread; senders wait when it is full.
pub const WRITE_QUEUE_DEPTH: usize = 4096;
/// Read connections kept open for queries that run beside the writer.
pub const READ_POOL_SIZE: usize = 4;

/// A failed storage operation.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database writer has stopped")]
    Closed,
    #[error("commit failed: {0}")]
    Commit(#[source] Arc<StoreError>),
    #[error("no transaction could be opened: {0}")]
    NoTransaction(#[source] Arc<StoreError>),
    #[error("cannot start the {what} thread: {source}")]
    Spawn {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "database schema version {found} is newer than this mediatord understands ({supported})"
    )]
    TooNew { found: i64, supported: i64 },
    #[error("the database is damaged (quick_check: {0}); restore it from a backup")]
    Corrupt(String),
    #[error("database schema version {found} has per-chat tables and must be imported first")]
    NeedsImport { found: i64 },
    #[error("import failed: {0}")]
    Import(String),
    #[error("restore refused: {0}")]
    Restore(String),
    #[error("{0}")]
    NotOnThisBackend(&'static str),
    #[error("postgresql: {0}")]
    Postgres(String),
    #[error("the lease is lost: {0}")]
    LeaseLost(String),
}

pub use check::QUICK_CHECK_MAX_BYTES;

/// Everything a command or a control action may ask of one database connection (or
/// transaction), whichever backend holds it: the protocol's operations and the operator's.
pub trait Db:
    queries::Protocol + admin::Admin + audit::Audit + blocks::Blocks + retention::Retention
{
    /// The SQLite connection underneath, for what only SQLite does (its online backup);
    /// `None` on other backends.
    fn as_sqlite(&self) -> Option<&Connection> {
        None
    }

    /// The PostgreSQL session underneath, for what only PostgreSQL has (the hot standby's
    /// lease, `postgres::lease`); `None` on other backends.
    fn as_postgres(&self) -> Option<&postgres::conn::Pg> {
        None
    }

    /// Whether this connection still holds the hot standby's lease
    /// (`postgres::lease`); a store without a lease always does.
    fn lease_held(&self) -> queries::DbResult<bool> {
        self.as_postgres().map_or(Ok(true), postgres::lease::held)
    }
}

impl Db for Connection {
    fn as_sqlite(&self) -> Option<&Connection> {
        Some(self)
    }
}

/// The store's traits, for code that calls their methods on a [`Db`].
pub mod prelude {
    pub use super::admin::Admin;
    pub use super::audit::Audit;
    pub use super::blocks::Blocks;
    pub use super::queries::Protocol;
    pub use super::retention::Retention;
    pub use super::Db;
}

/// Why a command failed, from a handler or a write closure: a refusal the client is told
/// by name (the savepoint is rolled back, nothing applied), or a database error.
#[derive(Debug, Error)]
pub enum Reject {
    #[error("{0}")]
    Wire(WireError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<FieldError> for Reject {
    fn from(e: FieldError) -> Self {
        Reject::Wire(e.0)
    }
}

impl From<TlvError> for Reject {
    fn from(_: TlvError) -> Self {
        Reject::Wire(WireError::BadTlvPayload)
    }
}

impl From<rusqlite::Error> for Reject {
    fn from(e: rusqlite::Error) -> Self {
        Reject::Store(StoreError::Sqlite(e))
    }
}

/// The outcome of a batch's COMMIT.
pub(crate) type CommitResult = Result<(), Arc<StoreError>>;
/// An answer sent before the batch's hooks run.
type EarlyAnswer = Box<dyn FnOnce(&CommitResult) + Send>;

/// What runs once a job's batch has committed (or failed to).
pub(crate) struct Completion {
    /// Runs before any hook of the batch: answers a caller that asked to be answered before
    /// its hook ([`Store::write_answer_first`]).
    early: Option<EarlyAnswer>,
    /// Runs in commit order: the after-commit hook, then (for [`Store::write_then`]) the
    /// caller's answer.
    late: Box<dyn FnOnce(CommitResult) + Send>,
}

impl Completion {
    /// This completion as if its batch's commit had failed with `e`: for a job whose changes
    /// were rolled back after it said it succeeded.
    pub(crate) fn failing(self, e: Arc<StoreError>) -> Completion {
        let early_e = e.clone();
        Completion {
            early: self
                .early
                .map(|f| Box::new(move |_: &CommitResult| f(&Err(early_e))) as EarlyAnswer),
            late: Box::new(move |_| (self.late)(Err(e))),
        }
    }

    pub(crate) fn late(f: impl FnOnce(CommitResult) + Send + 'static) -> Self {
        Completion {
            early: None,
            late: Box::new(f),
        }
    }
}
/// A write closure: run with the writer connection, or with the error that kept its
/// transaction from opening (the caller then gets an error). Returns whether it failed (its
/// changes are rolled back) and what completes it.
pub(crate) type RunJob =
    Box<dyn FnOnce(Result<&dyn Db, &Arc<StoreError>>) -> (bool, Completion) + Send>;

/// What completes a [`SendJob`], given what storing its message gave.
pub(crate) type SendFinish = Box<dyn FnOnce(Result<Inserted, Reject>) -> Completion + Send>;

/// A SEND_MESSAGE for the writer, as data rather than a closure, so that a backend may store
/// the messages of consecutive send jobs in one round trip (PostgreSQL does); the SQLite
/// writer runs each as its closure ([`Job::into_run`]).
pub(crate) struct SendJob {
    pub msg: NewMessage,
    /// Where the message's timestamp comes from, read when the writer stores it.
    pub clock: Clock,
    pub finish: SendFinish,
}

/// A queued write.
pub(crate) enum Job {
    Run(RunJob),
    Send(SendJob),
}

impl Job {
    /// The job as one closure on the writer connection.
    pub(crate) fn into_run(self) -> RunJob {
        match self {
            Job::Run(f) => f,
            Job::Send(s) => Box::new(move |conn| {
                let r = run_on(conn, |db| db.send_message(&s.msg, s.clock.now_secs()));
                (r.is_err(), (s.finish)(r))
            }),
        }
    }
}

/// What a daemon with this store is in its group (`mediatorctl status`, the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The only daemon of its data: the SQLite file (or PostgreSQL opened without a lease,
    /// by tools and tests).
    Standalone,
    /// Holds the hot standby's PostgreSQL lease and serves.
    Active,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Standalone => "standalone",
            Role::Active => "active",
        }
    }
}

/// Handle to the database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
    readers: Arc<ReadPool>,
    /// The SQLite file; `None` for a PostgreSQL store.
    path: Option<Arc<PathBuf>>,
    writer_thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
    gauge: Arc<gauge::WriterGauge>,
    integrity: Arc<Mutex<check::Integrity>>,
    role: Role,
    /// PostgreSQL's size of the database when [`Store::database_bytes`] last asked.
    pg_bytes: Arc<AtomicU64>,
}

struct ReadPool {
    conns: Mutex<Vec<Box<dyn Db + Send>>>,
    permits: Semaphore,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, importing a legacy file first
    /// ([`import`]), then starts the writer.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_checking(path, QUICK_CHECK_MAX_BYTES)
    }

    /// [`Store::open`], checking the file before use only up to `quick_check_max` bytes and
    /// in the background above (see [`check`]).
    pub fn open_checking(path: &Path, quick_check_max: u64) -> Result<Store, StoreError> {
        sqlite::writer::open(path, quick_check_max)
    }

    /// Starts a backend's writer thread (`name`), running `writer` over the job queue, the
    /// dispatcher and the gauge, and returns the handle over it and `readers`.
    pub(crate) fn start(
        name: &str,
        readers: Vec<Box<dyn Db + Send>>,
        path: Option<PathBuf>,
        integrity: Arc<Mutex<check::Integrity>>,
        role: Role,
        writer: impl FnOnce(mpsc::Receiver<Job>, Option<mpsc::UnboundedSender<Batch>>, &gauge::WriterGauge)
            + Send
            + 'static,
    ) -> Result<Store, StoreError> {
        let (jobs, rx) = mpsc::channel::<Job>(WRITE_QUEUE_DEPTH);
        let dispatch = spawn_dispatcher();
        let gauge = Arc::new(gauge::WriterGauge::default());
        let writer_gauge = gauge.clone();
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || writer(rx, dispatch, &writer_gauge))
            .map_err(|source| StoreError::Spawn {
                what: "writer",
                source,
            })?;
        let permits = Semaphore::new(readers.len());
        Ok(Store {
            jobs,
            readers: Arc::new(ReadPool {
                conns: Mutex::new(readers),
                permits,
            }),
            path: path.map(Arc::new),
            writer_thread: Arc::new(Mutex::new(Some(handle))),
            gauge,
            integrity,
            role,
            pg_bytes: Arc::new(AtomicU64::new(0)),
        })
    }

    /// What this daemon is in its group.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Where the data lives: "sqlite" or "postgresql".
    pub fn backend(&self) -> &'static str {
        if self.path.is_some() {
            "sqlite"
        } else {
            "postgresql"
        }
    }

    /// What the integrity check found (see [`check`]).
    pub fn integrity(&self) -> check::Integrity {
        self.integrity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The writer's progress stamps and histograms (see [`gauge`]).
    pub fn writer_gauge(&self) -> &gauge::WriterGauge {
        &self.gauge
    }

    /// How the writer is doing now (see [`gauge`]).
    pub fn writer_state(&self) -> gauge::WriterState {
        let queued = self.jobs.max_capacity() - self.jobs.capacity();
        self.gauge.read(queued)
    }

    /// Bytes of the database file and of its write-ahead log. On PostgreSQL, whose files are
    /// the server's: its size of the database as of the last [`Store::database_bytes`] (the
    /// janitor asks every pass), and no log.
    pub fn file_bytes(&self) -> (u64, u64) {
        let Some(db) = self.path() else {
            return (self.pg_bytes.load(Ordering::Relaxed), 0);
        };
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        (size(db), size(Path::new(&wal)))
    }

    /// The space the data takes now: the SQLite file and its log, or PostgreSQL's
    /// `pg_database_size` (asked of the server, and kept for [`Store::file_bytes`]).
    pub async fn database_bytes(&self) -> Result<u64, Reject> {
        if self.path.is_some() {
            let (db, wal) = self.file_bytes();
            return Ok(db + wal);
        }
        let bytes = self.read(|c| Ok(c.database_bytes()?)).await?;
        self.pg_bytes.store(bytes, Ordering::Relaxed);
        Ok(bytes)
    }

    /// The database file; `None` when the store is PostgreSQL.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref().map(PathBuf::as_path)
    }

    /// Runs `f` in its own savepoint on the writer connection and resolves after the commit
    /// that made it durable. `after_commit` runs right after that commit, on the dispatcher
    /// (in commit order), only if `f` succeeded and the commit did.
    pub async fn write_then<T, F, A>(&self, f: F, after_commit: A) -> Result<T, Reject>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Db) -> Result<T, Reject> + Send + 'static,
        A: FnOnce(&T) + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, Reject>>();
        let job = Job::Run(Box::new(move |conn| {
            let result = run_on(conn, f);
            let failed = result.is_err();
            let completion = Completion::late(move |commit| {
                let out = match (result, commit) {
                    (Ok(v), Ok(())) => {
                        after_commit(&v);
                        Ok(v)
                    }
                    (Ok(_), Err(e)) => Err(Reject::Store(StoreError::Commit(e))),
                    (Err(e), _) => Err(e),
                };
                let _ = tx.send(out);
            });
            (failed, completion)
        }));
        self.submit(job, rx).await
    }

    /// Like [`Store::write_then`], but `f` returns the answer and the hook's input apart, and
    /// the caller is answered as soon as the commit is durable, before any hook of its batch
    /// runs; `after_commit` still runs in commit order. For commands whose answer does not
    /// depend on their hook (SEND_MESSAGE: the sender is not among the pushed sessions), so a
    /// large fan-out does not delay the sender's acknowledgement.
    pub async fn write_answer_first<T, H, F, A>(&self, f: F, after_commit: A) -> Result<T, Reject>
    where
        T: Send + 'static,
        H: Send + 'static,
        F: FnOnce(&dyn Db) -> Result<(T, H), Reject> + Send + 'static,
        A: FnOnce(H) + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, Reject>>();
        let job = Job::Run(Box::new(move |conn| {
            let result = run_on(conn, f);
            (result.is_err(), answer_first(result, tx, after_commit))
        }));
        self.submit(job, rx).await
    }

    /// Stores a member's message (SEND_MESSAGE: [`queries::Protocol::send_message`], with the time
    /// `clock` gives when the writer stores it) and resolves as soon as it is durable, like
    /// [`Store::write_answer_first`]; `after_commit` gets what was stored, in commit order.
    pub async fn send_message<A>(
        &self,
        msg: NewMessage,
        clock: Clock,
        after_commit: A,
    ) -> Result<Inserted, Reject>
    where
        A: FnOnce(Inserted) + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<Inserted, Reject>>();
        let job = Job::Send(SendJob {
            msg,
            clock,
            finish: Box::new(move |r| answer_first(r.map(|i| (i, i)), tx, after_commit)),
        });
        self.submit(job, rx).await
    }

    /// Queues `job` for the writer and waits for the answer it sends on `rx`.
    async fn submit<T>(
        &self,
        job: Job,
        rx: oneshot::Receiver<Result<T, Reject>>,
    ) -> Result<T, Reject> {
        self.jobs
            .send(job)
            .await
            .map_err(|_| Reject::Store(StoreError::Closed))?;
        rx.await.map_err(|_| Reject::Store(StoreError::Closed))?
    }

    /// [`Store::write_then`] without a hook.
    pub async fn write<T, F>(&self, f: F) -> Result<T, Reject>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Db) -> Result<T, Reject> + Send + 'static,
    {
        self.write_then(f, |_| {}).await
    }

    /// Runs a read-only query on a pooled connection in a blocking thread.
    pub async fn read<T, F>(&self, f: F) -> Result<T, Reject>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Db) -> Result<T, Reject> + Send + 'static,
    {
        let _permit = self
            .readers
            .permits
            .acquire()
            .await
            .map_err(|_| Reject::Store(StoreError::Closed))?;
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool
                .conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .ok_or(Reject::Store(StoreError::Closed))?;
            let out = f(conn.as_ref());
            pool.conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
            out
        })
        .await
        .map_err(|_| Reject::Store(StoreError::Closed))?
    }

    /// Finishes every queued write, stops the writer and closes its connection.
    /// Other clones of the handle must be dropped first for the queue to drain and close.
    pub fn shutdown(self) {
        let Store {
            jobs,
            writer_thread,
            ..
        } = self;
        drop(jobs);
        let handle = writer_thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

/// The completion of a job whose caller is answered (on `tx`) before any hook of its batch
/// runs, and whose hook gets `result`'s second half after a good commit.
fn answer_first<T, H>(
    result: Result<(T, H), Reject>,
    tx: oneshot::Sender<Result<T, Reject>>,
    after_commit: impl FnOnce(H) + Send + 'static,
) -> Completion
where
    T: Send + 'static,
    H: Send + 'static,
{
    let (answer, hook) = match result {
        Ok((t, h)) => (Ok(t), Some(h)),
        Err(e) => (Err(e), None),
    };
    Completion {
        early: Some(Box::new(move |commit: &CommitResult| {
            let out = match (answer, commit) {
                (Ok(v), Ok(())) => Ok(v),
                (Ok(_), Err(e)) => Err(Reject::Store(StoreError::Commit(e.clone()))),
                (Err(e), _) => Err(e),
            };
            let _ = tx.send(out);
        })),
        late: Box::new(move |commit| {
            if let (Some(h), Ok(())) = (hook, commit) {
                after_commit(h);
            }
        }),
    }
}

/// Runs a job's closure on the writer connection, or fails it with the error that kept its
/// transaction (or savepoint) from opening.
fn run_on<T>(
    conn: Result<&dyn Db, &Arc<StoreError>>,
    f: impl FnOnce(&dyn Db) -> Result<T, Reject>,
) -> Result<T, Reject> {
    match conn {
        Ok(conn) => f(conn),
        Err(e) => Err(Reject::Store(StoreError::NoTransaction(e.clone()))),
    }
}

/// A committed batch's completions and the commit's outcome.
pub(crate) type Batch = (Vec<Completion>, CommitResult);

/// A writer's batch is over (committed, or failed with `commit`'s error): records it in the
/// gauge and hands its completions to the dispatcher (or, without one, runs them here).
pub(crate) fn batch_ended(
    gauge: &gauge::WriterGauge,
    dispatch: &Option<mpsc::UnboundedSender<Batch>>,
    completions: &mut Vec<Completion>,
    commit: CommitResult,
    began: std::time::Instant,
    committing: std::time::Instant,
) {
    gauge.batch_done();
    if commit.is_ok() {
        gauge.batch_committed(completions.len(), began.elapsed(), committing.elapsed());
    }
    let batch = std::mem::replace(completions, Vec::with_capacity(MAX_GROUP_COMMIT));
    match dispatch {
        Some(d) => {
            if let Err(mpsc::error::SendError((batch, commit))) = d.send((batch, commit)) {
                // The runtime is gone (shutdown): finish here.
                complete(batch, &commit);
            }
        }
        None => complete(batch, &commit),
    }
}

/// Starts the dispatcher on the current runtime; outside a runtime (no dispatcher can be
/// spawned) completions run on the writer.
pub(crate) fn spawn_dispatcher() -> Option<mpsc::UnboundedSender<Batch>> {
    tokio::runtime::Handle::try_current().ok().map(|rt| {
        let (dtx, drx) = mpsc::unbounded_channel();
        rt.spawn(dispatcher(drx));
        dtx
    })
}

/// Runs batches' completions in commit order (see the module docs).
async fn dispatcher(mut rx: mpsc::UnboundedReceiver<Batch>) {
    while let Some((completions, commit)) = rx.recv().await {
        complete(completions, &commit);
    }
}

/// Answers the callers that asked to be answered first, then runs every hook (and the other
/// answers) in commit order.
pub(crate) fn complete(mut completions: Vec<Completion>, commit: &CommitResult) {
    for c in &mut completions {
        if let Some(early) = c.early.take() {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| early(commit))).is_err() {
                tracing::error!("an answer panicked");
            }
        }
    }
    for c in completions {
        let commit = commit.clone();
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (c.late)(commit))).is_err() {
            tracing::error!("an after-commit hook panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::writer::WAL_SIZE_LIMIT;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Hooks run in commit order whether their caller is answered first or after the hook,
    /// every caller gets its own answer, and a rejected job runs no hook.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hooks_keep_commit_order_with_early_answers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let executed = Arc::new(Mutex::new(Vec::new()));
        let hooked = Arc::new(Mutex::new(Vec::new()));
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..200usize {
            let (store, executed, hooked, next) = (
                store.clone(),
                executed.clone(),
                hooked.clone(),
                next.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let f = move |_: &dyn Db| {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    executed.lock().unwrap().push(n);
                    if i % 17 == 0 {
                        return Err(Reject::Wire(WireError::NoSuchChat));
                    }
                    Ok(n)
                };
                let r = if i % 2 == 0 {
                    store
                        .write_answer_first(
                            move |c| f(c).map(|n| (n, n)),
                            move |n| hooked.lock().unwrap().push(n),
                        )
                        .await
                } else {
                    store
                        .write_then(f, move |n| hooked.lock().unwrap().push(*n))
                        .await
                };
                (i, r)
            }));
        }
        for t in tasks {
            let (i, r) = t.await.unwrap();
            match r {
                Ok(_) => assert_ne!(i % 17, 0),
                Err(Reject::Wire(w)) => assert_eq!((i % 17, w), (0, WireError::NoSuchChat)),
                Err(e) => panic!("{e}"),
            }
        }
        let executed = executed.lock().unwrap().clone();
        let hooked = hooked.lock().unwrap().clone();
        assert_eq!(executed.len(), 200);
        let mut sorted = hooked.clone();
        sorted.sort_unstable();
        assert_eq!(hooked, sorted, "hooks out of commit order");
        assert_eq!(hooked.len(), 200 - (0..200).filter(|i| i % 17 == 0).count());
        drop(store);
    }

    /// Under writes that never pause, the WAL still restarts from its beginning: 64 MiB go
    /// through the log, and the file stays within [`WAL_SIZE_LIMIT`] (without the writer's own
    /// checkpoint it grows to hold all of them).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wal_restarts_under_sustained_writes() {
        const ROW: usize = 32 * 1024;
        const ROWS: usize = 2048;
        const WRITERS: usize = 16;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Store::open(&path).unwrap();
        store
            .write_then(
                |c| {
                    Ok(c.as_sqlite()
                        .unwrap()
                        .execute_batch("CREATE TABLE t (b BLOB)")?)
                },
                |_| {},
            )
            .await
            .unwrap();
        let wal = dir.path().join("t.db-wal");
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..ROWS / WRITERS {
                    store
                        .write_then(
                            move |c| {
                                c.as_sqlite().unwrap().execute(
                                    "INSERT INTO t (b) VALUES (?1)",
                                    [vec![w as u8; ROW]],
                                )?;
                                Ok(())
                            },
                            |_| {},
                        )
                        .await
                        .unwrap();
                }
            }));
        }
        let mut largest = 0;
        while tasks.iter().any(|t| !t.is_finished()) {
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        largest = largest.max(std::fs::metadata(&wal).unwrap().len());
        let rows: i64 = store
            .read(|c| {
                Ok(c.as_sqlite()
                    .unwrap()
                    .query_row("SELECT count(*) FROM t", [], |r| r.get(0))?)
            })
            .await
            .unwrap();
        assert_eq!(rows, ROWS as i64);
        assert!(
            largest <= WAL_SIZE_LIMIT as u64,
            "WAL grew to {largest} bytes for {} bytes written",
            ROW * ROWS
        );
        store.shutdown();
    }
}
