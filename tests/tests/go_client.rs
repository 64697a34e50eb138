//! A real-stack client: the Go test client (quic-go v0.52 with yggquic's exact TLS and QUIC
//! settings: no ALPN, a 64-character SNI, no certificate verification) drives the full
//! scenario against the real daemon over UDP QUIC.

use mediator_tests::{go_client, Daemon};
use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(go_client())
        .args(args)
        .output()
        .expect("running the Go client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn go_client_full_scenario_over_udp_with_64_char_sni() {
    let d = Daemon::start();
    let addr = d.addr.to_string();
    let key = hex::encode(d.key);
    let (ok, text) = run(&["-udp", &addr, "-server-key", &key, "-scenario", "full"]);
    assert!(ok, "Go client failed:\n{text}");
    assert!(text.contains("scenario full: OK"), "{text}");
}

#[test]
fn go_client_detects_a_wrong_server_key() {
    // The check can fail: the client compares the certificate key with the expected one.
    let d = Daemon::start();
    let (ok, text) = run(&[
        "-udp",
        &d.addr.to_string(),
        "-server-key",
        &"00".repeat(32),
        "-scenario",
        "ping",
    ]);
    assert!(!ok, "a wrong key must be detected:\n{text}");
}

#[test]
fn go_client_unit_tests_and_vet() {
    // The Go client's own codec tests (spec worked examples) and its fake-server scenarios,
    // including the run over two in-process yggdrasil-go nodes.
    let dir = mediator_tests::workspace_root().join("tests/go/mimirclient");
    let go = std::env::var("GO").unwrap_or_else(|_| "go".into());
    for args in [&["vet", "./..."][..], &["test", "-count=1", "./..."][..]] {
        let out = Command::new(&go)
            .current_dir(&dir)
            .args(args)
            .output()
            .expect("running go (install Go, see .ci/test)");
        assert!(
            out.status.success(),
            "go {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
