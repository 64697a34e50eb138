//! Shared fixtures for the integration tests: a quinn echo server on
//! 127.0.0.1 and a client endpoint.
//!
//! The echo server accepts every connection and every bidirectional stream,
//! reads the stream to its end and writes the bytes back, then finishes the
//! stream. For each connection it reports what the handshake produced.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;

use mediator_quic::{endpoint_config, HandshakeData, QuicSettings};
use tokio::sync::mpsc;

/// Largest stream the echo server reads before answering.
pub const MAX_ECHO_LEN: usize = 4 << 20;

/// Label and length of the keying material both ends export in tests.
pub const EKM_LABEL: &[u8] = b"EXPORTER-mediator-quic-test";
pub const EKM_LEN: usize = 32;

/// What the server learned from one connection attempt.
#[derive(Debug)]
pub enum ServerReport {
    /// Handshake completed.
    Connected {
        /// Our own server glue's handshake data, if the server runs
        /// `mediator_quic::server_config` (quinn's stock config yields a
        /// different type, reported as `None`).
        handshake: Option<HandshakeData>,
        /// Keying material exported on the server side.
        ekm: Option<[u8; EKM_LEN]>,
    },
    /// Handshake failed, with quinn's error.
    Failed(String),
}

pub struct EchoServer {
    pub addr: SocketAddr,
    pub endpoint: quinn::Endpoint,
    reports: mpsc::UnboundedReceiver<ServerReport>,
}

impl EchoServer {
    /// Waits for the report on the next connection attempt.
    pub async fn next_report(&mut self) -> ServerReport {
        tokio::time::timeout(std::time::Duration::from_secs(20), self.reports.recv())
            .await
            .expect("no server report within 20 s")
            .expect("echo server stopped")
    }
}

fn localhost_socket() -> UdpSocket {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind UDP socket on 127.0.0.1")
}

/// Starts an echo server with `server_config` on a fresh 127.0.0.1 port.
pub fn spawn_echo_server(
    server_config: quinn::ServerConfig,
    settings: &QuicSettings,
) -> EchoServer {
    spawn(server_config, settings, false)
}

/// Like [`spawn_echo_server`], but answers every unvalidated first Initial
/// with a Retry packet (RFC 9000 §8.1.2), so clients must check the Retry
/// integrity tag our server glue computes.
pub fn spawn_echo_server_with_retry(
    server_config: quinn::ServerConfig,
    settings: &QuicSettings,
) -> EchoServer {
    spawn(server_config, settings, true)
}

fn spawn(server_config: quinn::ServerConfig, settings: &QuicSettings, retry: bool) -> EchoServer {
    let endpoint = quinn::Endpoint::new(
        endpoint_config(settings).expect("endpoint config"),
        Some(server_config),
        localhost_socket(),
        Arc::new(quinn::TokioRuntime),
    )
    .expect("server endpoint");
    let addr = endpoint.local_addr().expect("server address");
    let (tx, reports) = mpsc::unbounded_channel();
    let accept_endpoint = endpoint.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accept_endpoint.accept().await {
            if retry && !incoming.remote_address_validated() {
                incoming.retry().expect("retry an unvalidated Initial");
                continue;
            }
            let tx = tx.clone();
            tokio::spawn(async move {
                let conn = match incoming.await {
                    Ok(conn) => conn,
                    Err(error) => {
                        let _ = tx.send(ServerReport::Failed(error.to_string()));
                        return;
                    }
                };
                let handshake = conn
                    .handshake_data()
                    .and_then(|data| data.downcast::<HandshakeData>().ok())
                    .map(|data| *data);
                let mut ekm = [0; EKM_LEN];
                let ekm = conn
                    .export_keying_material(&mut ekm, EKM_LABEL, b"")
                    .ok()
                    .map(|()| ekm);
                let _ = tx.send(ServerReport::Connected { handshake, ekm });
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        let Ok(data) = recv.read_to_end(MAX_ECHO_LEN).await else {
                            return;
                        };
                        if send.write_all(&data).await.is_ok() {
                            let _ = send.finish();
                            let _ = send.stopped().await;
                        }
                    });
                }
            });
        }
    });
    EchoServer {
        addr,
        endpoint,
        reports,
    }
}

/// A client endpoint on 127.0.0.1 with `mediator_quic::client_config`.
pub fn client_endpoint(settings: &QuicSettings) -> quinn::Endpoint {
    let mut endpoint = quinn::Endpoint::new(
        endpoint_config(settings).expect("endpoint config"),
        None,
        localhost_socket(),
        Arc::new(quinn::TokioRuntime),
    )
    .expect("client endpoint");
    endpoint
        .set_default_client_config(mediator_quic::client_config(settings).expect("client config"));
    endpoint
}
