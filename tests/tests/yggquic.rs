//! The real client stack over the real network: the Go client (yggdrasil-go v0.5.12 core with
//! quic-go v0.52 on top, using yggquic's conventions) dials mediatord by its ed25519 key and
//! drives the full scenario, once peered directly with mediatord's own Yggdrasil node and once
//! through the real yggdrasil daemon (multi-hop: lookup, path finding, encrypted sessions and
//! forwarding all real). A second connection from the same node key must replace the first:
//! the server closes the old connection and ends its session, the new one keeps working.

use mediator_tests::{bin_dir, free_tcp_port, go_client, Daemon, YggDaemon};
use std::process::Command;
use std::time::{Duration, Instant};

fn run_scenario(peer: &str, key: &[u8; 32], name: &str) -> String {
    let out = Command::new(go_client())
        .args([
            "-ygg-peer",
            peer,
            "-server-key",
            &hex::encode(key),
            "-scenario",
            name,
        ])
        .args(["-connect-timeout", "60s"])
        .output()
        .expect("running the Go client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "Go client over Yggdrasil failed ({name}):\n{text}"
    );
    assert!(text.contains(&format!("scenario {name}: OK")), "{text}");
    text
}

fn scenario(peer: &str, key: &[u8; 32]) {
    run_scenario(peer, key, "full");
}

#[test]
fn go_client_over_yggdrasil_peered_with_mediatord() {
    let port = free_tcp_port();
    let tmp = tempfile::tempdir().unwrap();
    let listen = format!("tcp://127.0.0.1:{port}");
    let d = Daemon::start_in(&tmp.path().join("d"), &["--listen", &listen]);
    scenario(&listen, &d.key);
}

#[test]
fn go_client_through_the_real_daemon() {
    let port = free_tcp_port();
    let ygg_listen = format!("tcp://127.0.0.1:{port}");
    let ygg = YggDaemon::start(std::slice::from_ref(&ygg_listen), &[]);
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start_in(
        &tmp.path().join("d"),
        &["--peer", &format!("{ygg_listen}?key={}", ygg.key)],
    );
    scenario(&ygg_listen, &d.key);
    drop(ygg);
}

#[test]
fn a_second_connection_from_the_same_node_replaces_the_first() {
    // The Go client (`-scenario replace`) holds connection 1 with an authenticated, subscribed
    // session, dials connection 2 from the same yggdrasil-go node without closing 1, and
    // requires that the server sends CONNECTION_CLOSE on 1 within 5 s, that the old session
    // is gone (GET_MEMBERS shows its user offline), and that requests on 2 keep succeeding.
    let port = free_tcp_port();
    let tmp = tempfile::tempdir().unwrap();
    let listen = format!("tcp://127.0.0.1:{port}");
    let d = Daemon::start_in(&tmp.path().join("d"), &["--listen", &listen]);
    let text = run_scenario(&listen, &d.key, "replace");
    eprintln!("{}", text.trim());
    // Nothing of either connection outlives the client on the server.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new(bin_dir().join("mediatorctl"))
            .arg("--socket")
            .arg(d.data_dir.join("control.sock"))
            .args(["--json", "status"])
            .output()
            .expect("running mediatorctl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if status["sessions"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sessions still open 10 s after the client exited: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
