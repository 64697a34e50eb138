//! Strangers filling mediatord's ygg_stream buffers do not lock out a member (#17, "an
//! established member is never locked out by strangers").
//!
//! The daemon runs with the smallest buffer budget it accepts (1 MiB shared, 1 MiB reserved
//! for members). A member's Mimir 3.x client creates a chat. Then two attacker nodes open
//! eight ygg_stream connections, log in as strangers, pour PING frames in and never read an
//! answer: their sessions stop reading requests, and the daemon's receive and send buffers
//! fill. The metrics show the shared budget spent and the total still within its bound
//! (without the budget the eight connections would hold about 8 MiB). With the shared part
//! spent before each step, the member's session keeps sending, a new connection of the
//! member logs in (through every connection's floor) and syncs a history larger than the
//! floor (from the members' reserve), and a new stranger can still log in. Once the attackers go, the buffers empty.

use mediator_client::{random_key, Session};
use mediator_tests::{daemon_with_config, scrape, stream_client_node};
use mediator_wire::codes::Command;
use mediator_wire::frame::RequestHeader;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const MIB: f64 = 1024.0 * 1024.0;
/// `stream_buffer_bytes` and `stream_member_reserve_bytes` of the daemon under test.
const BUDGET: usize = 1024 * 1024;
const ATTACKERS: usize = 2;
const CONNS_PER_ATTACKER: usize = 4;
/// PING frames each attacking connection tries to send (7 bytes each: 2.1 MB).
const PINGS: usize = 300_000;
const WAIT: Duration = Duration::from_secs(20);
const BUFFERED: &str = "mediatord_ygg_stream_buffered_bytes";

/// The most the daemon may hold at this budget: shared part, reserve, every connection's
/// floor both ways, and the overhead of the segments.
const BOUND: f64 = (2 * BUDGET + 16 * 8 * 1024 + 64 * 1024) as f64;
/// The shared part spent, but for less than a segment (a segment is taken whole or not at
/// all).
const SPENT: f64 = (BUDGET - 64 * 1024) as f64;

fn buffered(url: &str) -> f64 {
    scrape(url).1.get(BUFFERED).copied().unwrap_or(0.0)
}

/// Waits until the strangers hold the shared part again before `step`, checking the bound
/// on every sample.
async fn spent_again(url: &str, step: &str) {
    let t0 = Instant::now();
    loop {
        let now = buffered(url);
        assert!(now <= BOUND, "{now} bytes buffered, bound {BOUND}");
        if now >= SPENT {
            eprintln!("{:.2} MiB buffered before {step}", now / MIB);
            return;
        }
        assert!(
            t0.elapsed() < WAIT,
            "the flood no longer fills the budget before {step}: {now} bytes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_filling_the_buffers_do_not_lock_out_a_member() {
    let d = daemon_with_config(&format!(
        "[yggdrasil]\nlisten = [\"tcp://127.0.0.1:0\"]\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n\
         [limits]\nstream_buffer_bytes = {BUDGET}\nstream_member_reserve_bytes = {BUDGET}\n"
    ));
    let url = d
        .announced_after("listening metrics ")
        .expect("metrics")
        .to_string();
    let ygg = d
        .announced_after("listening yggdrasil ")
        .expect("ygg listener");
    let uri = format!("{ygg}?key={}", hex::encode(d.key));

    // The member, with a chat and some history (40 KiB, ten times a connection's floor).
    let (_member_node, member_ep) = stream_client_node(&uri).await;
    let open = |ep: yggstream::Endpoint| async move {
        let stream = ep.connect(d.key, 42).await.expect("ygg_stream connect");
        let (r, w) = tokio::io::split(stream);
        Session::over(r, w, true).await.expect("session")
    };
    let mut member = open(member_ep.clone()).await;
    let km = random_key();
    member.auth(&km).await.unwrap();
    let chat = member.create_chat("kept", "", None).await.unwrap();
    for i in 0..40 {
        member.send_message(chat, i, &[7; 1024]).await.unwrap();
    }
    let quiet = buffered(&url);

    // The attackers: PING frames poured in, nothing read.
    let mut pings = Vec::new();
    for i in 0..PINGS {
        let h = RequestHeader {
            cmd: Command::Ping as u8,
            req_id: i as u16,
            len: 0,
        };
        pings.extend_from_slice(&h.encode());
    }
    let mut attackers = Vec::new();
    let mut floods = Vec::new();
    for _ in 0..ATTACKERS {
        let (node, ep) = stream_client_node(&uri).await;
        for _ in 0..CONNS_PER_ATTACKER {
            // Logged in as strangers, so that no login timeout ends them.
            let mut s = open(ep.clone()).await;
            s.auth(&random_key()).await.expect("attacker AUTH");
            let mut w = s.into_writer();
            let pings = pings.clone();
            floods.push(tokio::spawn(async move {
                let _ = w.write_all(&pings).await;
                w
            }));
        }
        attackers.push((node, ep));
    }
    // A newcomer's node, peered before the flood: a fresh node's first connection waits up
    // to about 3 s for the Yggdrasil tree to settle round it, which is not what this test
    // measures.
    let (_n, newcomer_ep) = stream_client_node(&uri).await;

    // The shared part fills up; the total stays within its bound. Room freed by a step
    // below is taken again at the attackers' next retransmission (their timers back off
    // while their segments are dropped), so every step waits for the budget to be spent
    // again first: each runs with the strangers holding the shared part.
    let flood = Instant::now();
    eprintln!("buffered before the flood: {:.2} MiB", quiet / MIB);

    // Under the flood: the member's session goes on...
    spent_again(&url, "the member's messages").await;
    let t0 = Instant::now();
    for i in 40..50 {
        member.send_message(chat, i, b"still here").await.unwrap();
    }
    eprintln!("10 messages under the flood: {:?}", t0.elapsed());
    // ... a new connection of the member logs in and syncs its 40 KiB history...
    spent_again(&url, "the member's new connection").await;
    let t0 = Instant::now();
    let mut again = open(member_ep.clone()).await;
    again
        .auth(&km)
        .await
        .expect("the member logs in under the flood");
    let history = again.sync(chat, 0).await.expect("the member syncs");
    assert!(history.len() >= 50, "{} messages", history.len());
    eprintln!(
        "the member's new connection, login and sync: {:?}",
        t0.elapsed()
    );
    // ... and a newcomer can still log in.
    spent_again(&url, "the newcomer's login").await;
    let t0 = Instant::now();
    let mut newcomer = open(newcomer_ep).await;
    newcomer
        .auth(&random_key())
        .await
        .expect("a newcomer logs in");
    newcomer.ping().await.unwrap();
    eprintln!("a newcomer's login: {:?}", t0.elapsed());
    spent_again(&url, "the attackers leave").await;
    // Every stranger was still pouring all along: none has written its last PING, none
    // was cut off.
    assert!(
        floods.iter().all(|f| !f.is_finished()),
        "a stranger's flood ended early"
    );
    assert!(
        flood.elapsed() < Duration::from_secs(50),
        "no stranger may have left yet"
    );

    // The attackers go (their connections reset): the buffers empty.
    for f in floods {
        f.abort();
        // Dropping the stream resets its connection.
        let _ = f.await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(attackers);
    let t0 = Instant::now();
    loop {
        let now = buffered(&url);
        if now < 64.0 * 1024.0 {
            break;
        }
        assert!(t0.elapsed() < WAIT, "{now} bytes still buffered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("buffers empty after the attackers left: {:?}", t0.elapsed());
    // The member's new session replaced its first one (same key, same node: C6).
    again.ping().await.unwrap();
}
