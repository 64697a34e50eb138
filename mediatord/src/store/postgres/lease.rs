//! Who serves: the lease of a hot-standby group (#18).
//!
//! Several mediatord processes may share one key and one PostgreSQL database; exactly one is
//! active. It is the one whose lease session holds the session-level advisory lock
//! [`LEASE_KEY`]; the others poll for the lock every [`STANDBY_POLL`]. The lease session
//! asks PostgreSQL to end it when it has been idle for [`LEASE_TIMEOUT`]
//! (`idle_session_timeout`, PostgreSQL 14 and later), and the holder pings it every
//! [`LEASE_PING`]. So the lock goes free however the holder stops: a crashed process's socket
//! closes at once; a paused process, a frozen machine or a cut network stops the pings and
//! PostgreSQL ends the session after [`LEASE_TIMEOUT`]. On the holder's side a ping that fails
//! or takes longer than [`LEASE_PING_TIMEOUT`] (half the timeout) means the lease is lost,
//! before PostgreSQL can give the lock to anyone else: the holder must stop serving at once.
//!
//! The lease session is also the connection writes are meant to go through (see
//! [`Lease::client`]): once PostgreSQL has ended it, nothing sent on it can commit, so a
//! holder that wakes from a pause cannot write after its successor has begun.

use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

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

/// Why a lease could not be taken or was lost.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("postgres: {0}")]
    Postgres(String),
    #[error("the lease is lost: {0}")]
    Lost(String),
}

fn pg(e: tokio_postgres::Error) -> String {
    super::describe(&e)
}

/// A held lease: the session holding [`LEASE_KEY`].
pub struct Lease {
    client: Client,
    driver: JoinHandle<()>,
}

impl Lease {
    /// Connects to `url` and waits until this process holds the lock, calling `waiting`
    /// with the number of attempts so far each time the lock is held by another.
    pub async fn acquire(url: &str, mut waiting: impl FnMut(u64)) -> Result<Lease, LeaseError> {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|e| LeaseError::Postgres(pg(e)))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let lease = Lease { client, driver };
        lease
            .client
            .batch_execute(&format!(
                "SET idle_session_timeout = {}",
                LEASE_TIMEOUT.as_millis()
            ))
            .await
            .map_err(|e| {
                LeaseError::Postgres(format!(
                    "{} (the lease needs PostgreSQL 14 or later)",
                    pg(e)
                ))
            })?;
        let mut attempts = 0u64;
        loop {
            let got: bool = lease
                .client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&LEASE_KEY])
                .await
                .map_err(|e| LeaseError::Postgres(pg(e)))?
                .get(0);
            if got {
                return Ok(lease);
            }
            attempts += 1;
            waiting(attempts);
            tokio::time::sleep(STANDBY_POLL).await;
        }
    }

    /// Checks that the session is alive and still holds the lock.
    pub async fn ping(&self) -> Result<(), LeaseError> {
        let held = tokio::time::timeout(
            LEASE_PING_TIMEOUT,
            self.client.query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
                 AND pid = pg_backend_pid() AND granted AND objsubid = 1 \
                 AND ((classid::bigint << 32) | objid::bigint) = $1",
                &[&LEASE_KEY],
            ),
        )
        .await
        .map_err(|_| LeaseError::Lost(format!("no answer within {LEASE_PING_TIMEOUT:?}")))?
        .map_err(|e| LeaseError::Lost(pg(e)))?
        .get::<_, i64>(0);
        if held == 1 {
            Ok(())
        } else {
            Err(LeaseError::Lost(
                "the session no longer holds the lock".into(),
            ))
        }
    }

    /// Pings every [`LEASE_PING`] and returns when the lease is lost (never while it holds).
    pub async fn hold(&self) -> LeaseError {
        loop {
            tokio::time::sleep(LEASE_PING).await;
            if let Err(e) = self.ping().await {
                return e;
            }
        }
    }

    /// The lease session: writes that must not outlive the lease go through it.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Closing the session frees the lock at once.
        self.driver.abort();
    }
}
