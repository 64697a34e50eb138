//! The QUIC transport on plain UDP: a quinn endpoint whose every incoming bidirectional
//! stream becomes one session. TLS and transport parameters come from `mediator-quic`
//! (yggquic-compatible: no ALPN, a 64-character SNI tolerated, no client certificate).
//! A new connection from the same remote identity replaces the old one, as yggquic does.
//!
//! Per-source limits count by the source of [`Peer`]: on plain UDP the IP address (an IPv6
//! /64, the block one host is usually given), not the address and port, so one host cannot
//! take every session by opening many connections; over Yggdrasil the node key. A source
//! past [`Limits::max_connections_per_source`](crate::limits::Limits::max_connections_per_source)
//! connections is refused before the handshake, which costs it a round trip and us nothing.
//! All connections together are bounded by [`crate::connections`], which keeps members'.

use crate::events::{self, Event};
use crate::server::Server;
use crate::session::Peer;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A handshake that does not complete in this time is dropped (yggquic's
/// HandshakeIdleTimeout; quinn has no separate knob for it).
pub const HANDSHAKE_TIMEOUT: std::time::Duration =
    mediator_quic::settings::YGGQUIC_HANDSHAKE_IDLE_TIMEOUT;

/// The UDP receive buffer the daemon asks the kernel for. The kernel default (208 KiB on
/// Linux) overflows within a millisecond of a flood of QUIC Initials from one source, and the
/// datagrams it drops are everyone's: honest handshakes and acknowledgements alike, which
/// showed as a legitimate p99 of one second (the retransmission timer) under a GET_NONCE
/// flood. 8 MiB holds about 6,000 full-size datagrams, several milliseconds of a saturated
/// gigabit link, enough for the receive loop to catch up after a scheduling hiccup.
pub const UDP_RECV_BUFFER: usize = 8 * 1024 * 1024;

/// Binds a QUIC endpoint on `addr`.
pub fn bind(seed: &[u8; 32], addr: SocketAddr) -> Result<quinn::Endpoint> {
    let settings = mediator_quic::QuicSettings::default();
    let server = mediator_quic::server_config(seed, &settings).context("QUIC server config")?;
    let endpoint_cfg = mediator_quic::endpoint_config(&settings).context("QUIC endpoint config")?;
    let socket = std::net::UdpSocket::bind(addr).with_context(|| {
        format!("binding UDP {addr} (another process holds it? choose one with --quic-listen or [quic] listen)")
    })?;
    let got = grow_recv_buffer(&socket, UDP_RECV_BUFFER);
    if got < UDP_RECV_BUFFER {
        tracing::warn!(
            "UDP {addr}: the kernel gave a receive buffer of {} KiB, not the {} KiB asked for; \
             floods will drop honest datagrams. Raise it with `sysctl -w net.core.rmem_max={}` \
             (or run with CAP_NET_ADMIN)",
            got / 1024,
            UDP_RECV_BUFFER / 1024,
            UDP_RECV_BUFFER
        );
    }
    let runtime = quinn::default_runtime().context("no async runtime for quinn")?;
    quinn::Endpoint::new(endpoint_cfg, Some(server), socket, runtime)
        .with_context(|| format!("starting QUIC on {addr}"))
}

/// Asks for a receive buffer of `want` bytes on `socket` and returns what the kernel reports
/// afterwards. Unprivileged processes are capped at `net.core.rmem_max`; with CAP_NET_ADMIN
/// (root) `SO_RCVBUFFORCE` goes past the cap. Linux reports twice the size it was asked for
/// (the other half is its bookkeeping), which still counts as granted here.
pub fn grow_recv_buffer(socket: &std::net::UdpSocket, want: usize) -> usize {
    use nix::sys::socket::{getsockopt, setsockopt, sockopt};
    let got = || getsockopt(socket, sockopt::RcvBuf).unwrap_or(0);
    // Failures leave the buffer as it was; what it is afterwards is what counts.
    let _ = setsockopt(socket, sockopt::RcvBuf, &want);
    if got() < want {
        let _ = setsockopt(socket, sockopt::RcvBufForce, &want);
    }
    got()
}

/// Names a connection's peer for logs and the control API and says which source it counts
/// under: the UDP address and its IP (or /64) on plain QUIC, the node key in hex over
/// Yggdrasil.
pub type RemoteName = Arc<dyn Fn(SocketAddr) -> Peer + Send + Sync>;

/// Names peers by their UDP address.
pub fn by_address() -> RemoteName {
    Arc::new(|a: SocketAddr| Peer::quic(a.to_string(), source_of(a.ip())))
}

/// The source an IP address counts under: IPv4 addresses (IPv4-mapped IPv6 included) as
/// they are, IPv6 addresses by their /64 prefix.
pub fn source_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let prefix = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        },
    }
}

/// Binds a QUIC endpoint on the Yggdrasil node; peers are named by their key.
pub fn bind_yggdrasil(
    seed: &[u8; 32],
    node: Arc<yggnode::Node>,
) -> Result<(quinn::Endpoint, RemoteName)> {
    let settings = mediator_quic::QuicSettings::default();
    let server = mediator_quic::server_config(seed, &settings).context("QUIC server config")?;
    let endpoint_cfg = mediator_quic::endpoint_config(&settings).context("QUIC endpoint config")?;
    let socket = mediator_quic::ygg::YggSocket::new(node);
    let endpoint = mediator_quic::ygg::endpoint(socket.clone(), endpoint_cfg, server)
        .context("starting QUIC over Yggdrasil")?;
    let name: RemoteName = Arc::new(move |a: SocketAddr| {
        let remote = socket
            .key_of(&a)
            .map(hex::encode)
            .unwrap_or_else(|| a.to_string());
        Peer {
            source: remote.clone(),
            remote,
            transport: crate::peer::Transport::YggdrasilQuic,
            member_hook: None,
        }
    });
    Ok((endpoint, name))
}

/// Accepts connections until `stop` fires, then closes the endpoint and waits for sessions.
/// One connection per remote: a new one from the same remote replaces the old (yggquic).
pub async fn serve(
    server: Arc<Server>,
    endpoint: quinn::Endpoint,
    stop: CancellationToken,
    name: RemoteName,
) {
    let current: Arc<Mutex<HashMap<String, quinn::Connection>>> = Arc::default();
    let per_source: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let mut tasks = JoinSet::new();
    loop {
        let incoming = tokio::select! {
            _ = stop.cancelled() => break,
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => break,
            },
        };
        let peer = name(incoming.remote_address());
        if server.blocks.blocks(
            crate::blocks::Kind::Source,
            &peer.source,
            server.clock.now_secs(),
        ) {
            events::note(
                Event::ConnectionRefused,
                &peer.source,
                "source blocked by the operator",
            );
            incoming.refuse();
            continue;
        }
        let Some(slot) = ConnectionSlot::take(&per_source, &peer, &server) else {
            events::note(
                Event::ConnectionRefused,
                &peer.source,
                "too many QUIC connections from this source",
            );
            incoming.refuse();
            continue;
        };
        let Some((place, pushed_out)) = server.quic_connections.admit() else {
            events::note(
                Event::ConnectionRefused,
                &peer.source,
                "every QUIC connection carries a member's session (limits.max_connections)",
            );
            incoming.refuse();
            continue;
        };
        if pushed_out {
            tracing::debug!(
                source = peer.source,
                "QUIC connections at their limit: the oldest without a member's session closed"
            );
        }
        let (server, current, name) = (server.clone(), current.clone(), name.clone());
        tasks.spawn(async move {
            let _slot = slot;
            let evicted = place.evicted.clone();
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming);
            let conn = match tokio::select! {
                h = handshake => h,
                _ = evicted.cancelled() => return,
            } {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "QUIC handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("QUIC handshake timed out");
                    return;
                }
            };
            let mut peer = name(conn.remote_address());
            peer.member_hook = Some(place.member_hook());
            let remote = peer.remote.clone();
            tracing::debug!(remote, "QUIC connection");
            if let Some(old) = current
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(remote.clone(), conn.clone())
            {
                old.close(0u32.into(), b"Timed out");
            }
            let serving = serve_connection(server, conn.clone(), peer);
            tokio::pin!(serving);
            tokio::select! {
                _ = &mut serving => {}
                _ = evicted.cancelled() => {
                    // Pushed out by a newcomer: close, and let the sessions end on their own.
                    conn.close(0u32.into(), b"server full");
                    serving.await;
                }
            }
            let mut map = current.lock().unwrap_or_else(|p| p.into_inner());
            if map
                .get(&remote)
                .is_some_and(|c| c.stable_id() == conn.stable_id())
            {
                map.remove(&remote);
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    endpoint.close(0u32.into(), b"shutting down");
    server.hub.kill_all();
    while tasks.join_next().await.is_some() {}
    endpoint.wait_idle().await;
}

/// A connection counted under its source (and in the metrics); the counts drop when this
/// does.
struct ConnectionSlot {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    source: String,
    _open: crate::metrics::ConnectionGuard,
}

impl ConnectionSlot {
    /// Counts one more connection from `source`, unless it has its limit already.
    fn take(
        counts: &Arc<Mutex<HashMap<String, usize>>>,
        peer: &Peer,
        server: &Server,
    ) -> Option<ConnectionSlot> {
        let source = &peer.source;
        let mut map = counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(source.to_string()).or_default();
        if *n >= server.limits.max_connections_per_source {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            counts: counts.clone(),
            source: source.to_string(),
            _open: server.metrics.connection_opened(peer.transport),
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.source);
            }
        }
    }
}

/// Every bidirectional stream of a connection is a session.
pub async fn serve_connection(server: Arc<Server>, conn: quinn::Connection, peer: Peer) {
    let mut sessions = JoinSet::new();
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                sessions.spawn(crate::session::run(
                    server.clone(),
                    recv,
                    send,
                    peer.clone(),
                ));
            }
            Err(e) => {
                tracing::debug!(remote = peer.remote, error = %e, "connection ended");
                break;
            }
        }
        while sessions.try_join_next().is_some() {}
    }
    while sessions.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The buffer grows past the kernel default to what we ask for, or at least to the cap an
    /// unprivileged process has (`net.core.rmem_max`, doubled in the report).
    #[test]
    fn receive_buffer_grows_to_the_cap() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = grow_recv_buffer(&s, 0);
        let got = grow_recv_buffer(&s, UDP_RECV_BUFFER);
        let cap = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|t| t.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let privileged = nix::unistd::geteuid().is_root();
        let floor = if privileged {
            UDP_RECV_BUFFER
        } else {
            (2 * cap).min(UDP_RECV_BUFFER)
        };
        assert!(got >= floor, "got {got}, before {before}, cap {cap}");
        assert!(got > before);
    }

    #[test]
    fn sources_are_addresses_or_prefixes() {
        assert_eq!(source_of("10.1.2.3".parse().unwrap()), "10.1.2.3");
        assert_eq!(source_of("::ffff:10.1.2.3".parse().unwrap()), "10.1.2.3");
        assert_eq!(
            source_of("2001:db8:1:2:aa:bb:cc:dd".parse().unwrap()),
            source_of("2001:db8:1:2::1".parse().unwrap())
        );
        assert_ne!(
            source_of("2001:db8:1:2::1".parse().unwrap()),
            source_of("2001:db8:1:3::1".parse().unwrap())
        );
    }
}
