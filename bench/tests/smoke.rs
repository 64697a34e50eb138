//! Runs `mediator-load smoke` (every standard scenario, tiny) and `smoke --only attacks`
//! (every attack scenario, tiny) against a freshly built `mediatord`, so `cargo test
//! --workspace` proves the load generator and the daemon still work together. It measures
//! nothing: debug builds, seconds of load.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (this crate lives in `bench/`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

/// Environment variable naming a prebuilt `mediatord` to use instead of building one.
const MEDIATORD_BIN_ENV: &str = "MEDIATORD_BIN";

/// Builds `mediatord` like `tests/support/lib.rs` does and returns its path (or the binary named by
/// [`MEDIATORD_BIN_ENV`]).
fn mediatord() -> PathBuf {
    if let Some(bin) = std::env::var_os(MEDIATORD_BIN_ENV) {
        return PathBuf::from(bin);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["build", "--quiet", "-p", "mediatord"])
        .status()
        .expect("running cargo build");
    assert!(status.success(), "cargo build -p mediatord failed");
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"))
        .join("debug")
        .join("mediatord")
}

/// Runs `mediator-load smoke` with `extra` arguments against a fresh debug `mediatord`,
/// requires a clean verdict (exit 0, no failure in the summary) and returns the table it
/// printed and the JSON summary.
fn smoke(extra: &[&str]) -> (String, serde_json::Value) {
    let daemon = mediatord();
    let tmp = tempfile::tempdir().expect("tempdir");
    let json = tmp.path().join("summary.json");
    let out = Command::new(env!("CARGO_BIN_EXE_mediator-load"))
        .arg("smoke")
        .args(extra)
        .arg("--mediatord")
        .arg(&daemon)
        .arg("--tmp-dir")
        .arg(tmp.path())
        .arg("--json")
        .arg(&json)
        .output()
        .expect("running mediator-load smoke");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&json).unwrap_or_else(|e| panic!("no summary ({e})\n{stderr}")),
    )
    .expect("JSON");
    let failures = &summary["failures"];
    assert!(
        out.status.success() && failures.as_array().is_some_and(Vec::is_empty),
        "smoke {extra:?}: exit status {} with failures {failures}\n--- stdout\n{stdout}\n\
         --- stderr\n{stderr}",
        out.status
    );
    assert_eq!(summary["smoke"], true);
    (stdout, summary)
}

#[test]
fn smoke_mode_passes_against_a_spawned_daemon() {
    let (stdout, summary) = smoke(&[]);
    for key in [
        "ingest",
        "fanout_rate",
        "fanout_max",
        "sessions",
        "sync",
        "sync_raw_quinn",
    ] {
        assert!(summary[key].is_object(), "{key} missing from the summary");
    }
    assert!(stdout.contains("scenario"), "no table: {stdout}");
}

/// Attack rows the summary must hold, in order.
const ATTACK_ROWS: usize = 8;

/// Every attack scenario runs tiny and reports a row: the legitimate user got through at
/// least once, every attacker did something, and the tool's verdict holds: in smoke mode
/// (debug builds, so no latency or memory targets) it fails when the legitimate user was
/// refused anything under any attack.
#[test]
fn attack_scenarios_run_in_smoke_mode() {
    let (stdout, summary) = smoke(&["--only", "attacks"]);
    let rows = summary["attacks"]["rows"].as_array().expect("attack rows");
    assert_eq!(rows.len(), ATTACK_ROWS, "{stdout}");
    for r in rows {
        let name = r["name"].as_str().unwrap_or("?");
        assert!(
            r["legit"]["ok"].as_u64() > Some(0),
            "{name}: no legitimate success"
        );
        if r["attack"] != "baseline" {
            let a = &r["attacker"];
            assert!(
                a["requests"].as_u64() > Some(0) || a["datagrams"].as_u64() > Some(0),
                "{name}: the attacker did nothing"
            );
        }
    }
    assert!(stdout.contains("legit p99"), "no attack table: {stdout}");
}

/// The chats scenario runs tiny: a database per size is written, served and measured, every
/// answer checked (the heavy key's chat count, the senders' acknowledgements), and a
/// version-4 file is imported at start.
#[test]
fn chats_scenario_runs_in_smoke_mode() {
    let (stdout, summary) = smoke(&["--only", "chats"]);
    let chats = &summary["chats"];
    let runs = chats["runs"].as_array().expect("chats runs");
    assert_eq!(runs.len(), 2, "{stdout}");
    for r in runs {
        assert!(r["start_s"].as_f64() > Some(0.0), "{r}");
        assert!(r["user_chats_count"].as_u64() > Some(0), "{r}");
    }
    assert!(
        chats["import"]["chats"].as_u64() > Some(0),
        "no import: {stdout}"
    );
    assert!(stdout.contains("import v4"), "no import row: {stdout}");
}

/// `mediator-load transports` (the ygg_stream against QUIC-inside-Yggdrasil row of
/// `bench/ygg-vs-udp.sh`) runs tiny against a daemon listening on Yggdrasil: one JSON line
/// per transport, every acknowledged message pushed exactly once (the command fails
/// otherwise).
#[test]
fn transports_command_runs_tiny() {
    use std::io::{BufRead, BufReader};
    let daemon = mediatord();
    let tmp = tempfile::tempdir().expect("tempdir");
    // The closed loop sends far faster than a person: as in the script, no per-key rate.
    let config = tmp.path().join("mediatord.toml");
    std::fs::write(
        &config,
        "[limits]\nrate_send_message_per_key = { per_sec = 1e9, burst = 1e9 }\n",
    )
    .expect("config");
    let mut child = Command::new(&daemon)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .arg("--config")
        .arg(&config)
        .args([
            "--quic-listen",
            "127.0.0.1:0",
            "--listen",
            "tcp://127.0.0.1:0",
        ])
        .args(["--log", "warn"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starting mediatord");
    let (mut key, mut ygg) = (None, None);
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.expect("mediatord stdout");
        if let Some(k) = line.strip_prefix("mediatord public key ") {
            key = Some(k.to_string());
        } else if let Some(u) = line.strip_prefix("listening yggdrasil ") {
            ygg = Some(u.to_string());
        }
        if key.is_some() && ygg.is_some() {
            break;
        }
    }
    let (key, ygg) = (key.expect("key"), ygg.expect("yggdrasil listener"));
    let out = Command::new(env!("CARGO_BIN_EXE_mediator-load"))
        .args(["transports", "--server-key", &key])
        .args(["--ygg-peer", &format!("{ygg}?key={key}")])
        .args(["--count", "20", "--window", "2", "--bench-time", "1s"])
        .output()
        .expect("running mediator-load transports");
    let _ = child.kill();
    let _ = child.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit status {}\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for l in &lines {
        assert_eq!(l["seq"]["n"], 20, "{l}");
        assert!(l["loop"]["msgs_per_s"].as_f64() > Some(0.0), "{l}");
    }
}
