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

/// Accepts connections until `stop` fires, then closes the endpoint and waits for sessions.
pub async fn serve(server: Arc<Server>, endpoint: quinn::Endpoint, stop: CancellationToken) {
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
        let (server, current) = (server.clone(), current.clone());
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
            let remote = conn.remote_address().to_string();
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
