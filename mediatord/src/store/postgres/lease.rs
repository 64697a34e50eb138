//! Who serves: the lease of a hot-standby group (#18).
//!
//! Several mediatord processes may share one key and one PostgreSQL database; exactly one is
//! active. It is the one whose **store writer's session** holds the session-level advisory
//! lock [`LEASE_KEY`]; the others' writer sessions poll for the lock every
//! [`STANDBY_POLL`]. Because every write goes through that session, the lock fences the
//! writes themselves: once PostgreSQL has ended the session, nothing the old holder sends can
//! commit, so a holder that wakes from a pause cannot write after its successor has begun.
//!
//! The session asks PostgreSQL to end it when it has been idle for [`LEASE_TIMEOUT`]
//! (`idle_session_timeout`, PostgreSQL 14 and later, and `idle_in_transaction_session_timeout`
//! for a holder paused in the middle of a batch, whose session waits inside a transaction),
//! and the holder pings it through the writer every [`LEASE_PING`] ([`hold`]). The writer
//! never waits inside a transaction itself: it runs a batch's statements back to back. So
//! the lock goes free however the holder stops: a crashed process's socket closes at once; a
//! paused process, a frozen machine or a cut network stops the pings and PostgreSQL ends the
//! session after [`LEASE_TIMEOUT`]. On the holder's side, going [`LEASE_PING_TIMEOUT`] (half
//! the timeout) without proof that the session is alive means the lease is lost, before
//! PostgreSQL can give the lock to anyone else: the daemon stops serving at once. A proof is
//! a ping answered, or, while a ping waits behind a long command, the session seen from a
//! reader running a statement or idle only briefly ([`watch`]).

use super::conn::Pg;
use crate::store::queries::DbResult;
use crate::store::{Store, StoreError};
use std::time::{Duration, Instant};

/// The advisory lock every mediatord of a group contends for.
pub const LEASE_KEY: i64 = 0x6d65_6469_6c65_6173; // "medileas"

/// How often a standby tries to take the lock.
pub const STANDBY_POLL: Duration = Duration::from_secs(1);

/// How long the lease session may stay silent before PostgreSQL ends it (and frees the
/// lock): the longest a paused or cut-off holder keeps its successor waiting.
pub const LEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the holder pings its lease session.
pub const LEASE_PING: Duration = Duration::from_secs(1);

/// The longest the holder serves without proof that its lease session is alive (a ping
/// answered, or the session seen busy or briefly idle): half of [`LEASE_TIMEOUT`], so the
/// holder stops before PostgreSQL can give the lock away.
pub const LEASE_PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Makes `pg`'s session the lease session and waits until it holds the lock, calling
/// `waiting` with the number of attempts so far each time another holds it. Returns `false`
/// when `stop` said to give up first.
pub fn acquire(
    pg: &Pg,
    waiting: &mut dyn FnMut(u64),
    stop: &dyn Fn() -> bool,
) -> Result<bool, StoreError> {
    let ms = LEASE_TIMEOUT.as_millis();
    pg.batch(&format!(
        "SET idle_session_timeout = {ms}; SET idle_in_transaction_session_timeout = {ms}"
    ))
    .map_err(|e| StoreError::Postgres(format!("{e} (the lease needs PostgreSQL 14 or later)")))?;
    let mut attempts = 0u64;
    loop {
        let got: bool = pg
            .one("SELECT pg_try_advisory_lock($1)", &[&LEASE_KEY])?
            .get(0);
        if got {
            return Ok(true);
        }
        attempts += 1;
        waiting(attempts);
        // Idle for one poll at a time: far below the session's idle timeout.
        let until = std::time::Instant::now() + STANDBY_POLL;
        while std::time::Instant::now() < until {
            if stop() {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether `pg`'s session still holds the lock.
pub fn held(pg: &Pg) -> DbResult<bool> {
    let n: i64 = pg
        .one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
             AND pid = pg_backend_pid() AND granted AND objsubid = 1 \
             AND ((classid::bigint << 32) | objid::bigint) = $1",
            &[&LEASE_KEY],
        )?
        .get(0);
    Ok(n == 1)
}

/// What a session of its own sees of the lease session ([`watch`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Seen {
    /// The session is gone or no longer holds the lock.
    Gone,
    /// The session is running a statement: no idle timeout runs, the lock stays held.
    Busy,
    /// The session has waited for its client this long (between statements, inside a
    /// transaction or not): PostgreSQL ends it when this reaches [`LEASE_TIMEOUT`].
    Idle(Duration),
}

/// The backend process of `pg`'s session: how other sessions name it ([`watch`]).
pub fn session_pid(pg: &Pg) -> DbResult<i32> {
    Ok(pg.one("SELECT pg_backend_pid()", &[])?.get(0))
}

/// What the lease session `pid` is doing, seen from another session of the same role.
/// A state this role may not read (another role's session, `track_activities` off) counts
/// as [`Seen::Gone`]: nothing proves the lock held.
pub fn watch(pg: &Pg, pid: i32) -> DbResult<Seen> {
    let row = pg.opt(
        "SELECT a.state, GREATEST(EXTRACT(EPOCH FROM clock_timestamp() - a.state_change), 0)::float8
         FROM pg_stat_activity a
         WHERE a.pid = $1 AND EXISTS (
             SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory'
             AND l.granted AND l.objsubid = 1
             AND ((l.classid::bigint << 32) | l.objid::bigint) = $2)",
        &[&pid, &LEASE_KEY],
    )?;
    let Some(row) = row else {
        return Ok(Seen::Gone);
    };
    let state: Option<String> = row.get(0);
    let idle: Option<f64> = row.get(1);
    Ok(match (state.as_deref(), idle) {
        (Some("active" | "fastpath function call"), _) => Seen::Busy,
        (Some("idle" | "idle in transaction" | "idle in transaction (aborted)"), Some(s)) => {
            Seen::Idle(Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX))
        }
        _ => Seen::Gone,
    })
}

/// Keeps watch over the lease while `store` serves; returns why once it is lost (never
/// while it holds). A store without a lease (SQLite) always holds.
///
/// Every [`LEASE_PING`] the writer runs a ping, which proves the lease session alive when
/// it was sent. A ping can wait behind a long command (a statement slowed by a busy disk
/// or by locks the operator took): while it is late, a reader looks at the lease session
/// every [`LEASE_PING`] ([`watch`]); a session running a statement cannot be ended for
/// idleness, and an idle one says since when it waits. The lease counts as held until
/// [`LEASE_PING_TIMEOUT`] after the last such proof, which leaves PostgreSQL's
/// [`LEASE_TIMEOUT`] to run before anyone else can take the lock: a paused holder, a cut
/// network or a writer stuck between statements still stops serving in time, and a long
/// statement no longer makes a healthy holder quit.
pub async fn hold(store: &Store) -> StoreError {
    let lost = |why: String| StoreError::LeaseLost(why);
    let pid = match store
        .write(|c| Ok(c.as_postgres().map(session_pid).transpose()?))
        .await
    {
        Ok(Some(pid)) => pid,
        Ok(None) => return std::future::pending().await,
        Err(e) => return lost(e.to_string()),
    };
    // The latest moment the lease session was proven alive.
    let mut proven = Instant::now();
    loop {
        tokio::time::sleep(LEASE_PING).await;
        let sent = Instant::now();
        let ping = store.write(|c| Ok(c.lease_held()?));
        tokio::pin!(ping);
        loop {
            let left = (proven + LEASE_PING_TIMEOUT).saturating_duration_since(Instant::now());
            if left.is_zero() {
                return lost(format!(
                    "no proof of the lease session for {LEASE_PING_TIMEOUT:?}"
                ));
            }
            match tokio::time::timeout(LEASE_PING.min(left), &mut ping).await {
                Ok(Ok(true)) => {
                    proven = proven.max(sent);
                    break;
                }
                Ok(Ok(false)) => return lost("the session no longer holds the lock".into()),
                Ok(Err(e)) => return lost(e.to_string()),
                Err(_) => {}
            }
            // The ping is late: look at the lease session from a reader.
            let asked = Instant::now();
            let left = (proven + LEASE_PING_TIMEOUT).saturating_duration_since(asked);
            let seen = tokio::time::timeout(
                left,
                store.read(move |c| {
                    Ok(c.as_postgres()
                        .map_or(Ok(Seen::Gone), |pg| watch(pg, pid))?)
                }),
            )
            .await;
            match seen {
                Ok(Ok(Seen::Busy)) => proven = proven.max(asked),
                Ok(Ok(Seen::Idle(idle))) => {
                    if let Some(since) = asked.checked_sub(idle) {
                        proven = proven.max(since);
                    }
                }
                Ok(Ok(Seen::Gone)) => return lost("the session no longer holds the lock".into()),
                Ok(Err(e)) => return lost(e.to_string()),
                Err(_) => {}
            }
        }
    }
}
