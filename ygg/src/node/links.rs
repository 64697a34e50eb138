//! Links from the node's side (yggdrasil-go `core/link.go`): the accept
//! loop for each listener, the dial loop for each configured peer with its
//! redial backoff, and [`serve_conn`], which runs one connection (TCP or
//! TLS) from the Yggdrasil handshake to teardown.
//!
//! A live link is registered in the node's link table and with the core
//! task; [`LinkGuard`] undoes both however the link ends, including a
//! dialer being cancelled when its peer is removed at run time. Tree and
//! path messages go to the core as [`CoreRequest::Message`]; traffic takes
//! the bounded traffic queue and is dropped (and counted) when the core
//! falls [`LINK_TRAFFIC_QUEUE_LEN`](super::LINK_TRAFFIC_QUEUE_LEN) packets
//! behind, so a link reader never blocks.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::actor::CoreRequest;
use super::{lock, Inner, PeerInfo, DIAL_TIMEOUT, MAX_BACKOFF_EXPONENT};
use crate::link::{self, LinkError, LinkOptions};
use crate::proto::PeerMessage;
use crate::router::LinkId;
use crate::uri::{PeerUri, Scheme};

/// Pause after a failed `accept` (out of file descriptors, say) before the
/// listener is polled again, so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Handshakes and runs one connection to completion. Returns whether the
/// handshake succeeded, and the error that ended the link.
async fn serve_conn<S>(
    inner: Arc<Inner>,
    mut stream: S,
    remote: SocketAddr,
    opts: LinkOptions,
    inbound: bool,
    uri: Option<String>,
) -> (bool, LinkError)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let hs = tokio::select! {
        r = link::handshake(&mut stream, &inner.id, &opts) => r,
        _ = inner.cancel.cancelled() => Err(LinkError::Shutdown),
    };
    let (meta, priority) = match hs {
        Ok(v) => v,
        Err(e) => return (false, e),
    };
    let link = inner.next_link.fetch_add(1, Ordering::Relaxed);
    let key = meta.public_key;
    info!(
        "connected {}: {}@{remote}",
        if inbound { "inbound" } else { "outbound" },
        crate::address::ipv6_for_key(&key)
    );
    lock(&inner.links).insert(
        link,
        PeerInfo {
            link,
            key,
            remote,
            inbound,
            priority,
            uri,
            up_since: SystemTime::now(),
        },
    );
    // Unregisters the link however this future ends, including being
    // dropped when its peer is removed at run time.
    let _guard = LinkGuard {
        inner: inner.clone(),
        link,
    };
    let (tx, rx) = link::channel();
    let core_tx = inner.core_tx.clone();
    let _ = core_tx.send(CoreRequest::Add {
        link,
        key,
        prio: priority,
        tx,
    });
    let deliver_tx = core_tx.clone();
    let inner2 = inner.clone();
    let deliver = move |msg| {
        if matches!(msg, PeerMessage::Traffic(_)) {
            match inner2.traffic_tx.try_send((link, msg)) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    inner2.traffic_dropped.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        } else {
            deliver_tx.send(CoreRequest::Message { link, msg }).is_ok()
        }
    };
    let err = tokio::select! {
        r = link::run(stream, inner.id.public_key(), key, rx, deliver) => match r {
            Ok(()) => LinkError::Closed,
            Err(e) => e,
        },
        _ = inner.cancel.cancelled() => LinkError::Shutdown,
    };
    info!("disconnected {remote}: {err}");
    (true, err)
}

/// Removes a link from the router and the link table when dropped.
struct LinkGuard {
    inner: Arc<Inner>,
    link: LinkId,
}

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let _ = self
            .inner
            .core_tx
            .send(CoreRequest::Remove { link: self.link });
        lock(&self.inner.links).remove(&self.link);
    }
}

/// Accepts connections on `listener` (plain TCP or TLS, by `uri`'s scheme)
/// and serves each inbound link in its own task until the node stops.
pub(super) async fn accept_loop(inner: Arc<Inner>, listener: TcpListener, uri: PeerUri) {
    let opts = LinkOptions {
        pinned_keys: Vec::new(),
        password: uri.password.clone(),
        priority: uri.priority,
    };
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = inner.cancel.cancelled() => return,
        };
        match accepted {
            Ok((stream, remote)) => {
                let _ = stream.set_nodelay(true);
                let inner2 = inner.clone();
                let opts = opts.clone();
                let tls = match uri.scheme {
                    Scheme::Tls => inner.tls_server.clone(),
                    Scheme::Tcp => None,
                };
                inner.tasks.spawn(async move {
                    let err = match tls {
                        None => serve_conn(inner2, stream, remote, opts, true, None).await.1,
                        Some(cfg) => {
                            let acc = tokio_rustls::TlsAcceptor::from(cfg);
                            match tokio::time::timeout(
                                crate::tls::TLS_HANDSHAKE_TIMEOUT,
                                acc.accept(stream),
                            )
                            .await
                            {
                                Ok(Ok(s)) => {
                                    serve_conn(inner2, s, remote, opts, true, None).await.1
                                }
                                Ok(Err(e)) => e.into(),
                                Err(_) => LinkError::HandshakeTimeout,
                            }
                        }
                    };
                    debug!("inbound link ended: {err}");
                });
            }
            Err(e) => {
                debug!("accept on {uri}: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                    _ = inner.cancel.cancelled() => return,
                }
            }
        }
    }
}

/// Dials once (TCP, then TLS for `tls://`) and runs the link.
async fn dial_once(
    inner: &Arc<Inner>,
    uri: &PeerUri,
    opts: &LinkOptions,
) -> Result<(bool, LinkError), String> {
    let addr = uri.socket_addr_string();
    let stream = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(&addr))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let remote = stream.peer_addr().map_err(|e| e.to_string())?;
    let label = Some(uri.to_string());
    match uri.scheme {
        Scheme::Tls => {
            let cfg = inner.tls_client.clone();
            let name = crate::tls::server_name(&uri.host, uri.sni.as_deref())
                .map_err(|e| e.to_string())?;
            let conn = tokio_rustls::TlsConnector::from(cfg);
            let tls = tokio::time::timeout(
                crate::tls::TLS_HANDSHAKE_TIMEOUT,
                conn.connect(name, stream),
            )
            .await
            .map_err(|_| "tls handshake timed out".to_string())?
            .map_err(|e| e.to_string())?;
            Ok(serve_conn(inner.clone(), tls, remote, opts.clone(), false, label).await)
        }
        Scheme::Tcp => {
            Ok(serve_conn(inner.clone(), stream, remote, opts.clone(), false, label).await)
        }
    }
}

/// Dials `uri` until its peer is removed or the node stops, redialling
/// with yggdrasil-go's backoff: `1 s << n` after the n-th consecutive
/// failure (n ≤ [`MAX_BACKOFF_EXPONENT`]), capped by the URI's
/// `maxbackoff` or else `max_backoff`; a completed handshake resets n.
pub(super) async fn dial_loop(
    inner: Arc<Inner>,
    uri: PeerUri,
    max_backoff: Duration,
    cancel: CancellationToken,
) {
    let max_backoff = uri.max_backoff.unwrap_or(max_backoff);
    let opts = LinkOptions {
        pinned_keys: uri.pinned_keys.clone(),
        password: uri.password.clone(),
        priority: uri.priority,
    };
    let mut backoff: u32 = 0;
    loop {
        if cancel.is_cancelled() {
            return;
        }
        let r = tokio::select! {
            r = dial_once(&inner, &uri, &opts) => r,
            _ = cancel.cancelled() => return,
        };
        if matches!(r, Ok((true, _))) {
            backoff = 0;
        }
        if backoff < MAX_BACKOFF_EXPONENT {
            backoff += 1;
        }
        let wait = Duration::from_secs(1u64 << backoff).min(max_backoff);
        if cancel.is_cancelled() {
            return;
        }
        match r {
            Ok((true, err)) => inner.dials.ended(&uri, &err.to_string()),
            Ok((false, err)) => inner.dials.failed(&uri, &format!("handshake: {err}"), wait),
            Err(e) => inner.dials.failed(&uri, &e, wait),
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = cancel.cancelled() => return,
        }
    }
}
