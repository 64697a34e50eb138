//! Waiting as a hot standby (part of the mediatord binary, not of the library): with
//! `[store] url`, a daemon first waits for the PostgreSQL lease, answering `mediatorctl
//! status` and `health` meanwhile (`control::Standby`), and serves once it holds it. The
//! exit status of an active daemon that lost the lease is here too.

use crate::{control_access, Signals};
use anyhow::{Context, Result};
use mediatord::config::Config;
use mediatord::{control, notify, store};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Exit status of an active daemon that lost the hot standby's lease (see `mediatord(8)`).
pub const EXIT_LEASE_LOST: i32 = 3;

/// How many of a standby's attempts at the lease go by between two log lines.
const STANDBY_LOG_EVERY: u64 = 60;

/// Waits as a standby until this daemon holds the PostgreSQL lease (`[store] url`), then
/// opens the store on it; `None` when a SIGTERM or SIGINT came first.
pub async fn standby(
    url: &str,
    cfg: &Config,
    public: [u8; 32],
    signals: &mut Signals,
) -> Result<Option<store::Store>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let conn = store::postgres::connect::ConnString::parse(url)?;
    let clear = conn.in_clear_over_network();
    if !clear.is_empty() {
        tracing::warn!(hosts = %clear.join(","),
            "the connection to PostgreSQL is not encrypted: every message crosses the network \
             in clear (add sslmode=verify-full to [store] url)");
    }
    tracing::info!(
        encrypted = conn.encrypted(),
        "standby: waiting for the PostgreSQL lease"
    );
    // Meanwhile `mediatorctl status` tells the role; everything else is refused.
    let socket_path = cfg.control_socket();
    let listener = control::bind(&socket_path, control_access(cfg).gid)?;
    let control_stop = CancellationToken::new();
    let control_task = tokio::spawn(control::serve(
        control::Standby {
            access: control_access(cfg),
            public_key: public,
            started: std::time::Instant::now(),
            data_dir: cfg.data_dir.clone(),
        },
        listener,
        control_stop.clone(),
    ));
    mediatord::logging::announce("standby");
    // Started as far as the service manager is concerned (a standby may wait for days,
    // beyond any start timeout); its status line says what it waits for.
    notify::notify(&[
        notify::State::Ready,
        notify::State::MainPid(std::process::id()),
        notify::State::Status("standby: waiting for the lease (another mediatord serves)"),
    ]);
    let stop = Arc::new(AtomicBool::new(false));
    let standby = store::postgres::store::Standby {
        waiting: Box::new(|n| {
            if n == 1 || n % STANDBY_LOG_EVERY == 0 {
                tracing::info!(attempts = n, "standby: another mediatord holds the lease");
            }
        }),
        stop: stop.clone(),
    };
    let open = store::postgres::store::open_leased(url, standby);
    tokio::pin!(open);
    let store = loop {
        tokio::select! {
            r = &mut open => break r.context("opening the PostgreSQL store")?,
            _ = signals.term.recv() => { stop.store(true, Ordering::Relaxed); }
            _ = signals.int.recv() => { stop.store(true, Ordering::Relaxed); }
            _ = signals.hup.recv() => tracing::info!("standby: reload takes effect when serving"),
        }
    };
    control_stop.cancel();
    let _ = control_task.await;
    let _ = std::fs::remove_file(&socket_path);
    if stop.load(Ordering::Relaxed) {
        // Told to stop while the store was opening: leave without serving.
        if let Some(store) = store {
            tokio::task::spawn_blocking(move || store.shutdown()).await?;
        }
        return Ok(None);
    }
    if store.is_some() {
        tracing::info!("active: this mediatord holds the lease and serves");
        mediatord::logging::announce("active");
    }
    Ok(store)
}
