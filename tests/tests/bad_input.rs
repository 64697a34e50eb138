//! Bad input against the real daemon: malformed TLV, wrong preamble, unknown commands,
//! oversize frames, truncated frames and random garbage. Each gets the spec's answer
//! (§2.3), no other session is affected and the process never dies.

use mediator_client::{connect, Session};
use mediator_tests::{rss_kib, user, Daemon};
use mediator_wire::frame::{
    decode_error_text, RequestHeader, ResponseFrame, MAX_REQUEST_PAYLOAD, PREAMBLE,
};
use mediator_wire::tlv::tag;
use mediator_wire::Command;
use rand::{Rng, RngCore, SeedableRng};
use std::time::Duration;
use tokio::io::AsyncReadExt;

const WAIT: Duration = Duration::from_secs(10);

/// Opens a raw stream, writes `bytes`, finishes the send side when `fin`, and returns
/// everything the server sent until it closed the stream.
async fn raw(conn: &quinn::Connection, bytes: &[u8], fin: bool) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    if fin {
        send.finish().unwrap();
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, AsyncReadExt::read_to_end(&mut recv, &mut out))
        .await
        .expect("server closes the stream");
    out
}

fn frames(mut buf: &[u8]) -> Vec<(u8, u16, Vec<u8>)> {
    let mut v = Vec::new();
    while !buf.is_empty() {
        let (f, used) = ResponseFrame::decode(buf).expect("whole frames");
        v.push((f.header.status as u8, f.header.req_id, f.payload.to_vec()));
        buf = &buf[used..];
    }
    v
}

fn err_text(f: &(u8, u16, Vec<u8>)) -> String {
    assert_eq!(f.0, 1, "an ERR frame");
    decode_error_text(&f.2).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_tlv_keeps_the_session() {
    let d = Daemon::start();
    let conn = connect(d.addr).await.unwrap();
    let mut s = Session::open(&conn).await.unwrap();
    // A TLV element whose length runs past the payload.
    let mut bad = RequestHeader {
        cmd: Command::GetNonce as u8,
        req_id: 77,
        len: 3,
    }
    .encode()
    .to_vec();
    bad.extend_from_slice(&[tag::PUBKEY, 0x20, 0x01]);
    let err = s.request_frame(77, bad).await.unwrap_err();
    assert_eq!(err.server_text(), Some("bad tlv payload"));
    // A 5-byte varint.
    let mut bad = RequestHeader {
        cmd: Command::Auth as u8,
        req_id: 78,
        len: 6,
    }
    .encode()
    .to_vec();
    bad.extend_from_slice(&[tag::PUBKEY, 0x80, 0x80, 0x80, 0x80, 0x01]);
    assert_eq!(
        s.request_frame(78, bad).await.unwrap_err().server_text(),
        Some("bad tlv payload")
    );
    // Wrong sizes are "missing or invalid".
    let e = s
        .request(Command::GetNonce, |w| {
            w.tlv(tag::PUBKEY, &[1; 31]);
        })
        .await
        .unwrap_err();
    assert_eq!(e.server_text(), Some("missing or invalid pubkey"));
    s.ping().await.unwrap();
    let key = mediator_client::random_key();
    s.auth(&key).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_preamble_unknown_cmd_oversize_and_truncation() {
    let d = Daemon::start();
    let conn = connect(d.addr).await.unwrap();
    let (mut bystander, _) = user(d.addr).await;
    let mut same_conn = Session::open(&conn).await.unwrap();

    // Wrong preamble: closed silently, nothing written.
    for pre in [[0x00u8, 0x00], [0x01, 0x01], [0x02, 0x00]] {
        let mut bytes = pre.to_vec();
        bytes.extend_from_slice(
            &RequestHeader {
                cmd: 3,
                req_id: 1,
                len: 0,
            }
            .encode(),
        );
        assert!(
            raw(&conn, &bytes, false).await.is_empty(),
            "preamble {pre:?}"
        );
    }

    // Unknown commands, push codes included: ERR "unknown cmd" with the reqId, then close.
    for cmd in [0x00u8, 0x32, 0x34, 0x41, 0x51, 0x54, 0x99, 0xff] {
        let mut bytes = PREAMBLE.to_vec();
        bytes.extend_from_slice(
            &RequestHeader {
                cmd,
                req_id: 0x1234,
                len: 0,
            }
            .encode(),
        );
        bytes.extend_from_slice(
            &RequestHeader {
                cmd: 3,
                req_id: 0x1235,
                len: 0,
            }
            .encode(),
        );
        let f = frames(&raw(&conn, &bytes, false).await);
        assert_eq!(f.len(), 1, "only the error, then close (cmd {cmd:#x})");
        assert_eq!(f[0].1, 0x1234);
        assert_eq!(err_text(&f[0]), "unknown cmd");
    }

    // Over 32 MiB: ERR "payload too large", close without reading the payload.
    let mut bytes = PREAMBLE.to_vec();
    bytes.extend_from_slice(
        &RequestHeader {
            cmd: 0x30,
            req_id: 9,
            len: 32 * 1024 * 1024 + 1,
        }
        .encode(),
    );
    let f = frames(&raw(&conn, &bytes, false).await);
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].1, err_text(&f[0]).as_str()), (9, "payload too large"));
    // Before AUTH a payload may carry at most 1 KiB (GUEST_PAYLOAD_MAX): a longer one is
    // "payload too large", whatever the command.
    let mut bytes = PREAMBLE.to_vec();
    bytes.extend_from_slice(
        &RequestHeader {
            cmd: 0x03,
            req_id: 10,
            len: 1025,
        }
        .encode(),
    );
    let f = frames(&raw(&conn, &bytes, false).await);
    assert_eq!(
        (f[0].1, err_text(&f[0]).as_str()),
        (10, "payload too large")
    );
    // A length within bounds whose payload never comes (FIN): a silent close.
    let mut bytes = PREAMBLE.to_vec();
    bytes.extend_from_slice(
        &RequestHeader {
            cmd: 0x03,
            req_id: 10,
            len: 1000,
        }
        .encode(),
    );
    bytes.extend_from_slice(&[0u8; 100]);
    assert!(
        raw(&conn, &bytes, true).await.is_empty(),
        "truncated payload: silent close"
    );
    // Truncated header then FIN.
    let mut bytes = PREAMBLE.to_vec();
    bytes.extend_from_slice(&[0x03, 0x00]);
    assert!(raw(&conn, &bytes, true).await.is_empty());

    // Nobody else noticed.
    same_conn.ping().await.unwrap();
    bystander.ping().await.unwrap();
    let chat = bystander.create_chat("still fine", "", None).await.unwrap();
    assert!(chat > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_garbage_never_kills_the_daemon() {
    let mut d = Daemon::start();
    let conn = connect(d.addr).await.unwrap();
    let (mut bystander, _) = user(d.addr).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for i in 0..200 {
        let mut bytes = if i % 2 == 0 {
            PREAMBLE.to_vec()
        } else {
            Vec::new()
        };
        let n = rng.gen_range(0..400);
        let mut junk = vec![0u8; n];
        rng.fill_bytes(&mut junk);
        // Keep announced lengths small so that most frames are complete and get handled.
        if junk.len() >= 7 && i % 3 == 0 {
            let len = (n - 7) as u32;
            junk[0] = [0x01, 0x02, 0x10, 0x12, 0x30, 0x35, 0x36, 0x40, 0x42, 0x55][i % 10];
            junk[3..7].copy_from_slice(&len.to_be_bytes());
        }
        bytes.extend_from_slice(&junk);
        let out = raw(&conn, &bytes, true).await;
        // Whatever came back is whole frames.
        let _ = frames(&out);
    }
    // Garbage UDP datagrams at the QUIC port.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..200 {
        let mut junk = vec![0u8; rng.gen_range(1..1500)];
        rng.fill_bytes(&mut junk);
        let _ = sock.send_to(&junk, d.addr);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(d.alive(), "the daemon survived");
    bystander.ping().await.unwrap();
    let mut fresh = Session::open(&conn).await.unwrap();
    fresh.ping().await.unwrap();
}

/// Headers that claim the largest payload and then send almost nothing cost the daemon no
/// memory: 40 of them (1.25 GiB claimed) leave its RSS within 32 MiB, and sessions on the
/// same connection and on others keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimed_payloads_cost_memory_only_as_bytes_arrive() {
    const CLAIMS: u16 = 40;
    let d = Daemon::start();
    let pid = d.child.id();
    let (mut bystander, _) = user(d.addr).await;
    bystander.ping().await.unwrap();
    let before = rss_kib(pid);
    let conn = connect(d.addr).await.unwrap();
    let mut claims = Vec::new();
    for req_id in 0..CLAIMS {
        let (mut send, recv) = conn.open_bi().await.unwrap();
        let mut bytes = PREAMBLE.to_vec();
        bytes.extend_from_slice(
            &RequestHeader {
                cmd: Command::SendMessage as u8,
                req_id,
                len: MAX_REQUEST_PAYLOAD,
            }
            .encode(),
        );
        bytes.extend_from_slice(&[0x01; 100]);
        send.write_all(&bytes).await.unwrap();
        claims.push((send, recv));
    }
    let mut same_conn = Session::open(&conn).await.unwrap();
    same_conn.ping().await.unwrap();
    // Give the daemon time to read every claim it was sent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    bystander.ping().await.unwrap();
    same_conn.ping().await.unwrap();
    let after = rss_kib(pid);
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    drop(claims);
}

/// A PING request on a new stream: the answer, or nothing if the stream is closed unanswered
/// (the stream's send side stays open, so an answer can only be missing by refusal).
async fn raw_ping(conn: &quinn::Connection) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let mut bytes = PREAMBLE.to_vec();
    bytes.extend_from_slice(
        &RequestHeader {
            cmd: Command::Ping as u8,
            req_id: 9,
            len: 0,
        }
        .encode(),
    );
    send.write_all(&bytes).await.unwrap();
    let mut out = vec![0u8; 7];
    match tokio::time::timeout(WAIT, recv.read_exact(&mut out)).await {
        Ok(Ok(())) => out,
        Ok(Err(_)) => Vec::new(),
        Err(_) => panic!("no answer and no close within {WAIT:?}"),
    }
}

/// `limits.max_sessions_per_source`: sessions beyond it from one source (one IP address,
/// whatever its ports and connections) get their stream closed unanswered; a session that
/// ends frees its place for the next one, and sessions from another address are not counted
/// against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_per_source_are_limited_and_freed() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("m.toml");
    std::fs::write(&cfg, "[limits]\nmax_sessions_per_source = 3\n").unwrap();
    let d = Daemon::start_in(
        &tmp.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let conn = connect(d.addr).await.unwrap();
    let mut live = Vec::new();
    for _ in 0..3 {
        let mut s = Session::open(&conn).await.unwrap();
        s.ping().await.unwrap();
        live.push(s);
    }
    assert!(
        raw_ping(&conn).await.is_empty(),
        "a fourth session from the same source must be refused"
    );
    // Another connection (another UDP port) from the same address is the same source.
    let same_host = connect(d.addr).await.unwrap();
    assert!(raw_ping(&same_host).await.is_empty());
    // Another address has its own count.
    let other = mediator_client::connect_from("127.0.0.2".parse().unwrap(), d.addr)
        .await
        .unwrap();
    assert!(!raw_ping(&other).await.is_empty());
    // Ending one session frees a place.
    let mut ended = live.pop().unwrap();
    ended.finish().await;
    let deadline = std::time::Instant::now() + WAIT;
    while raw_ping(&conn).await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the place was not freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
