//! One whole ygg_stream connection to mediatord, packet by packet, against the bytes of
//! `docs/mimir3.md` §3.3 (#17): a raw Yggdrasil node peered with the daemon's plays a Mimir
//! 3.x client exactly as the reference ygg_stream sends (SYN, handshake ACK, the preamble,
//! one PING, pure ACKs with seq 0, a FIN without the ACK bit and with window 0), and every
//! packet the daemon sends back is captured and compared in full, header and payload:
//!
//! ```text
//! → SYN            c000 002a 00000000 00000000 01 080000
//! ← SYN-ACK        002a c000 00000000 00000000 03 080000
//! → ACK            c000 002a 00000000 00000000 02 080000
//! → preamble       c000 002a 00000000 00000000 02 080000 0100
//! ← ACK            002a c000 00000000 00000002 02 07fffe
//! → PING           c000 002a 00000002 00000000 02 080000 03 0001 00000000
//! ← ACK            002a c000 00000000 00000009 02 07fff9
//! ← PONG           002a c000 00000000 00000009 02 080000 00 0001 00000000
//! → ACK            c000 002a 00000000 00000007 02 080000
//! → FIN            c000 002a 00000009 00000000 04 000000
//! ← ACK of FIN     002a c000 00000000 0000000a 02 080000      (FIN seq + 1, §3.9)
//! ← FIN            002a c000 00000007 0000000a 06 080000      (our FIN carries the ACK)
//! → ACK            c000 002a 00000000 00000007 02 080000      (reference: FIN seq, not + 1)
//! ← FIN, again     (sent FIN_SENDS times in all, then the connection is forgotten)
//! ```
//!
//! The window of the daemon's first ACK is 512 KiB − 2 because the preamble is not read yet
//! when it is sent; the test waits before the PING so that the session has read the
//! preamble (window 512 KiB − 7 for the PING's ACK), and the PONG is written after the PING
//! is read (window 512 KiB again). Afterwards the daemon's table is empty (metrics).

use mediator_tests::{client_node, daemon_with_config, scrape};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::Receiver;
use yggstream::conn::FIN_SENDS;

const WAIT: Duration = Duration::from_secs(10);

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).expect("hex")
}

/// The next packet from `from`, or `None` after [`WAIT`].
async fn next(rx: &mut Receiver<([u8; 32], Vec<u8>)>, from: [u8; 32]) -> Option<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (k, msg) = tokio::time::timeout_at(deadline, rx.recv()).await.ok()??;
        if k == from {
            return Some(msg);
        }
    }
}

/// Expects the next packet to be exactly `want`.
async fn expect(rx: &mut Receiver<([u8; 32], Vec<u8>)>, from: [u8; 32], what: &str, want: &str) {
    let got = next(rx, from).await.unwrap_or_else(|| panic!("no {what}"));
    assert_eq!(
        hex::encode(&got),
        hex::encode(hex(want)),
        "{what}: got {}, spec {want}",
        hex::encode(&got)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_connection_matches_the_spec_bytes() {
    let d = daemon_with_config(
        "[yggdrasil]\nlisten = [\"tcp://127.0.0.1:0\"]\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
    );
    let url = d.announced_after("listening metrics ").expect("metrics");
    let ygg = d.announced_after("listening yggdrasil ").expect("ygg");
    let node = client_node(&format!("{ygg}?key={}", hex::encode(d.key))).await;
    let mut rx = node.take_raw_receiver().expect("raw receiver");
    let send = |s: &str| node.try_send_raw(d.key, hex(s)).expect("send");

    // The first SYN after a fresh peering may be lost while the path is looked up (§7.4):
    // the client repeats it every second, and every SYN gets a SYN-ACK.
    let syn = "c000 002a 00000000 00000000 01 080000";
    let syn_ack = "002a c000 00000000 00000000 03 080000";
    let t0 = Instant::now();
    loop {
        send(syn);
        if let Ok(Some((k, p))) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            if k == d.key {
                assert_eq!(hex::encode(&p), hex::encode(hex(syn_ack)), "SYN-ACK");
                break;
            }
        }
        assert!(t0.elapsed() < WAIT, "no SYN-ACK");
    }
    // Repeats of the SYN may have crossed: their SYN-ACKs are the same bytes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok((_, p)) = rx.try_recv() {
        assert_eq!(
            hex::encode(&p),
            hex::encode(hex(syn_ack)),
            "repeated SYN-ACK"
        );
    }

    send("c000 002a 00000000 00000000 02 080000");
    send("c000 002a 00000000 00000000 02 080000 0100");
    expect(
        &mut rx,
        d.key,
        "ACK of the preamble",
        "002a c000 00000000 00000002 02 07fffe",
    )
    .await;
    // Let the session read the preamble.
    tokio::time::sleep(Duration::from_millis(300)).await;
    send("c000 002a 00000002 00000000 02 080000 03 0001 00000000");
    expect(
        &mut rx,
        d.key,
        "ACK of the PING",
        "002a c000 00000000 00000009 02 07fff9",
    )
    .await;
    let pong = "002a c000 00000000 00000009 02 080000 00 0001 00000000";
    expect(&mut rx, d.key, "PONG", pong).await;
    send("c000 002a 00000000 00000007 02 080000");

    send("c000 002a 00000009 00000000 04 000000");
    expect(
        &mut rx,
        d.key,
        "ACK of the FIN",
        "002a c000 00000000 0000000a 02 080000",
    )
    .await;
    let fin = "002a c000 00000007 0000000a 06 080000";
    expect(&mut rx, d.key, "FIN", fin).await;
    // A reference client acknowledges a FIN with its seq (not + 1): the FIN is repeated at
    // the retransmission timeout, FIN_SENDS times in all, and then the connection is gone.
    send("c000 002a 00000000 00000007 02 080000");
    for _ in 1..FIN_SENDS {
        expect(&mut rx, d.key, "repeated FIN", fin).await;
    }
    let t0 = Instant::now();
    loop {
        let conns = scrape(url).1["mediatord_ygg_stream_connections"];
        if conns == 0.0 {
            break;
        }
        assert!(t0.elapsed() < WAIT, "{conns} connections left");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing else was sent.
    assert!(rx.try_recv().is_err());
}
