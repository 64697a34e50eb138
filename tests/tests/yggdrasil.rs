//! mediatord's embedded Yggdrasil node against the real yggdrasil 0.5 daemon: peering in both
//! directions with the mediator's own key, its NodeInfo reachable through the network (lookup,
//! path finding and encrypted sessions), and the peers visible through mediatorctl.

use mediator_tests::{free_tcp_port, Daemon, YggDaemon};
use std::time::{Duration, Instant};

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn check(d: &Daemon, ygg: &YggDaemon) {
    let ours = hex::encode(d.key);
    wait_until("the daemon to list mediatord as a peer", || {
        ygg.peer_keys().contains(&ours)
    });
    // NodeInfo travels through lookup, path finding and an encrypted session.
    let mut info = None;
    wait_until("getNodeInfo of the mediator", || {
        info = ygg.ctl(&["getNodeInfo", &format!("key={ours}")]).ok();
        info.is_some()
    });
    let info = info.unwrap();
    let entry = info.get(&ours).unwrap_or(&info);
    assert_eq!(entry["name"], "mediatord", "{info}");
    assert_eq!(entry["version"], env!("CARGO_PKG_VERSION"));
    let peers = d.ctl_json(&["peers", "list"]);
    assert_eq!(peers["enabled"], true);
    assert!(
        peers["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["key"] == ygg.key),
        "{peers}"
    );
    let status = d.ctl_json(&["status"]);
    assert_eq!(status["yggdrasil_peers"], 1);
    assert_eq!(status["yggdrasil_root"].as_str().unwrap().len(), 64);
}

#[test]
fn mediatord_dials_the_real_daemon() {
    let port = free_tcp_port();
    let ygg = YggDaemon::start(&[format!("tcp://127.0.0.1:{port}")], &[]);
    let tmp = tempfile::tempdir().unwrap();
    let peer = format!("tcp://127.0.0.1:{port}?key={}", ygg.key);
    let d = Daemon::start_in(&tmp.path().join("d"), &["--peer", &peer]);
    check(&d, &ygg);
}

#[test]
fn the_real_daemon_dials_mediatord() {
    let port = free_tcp_port();
    let tmp = tempfile::tempdir().unwrap();
    let listen = format!("tcp://127.0.0.1:{port}");
    let d = Daemon::start_in(&tmp.path().join("d"), &["--listen", &listen]);
    let ygg = YggDaemon::start(&[], &[format!("{listen}?key={}", hex::encode(d.key))]);
    check(&d, &ygg);
}

/// SIGHUP applies a changed `[yggdrasil] peers` list without a restart and without dropping
/// sessions: an added peer is dialled, a removed one disconnected, and a configuration that does
/// not parse changes nothing.
#[test]
fn sighup_reloads_the_yggdrasil_peers() {
    let port = free_tcp_port();
    let ygg = YggDaemon::start(&[format!("tcp://127.0.0.1:{port}")], &[]);
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("mediatord.toml");
    let write = |peers: &str| {
        std::fs::write(
            &conf,
            format!("[yggdrasil]\nlisten = [\"tcp://127.0.0.1:0\"]\npeers = [{peers}]\n"),
        )
        .unwrap()
    };
    write("");
    let conf_arg = conf.display().to_string();
    let mut d = Daemon::start_in(&tmp.path().join("d"), &["--config", &conf_arg]);
    let ours = hex::encode(d.key);
    let hup = |d: &Daemon| {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(d.child.id() as i32, libc::SIGHUP) };
    };
    // A session over plain QUIC that must survive every reload.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut session, _) = rt.block_on(mediator_tests::user(d.addr));

    std::thread::sleep(Duration::from_secs(1));
    assert!(!ygg.peer_keys().contains(&ours), "no peer configured yet");

    write(&format!("\"tcp://127.0.0.1:{port}?key={}\"", ygg.key));
    hup(&d);
    wait_until("the added peer to come up", || {
        ygg.peer_keys().contains(&ours)
    });
    let peers = d.ctl_json(&["peers", "list"]);
    assert_eq!(peers["peers"].as_array().unwrap().len(), 1, "{peers}");

    // A broken file is rejected as a whole: the peer stays.
    std::fs::write(&conf, "[yggdrasil]\npeers = [\"udp://nowhere\"]\n").unwrap();
    hup(&d);
    std::thread::sleep(Duration::from_secs(2));
    assert!(d.alive());
    assert!(
        ygg.peer_keys().contains(&ours),
        "a bad reload dropped the peer"
    );

    write("");
    hup(&d);
    wait_until("the removed peer to go down", || {
        !ygg.peer_keys().contains(&ours)
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !ygg.peer_keys().contains(&ours),
        "a removed peer was redialled"
    );
    let peers = d.ctl_json(&["peers", "list"]);
    assert!(peers["peers"].as_array().unwrap().is_empty(), "{peers}");

    rt.block_on(session.ping())
        .expect("the session survived the reloads");
    assert!(d.alive());
}

/// A configured peer that cannot be reached is listed as down with its dialer's last error
/// and how many attempts failed, in the table and in JSON.
#[test]
fn a_peer_that_is_down_is_listed_with_its_error() {
    let tmp = tempfile::tempdir().unwrap();
    // A port nothing listens on: every dial is refused.
    let port = free_tcp_port();
    let peer = format!("tcp://127.0.0.1:{port}");
    let d = Daemon::start_in(&tmp.path().join("d"), &["--peer", &peer]);
    let mut listed = serde_json::Value::Null;
    wait_until("the failed dial to be recorded", || {
        listed = d.ctl_json(&["peers", "list"]);
        listed["peers"][0]["failures"].as_u64().unwrap_or(0) >= 1
    });
    let p = &listed["peers"][0];
    assert_eq!(listed["peers"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(p["uri"], peer.as_str(), "{listed}");
    assert_eq!(p["up"], false, "{listed}");
    assert_eq!(p["key"], "", "no key before a handshake: {listed}");
    let error = p["last_error"].as_str().unwrap();
    assert!(error.to_lowercase().contains("refused"), "{listed}");
    assert!(p["last_error_at"].as_i64().unwrap() > 0, "{listed}");
    let table = d.ctl(&["peers", "list"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success(), "{table:?}");
    assert!(text.contains("down") && text.contains(&peer), "{text}");
    assert!(text.to_lowercase().contains("refused"), "{text}");
}
