//! The attacker's tools for the attack scenarios: QUIC connections from one chosen loopback
//! address (one *source* to the daemon's per-source limits), raw streams that speak the
//! mediator framing by hand so the attacker can claim, stall and never read, junk UDP
//! datagrams, and the [`Cost`] counters of what the attacker got and what it was refused.
//!
//! The daemon closes a stream it refuses without an answer, so [`Raw::open`] sends a PING
//! with the preamble and counts the stream admitted only when the PONG arrives. Every
//! connection has its own UDP socket: the daemon replaces an older connection from the same
//! address and port (yggquic's rule), so connections sharing a socket would replace each
//! other instead of adding up.

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use ed25519_dalek::{Signer, SigningKey};
use mediator_wire::frame::{decode_error_text, FrameWriter, ResponseHeader, HEADER_LEN, PREAMBLE};
use mediator_wire::tlv::{tag, TlvMap};
use mediator_wire::{Command, PushCode, Status};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The attacker's source address (any 127.0.0.0/8 address works on Linux).
pub const ATTACKER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 66));
/// How long the attacker waits for an answer it expects (a PONG, a nonce, an AUTH result)
/// before it gives the stream up as refused.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection attempt may take before it counts as refused.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a local failure (a dead connection, say), so a worker does not spin on it.
pub const ERROR_PAUSE: Duration = Duration::from_millis(10);
/// Most distinct server error texts kept in [`CostReport::server_errors`].
pub const MAX_ERROR_TEXTS: usize = 32;
/// Bytes read at once while a held stream is drained to see when the daemon closes it.
pub const DRAIN_CHUNK: usize = 64 * 1024;

/// What the attacker got and what it was refused, counted by every attacker task.
#[derive(Default)]
pub struct Cost {
    /// QUIC connections established.
    pub connections: AtomicU64,
    /// QUIC connections refused (or not established in [`CONNECT_TIMEOUT`]).
    pub connections_refused: AtomicU64,
    /// Streams the daemon admitted (the PING was answered).
    pub sessions: AtomicU64,
    /// Streams the daemon closed unanswered (or left unanswered for [`ANSWER_TIMEOUT`]).
    pub sessions_refused: AtomicU64,
    /// Admitted streams the daemon ended later (auth deadline, stall, bad frame, ...).
    pub sessions_closed: AtomicU64,
    /// Sessions held right now, and the most held at once.
    held: AtomicU64,
    pub held_max: AtomicU64,
    /// Requests written (PINGs that probe admission included).
    pub requests: AtomicU64,
    /// OK and ERR answers read.
    pub answers_ok: AtomicU64,
    pub answers_err: AtomicU64,
    /// Bytes written to and read from streams.
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    /// Junk UDP datagrams sent.
    pub datagrams: AtomicU64,
    /// Local failures: streams reset under the attacker, dead connections, timeouts.
    pub local_errors: AtomicU64,
    /// ERR answers by text.
    errors: Mutex<BTreeMap<String, u64>>,
}

/// A copy of [`Cost`] for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CostReport {
    pub connections: u64,
    pub connections_refused: u64,
    pub sessions: u64,
    pub sessions_refused: u64,
    pub sessions_closed: u64,
    pub sessions_held_max: u64,
    pub requests: u64,
    pub answers_ok: u64,
    pub answers_err: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub datagrams: u64,
    pub local_errors: u64,
    /// The daemon's error texts and how often the attacker got each.
    pub server_errors: BTreeMap<String, u64>,
}

impl Cost {
    /// Counts one ERR answer under its text.
    fn server_error(&self, text: String) {
        self.answers_err.fetch_add(1, Relaxed);
        let mut m = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() < MAX_ERROR_TEXTS || m.contains_key(&text) {
            *m.entry(text).or_default() += 1;
        }
    }

    /// Counts a local failure.
    pub fn local_error(&self) {
        self.local_errors.fetch_add(1, Relaxed);
    }

    fn sent(&self, n: usize) {
        self.bytes_sent.fetch_add(n as u64, Relaxed);
    }

    /// A copy of the counters.
    pub fn report(&self) -> CostReport {
        CostReport {
            connections: self.connections.load(Relaxed),
            connections_refused: self.connections_refused.load(Relaxed),
            sessions: self.sessions.load(Relaxed),
            sessions_refused: self.sessions_refused.load(Relaxed),
            sessions_closed: self.sessions_closed.load(Relaxed),
            sessions_held_max: self.held_max.load(Relaxed),
            requests: self.requests.load(Relaxed),
            answers_ok: self.answers_ok.load(Relaxed),
            answers_err: self.answers_err.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            bytes_received: self.bytes_received.load(Relaxed),
            datagrams: self.datagrams.load(Relaxed),
            local_errors: self.local_errors.load(Relaxed),
            server_errors: self
                .errors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

/// One QUIC connection from `ip`, on a socket of its own; `None` (and counted) when refused.
pub async fn connect(ip: IpAddr, addr: SocketAddr, cost: &Cost) -> Option<quinn::Connection> {
    match tokio::time::timeout(CONNECT_TIMEOUT, mediator_client::connect_from(ip, addr)).await {
        Ok(Ok(c)) => {
            cost.connections.fetch_add(1, Relaxed);
            Some(c)
        }
        _ => {
            cost.connections_refused.fetch_add(1, Relaxed);
            None
        }
    }
}

/// Tries `n` connections from `ip` at once and returns those established.
pub async fn connect_many(
    ip: IpAddr,
    addr: SocketAddr,
    n: usize,
    cost: &Arc<Cost>,
) -> Vec<quinn::Connection> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let cost = cost.clone();
        set.spawn(async move { connect(ip, addr, &cost).await });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(Some(c)) = r {
            out.push(c);
        }
    }
    out
}

/// One response frame.
#[derive(Debug)]
pub struct Frame {
    pub status: Status,
    pub req_id: u16,
    pub payload: Vec<u8>,
}

/// Decrements the held gauge when the session it stands for ends.
struct Held(Arc<Cost>);

impl Held {
    fn new(cost: &Arc<Cost>) -> Held {
        let now = cost.held.fetch_add(1, Relaxed) + 1;
        cost.held_max.fetch_max(now, Relaxed);
        Held(cost.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Relaxed);
    }
}

/// An admitted session on a raw stream.
pub struct Raw {
    pub send: quinn::SendStream,
    recv: quinn::RecvStream,
    cost: Arc<Cost>,
    next_id: u16,
    closed: bool,
    _held: Held,
}

/// A request frame with a TLV payload.
pub fn request(cmd: Command, req_id: u16, tlvs: &[(u8, &[u8])]) -> Vec<u8> {
    let mut w = FrameWriter::request(cmd, req_id);
    for (t, v) in tlvs {
        w.tlv(*t, v);
    }
    w.finish()
}

/// Reads one frame; `None` when the stream ends cleanly between frames.
async fn read_frame(recv: &mut quinn::RecvStream, cost: &Cost) -> Result<Option<Frame>> {
    let mut h = [0u8; HEADER_LEN];
    match recv.read_exact(&mut h).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(anyhow!("reading a frame header: {e}")),
    }
    let header = ResponseHeader::decode(&h).map_err(|e| anyhow!("bad header: {e}"))?;
    let mut payload = vec![0u8; header.len as usize];
    recv.read_exact(&mut payload)
        .await
        .map_err(|e| anyhow!("reading a payload: {e}"))?;
    cost.bytes_received
        .fetch_add((HEADER_LEN + payload.len()) as u64, Relaxed);
    Ok(Some(Frame {
        status: header.status,
        req_id: header.req_id,
        payload,
    }))
}

impl Raw {
    /// Opens a stream, writes the preamble and a PING and waits for the PONG: `Ok(None)`
    /// (counted as refused) when the daemon closes the stream instead.
    pub async fn open(conn: &quinn::Connection, cost: &Arc<Cost>) -> Result<Option<Raw>> {
        let (mut send, mut recv) = conn.open_bi().await.context("opening a stream")?;
        let mut bytes = PREAMBLE.to_vec();
        bytes.extend_from_slice(&request(Command::Ping, 1, &[]));
        send.write_all(&bytes)
            .await
            .context("writing the preamble")?;
        cost.sent(bytes.len());
        cost.requests.fetch_add(1, Relaxed);
        match tokio::time::timeout(ANSWER_TIMEOUT, read_frame(&mut recv, cost)).await {
            Ok(Ok(Some(_))) => {
                cost.sessions.fetch_add(1, Relaxed);
                cost.answers_ok.fetch_add(1, Relaxed);
                Ok(Some(Raw {
                    send,
                    recv,
                    cost: cost.clone(),
                    next_id: 1,
                    closed: false,
                    _held: Held::new(cost),
                }))
            }
            _ => {
                cost.sessions_refused.fetch_add(1, Relaxed);
                Ok(None)
            }
        }
    }

    /// A fresh request id (never 0 nor a push code).
    pub fn id(&mut self) -> u16 {
        loop {
            self.next_id = self.next_id.wrapping_add(1);
            if self.next_id != 0 && PushCode::from_u16(self.next_id).is_none() {
                return self.next_id;
            }
        }
    }

    /// Writes `bytes` as they are.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.send.write_all(bytes).await.context("writing")?;
        self.cost.sent(bytes.len());
        Ok(())
    }

    /// Writes a shared buffer without copying it.
    pub async fn write_bytes(&mut self, bytes: Bytes) -> Result<()> {
        let n = bytes.len();
        self.send.write_chunk(bytes).await.context("writing")?;
        self.cost.sent(n);
        Ok(())
    }

    /// Writes one request (counted).
    pub async fn request(&mut self, cmd: Command, tlvs: &[(u8, &[u8])]) -> Result<()> {
        let id = self.id();
        self.write(&request(cmd, id, tlvs)).await?;
        self.cost.requests.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Reads frames up to the next answer (pushes are skipped) and counts it; `None` once
    /// the daemon has closed the stream.
    pub async fn answer(&mut self) -> Result<Option<Frame>> {
        loop {
            let f = match read_frame(&mut self.recv, &self.cost).await {
                Ok(Some(f)) => f,
                Ok(None) => {
                    self.mark_closed();
                    return Ok(None);
                }
                Err(e) => {
                    self.mark_closed();
                    return Err(e);
                }
            };
            if f.status != Status::Err && PushCode::from_u16(f.req_id).is_some() {
                continue;
            }
            match f.status {
                Status::Ok | Status::Push => {
                    self.cost.answers_ok.fetch_add(1, Relaxed);
                }
                Status::Err => self.cost.server_error(
                    decode_error_text(&f.payload).unwrap_or_else(|_| "<bad error>".into()),
                ),
            }
            return Ok(Some(f));
        }
    }

    /// One request and its answer, within [`ANSWER_TIMEOUT`].
    pub async fn call(&mut self, cmd: Command, tlvs: &[(u8, &[u8])]) -> Result<Option<Frame>> {
        self.request(cmd, tlvs).await?;
        tokio::time::timeout(ANSWER_TIMEOUT, self.answer())
            .await
            .map_err(|_| anyhow!("no answer to {cmd:?} within {ANSWER_TIMEOUT:?}"))?
    }

    /// GET_NONCE then AUTH as `key`; whether the daemon accepted it.
    pub async fn auth(&mut self, key: &SigningKey) -> Result<bool> {
        let pk = key.verifying_key().to_bytes();
        let Some(f) = self.call(Command::GetNonce, &[(tag::PUBKEY, &pk)]).await? else {
            return Ok(false);
        };
        if f.status != Status::Ok {
            return Ok(false);
        }
        let nonce: [u8; 32] = TlvMap::parse(&f.payload)?
            .fixed(tag::NONCE)
            .context("no nonce")?;
        let sig = key.sign(&nonce).to_bytes();
        let auth = [
            (tag::PUBKEY, &pk[..]),
            (tag::NONCE, &nonce[..]),
            (tag::SIGNATURE, &sig[..]),
        ];
        Ok(self
            .call(Command::Auth, &auth)
            .await?
            .is_some_and(|f| f.status == Status::Ok))
    }

    fn mark_closed(&mut self) {
        if !self.closed {
            self.closed = true;
            self.cost.sessions_closed.fetch_add(1, Relaxed);
        }
    }

    /// Reads and drops whatever arrives until the daemon ends the stream or `until`; the
    /// session is held (and counted as held) meanwhile. Whether the daemon ended it.
    pub async fn hold(mut self, until: Instant) -> bool {
        let mut buf = vec![0u8; DRAIN_CHUNK];
        loop {
            tokio::select! {
                r = self.recv.read(&mut buf) => match r {
                    Ok(Some(n)) => {
                        self.cost.bytes_received.fetch_add(n as u64, Relaxed);
                    }
                    _ => {
                        self.mark_closed();
                        return true;
                    }
                },
                _ = tokio::time::sleep_until(until) => return false,
            }
        }
    }
}

/// Sends junk datagrams from `ip` to `addr` at about `rate` per second until `until`.
pub async fn udp_junk(
    ip: IpAddr,
    addr: SocketAddr,
    rate: f64,
    until: Instant,
    cost: Arc<Cost>,
) -> Result<()> {
    /// Datagrams sent per timer tick.
    const BATCH: usize = 100;
    /// Largest junk datagram (a full QUIC Initial is 1,200 bytes).
    const MAX_DATAGRAM: usize = 1_400;
    if rate <= 0.0 {
        bail!("the junk rate must be positive");
    }
    let sock = tokio::net::UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
    let period = Duration::from_secs_f64(BATCH as f64 / rate);
    let mut tick = tokio::time::interval(period);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut sink = vec![0u8; MAX_DATAGRAM];
    while Instant::now() < until {
        tick.tick().await;
        // Read what the daemon sent back (version negotiations, stateless resets).
        while let Ok((n, _)) = sock.try_recv_from(&mut sink) {
            cost.bytes_received.fetch_add(n as u64, Relaxed);
        }
        for _ in 0..BATCH {
            let n = 1 + rand::random::<usize>() % MAX_DATAGRAM;
            rand::Rng::fill(&mut rand::thread_rng(), &mut buf[..n]);
            if sock.send_to(&buf[..n], addr).await.is_ok() {
                cost.datagrams.fetch_add(1, Relaxed);
                cost.sent(n);
            }
        }
    }
    Ok(())
}
