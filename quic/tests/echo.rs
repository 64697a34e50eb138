//! End-to-end tests over real UDP sockets on 127.0.0.1: our Rust client
//! (quinn + rustls 0.23) against our server (quinn + the rustls 0.24 glue).

mod support;

use std::time::Duration;

use ed25519_dalek::SigningKey;
use mediator_quic::cert::ed25519_public_key_of;
use mediator_quic::{server_config, QuicSettings};
use quinn::rustls::pki_types::CertificateDer;
use support::{
    client_endpoint, spawn_echo_server, spawn_echo_server_with_retry, ServerReport, EKM_LABEL,
    EKM_LEN,
};
use tokio::task::JoinSet;

const SEED: [u8; 32] = [0x42; 32];

fn node_key() -> [u8; 32] {
    SigningKey::from_bytes(&SEED).verifying_key().to_bytes()
}

/// A valid server name of the maximum DNS label length (63 characters);
/// rustls 0.23 on the client side cannot send yggquic's 64.
fn server_name() -> String {
    hex::encode(node_key())[..63].to_owned()
}

/// Sends `payload` on a new stream and returns what comes back.
async fn echo(conn: &quinn::Connection, payload: &[u8]) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.expect("open stream");
    send.write_all(payload).await.expect("write");
    send.finish().expect("finish");
    recv.read_to_end(support::MAX_ECHO_LEN)
        .await
        .expect("read echo")
}

fn payload(index: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + index * 7) as u8).collect()
}

#[tokio::test]
async fn several_streams_echo_and_server_presents_node_key() {
    let settings = QuicSettings::default();
    let mut server = spawn_echo_server(server_config(&SEED, &settings).unwrap(), &settings);
    let client = client_endpoint(&settings);
    let name = server_name();

    let conn = client
        .connect(server.addr, &name)
        .unwrap()
        .await
        .expect("handshake");

    // No ALPN, as seen by the client...
    let client_hs = conn
        .handshake_data()
        .unwrap()
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .unwrap();
    assert_eq!(client_hs.protocol, None);

    // ...exactly one certificate, carrying the node key...
    let certs = conn
        .peer_identity()
        .unwrap()
        .downcast::<Vec<CertificateDer<'static>>>()
        .unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(ed25519_public_key_of(&certs[0]), Some(node_key()));

    // ...and on the server side: no ALPN, the (valid) SNI we sent, and the
    // same exported keying material.
    let ServerReport::Connected { handshake, ekm } = server.next_report().await else {
        panic!("server did not report a connection");
    };
    let handshake = handshake.expect("server handshake data");
    assert_eq!(handshake.protocol, None);
    assert_eq!(handshake.server_name.as_deref(), Some(name.as_str()));
    let mut client_ekm = [0; EKM_LEN];
    conn.export_keying_material(&mut client_ekm, EKM_LABEL, b"")
        .unwrap();
    assert_eq!(ekm, Some(client_ekm));

    // Several concurrent streams, some larger than the stream window so
    // flow control has to work.
    let sizes = [1, 100, 1_000, 10_000, 100_000, 1_500_000, 7, 65_536];
    let mut tasks = JoinSet::new();
    for (index, len) in sizes.into_iter().enumerate() {
        let conn = conn.clone();
        tasks.spawn(async move {
            let sent = payload(index, len);
            let got = echo(&conn, &sent).await;
            assert_eq!(got.len(), sent.len(), "stream {index}");
            assert!(got == sent, "stream {index}: echo differs");
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }

    // A 1-RTT key update (RFC 9001 §6) exercises the server's next-keys path.
    conn.force_key_update();
    let sent = payload(99, 50_000);
    assert!(echo(&conn, &sent).await == sent);

    conn.close(0u32.into(), b"done");
    client.wait_idle().await;
    server.endpoint.close(0u32.into(), b"done");
}

#[tokio::test]
async fn concurrent_bidi_streams_are_bounded() {
    let settings = QuicSettings {
        max_bidi_streams: 2,
        ..QuicSettings::default()
    };
    let server = spawn_echo_server(server_config(&SEED, &settings).unwrap(), &settings);
    let client = client_endpoint(&settings);
    let conn = client
        .connect(server.addr, &server_name())
        .unwrap()
        .await
        .expect("handshake");

    // Two open streams use up the allowance.
    let (mut send_a, mut recv_a) = conn.open_bi().await.unwrap();
    let (mut send_b, _recv_b) = conn.open_bi().await.unwrap();
    send_a.write_all(b"a").await.unwrap();
    send_b.write_all(b"b").await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), conn.open_bi())
            .await
            .is_err(),
        "a third concurrent stream was allowed"
    );

    // Completing one stream frees a slot.
    send_a.finish().unwrap();
    assert_eq!(recv_a.read_to_end(16).await.unwrap(), b"a");
    let (mut send_c, mut recv_c) = tokio::time::timeout(Duration::from_secs(5), conn.open_bi())
        .await
        .expect("stream slot not released")
        .unwrap();
    send_c.write_all(b"c").await.unwrap();
    send_c.finish().unwrap();
    assert_eq!(recv_c.read_to_end(16).await.unwrap(), b"c");

    conn.close(0u32.into(), b"done");
    client.wait_idle().await;
}

#[tokio::test]
async fn handshake_after_retry() {
    let settings = QuicSettings::default();
    let mut server =
        spawn_echo_server_with_retry(server_config(&SEED, &settings).unwrap(), &settings);
    let client = client_endpoint(&settings);
    // quinn's client rejects a Retry whose integrity tag is wrong, so
    // completing the handshake shows the server computes it correctly.
    let conn = client
        .connect(server.addr, &server_name())
        .unwrap()
        .await
        .expect("handshake after Retry");
    assert!(matches!(
        server.next_report().await,
        ServerReport::Connected { .. }
    ));
    assert!(echo(&conn, b"after retry").await == b"after retry");
    conn.close(0u32.into(), b"done");
    client.wait_idle().await;
}
