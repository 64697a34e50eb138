//! A pipelined mediator session for load generation.
//!
//! Unlike `mediator_client::Session` (one request at a time, decoded pushes in a queue), this
//! session lets a sender keep several SEND_MESSAGE requests in flight and has its reader task
//! account for everything as it arrives: the server answers a session's requests in order
//! (§2.3), so a FIFO of pending requests matches each response; a response to a SEND_MESSAGE
//! records send→ack latency, and a GOT_MESSAGE push whose blob starts with [`MAGIC`] records
//! send→push latency from the send time embedded in the blob. Nothing is copied or queued per
//! push, so the generator stays cheap next to the server on a small machine.

use crate::metrics::Metrics;
use anyhow::{anyhow, bail, Context, Result};
use ed25519_dalek::{Signer, SigningKey};
use mediator_wire::frame::{decode_error_text, FrameWriter, ResponseHeader, HEADER_LEN, PREAMBLE};
use mediator_wire::tlv::{tag, TlvIter, TlvMap};
use mediator_wire::{Command, PushCode, Status};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Semaphore};

/// First bytes of every benchmark message blob.
pub const MAGIC: [u8; 8] = *b"MEDBENCH";
/// Blob prefix: [`MAGIC`], send time (ns since the process clock base, u64 BE), sender index.
pub const BLOB_HEADER: usize = 24;
/// How long a setup request waits for its answer (longer than the real client's 10 s: the
/// server may be saturated by the run).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Requests written back to back before their answers are awaited, in [`Session::pipeline`].
pub const PIPELINE_DEPTH: usize = 256;
/// Initial size of a session's receive buffer (grown for larger frames).
pub const READ_BUFFER: usize = 64 * 1024;

/// Nanoseconds since the first call in this process: the clock embedded in blobs.
pub fn now_ns() -> u64 {
    instant_ns(Instant::now())
}

/// `t` as nanoseconds since the process clock base.
pub fn instant_ns(t: Instant) -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    t.saturating_duration_since(base).as_nanos() as u64
}

/// Opens a QUIC connection to `addr` with the mediator's client TLS and transport settings.
pub async fn connect(addr: SocketAddr) -> Result<quinn::Connection> {
    mediator_client::connect(addr)
        .await
        .map_err(|e| anyhow!("connecting to {addr}: {e}"))
}

enum Pending {
    Waiter(u16, oneshot::Sender<(Status, Vec<u8>)>),
    Send {
        req: u16,
        sent_ns: u64,
        /// Pushes this message should cause at other sessions.
        fanout: u64,
    },
}

struct Shared {
    pending: Mutex<VecDeque<Pending>>,
    metrics: Arc<Metrics>,
    /// In-flight SEND_MESSAGE slots (closed loop); closed when the session ends.
    window: Semaphore,
    /// Whether an end of the session now counts as a disconnect.
    live: AtomicBool,
}

/// One session (one bidirectional stream) driven by the load generator.
pub struct Session {
    send: quinn::SendStream,
    shared: Arc<Shared>,
    next_req: u16,
    reader: tokio::task::JoinHandle<()>,
    /// The user's key once authenticated.
    pub key: Option<SigningKey>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Session {
    /// Opens a stream on `conn`, writes the preamble and starts the reader. `window` is the
    /// number of SEND_MESSAGE requests [`Session::acquire_slot`] lets be in flight.
    pub async fn open(
        conn: &quinn::Connection,
        metrics: Arc<Metrics>,
        window: usize,
    ) -> Result<Session> {
        let (mut send, recv) = conn.open_bi().await.context("opening a stream")?;
        send.write_all(&PREAMBLE)
            .await
            .context("writing preamble")?;
        let shared = Arc::new(Shared {
            pending: Mutex::default(),
            metrics,
            window: Semaphore::new(window),
            live: AtomicBool::new(false),
        });
        let s2 = shared.clone();
        let reader = tokio::spawn(async move {
            let res = read_loop(recv, &s2).await;
            s2.window.close();
            s2.pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
            if s2.live.load(Relaxed) {
                s2.metrics
                    .disconnects
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let why = match res {
                    Ok(()) => "stream finished by server".to_string(),
                    Err(e) => format!("{e:#}"),
                };
                s2.metrics
                    .error(format!("session ended during the run: {why}"));
            }
        });
        Ok(Session {
            send,
            shared,
            next_req: rand::random(),
            reader,
            key: None,
        })
    }

    /// Marks the session as part of a running measurement: its end is then a disconnect.
    pub fn set_live(&self, live: bool) {
        self.shared.live.store(live, Relaxed);
    }

    /// Whether the server ended the session.
    pub fn is_closed(&self) -> bool {
        self.reader.is_finished()
    }

    fn req_id(&mut self) -> u16 {
        loop {
            self.next_req = self.next_req.wrapping_add(1);
            let id = self.next_req;
            if id != 0 && PushCode::from_u16(id).is_none() {
                return id;
            }
        }
    }

    fn push_pending(&self, p: Pending) {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(p);
    }

    async fn write(&mut self, frame: &[u8]) -> Result<()> {
        self.send.write_all(frame).await.context("writing a frame")
    }

    /// Sends one request and waits for the OK payload (an ERR becomes an error).
    pub async fn request(&mut self, cmd: Command, payload: &[u8]) -> Result<Vec<u8>> {
        let mut r = self
            .pipeline(cmd, std::iter::once(payload.to_vec()))
            .await?;
        r.pop().context("no answer")?
    }

    /// Sends one request per payload, up to [`PIPELINE_DEPTH`] in flight, and returns every
    /// answer in order.
    pub async fn pipeline(
        &mut self,
        cmd: Command,
        payloads: impl IntoIterator<Item = Vec<u8>>,
    ) -> Result<Vec<Result<Vec<u8>>>> {
        let mut out = Vec::new();
        let mut waiting = VecDeque::new();
        for p in payloads {
            if waiting.len() >= PIPELINE_DEPTH {
                out.push(wait_answer(waiting.pop_front().expect("non-empty")).await);
            }
            let id = self.req_id();
            let mut w = FrameWriter::request(cmd, id);
            w.raw(&p);
            let (tx, rx) = oneshot::channel();
            self.push_pending(Pending::Waiter(id, tx));
            self.write(&w.finish()).await?;
            waiting.push_back(rx);
        }
        for rx in waiting {
            out.push(wait_answer(rx).await);
        }
        Ok(out)
    }

    /// GET_NONCE then AUTH with `key`.
    pub async fn auth(&mut self, key: &SigningKey) -> Result<()> {
        let pk = key.verifying_key().to_bytes();
        let nonce = self.nonce(&pk).await?;
        let sig = key.sign(&nonce).to_bytes();
        self.request(
            Command::Auth,
            &tlvs(&[
                (tag::PUBKEY, &pk),
                (tag::NONCE, &nonce),
                (tag::SIGNATURE, &sig),
            ]),
        )
        .await
        .context("AUTH")?;
        self.key = Some(key.clone());
        Ok(())
    }

    /// GET_NONCE for `pk`.
    pub async fn nonce(&mut self, pk: &[u8; 32]) -> Result<[u8; 32]> {
        let p = self
            .request(Command::GetNonce, &tlvs(&[(tag::PUBKEY, pk)]))
            .await
            .context("GET_NONCE")?;
        TlvMap::parse(&p)?
            .fixed(tag::NONCE)
            .context("no nonce in GET_NONCE answer")
    }

    /// CREATE_CHAT with a nonce and its proof of work (counter, signature) already found.
    pub async fn create_chat(
        &mut self,
        nonce: &[u8; 32],
        counter: u32,
        sig: &[u8; 64],
        name: &str,
    ) -> Result<i64> {
        let pk = self
            .key
            .as_ref()
            .context("not authenticated")?
            .verifying_key()
            .to_bytes();
        let p = self
            .request(
                Command::CreateChat,
                &tlvs(&[
                    (tag::PUBKEY, &pk),
                    (tag::NONCE, nonce),
                    (tag::COUNTER, &counter.to_be_bytes()),
                    (tag::SIGNATURE, sig),
                    (tag::CHAT_NAME, name.as_bytes()),
                    (tag::CHAT_DESC, b"benchmark"),
                ]),
            )
            .await
            .context("CREATE_CHAT")?;
        TlvMap::parse(&p)?
            .i64(tag::CHAT_ID)
            .context("no chat id in CREATE_CHAT answer")
    }

    /// SUBSCRIBE; returns the last message id.
    pub async fn subscribe(&mut self, chat: i64) -> Result<i64> {
        let p = self
            .request(
                Command::Subscribe,
                &tlvs(&[(tag::CHAT_ID, &chat.to_be_bytes())]),
            )
            .await
            .context("SUBSCRIBE")?;
        TlvMap::parse(&p)?
            .i64(tag::MESSAGE_ID)
            .context("no message id in SUBSCRIBE answer")
    }

    /// GET_MESSAGES_SINCE: returns (message count, last id, payload bytes) of one page.
    pub async fn messages_since(
        &mut self,
        chat: i64,
        since: i64,
        limit: u32,
    ) -> Result<(usize, i64, usize)> {
        let p = self
            .request(
                Command::GetMessagesSince,
                &tlvs(&[
                    (tag::CHAT_ID, &chat.to_be_bytes()),
                    (tag::SINCE_ID, &since.to_be_bytes()),
                    (tag::LIMIT, &limit.to_be_bytes()),
                ]),
            )
            .await
            .context("GET_MESSAGES_SINCE")?;
        let (mut n, mut last) = (0, since);
        for item in TlvIter::new(&p) {
            let (t, v) = item?;
            match t {
                tag::MESSAGE_ID => {
                    last = i64::from_be_bytes(v.try_into().context("bad message id")?);
                }
                tag::MESSAGE_BLOB => n += 1,
                _ => {}
            }
        }
        Ok((n, last, p.len()))
    }

    /// Waits for a free in-flight slot (closed loop). Fails once the session has ended.
    pub async fn acquire_slot(&self) -> Result<()> {
        self.shared
            .window
            .acquire()
            .await
            .map_err(|_| anyhow!("session closed"))?
            .forget();
        Ok(())
    }

    /// Writes a SEND_MESSAGE whose blob carries `sent_ns`; its answer is accounted by the
    /// reader. `fanout` is the number of pushes the message should cause.
    pub async fn send_message(
        &mut self,
        chat: i64,
        guid: i64,
        blob: &mut [u8],
        sender: u64,
        sent_ns: u64,
        fanout: u64,
    ) -> Result<()> {
        if blob.len() >= BLOB_HEADER {
            blob[..8].copy_from_slice(&MAGIC);
            blob[8..16].copy_from_slice(&sent_ns.to_be_bytes());
            blob[16..24].copy_from_slice(&sender.to_be_bytes());
        }
        let id = self.req_id();
        let mut w = FrameWriter::request(Command::SendMessage, id);
        w.tlv(tag::CHAT_ID, &chat.to_be_bytes())
            .tlv(tag::MESSAGE_GUID, &guid.to_be_bytes())
            .tlv(
                tag::TIMESTAMP,
                &((sent_ns / 1_000_000) as i64).to_be_bytes(),
            )
            .tlv(tag::MESSAGE_BLOB, blob);
        self.push_pending(Pending::Send {
            req: id,
            sent_ns,
            fanout,
        });
        self.shared
            .metrics
            .sent
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.write(&w.finish()).await
    }

    /// SEND_MESSAGE requests written but not answered yet.
    pub fn in_flight(&self) -> usize {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

/// Encodes TLV elements into a payload.
pub fn tlvs(elems: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (t, v) in elems {
        mediator_wire::tlv::put(&mut out, *t, v);
    }
    out
}

async fn wait_answer(rx: oneshot::Receiver<(Status, Vec<u8>)>) -> Result<Vec<u8>> {
    match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
        Err(_) => bail!("request timed out after {REQUEST_TIMEOUT:?}"),
        Ok(Err(_)) => bail!("session closed"),
        Ok(Ok((Status::Ok, p))) => Ok(p),
        Ok(Ok((Status::Err, p))) => Err(anyhow!(
            "server error: {}",
            decode_error_text(&p).unwrap_or_else(|_| "<bad error payload>".into())
        )),
        Ok(Ok((Status::Push, _))) => bail!("an answer with the push status of Mimir 3.x"),
    }
}

async fn read_loop(mut recv: quinn::RecvStream, shared: &Shared) -> Result<()> {
    // Buffered: one read takes whatever QUIC has delivered and every complete frame in it is
    // handled in place, instead of two exact reads (two stream locks) per frame.
    let mut buf = vec![0u8; READ_BUFFER];
    let (mut start, mut end) = (0usize, 0usize);
    loop {
        let mut need = HEADER_LEN;
        while end - start >= HEADER_LEN {
            let h: &[u8; HEADER_LEN] = buf[start..start + HEADER_LEN]
                .try_into()
                .expect("header length");
            let header = ResponseHeader::decode(h).map_err(|e| anyhow!("bad header: {e}"))?;
            let total = HEADER_LEN + header.len as usize;
            if end - start < total {
                need = total;
                break;
            }
            handle_frame(shared, header, &buf[start + HEADER_LEN..start + total]);
            start += total;
        }
        if start > 0 {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        if need > buf.len() {
            buf.resize(need, 0);
        }
        match recv.read(&mut buf[end..]).await? {
            Some(n) => end += n,
            None if end == 0 => return Ok(()),
            None => bail!("stream ended inside a frame"),
        }
    }
}

fn handle_frame(shared: &Shared, header: ResponseHeader, payload: &[u8]) {
    let m = &shared.metrics;
    let now = now_ns();
    if header.status == Status::Ok {
        if let Some(code) = PushCode::from_u16(header.req_id) {
            let bench_blob = (code == PushCode::GotMessage)
                .then(|| blob_of(payload))
                .flatten()
                .filter(|b| b.len() >= BLOB_HEADER && b[..8] == MAGIC);
            match bench_blob {
                Some(b) => {
                    let sent = u64::from_be_bytes(b[8..16].try_into().expect("8 bytes"));
                    m.push_latency.record(now.saturating_sub(sent) / 1000);
                    m.pushes.fetch_add(1, Relaxed);
                }
                None => {
                    m.other_pushes.fetch_add(1, Relaxed);
                }
            }
            return;
        }
    }
    let front = shared
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pop_front();
    match front {
        Some(Pending::Waiter(id, tx)) => {
            if id != header.req_id {
                m.error(format!("answer to {} while {id} was due", header.req_id));
            }
            let _ = tx.send((header.status, payload.to_vec()));
        }
        Some(Pending::Send {
            req,
            sent_ns,
            fanout,
        }) => {
            if req != header.req_id {
                m.error(format!("answer to {} while {req} was due", header.req_id));
            } else if header.status == Status::Ok {
                m.ack_latency.record(now.saturating_sub(sent_ns) / 1000);
                m.acked.fetch_add(1, Relaxed);
                m.expected_pushes.fetch_add(fanout, Relaxed);
            } else {
                let text = decode_error_text(payload).unwrap_or_default();
                m.error(format!("SEND_MESSAGE: {text}"));
            }
            shared.window.add_permits(1);
        }
        None => m.error(format!("unexpected answer to {}", header.req_id)),
    }
}

/// The MESSAGE_BLOB of a GOT_MESSAGE payload.
fn blob_of(payload: &[u8]) -> Option<&[u8]> {
    TlvIter::new(payload)
        .filter_map(Result::ok)
        .find(|(t, _)| *t == tag::MESSAGE_BLOB)
        .map(|(_, v)| v)
}
