//! The `chats` scenario (`standard --only chats`; not in the default set, it takes long): how
//! the daemon behaves as the number of chats grows. For each size of [`CHAT_COUNTS`] a data
//! directory is written directly with SQL ([`db`]: schema 5, every chat with its
//! settings, three members and five messages; no proof of work), then a fresh `mediatord` is
//! started on it and measured:
//!
//! * start time (spawn until it prints its public key) and RSS right after the start;
//! * CREATE_CHAT latency p50/p99 over [`CREATE_SAMPLES`] creations, one at a time, while
//!   [`READERS`] sessions of the heavy key (below) loop GET_USER_CHATS and GET_MESSAGES_SINCE
//!   on random chats of that key; the proofs of work are computed before the timed part,
//!   which is request to answer only;
//! * GET_USER_CHATS latency p50/p99 of a key that belongs to a fixed number of chats at every
//!   size (the "heavy" key of [`db::Layout`]);
//! * SEND_MESSAGE throughput of [`SENDERS`] closed-loop senders, each sending to random chats
//!   of its own, which together cover every chat;
//! * RSS at the end.
//!
//! Then a version-4 file of [`IMPORT_CHATS`] chats (per-chat tables) is built and the daemon
//! started on it: it imports the file before it listens, so the start time is the import's,
//! and its peak RSS (VmHWM, sampled while it starts: the daemon restarts in place after an
//! import) is the import's peak. The table shows each figure per size with
//! the smallest size as the baseline, so the ratio column is the growth with the number of
//! chats; the targets at 100,000 chats are [`START_TARGET_S`], [`rss_target_kib`] and
//! [`CREATE_P99_TARGET_MS`], and no figure should grow beyond the B-tree's log factor.

mod clients;
mod db;

use crate::load::{connect_all, MAX_SESSIONS_PER_CONNECTION};
use crate::metrics::{Histogram, Metrics, Percentiles};
use crate::standard::{row, stop_checked, Row, StandardArgs};
use crate::target::{LimitProfile, Target, DATA_DIR};
use anyhow::{bail, Context, Result};
use clients::{proofs, reader, sender, session, user_chats};
use db::Layout;
use ed25519_dalek::SigningKey;
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Chats of the measured databases at full scale (`--scale` multiplies them).
pub const CHAT_COUNTS: [usize; 3] = [1_000, 10_000, 100_000];
/// Chats of the measured databases under `--smoke`.
pub const SMOKE_CHAT_COUNTS: [usize; 2] = [50, 200];
/// Fewest chats of a scaled database.
pub const MIN_CHATS: usize = 50;
/// Chats of the version-4 file whose import is measured (`--scale` multiplies them).
pub const IMPORT_CHATS: usize = 20_000;
/// Chats of the version-4 file under `--smoke`.
pub const SMOKE_IMPORT_CHATS: usize = 100;
/// Chats the heavy key belongs to (at most the smallest size, so it is the same at every
/// size of one run).
pub const HEAVY_CHATS: usize = 1_000;
/// Closed-loop SEND_MESSAGE sessions, one request in flight each (at most the smallest size).
pub const SENDERS: usize = 64;
/// Senders under `--smoke`.
pub const SMOKE_SENDERS: usize = 4;
/// Sessions that keep reading while CREATE_CHAT is timed.
pub const READERS: usize = 4;
/// Reader `r` connects from this loopback address plus `r` in its last byte: the readers
/// authenticate as the heavy key, and the daemon keeps one session per key and source (a new
/// AUTH from the same address replaces the older session), as for a user's several devices.
pub const READER_SOURCE: [u8; 4] = [127, 0, 0, 2];
/// Messages per GET_MESSAGES_SINCE of the readers.
pub const READER_PAGE: u32 = 50;
/// How long the readers run before the first timed CREATE_CHAT.
pub const READER_WARMUP: Duration = Duration::from_millis(500);
/// Timed CREATE_CHAT requests per size.
pub const CREATE_SAMPLES: usize = 200;
/// Timed CREATE_CHAT requests per size under `--smoke`.
pub const SMOKE_CREATE_SAMPLES: usize = 8;
/// Nonces one session may hold at once: the daemon's default `limits.nonces_per_session`
/// (kept by the benchmark's configuration), so each creator session takes this many.
pub const NONCES_PER_SESSION: usize = 8;
/// Timed GET_USER_CHATS requests per size.
pub const USER_CHATS_SAMPLES: usize = 200;
/// Seconds of SEND_MESSAGE per size under `--smoke` (otherwise `--duration`).
pub const SMOKE_SEND_SECONDS: f64 = 1.5;
/// Blob size of the SEND_MESSAGE run, bytes (the stored messages' size).
pub const SEND_BYTES: usize = db::BODY_BYTES;
/// How long the daemon may take to start on a version-4 file (it imports it first).
pub const IMPORT_START_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Target start time at 100,000 chats, seconds.
pub const START_TARGET_S: f64 = 2.0;
/// Target CREATE_CHAT p99 at 100,000 chats, milliseconds.
pub const CREATE_P99_TARGET_MS: f64 = 20.0;
/// RSS allowed besides the configured page caches, KiB.
pub const RSS_BASE_KIB: u64 = 64 * 1024;
/// SQLite's default page cache per connection (`cache_size = -2000`), KiB: the size of the
/// daemon's read connections and its checkpointer, which set none.
pub const SQLITE_DEFAULT_CACHE_KIB: u64 = 2_000;

/// The RSS target, KiB: [`RSS_BASE_KIB`] plus the page caches the daemon configures (its
/// writer's, and SQLite's default for each reader and the checkpointer).
pub fn rss_target_kib() -> u64 {
    use mediatord::store::sqlite::writer::WRITER_CACHE_KIB;
    use mediatord::store::READ_POOL_SIZE;
    RSS_BASE_KIB
        + WRITER_CACHE_KIB.unsigned_abs()
        + (READ_POOL_SIZE as u64 + 1) * SQLITE_DEFAULT_CACHE_KIB
}

/// Sizes of one `chats` run.
#[derive(Debug, Clone, Serialize)]
pub struct ChatsSizes {
    pub chats: Vec<usize>,
    pub import_chats: usize,
    pub heavy_chats: usize,
    pub senders: usize,
    pub create_samples: usize,
    pub send_seconds: f64,
}

impl ChatsSizes {
    fn new(a: &StandardArgs) -> ChatsSizes {
        let (chats, import_chats, senders, create_samples, send_seconds) = if a.smoke {
            (
                SMOKE_CHAT_COUNTS.to_vec(),
                SMOKE_IMPORT_CHATS,
                SMOKE_SENDERS,
                SMOKE_CREATE_SAMPLES,
                SMOKE_SEND_SECONDS,
            )
        } else {
            let s = a.scale.clamp(0.001, 1.0);
            let n = |v: usize| ((v as f64 * s).round() as usize).max(MIN_CHATS);
            (
                CHAT_COUNTS.iter().map(|&c| n(c)).collect(),
                n(IMPORT_CHATS),
                SENDERS,
                CREATE_SAMPLES,
                a.duration,
            )
        };
        let smallest = chats.iter().copied().min().unwrap_or(MIN_CHATS);
        ChatsSizes {
            chats,
            import_chats,
            heavy_chats: HEAVY_CHATS.min(smallest),
            senders: senders.min(smallest / 2).max(1),
            create_samples,
            send_seconds,
        }
    }
}

/// The SEND_MESSAGE run of one size.
#[derive(Debug, Clone, Serialize)]
pub struct SendReport {
    pub senders: usize,
    pub seconds: f64,
    pub acked: u64,
    pub acked_per_s: f64,
    pub ack_latency: Percentiles,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// Everything measured at one size.
#[derive(Debug, Clone, Serialize)]
pub struct SizeReport {
    pub chats: usize,
    /// Seconds the benchmark took to write the database.
    pub build_s: f64,
    pub db_bytes: u64,
    pub start_s: f64,
    pub rss_start_kib: u64,
    pub create_chat: Percentiles,
    /// Seconds the proofs of work took (not part of any figure).
    pub pow_s: f64,
    /// Reader requests answered during the CREATE_CHAT measurement, per second.
    pub reader_requests_per_s: f64,
    pub user_chats: Percentiles,
    /// Chats in the heavy key's GET_USER_CHATS answer.
    pub user_chats_count: usize,
    pub send: SendReport,
    pub rss_end_kib: u64,
    pub peak_rss_kib: u64,
}

/// The start of the daemon on a version-4 file.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub chats: usize,
    pub build_s: f64,
    /// Size of the version-4 file, bytes.
    pub db_bytes: u64,
    /// Spawn until the daemon printed its key: the import and the start.
    pub start_s: f64,
    pub peak_rss_kib: u64,
    pub rss_after_kib: u64,
}

/// The `chats` scenario's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ChatsSummary {
    pub sizes: ChatsSizes,
    pub rss_target_kib: u64,
    pub runs: Vec<SizeReport>,
    pub import: Option<ImportReport>,
}

/// The keys the benchmark authenticates as, the same at every size.
struct Keys {
    senders: Vec<SigningKey>,
    heavy: SigningKey,
}

fn tempdir(args: &StandardArgs) -> Result<tempfile::TempDir> {
    match &args.tmp_dir {
        Some(p) => tempfile::tempdir_in(p),
        None => tempfile::tempdir(),
    }
    .context("creating a temporary directory")
}

/// Builds a database of `chats` chats with `build` on a blocking thread, in a new temporary
/// directory; returns it with its layout and the build time.
async fn build_dir(
    args: &StandardArgs,
    keys: &Keys,
    chats: usize,
    heavy_chats: usize,
    build: fn(&Path, &Layout) -> Result<()>,
) -> Result<(tempfile::TempDir, Arc<Layout>, f64)> {
    let tmp = tempdir(args)?;
    let layout = Arc::new(Layout::new(
        chats,
        keys.senders.clone(),
        keys.heavy.clone(),
        heavy_chats,
    )?);
    let (dir, l2) = (tmp.path().join(DATA_DIR), layout.clone());
    let t0 = Instant::now();
    tokio::task::spawn_blocking(move || build(&dir, &l2)).await??;
    Ok((tmp, layout, t0.elapsed().as_secs_f64()))
}

/// Measures one size (see the module docs).
async fn one_size(
    bin: &Path,
    args: &StandardArgs,
    sizes: &ChatsSizes,
    keys: &Keys,
    chats: usize,
    failures: &mut Vec<String>,
) -> Result<SizeReport> {
    let name = format!("chats {chats}");
    eprintln!("== {name}: building the database");
    let (tmp, layout, build_s) =
        build_dir(args, keys, chats, sizes.heavy_chats, db::build_v5).await?;
    let db_bytes = db::db_bytes(&tmp.path().join(DATA_DIR));
    eprintln!(
        "{name}: built in {build_s:.1}s ({} MiB); starting mediatord",
        db_bytes >> 20
    );
    let t0 = Instant::now();
    let target = Target::spawn_mediatord_in(
        bin,
        tmp,
        LimitProfile::OneHost,
        crate::target::START_TIMEOUT,
    )?;
    let start_s = t0.elapsed().as_secs_f64();
    let rss_start_kib = target.stats().context("server stats")?.rss_kib;

    let creators_n = sizes.create_samples.div_ceil(NONCES_PER_SESSION);
    let sessions = 1 + READERS + creators_n + sizes.senders;
    let conns = connect_all(
        &target,
        sessions.div_ceil(MAX_SESSIONS_PER_CONNECTION).max(2),
    )
    .await?;
    let conn = |i: usize| &conns[i % conns.len()];
    let metrics = Arc::new(Metrics::default());
    let mut heavy = session(conn(0), &keys.heavy, &metrics).await?;
    let mut creators = Vec::with_capacity(creators_n);
    for i in 0..creators_n {
        creators.push(session(conn(i), &mediator_client::random_key(), &metrics).await?);
    }
    eprintln!("{name}: {} proofs of work", sizes.create_samples);
    let t_pow = Instant::now();
    let tickets = proofs(&mut creators, sizes.create_samples).await?;
    let pow_s = t_pow.elapsed().as_secs_f64();

    // CREATE_CHAT, one at a time, while the readers work.
    let heavy_ids = Arc::new(layout.heavy_ids());
    let (stop, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut readers = JoinSet::new();
    let mut reader_conns = Vec::with_capacity(READERS);
    for i in 0..READERS {
        let [a, b, c, d] = READER_SOURCE;
        let from = std::net::Ipv4Addr::new(a, b, c, d + i as u8);
        let rc = mediator_client::connect_from(from.into(), target.addr)
            .await
            .map_err(|e| anyhow::anyhow!("connecting from {from}: {e}"))?;
        let s = session(&rc, &keys.heavy, &metrics).await?;
        readers.spawn(reader(s, heavy_ids.clone(), stop.clone(), done.clone()));
        reader_conns.push(rc);
    }
    tokio::time::sleep(READER_WARMUP).await;
    let (create, t_read, read0) = (Histogram::default(), Instant::now(), done.load(Relaxed));
    for (k, (c, nonce, counter, sig)) in tickets.iter().enumerate() {
        let t = Instant::now();
        creators[*c]
            .create_chat(nonce, *counter, sig, &format!("created {k}"))
            .await
            .with_context(|| format!("{name}: CREATE_CHAT {k}"))?;
        create.record(t.elapsed().as_micros() as u64);
    }
    let reader_requests_per_s =
        (done.load(Relaxed) - read0) as f64 / t_read.elapsed().as_secs_f64();
    stop.store(true, Relaxed);
    while let Some(r) = readers.join_next().await {
        if let Err(e) = r? {
            failures.push(format!("{name}: reader: {e:#}"));
        }
    }

    // GET_USER_CHATS of the heavy key.
    let guc = Histogram::default();
    let mut user_chats_count = 0;
    for _ in 0..USER_CHATS_SAMPLES {
        let t = Instant::now();
        user_chats_count = user_chats(&mut heavy).await?;
        guc.record(t.elapsed().as_micros() as u64);
    }
    if user_chats_count != heavy_ids.len() {
        failures.push(format!(
            "{name}: GET_USER_CHATS of the heavy key listed {user_chats_count} chats, not {}",
            heavy_ids.len()
        ));
    }

    // SEND_MESSAGE over every chat.
    eprintln!(
        "{name}: {} senders for {:.1}s",
        sizes.senders, sizes.send_seconds
    );
    let send_metrics = Arc::new(Metrics::default());
    let mut senders = Vec::with_capacity(sizes.senders);
    for (i, key) in keys.senders.iter().enumerate().take(sizes.senders) {
        senders.push(session(conn(i), key, &send_metrics).await?);
    }
    let t_send = Instant::now();
    let until = t_send + Duration::from_secs_f64(sizes.send_seconds);
    let mut set = JoinSet::new();
    for (i, s) in senders.into_iter().enumerate() {
        set.spawn(sender(s, i, layout.sender_ids(i), until));
    }
    let mut senders = Vec::new();
    while let Some(r) = set.join_next().await {
        match r? {
            Ok(s) => senders.push(s),
            Err(e) => failures.push(format!("{name}: sender: {e:#}")),
        }
    }
    let send = send_report(&send_metrics, sizes.senders, t_send.elapsed().as_secs_f64());
    if send.errors > 0 || send.acked == 0 {
        failures.push(format!(
            "{name}: SEND_MESSAGE: {} acked, {} errors (first: {})",
            send.acked,
            send.errors,
            send.first_error.as_deref().unwrap_or("-")
        ));
    }
    let end = target.stats().context("server stats")?;
    if metrics.errors.load(Relaxed) > 0 {
        failures.push(format!(
            "{name}: {} errors (first: {})",
            metrics.errors.load(Relaxed),
            metrics
                .first_error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .unwrap_or_default()
        ));
    }
    drop((heavy, creators, senders, conns, reader_conns));
    stop_checked(target, &name, failures).await;
    Ok(SizeReport {
        chats,
        build_s,
        db_bytes,
        start_s,
        rss_start_kib,
        create_chat: create.percentiles(),
        pow_s,
        reader_requests_per_s,
        user_chats: guc.percentiles(),
        user_chats_count,
        send,
        rss_end_kib: end.rss_kib,
        peak_rss_kib: end.peak_rss_kib,
    })
}

fn send_report(m: &Metrics, senders: usize, seconds: f64) -> SendReport {
    let acked = m.acked.load(Relaxed);
    SendReport {
        senders,
        seconds,
        acked,
        acked_per_s: acked as f64 / seconds,
        ack_latency: m.ack_latency.percentiles(),
        errors: m.errors.load(Relaxed) + m.disconnects.load(Relaxed),
        first_error: m.first_error.lock().ok().and_then(|e| e.clone()),
    }
}

/// Starts the daemon on a version-4 file of `chats` chats and checks what it imported.
async fn import(
    bin: &Path,
    args: &StandardArgs,
    sizes: &ChatsSizes,
    keys: &Keys,
    failures: &mut Vec<String>,
) -> Result<ImportReport> {
    let chats = sizes.import_chats;
    let name = format!("import v4 {chats}");
    eprintln!("== {name}: building the version-4 database");
    let heavy_chats = sizes.heavy_chats.min(chats);
    let (tmp, layout, build_s) = build_dir(args, keys, chats, heavy_chats, db::build_v4).await?;
    let db_bytes = db::db_bytes(&tmp.path().join(DATA_DIR));
    eprintln!(
        "{name}: built in {build_s:.1}s ({} MiB); starting mediatord",
        db_bytes >> 20
    );
    let t0 = Instant::now();
    let target = Target::spawn_mediatord_in(bin, tmp, LimitProfile::OneHost, IMPORT_START_TIMEOUT)?;
    let start_s = t0.elapsed().as_secs_f64();
    let start_peak = target.start_peak_rss_kib;
    let stats = target.stats().context("server stats")?;
    let metrics = Arc::new(Metrics::default());
    let conns = connect_all(&target, 1).await?;
    let mut heavy = session(&conns[0], &keys.heavy, &metrics).await?;
    let listed = user_chats(&mut heavy).await?;
    let mut sender = session(&conns[0], &keys.senders[0], &metrics).await?;
    let chat = *layout
        .sender_ids(0)
        .first()
        .context("sender 0 belongs to no chat")?;
    let (m, _, _) = sender.messages_since(chat, 0, READER_PAGE).await?;
    if listed != layout.heavy_ids().len() || m as i64 != db::MESSAGES_PER_CHAT {
        failures.push(format!(
            "{name}: after the import the heavy key lists {listed} chats (expected {}) and a \
             chat holds {m} messages (expected {})",
            layout.heavy_ids().len(),
            db::MESSAGES_PER_CHAT
        ));
    }
    drop((heavy, sender, conns));
    stop_checked(target, &name, failures).await;
    Ok(ImportReport {
        chats,
        build_s,
        db_bytes,
        start_s,
        peak_rss_kib: stats.peak_rss_kib.max(start_peak),
        rss_after_kib: stats.rss_kib,
    })
}

/// Runs the `chats` scenario.
pub async fn run(
    bin: &Path,
    args: &StandardArgs,
    failures: &mut Vec<String>,
) -> Result<ChatsSummary> {
    let sizes = ChatsSizes::new(args);
    let keys = Keys {
        senders: (0..sizes.senders)
            .map(|_| mediator_client::random_key())
            .collect(),
        heavy: mediator_client::random_key(),
    };
    let mut runs = Vec::new();
    for &chats in &sizes.chats {
        match one_size(bin, args, &sizes, &keys, chats, failures).await {
            Ok(r) => runs.push(r),
            Err(e) => failures.push(format!("chats {chats}: {e:#}")),
        }
    }
    let import = match import(bin, args, &sizes, &keys, failures).await {
        Ok(r) => Some(r),
        Err(e) => {
            failures.push(format!("import v4: {e:#}"));
            None
        }
    };
    if runs.is_empty() && import.is_none() {
        bail!("the chats scenario measured nothing");
    }
    Ok(ChatsSummary {
        sizes,
        rss_target_kib: rss_target_kib(),
        runs,
        import,
    })
}

/// One figure of the table: its name, how to read it from a size's report, its target.
type Figure<'a> = (&'a str, fn(&SizeReport) -> f64, &'a str);

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The scenario's rows of the summary table: each figure at every size, the smallest size
/// as the baseline (so the ratio is the growth), then the import.
pub fn rows(sum: &ChatsSummary) -> Vec<Row> {
    let mut out = Vec::new();
    let rss_target = format!("<= {:.0} MiB", mib(sum.rss_target_kib));
    let start_target = format!("<= {START_TARGET_S} s");
    let create_target = format!("<= {CREATE_P99_TARGET_MS} ms");
    let flat = "flat (log N)";
    let figures: [Figure; 8] = [
        ("start s", |r| r.start_s, &start_target),
        ("RSS after start MiB", |r| mib(r.rss_start_kib), &rss_target),
        (
            "CREATE_CHAT p50 ms (readers busy)",
            |r| r.create_chat.p50_ms,
            flat,
        ),
        (
            "CREATE_CHAT p99 ms (readers busy)",
            |r| r.create_chat.p99_ms,
            &create_target,
        ),
        ("GET_USER_CHATS p50 ms", |r| r.user_chats.p50_ms, flat),
        ("GET_USER_CHATS p99 ms", |r| r.user_chats.p99_ms, flat),
        ("SEND_MESSAGE acked msg/s", |r| r.send.acked_per_s, flat),
        ("RSS at end MiB", |r| mib(r.rss_end_kib), &rss_target),
    ];
    if let Some(first) = sum.runs.first() {
        let base_name = format!("{} chats", first.chats);
        for (what, f, target) in figures {
            for r in &sum.runs {
                let what = if what.starts_with("GET_USER_CHATS") {
                    format!("{what} ({} chats of the key)", r.user_chats_count)
                } else {
                    what.to_string()
                };
                out.push(row(
                    &format!("chats {}: {what}", r.chats),
                    f(r),
                    &base_name,
                    f(first),
                    target,
                ));
            }
        }
    }
    if let Some(i) = &sum.import {
        out.push(row(
            &format!("import v4 {} chats: start s", i.chats),
            i.start_s,
            "",
            f64::NAN,
            "reported",
        ));
        out.push(row(
            &format!("import v4 {} chats: peak RSS MiB", i.chats),
            mib(i.peak_rss_kib),
            "",
            f64::NAN,
            "reported",
        ));
        out.push(row(
            &format!("import v4 {} chats: RSS after start MiB", i.chats),
            mib(i.rss_after_kib),
            "",
            f64::NAN,
            "reported",
        ));
    }
    out
}
