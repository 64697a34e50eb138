//! One peer connection: the Yggdrasil handshake, then ironwood frames
//! (`uvarint(len) || type || body`) in both directions with ironwood's
//! liveness rules (`network/peers.go`):
//!
//! * after **sending** any frame other than dummy/keepalive, the remote must
//!   send *something* within [`PEER_TIMEOUT`] or the link is closed (the
//!   deadline is armed once and cleared by any received frame);
//! * after **receiving** such a frame, a keepalive is sent after
//!   [`PEER_KEEPALIVE_DELAY`] unless some other frame went out first.
//!
//! Reading and writing run in two tasks so a blocked write never stalls the
//! read deadline. Tree messages go out through an unbounded channel (they
//! are small and rate-limited by the protocol); routed packets (traffic,
//! lookups, notifies, broken-path notices) go through the link's
//! [`PacketQueue`], which sheds load when the socket backs up. Frames larger than the maximum message size close the link;
//! SigRes and Announce signatures are checked here, before the router sees
//! them (a bad one closes the link, as in ironwood).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use crate::handshake::{self, HandshakeError, Metadata, HEADER_LEN};
use crate::identity::Identity;
use crate::proto::{FrameError, FrameType, PeerMessage};
use crate::queue::{flow_keys, PacketQueue};
use crate::wire::{parse_uvarint, PublicKey, UvarintParse};

/// Deadline for writing our handshake and reading the peer's.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(6);
/// Time the remote has to answer a non-keepalive frame (`peerTimeout`).
pub const PEER_TIMEOUT: Duration = Duration::from_secs(3);
/// Delay before answering a received frame with a keepalive
/// (`peerKeepAliveDelay`).
pub const PEER_KEEPALIVE_DELAY: Duration = Duration::from_secs(1);
/// Largest frame (type + body) accepted or sent: Yggdrasil configures
/// ironwood's `peerMaxMessageSize` as 65535 × 2.
pub const PEER_MAX_MESSAGE_SIZE: u64 = 131_070;
/// Size of one socket read.
pub const READ_CHUNK: usize = 64 * 1024;

/// Why a link failed or ended.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Socket error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The handshake was invalid.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The handshake did not complete within [`HANDSHAKE_TIMEOUT`].
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The remote key is not among the `key=` pins.
    #[error("node public key that does not match pinned keys")]
    PinnedKeyMismatch,
    /// The remote presented our own key.
    #[error("refusing link to self")]
    LinkToSelf,
    /// The remote did not answer within [`PEER_TIMEOUT`].
    #[error("peer timed out")]
    Timeout,
    /// The remote closed the connection.
    #[error("remote side closed the connection")]
    Closed,
    /// A frame longer than the maximum message size.
    #[error("oversized frame ({0} bytes)")]
    Oversized(u64),
    /// The frame length prefix was not a valid uvarint.
    #[error("bad frame length prefix")]
    BadLength,
    /// A frame did not decode.
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// A SigRes or Announce signature did not verify.
    #[error("bad signature in {0:?}")]
    BadSignature(FrameType),
    /// The node is shutting down.
    #[error("node shutting down")]
    Shutdown,
}

/// Per-link options from the URI (dial) or the listener.
#[derive(Debug, Clone, Default)]
pub struct LinkOptions {
    /// Keys the remote must have (empty: any).
    pub pinned_keys: Vec<PublicKey>,
    /// Handshake password (empty: none).
    pub password: Vec<u8>,
    /// Our requested link priority.
    pub priority: u8,
}

/// Runs the handshake on a fresh connection and applies the key checks.
/// Returns the peer's metadata and the effective link priority (the max of
/// both sides').
pub async fn handshake<S>(
    stream: &mut S,
    id: &Identity,
    opts: &LinkOptions,
) -> Result<(Metadata, u8), LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ours = handshake::encode(id, opts.priority, &opts.password)?;
    let exchange = async {
        stream.write_all(&ours).await?;
        stream.flush().await?;
        let mut header = [0u8; HEADER_LEN];
        stream.read_exact(&mut header).await?;
        let len = handshake::parse_header(&header)?;
        let mut body = vec![0u8; len]; // len ≤ u16::MAX by construction
        stream.read_exact(&mut body).await?;
        Ok::<_, LinkError>(handshake::decode_body(&body, &opts.password)?)
    };
    let meta = tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange)
        .await
        .map_err(|_| LinkError::HandshakeTimeout)??;
    if !opts.pinned_keys.is_empty() && !opts.pinned_keys.contains(&meta.public_key) {
        return Err(LinkError::PinnedKeyMismatch);
    }
    if meta.public_key == id.public_key() {
        return Err(LinkError::LinkToSelf);
    }
    Ok((meta, opts.priority.max(meta.priority)))
}

#[derive(Default)]
struct MonitorState {
    keepalive_at: Option<Instant>,
    deadline: Option<Instant>,
}

/// Shared liveness state of one link (ironwood `peerMonitor`).
#[derive(Default)]
struct Monitor {
    state: Mutex<MonitorState>,
    deadline_changed: Notify,
    keepalive_changed: Notify,
}

fn is_ack_only(t: FrameType) -> bool {
    matches!(t, FrameType::Dummy | FrameType::KeepAlive)
}

impl Monitor {
    fn lock(&self) -> std::sync::MutexGuard<'_, MonitorState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sent(&self, t: FrameType) {
        let mut st = self.lock();
        st.keepalive_at = None;
        if st.deadline.is_none() && !is_ack_only(t) {
            st.deadline = Some(Instant::now() + PEER_TIMEOUT);
            drop(st);
            self.deadline_changed.notify_one();
        }
    }

    fn recv(&self, t: FrameType) {
        let mut st = self.lock();
        st.deadline = None;
        if st.keepalive_at.is_none() && !is_ack_only(t) {
            st.keepalive_at = Some(Instant::now() + PEER_KEEPALIVE_DELAY);
            drop(st);
            self.keepalive_changed.notify_one();
        }
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Reads frames until error, validating and handing each to `deliver`.
async fn read_loop<R, F>(
    mut rd: R,
    monitor: Arc<Monitor>,
    self_key: PublicKey,
    peer_key: PublicKey,
    max_size: u64,
    mut deliver: F,
) -> Result<(), LinkError>
where
    R: AsyncRead + Unpin,
    F: FnMut(PeerMessage) -> bool,
{
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        // Process every complete frame already buffered.
        let mut consumed = 0;
        loop {
            let (len, n) = match parse_uvarint(&buf[consumed..]) {
                UvarintParse::Done(len, n) => (len, n),
                UvarintParse::Incomplete => break,
                UvarintParse::Overflow => return Err(LinkError::BadLength),
            };
            if len > max_size {
                return Err(LinkError::Oversized(len));
            }
            let len = len as usize;
            if buf.len() - consumed - n < len {
                break;
            }
            let frame = &buf[consumed + n..consumed + n + len];
            consumed += n + len;
            let msg = PeerMessage::decode(frame)?;
            monitor.recv(msg.frame_type());
            match &msg {
                PeerMessage::SigRes(res) if !res.check(&self_key, &peer_key) => {
                    return Err(LinkError::BadSignature(FrameType::SigRes));
                }
                PeerMessage::Announce(ann) if !ann.check() => {
                    return Err(LinkError::BadSignature(FrameType::Announce));
                }
                PeerMessage::Dummy | PeerMessage::KeepAlive => continue,
                _ => {}
            }
            if !deliver(msg) {
                return Err(LinkError::Shutdown);
            }
        }
        buf.drain(..consumed);
        let deadline = monitor.lock().deadline;
        tokio::select! {
            r = rd.read(&mut chunk) => {
                let n = r?;
                if n == 0 {
                    return Err(LinkError::Closed);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            _ = monitor.deadline_changed.notified() => {}
            _ = sleep_opt(deadline) => return Err(LinkError::Timeout),
        }
    }
}

/// The routed-packet queue shared between the router and a link's writer.
#[derive(Default)]
struct SharedQueue {
    queue: Mutex<PacketQueue>,
    ready: Notify,
}

impl SharedQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, PacketQueue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Handle the node uses to queue messages on a running link.
#[derive(Clone)]
pub struct LinkSender {
    direct: mpsc::UnboundedSender<PeerMessage>,
    queue: Arc<SharedQueue>,
}

impl LinkSender {
    /// Queues a message: routed packets through the packet queue, anything
    /// else directly. Returns `false` once the link's writer has stopped.
    pub fn send(&self, msg: PeerMessage) -> bool {
        if self.direct.is_closed() {
            return false;
        }
        if flow_keys(&msg).is_some() {
            self.queue.lock().push(msg, std::time::Instant::now());
            self.queue.ready.notify_one();
            true
        } else {
            self.direct.send(msg).is_ok()
        }
    }

    /// Bytes waiting in the packet queue.
    pub fn queued_bytes(&self) -> usize {
        self.queue.lock().size()
    }

    /// Packets the queue has dropped.
    pub fn dropped(&self) -> u64 {
        self.queue.lock().dropped()
    }
}

/// The writer's end of a [`LinkSender`].
pub struct LinkReceiver {
    direct: mpsc::UnboundedReceiver<PeerMessage>,
    queue: Arc<SharedQueue>,
}

/// A connected sender/receiver pair for one link.
pub fn channel() -> (LinkSender, LinkReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queue = Arc::new(SharedQueue::default());
    (
        LinkSender {
            direct: tx,
            queue: queue.clone(),
        },
        LinkReceiver { direct: rx, queue },
    )
}

/// Writes queued messages (direct ones first, then routed packets oldest
/// first), flushing whenever both drain, and sends keepalives when the
/// monitor asks for them.
async fn write_loop<W>(
    wr: W,
    monitor: Arc<Monitor>,
    mut rx: LinkReceiver,
    max_size: u64,
) -> Result<(), LinkError>
where
    W: AsyncWrite + Unpin,
{
    let mut wr = BufWriter::new(wr);
    let mut frame = Vec::new();
    let mut pending: Option<PeerMessage> = None;
    loop {
        let mut wrote = false;
        loop {
            let msg = match pending.take() {
                Some(m) => m,
                None => match rx.direct.try_recv() {
                    Ok(m) => m,
                    Err(_) => match rx.queue.lock().pop() {
                        Some(m) => m,
                        None => break,
                    },
                },
            };
            if msg.body_len() as u64 <= max_size {
                frame.clear();
                msg.encode_frame(&mut frame);
                monitor.sent(msg.frame_type());
                wr.write_all(&frame).await?;
                wrote = true;
            }
        }
        if wrote {
            wr.flush().await?;
        }
        let keepalive_at = monitor.lock().keepalive_at;
        tokio::select! {
            m = rx.direct.recv() => match m {
                Some(m) => pending = Some(m),
                None => return Ok(()),
            },
            _ = rx.queue.ready.notified() => {}
            _ = monitor.keepalive_changed.notified() => {}
            _ = sleep_opt(keepalive_at) => pending = Some(PeerMessage::KeepAlive),
        }
    }
}

/// Runs an established link (after [`handshake()`]) until it fails or the
/// outbound queue is closed. `deliver` receives every validated non-keepalive
/// message and returns `false` to stop the link.
pub async fn run<S, F>(
    stream: S,
    self_key: PublicKey,
    peer_key: PublicKey,
    rx: LinkReceiver,
    deliver: F,
) -> Result<(), LinkError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
    F: FnMut(PeerMessage) -> bool,
{
    let (rd, wr) = tokio::io::split(stream);
    let monitor = Arc::new(Monitor::default());
    let reader = read_loop(
        rd,
        monitor.clone(),
        self_key,
        peer_key,
        PEER_MAX_MESSAGE_SIZE,
        deliver,
    );
    let writer = write_loop(wr, monitor, rx, PEER_MAX_MESSAGE_SIZE);
    tokio::pin!(reader);
    tokio::pin!(writer);
    tokio::select! {
        r = &mut reader => r,
        r = &mut writer => r.and(Err(LinkError::Shutdown)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::SigReq;

    #[tokio::test]
    async fn handshake_over_duplex() {
        let a = Identity::from_seed(&[1; 32]);
        let b = Identity::from_seed(&[2; 32]);
        let (mut x, mut y) = tokio::io::duplex(4096);
        let oa = LinkOptions {
            password: b"pw".to_vec(),
            priority: 1,
            ..Default::default()
        };
        let ob = LinkOptions {
            password: b"pw".to_vec(),
            priority: 4,
            pinned_keys: vec![a.public_key()],
        };
        let (ra, rb) = tokio::join!(handshake(&mut x, &a, &oa), handshake(&mut y, &b, &ob));
        let (ma, pa) = ra.unwrap();
        let (mb, pb) = rb.unwrap();
        assert_eq!(ma.public_key, b.public_key());
        assert_eq!(mb.public_key, a.public_key());
        assert_eq!((pa, pb), (4, 4));
    }

    #[tokio::test]
    async fn handshake_rejects_wrong_password_pin_and_self() {
        let a = Identity::from_seed(&[1; 32]);
        let b = Identity::from_seed(&[2; 32]);
        let (mut x, mut y) = tokio::io::duplex(4096);
        let oa = LinkOptions {
            password: b"one".to_vec(),
            ..Default::default()
        };
        let ob = LinkOptions {
            password: b"two".to_vec(),
            ..Default::default()
        };
        let (ra, rb) = tokio::join!(handshake(&mut x, &a, &oa), handshake(&mut y, &b, &ob));
        assert!(matches!(
            ra,
            Err(LinkError::Handshake(HandshakeError::IncorrectPassword))
        ));
        assert!(rb.is_err());

        let none = LinkOptions::default();
        let (mut x, mut y) = tokio::io::duplex(4096);
        let pin = LinkOptions {
            pinned_keys: vec![[9; 32]],
            ..Default::default()
        };
        let (ra, _) = tokio::join!(handshake(&mut x, &a, &pin), handshake(&mut y, &b, &none));
        assert!(matches!(ra, Err(LinkError::PinnedKeyMismatch)));

        let (mut x, mut y) = tokio::io::duplex(4096);
        let (ra, rb) = tokio::join!(handshake(&mut x, &a, &none), handshake(&mut y, &a, &none));
        assert!(matches!(ra, Err(LinkError::LinkToSelf)));
        assert!(matches!(rb, Err(LinkError::LinkToSelf)));
    }

    #[tokio::test(start_paused = true)]
    async fn silent_peer_times_out_and_keepalive_is_sent() {
        let (x, mut y) = tokio::io::duplex(1 << 16);
        let (tx, rx) = channel();
        let link = tokio::spawn(run(x, [1; 32], [2; 32], rx, |_| true));
        // Remote sends a SigReq: we must answer with a keepalive after 1 s.
        let mut f = Vec::new();
        PeerMessage::SigReq(SigReq { seq: 1, nonce: 2 }).encode_frame(&mut f);
        y.write_all(&f).await.unwrap();
        let mut got = [0u8; 2];
        let t0 = Instant::now();
        y.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [1, 1]);
        assert!(t0.elapsed() >= PEER_KEEPALIVE_DELAY);
        // We send a protocol frame and the remote stays silent: 3 s timeout.
        assert!(tx.send(PeerMessage::SigReq(SigReq { seq: 3, nonce: 4 })));
        let res = link.await.unwrap();
        assert!(matches!(res, Err(LinkError::Timeout)), "{res:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn oversized_and_unknown_frames_close() {
        for bytes in [vec![0xff, 0xff, 0x7f], vec![1, 42], vec![0]] {
            let (x, mut y) = tokio::io::duplex(1 << 16);
            let (_tx, rx) = channel();
            let link = tokio::spawn(run(x, [1; 32], [2; 32], rx, |_| true));
            y.write_all(&bytes).await.unwrap();
            assert!(link.await.unwrap().is_err());
        }
    }
}
