//! The stack on tokio: [`Endpoint`] owns a [`Stack`] behind a mutex (never held across an
//! `.await`), takes the messages the node received ([`Endpoint::handle_message`]), hands the
//! packets to send to an [`Outbound`] (the node), and runs the timers on a driver task.
//! Applications get a [`Listener`] per port and [`Stream`]s that are `AsyncRead` +
//! `AsyncWrite`; dropping a stream releases its connection (an RST if it was still open),
//! `shutdown` closes it gracefully (FIN once everything is acknowledged). A stream's
//! [`Control`] lets its owner vouch for it ([`Control::protect`], see [`crate::stack`]) after
//! the stream has been split.

use crate::conn::ConnError;
use crate::stack::{Budget, ConnId, Key, Stack, StackError};
use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// Where the endpoint's packets go: the node's encrypted sessions. `send` must not block
/// (drop the packet when the node's queue is full; the connection retransmits).
pub trait Outbound: Send + Sync + 'static {
    fn send(&self, to: Key, packet: Vec<u8>);
}

#[derive(Default)]
struct Shared {
    stack: Stack,
    readers: HashMap<ConnId, Waker>,
    writers: HashMap<ConnId, Waker>,
    acceptors: HashMap<u16, Waker>,
}

struct Inner {
    shared: Mutex<Shared>,
    out: Box<dyn Outbound>,
    /// Wakes the driver when a deadline may have moved.
    timers: Arc<Notify>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends what the stack queued and lets the driver look at the deadlines again.
    fn flush(&self, s: &mut Shared) {
        while let Some((to, p)) = s.stack.poll_transmit() {
            self.out.send(to, p);
        }
        self.timers.notify_one();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The driver waits on this; it finds the endpoint gone and ends.
        self.timers.notify_one();
    }
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// The ygg_stream endpoint of one node. Cheap to clone.
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

impl Endpoint {
    /// An endpoint sending through `out`; spawns its timer driver on the current runtime,
    /// which ends when the last clone of the endpoint is dropped.
    pub fn new(out: impl Outbound, seed: u64) -> Endpoint {
        Endpoint::with_budget(out, seed, Budget::default())
    }

    /// An endpoint whose connections buffer at most `budget` together.
    pub fn with_budget(out: impl Outbound, seed: u64, budget: Budget) -> Endpoint {
        let inner = Arc::new(Inner {
            shared: Mutex::new(Shared {
                stack: Stack::with_budget(seed, budget),
                ..Shared::default()
            }),
            out: Box::new(out),
            timers: Arc::new(Notify::new()),
        });
        tokio::spawn(drive(Arc::downgrade(&inner), inner.timers.clone()));
        Endpoint { inner }
    }

    /// Handles a ygg_stream message the node received from `from`.
    pub fn handle_message(&self, from: Key, msg: &[u8]) {
        let mut s = self.inner.lock();
        let id = s.stack.on_message(from, msg, now());
        if let Some(id) = id {
            if let Some(w) = s.readers.remove(&id) {
                w.wake();
            }
            if let Some(w) = s.writers.remove(&id) {
                w.wake();
            }
            if let Some(t) = s.stack.tuple(id) {
                if let Some(w) = s.acceptors.remove(&t.local_port) {
                    w.wake();
                }
            }
        }
        self.inner.flush(&mut s);
    }

    /// Accepts connections on `port`.
    pub fn listen(&self, port: u16) -> Listener {
        self.inner.lock().stack.listen(port);
        Listener {
            inner: self.inner.clone(),
            port,
        }
    }

    /// Connects to `remote`'s `port`; resolves once the handshake is done (or failed).
    pub async fn connect(&self, remote: Key, port: u16) -> io::Result<Stream> {
        let id = {
            let mut s = self.inner.lock();
            let id = s.stack.connect(remote, port, now()).map_err(|e| match e {
                StackError::NoPort => io::Error::new(io::ErrorKind::AddrInUse, e),
                StackError::TooMany => io::Error::new(io::ErrorKind::OutOfMemory, e),
            })?;
            self.inner.flush(&mut s);
            id
        };
        let stream = Stream {
            inner: self.inner.clone(),
            id,
        };
        poll_fn(|cx| {
            let mut s = self.inner.lock();
            let Some(c) = s.stack.conn(id) else {
                return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
            };
            if c.is_established() {
                return Poll::Ready(Ok(()));
            }
            if c.is_closed() {
                return Poll::Ready(Err(to_io(c.error())));
            }
            s.writers.insert(id, cx.waker().clone());
            Poll::Pending
        })
        .await?;
        Ok(stream)
    }

    /// Connections in the stack (for leak checks).
    pub fn connections(&self) -> usize {
        self.inner.lock().stack.len()
    }

    /// Bytes all connections hold in their buffers (see [`Stack::buffered`]).
    pub fn buffered(&self) -> usize {
        self.inner.lock().stack.buffered()
    }
}

/// The io error for a connection that ended with `e`.
fn to_io(e: Option<ConnError>) -> io::Error {
    let kind = match e {
        Some(ConnError::Refused) => io::ErrorKind::ConnectionRefused,
        Some(ConnError::ConnectTimeout | ConnError::Stalled | ConnError::AcceptTimeout) => {
            io::ErrorKind::TimedOut
        }
        Some(ConnError::Aborted | ConnError::CloseTimeout) => io::ErrorKind::ConnectionAborted,
        Some(ConnError::Reset) | None => io::ErrorKind::ConnectionReset,
    };
    match e {
        Some(e) => io::Error::new(kind, e),
        None => kind.into(),
    }
}

/// Runs the stack's timers until the endpoint is gone.
async fn drive(inner: Weak<Inner>, timers: Arc<Notify>) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let notified = timers.notified();
        let deadline = strong.lock().stack.deadline();
        // Hold no strong reference while waiting, so the endpoint can go away (its drop
        // notifies).
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        drop(strong);
        tokio::select! {
            _ = notified => {}
            _ = sleep => {}
        }
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let mut s = strong.lock();
        let t = now();
        if s.stack.deadline().is_some_and(|d| d <= t) {
            // Only the connections whose timers ran have news for their tasks.
            for id in s.stack.on_timeout(t) {
                if let Some(w) = s.readers.remove(&id) {
                    w.wake();
                }
                if let Some(w) = s.writers.remove(&id) {
                    w.wake();
                }
            }
            strong.flush(&mut s);
        }
    }
}

/// Established connections arriving on one port.
pub struct Listener {
    inner: Arc<Inner>,
    port: u16,
}

impl Listener {
    /// The next connection, and the key of the node it comes from.
    pub async fn accept(&self) -> Stream {
        poll_fn(|cx| {
            let mut s = self.inner.lock();
            match s.stack.accept(self.port) {
                Some(id) => Poll::Ready(Stream {
                    inner: self.inner.clone(),
                    id,
                }),
                None => {
                    s.acceptors.insert(self.port, cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

/// One connection as a byte stream.
pub struct Stream {
    inner: Arc<Inner>,
    id: ConnId,
}

impl Stream {
    /// The remote node's key and port.
    pub fn peer(&self) -> Option<(Key, u16)> {
        let s = self.inner.lock();
        s.stack.tuple(self.id).map(|t| (t.remote, t.remote_port))
    }

    /// Ends the connection at once with an RST.
    pub fn abort(&self) {
        self.control().abort();
    }

    /// A handle on the connection that outlives splitting the stream.
    pub fn control(&self) -> Control {
        Control {
            inner: Arc::downgrade(&self.inner),
            id: self.id,
        }
    }
}

/// What an owner may do to its connection besides reading and writing, from anywhere.
/// Does nothing once the connection or the endpoint is gone.
#[derive(Clone)]
pub struct Control {
    inner: Weak<Inner>,
    id: ConnId,
}

impl Control {
    /// Vouches for the connection (or stops): see [`Stack::protect`].
    pub fn protect(&self, protected: bool) {
        if let Some(inner) = self.inner.upgrade() {
            let mut s = inner.lock();
            s.stack.protect(self.id, protected);
            // It may write again at once if the shared budget was what held it.
            if let Some(w) = s.writers.remove(&self.id) {
                w.wake();
            }
        }
    }

    /// Ends the connection at once with an RST.
    pub fn abort(&self) {
        if let Some(inner) = self.inner.upgrade() {
            let mut s = inner.lock();
            if let Some(c) = s.stack.conn(self.id) {
                c.abort();
            }
            s.stack.collect(self.id);
            inner.flush(&mut s);
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut s = self.inner.lock();
        let Some(c) = s.stack.conn(self.id) else {
            return Poll::Ready(Ok(()));
        };
        let n = c.read(buf.initialize_unfilled());
        if n > 0 {
            buf.advance(n);
            s.stack.collect(self.id);
            self.inner.flush(&mut s);
            return Poll::Ready(Ok(()));
        }
        if c.is_eof() {
            return Poll::Ready(Ok(()));
        }
        if c.is_closed() {
            let e = c.error();
            return Poll::Ready(Err(to_io(e)));
        }
        s.readers.insert(self.id, cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut s = self.inner.lock();
        let Some(c) = s.stack.conn(self.id) else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        if c.is_closed() {
            let e = c.error();
            return Poll::Ready(Err(to_io(e)));
        }
        let n = s.stack.write(self.id, data, now()).unwrap_or(0);
        if n > 0 {
            self.inner.flush(&mut s);
            return Poll::Ready(Ok(n));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // Woken by the connection's next packet: a write that waits holds unacknowledged
        // bytes (its own, or its floor's worth under a spent budget), so an ACK, a window
        // update or the stall limit is due.
        s.writers.insert(self.id, cx.waker().clone());
        Poll::Pending
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.inner.lock();
        if let Some(c) = s.stack.conn(self.id) {
            c.close(now());
        }
        s.stack.collect(self.id);
        self.inner.flush(&mut s);
        Poll::Ready(Ok(()))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let mut s = self.inner.lock();
        s.readers.remove(&self.id);
        s.writers.remove(&self.id);
        // A stream shut down first finishes its close on its own; any other is aborted.
        let closing = s.stack.conn(self.id).is_some_and(|c| c.is_closing());
        if closing {
            s.stack.disown(self.id);
        } else {
            s.stack.release(self.id);
        }
        self.inner.flush(&mut s);
    }
}

#[cfg(test)]
mod tests;
