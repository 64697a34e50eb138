//! The real client stack over the real network: the Go client (yggdrasil-go v0.5.12 core with
//! quic-go v0.52 on top, using yggquic's conventions) dials mediatord by its ed25519 key and
//! drives the full scenario, once peered directly with mediatord's own Yggdrasil node and once
//! through the real yggdrasil daemon (multi-hop: lookup, path finding, encrypted sessions and
//! forwarding all real).

use mediator_tests::{free_tcp_port, go_client, Daemon, YggDaemon};
use std::process::Command;

fn scenario(peer: &str, key: &[u8; 32]) {
    let out = Command::new(go_client())
        .args([
            "-ygg-peer",
            peer,
            "-server-key",
            &hex::encode(key),
            "-scenario",
            "full",
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
        "Go client over Yggdrasil failed:\n{text}"
    );
    assert!(text.contains("scenario full: OK"), "{text}");
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
