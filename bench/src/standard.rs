//! The standard scenarios, each measured against a fresh `mediatord` and against its baseline
//! in the same run, summarised in one table.
//!
//! * **ingest**: 100 senders in 100 chats, 1 KiB messages, closed loop (one request in flight
//!   per sender), durable acks; baselines: raw SQLite inserting the same number of rows (1,000
//!   per commit, and as many per commit as there are senders, the most group commit can
//!   gather) and the raw quinn server under the same load.
//! * **fan-out**: one chat, 1,000 subscribers, one sender at 100 msg/s and at its maximum
//!   rate (closed loop, [`FANOUT_MAX_WINDOW`] in flight); baseline: raw quinn.
//! * **sessions**: 10,000 authenticated idle sessions (server RSS per session), then 1,000 more
//!   connecting at once (time until all are authenticated); baseline: raw quinn.
//! * **sync**: a client catching up 100,000 messages with GET_MESSAGES_SINCE pages of 500
//!   (five times, the median counts); baselines (also median of five): raw SQLite reading the
//!   same rows in the same pages, and the raw quinn server
//!   answering the same requests from memory (whole pages, no storage, no byte budget: what
//!   the transport and the client sustain).
//! * **attacks** (only when named, `--only attacks`): floods from one attacker source against
//!   the daemon's default limits while a legitimate user keeps working (see
//!   [`crate::attacks`]); a table of its own.
//! * **chats** (only when named, `--only chats`): databases of 1,000, 10,000 and 100,000
//!   chats written directly with SQL; start time, RSS, CREATE_CHAT latency while readers are
//!   busy, GET_USER_CHATS latency and SEND_MESSAGE throughput over all chats at each size
//!   (the smallest as the baseline, so the ratio is the growth), and the start (import) of a
//!   20,000-chat version-4 file (see [`crate::chats`]).
//!
//! `--scale` shrinks the user and message counts for small machines; `--smoke` runs every
//! scenario tiny and fails on any error, lost push or missing message.

use crate::load::{self, RunConfig, RunReport, World, WorldConfig, MAX_SESSIONS_PER_CONNECTION};
use crate::metrics::Metrics;
use crate::sqlite::{self, SqliteReport};
use crate::target::{Kind, Target};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Closed-loop window of the fan-out sender at maximum rate.
pub const FANOUT_MAX_WINDOW: usize = 16;
/// Page size of the sync scenario (the protocol maximum).
pub const SYNC_PAGE: u32 = 500;
/// Times the sync scenario reads the whole chat (the median pass is reported).
pub const SYNC_PASSES: usize = 5;
/// Message size of the ingest and sync scenarios.
pub const MSG_SIZE: usize = 1024;
/// Fan-out open-loop rate, messages per second.
pub const FANOUT_RATE: f64 = 100.0;
/// How long idle sessions sit before their memory is read.
pub const IDLE_SETTLE: Duration = Duration::from_secs(2);

/// Options of the standard benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct StandardArgs {
    /// Multiply user, session and message counts by this factor (0 < scale <= 1).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Seconds per timed run (ingest, fan-out).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Run every scenario tiny and exit non-zero on any failure.
    #[arg(long)]
    pub smoke: bool,
    /// The mediatord binary (default: the one next to this executable).
    #[arg(long)]
    pub mediatord: Option<PathBuf>,
    /// Parent directory for temporary data directories (default: the system temp dir).
    #[arg(long)]
    pub tmp_dir: Option<PathBuf>,
    /// Write the JSON summary here instead of stdout.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Scenarios to run (comma-separated: ingest, fanout, sessions, sync; default those
    /// four). The attack scenarios run only when named: `attacks` for all of them,
    /// `attacks:KEY` for one (baseline, sessions, budget, unread, nonces, garbage,
    /// member-info, invite-spam); so does `chats` (growth with the number of chats).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Serve from PostgreSQL instead of the SQLite file: the URL of a database on a server
    /// where the tool may create databases; each spawned mediatord gets a fresh one
    /// (`[store] url`). The raw baselines are unchanged.
    #[arg(long)]
    pub postgres: Option<String>,
    /// With `--postgres`: run the selected scenarios on the SQLite file first, then on
    /// PostgreSQL, in the same run, each with its baselines; the table shows each row twice
    /// (marked `[sqlite]` and `[postgresql]`) and the JSON summary holds the PostgreSQL run
    /// under `postgres`.
    #[arg(long, requires = "postgres")]
    pub both_stores: bool,
}

/// Sizes of one standard run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sizes {
    pub ingest_senders: usize,
    pub fanout_subscribers: usize,
    pub idle_sessions: usize,
    pub burst_sessions: usize,
    pub sync_messages: u64,
    pub sync_senders: usize,
    pub duration_s: f64,
}

impl Sizes {
    fn new(a: &StandardArgs) -> Sizes {
        if a.smoke {
            return Sizes {
                ingest_senders: 2,
                fanout_subscribers: 10,
                idle_sessions: 200,
                burst_sessions: 50,
                sync_messages: 1_200,
                sync_senders: 4,
                duration_s: 1.5,
            };
        }
        let s = a.scale.clamp(0.001, 1.0);
        let n = |v: f64, min: f64| (v * s).max(min).round() as usize;
        Sizes {
            ingest_senders: n(100.0, 2.0),
            fanout_subscribers: n(1_000.0, 10.0),
            idle_sessions: n(10_000.0, 100.0),
            burst_sessions: n(1_000.0, 10.0),
            sync_messages: n(100_000.0, 1_000.0) as u64,
            sync_senders: n(50.0, 2.0),
            duration_s: a.duration,
        }
    }
}

/// The sessions scenario's figures.
#[derive(Debug, Clone, Serialize)]
pub struct SessionsReport {
    pub target: Kind,
    pub idle_sessions: usize,
    pub connections: usize,
    pub rss_before_kib: u64,
    pub rss_idle_kib: u64,
    pub rss_per_session_kib: f64,
    pub burst_sessions: usize,
    pub burst_connections: usize,
    pub burst_seconds: f64,
    pub peak_rss_kib: u64,
    pub errors: u64,
}

/// The sync scenario's figures.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub fill: RunReport,
    pub messages: u64,
    pub pages: u64,
    pub bytes: u64,
    /// The median pass.
    pub seconds: f64,
    pub msgs_per_s: f64,
    /// Every pass, fastest first.
    pub passes: Vec<f64>,
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    pub mediatord: f64,
    pub baseline_name: String,
    pub baseline: f64,
    pub ratio: f64,
    pub target: String,
}

/// Everything the standard run measured.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub smoke: bool,
    pub sizes: Option<Sizes>,
    pub rows: Vec<Row>,
    pub ingest: Option<RunReport>,
    pub ingest_raw_quinn: Option<RunReport>,
    pub ingest_raw_sqlite: Option<SqliteReport>,
    /// Raw SQLite committing as many rows at once as there are senders.
    pub ingest_raw_sqlite_same_batch: Option<SqliteReport>,
    pub fanout_rate: Option<RunReport>,
    pub fanout_rate_raw_quinn: Option<RunReport>,
    pub fanout_max: Option<RunReport>,
    pub fanout_max_raw_quinn: Option<RunReport>,
    pub sessions: Option<SessionsReport>,
    pub sessions_raw_quinn: Option<SessionsReport>,
    pub sync: Option<SyncReport>,
    pub sync_raw_sqlite: Option<SqliteReport>,
    pub sync_raw_quinn: Option<SyncReport>,
    pub attacks: Option<crate::attacks::AttacksSummary>,
    pub chats: Option<crate::chats::ChatsSummary>,
    /// Everything that went wrong (a smoke run fails if this is not empty).
    pub failures: Vec<String>,
    /// The same scenarios on PostgreSQL, when run beside SQLite (`--both-stores`).
    pub postgres: Option<Box<Summary>>,
}

struct Ctx<'a> {
    args: &'a StandardArgs,
    mediatord: PathBuf,
    sizes: Sizes,
}

impl Ctx<'_> {
    fn spawn(&self, kind: Kind) -> Result<Target> {
        match kind {
            Kind::Mediatord => match &self.args.postgres {
                None => Target::spawn_mediatord(&self.mediatord, self.args.tmp_dir.as_deref()),
                Some(url) => Target::spawn_mediatord_on_postgres(
                    &self.mediatord,
                    self.args.tmp_dir.as_deref(),
                    url,
                ),
            },
            Kind::RawQuinn => Target::spawn_raw(),
        }
    }

    fn run_cfg(&self, senders: usize, rate: Option<f64>) -> RunConfig {
        RunConfig {
            senders: Some(senders),
            msg_size: MSG_SIZE,
            rate,
            duration: self.sizes.duration_s,
            messages: None,
            progress: true,
        }
    }

    fn tempdir(&self) -> Result<tempfile::TempDir> {
        Ok(match &self.args.tmp_dir {
            Some(p) => tempfile::tempdir_in(p)?,
            None => tempfile::tempdir()?,
        })
    }
}

/// Checks a run for errors, disconnects, lost pushes and an empty result.
fn check_run(name: &str, r: &RunReport, failures: &mut Vec<String>) {
    if r.errors > 0 || r.disconnects > 0 {
        failures.push(format!(
            "{name}: {} errors, {} disconnects (first: {})",
            r.errors,
            r.disconnects,
            r.first_error.as_deref().unwrap_or("-")
        ));
    }
    if r.pushes_missing > 0 {
        failures.push(format!("{name}: {} pushes never arrived", r.pushes_missing));
    }
    if r.acked == 0 {
        failures.push(format!("{name}: no message was acknowledged"));
    }
}

pub(crate) async fn stop_checked(t: Target, name: &str, failures: &mut Vec<String>) {
    match tokio::task::spawn_blocking(move || t.stop()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => failures.push(format!("{name}: stopping the server: {e:#}")),
        Err(e) => failures.push(format!("{name}: {e}")),
    }
}

/// One world on a fresh server, one or more runs.
async fn world_runs(
    ctx: &Ctx<'_>,
    kind: Kind,
    name: &str,
    world: WorldConfig,
    runs: &[RunConfig],
    failures: &mut Vec<String>,
) -> Result<Vec<RunReport>> {
    eprintln!("== {name} ({kind:?})");
    let t = ctx.spawn(kind)?;
    let mut w = World::build(&t, &world)
        .await
        .with_context(|| format!("{name}: setup"))?;
    eprintln!("setup took {:.1}s", w.setup_s);
    let mut out = Vec::new();
    for (k, rc) in runs.iter().enumerate() {
        let r = w
            .run(&t, rc)
            .await
            .with_context(|| format!("{name}: run {k}"))?;
        check_run(&format!("{name} ({kind:?}) run {k}"), &r, failures);
        out.push(r);
    }
    drop(w);
    stop_checked(t, &format!("{name} ({kind:?})"), failures).await;
    Ok(out)
}

async fn sessions(ctx: &Ctx<'_>, kind: Kind, failures: &mut Vec<String>) -> Result<SessionsReport> {
    let s = ctx.sizes;
    eprintln!(
        "== sessions ({kind:?}): {} idle, then {} at once",
        s.idle_sessions, s.burst_sessions
    );
    let t = ctx.spawn(kind)?;
    let before = t.stats().context("server stats")?;
    let metrics = Arc::new(Metrics::default());
    let n_conn = s.idle_sessions.div_ceil(MAX_SESSIONS_PER_CONNECTION);
    let conns = load::connect_all(&t, n_conn).await?;
    let idle = load::open_users(&conns, 0, s.idle_sessions, &metrics, 1).await?;
    tokio::time::sleep(IDLE_SETTLE).await;
    let after = t.stats().context("server stats")?;
    let burst_conns = s.burst_sessions.div_ceil(MAX_SESSIONS_PER_CONNECTION);
    let t0 = Instant::now();
    let bconns = load::connect_all(&t, burst_conns).await?;
    let burst = load::open_users(&bconns, 0, s.burst_sessions, &metrics, 1).await?;
    let burst_seconds = t0.elapsed().as_secs_f64();
    let closed = idle.iter().chain(&burst).filter(|s| s.is_closed()).count();
    if closed > 0 {
        failures.push(format!(
            "sessions ({kind:?}): {closed} sessions were closed"
        ));
    }
    let peak = t.stats().map(|p| p.peak_rss_kib).unwrap_or(0);
    drop((idle, burst, conns, bconns));
    stop_checked(t, &format!("sessions ({kind:?})"), failures).await;
    let errors = metrics.errors.load(std::sync::atomic::Ordering::Relaxed);
    if errors > 0 {
        failures.push(format!("sessions ({kind:?}): {errors} errors"));
    }
    Ok(SessionsReport {
        target: kind,
        idle_sessions: s.idle_sessions,
        connections: n_conn,
        rss_before_kib: before.rss_kib,
        rss_idle_kib: after.rss_kib,
        rss_per_session_kib: (after.rss_kib as f64 - before.rss_kib as f64)
            / s.idle_sessions as f64,
        burst_sessions: s.burst_sessions,
        burst_connections: burst_conns,
        burst_seconds,
        peak_rss_kib: peak,
        errors,
    })
}

async fn sync(ctx: &Ctx<'_>, kind: Kind, failures: &mut Vec<String>) -> Result<SyncReport> {
    let s = ctx.sizes;
    eprintln!(
        "== sync ({kind:?}): fill {} messages, then catch up in pages of {SYNC_PAGE}",
        s.sync_messages
    );
    let t = match kind {
        Kind::Mediatord => ctx.spawn(kind)?,
        Kind::RawQuinn => Target::spawn_raw_with(&["--keep-messages"])?,
    };
    let mut w = World::build(
        &t,
        &WorldConfig {
            users: s.sync_senders,
            connections: 0,
            chats: 1,
            subscribers: Some(0),
            window: 1,
        },
    )
    .await?;
    let fill = w
        .run(
            &t,
            &RunConfig {
                senders: None,
                msg_size: MSG_SIZE,
                rate: None,
                duration: 3_600.0,
                messages: Some(s.sync_messages),
                progress: true,
            },
        )
        .await?;
    check_run("sync fill", &fill, failures);
    let chat = w.chats[0];
    // The catch-up is short (a fraction of a second at full size), so it runs
    // SYNC_PASSES times and the median pass counts.
    let mut passes = Vec::with_capacity(SYNC_PASSES);
    let (mut messages, mut pages, mut bytes) = (0u64, 0u64, 0u64);
    for _ in 0..SYNC_PASSES {
        let t0 = Instant::now();
        let (mut since, mut n_all) = (0i64, 0u64);
        (pages, bytes) = (0, 0);
        loop {
            let (n, last, b) = w.owner.messages_since(chat, since, SYNC_PAGE).await?;
            if n == 0 {
                break;
            }
            since = last;
            n_all += n as u64;
            pages += 1;
            bytes += b as u64;
        }
        passes.push(t0.elapsed().as_secs_f64());
        messages = n_all;
        // Besides the benchmark messages the chat holds one system message per added member.
        if messages < fill.acked {
            failures.push(format!(
                "sync ({kind:?}): read {messages} messages, {} were acknowledged",
                fill.acked
            ));
            break;
        }
    }
    passes.sort_by(f64::total_cmp);
    let seconds = passes[passes.len() / 2];
    drop(w);
    stop_checked(t, "sync", failures).await;
    Ok(SyncReport {
        fill,
        messages,
        pages,
        bytes,
        seconds,
        msgs_per_s: messages as f64 / seconds,
        passes,
    })
}

pub(crate) fn row(scenario: &str, med: f64, base_name: &str, base: f64, target: &str) -> Row {
    Row {
        scenario: scenario.into(),
        mediatord: med,
        baseline_name: base_name.into(),
        baseline: base,
        ratio: if base != 0.0 { med / base } else { f64::NAN },
        target: target.into(),
    }
}

/// Runs the selected scenarios and returns the summary (the caller prints it); with
/// `--both-stores`, on the SQLite file and then on PostgreSQL.
pub async fn run(args: &StandardArgs) -> Result<Summary> {
    if !args.both_stores {
        return run_on_one_store(args).await;
    }
    let on_sqlite = StandardArgs {
        postgres: None,
        both_stores: false,
        ..args.clone()
    };
    eprintln!("=== the scenarios on SQLite");
    let lite = run_on_one_store(&on_sqlite).await?;
    eprintln!("=== the scenarios on PostgreSQL");
    let pg = run_on_one_store(args).await?;
    Ok(beside(lite, pg))
}

/// The summary of `lite` with `pg`'s rows beside its own (each pair marked with its store)
/// and `pg` under `postgres`.
fn beside(lite: Summary, pg: Summary) -> Summary {
    let mark = |r: &Row, store: &str| Row {
        scenario: format!("{} [{store}]", r.scenario),
        ..r.clone()
    };
    let mut rows = Vec::with_capacity(lite.rows.len() + pg.rows.len());
    for i in 0..lite.rows.len().max(pg.rows.len()) {
        rows.extend(lite.rows.get(i).map(|r| mark(r, "sqlite")));
        rows.extend(pg.rows.get(i).map(|r| mark(r, "postgresql")));
    }
    let failures = lite
        .failures
        .iter()
        .map(|f| format!("sqlite: {f}"))
        .chain(pg.failures.iter().map(|f| format!("postgresql: {f}")))
        .collect();
    Summary {
        rows,
        failures,
        postgres: Some(Box::new(pg)),
        ..lite
    }
}

/// Runs the selected scenarios on the store `args` names.
async fn run_on_one_store(args: &StandardArgs) -> Result<Summary> {
    let mediatord = match &args.mediatord {
        Some(p) => p.clone(),
        None => crate::target::default_mediatord().context(
            "no mediatord next to this executable; build it (cargo build --release -p mediatord) or pass --mediatord",
        )?,
    };
    let sizes = Sizes::new(args);
    let ctx = Ctx {
        args,
        mediatord,
        sizes,
    };
    let want = |s: &str| args.only.is_empty() || args.only.iter().any(|o| o == s);
    let mut sum = Summary {
        smoke: args.smoke,
        sizes: Some(sizes),
        ..Default::default()
    };
    let mut f = Vec::new();

    if want("ingest") {
        let n = sizes.ingest_senders;
        let world = WorldConfig {
            users: n,
            connections: 0,
            chats: n,
            subscribers: Some(0),
            window: 1,
        };
        let rc = ctx.run_cfg(n, None);
        let med = world_runs(
            &ctx,
            Kind::Mediatord,
            "ingest",
            world.clone(),
            std::slice::from_ref(&rc),
            &mut f,
        )
        .await?
        .remove(0);
        let raw = world_runs(&ctx, Kind::RawQuinn, "ingest", world, &[rc], &mut f)
            .await?
            .remove(0);
        eprintln!("== ingest baseline: raw SQLite");
        let dir = ctx.tempdir()?;
        let rows = med.acked.max(if args.smoke { 2_000 } else { 20_000 });
        let dir_path: PathBuf = dir.path().to_path_buf();
        let lite = tokio::task::spawn_blocking(move || {
            let best = sqlite::insert(&dir_path, rows, n, MSG_SIZE, sqlite::INSERT_BATCH)?;
            // What group commit can reach at best: one commit per `n` in-flight messages.
            let same = sqlite::insert(&dir_path, rows.min(n as u64 * 200), n, MSG_SIZE, n)?;
            anyhow::Ok((best, same))
        })
        .await??;
        let (lite, lite_same) = lite;
        sum.rows.push(row(
            "ingest: acked msg/s (durable)",
            med.acked_per_s,
            "raw SQLite rows/s",
            lite.rows_per_s,
            ">= 20,000 and >= 50%",
        ));
        sum.rows.push(row(
            "ingest: acked msg/s vs same batching",
            med.acked_per_s,
            &format!("raw SQLite, {n}/commit"),
            lite_same.rows_per_s,
            "-",
        ));
        sum.rows.push(row(
            "ingest: acked msg/s vs transport",
            med.acked_per_s,
            "raw quinn msg/s",
            raw.acked_per_s,
            "-",
        ));
        sum.rows.push(row(
            "ingest: send->ack p99 ms",
            med.ack_latency.p99_ms,
            "raw quinn p99 ms",
            raw.ack_latency.p99_ms,
            "-",
        ));
        sum.ingest = Some(med);
        sum.ingest_raw_quinn = Some(raw);
        sum.ingest_raw_sqlite = Some(lite);
        sum.ingest_raw_sqlite_same_batch = Some(lite_same);
    }

    if want("fanout") {
        let subs = sizes.fanout_subscribers;
        let world = WorldConfig {
            users: subs + 1,
            connections: 0,
            chats: 1,
            subscribers: None,
            window: FANOUT_MAX_WINDOW,
        };
        let runs = [ctx.run_cfg(1, Some(FANOUT_RATE)), ctx.run_cfg(1, None)];
        let mut med = world_runs(
            &ctx,
            Kind::Mediatord,
            "fan-out",
            world.clone(),
            &runs,
            &mut f,
        )
        .await?;
        let mut raw = world_runs(&ctx, Kind::RawQuinn, "fan-out", world, &runs, &mut f).await?;
        let (m_max, r_max) = (med.remove(1), raw.remove(1));
        let (m_rate, r_rate) = (med.remove(0), raw.remove(0));
        sum.rows.push(row(
            &format!("fan-out {FANOUT_RATE} msg/s x {subs}: pushes/s"),
            m_rate.pushes_per_s,
            "raw quinn pushes/s",
            r_rate.pushes_per_s,
            "-",
        ));
        sum.rows.push(row(
            &format!("fan-out {FANOUT_RATE} msg/s x {subs}: push p99 ms"),
            m_rate.push_latency.p99_ms,
            "raw quinn p99 ms",
            r_rate.push_latency.p99_ms,
            "<= 50 ms",
        ));
        sum.rows.push(row(
            &format!("fan-out max x {subs}: pushes/s"),
            m_max.pushes_per_s,
            "raw quinn pushes/s",
            r_max.pushes_per_s,
            ">= 200,000 and >= 50%",
        ));
        sum.rows.push(row(
            &format!("fan-out max x {subs}: push p99 ms"),
            m_max.push_latency.p99_ms,
            "raw quinn p99 ms",
            r_max.push_latency.p99_ms,
            "-",
        ));
        sum.fanout_rate = Some(m_rate);
        sum.fanout_rate_raw_quinn = Some(r_rate);
        sum.fanout_max = Some(m_max);
        sum.fanout_max_raw_quinn = Some(r_max);
    }

    if want("sessions") {
        let med = sessions(&ctx, Kind::Mediatord, &mut f).await?;
        let raw = sessions(&ctx, Kind::RawQuinn, &mut f).await?;
        sum.rows.push(row(
            &format!("sessions: RSS KiB per idle session ({})", med.idle_sessions),
            med.rss_per_session_kib,
            "raw quinn KiB",
            raw.rss_per_session_kib,
            "<= 64 KiB",
        ));
        sum.rows.push(row(
            &format!("sessions: {} more at once, s to auth", med.burst_sessions),
            med.burst_seconds,
            "raw quinn s",
            raw.burst_seconds,
            "<= 3 s",
        ));
        sum.sessions = Some(med);
        sum.sessions_raw_quinn = Some(raw);
    }

    if want("sync") {
        let med = sync(&ctx, Kind::Mediatord, &mut f).await?;
        let quinn = sync(&ctx, Kind::RawQuinn, &mut f).await?;
        eprintln!("== sync baseline: raw SQLite");
        let dir = ctx.tempdir()?;
        let dir_path: PathBuf = dir.path().to_path_buf();
        let rows = med.messages;
        let lite = tokio::task::spawn_blocking(move || {
            sqlite::read_pages(&dir_path, rows, MSG_SIZE, SYNC_PAGE, SYNC_PASSES)
        })
        .await??;
        sum.rows.push(row(
            &format!("sync: {} msgs in pages of {SYNC_PAGE}, msg/s", med.messages),
            med.msgs_per_s,
            "raw SQLite rows/s",
            lite.rows_per_s,
            ">= 100,000",
        ));
        sum.rows.push(row(
            &format!("sync: {} msgs in pages of {SYNC_PAGE}, msg/s", med.messages),
            med.msgs_per_s,
            "raw quinn msg/s",
            quinn.msgs_per_s,
            "",
        ));
        sum.sync = Some(med);
        sum.sync_raw_quinn = Some(quinn);
        sum.sync_raw_sqlite = Some(lite);
    }

    if args
        .only
        .iter()
        .any(|o| o == "attacks" || o.starts_with("attacks:"))
    {
        sum.attacks = Some(crate::attacks::run(&ctx.mediatord, args, &mut f).await?);
    }
    if args.only.iter().any(|o| o == "chats") {
        let chats = crate::chats::run(&ctx.mediatord, args, &mut f).await?;
        sum.rows.extend(crate::chats::rows(&chats));
        sum.chats = Some(chats);
    }
    sum.failures = f;
    Ok(sum)
}
