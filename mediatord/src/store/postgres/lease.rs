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
//! never waits inside a transaction itself: it runs a batch's statements back to back. So the lock goes free however the holder stops: a
//! crashed process's socket closes at once; a paused process, a frozen machine or a cut
//! network stops the pings and PostgreSQL ends the session after [`LEASE_TIMEOUT`]. On the
//! holder's side a ping that fails or takes longer than [`LEASE_PING_TIMEOUT`] (half the
//! timeout) means the lease is lost, before PostgreSQL can give the lock to anyone else: the
//! daemon stops serving at once.

use super::conn::Pg;
use crate::store::queries::DbResult;
use crate::store::{Store, StoreError};
use std::time::Duration;

/// The advisory lock every mediatord of a group contends for.
pub const LEASE_KEY: i64 = 0x6d65_6469_6c65_6173; // "medileas"

/// How often a standby tries to take the lock.
pub const STANDBY_POLL: Duration = Duration::from_secs(1);

/// How long the lease session may stay silent before PostgreSQL ends it (and frees the
/// lock): the longest a paused or cut-off holder keeps its successor waiting.
pub const LEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the holder pings its lease session.
pub const LEASE_PING: Duration = Duration::from_secs(1);

/// The longest a ping may take before the holder counts its lease as lost: half of
/// [`LEASE_TIMEOUT`], so the holder stops before PostgreSQL can give the lock away.
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

/// Pings the lease through `store`'s writer every [`LEASE_PING`]; returns why once the lease
/// is lost (never while it holds). A store without a lease (SQLite) always holds.
pub async fn hold(store: &Store) -> StoreError {
    loop {
        tokio::time::sleep(LEASE_PING).await;
        let ping =
            tokio::time::timeout(LEASE_PING_TIMEOUT, store.write(|c| Ok(c.lease_held()?))).await;
        match ping {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                return StoreError::LeaseLost("the session no longer holds the lock".into())
            }
            Ok(Err(e)) => return StoreError::LeaseLost(e.to_string()),
            Err(_) => {
                return StoreError::LeaseLost(format!("no answer within {LEASE_PING_TIMEOUT:?}"))
            }
        }
    }
}
