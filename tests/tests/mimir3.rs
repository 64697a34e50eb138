//! Mimir 3.x and 2.x clients of one daemon, one key: a 3.x client (our ygg_stream stack on
//! our own Yggdrasil node, peered with mediatord's node) and a 2.x client (QUIC on UDP) share
//! a chat. Each gets the other's messages as pushes in its own generation's form: the test
//! clients recognise pushes only with status 2 (3.x) or status 0 (2.x), as the real apps do,
//! so a push in the wrong form is lost and the test fails. A 3.x session also survives an
//! unknown command.

use mediator_client::{random_key, Session};
use mediator_tests::{free_tcp_port, stream_client_node, user, Daemon, YggDaemon};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mimir3_and_mimir2_clients_share_a_chat() {
    let port = free_tcp_port();
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start_in(
        &tmp.path().join("data"),
        &["--listen", &format!("tcp://127.0.0.1:{port}")],
    );
    assert_eq!(
        d.announced_after("listening ygg_stream port "),
        Some("42"),
        "{:?}",
        d.announced
    );
    let uri = format!("tcp://127.0.0.1:{port}?key={}", hex::encode(d.key));
    let (node, ep) = stream_client_node(&uri).await;
    let stream = ep.connect(d.key, 42).await.expect("ygg_stream connect");
    let (r, w) = tokio::io::split(stream);
    let mut three = Session::over(r, w, true).await.unwrap();
    let k3 = random_key();
    three.auth(&k3).await.expect("3.x AUTH");
    three.ping().await.unwrap();

    let (mut two, k2) = user(d.addr).await;
    let chat = three
        .create_chat("both", "two generations", None)
        .await
        .unwrap();
    three
        .add_user(chat, &k2.verifying_key().to_bytes())
        .await
        .unwrap();
    three.subscribe(chat).await.unwrap();
    two.subscribe(chat).await.unwrap();
    three.drain_pushes();
    two.drain_pushes();

    // 2.x → 3.x: the push reaches the 3.x client with status 2.
    two.send_message(chat, 11, b"from 2.x").await.unwrap();
    three
        .wait_message(WAIT, |m| m.message.blob == b"from 2.x")
        .await
        .expect("3.x client got the 2.x message as a status-2 push");
    // 3.x → 2.x: with status 0.
    three.send_message(chat, 22, b"from 3.x").await.unwrap();
    two.wait_message(WAIT, |m| m.message.blob == b"from 3.x")
        .await
        .expect("2.x client got the 3.x message as a status-0 push");
    // Both see the whole history.
    for s in [&mut three, &mut two] {
        let all = s.sync(chat, 0).await.unwrap();
        assert!(all.iter().any(|m| m.blob == b"from 2.x"));
        assert!(all.iter().any(|m| m.blob == b"from 3.x"));
    }

    // An unknown command: ERR "unknown cmd", and the 3.x session goes on.
    let mut frame = vec![0x7f, 0x12, 0x34, 0, 0, 0, 3];
    frame.extend_from_slice(b"xyz");
    let err = three.request_frame(0x1234, frame).await.unwrap_err();
    assert_eq!(err.server_text(), Some("unknown cmd"), "{err:?}");
    three.ping().await.expect("the 3.x session survived");

    // Both users are online, and the operator sees each session's transport.
    let members = two.members(chat).await.unwrap();
    assert!(members.iter().all(|m| m.online), "{members:?}");
    let subs = d.ctl_json(&["subscribers", "list"]);
    let transports: Vec<&str> = subs
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["transport"].as_str().unwrap())
        .collect();
    assert!(
        transports.contains(&"ygg_stream") && transports.contains(&"quic"),
        "{subs}"
    );
    let three_hex = hex::encode(k3.verifying_key().to_bytes());
    let mine = subs
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["user"] == three_hex.as_str())
        .expect("the 3.x session");
    assert_eq!(mine["transport"], "ygg_stream");
    assert_eq!(mine["remote"], hex::encode(node.public_key()).as_str());
    let st = d.ctl_json(&["status"]);
    assert_eq!(st["sessions_by_transport"]["ygg_stream"], 1, "{st}");
    assert_eq!(st["sessions_by_transport"]["quic"], 1, "{st}");
    assert!(
        st["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().starts_with("ygg_stream ")),
        "{st}"
    );
}

/// Multi-hop: the 3.x client's node and mediatord's node both peer only with a real
/// yggdrasil 0.5 daemon, which routes the ygg_stream payloads it does not understand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mimir3_through_the_real_yggdrasil_daemon() {
    let ygg_listen = format!("tcp://127.0.0.1:{}", free_tcp_port());
    let ygg = YggDaemon::start(std::slice::from_ref(&ygg_listen), &[]);
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start_in(
        &tmp.path().join("d"),
        &["--peer", &format!("{ygg_listen}?key={}", ygg.key)],
    );
    let (_node, ep) = stream_client_node(&format!("{ygg_listen}?key={}", ygg.key)).await;
    // The tree and paths settle after peering: connect retries its SYNs for 10 s; try again
    // if the first attempt finds no route yet.
    let t0 = Instant::now();
    let stream = loop {
        match ep.connect(d.key, 42).await {
            Ok(s) => break s,
            Err(e) => assert!(t0.elapsed() < Duration::from_secs(40), "{e}"),
        }
    };
    let (r, w) = tokio::io::split(stream);
    let mut three = Session::over(r, w, true).await.unwrap();
    let k3 = random_key();
    three.auth(&k3).await.expect("AUTH across the daemon");
    let chat = three.create_chat("hops", "", None).await.unwrap();
    three.subscribe(chat).await.unwrap();
    three.drain_pushes();
    // A 2.x member on UDP sends; the push crosses the daemon in 3.x form.
    let (mut two, k2) = user(d.addr).await;
    three
        .add_user(chat, &k2.verifying_key().to_bytes())
        .await
        .unwrap();
    two.send_message(chat, 5, &[9u8; 40_000]).await.unwrap();
    let m = three
        .wait_message(WAIT, |m| m.message.blob.len() == 40_000)
        .await
        .expect("a 40 kB message across the daemon");
    assert!(m.message.blob.iter().all(|b| *b == 9));
    drop(ygg);
}
