//! Many Mimir 3.x sessions, and memory after them: four client nodes (our yggnode with a fresh
//! key each, peered directly with mediatord's node over loopback TCP) open 50 ygg_stream
//! connections each, every one a distinct user subscribed to its node's chat, and exchange
//! messages for a minute. Every session must receive every other session's acknowledged
//! message of its chat exactly once, as a status-2 push. Meanwhile the control API shows all
//! 200 sessions as `ygg_stream`; afterwards they must all be gone and the daemon's resident
//! memory must come back near the baseline taken after a warm-up round of the same shape.

use mediator_client::{random_key, Push, Session};
use mediator_tests::{free_tcp_port, stream_client_node, Daemon};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use yggstream::Endpoint;

/// Client nodes, each with its own key and chat.
const NODES: usize = 4;
/// Sessions (= users) per node.
const SESSIONS: usize = 50;
/// How long every session sends in the measured round.
const RUN: Duration = Duration::from_secs(60);
/// How long every session sends in the warm-up round.
const WARMUP: Duration = Duration::from_secs(10);
/// Time between two messages of one session (200 sessions: 100 messages/s, about 4,900
/// pushes/s).
const INTERVAL: Duration = Duration::from_secs(2);
/// Allowed growth of the daemon's RSS over the post-warm-up baseline once the measured
/// round's sessions are gone, as in the yggquic load test: page caches, tables sized for the
/// peak and what malloc keeps. A leak of 40 KiB per session or 1.4 KiB per message exceeds it.
const RSS_TOLERANCE_KIB: u64 = 8 * 1024;
/// Bound for everything after the senders stop: the last pushes arriving.
const DRAIN: Duration = Duration::from_secs(30);

/// Connection attempts a session makes (each gives up after yggstream's `CONNECT_TIMEOUT`):
/// a fresh node's first path to the daemon's key can take longer than one attempt while the
/// other nodes' set-up loads the machine (a Mimir app connects again too). A failed attempt
/// is one the daemon never saw, so nothing it is tested for is retried.
const CONNECT_ATTEMPTS: usize = 3;
/// How long the nodes may take to be ready (peered, 50 sessions each authenticated, members
/// added, subscribed); a node that fails its set-up fails the test with its reason instead
/// of leaving the others waiting for it.
const SETUP_LIMIT: Duration = Duration::from_secs(240);

async fn open(ep: &Endpoint, mediator: [u8; 32]) -> Session {
    let mut attempt = 1;
    let stream = loop {
        match ep.connect(mediator, 42).await {
            Ok(stream) => break stream,
            Err(e) if attempt < CONNECT_ATTEMPTS => {
                eprintln!("ygg_stream connect, attempt {attempt}: {e}; again");
                attempt += 1;
            }
            Err(e) => panic!("ygg_stream connect, {CONNECT_ATTEMPTS} attempts: {e}"),
        }
    };
    let (r, w) = tokio::io::split(stream);
    let mut s = Session::over(r, w, true).await.unwrap();
    s.auth(&random_key()).await.expect("AUTH");
    s
}

/// The 8-byte body of message `n` of session `who`.
fn body(who: usize, n: u32) -> Vec<u8> {
    let mut b = (who as u32).to_be_bytes().to_vec();
    b.extend_from_slice(&n.to_be_bytes());
    b
}

/// The (session, number) of a message body from [`body`]; system messages (member events,
/// longer bodies) are not the test's.
fn sender_and_number(b: &[u8]) -> Option<(u32, u32)> {
    let b: &[u8; 8] = b.try_into().ok()?;
    Some((
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
    ))
}

/// One node's round: its sessions join one chat, send for `run`, then check that each got
/// every other's acknowledged message exactly once. Returns the messages sent.
async fn node_round(
    uri: String,
    mediator: [u8; 32],
    run: Duration,
    ready: Arc<tokio::sync::Barrier>,
) -> usize {
    let (node, ep) = stream_client_node(&uri).await;
    let mut owner = open(&ep, mediator).await;
    let chat = owner.create_chat("load", "", None).await.unwrap();
    let mut sessions = vec![owner];
    for _ in 1..SESSIONS {
        let s = open(&ep, mediator).await;
        let key = s.key.as_ref().unwrap().verifying_key().to_bytes();
        sessions[0].add_user(chat, &key).await.unwrap();
        sessions.push(s);
    }
    for s in &mut sessions {
        s.subscribe(chat).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for s in &mut sessions {
        s.drain_pushes();
    }
    ready.wait().await;
    let mut tasks = Vec::new();
    for (who, mut s) in sessions.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let end = Instant::now() + run;
            let mut sent = Vec::new();
            let mut got: BTreeMap<(u32, u32), usize> = BTreeMap::new();
            let mut n = 0u32;
            let mut next = Instant::now();
            while Instant::now() < end {
                if Instant::now() >= next {
                    let guid = ((who as i64) << 32) | i64::from(n);
                    s.send_message(chat, guid, &body(who, n))
                        .await
                        .expect("SEND_MESSAGE");
                    sent.push(n);
                    n += 1;
                    next += INTERVAL;
                }
                let wait = next.saturating_duration_since(Instant::now());
                if let Some(Push::Message(m)) =
                    s.next_push(wait.min(Duration::from_millis(200))).await
                {
                    if let Some(k) = sender_and_number(&m.message.blob) {
                        *got.entry(k).or_default() += 1;
                    }
                }
            }
            (who, s, sent, got)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    // Every message acknowledged to a session must reach each other session once.
    let expected: BTreeSet<(u32, u32)> = results
        .iter()
        .flat_map(|(who, _, sent, _)| sent.iter().map(move |n| (*who as u32, *n)))
        .collect();
    let total = expected.len();
    for (who, mut s, _, mut got) in results {
        let want: BTreeSet<(u32, u32)> = expected
            .iter()
            .filter(|(w, _)| *w != who as u32)
            .copied()
            .collect();
        let end = Instant::now() + DRAIN;
        while want.iter().any(|k| !got.contains_key(k)) && Instant::now() < end {
            if let Some(Push::Message(m)) = s.next_push(Duration::from_millis(500)).await {
                if let Some(k) = sender_and_number(&m.message.blob) {
                    *got.entry(k).or_default() += 1;
                }
            }
        }
        let missing = want.iter().filter(|k| !got.contains_key(k)).count();
        assert_eq!(
            missing,
            0,
            "session {who} missed {missing} of {} messages",
            want.len()
        );
        let twice: Vec<_> = got.iter().filter(|(_, c)| **c > 1).collect();
        assert!(twice.is_empty(), "session {who} got duplicates: {twice:?}");
        let extra: Vec<_> = got.keys().filter(|k| !want.contains(k)).collect();
        assert!(
            extra.is_empty(),
            "session {who} got messages never acknowledged or its own: {extra:?}"
        );
    }
    // The sessions are dropped (their connections reset); then the node goes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(ep);
    node.stop().await;
    total
}

fn sessions_by_transport(d: &Daemon) -> (u64, u64) {
    let st = d.ctl_json(&["status"]);
    (
        st["sessions"].as_u64().unwrap(),
        st["sessions_by_transport"]["ygg_stream"].as_u64().unwrap(),
    )
}

/// Runs one round of every node; checks the daemon's session count during it.
fn round(rt: &tokio::runtime::Runtime, d: &Daemon, uri: &str, run: Duration) -> usize {
    let ready = Arc::new(tokio::sync::Barrier::new(NODES + 1));
    let handles: Vec<_> = (0..NODES)
        .map(|_| rt.spawn(node_round(uri.to_string(), d.key, run, ready.clone())))
        .collect();
    let ready_in_time = rt.block_on(async {
        tokio::time::timeout(SETUP_LIMIT, ready.wait())
            .await
            .is_ok()
    });
    if !ready_in_time {
        let why: Vec<String> = handles
            .into_iter()
            .filter(|h| h.is_finished())
            .map(|h| match rt.block_on(h) {
                Err(e) if e.is_panic() => {
                    let p = e.into_panic();
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "a panic".into())
                }
                other => format!("{other:?}"),
            })
            .collect();
        panic!("the nodes were not ready within {SETUP_LIMIT:?}: {why:?}");
    }
    let (all, stream) = sessions_by_transport(d);
    assert_eq!(
        (all, stream),
        ((NODES * SESSIONS) as u64, (NODES * SESSIONS) as u64)
    );
    let sent: usize = handles.into_iter().map(|h| rt.block_on(h).unwrap()).sum();
    // The nodes are gone: their connections time out or were aborted; the sessions end.
    let t0 = Instant::now();
    while sessions_by_transport(d).0 > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "sessions left: {:?}",
            sessions_by_transport(d)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    sent
}

#[test]
#[ignore = "run by .ci/soak"]
fn two_hundred_ygg_stream_sessions_and_memory_comes_back() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let port = free_tcp_port();
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start_in(
        &tmp.path().join("data"),
        &["--listen", &format!("tcp://127.0.0.1:{port}")],
    );
    let uri = format!("tcp://127.0.0.1:{port}?key={}", hex::encode(d.key));
    let warm = round(&rt, &d, &uri, WARMUP);
    assert!(warm > 0);
    std::thread::sleep(Duration::from_secs(2));
    let baseline = mediator_tests::rss_kib(d.pid());
    let sent = round(&rt, &d, &uri, RUN);
    std::thread::sleep(Duration::from_secs(2));
    let after = mediator_tests::rss_kib(d.pid());
    eprintln!(
        "ygg_stream load: {sent} messages acknowledged; RSS {baseline} KiB after warm-up, {after} KiB after the round"
    );
    assert!(
        sent as f64 >= (NODES * SESSIONS) as f64 * RUN.as_secs_f64() / INTERVAL.as_secs_f64() * 0.9,
        "{sent} messages"
    );
    assert!(
        after <= baseline + RSS_TOLERANCE_KIB,
        "RSS grew from {baseline} to {after} KiB"
    );
}
