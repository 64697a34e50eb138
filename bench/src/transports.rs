//! The `transports` command: the Go interop client's `bench` scenario
//! (`tests/go/mimirclient`, `-scenario bench`), run from Rust with the same code over the two
//! transports mediatord serves inside Yggdrasil, one after the other against one running
//! daemon: QUIC (yggquic, Mimir 2.x) and ygg_stream (Mimir 3.x). `bench/ygg-vs-udp.sh` runs it
//! next to the Go client.
//!
//! For each transport, fresh client nodes ([`links`]) open `window + 2` sessions, each a user
//! of its own (a session of the same user from the same node would replace the other): A, B
//! and the senders. After AUTH, A creates a chat and adds everyone; B subscribes. Then
//!
//! * (a) A sends `count` SEND_MESSAGE one at a time (after [`WARMUP`] unmeasured ones):
//!   send → ack at A, send → push at B;
//! * (b) a closed loop for `bench_time`: every sender keeps one SEND_MESSAGE in flight (the
//!   server answers a session's requests one at a time): acknowledged messages/s, send → ack,
//!   send → push at B.
//!
//! Every acknowledged message must reach B exactly once and as sent, or the run fails
//! ([`subscriber`]). Each transport prints one JSON line on stdout in the shape of the Go
//! client's `benchResult` (latencies in microseconds, nearest-rank percentiles), with
//! `"client": "rust"` and, for the closed loop, the CPU time per message of this process and
//! (with `--server-pid`) of mediatord. Blobs start like the Go client's: sender index,
//! sequence number and send time (here nanoseconds of this process's monotonic clock),
//! big-endian.

mod links;
mod subscriber;

use crate::client::{now_ns, BLOB_HEADER};
use crate::target::proc_stats;
use anyhow::{bail, ensure, Context, Result};
use links::{ClientNode, Mediator, Transport};
use mediator_client::{random_key, Session};
use rand::RngCore;
use serde::Serialize;
use std::time::Duration;
use subscriber::{blob_hash, Acked, Sent, Subscriber};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Sessions per client node: half of what mediatord takes from one node key, both in
/// ygg_stream connections (`yggstream::stack::MAX_CONNS_PER_KEY`, 64) and in unauthenticated
/// sessions (`max_guest_sessions_per_source`, 64). A QUIC node carries its sessions as
/// streams of its one connection (mediatord keeps one connection per node key).
pub const SESSIONS_PER_NODE: usize = 32;
/// SEND_MESSAGE round trips before the measured sequential ones, as the Go client does.
pub const WARMUP: usize = 20;
/// How long the subscriber may take to receive every acknowledged message at a checkpoint.
pub const SETTLE_WAIT: Duration = Duration::from_secs(30);
/// How long closing waits for the server to end the sessions after their FIN.
pub const CLOSE_WAIT: Duration = Duration::from_secs(10);
/// How often closing looks whether the sessions have ended.
const CLOSE_POLL: Duration = Duration::from_millis(10);

/// Arguments of `mediator-load transports`.
#[derive(Debug, clap::Args)]
pub struct TransportsArgs {
    /// The mediator's public key, 64 hex digits (mediatord prints it at start).
    #[arg(long)]
    pub server_key: String,
    /// The mediator's Yggdrasil listener, e.g. tcp://127.0.0.1:7743 (its key is pinned).
    #[arg(long)]
    pub ygg_peer: String,
    /// The mediator's ygg_stream port.
    #[arg(long, default_value_t = 42)]
    pub stream_port: u16,
    /// Sequential SEND_MESSAGE round trips.
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    /// Requests in flight in the closed loop (one per sender session).
    #[arg(long, default_value_t = 16)]
    pub window: usize,
    /// Duration of the closed loop (Go syntax: 10s, 1m30s, 500ms).
    #[arg(long, default_value = "10s", value_parser = parse_go_duration)]
    pub bench_time: Duration,
    /// Message blob size in bytes (at least 24).
    #[arg(long, default_value_t = 200)]
    pub size: usize,
    /// Bound on peering, on a QUIC handshake and on a ygg_stream connect.
    #[arg(long, default_value = "60s", value_parser = parse_go_duration)]
    pub connect_timeout: Duration,
    /// mediatord's PID, for its CPU time per message in the closed loop.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Transports to run, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "ygg-quic,ygg-stream"
    )]
    pub transports: Vec<Transport>,
}

/// One transport's result: the Go client's `benchResult` plus the client's language.
#[derive(Debug, Serialize)]
pub struct BenchResult {
    pub scenario: &'static str,
    pub transport: &'static str,
    pub client: &'static str,
    pub size: usize,
    pub seq: BenchSeq,
    #[serde(rename = "loop")]
    pub closed_loop: BenchLoop,
}

/// The sequential part of [`BenchResult`].
#[derive(Debug, Serialize)]
pub struct BenchSeq {
    pub n: usize,
    pub ack_p50_us: f64,
    pub ack_p99_us: f64,
    pub ack_max_us: f64,
    pub push_n: usize,
    pub push_p50_us: f64,
    pub push_p99_us: f64,
    pub push_max_us: f64,
}

/// The closed-loop part of [`BenchResult`].
#[derive(Debug, Serialize)]
pub struct BenchLoop {
    pub window: usize,
    pub seconds: f64,
    pub acked: usize,
    pub msgs_per_s: f64,
    pub ack_p50_us: f64,
    pub ack_p99_us: f64,
    pub ack_max_us: f64,
    pub push_n: usize,
    pub push_p50_us: f64,
    pub push_p99_us: f64,
    pub push_max_us: f64,
    /// CPU time of this client process per acknowledged message (µs).
    pub client_cpu_us_per_msg: Option<f64>,
    /// CPU time of mediatord per acknowledged message (µs), with `--server-pid`.
    pub server_cpu_us_per_msg: Option<f64>,
}

/// Runs the scenario over each transport of `a` and prints a JSON line for each.
pub async fn run(a: TransportsArgs) -> Result<()> {
    ensure!(
        a.size >= BLOB_HEADER,
        "--size must be at least {BLOB_HEADER}"
    );
    ensure!(
        a.window >= 1 && a.count >= 1,
        "--window and --count must be positive"
    );
    let key: [u8; 32] = hex::decode(a.server_key.trim())
        .ok()
        .and_then(|k| k.try_into().ok())
        .context("--server-key must be 64 hex digits")?;
    let mut uri = a.ygg_peer.clone();
    if !uri.contains("key=") {
        uri.push(if uri.contains('?') { '&' } else { '?' });
        uri.push_str("key=");
        uri.push_str(&hex::encode(key));
    }
    let mediator = Mediator {
        key,
        peer: uri
            .parse()
            .with_context(|| format!("--ygg-peer {}", a.ygg_peer))?,
        stream_port: a.stream_port,
        timeout: a.connect_timeout,
    };
    for &t in &a.transports {
        let r = bench(t, &mediator, &a)
            .await
            .with_context(|| format!("bench over {}", t.label()))?;
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(())
}

/// The scenario over `t`, on client nodes of its own.
async fn bench(t: Transport, m: &Mediator, a: &TransportsArgs) -> Result<BenchResult> {
    let sessions = a.window + 2;
    let n_nodes = sessions.div_ceil(SESSIONS_PER_NODE);
    eprintln!(
        "{}: {n_nodes} client node(s), {sessions} sessions",
        t.label()
    );
    let mut nodes = Vec::new();
    let mut result = Ok(());
    for _ in 0..n_nodes {
        match ClientNode::start(t, m).await {
            Ok(n) => nodes.push(n),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let result = match result {
        Ok(()) => measure(t, &nodes, m.key, a).await,
        Err(e) => Err(e),
    };
    for n in nodes {
        n.close().await;
    }
    result
}

/// Opens and authenticates the sessions, runs both parts, closes the sessions.
async fn measure(
    t: Transport,
    nodes: &[ClientNode],
    server: [u8; 32],
    a: &TransportsArgs,
) -> Result<BenchResult> {
    let mut sessions = Vec::new();
    for i in 0..a.window + 2 {
        let mut s = nodes[i / SESSIONS_PER_NODE].session().await?;
        s.auth(&random_key())
            .await
            .with_context(|| format!("AUTH of session {i}"))?;
        sessions.push(s);
    }
    let senders = sessions.split_off(2);
    let mut b = sessions.pop().expect("two sessions");
    let mut owner = sessions.pop().expect("one session");
    let chat = owner
        .create_chat("bench", "", None)
        .await
        .context("CREATE_CHAT")?;
    for s in std::iter::once(&b).chain(&senders) {
        owner
            .add_user(chat, &public_key(s))
            .await
            .context("ADD_USER")?;
    }
    b.subscribe(chat).await.context("SUBSCRIBE")?;
    let sub = Subscriber::start(b, chat, server);
    let mut acked = Acked::new();
    sub.settle(&acked, SETTLE_WAIT).await.context("setup")?;

    eprintln!(
        "{}: {} sequential round trips (after {WARMUP} unmeasured)",
        t.label(),
        a.count
    );
    for i in 0..WARMUP {
        let (id, sent) = send(&mut owner, chat, 0, i as u64, a.size)
            .await
            .context("SEND_MESSAGE (warm-up)")?;
        note(&mut acked, id, sent)?;
    }
    sub.settle(&acked, SETTLE_WAIT).await.context("warm-up")?;
    sub.take_latencies();
    let mut seq_ack = Vec::with_capacity(a.count);
    for i in 0..a.count {
        let t0 = Instant::now();
        let (id, sent) = send(&mut owner, chat, 0, (WARMUP + i) as u64, a.size)
            .await
            .context("SEND_MESSAGE (sequential)")?;
        seq_ack.push(t0.elapsed());
        note(&mut acked, id, sent)?;
    }
    sub.settle(&acked, SETTLE_WAIT)
        .await
        .context("sequential round trips")?;
    let seq_push = sub.take_latencies();

    eprintln!(
        "{}: closed loop, {} in flight for {:?}",
        t.label(),
        a.window,
        a.bench_time
    );
    let cpu = || {
        let of = |pid: u32| proc_stats(pid).ok().map(|s| s.cpu_s);
        (of(std::process::id()), a.server_pid.and_then(of))
    };
    let cpu_before = cpu();
    let start = Instant::now();
    let end = start + a.bench_time;
    let mut tasks = JoinSet::new();
    for (i, s) in senders.into_iter().enumerate() {
        tasks.spawn(sender_loop(s, chat, i as u64 + 1, a.size, end));
    }
    let mut senders = Vec::new();
    let mut loop_ack = Vec::new();
    let mut failed = None;
    while let Some(r) = tasks.join_next().await {
        let (s, lat, mine, res) = r.context("a sender task panicked")?;
        senders.push(s);
        loop_ack.extend(lat);
        for (id, sent) in mine {
            note(&mut acked, id, sent)?;
        }
        if let Err(e) = res {
            failed.get_or_insert(e);
        }
    }
    let elapsed = start.elapsed();
    let cpu_after = cpu();
    if let Some(e) = failed {
        return Err(e.context("closed loop"));
    }
    sub.settle(&acked, SETTLE_WAIT)
        .await
        .context("closed loop")?;
    let loop_push = sub.take_latencies();

    let mut all = vec![owner];
    all.extend(senders);
    all.extend(sub.close().await);
    close_sessions(all).await;

    let seq_ack = Summary::of(seq_ack);
    let seq_push = Summary::of(seq_push);
    let loop_ack = Summary::of(loop_ack);
    let loop_push = Summary::of(loop_push);
    Ok(BenchResult {
        scenario: "bench",
        transport: t.label(),
        client: "rust",
        size: a.size,
        seq: BenchSeq {
            n: seq_ack.n,
            ack_p50_us: seq_ack.p50,
            ack_p99_us: seq_ack.p99,
            ack_max_us: seq_ack.max,
            push_n: seq_push.n,
            push_p50_us: seq_push.p50,
            push_p99_us: seq_push.p99,
            push_max_us: seq_push.max,
        },
        closed_loop: BenchLoop {
            window: a.window,
            seconds: (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            acked: loop_ack.n,
            msgs_per_s: (loop_ack.n as f64 / elapsed.as_secs_f64() * 10.0).round() / 10.0,
            ack_p50_us: loop_ack.p50,
            ack_p99_us: loop_ack.p99,
            ack_max_us: loop_ack.max,
            push_n: loop_push.n,
            push_p50_us: loop_push.p50,
            push_p99_us: loop_push.p99,
            push_max_us: loop_push.max,
            client_cpu_us_per_msg: per_message(cpu_before.0, cpu_after.0, loop_ack.n),
            server_cpu_us_per_msg: per_message(cpu_before.1, cpu_after.1, loop_ack.n),
        },
    })
}

/// What a closed-loop sender gives back: its session, its send → ack latencies, the messages
/// acknowledged to it, and how it ended.
type SenderOutcome = (Session, Vec<Duration>, Vec<(i64, Sent)>, Result<()>);

/// One closed-loop sender: SEND_MESSAGE after SEND_MESSAGE until `end`.
async fn sender_loop(
    mut s: Session,
    chat: i64,
    sender: u64,
    size: usize,
    end: Instant,
) -> SenderOutcome {
    let (mut lat, mut mine) = (Vec::new(), Vec::new());
    let mut seq = 0;
    while Instant::now() < end {
        let t0 = Instant::now();
        match send(&mut s, chat, sender, seq, size).await {
            Ok(m) => {
                lat.push(t0.elapsed());
                mine.push(m);
            }
            Err(e) => {
                let e = e.context(format!("sender {sender}: SEND_MESSAGE #{seq}"));
                return (s, lat, mine, Err(e));
            }
        }
        seq += 1;
    }
    (s, lat, mine, Ok(()))
}

/// One SEND_MESSAGE of a fresh blob of `size` bytes; returns the message id and what was sent.
async fn send(
    s: &mut Session,
    chat: i64,
    sender: u64,
    seq: u64,
    size: usize,
) -> Result<(i64, Sent)> {
    let mut blob = vec![0u8; size];
    rand::thread_rng().fill_bytes(&mut blob[BLOB_HEADER..]);
    blob[..8].copy_from_slice(&sender.to_be_bytes());
    blob[8..16].copy_from_slice(&seq.to_be_bytes());
    blob[16..24].copy_from_slice(&now_ns().to_be_bytes());
    let guid = rand::random::<i64>() & i64::MAX;
    let (g, id) = s.send_message(chat, guid, &blob).await?;
    if g != guid {
        bail!("SEND_MESSAGE answered guid {g} for {guid}");
    }
    let sent = Sent {
        guid,
        author: public_key(s),
        blob_hash: blob_hash(&blob),
    };
    Ok((id, sent))
}

/// CPU microseconds per message between two readings of a process's CPU seconds.
fn per_message(before: Option<f64>, after: Option<f64>, messages: usize) -> Option<f64> {
    let (b, a) = (before?, after?);
    (messages > 0).then(|| ((a - b) * 1e6 / messages as f64 * 10.0).round() / 10.0)
}

/// Records an acknowledged message; one id given twice fails the run.
fn note(acked: &mut Acked, id: i64, sent: Sent) -> Result<()> {
    if let Some(before) = acked.insert(id, sent) {
        bail!(
            "message id {id} acknowledged twice (first for guid {})",
            before.guid
        );
    }
    Ok(())
}

fn public_key(s: &Session) -> [u8; 32] {
    s.key
        .as_ref()
        .expect("an authenticated session")
        .verifying_key()
        .to_bytes()
}

/// Closes every session's send side (FIN) and waits until the server has ended each, so that
/// none outlives its transport's run on the server.
async fn close_sessions(mut all: Vec<Session>) {
    for s in &mut all {
        s.finish().await;
    }
    let deadline = Instant::now() + CLOSE_WAIT;
    while all.iter().any(|s| !s.is_closed()) && Instant::now() < deadline {
        tokio::time::sleep(CLOSE_POLL).await;
    }
    let open = all.iter().filter(|s| !s.is_closed()).count();
    if open > 0 {
        eprintln!("{open} sessions still open {CLOSE_WAIT:?} after their FIN");
    }
}

/// Nearest-rank percentiles in microseconds (0.1 µs), as the Go client computes them.
struct Summary {
    n: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

impl Summary {
    fn of(mut v: Vec<Duration>) -> Summary {
        v.sort_unstable();
        let at = |q: f64| {
            let rank = (q * v.len() as f64).ceil() as usize;
            v.get(rank.max(1) - 1).copied().map_or(0.0, micros)
        };
        Summary {
            n: v.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: v.last().copied().map_or(0.0, micros),
        }
    }
}

fn micros(d: Duration) -> f64 {
    (d.as_nanos() as f64 / 100.0).round() / 10.0
}

/// Units of Go's `time.ParseDuration`, longest suffix first.
const DURATION_UNITS: [(&str, f64); 8] = [
    ("ns", 1e-9),
    ("us", 1e-6),
    ("µs", 1e-6),
    ("μs", 1e-6),
    ("ms", 1e-3),
    ("h", 3600.0),
    ("m", 60.0),
    ("s", 1.0),
];

/// Parses a duration written as Go writes them (`10s`, `1m30s`, `1.5h`, `250ms`, `0`), so
/// that the script can hand the Go client's flags to both clients.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?} (examples: 10s, 1m30s, 500ms)");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut secs = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let (unit, scale) = DURATION_UNITS
            .iter()
            .find(|(u, _)| rest.starts_with(u))
            .ok_or_else(bad)?;
        secs += value * scale;
        rest = &rest[unit.len()..];
    }
    if s.is_empty() || !secs.is_finite() {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let d = |s| parse_go_duration(s).unwrap();
        assert_eq!(d("10s"), Duration::from_secs(10));
        assert_eq!(d("1m30s"), Duration::from_secs(90));
        assert_eq!(d("250ms"), Duration::from_millis(250));
        assert_eq!(d("1.5h"), Duration::from_secs(5400));
        assert_eq!(d("0"), Duration::ZERO);
        for bad in ["", "10", "s", "10x", "-1s", "1..5s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nearest_rank_like_go() {
        let v: Vec<Duration> = (1..=1000).map(Duration::from_micros).collect();
        let s = Summary::of(v);
        assert_eq!((s.n, s.p50, s.p99, s.max), (1000, 500.0, 990.0, 1000.0));
        let one = Summary::of(vec![Duration::from_nanos(1234)]);
        assert_eq!((one.p50, one.p99, one.max), (1.2, 1.2, 1.2));
        assert_eq!(Summary::of(Vec::new()).p50, 0.0);
    }
}
