//! The configuration file and the systemd notifications, against the real binary.

use mediator_tests::{bin_dir, workspace_root};
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

fn mediatord() -> Command {
    Command::new(bin_dir().join("mediatord"))
}

#[test]
fn check_config_accepts_the_shipped_example_and_names_bad_keys() {
    let example = workspace_root().join("packaging/mediatord.toml");
    let out = mediatord()
        .arg("--check-config")
        .arg("--config")
        .arg(&example)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[limits]\nmax_sesions = 5\n").unwrap();
    let out = mediatord()
        .arg("--check-config")
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml: line 2, column 1, limits.max_sesions: unknown field"),
        "{err}"
    );
    let out = mediatord()
        .arg("--check-config")
        .arg("--config")
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.toml"), "{err}");
    assert_eq!(
        err.matches("No such file").count(),
        1,
        "the reason once: {err}"
    );
    // A control group the operator names must exist; a log filter must log something.
    for (text, want) in [
        (
            "[control]\ngroup = \"no-such-group-xyz\"\n",
            "control group \"no-such-group-xyz\" does not exist",
        ),
        ("log = \"verbose\"\n", "\"verbose\" is neither a level"),
    ] {
        std::fs::write(&bad, text).unwrap();
        let out = mediatord()
            .arg("--check-config")
            .arg("--config")
            .arg(&bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn flags_override_the_file_and_notify_ready_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("m.toml");
    let data = dir.path().join("from-file");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\nlog = \"warn\"\n[quic]\nlisten = [\"127.0.0.1:1\"]\n[control]\nsocket = {:?}\n",
            data.display().to_string(),
            dir.path().join("ctl.sock").display().to_string()
        ),
    )
    .unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut child = mediatord()
        .arg("--config")
        .arg(&cfg)
        .args(["--quic-listen", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", &notify_path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("READY notification");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.contains("READY=1"), "{msg}");
    assert!(msg.contains(&format!("MAINPID={}", child.id())), "{msg}");
    assert!(
        msg.contains("\nSTATUS=0 sessions, 0 chats"),
        "a status line for systemctl status: {msg}"
    );
    // The file's data dir and socket are used; the flag replaced the file's listen address.
    assert!(data.join("mediator.key").exists());
    assert!(dir.path().join("ctl.sock").exists());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.starts_with("listening quic 127.0.0.1:") && !first.ends_with(":1"),
        "{first}"
    );
    // SIGHUP reloads without stopping.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let n = notify.recv(&mut buf).expect("RELOADING notification");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("RELOADING=1"));
    let n = notify.recv(&mut buf).expect("READY after reload");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    assert!(
        child.try_wait().unwrap().is_none(),
        "still running after SIGHUP"
    );
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let n = notify.recv(&mut buf).expect("STOPPING notification");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
    assert!(child.wait().unwrap().success());
    assert!(
        !dir.path().join("ctl.sock").exists(),
        "socket removed on exit"
    );
}

/// Starts the daemon with SIGHUP and SIGTERM at their default action (terminate), whatever
/// this test process inherited, and returns it once it printed its first line (it is then
/// still starting: the control socket and READY come later).
fn start_and_catch_it_starting(dir: &std::path::Path) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let mut cmd = mediatord();
    cmd.arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--quic-listen", "127.0.0.1:0", "--log", "warn"])
        .arg("--control-socket")
        .arg(dir.join("ctl.sock"))
        .stdout(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.starts_with("listening quic"), "{first}");
    // Keep reading so the daemon never blocks on a full pipe.
    std::thread::spawn(move || for _ in out.lines() {});
    child
}

/// A SIGHUP that arrives while the daemon is still starting is handled, not fatal: the daemon
/// finishes starting and keeps serving. A SIGTERM that arrives while it is starting stops it
/// cleanly (exit status 0), not by the signal's default action.
#[test]
fn signals_during_start_up_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_and_catch_it_starting(dir.path());
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the daemon died of a SIGHUP sent while it was starting"
    );
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());

    let dir = tempfile::tempdir().unwrap();
    let mut child = start_and_catch_it_starting(dir.path());
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM while starting: {status}");
}

/// Runs the daemon with stdout and stderr on one file until its log says it started, then
/// stops it; returns the file's text. `journal` sets `JOURNAL_STREAM` to that file, as
/// systemd does when both streams go to the journal.
fn started_output(journal: bool) -> String {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out");
    let out = std::fs::File::create(&path).unwrap();
    let md = out.metadata().unwrap();
    let mut cmd = mediatord();
    cmd.arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--quic-listen", "127.0.0.1:0", "--log", "debug"])
        // Text even under the journal's stream: the native protocol has its own test (logs.rs).
        .args(["--log-format", "text"])
        .env_remove("JOURNAL_STREAM")
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    if journal {
        cmd.env("JOURNAL_STREAM", format!("{}:{}", md.dev(), md.ino()));
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline
        && !std::fs::read_to_string(&path)
            .unwrap()
            .contains("mediatord started")
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    // A control call at debug level: what tonic and h2 would log about their frames.
    let _ = Command::new(bin_dir().join("mediatorctl"))
        .arg("--socket")
        .arg(dir.path().join("data/control.sock"))
        .arg("status")
        .output();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("mediatord started"), "{text}");
    text
}

/// Under the journal: no timestamps (the journal stamps lines), no colour, and the start-up
/// lines for scripts are not printed a second time; elsewhere (a file, not a terminal):
/// timestamps, still no colour, and the start-up lines. A bare `debug` is about mediatord:
/// no frame-level lines from h2 or tonic.
#[test]
fn logs_fit_where_they_go() {
    let journal = started_output(true);
    assert!(
        !journal.contains('\u{1b}'),
        "colour under the journal:\n{journal}"
    );
    assert!(!journal.contains("listening quic"), "{journal}");
    assert!(!journal.contains("mediatord public key"), "{journal}");
    let started = journal
        .lines()
        .find(|l| l.contains("mediatord started"))
        .unwrap();
    assert!(started.trim_start().starts_with("INFO"), "{started}");
    let file = started_output(false);
    assert!(!file.contains('\u{1b}'), "colour in a file:\n{file}");
    assert!(file.contains("listening quic 127.0.0.1:"), "{file}");
    assert!(file.contains("mediatord public key "), "{file}");
    let started = file
        .lines()
        .find(|l| l.contains("mediatord started"))
        .unwrap();
    assert!(started.starts_with("20"), "a timestamp first: {started}");
    for text in [&journal, &file] {
        assert!(
            !text
                .lines()
                .any(|l| l.contains(" h2::") || l.contains(" tonic::")),
            "frame-level lines at a bare debug:\n{text}"
        );
    }
}

/// `--print-config` shows the file's settings, the flags over them and the defaults for the
/// rest, as a configuration file that itself passes `--check-config` and prints the same.
#[test]
fn print_config_shows_file_flags_and_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.toml");
    std::fs::write(
        &file,
        "log = \"mediatord=debug\"\n[metrics]\nlisten = \"127.0.0.1:9464\"\n[retention]\nmax_age = \"90d\"\n",
    )
    .unwrap();
    let print = |config: &std::path::Path, extra: &[&str]| {
        let out = mediatord()
            .arg("--config")
            .arg(config)
            .args(extra)
            .arg("--print-config")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let text = print(&file, &["--quic-listen", "127.0.0.1:5555"]);
    assert!(text.contains("log = \"mediatord=debug\""), "{text}");
    assert!(text.contains("listen = \"127.0.0.1:9464\""), "{text}");
    assert!(text.contains("max_age = 7776000"), "{text}");
    assert!(
        text.contains("listen = [\"127.0.0.1:5555\"]"),
        "flag over file: {text}"
    );
    assert!(text.contains("max_sessions = 100000"), "a default: {text}");
    let again = dir.path().join("printed.toml");
    std::fs::write(&again, &text).unwrap();
    let check = mediatord()
        .arg("--config")
        .arg(&again)
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    assert_eq!(
        print(&again, &[]),
        text,
        "the printed file reads back the same"
    );
}
