//! One client session over any byte stream: admission, the preamble, the request loop, and
//! the single writer that owns the send side.
//!
//! The reader reads one frame at a time and handles it to completion before reading the next,
//! so responses come back in request order. Responses and pushes share one bounded queue that
//! only the writer task drains, so frames never interleave (§11 C1). The transport does not
//! matter here: QUIC on UDP and QUIC over Yggdrasil hand over the same two halves.
//!
//! Before AUTH a session is a guest ([`crate::hub::Tier`]): it must authenticate within
//! [`Limits::auth_timeout`](crate::limits::Limits::auth_timeout), and its requests may carry
//! at most [`GUEST_PAYLOAD_MAX`] bytes; commands other than GET_NONCE, AUTH and PING get
//! their "auth required" answer without their payload being kept. After AUTH a command that
//! carries no blob may still carry only [`SMALL_COMMAND_PAYLOAD_MAX`] bytes. A request's
//! payload buffer grows only as its bytes arrive, past [`PAYLOAD_FREE_BYTES`] the request
//! first takes its size from the server's request budget, and an upload that receives
//! nothing for [`Limits::upload_stall`](crate::limits::Limits::upload_stall) ends its session
//! and gives the budget back. The reader takes no new request while more than
//! [`ANSWER_LOW_WATER`] bytes wait for the client, so answers are produced as the client
//! reads them; the writer ends a session whose stream accepts nothing for
//! [`Limits::write_stall`](crate::limits::Limits::write_stall).

use crate::events::{self, Event};
use crate::handlers::{Reply, Session};
use crate::hub::SessionHandle;
use crate::limits::{GUEST_PAYLOAD_MAX, PAYLOAD_FREE_BYTES, SMALL_COMMAND_PAYLOAD_MAX};
use crate::outbox::OutboxReceiver;
use crate::ratelimit::{Kind, Rate, RateLimiter};
use crate::server::Server;
use crate::shares::{Grant, SourceBudget};
use mediator_wire::frame::{error_frame, RequestHeader, HEADER_LEN, MAX_REQUEST_PAYLOAD, PREAMBLE};
use mediator_wire::{Command, WireError};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::Instrument;

/// The reader takes the next request only when at most this many bytes are queued for the
/// session: a client that does not read cannot make the daemon build more answers for it.
pub const ANSWER_LOW_WATER: usize = 256 * 1024;

pub use crate::peer::{Peer, Transport};

/// How a session ended, for logs.
#[derive(Debug)]
enum End {
    Eof,
    BadPreamble,
    Idle,
    AuthTimeout,
    Stalled,
    Killed,
    PayloadTooLarge,
    UnknownCommand(#[allow(dead_code)] u8),
    Io(#[allow(dead_code)] std::io::Error),
}

/// Runs a session to its end, if the hub admits it. Admission checks every session limit and
/// registers the session under one lock of the hub, so concurrent streams cannot overshoot.
/// Everything the session's reader and handlers log carries a `session{session, remote, user}`
/// span; `user` is filled in by AUTH.
pub async fn run<R, W>(server: Arc<Server>, recv: R, send: W, peer: Peer)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let source = peer.source.clone();
    let (handle, rx) = match server.hub.admit(peer, &server.limits) {
        Ok(admitted) => admitted,
        Err(why) => {
            events::note(Event::SessionRefused, &source, &why.to_string());
            return;
        }
    };
    server.metrics.session_opened(handle.transport);
    // At the error level so the span is enabled whenever any record is: a warning under
    // `log = "warn"` still carries its session's context (a span's level only decides when
    // it is enabled).
    let span = tracing::error_span!(
        "session",
        session = handle.id,
        remote = %handle.remote,
        user = tracing::field::Empty
    );
    serve(server, handle, rx, recv, send).instrument(span).await
}

/// The admitted session's life: the writer task, the read loop, and the clean-up.
async fn serve<R, W>(
    server: Arc<Server>,
    handle: Arc<SessionHandle>,
    rx: OutboxReceiver,
    mut recv: R,
    send: W,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    // The writer is not in the span: it is polled for every frame (hundreds of thousands of
    // times a second in a large fan-out) and logs only a stall, which names the source.
    let writer = tokio::spawn(write_loop(send, rx, server.limits.write_stall));
    let mut session = Session::new(server.clone(), handle.clone());
    let end = tokio::select! {
        end = read_loop(&mut session, &mut recv) => end,
        _ = handle.killed() => End::Killed,
    };
    tracing::debug!(?end, "session ended");
    match end {
        End::AuthTimeout => events::note(Event::AuthTimeout, &handle.source, "no AUTH in time"),
        End::Stalled => events::note(Event::Stalled, &handle.source, "upload stopped"),
        _ => {}
    }
    session.finish().await;
    drop(session);
    drop(handle);
    let _ = writer.await;
}

/// Largest payload `cmd` may carry for a guest (`guest`) or an authenticated session.
fn payload_max(cmd: Option<Command>, guest: bool) -> usize {
    if guest {
        return GUEST_PAYLOAD_MAX;
    }
    match cmd {
        Some(
            Command::SendMessage
            | Command::CreateChat
            | Command::UpdateChatInfo
            | Command::SendInvite
            | Command::UpdateMemberInfo,
        )
        | None => MAX_REQUEST_PAYLOAD as usize,
        Some(_) => SMALL_COMMAND_PAYLOAD_MAX,
    }
}

/// The answer a guest gets for a command it may not send yet (the texts of §5).
fn guest_refusal(cmd: Command) -> Option<WireError> {
    match cmd {
        Command::GetNonce | Command::Auth | Command::Ping => None,
        Command::CreateChat => Some(WireError::NotAuthenticated),
        _ => Some(WireError::AuthRequired),
    }
}

async fn read_loop<R: AsyncRead + Unpin>(session: &mut Session, recv: &mut R) -> End {
    let server = session.server.clone();
    let limits = &server.limits;
    let handle = session.handle.clone();
    let auth_deadline = Instant::now() + limits.auth_timeout;
    let mut preamble = [0u8; 2];
    match tokio::time::timeout_at(auth_deadline, recv.read_exact(&mut preamble)).await {
        Err(_) => return End::AuthTimeout,
        Ok(Err(e)) => return End::Io(e),
        Ok(Ok(_)) if preamble != PREAMBLE => return End::BadPreamble,
        Ok(Ok(_)) => {}
    }
    let mut payload = Vec::new();
    let uploads = server.request_budget.for_source(&handle.source);
    loop {
        handle.drained_below(ANSWER_LOW_WATER).await;
        let guest = session.user.is_none();
        let deadline = if guest {
            auth_deadline
        } else {
            Instant::now() + limits.idle_timeout
        };
        let mut h = [0u8; HEADER_LEN];
        match tokio::time::timeout_at(deadline, recv.read_exact(&mut h)).await {
            Err(_) if guest => return End::AuthTimeout,
            Err(_) => return End::Idle,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return End::Eof,
            Ok(Err(e)) => return End::Io(e),
            Ok(Ok(_)) => {}
        }
        let header = RequestHeader::decode(&h);
        let cmd = Command::from_u8(header.cmd);
        if header.len as usize > payload_max(cmd, guest) {
            events::note(
                Event::PayloadTooLarge,
                &handle.source,
                &format!("{} bytes for command {:#04x}", header.len, header.cmd),
            );
            handle
                .answer(
                    error_frame(header.req_id, WireError::PayloadTooLarge.text()).into(),
                    None,
                )
                .await;
            return End::PayloadTooLarge;
        }
        // The whole payload within the session's deadline (§1.5; before AUTH the auth
        // deadline, and past the free bytes plus its wait for the upload rate), and no pause
        // longer than the stall limit.
        let gate = Gate {
            budget: &uploads,
            rates: &server.rates,
            rate: limits.rate_upload_bytes_per_source,
            source: &handle.source,
        };
        let payload_deadline = deadline.max(Instant::now() + limits.upload_stall + MAX_UPLOAD_WAIT);
        let Some(cmd) = cmd else {
            let refusal = error_frame(header.req_id, WireError::UnknownCommand.text());
            if !handle.transport.is_mimir3() {
                handle.answer(refusal.into(), None).await;
                return End::UnknownCommand(header.cmd);
            }
            // Mimir 3.x keeps the session: its payload is read past (at the upload rate).
            let skip = discard(recv, header.len as usize, limits.upload_stall, &gate);
            match tokio::time::timeout_at(payload_deadline, skip).await {
                Ok(Ok(())) => {}
                Err(_) | Ok(Err(_)) => return End::UnknownCommand(header.cmd),
            }
            if !handle.answer(refusal.into(), None).await {
                return End::Eof;
            }
            continue;
        };
        let read = tokio::time::timeout_at(
            payload_deadline,
            read_payload(
                recv,
                &mut payload,
                header.len as usize,
                &gate,
                limits.upload_stall,
            ),
        )
        .await;
        let hold = match read {
            Err(_) if guest => return End::AuthTimeout,
            Err(_) => return End::Idle,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => return End::Stalled,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return End::Eof,
            Ok(Err(e)) => return End::Io(e),
            Ok(Ok(hold)) => hold,
        };
        handle.received(HEADER_LEN + header.len as usize);
        let started = Instant::now();
        let reply = match (guest.then(|| guest_refusal(cmd)).flatten(), &hold) {
            (Some(refusal), _) => Reply::refusal(header.req_id, refusal),
            (None, Payload::RateLimited) => Reply::refusal(header.req_id, WireError::RateLimited),
            (None, _) => session.handle(cmd, header.req_id, &payload).await,
        };
        server.metrics.command(cmd, &reply.frame, started.elapsed());
        if payload.capacity() > PAYLOAD_FREE_BYTES {
            // Do not keep a large buffer alive for an idle session; its budget goes back too.
            payload = Vec::new();
        }
        drop(hold);
        if !handle.answer(reply.frame, reply.reserved).await {
            return End::Eof;
        }
        // Frames after the answer are pushes to this session itself.
        for f in reply.after {
            if !handle.answer(handle.for_client(f), None).await {
                return End::Eof;
            }
        }
    }
}

/// Most payload bytes read in one step; the buffer grows (doubling, up to the request's
/// length) only as bytes arrive.
pub const PAYLOAD_READ_STEP: usize = 64 * 1024;

/// Longest a large request waits for its source's upload rate
/// ([`Limits::rate_upload_bytes_per_source`](crate::limits::Limits::rate_upload_bytes_per_source)):
/// a source one burst behind waits at most burst / rate (8 s by default), and the session's
/// read deadline is extended by this much.
pub const MAX_UPLOAD_WAIT: Duration = Duration::from_secs(30);

/// What a large request must pass before its bytes past the free ones are read: its source's
/// upload rate, then its source's share of the request budget.
struct Gate<'a> {
    budget: &'a SourceBudget,
    rates: &'a RateLimiter,
    rate: Rate,
    source: &'a str,
}

/// A payload read: whole, holding its share of the request budget (if it needed one) until
/// it is handled; or read and dropped because its source is over its upload rate. The
/// dropped bytes are read at the source's rate, charged to it as if kept
/// ([`RateLimiter::charge`]): dropping them at full speed invited a flood of 900 MB/s from
/// one source, which crowded honest datagrams out of the UDP socket.
enum Payload {
    Whole(#[allow(dead_code)] Option<Grant>),
    RateLimited,
}

/// Reads a `len`-byte payload into `buf`. The buffer grows only as bytes arrive, so a header
/// that claims more than is sent costs no memory. Past the first [`PAYLOAD_FREE_BYTES`], the
/// rest of the request (`len` minus those) first passes the source's upload rate (waiting
/// for it, or read at that rate and dropped when the source is more than a burst behind),
/// then is taken
/// from the source's share of the request budget at once before reading on: all or nothing,
/// so sessions never wait for budget while holding some, and cannot deadlock each other. The
/// grant lasts until the request is handled. A read that receives nothing for `stall` fails
/// with `TimedOut`.
async fn read_payload<R: AsyncRead + Unpin>(
    recv: &mut R,
    buf: &mut Vec<u8>,
    len: usize,
    gate: &Gate<'_>,
    stall: Duration,
) -> std::io::Result<Payload> {
    buf.clear();
    let mut hold = None;
    while buf.len() < len {
        if hold.is_none() && buf.len() >= PAYLOAD_FREE_BYTES {
            let bytes = len - PAYLOAD_FREE_BYTES;
            let kind = Kind::UploadBytesBySource;
            let cost = bytes as f64;
            match (gate.rates).take_or_wait(kind, gate.source, gate.rate, cost, MAX_UPLOAD_WAIT) {
                // Boxed, as the drop below: rare paths, kept out of every idle session's future.
                Some(wait) if !wait.is_zero() => Box::pin(tokio::time::sleep(wait)).await,
                Some(_) => {}
                None => {
                    events::note(
                        Event::RateLimited,
                        gate.source,
                        &format!("{kind:?}: {bytes} bytes"),
                    );
                    Box::pin(discard(recv, len - buf.len(), stall, gate)).await?;
                    return Ok(Payload::RateLimited);
                }
            }
            hold = Some(gate.budget.acquire(bytes).await);
        }
        let limit = if hold.is_some() {
            len
        } else {
            len.min(PAYLOAD_FREE_BYTES)
        };
        let want = (limit - buf.len()).min(PAYLOAD_READ_STEP);
        if buf.len() + want > buf.capacity() {
            let target = (buf.len() + want).max(buf.capacity() * 2).min(limit);
            buf.reserve_exact(target - buf.len());
        }
        let start = buf.len();
        buf.resize(start + want, 0);
        let mut filled = start;
        while filled < buf.len() {
            let n = read_some(recv, &mut buf[filled..], stall).await;
            let n = n.inspect_err(|_| buf.truncate(filled))?;
            filled += n;
        }
    }
    Ok(Payload::Whole(hold))
}

/// Reads and drops `len` bytes, charging each chunk to the source's upload rate and waiting
/// for it (each wait at most [`MAX_UPLOAD_WAIT`], so a source deep in debt reads at most a
/// chunk per session that often, until the session's read deadline ends it).
async fn discard<R: AsyncRead + Unpin>(
    recv: &mut R,
    mut len: usize,
    stall: Duration,
    gate: &Gate<'_>,
) -> std::io::Result<()> {
    let mut scratch = vec![0u8; PAYLOAD_READ_STEP];
    while len > 0 {
        let want = len.min(scratch.len());
        let n = read_some(recv, &mut scratch[..want], stall).await?;
        len -= n;
        let kind = Kind::UploadBytesBySource;
        let wait = gate.rates.charge(kind, gate.source, gate.rate, n as f64);
        tokio::time::sleep(wait.min(MAX_UPLOAD_WAIT)).await;
    }
    Ok(())
}

/// Reads some bytes: at least one, within `stall`.
async fn read_some<R: AsyncRead + Unpin>(
    recv: &mut R,
    buf: &mut [u8],
    stall: Duration,
) -> std::io::Result<usize> {
    match tokio::time::timeout(stall, recv.read(buf)).await {
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        Ok(Ok(0)) => Err(std::io::ErrorKind::UnexpectedEof.into()),
        Ok(r) => r,
    }
}

/// Most bytes the writer gathers from its queue into one stream write. Under load many
/// small frames (pushes, acks) are waiting at once; one write for all of them costs one pass
/// through the QUIC connection's state instead of one per frame.
pub const WRITE_COALESCE_BYTES: usize = 64 * 1024;

/// The only task that writes to the stream: whole frames, in queue order. Frames already
/// waiting are gathered (up to [`WRITE_COALESCE_BYTES`]) into one write; a lone frame is
/// written as is. A stream that accepts no byte for `stall` (the client stopped reading)
/// ends the session. Finishes the stream (FIN) when the queue closes.
async fn write_loop<W: AsyncWrite + Unpin>(mut send: W, mut out: OutboxReceiver, stall: Duration) {
    let mut batch: Vec<u8> = Vec::new();
    while let Some(frame) = out.rx.recv().await {
        let mut pending = Some(frame);
        while let Some(first) = pending.take() {
            // Bytes taken from the queue by this write, and the answers among them.
            let mut answers = first.answer_bytes();
            let (written, len) = match out.rx.try_recv() {
                Err(_) => (
                    write_with_progress(&mut send, &first.frame, stall).await,
                    first.frame.len(),
                ),
                Ok(second) if first.frame.len() + second.frame.len() > WRITE_COALESCE_BYTES => {
                    pending = Some(second);
                    (
                        write_with_progress(&mut send, &first.frame, stall).await,
                        first.frame.len(),
                    )
                }
                Ok(second) => {
                    batch.clear();
                    batch.extend_from_slice(&first.frame);
                    batch.extend_from_slice(&second.frame);
                    answers += second.answer_bytes();
                    while batch.len() < WRITE_COALESCE_BYTES {
                        match out.rx.try_recv() {
                            Ok(f) if batch.len() + f.frame.len() <= WRITE_COALESCE_BYTES => {
                                batch.extend_from_slice(&f.frame);
                                answers += f.answer_bytes();
                            }
                            Ok(f) => {
                                pending = Some(f);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    (
                        write_with_progress(&mut send, &batch, stall).await,
                        batch.len(),
                    )
                }
            };
            out.meter.written(len, answers);
            if written.is_ok() {
                let out_bytes = &out.meter.traffic.bytes_out;
                out_bytes.fetch_add(len as u64, std::sync::atomic::Ordering::Relaxed);
            }
            if let Err(e) = written {
                if e.kind() == std::io::ErrorKind::TimedOut {
                    events::note(Event::Stalled, &out.source, "client stopped reading");
                }
                // Peer gone or stalled: end the session and drop what is queued, so pushers
                // see a closed queue soon and the queued bytes are given back.
                out.kill.cancel();
                if let Some(p) = pending.take() {
                    out.meter.written(p.frame.len(), p.answer_bytes());
                }
                out.rx.close();
                while let Some(f) = out.rx.recv().await {
                    out.meter.written(f.frame.len(), f.answer_bytes());
                }
                return;
            }
        }
    }
    let _ = send.shutdown().await;
}

/// Writes all of `buf`, failing with `TimedOut` when the stream accepts nothing for `stall`.
async fn write_with_progress<W: AsyncWrite + Unpin>(
    send: &mut W,
    buf: &[u8],
    stall: Duration,
) -> std::io::Result<()> {
    let mut off = 0;
    while off < buf.len() {
        let n = tokio::time::timeout(stall, send.write(&buf[off..]))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        off += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shares::SharedBudget;
    use bytes::Bytes;

    const STALL: Duration = Duration::from_secs(10);

    /// Frames waiting together are written in queue order, whether they are gathered into one
    /// write or (over [`WRITE_COALESCE_BYTES`]) written on their own, and the stream is
    /// finished when the queue closes.
    #[tokio::test]
    async fn writer_keeps_order_across_coalesced_and_large_frames() {
        let hub = crate::hub::Hub::default();
        let limits = crate::limits::Limits {
            session_queue: 64,
            ..Default::default()
        };
        let (handle, rx) = hub.admit(Peer::quic("r", "s"), &limits).unwrap();
        let mut frames = Vec::new();
        for i in 0..40u8 {
            let len = match i % 10 {
                3 => WRITE_COALESCE_BYTES + 17,
                7 => WRITE_COALESCE_BYTES / 2,
                _ => 5 + usize::from(i),
            };
            frames.push(Bytes::from(vec![i; len]));
        }
        for f in &frames {
            assert!(handle.answer(f.clone(), None).await);
        }
        hub.unregister(handle.id);
        drop(handle);
        let (w, mut r) = tokio::io::duplex(1 << 20);
        let writer = tokio::spawn(write_loop(w, rx, Duration::from_secs(10)));
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got, frames.concat());
        assert_eq!(hub.budget.queued(), 0);
    }

    /// A client that stops reading ends its session after the stall limit, and everything
    /// queued for it is given back.
    #[tokio::test(start_paused = true)]
    async fn writer_ends_a_session_whose_client_stopped_reading() {
        let hub = crate::hub::Hub::default();
        let (handle, rx) = hub
            .admit(Peer::quic("r", "s"), &Default::default())
            .unwrap();
        let (w, _r) = tokio::io::duplex(1024);
        let writer = tokio::spawn(write_loop(w, rx, Duration::from_secs(10)));
        for _ in 0..4 {
            handle.push(&crate::outbox::PushFrame::new(Bytes::from(vec![
                1;
                100_000
            ])));
        }
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(handle.is_killed());
        writer.await.unwrap();
        assert_eq!(hub.budget.queued(), 0);
    }

    /// A gate with `budget` bytes for its source and an upload rate that never bites.
    fn gate_parts(budget: usize) -> (SharedBudget, RateLimiter) {
        (SharedBudget::new(budget, budget), RateLimiter::default())
    }

    fn gate<'a>(b: &'a SourceBudget, rates: &'a RateLimiter, rate: Rate) -> Gate<'a> {
        Gate {
            budget: b,
            rates,
            rate,
            source: "s",
        }
    }

    const UNLIMITED: Rate = Rate::new(1e12, 1e12);

    /// A payload that stops arriving fails with TimedOut after the stall limit.
    #[tokio::test(start_paused = true)]
    async fn stalled_upload_times_out() {
        let (mut w, mut r) = tokio::io::duplex(1 << 16);
        w.write_all(&[0; 100]).await.unwrap();
        let (shared, rates) = gate_parts(1 << 20);
        let b = shared.for_source("s");
        let mut buf = Vec::new();
        let g = gate(&b, &rates, UNLIMITED);
        let err = read_payload(&mut r, &mut buf, 1000, &g, Duration::from_secs(10))
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }

    /// A payload is read whole and intact across steps; the part past the free bytes is
    /// taken from the budget at once and given back when the hold is dropped; a second large
    /// request waits (holding nothing) until then.
    #[tokio::test]
    async fn large_payloads_take_the_budget_all_or_nothing() {
        let extra = 3 * PAYLOAD_READ_STEP + 5;
        let len = PAYLOAD_FREE_BYTES + extra;
        let (shared, rates) = gate_parts(extra);
        let b = shared.for_source("s");
        let g = gate(&b, &rates, UNLIMITED);
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let (mut w1, mut r1) = tokio::io::duplex(1 << 20);
        w1.write_all(&data).await.unwrap();
        let mut buf = Vec::new();
        let hold = read_payload(&mut r1, &mut buf, len, &g, STALL)
            .await
            .unwrap();
        assert_eq!(buf, data);
        assert!(buf.capacity() <= len);
        assert_eq!(shared.available(), 0);

        let (mut w2, mut r2) = tokio::io::duplex(1 << 20);
        w2.write_all(&data).await.unwrap();
        let mut buf2 = Vec::new();
        let hold2 = {
            let second = read_payload(&mut r2, &mut buf2, len, &g, STALL);
            tokio::pin!(second);
            assert!(
                tokio::time::timeout(std::time::Duration::from_millis(100), &mut second)
                    .await
                    .is_err(),
                "a second large request must wait for the budget"
            );
            drop(hold);
            second.await.unwrap()
        };
        assert_eq!(buf2, data);
        drop(hold2);
        assert_eq!(shared.available(), extra);

        // Small payloads never touch the budget.
        let (mut w3, mut r3) = tokio::io::duplex(1 << 16);
        w3.write_all(&data[..PAYLOAD_FREE_BYTES]).await.unwrap();
        let (empty, rates) = gate_parts(0);
        let e = empty.for_source("s");
        let g = gate(&e, &rates, UNLIMITED);
        let mut buf3 = Vec::new();
        assert!(matches!(
            read_payload(&mut r3, &mut buf3, PAYLOAD_FREE_BYTES, &g, STALL)
                .await
                .unwrap(),
            Payload::Whole(None)
        ));
        assert_eq!(buf3, data[..PAYLOAD_FREE_BYTES]);
    }

    /// Past its upload rate a source's large request first waits; more than a burst behind,
    /// its bytes are read at the rate and dropped (the stream stays in step).
    #[tokio::test(start_paused = true)]
    async fn upload_rate_waits_then_refuses() {
        let extra = 1000;
        let len = PAYLOAD_FREE_BYTES + extra;
        let (shared, rates) = gate_parts(1 << 20);
        let b = shared.for_source("s");
        let g = gate(&b, &rates, Rate::new(100.0, 1000.0));
        let (mut w, mut r) = tokio::io::duplex(1 << 20);
        for _ in 0..3 {
            w.write_all(&vec![7; len]).await.unwrap();
        }
        let mut buf = Vec::new();
        let t0 = Instant::now();
        let first = read_payload(&mut r, &mut buf, len, &g, STALL)
            .await
            .unwrap();
        assert!(matches!(first, Payload::Whole(Some(_))));
        assert_eq!(t0.elapsed(), Duration::ZERO);
        let second = read_payload(&mut r, &mut buf, len, &g, STALL)
            .await
            .unwrap();
        assert!(matches!(second, Payload::Whole(Some(_))));
        assert_eq!(
            t0.elapsed(),
            Duration::from_secs(10),
            "waited for 1000 bytes at 100/s"
        );
        let rate = Rate::new(100.0, 1000.0);
        rates.take_or_wait(
            Kind::UploadBytesBySource,
            "s",
            rate,
            1000.0,
            MAX_UPLOAD_WAIT,
        );
        let third = read_payload(&mut r, &mut buf, len, &g, STALL)
            .await
            .unwrap();
        assert!(matches!(third, Payload::RateLimited));
        assert!(
            t0.elapsed() >= Duration::from_secs(20),
            "dropped at the rate"
        );
        w.write_all(b"next").await.unwrap();
        let mut next = [0u8; 4];
        r.read_exact(&mut next).await.unwrap();
        assert_eq!(&next, b"next");
    }
}
