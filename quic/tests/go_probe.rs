//! Interoperability with a real yggquic-style client: quic-go v0.52.0
//! dialing with a 64-character SNI, no ALPN and certificate verification
//! skipped (the Go program in `tests/go/quicprobe`).
//!
//! Requirements: a Go toolchain, 1.25.1 or newer (`go` on PATH, or its path
//! in `$GO`), and either a populated Go module cache or access to the Go
//! module proxy, so that `go build` can fetch quic-go v0.52.0 (pinned by
//! `go.sum`). A missing toolchain or a failed build makes the tests fail,
//! never pass silently.
//!
//! * `yggquic_client_completes_handshake_and_echoes` is the proof that our
//!   server accepts what real clients send.
//! * `yggquic_client_accepts_our_retry` checks quic-go accepts the Retry
//!   integrity tag our server glue computes.
//! * `stock_quinn_server_rejects_yggquic_client` is the negative control:
//!   quinn's own rustls 0.23 server configuration, with the same
//!   certificate, fails the same probe, which is why this crate exists.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use mediator_quic::{server_config, NodeCertificate, QuicSettings};
use quinn::rustls::pki_types::PrivateKeyDer;
use support::{spawn_echo_server, spawn_echo_server_with_retry, ServerReport};

const SEED: [u8; 32] = [0x5a; 32];

/// Overall deadline the probe gets for dialing, echoing and closing.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

fn probe_source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/go/quicprobe")
}

fn go_command() -> String {
    std::env::var("GO").unwrap_or_else(|_| "go".to_owned())
}

/// Builds the Go probe once per test binary and returns its path.
fn probe_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let go = go_command();
        match Command::new(&go).arg("version").output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "`{go} version` failed ({}): the Go toolchain is required for this test \
                 (install Go 1.25.1 or newer, or set $GO)\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(error) => panic!(
                "cannot run `{go}`: {error}. The Go toolchain is required for this test \
                 (install Go 1.25.1 or newer and put `go` on PATH, or set $GO)"
            ),
        }
        let output = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("quicprobe");
        let build = Command::new(&go)
            .args(["build", "-mod=readonly", "-o"])
            .arg(&output)
            .arg(".")
            .current_dir(probe_source_dir())
            .output()
            .unwrap_or_else(|error| panic!("cannot run `{go} build`: {error}"));
        assert!(
            build.status.success(),
            "building the Go probe failed ({}); it needs quic-go v0.52.0 from the module cache \
             or the Go module proxy:\n{}",
            build.status,
            String::from_utf8_lossy(&build.stderr)
        );
        output
    })
}

struct ProbeOutcome {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs the probe against `addr` (in a blocking thread, so the server keeps
/// running on the test's runtime).
async fn run_probe(addr: std::net::SocketAddr, payload: &str) -> ProbeOutcome {
    let binary = probe_binary().to_owned();
    let payload = payload.to_owned();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(binary)
            .arg("-payload")
            .arg(payload)
            .arg("-timeout")
            .arg(format!("{}s", PROBE_TIMEOUT.as_secs()))
            .arg(addr.to_string())
            .output()
            .expect("run the Go probe");
        ProbeOutcome {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

/// Finds `key=value` in the probe's success line.
fn fact<'a>(stdout: &'a str, key: &str) -> Option<&'a str> {
    stdout
        .split_whitespace()
        .find_map(|field| field.strip_prefix(key)?.strip_prefix('='))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yggquic_client_completes_handshake_and_echoes() {
    let settings = QuicSettings::default();
    let mut server = spawn_echo_server(server_config(&SEED, &settings).unwrap(), &settings);
    let payload = "mediator handshake probe: 64-char SNI, no ALPN";

    let outcome = run_probe(server.addr, payload).await;
    assert!(
        outcome.success,
        "Go probe failed against our server:\nstdout: {}\nstderr: {}",
        outcome.stdout, outcome.stderr
    );
    let stdout = outcome.stdout.trim();
    eprintln!("Go probe: {stdout}");
    assert!(stdout.starts_with("OK "), "{stdout}");
    assert_eq!(fact(stdout, "sni_len"), Some("64"), "{stdout}");
    assert_eq!(fact(stdout, "alpn"), Some("\"\""), "{stdout}");
    assert_eq!(fact(stdout, "tls_version"), Some("0x0304"), "{stdout}");
    assert_eq!(fact(stdout, "server_certs"), Some("1"), "{stdout}");
    let node_key = SigningKey::from_bytes(&SEED).verifying_key().to_bytes();
    assert_eq!(
        fact(stdout, "server_key"),
        Some(hex::encode(node_key).as_str()),
        "{stdout}"
    );
    assert_eq!(
        fact(stdout, "echoed"),
        Some(payload.len().to_string().as_str())
    );

    // The server saw no ALPN and, the 64-character SNI being invalid, no
    // server name.
    match server.next_report().await {
        ServerReport::Connected { handshake, .. } => {
            let handshake = handshake.expect("server handshake data");
            assert_eq!(handshake.protocol, None);
            assert_eq!(handshake.server_name, None);
        }
        ServerReport::Failed(error) => panic!("server reported a failed handshake: {error}"),
    }
    server.endpoint.close(0u32.into(), b"done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yggquic_client_accepts_our_retry() {
    let settings = QuicSettings::default();
    let mut server =
        spawn_echo_server_with_retry(server_config(&SEED, &settings).unwrap(), &settings);
    let outcome = run_probe(server.addr, "after a Retry").await;
    assert!(
        outcome.success,
        "Go probe failed after a Retry:\nstdout: {}\nstderr: {}",
        outcome.stdout, outcome.stderr
    );
    assert!(matches!(
        server.next_report().await,
        ServerReport::Connected { .. }
    ));
    server.endpoint.close(0u32.into(), b"done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_quinn_server_rejects_yggquic_client() {
    let settings = QuicSettings::default();
    let node = NodeCertificate::from_seed(&SEED).unwrap();
    let mut stock = quinn::ServerConfig::with_single_cert(
        vec![node.certificate.clone()],
        PrivateKeyDer::Pkcs8(node.private_key.clone_key()),
    )
    .expect("quinn's rustls 0.23 server config");
    stock.transport_config(Arc::new(settings.transport_config().unwrap()));
    let mut server = spawn_echo_server(stock, &settings);

    let outcome = run_probe(server.addr, "should never be echoed").await;
    assert!(
        !outcome.success,
        "the Go probe unexpectedly succeeded against quinn's stock rustls 0.23 server:\n{}",
        outcome.stdout
    );
    eprintln!("Go probe (expected failure): {}", outcome.stderr.trim());
    assert!(
        outcome.stderr.contains("handshake"),
        "probe failed for another reason than the handshake:\n{}",
        outcome.stderr
    );
    match server.next_report().await {
        ServerReport::Failed(error) => eprintln!("stock server refused the probe: {error}"),
        ServerReport::Connected { .. } => panic!("stock server completed the handshake"),
    }
    server.endpoint.close(0u32.into(), b"done");
}
