//! Rust↔Rust nodes over loopback TCP: peering, key pins, self-link refusal,
//! tree agreement, clean shutdown, and a TLS link carrying datagrams.

use std::time::{Duration, Instant};

use yggnode::{Node, NodeConfig};

const WAIT: Duration = Duration::from_secs(10);

fn listen_cfg() -> NodeConfig {
    NodeConfig {
        listen: vec!["tcp://127.0.0.1:0".parse().unwrap()],
        ..NodeConfig::default()
    }
}

async fn until<F: FnMut() -> bool>(what: &str, mut f: F) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn two_nodes_peer_and_agree_on_root() {
    let a = Node::start([1; 32], listen_cfg()).await.unwrap();
    let addr = a.listen_addrs()[0];
    let uri = format!(
        "tcp://{addr}?key={}&password=pw",
        hex::encode(a.public_key())
    );
    // Password mismatch first: A has none, B sends one → no link.
    let b = Node::start(
        [2; 32],
        NodeConfig {
            peers: vec![uri.parse().unwrap()],
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(a.peers().is_empty() && b.peers().is_empty());
    b.shutdown().await;

    let uri = format!("tcp://{addr}?key={}", hex::encode(a.public_key()));
    let b = Node::start(
        [2; 32],
        NodeConfig {
            peers: vec![uri.parse().unwrap()],
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    until("peering", || {
        a.peers()
            .iter()
            .any(|p| p.key == b.public_key() && p.inbound)
            && b.peers()
                .iter()
                .any(|p| p.key == a.public_key() && !p.inbound)
    })
    .await;
    let root = a.public_key().min(b.public_key());
    let t0 = Instant::now();
    loop {
        let (sa, sb) = (a.self_info().await.unwrap(), b.self_info().await.unwrap());
        if sa.root == root && sb.root == root {
            break;
        }
        assert!(t0.elapsed() < WAIT, "no tree agreement: {sa:?} {sb:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rp = a.router_peers().await.unwrap();
    assert_eq!(rp.len(), 1);
    assert_eq!(rp[0].port, 1);
    b.shutdown().await;
    until("A to notice B left", || a.peers().is_empty()).await;
    a.shutdown().await;
}

#[tokio::test]
async fn self_link_and_wrong_pin_are_refused() {
    let a = Node::start([3; 32], listen_cfg()).await.unwrap();
    let addr = a.listen_addrs()[0];
    let a_self = Node::start(
        [3; 32],
        NodeConfig {
            peers: vec![format!("tcp://{addr}").parse().unwrap()],
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    let c = Node::start(
        [4; 32],
        NodeConfig {
            peers: vec![format!("tcp://{addr}?key={}", "ab".repeat(32))
                .parse()
                .unwrap()],
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(a.peers().is_empty(), "{:?}", a.peers());
    assert!(a_self.peers().is_empty());
    assert!(c.peers().is_empty());
    c.shutdown().await;
    a_self.shutdown().await;
    a.shutdown().await;
}

#[tokio::test]
async fn tls_link_between_our_nodes_carries_datagrams() {
    let cfg = NodeConfig {
        listen: vec!["tls://127.0.0.1:0".parse().unwrap()],
        ..NodeConfig::default()
    };
    let a = Node::start([1; 32], cfg).await.unwrap();
    let cfg = NodeConfig {
        peers: vec![format!("tls://{}?maxbackoff=45s", a.listen_addrs()[0])
            .parse()
            .unwrap()],
        ..NodeConfig::default()
    };
    let b = Node::start([2; 32], cfg).await.unwrap();
    until("tls peering", || {
        !a.peers().is_empty() && !b.peers().is_empty()
    })
    .await;
    let t0 = Instant::now();
    loop {
        b.send_to(a.public_key(), b"over tls").await.unwrap();
        if let Ok(Ok((from, data))) =
            tokio::time::timeout(Duration::from_millis(200), a.recv_from()).await
        {
            assert_eq!(from, b.public_key());
            assert_eq!(data, b"over tls");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no datagram over tls"
        );
    }
    assert_eq!(b.mtu(), 65535);
    assert!(matches!(
        b.try_send_to(a.public_key(), &vec![0; 65536]),
        Err(yggnode::SendError::TooLarge(65536))
    ));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn datagrams_and_nodeinfo_to_our_own_key_stay_local() {
    let mut node_info = serde_json::Map::new();
    node_info.insert("name".into(), "mediatord".into());
    let cfg = NodeConfig {
        node_info,
        ..NodeConfig::default()
    };
    let a = Node::start([3; 32], cfg).await.unwrap();
    a.send_to(a.public_key(), b"me").await.unwrap();
    let (from, data) = tokio::time::timeout(WAIT, a.recv_from())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((from, data.as_slice()), (a.public_key(), &b"me"[..]));
    let info = a.get_node_info(a.public_key()).await.unwrap();
    assert_eq!(info["name"], "mediatord");
    let rx = a.take_receiver();
    assert!(rx.is_some());
    assert!(a.take_receiver().is_none());
    assert!(matches!(
        a.recv_from().await,
        Err(yggnode::NodeError::ReceiverTaken)
    ));
    let st = a.stats().await.unwrap();
    assert_eq!((st.sessions, st.paths), (0, 0));
    a.shutdown().await;
}

#[tokio::test]
async fn oversized_node_info_is_refused() {
    let mut node_info = serde_json::Map::new();
    node_info.insert("big".into(), "x".repeat(20_000).into());
    let cfg = NodeConfig {
        node_info,
        ..NodeConfig::default()
    };
    assert!(matches!(
        Node::start([4; 32], cfg).await,
        Err(yggnode::NodeError::NodeInfoTooLarge(_))
    ));
}

/// Outbound peers can be added and removed while the node runs: removing a
/// peer closes its link at once (on both ends) and stops the redialling,
/// `set_peers` applies a whole new list and leaves unchanged peers' links
/// alone, and adding a `tls://` peer at run time works without any TLS
/// peer at start.
#[tokio::test]
async fn peers_are_added_and_removed_at_run_time() {
    let a = Node::start([11; 32], listen_cfg()).await.unwrap();
    let c = Node::start(
        [13; 32],
        NodeConfig {
            listen: vec!["tls://127.0.0.1:0".parse().unwrap()],
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    let b = Node::start([12; 32], NodeConfig::default()).await.unwrap();
    let to_a: yggnode::PeerUri = format!("tcp://{}", a.listen_addrs()[0]).parse().unwrap();
    let to_c: yggnode::PeerUri = format!("tls://{}", c.listen_addrs()[0]).parse().unwrap();

    assert!(b.add_peer(to_a.clone()));
    assert!(!b.add_peer(to_a.clone()), "a duplicate is refused");
    until("b to peer with a", || {
        a.peers().iter().any(|p| p.key == b.public_key())
    })
    .await;
    let link_to_a = b.peers()[0].link;

    // A new list: keep a, add c over TLS.
    assert_eq!(b.set_peers(&[to_a.clone(), to_c.clone()]), (1, 0));
    assert_eq!(b.configured_peers(), vec![to_a.clone(), to_c.clone()]);
    until("b to peer with c", || {
        c.peers().iter().any(|p| p.key == b.public_key())
    })
    .await;
    assert!(
        b.peers().iter().any(|p| p.link == link_to_a),
        "the unchanged peer's link was kept"
    );

    // Drop a: the link goes down on both ends and is not redialled.
    assert_eq!(b.set_peers(std::slice::from_ref(&to_c)), (0, 1));
    until("a to lose b", || a.peers().is_empty()).await;
    until("b to forget a", || {
        b.peers().iter().all(|p| p.key != a.public_key())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(a.peers().is_empty(), "a removed peer was redialled");
    let routed = b.router_peers().await.unwrap();
    assert!(routed.iter().all(|p| p.key != a.public_key()), "{routed:?}");

    assert!(b.remove_peer(&to_c));
    assert!(!b.remove_peer(&to_c));
    until("c to lose b", || c.peers().is_empty()).await;
    assert!(b.configured_peers().is_empty());
    b.shutdown().await;
    a.shutdown().await;
    c.shutdown().await;
}

/// A peer that completes the handshake and then misbehaves (garbage, an
/// oversized frame, an announce with a bad signature, a signature response
/// that does not verify) loses its own link and nothing else: the node's
/// other link stays up (same link id) and keeps carrying datagrams.
#[tokio::test]
async fn misbehaving_peer_loses_only_its_link() {
    use tokio::io::AsyncWriteExt;
    use yggnode::identity::Identity;
    use yggnode::link::{handshake, LinkOptions};
    use yggnode::proto::{Announce, PeerMessage, SigReq, SigRes};

    let a = Node::start([21; 32], listen_cfg()).await.unwrap();
    let addr = a.listen_addrs()[0];
    let c = Node::start(
        [22; 32],
        NodeConfig {
            peers: vec![format!("tcp://{addr}").parse().unwrap()],
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    until("c to peer with a", || {
        a.peers().iter().any(|p| p.key == c.public_key())
    })
    .await;
    let good_link = a.peers()[0].link;

    let rogue = Identity::from_seed(&[23; 32]);
    let rk = rogue.public_key();
    let bad_announce = {
        let mut f = Vec::new();
        PeerMessage::Announce(Announce {
            key: rk,
            parent: rk,
            res: SigRes {
                req: SigReq { seq: 1, nonce: 1 },
                port: 0,
                psig: [7; 64],
            },
            sig: [7; 64],
        })
        .encode_frame(&mut f);
        f
    };
    let bad_sigres = {
        let mut f = Vec::new();
        PeerMessage::SigRes(SigRes {
            req: SigReq { seq: 1, nonce: 1 },
            port: 1,
            psig: [9; 64],
        })
        .encode_frame(&mut f);
        f
    };
    let cases: [(&str, Vec<u8>); 4] = [
        ("garbage", vec![3, 0xee, 0xee, 0xee]),
        ("oversized frame", vec![0xff, 0xff, 0xff, 0x7f]),
        ("announce with a bad signature", bad_announce),
        ("signature response that does not verify", bad_sigres),
    ];
    for (what, bytes) in cases {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        handshake(&mut s, &rogue, &LinkOptions::default())
            .await
            .unwrap();
        until(&format!("the rogue link up ({what})"), || {
            a.peers().iter().any(|p| p.key == rk)
        })
        .await;
        s.write_all(&bytes).await.unwrap();
        let t0 = Instant::now();
        until(&format!("the rogue link dropped after {what}"), || {
            !a.peers().iter().any(|p| p.key == rk)
        })
        .await;
        // Well inside the 3-second liveness timeout: the frame closed it.
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "{what}: closed only after {:?}",
            t0.elapsed()
        );
        assert!(
            a.peers().iter().any(|p| p.link == good_link),
            "{what}: the good link went down too"
        );
    }
    // The good link still carries traffic both ways.
    for (x, y) in [(&a, &c), (&c, &a)] {
        let t0 = Instant::now();
        loop {
            x.send_to(y.public_key(), b"still here").await.unwrap();
            if let Ok(Ok((from, data))) =
                tokio::time::timeout(Duration::from_millis(200), y.recv_from()).await
            {
                assert_eq!(
                    (from, data.as_slice()),
                    (x.public_key(), &b"still here"[..])
                );
                break;
            }
            assert!(t0.elapsed() < WAIT, "no datagram after the rogue peers");
        }
    }
    assert_eq!(a.peers().len(), 1);
    c.shutdown().await;
    a.shutdown().await;
}

/// Raw session payloads (a transport with its own header, as ygg_stream): sent without a
/// type byte, delivered whole on their own queue, as large as a 16 KiB segment and more;
/// datagrams keep their queue; a raw message that would read as a session type is refused.
#[tokio::test]
async fn raw_payloads_travel_beside_datagrams() {
    let a = Node::start([1; 32], listen_cfg()).await.unwrap();
    let uri = format!("tcp://{}", a.listen_addrs()[0]);
    let b = Node::start(
        [2; 32],
        NodeConfig {
            peers: vec![uri.parse().unwrap()],
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    until("peering", || !a.peers().is_empty() && !b.peers().is_empty()).await;
    let mut raw = a.take_raw_receiver().expect("raw receiver");
    assert!(a.take_raw_receiver().is_none(), "handed out once");
    // A ygg_stream-like segment from an ephemeral port (first byte 0xc0), and a packet from
    // a server's port 42 (first byte 0x00).
    let mut big = vec![0xc0, 0x00, 0x00, 0x2a];
    big.extend((0..16_396u32).map(|i| i as u8));
    let small = vec![0x00, 0x2a, 0xc0, 0x00, 9, 9];
    let t0 = Instant::now();
    let (mut got_big, mut got_small) = (false, false);
    while !(got_big && got_small) {
        assert!(t0.elapsed() < WAIT * 2, "raw payloads lost");
        // Until the session is up only the latest message waits: send both each time.
        b.try_send_raw(a.public_key(), big.clone()).unwrap();
        b.try_send_raw(a.public_key(), small.clone()).unwrap();
        while let Ok(Some((from, data))) =
            tokio::time::timeout(Duration::from_millis(200), raw.recv()).await
        {
            assert_eq!(from, b.public_key());
            got_big |= data == big;
            got_small |= data == small;
            assert!(data == big || data == small, "{} bytes", data.len());
        }
    }
    // Datagrams still arrive as datagrams, not as raw payloads.
    b.send_to(a.public_key(), b"datagram").await.unwrap();
    let (_, d) = tokio::time::timeout(WAIT, a.recv_from())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d, b"datagram");
    assert!(raw.try_recv().is_err());
    for reserved in [1u8, 2] {
        assert_eq!(
            b.try_send_raw(a.public_key(), vec![reserved, 0]),
            Err(yggnode::SendError::Reserved(reserved))
        );
    }
    a.shutdown().await;
    b.shutdown().await;
}
