//! The QUIC transport on plain UDP: a quinn endpoint whose every incoming bidirectional
//! stream becomes one session. TLS and transport parameters come from `mediator-quic`
//! (yggquic-compatible: no ALPN, a 64-character SNI tolerated, no client certificate).
//! A new connection from the same remote identity replaces the old one, as yggquic does.

use crate::handlers::Server;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::net::SocketAddr;
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

/// Names a connection's peer for logs and the control API: the UDP address on plain QUIC,
/// the node key in hex over Yggdrasil.
pub type RemoteName = Arc<dyn Fn(SocketAddr) -> String + Send + Sync>;

/// Names peers by their UDP address.
pub fn by_address() -> RemoteName {
    Arc::new(|a: SocketAddr| a.to_string())
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
        socket
            .key_of(&a)
            .map(hex::encode)
            .unwrap_or_else(|| a.to_string())
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
    let mut tasks = JoinSet::new();
    loop {
        let incoming = tokio::select! {
            _ = stop.cancelled() => break,
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => break,
            },
        };
        let (server, current, name) = (server.clone(), current.clone(), name.clone());
        tasks.spawn(async move {
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
            let remote = name(conn.remote_address());
            tracing::debug!(remote, "QUIC connection");
            if let Some(old) = current
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(remote.clone(), conn.clone())
            {
                old.close(0u32.into(), b"Timed out");
            }
            serve_connection(server, conn.clone(), remote.clone()).await;
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

/// Every bidirectional stream of a connection is a session.
pub async fn serve_connection(server: Arc<Server>, conn: quinn::Connection, remote: String) {
    let mut sessions = JoinSet::new();
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                sessions.spawn(crate::session::run(
                    server.clone(),
                    recv,
                    send,
                    remote.clone(),
                ));
            }
            Err(e) => {
                tracing::debug!(remote, error = %e, "connection ended");
                break;
            }
        }
        while sessions.try_join_next().is_some() {}
    }
    while sessions.join_next().await.is_some() {}
}
