//! `mediator-load failover`: the hot standby's takeover time (#18), over repeated failovers.
//!
//! Two mediatord processes with one key serve from one PostgreSQL database (`[store] url`,
//! a fresh database on the server of `--postgres`): the first holds the lease, the second
//! waits. Each round SIGKILLs the active and measures, from the kill, (a) until the standby
//! announces its QUIC listener (it holds the lease and serves) and (b) until a new client's
//! GET_NONCE and AUTH are answered by it (the store answers: AUTH reads the database). The
//! killed daemon's data directory then starts the next standby, which is given
//! [`STANDBY_SETTLE`] and a random part of its poll period before the next kill. One JSON object on stdout with
//! the p50, p99 and maximum of both, and each round's figures.

use crate::client::{self, Session};
use crate::metrics::{Histogram, Metrics, Percentiles};
use crate::target::{self, Target};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Time a new standby is given to start and begin polling for the lease before the active
/// is killed, at least; a random part of up to one poll period ([`POLL_JITTER`]) is added,
/// or every kill would fall at the same point of the standby's once-a-second polling (it
/// did: every takeover then took the same 45 ms).
pub const STANDBY_SETTLE: Duration = Duration::from_secs(3);

/// The random part added to [`STANDBY_SETTLE`]: the standby's poll period.
pub const POLL_JITTER: Duration = Duration::from_secs(1);

/// How long a standby may take to take over before the round counts as failed.
pub const TAKEOVER_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Args)]
pub struct FailoverArgs {
    /// The mediatord to run (default: the one next to this executable).
    #[arg(long)]
    pub mediatord: Option<PathBuf>,
    /// URL of a database on the PostgreSQL server where the tool may create databases.
    #[arg(long)]
    pub postgres: String,
    /// Failovers to measure.
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
}

#[derive(Debug, Serialize)]
pub struct FailoverReport {
    pub rounds: usize,
    /// From SIGKILL of the active to the standby's QUIC listener.
    pub serving: Percentiles,
    /// From SIGKILL of the active to a new client's AUTH answered by the standby.
    pub answering: Percentiles,
    /// Each round's (serving, answering), in milliseconds.
    pub each_ms: Vec<(f64, f64)>,
}

/// Starts mediatord on `dir` with `config`, returning once it serves (at once for the
/// first, after a takeover for a standby).
fn start(bin: &Path, dir: &Path, config: &Path) -> Result<Target> {
    Target::spawn_mediatord_at(bin, dir, config, TAKEOVER_LIMIT + STANDBY_SETTLE)
}

pub async fn run(a: FailoverArgs) -> Result<()> {
    let bin = match a.mediatord.clone() {
        Some(p) => p,
        None => target::default_mediatord()
            .context("no mediatord next to this executable; pass --mediatord")?,
    };
    let name = target::unique_name("mediator_failover");
    let url = target::create_database(&a.postgres, &name)?;
    let out = rounds(&a, bin, &url).await;
    // Every daemon has stopped (killed, or dropped on an error).
    let dropped = tokio::task::spawn_blocking({
        let admin = a.postgres.clone();
        move || target::drop_database(&admin, &name)
    })
    .await?;
    out.and(dropped)
}

/// The failovers of [`run`], on the database at `url`.
async fn rounds(a: &FailoverArgs, bin: PathBuf, url: &str) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let config = tmp.path().join("mediatord.toml");
    std::fs::write(
        &config,
        format!("{}\n[store]\nurl = \"{url}\"\n", target::ONE_HOST_LIMITS),
    )?;
    let dirs = [tmp.path().join("a"), tmp.path().join("b")];
    let mut active = {
        let (bin, dir, config) = (bin.clone(), dirs[0].clone(), config.clone());
        tokio::task::spawn_blocking(move || start(&bin, &dir, &config)).await??
    };
    std::fs::create_dir_all(&dirs[1])?;
    std::fs::copy(dirs[0].join("mediator.key"), dirs[1].join("mediator.key"))?;
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let (serving, answering) = (Histogram::default(), Histogram::default());
    let mut each_ms = Vec::with_capacity(a.rounds);
    for round in 0..a.rounds {
        let standby_dir = dirs[(round + 1) % 2].clone();
        let (bin2, config2) = (bin.clone(), config.clone());
        let standby = tokio::task::spawn_blocking(move || start(&bin2, &standby_dir, &config2));
        let jitter = POLL_JITTER.mul_f64(rand::random::<f64>());
        tokio::time::sleep(STANDBY_SETTLE + jitter).await;
        let killed = Instant::now();
        tokio::task::spawn_blocking(move || active.kill()).await??;
        let next = standby.await??;
        let served = killed.elapsed();
        let metrics = Arc::new(Metrics::default());
        let answered = loop {
            let attempt = async {
                let conn = client::connect(next.addr).await?;
                let mut s = Session::open(&conn, metrics.clone(), 1).await?;
                s.auth(&key).await
            };
            match tokio::time::timeout(Duration::from_secs(5), attempt).await {
                Ok(Ok(())) => break killed.elapsed(),
                _ if killed.elapsed() < TAKEOVER_LIMIT => continue,
                _ => anyhow::bail!("round {round}: the new active never answered AUTH"),
            }
        };
        serving.record(served.as_micros() as u64);
        answering.record(answered.as_micros() as u64);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        eprintln!(
            "round {round}: serving after {:.0} ms, AUTH answered after {:.0} ms",
            ms(served),
            ms(answered)
        );
        each_ms.push((ms(served), ms(answered)));
        active = next;
    }
    let report = FailoverReport {
        rounds: a.rounds,
        serving: serving.percentiles(),
        answering: answering.percentiles(),
        each_ms,
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    tokio::task::spawn_blocking(move || active.kill()).await??;
    Ok(())
}
