//! One client session over any byte stream: the preamble, the request loop, and the single
//! writer that owns the send side.
//!
//! The reader reads one frame at a time and handles it to completion before reading the next,
//! so responses come back in request order. Responses and pushes share one bounded queue that
//! only the writer task drains, so frames never interleave (§11 C1). The transport does not
//! matter here: QUIC on UDP and QUIC over Yggdrasil hand over the same two halves.
//!
//! A request's payload buffer grows only as its bytes arrive, and past [`PAYLOAD_FREE_BYTES`]
//! the request first takes its size from the server's request budget
//! ([`crate::limits::Limits::request_budget_bytes`]), so memory for request payloads is
//! bounded across all sessions, whatever their headers claim.

use crate::handlers::{Server, Session};
use crate::hub::SessionHandle;
use crate::limits::PAYLOAD_FREE_BYTES;
use bytes::Bytes;
use mediator_wire::frame::{error_frame, RequestHeader, HEADER_LEN, PREAMBLE};
use mediator_wire::Command;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Semaphore};

/// How a session ended, for logs.
#[derive(Debug)]
enum End {
    Eof,
    BadPreamble,
    Idle,
    Killed,
    PayloadTooLarge,
    UnknownCommand(#[allow(dead_code)] u8),
    Io(#[allow(dead_code)] std::io::Error),
}

/// Runs a session to its end. `remote` identifies the peer node (for logs and the control API).
pub async fn run<R, W>(server: Arc<Server>, mut recv: R, send: W, remote: String)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let limits = &server.limits;
    if server.hub.session_count() >= limits.max_sessions
        || server.hub.sessions_from(&remote) >= limits.max_sessions_per_remote
    {
        tracing::warn!(remote, "session limit reached, refusing stream");
        return;
    }
    let (tx, rx) = mpsc::channel::<Bytes>(limits.session_queue);
    let handle = Arc::new(SessionHandle::new(server.hub.next_id(), remote, tx.clone()));
    server.hub.register(handle.clone());
    let writer = tokio::spawn(write_loop(send, rx));
    let mut session = Session {
        server: server.clone(),
        handle: handle.clone(),
        user: None,
    };
    let end = tokio::select! {
        end = read_loop(&mut session, &mut recv, &tx) => end,
        _ = handle.killed() => End::Killed,
    };
    tracing::debug!(session = handle.id, remote = %handle.remote, ?end, "session ended");
    session.finish().await;
    drop(tx);
    drop(session);
    drop(handle);
    let _ = writer.await;
}

async fn read_loop<R: AsyncRead + Unpin>(
    session: &mut Session,
    recv: &mut R,
    tx: &mpsc::Sender<Bytes>,
) -> End {
    let idle = session.server.limits.idle_timeout;
    let server = session.server.clone();
    let mut preamble = [0u8; 2];
    match tokio::time::timeout(idle, recv.read_exact(&mut preamble)).await {
        Err(_) => return End::Idle,
        Ok(Err(e)) => return End::Io(e),
        Ok(Ok(_)) if preamble != PREAMBLE => return End::BadPreamble,
        Ok(Ok(_)) => {}
    }
    let mut payload = Vec::new();
    loop {
        let mut h = [0u8; HEADER_LEN];
        let mut hold = None;
        // One deadline covers the header and the payload (§1.5).
        let header = tokio::time::timeout(idle, async {
            recv.read_exact(&mut h).await?;
            let header = RequestHeader::decode(&h);
            if header.check_len().is_err() {
                return Ok::<_, std::io::Error>(Err(header));
            }
            hold = read_payload(
                recv,
                &mut payload,
                header.len as usize,
                &server.request_budget,
            )
            .await?;
            Ok(Ok(header))
        })
        .await;
        let header = match header {
            Err(_) => return End::Idle,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return End::Eof,
            Ok(Err(e)) => return End::Io(e),
            Ok(Ok(Err(big))) => {
                let _ = tx
                    .send(Bytes::from(error_frame(big.req_id, "payload too large")))
                    .await;
                return End::PayloadTooLarge;
            }
            Ok(Ok(Ok(h))) => h,
        };
        let Some(cmd) = Command::from_u8(header.cmd) else {
            let _ = tx
                .send(Bytes::from(error_frame(header.req_id, "unknown cmd")))
                .await;
            return End::UnknownCommand(header.cmd);
        };
        let reply = session.handle(cmd, header.req_id, &payload).await;
        if payload.capacity() > PAYLOAD_FREE_BYTES {
            // Do not keep a large buffer alive for an idle session; its budget goes back too.
            payload = Vec::new();
        }
        drop(hold);
        if tx.send(reply.frame).await.is_err() {
            return End::Eof;
        }
        for f in reply.after {
            if tx.send(f).await.is_err() {
                return End::Eof;
            }
        }
    }
}

/// Most payload bytes read in one step; the buffer grows (doubling, up to the request's
/// length) only as bytes arrive.
pub const PAYLOAD_READ_STEP: usize = 64 * 1024;

/// Bytes taken from the server's request budget, given back when dropped.
struct BudgetHold<'a> {
    budget: &'a Semaphore,
    bytes: usize,
}

impl Drop for BudgetHold<'_> {
    fn drop(&mut self) {
        self.budget.add_permits(self.bytes);
    }
}

/// Reads a `len`-byte payload into `buf`. The buffer grows only as bytes arrive, so a header
/// that claims more than is sent costs no memory. Past the first [`PAYLOAD_FREE_BYTES`], the
/// rest of the request (`len` minus those) is taken from `budget` at once before reading on:
/// all or nothing, so sessions never wait for budget while holding some, and cannot
/// deadlock each other. The hold lasts until the request is handled.
async fn read_payload<'a, R: AsyncRead + Unpin>(
    recv: &mut R,
    buf: &mut Vec<u8>,
    len: usize,
    budget: &'a Semaphore,
) -> std::io::Result<Option<BudgetHold<'a>>> {
    buf.clear();
    let mut hold = None;
    while buf.len() < len {
        if hold.is_none() && buf.len() >= PAYLOAD_FREE_BYTES {
            let bytes = len - PAYLOAD_FREE_BYTES;
            let permits = u32::try_from(bytes).map_err(std::io::Error::other)?;
            budget
                .acquire_many(permits)
                .await
                .map_err(std::io::Error::other)?
                .forget();
            hold = Some(BudgetHold { budget, bytes });
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
        recv.read_exact(&mut buf[start..]).await?;
    }
    Ok(hold)
}

/// Most bytes the writer gathers from its queue into one stream write. Under load many
/// small frames (pushes, acks) are waiting at once; one write for all of them costs one pass
/// through the QUIC connection's state instead of one per frame.
pub const WRITE_COALESCE_BYTES: usize = 64 * 1024;

/// The only task that writes to the stream: whole frames, in queue order. Frames already
/// waiting are gathered (up to [`WRITE_COALESCE_BYTES`]) into one write; a lone frame is
/// written as is. Finishes the stream (FIN) when the queue closes.
async fn write_loop<W: AsyncWrite + Unpin>(mut send: W, mut rx: mpsc::Receiver<Bytes>) {
    let mut batch: Vec<u8> = Vec::new();
    while let Some(frame) = rx.recv().await {
        let mut pending = Some(frame);
        while let Some(first) = pending.take() {
            let written = match rx.try_recv() {
                Err(_) => send.write_all(&first).await,
                Ok(second) if first.len() + second.len() > WRITE_COALESCE_BYTES => {
                    pending = Some(second);
                    send.write_all(&first).await
                }
                Ok(second) => {
                    batch.clear();
                    batch.extend_from_slice(&first);
                    batch.extend_from_slice(&second);
                    while batch.len() < WRITE_COALESCE_BYTES {
                        match rx.try_recv() {
                            Ok(f) if batch.len() + f.len() <= WRITE_COALESCE_BYTES => {
                                batch.extend_from_slice(&f)
                            }
                            Ok(f) => {
                                pending = Some(f);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    send.write_all(&batch).await
                }
            };
            if written.is_err() {
                // Peer gone: drain so pushers see a closed queue soon.
                rx.close();
                return;
            }
        }
    }
    let _ = send.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames waiting together are written in queue order, whether they are gathered into one
    /// write or (over [`WRITE_COALESCE_BYTES`]) written on their own, and the stream is
    /// finished when the queue closes.
    #[tokio::test]
    async fn writer_keeps_order_across_coalesced_and_large_frames() {
        let (tx, rx) = mpsc::channel::<Bytes>(64);
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
            tx.send(f.clone()).await.unwrap();
        }
        drop(tx);
        let (w, mut r) = tokio::io::duplex(1 << 20);
        let writer = tokio::spawn(write_loop(w, rx));
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got, frames.concat());
    }

    /// A payload is read whole and intact across steps; the part past the free bytes is
    /// taken from the budget at once and given back when the hold is dropped; a second large
    /// request waits (holding nothing) until then.
    #[tokio::test]
    async fn large_payloads_take_the_budget_all_or_nothing() {
        let extra = 3 * PAYLOAD_READ_STEP + 5;
        let len = PAYLOAD_FREE_BYTES + extra;
        let budget = Semaphore::new(extra);
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let (mut w1, mut r1) = tokio::io::duplex(1 << 20);
        w1.write_all(&data).await.unwrap();
        let mut buf = Vec::new();
        let hold = read_payload(&mut r1, &mut buf, len, &budget).await.unwrap();
        assert_eq!(buf, data);
        assert!(buf.capacity() <= len);
        assert_eq!(budget.available_permits(), 0);

        let (mut w2, mut r2) = tokio::io::duplex(1 << 20);
        w2.write_all(&data).await.unwrap();
        let mut buf2 = Vec::new();
        let hold2 = {
            let second = read_payload(&mut r2, &mut buf2, len, &budget);
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
        assert_eq!(budget.available_permits(), extra);

        // Small payloads never touch the budget.
        let (mut w3, mut r3) = tokio::io::duplex(1 << 16);
        w3.write_all(&data[..PAYLOAD_FREE_BYTES]).await.unwrap();
        let empty = Semaphore::new(0);
        let mut buf3 = Vec::new();
        assert!(read_payload(&mut r3, &mut buf3, PAYLOAD_FREE_BYTES, &empty)
            .await
            .unwrap()
            .is_none());
        assert_eq!(buf3, data[..PAYLOAD_FREE_BYTES]);
    }
}
