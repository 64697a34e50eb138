//! One client session over any byte stream: the preamble, the request loop, and the single
//! writer that owns the send side.
//!
//! The reader reads one frame at a time and handles it to completion before reading the next,
//! so responses come back in request order. Responses and pushes share one bounded queue that
//! only the writer task drains, so frames never interleave (§11 C1). The transport does not
//! matter here: QUIC on UDP and QUIC over Yggdrasil hand over the same two halves.

use crate::handlers::{Server, Session};
use crate::hub::SessionHandle;
use bytes::Bytes;
use mediator_wire::frame::{error_frame, RequestHeader, HEADER_LEN, PREAMBLE};
use mediator_wire::Command;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

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
        // One deadline covers the header and the payload (§1.5).
        let header = tokio::time::timeout(idle, async {
            recv.read_exact(&mut h).await?;
            let header = RequestHeader::decode(&h);
            if header.check_len().is_err() {
                return Ok::<_, std::io::Error>(Err(header));
            }
            payload.clear();
            payload.resize(header.len as usize, 0);
            recv.read_exact(&mut payload).await?;
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
        if payload.capacity() > 64 * 1024 {
            // Do not keep a large buffer alive for an idle session.
            payload = Vec::new();
        }
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
}
