//! The load generator: N simulated users on M QUIC connections, K chats, S senders.
//!
//! Setup: one owner session creates the K chats (CREATE_CHAT with its proof of work, run in
//! parallel on blocking threads) and adds every user directly with ADD_USER (0x20); user `i`
//! is a member of chat `i mod K`, and the first S users send. Each user is one session; the
//! sessions are spread round-robin over the connections (at most
//! [`MAX_SESSIONS_PER_CONNECTION`] streams each, the server's QUIC stream limit).
//!
//! A run then sends messages of a fixed size either open loop (each sender at a fixed rate,
//! latency measured from the scheduled send time so a slow server cannot hide its queueing)
//! or closed loop (each sender keeps `window` requests in flight and sends the next as soon as
//! an ack frees a slot). It prints a progress line each second and returns a [`RunReport`]:
//! acknowledged messages/s, pushes/s, send→ack and send→push latency percentiles, errors,
//! disconnects, lost pushes, and the server's CPU time and memory.

use crate::client::{self, instant_ns, now_ns, tlvs, Session, BLOB_HEADER};
use crate::metrics::{Metrics, Percentiles};
use crate::target::{Kind, Target};
use anyhow::{bail, Context, Result};
use ed25519_dalek::SigningKey;
use mediator_wire::tlv::tag;
use mediator_wire::Command;
use serde::Serialize;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Streams (sessions) per QUIC connection: the server's `max_concurrent_bidi_streams`.
pub const MAX_SESSIONS_PER_CONNECTION: usize =
    mediator_quic::settings::DEFAULT_MAX_BIDI_STREAMS as usize;
/// Sessions opened, authenticated or subscribed at once during setup.
pub const SETUP_CONCURRENCY: usize = 256;
/// CREATE_CHAT proofs of work computed at once (the server keeps 8 nonces per key).
pub const MAX_POW_IN_FLIGHT: usize = 4;
/// How long the end of a run waits for outstanding acks and pushes.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause after setup so its pushes (online events, member-info requests) are delivered
/// before the measurement starts.
pub const SETTLE: Duration = Duration::from_millis(500);
/// Interval of the progress line.
pub const PROGRESS_PERIOD: Duration = Duration::from_secs(1);

/// Who is where: users, connections, chats, senders.
#[derive(Debug, Clone, Serialize, clap::Args)]
pub struct WorldConfig {
    /// Simulated users, one session each.
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// QUIC connections (0: as few as the stream limit allows).
    #[arg(long, default_value_t = 0)]
    pub connections: usize,
    /// Chats; user i is a member of chat i mod chats.
    #[arg(long, default_value_t = 1)]
    pub chats: usize,
    /// Users that subscribe to their chat (the first ones; default all).
    #[arg(long)]
    pub subscribers: Option<usize>,
    /// In-flight SEND_MESSAGE requests per sender in closed loop.
    #[arg(long, default_value_t = 1)]
    pub window: usize,
}

/// What a run sends.
#[derive(Debug, Clone, Serialize, clap::Args)]
pub struct RunConfig {
    /// Users that send (the first ones; default all).
    #[arg(long)]
    pub senders: Option<usize>,
    /// Message blob size in bytes (at least the 24-byte timing header).
    #[arg(long, default_value_t = 1024)]
    pub msg_size: usize,
    /// Messages per second per sender (open loop); absent: closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Length of the run in seconds (an upper bound when --messages is given).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Stop once this many messages are acknowledged in total.
    #[arg(long)]
    pub messages: Option<u64>,
    /// Print a progress line each second (on stderr).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub progress: bool,
}

/// Server CPU and memory over a run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ServerUsage {
    /// CPU seconds the server used during the run.
    pub cpu_s: f64,
    /// Average cores busy (cpu_s / run seconds).
    pub cpu_cores: f64,
    /// RSS at the end, KiB.
    pub rss_kib: u64,
    /// Peak RSS since the server started, KiB.
    pub peak_rss_kib: u64,
}

/// The result of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub target: Kind,
    pub mode: &'static str,
    pub users: usize,
    pub connections: usize,
    pub chats: usize,
    pub senders: usize,
    pub subscribers: usize,
    pub msg_size: usize,
    pub rate_per_sender: Option<f64>,
    pub window: usize,
    pub seconds: f64,
    pub sent: u64,
    pub acked: u64,
    pub acked_per_s: f64,
    pub pushes: u64,
    pub pushes_per_s: f64,
    /// Pushes the acknowledged messages should have caused that never arrived (after the
    /// drain).
    pub pushes_missing: i64,
    pub errors: u64,
    pub disconnects: u64,
    pub first_error: Option<String>,
    pub ack_latency: Percentiles,
    pub push_latency: Percentiles,
    pub server: Option<ServerUsage>,
}

/// Users, their sessions and chats, ready to run.
pub struct World {
    pub kind: Kind,
    pub cfg: WorldConfig,
    pub metrics: Arc<Metrics>,
    pub conns: Vec<quinn::Connection>,
    pub owner: Session,
    /// One session per user, in user order.
    pub users: Vec<Session>,
    pub chats: Vec<i64>,
    /// Seconds the setup took.
    pub setup_s: f64,
}

/// Runs `f` over every session with bounded concurrency and returns them in order.
pub async fn for_each_session<F, Fut>(sessions: Vec<Session>, f: F) -> Result<Vec<Session>>
where
    F: Fn(usize, Session) -> Fut,
    Fut: Future<Output = Result<Session>> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut set = JoinSet::new();
    let n = sessions.len();
    for (i, s) in sessions.into_iter().enumerate() {
        let permit = limit.clone().acquire_owned().await?;
        let fut = f(i, s);
        set.spawn(async move {
            let r = fut.await;
            drop(permit);
            (i, r)
        });
    }
    let mut out: Vec<Option<Session>> = (0..n).map(|_| None).collect();
    while let Some(r) = set.join_next().await {
        let (i, s) = r?;
        out[i] = Some(s.with_context(|| format!("session {i}"))?);
    }
    Ok(out
        .into_iter()
        .map(|s| s.expect("every task returned"))
        .collect())
}

/// Opens `n` QUIC connections at once.
pub async fn connect_all(target: &Target, n: usize) -> Result<Vec<quinn::Connection>> {
    let mut set = JoinSet::new();
    for i in 0..n {
        let addr = target.addr;
        set.spawn(async move { (i, client::connect(addr).await) });
    }
    let mut out: Vec<Option<quinn::Connection>> = (0..n).map(|_| None).collect();
    while let Some(r) = set.join_next().await {
        let (i, c) = r?;
        out[i] = Some(c?);
    }
    Ok(out.into_iter().map(|c| c.expect("connected")).collect())
}

/// Opens and authenticates `n` sessions on `conns` (session i on connection
/// `(i + offset) mod len`), all at once up to [`SETUP_CONCURRENCY`].
pub async fn open_users(
    conns: &[quinn::Connection],
    offset: usize,
    n: usize,
    metrics: &Arc<Metrics>,
    window: usize,
) -> Result<Vec<Session>> {
    let limit = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut set = JoinSet::new();
    for i in 0..n {
        let conn = conns[(i + offset) % conns.len()].clone();
        let (metrics, limit) = (metrics.clone(), limit.clone());
        set.spawn(async move {
            let _permit = limit.acquire_owned().await?;
            let mut s = Session::open(&conn, metrics, window).await?;
            s.auth(&mediator_client::random_key()).await?;
            anyhow::Ok((i, s))
        });
    }
    let mut out: Vec<Option<Session>> = (0..n).map(|_| None).collect();
    while let Some(r) = set.join_next().await {
        let (i, s) = r??;
        out[i] = Some(s);
    }
    Ok(out.into_iter().map(|s| s.expect("opened")).collect())
}

/// Creates `k` chats owned by `owner`, computing the proofs of work in parallel.
pub async fn create_chats(owner: &mut Session, k: usize, kind: Kind) -> Result<Vec<i64>> {
    let key: SigningKey = owner.key.clone().context("owner not authenticated")?;
    let pk = key.verifying_key().to_bytes();
    let par = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, MAX_POW_IN_FLIGHT);
    let mut chats = Vec::with_capacity(k);
    while chats.len() < k {
        let batch = par.min(k - chats.len());
        let mut work = Vec::new();
        for _ in 0..batch {
            let nonce = owner.nonce(&pk).await?;
            let key = key.clone();
            work.push(tokio::task::spawn_blocking(move || {
                let (counter, sig) = match kind {
                    Kind::Mediatord => mediator_client::proof_of_work(&key, &nonce),
                    // The baseline server checks nothing.
                    Kind::RawQuinn => (0, [0u8; 64]),
                };
                (nonce, counter, sig)
            }));
        }
        for w in work {
            let (nonce, counter, sig) = w.await?;
            let name = format!("bench-{}", chats.len());
            chats.push(owner.create_chat(&nonce, counter, &sig, &name).await?);
        }
    }
    Ok(chats)
}

impl World {
    /// Connects, creates the chats, opens and authenticates every user, adds each to its
    /// chat and subscribes the subscribers.
    pub async fn build(target: &Target, cfg: &WorldConfig) -> Result<World> {
        let started = Instant::now();
        let metrics = Arc::new(Metrics::default());
        let n_conn = cfg
            .connections
            .max((cfg.users + 1).div_ceil(MAX_SESSIONS_PER_CONNECTION))
            .max(1);
        let conns = connect_all(target, n_conn).await?;
        let mut owner = Session::open(&conns[0], metrics.clone(), 1).await?;
        owner.auth(&mediator_client::random_key()).await?;
        if cfg.chats > 0 && target.kind == Kind::Mediatord {
            eprintln!(
                "setup: {} chat(s), about 65,536 signatures of proof of work each",
                cfg.chats
            );
        }
        let chats = create_chats(&mut owner, cfg.chats, target.kind).await?;
        let users = open_users(&conns, 1, cfg.users, &metrics, cfg.window).await?;
        if !chats.is_empty() {
            let adds = users.iter().enumerate().map(|(i, u)| {
                let pk = u.key.as_ref().expect("authenticated").verifying_key();
                tlvs(&[
                    (tag::CHAT_ID, &chats[i % chats.len()].to_be_bytes()),
                    (tag::USER_PUBKEY, pk.as_bytes()),
                ])
            });
            let adds: Vec<Vec<u8>> = adds.collect();
            for (i, r) in owner
                .pipeline(Command::AddUser, adds)
                .await?
                .into_iter()
                .enumerate()
            {
                r.with_context(|| format!("ADD_USER of user {i}"))?;
            }
        }
        let subs = cfg.subscribers.unwrap_or(cfg.users).min(cfg.users);
        let users = if chats.is_empty() {
            users
        } else {
            let chats2 = chats.clone();
            for_each_session(users, move |i, mut s| {
                let chat = chats2[i % chats2.len()];
                async move {
                    if i < subs {
                        s.subscribe(chat).await?;
                    }
                    Ok(s)
                }
            })
            .await?
        };
        Ok(World {
            kind: target.kind,
            cfg: cfg.clone(),
            metrics,
            conns,
            owner,
            users,
            chats,
            setup_s: started.elapsed().as_secs_f64(),
        })
    }

    fn subscribers(&self) -> usize {
        if self.chats.is_empty() {
            0
        } else {
            self.cfg
                .subscribers
                .unwrap_or(self.cfg.users)
                .min(self.cfg.users)
        }
    }

    /// Pushes a message from user `i` should cause: the other subscribers of its chat.
    fn fanout(&self, i: usize) -> u64 {
        let k = self.chats.len();
        let subs = self.subscribers();
        let chat = i % k;
        // Users chat, chat + k, ... below `subs` are subscribed.
        let in_chat = if subs > chat {
            (subs - chat).div_ceil(k)
        } else {
            0
        };
        (in_chat - usize::from(i < subs)) as u64
    }

    /// Runs one measurement.
    pub async fn run(&mut self, target: &Target, cfg: &RunConfig) -> Result<RunReport> {
        if self.chats.is_empty() {
            bail!("a run needs at least one chat");
        }
        let senders = cfg
            .senders
            .unwrap_or(self.users.len())
            .min(self.users.len());
        let msg_size = cfg.msg_size.max(BLOB_HEADER);
        tokio::time::sleep(SETTLE).await;
        let m = self.metrics.clone();
        m.ack_latency.reset();
        m.push_latency.reset();
        for u in &self.users {
            u.set_live(true);
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let budget = Arc::new(AtomicU64::new(0));
        let s0 = target.stats();
        let c0 = m.snapshot();
        let exp0 = m.expected_pushes.load(Relaxed);
        let t0 = Instant::now();

        let mut rest = std::mem::take(&mut self.users);
        let idle = rest.split_off(senders);
        let mut tasks = JoinSet::new();
        let live = Arc::new(AtomicUsize::new(senders));
        for (i, s) in rest.into_iter().enumerate() {
            let chat = self.chats[i % self.chats.len()];
            let fanout = self.fanout(i);
            let (stop, budget, cfg) = (stop_rx.clone(), budget.clone(), cfg.clone());
            let (live, m) = (live.clone(), m.clone());
            let start_offset = cfg
                .rate
                .map(|r| Duration::from_secs_f64(i as f64 / senders as f64 / r))
                .unwrap_or_default();
            tasks.spawn(async move {
                let mut s = s;
                let r = sender(
                    &mut s,
                    i,
                    chat,
                    fanout,
                    msg_size,
                    &cfg,
                    stop,
                    budget,
                    start_offset,
                )
                .await;
                if let Err(e) = r {
                    m.error(format!("sender {i}: {e:#}"));
                }
                live.fetch_sub(1, Relaxed);
                (i, s)
            });
        }

        let progress = cfg.progress.then(|| {
            let (m, pid, stop) = (m.clone(), target.pid, stop_rx.clone());
            tokio::spawn(progress_loop(m, pid, stop))
        });
        let duration = Duration::from_secs_f64(cfg.duration);
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let done = cfg
                .messages
                .is_some_and(|n| m.acked.load(Relaxed) + m.errors.load(Relaxed) >= n);
            if done || t0.elapsed() >= duration || live.load(Relaxed) == 0 {
                break;
            }
        }
        let _ = stop_tx.send(true);
        let c1 = m.snapshot();
        let seconds = t0.elapsed().as_secs_f64();
        let s1 = target.stats();
        if let Some(p) = progress {
            p.abort();
        }
        let mut back: Vec<(usize, Session)> = Vec::new();
        while let Some(r) = tasks.join_next().await {
            back.push(r?);
        }
        back.sort_by_key(|(i, _)| *i);
        self.users = back.into_iter().map(|(_, s)| s).collect();
        self.users.extend(idle);

        // Drain: outstanding acks and the pushes they cause.
        let drain_end = Instant::now() + DRAIN_TIMEOUT;
        loop {
            let flying: usize = self.users.iter().map(|u| u.in_flight()).sum();
            let missing = m.expected_pushes.load(Relaxed) as i64 - m.pushes.load(Relaxed) as i64;
            if (flying == 0 && missing <= 0) || Instant::now() > drain_end {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for u in &self.users {
            u.set_live(false);
        }
        let expected = m.expected_pushes.load(Relaxed) - exp0;
        let pushes_total = m.pushes.load(Relaxed) - c0.pushes;
        let server = match (s0, s1) {
            (Some(a), Some(b)) => Some(ServerUsage {
                cpu_s: b.cpu_s - a.cpu_s,
                cpu_cores: (b.cpu_s - a.cpu_s) / seconds,
                rss_kib: b.rss_kib,
                peak_rss_kib: b.peak_rss_kib,
            }),
            _ => None,
        };
        let first_error = m
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Ok(RunReport {
            target: self.kind,
            mode: if cfg.rate.is_some() { "open" } else { "closed" },
            users: self.cfg.users,
            connections: self.conns.len(),
            chats: self.chats.len(),
            senders,
            subscribers: self.subscribers(),
            msg_size,
            rate_per_sender: cfg.rate,
            window: self.cfg.window,
            seconds,
            sent: c1.sent - c0.sent,
            acked: c1.acked - c0.acked,
            acked_per_s: (c1.acked - c0.acked) as f64 / seconds,
            pushes: c1.pushes - c0.pushes,
            pushes_per_s: (c1.pushes - c0.pushes) as f64 / seconds,
            pushes_missing: expected as i64 - pushes_total as i64,
            errors: m.errors.load(Relaxed) - c0.errors,
            disconnects: m.disconnects.load(Relaxed) - c0.disconnects,
            first_error,
            ack_latency: m.ack_latency.percentiles(),
            push_latency: m.push_latency.percentiles(),
            server,
        })
    }
}

/// One sender: closed loop (window slots) or open loop (fixed rate).
#[allow(clippy::too_many_arguments)]
async fn sender(
    s: &mut Session,
    index: usize,
    chat: i64,
    fanout: u64,
    msg_size: usize,
    cfg: &RunConfig,
    mut stop: watch::Receiver<bool>,
    budget: Arc<AtomicU64>,
    start_offset: Duration,
) -> Result<()> {
    let mut blob = vec![0u8; msg_size];
    let mut guid: i64 = (rand::random::<u32>() as i64) << 20;
    let within_budget = || match cfg.messages {
        Some(n) => budget.fetch_add(1, Relaxed) < n,
        None => true,
    };
    match cfg.rate {
        None => loop {
            tokio::select! {
                r = s.acquire_slot() => r?,
                _ = stop.changed() => break,
            }
            if *stop.borrow() || !within_budget() {
                break;
            }
            s.send_message(chat, guid, &mut blob, index as u64, now_ns(), fanout)
                .await?;
            guid += 1;
        },
        Some(rate) => {
            let period = Duration::from_secs_f64(1.0 / rate);
            let mut next = tokio::time::Instant::now() + start_offset;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(next) => {}
                    _ = stop.changed() => break,
                }
                if *stop.borrow() || !within_budget() {
                    break;
                }
                // Latency counts from the scheduled time, not from when we got to send.
                let sent = instant_ns(next.into_std());
                s.send_message(chat, guid, &mut blob, index as u64, sent, fanout)
                    .await?;
                guid += 1;
                next += period;
            }
        }
    }
    Ok(())
}

async fn progress_loop(m: Arc<Metrics>, pid: Option<u32>, mut stop: watch::Receiver<bool>) {
    let t0 = Instant::now();
    let mut last = m.snapshot();
    let mut last_cpu = pid.and_then(|p| crate::target::proc_stats(p).ok());
    let mut tick = tokio::time::interval(PROGRESS_PERIOD);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = m.snapshot();
        let st = pid.and_then(|p| crate::target::proc_stats(p).ok());
        let server = match (last_cpu, st) {
            (Some(a), Some(b)) => format!(
                " | server cpu {:.0}% rss {} MiB",
                (b.cpu_s - a.cpu_s) * 100.0 / PROGRESS_PERIOD.as_secs_f64(),
                b.rss_kib / 1024
            ),
            _ => String::new(),
        };
        eprintln!(
            "[{:>4.0}s] acked {:>7}/s  pushes {:>8}/s  errors {}  disconnects {}{}",
            t0.elapsed().as_secs_f64(),
            now.acked - last.acked,
            now.pushes - last.pushes,
            now.errors,
            now.disconnects,
            server
        );
        last = now;
        last_cpu = st;
    }
}
