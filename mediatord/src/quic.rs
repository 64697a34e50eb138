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

use crate::events::{self, Event};
use crate::handlers::Server;
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

/// Binds a QUIC endpoint on `addr`.
pub fn bind(seed: &[u8; 32], addr: SocketAddr) -> Result<quinn::Endpoint> {
    let settings = mediator_quic::QuicSettings::default();
    let server = mediator_quic::server_config(seed, &settings).context("QUIC server config")?;
    let endpoint_cfg = mediator_quic::endpoint_config(&settings).context("QUIC endpoint config")?;
    let socket = std::net::UdpSocket::bind(addr).with_context(|| format!("binding UDP {addr}"))?;
    let runtime = quinn::default_runtime().context("no async runtime for quinn")?;
    quinn::Endpoint::new(endpoint_cfg, Some(server), socket, runtime)
        .with_context(|| format!("starting QUIC on {addr}"))
}

/// Names a connection's peer for logs and the control API and says which source it counts
/// under: the UDP address and its IP (or /64) on plain QUIC, the node key in hex over
/// Yggdrasil.
pub type RemoteName = Arc<dyn Fn(SocketAddr) -> Peer + Send + Sync>;

/// Names peers by their UDP address.
pub fn by_address() -> RemoteName {
    Arc::new(|a: SocketAddr| Peer {
        remote: a.to_string(),
        source: source_of(a.ip()),
    })
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
        let Some(slot) = ConnectionSlot::take(&per_source, &peer.source, &server) else {
            events::note(
                Event::ConnectionRefused,
                &peer.source,
                "too many QUIC connections from this source",
            );
            incoming.refuse();
            continue;
        };
        let (server, current, name) = (server.clone(), current.clone(), name.clone());
        tasks.spawn(async move {
            let _slot = slot;
            let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await {
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
            let peer = name(conn.remote_address());
            let remote = peer.remote.clone();
            tracing::debug!(remote, "QUIC connection");
            if let Some(old) = current
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(remote.clone(), conn.clone())
            {
                old.close(0u32.into(), b"Timed out");
            }
            serve_connection(server, conn.clone(), peer).await;
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

/// A connection counted under its source; the count drops when this does.
struct ConnectionSlot {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    source: String,
}

impl ConnectionSlot {
    /// Counts one more connection from `source`, unless it has its limit already.
    fn take(
        counts: &Arc<Mutex<HashMap<String, usize>>>,
        source: &str,
        server: &Server,
    ) -> Option<ConnectionSlot> {
        let mut map = counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(source.to_string()).or_default();
        if *n >= server.limits.max_connections_per_source {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            counts: counts.clone(),
            source: source.to_string(),
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
