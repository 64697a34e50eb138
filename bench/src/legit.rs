//! The legitimate side of the attack scenarios, and what watches the daemon meanwhile.
//!
//! * [`Prober`]: the legitimate user, from its own source ([`LEGIT_IP`]) and on a thread and
//!   runtime of its own, so the attacker's tasks in this process cannot delay it. Every
//!   [`PROBE_PERIOD`] it opens a fresh QUIC connection and session, authenticates
//!   (GET_NONCE + AUTH), sends a message to its chat and waits for the push on its second,
//!   subscribed session; the time of each attempt (connect + auth + send + push) goes into a
//!   histogram and every failure is a refusal. The subscribed session is opened again if the
//!   daemon closes it (that is a refusal too). Beside it, every [`LARGE_PERIOD`] another
//!   session sends a [`LARGE_BLOB`] message and reads it back with GET_MESSAGES_SINCE (an
//!   upload that draws on the request budget, an answer that reserves queue room), and
//!   optionally a third asks GET_MEMBERS_INFO every [`MEMBERS_INFO_PERIOD`].
//! * [`RssSampler`]: the daemon's VmRSS every [`RSS_PERIOD`], on a thread of its own.
//! * [`background`]: idle honest sessions, authenticated as random keys and spread over many
//!   sources ([`BACKGROUND_PER_SOURCE`] each), so no per-source cap applies to them.

use crate::client::Session as BenchSession;
use crate::metrics::{Histogram, Metrics, Percentiles};
use anyhow::{anyhow, bail, Context, Result};
use ed25519_dalek::SigningKey;
use mediator_client::{connect_from, Push, Session};
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;

/// The legitimate user's source address.
pub const LEGIT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// One legitimate attempt starts this often (the next waits if one runs longer).
pub const PROBE_PERIOD: Duration = Duration::from_millis(50);
/// An attempt that takes longer than this is given up and counted as a refusal.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts slower than this are listed in [`LegitReport::slow`] with their phases.
pub const SLOW_ATTEMPT_MS: f64 = 100.0;
/// Most slow attempts listed.
pub const MAX_SLOW_LISTED: usize = 16;
/// Size of the legitimate message blob.
pub const LEGIT_BLOB: usize = 256;
/// What the listener forwards instead of a guid when the daemon has closed its session: the
/// pushes of messages sent before then are lost, and the attempt waiting for one fails at
/// once instead of after [`ATTEMPT_TIMEOUT`].
pub const LISTENER_LOST: i64 = i64::MIN;
/// How often the listener looks at the stop flag and its session while no push arrives.
pub const LISTEN_POLL: Duration = Duration::from_millis(100);
/// Size of the large message sent and read back every [`LARGE_PERIOD`]: over the daemon's
/// 16 KiB of free request payload and its 1 MiB fair share of the answer queue.
pub const LARGE_BLOB: usize = 1024 * 1024 + 1024;
/// How often the large message is sent and read back.
pub const LARGE_PERIOD: Duration = Duration::from_secs(1);
/// How often GET_MEMBERS_INFO is asked when the prober checks it.
pub const MEMBERS_INFO_PERIOD: Duration = Duration::from_secs(1);
/// Pause before a closed session is opened again.
pub const REOPEN_PAUSE: Duration = Duration::from_millis(100);
/// How long the prober may take to subscribe before the measurement starts.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// VmRSS sampling period.
pub const RSS_PERIOD: Duration = Duration::from_millis(100);
/// Idle honest sessions per background source: well under `max_sessions_per_source`
/// (1,000), and within one burst of a per-source GET_NONCE rate limit (newer daemons: 50/s,
/// bursts of 200).
pub const BACKGROUND_PER_SOURCE: usize = 150;
/// Sessions one background source authenticates at once: well under
/// `max_guest_sessions_per_source` (64).
pub const BACKGROUND_AUTH_CONCURRENCY: usize = 16;
/// Attempts to open and authenticate one background session (a busy or rate-limiting
/// daemon may refuse); the pause before attempt `k` is `k` times [`REOPEN_PAUSE`].
pub const BACKGROUND_ATTEMPTS: u32 = 20;

/// The `k`-th background source, 127.0.1.1 and up.
pub fn background_ip(k: usize) -> IpAddr {
    let k = k + 1;
    IpAddr::V4(Ipv4Addr::new(127, 0, 1 + (k / 256) as u8, (k % 256) as u8))
}

/// The legitimate user: its key and its chat.
#[derive(Clone)]
pub struct Legit {
    pub key: SigningKey,
    pub chat: i64,
}

/// A session from [`LEGIT_IP`] authenticated as `key` (on a connection of its own).
pub async fn legit_session(addr: SocketAddr, key: &SigningKey) -> Result<Session> {
    let conn = connect_from(LEGIT_IP, addr)
        .await
        .map_err(|e| anyhow!("legit connect: {e}"))?;
    let mut s = Session::open(&conn)
        .await
        .map_err(|e| anyhow!("legit session: {e}"))?;
    s.auth(key).await.map_err(|e| anyhow!("legit AUTH: {e}"))?;
    Ok(s)
}

/// Creates the legitimate user and its chat (with its proof of work).
pub async fn create(addr: SocketAddr) -> Result<Legit> {
    let key = mediator_client::random_key();
    let mut s = legit_session(addr, &key).await?;
    let chat = s
        .create_chat("legit", "the legitimate user's chat", None)
        .await
        .map_err(|e| anyhow!("legit CREATE_CHAT: {e}"))?;
    Ok(Legit { key, chat })
}

/// What the legitimate user saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LegitReport {
    pub attempts: u64,
    pub ok: u64,
    /// Failed attempts plus closed subscribed sessions and failed GET_MEMBERS_INFO.
    pub refusals: u64,
    pub first_refusal: Option<String>,
    /// connect + auth + send + push of each successful attempt.
    pub latency: Percentiles,
    /// The first attempts over [`SLOW_ATTEMPT_MS`], with their phases.
    pub slow: Vec<SlowAttempt>,
    pub listener_reopened: u64,
    pub members_info_checks: u64,
    pub members_info_max_ms: f64,
    /// Large messages sent and read back, those that failed, the slowest round trip.
    pub large: u64,
    pub large_failed: u64,
    pub large_first_failure: Option<String>,
    pub large_max_ms: f64,
}

/// One slow attempt: when it started in the window and how long each phase took, ms.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SlowAttempt {
    pub at_s: f64,
    pub total_ms: f64,
    pub connect_ms: f64,
    pub auth_ms: f64,
    pub send_ms: f64,
    pub push_ms: f64,
}

#[derive(Default)]
struct Stats {
    slow: Mutex<Vec<SlowAttempt>>,
    attempts: AtomicU64,
    ok: AtomicU64,
    refusals: AtomicU64,
    first: Mutex<Option<String>>,
    latency: Histogram,
    reopened: AtomicU64,
    mi_checks: AtomicU64,
    mi_max_us: AtomicU64,
    large: AtomicU64,
    large_failed: AtomicU64,
    large_first: Mutex<Option<String>>,
    large_max_us: AtomicU64,
}

impl Stats {
    fn refusal(&self, why: String) {
        self.refusals.fetch_add(1, Relaxed);
        let mut f = self.first.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(why);
        }
    }

    fn large_failure(&self, why: String) {
        self.large_failed.fetch_add(1, Relaxed);
        let mut f = self.large_first.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(why);
        }
    }

    fn report(&self) -> LegitReport {
        LegitReport {
            attempts: self.attempts.load(Relaxed),
            ok: self.ok.load(Relaxed),
            refusals: self.refusals.load(Relaxed),
            first_refusal: self.first.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            latency: self.latency.percentiles(),
            slow: self.slow.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            listener_reopened: self.reopened.load(Relaxed),
            members_info_checks: self.mi_checks.load(Relaxed),
            members_info_max_ms: self.mi_max_us.load(Relaxed) as f64 / 1000.0,
            large: self.large.load(Relaxed),
            large_failed: self.large_failed.load(Relaxed),
            large_first_failure: self
                .large_first
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            large_max_ms: self.large_max_us.load(Relaxed) as f64 / 1000.0,
        }
    }
}

/// The legitimate user at work on its own thread; [`Prober::finish`] stops it.
pub struct Prober {
    stop: Arc<AtomicBool>,
    done: oneshot::Receiver<LegitReport>,
}

impl Prober {
    /// Starts the prober and returns once its listener is subscribed.
    pub async fn start(addr: SocketAddr, legit: &Legit, members_info: bool) -> Result<Prober> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = oneshot::channel();
        let (done_tx, done) = oneshot::channel();
        let (legit, stop2) = (legit.clone(), stop.clone());
        std::thread::Builder::new()
            .name("legit".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow!("legit runtime: {e}")));
                        return;
                    }
                };
                let report = rt.block_on(probe(addr, legit, members_info, stop2, ready_tx));
                let _ = done_tx.send(report);
            })
            .context("starting the legit thread")?;
        match tokio::time::timeout(READY_TIMEOUT, ready_rx).await {
            Ok(Ok(Ok(()))) => Ok(Prober { stop, done }),
            Ok(Ok(Err(e))) => Err(e),
            _ => {
                stop.store(true, Relaxed);
                bail!("the legit prober did not start within {READY_TIMEOUT:?}")
            }
        }
    }

    /// Stops the prober and returns what it saw.
    pub async fn finish(self) -> Result<LegitReport> {
        self.stop.store(true, Relaxed);
        self.done.await.context("the legit prober died")
    }
}

/// Opens the subscribed listener session.
async fn listener(addr: SocketAddr, legit: &Legit) -> Result<Session> {
    let mut s = legit_session(addr, &legit.key).await?;
    s.subscribe(legit.chat)
        .await
        .map_err(|e| anyhow!("legit SUBSCRIBE: {e}"))?;
    Ok(s)
}

async fn probe(
    addr: SocketAddr,
    legit: Legit,
    members_info: bool,
    stop: Arc<AtomicBool>,
    ready: oneshot::Sender<Result<()>>,
) -> LegitReport {
    let stats = Arc::new(Stats::default());
    let first = match listener(addr, &legit).await {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(e));
            return stats.report();
        }
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();
    // The listener stops after the last attempt, which may still wait for its push.
    let attempts_done = Arc::new(AtomicBool::new(false));
    tasks.spawn(listen(
        addr,
        legit.clone(),
        first,
        tx,
        stats.clone(),
        attempts_done.clone(),
    ));
    tasks.spawn(check_large(
        addr,
        legit.clone(),
        stats.clone(),
        stop.clone(),
    ));
    if members_info {
        tasks.spawn(check_members_info(
            addr,
            legit.clone(),
            stats.clone(),
            stop.clone(),
        ));
    }
    let _ = ready.send(Ok(()));
    let mut tick = tokio::time::interval(PROBE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut guid = i64::from(rand::random::<u32>()) << 20;
    let window = Instant::now();
    while !stop.load(Relaxed) {
        tick.tick().await;
        if stop.load(Relaxed) {
            break;
        }
        guid += 1;
        stats.attempts.fetch_add(1, Relaxed);
        let t0 = Instant::now();
        match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt(addr, &legit, guid, &mut rx)).await {
            Ok(Ok(phases)) => {
                let total = t0.elapsed();
                stats.latency.record(total.as_micros() as u64);
                stats.ok.fetch_add(1, Relaxed);
                let ms = |d: Duration| d.as_secs_f64() * 1000.0;
                let mut slow = stats.slow.lock().unwrap_or_else(|p| p.into_inner());
                if ms(total) > SLOW_ATTEMPT_MS && slow.len() < MAX_SLOW_LISTED {
                    slow.push(SlowAttempt {
                        at_s: (t0 - window).as_secs_f64(),
                        total_ms: ms(total),
                        connect_ms: ms(phases[0]),
                        auth_ms: ms(phases[1]),
                        send_ms: ms(phases[2]),
                        push_ms: ms(phases[3]),
                    });
                }
            }
            Ok(Err(e)) => stats.refusal(format!("{e:#}")),
            Err(_) => stats.refusal(format!("attempt took over {ATTEMPT_TIMEOUT:?}")),
        }
    }
    attempts_done.store(true, Relaxed);
    while tasks.join_next().await.is_some() {}
    stats.report()
}

/// One attempt: connect, authenticate, send, and wait for the push on the listener; the
/// time of each of these four phases.
async fn attempt(
    addr: SocketAddr,
    legit: &Legit,
    guid: i64,
    pushes: &mut mpsc::UnboundedReceiver<i64>,
) -> Result<[Duration; 4]> {
    // A loss signalled before this attempt's message concerns an earlier one.
    while pushes.try_recv().is_ok() {}
    let mut t = Instant::now();
    let mut lap = || {
        let now = Instant::now();
        let d = now - t;
        t = now;
        d
    };
    let conn = connect_from(LEGIT_IP, addr)
        .await
        .map_err(|e| anyhow!("connect: {e}"))?;
    let connect = lap();
    let mut s = Session::open(&conn)
        .await
        .map_err(|e| anyhow!("open: {e}"))?;
    s.auth(&legit.key).await.map_err(|e| anyhow!("AUTH: {e}"))?;
    let auth = lap();
    let (guid, _) = s
        .send_message(legit.chat, guid, &[0x5a; LEGIT_BLOB])
        .await
        .map_err(|e| anyhow!("SEND_MESSAGE: {e}"))?;
    let send = lap();
    loop {
        match pushes.recv().await {
            Some(g) if g == guid => break,
            Some(LISTENER_LOST) => {
                bail!("the push was lost: the daemon closed the subscribed session")
            }
            Some(_) => continue,
            None => bail!("the listener is gone"),
        }
    }
    let push = lap();
    drop(s);
    conn.close(0u32.into(), b"done");
    Ok([connect, auth, send, push])
}

/// Forwards the guids of the chat's messages pushed to the subscribed session; reopens the
/// session (a refusal) when the daemon closes it.
async fn listen(
    addr: SocketAddr,
    legit: Legit,
    mut s: Session,
    tx: mpsc::UnboundedSender<i64>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Relaxed) {
        match s.next_push(LISTEN_POLL).await {
            Some(Push::Message(m)) if m.chat_id == legit.chat => {
                let _ = tx.send(m.message.guid);
            }
            Some(_) => {}
            None if s.is_closed() => {
                stats.refusal("the daemon closed the subscribed session".into());
                let _ = tx.send(LISTENER_LOST);
                stats.reopened.fetch_add(1, Relaxed);
                loop {
                    if stop.load(Relaxed) {
                        return;
                    }
                    tokio::time::sleep(REOPEN_PAUSE).await;
                    match listener(addr, &legit).await {
                        Ok(n) => {
                            s = n;
                            break;
                        }
                        Err(e) => stats.refusal(format!("reopening the listener: {e:#}")),
                    }
                }
            }
            None => {}
        }
    }
}

/// Asks GET_MEMBERS_INFO (from the start) every [`MEMBERS_INFO_PERIOD`].
async fn check_members_info(
    addr: SocketAddr,
    legit: Legit,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) {
    let mut s: Option<Session> = None;
    let mut tick = tokio::time::interval(MEMBERS_INFO_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Relaxed) {
        tick.tick().await;
        let t0 = Instant::now();
        let mut sess = match reuse_or_open(s.take(), addr, &legit.key).await {
            Ok(x) => x,
            Err(e) => {
                stats.refusal(format!("GET_MEMBERS_INFO session: {e:#}"));
                continue;
            }
        };
        stats.mi_checks.fetch_add(1, Relaxed);
        match sess.members_info(legit.chat, 0).await {
            Ok(list) if !list.is_empty() => {
                let us = t0.elapsed().as_micros() as u64;
                stats.mi_max_us.fetch_max(us, Relaxed);
                s = Some(sess);
            }
            Ok(_) => stats.refusal("GET_MEMBERS_INFO: an empty answer".into()),
            Err(e) => stats.refusal(format!("GET_MEMBERS_INFO: {e}")),
        }
    }
}

/// The session kept from the last round if it is still open, else a new one.
async fn reuse_or_open(
    kept: Option<Session>,
    addr: SocketAddr,
    key: &SigningKey,
) -> Result<Session> {
    match kept {
        Some(x) if !x.is_closed() => Ok(x),
        _ => legit_session(addr, key).await,
    }
}

/// Sends a [`LARGE_BLOB`] message and reads it back every [`LARGE_PERIOD`].
async fn check_large(addr: SocketAddr, legit: Legit, stats: Arc<Stats>, stop: Arc<AtomicBool>) {
    let mut s: Option<Session> = None;
    let mut tick = tokio::time::interval(LARGE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let blob = vec![0x6b; LARGE_BLOB];
    let mut guid = i64::from(rand::random::<u32>()) << 21;
    while !stop.load(Relaxed) {
        tick.tick().await;
        guid += 1;
        stats.large.fetch_add(1, Relaxed);
        let t0 = Instant::now();
        let mut sess = match reuse_or_open(s.take(), addr, &legit.key).await {
            Ok(x) => x,
            Err(e) => {
                stats.large_failure(format!("session: {e:#}"));
                continue;
            }
        };
        let r = async {
            let (_, id) = sess.send_message(legit.chat, guid, &blob).await?;
            sess.messages_since(legit.chat, id - 1, 1).await
        };
        match tokio::time::timeout(ATTEMPT_TIMEOUT, r).await {
            Ok(Ok(m)) if m.first().is_some_and(|m| m.blob.len() == LARGE_BLOB) => {
                stats
                    .large_max_us
                    .fetch_max(t0.elapsed().as_micros() as u64, Relaxed);
                s = Some(sess);
            }
            Ok(Ok(_)) => stats.large_failure("the message read back is not the one sent".into()),
            Ok(Err(e)) => stats.large_failure(format!("{e}")),
            Err(_) => stats.large_failure(format!("took over {ATTEMPT_TIMEOUT:?}")),
        }
    }
}

/// Samples a process's VmRSS every [`RSS_PERIOD`] on a thread of its own.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
}

impl RssSampler {
    /// Starts sampling `pid` (nothing is sampled without one).
    pub fn start(pid: Option<u32>) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        if let Some(pid) = pid {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Relaxed) {
                    if let Ok(s) = crate::target::proc_stats(pid) {
                        peak.fetch_max(s.rss_kib, Relaxed);
                    }
                    std::thread::sleep(RSS_PERIOD);
                }
            });
        }
        RssSampler { stop, peak }
    }

    /// Stops sampling; the highest VmRSS seen, KiB.
    pub fn finish(self) -> u64 {
        self.stop.store(true, Relaxed);
        self.peak.load(Relaxed)
    }
}

/// Idle honest sessions, kept open while this lives.
pub struct Background {
    pub sessions: usize,
    _conns: Vec<quinn::Connection>,
    _held: Vec<BenchSession>,
}

/// Opens and authenticates `n` idle sessions spread over [`background_ip`] sources.
pub async fn background(addr: SocketAddr, n: usize) -> Result<Background> {
    let metrics = Arc::new(Metrics::default());
    let per_conn = crate::load::MAX_SESSIONS_PER_CONNECTION;
    let mut sources = JoinSet::new();
    for (k, start) in (0..n).step_by(BACKGROUND_PER_SOURCE).enumerate() {
        let count = BACKGROUND_PER_SOURCE.min(n - start);
        let metrics = metrics.clone();
        sources.spawn(async move {
            let ip = background_ip(k);
            let mut conns = Vec::new();
            for _ in 0..count.div_ceil(per_conn) {
                conns.push(
                    connect_from(ip, addr)
                        .await
                        .map_err(|e| anyhow!("background connect from {ip}: {e}"))?,
                );
            }
            let limit = Arc::new(Semaphore::new(BACKGROUND_AUTH_CONCURRENCY));
            let mut set = JoinSet::new();
            for i in 0..count {
                let (conn, limit, metrics) = (
                    conns[i % conns.len()].clone(),
                    limit.clone(),
                    metrics.clone(),
                );
                set.spawn(async move {
                    let _permit = limit.acquire_owned().await?;
                    let mut last = None;
                    for k in 1..=BACKGROUND_ATTEMPTS {
                        let s = BenchSession::open(&conn, metrics.clone(), 1).await;
                        let r = match s {
                            Ok(mut s) => s.auth(&mediator_client::random_key()).await.map(|_| s),
                            Err(e) => Err(e),
                        };
                        match r {
                            Ok(s) => return Ok(s),
                            Err(e) => last = Some(e),
                        }
                        tokio::time::sleep(REOPEN_PAUSE * k).await;
                    }
                    Err(last.unwrap_or_else(|| anyhow!("no attempt")))
                });
            }
            let mut held = Vec::with_capacity(count);
            while let Some(r) = set.join_next().await {
                held.push(r?.with_context(|| format!("background session from {ip}"))?);
            }
            anyhow::Ok((conns, held))
        });
    }
    let mut out = Background {
        sessions: 0,
        _conns: Vec::new(),
        _held: Vec::new(),
    };
    while let Some(r) = sources.join_next().await {
        let (c, h) = r??;
        out.sessions += h.len();
        out._conns.extend(c);
        out._held.extend(h);
    }
    Ok(out)
}
