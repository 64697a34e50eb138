//! mediatorctl's output formats against a real daemon: JSON ids that survive jq 1.6 (which
//! holds every number as a double) back into the next command, plain tab-separated lines for
//! `cut`, and tables fitted to COLUMNS.

use mediator_tests::{bin_dir, user, Daemon};
use std::io::Write;
use std::process::{Command, Output, Stdio};

/// 2^53: integers above it are not all exact as doubles (jq 1.6, JavaScript).
const DOUBLE_EXACT: i64 = 1 << 53;
/// Chats created at most to get an id above 2^53; chat ids are random 63-bit numbers, so
/// each one is above it with probability 1 - 2^-10.
const CHAT_ATTEMPTS: usize = 4;

/// `mediatorctl --socket … ARGS…` with `COLUMNS` set to `columns` (or unset).
fn ctl(d: &Daemon, columns: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(bin_dir().join("mediatorctl"));
    c.arg("--socket")
        .arg(d.data_dir.join("control.sock"))
        .args(args)
        .stdin(Stdio::null());
    match columns {
        Some(w) => c.env("COLUMNS", w),
        None => c.env_remove("COLUMNS"),
    };
    let out = c.output().expect("running mediatorctl");
    assert!(
        out.status.success(),
        "mediatorctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `jq -r FILTER` over `input`: its output lines.
fn jq(filter: &str, input: &[u8]) -> Vec<String> {
    let mut child = Command::new("jq")
        .args(["-r", filter])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run jq ({e}): install it (apt-get install jq)"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "jq {filter} failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The issue this answers: `mediatorctl --json chats list | jq -r '.chats[0].id'` gave a
/// rounded id under jq 1.6, and `chats show` on it said "no chat". Ids are strings now: the
/// id jq prints is the chat's, to the last digit, and the next command finds the chat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_ids_survive_jq_into_the_next_command() {
    let d = Daemon::start();
    let (mut a, _) = user(d.addr).await;
    let mut big = None;
    for _ in 0..CHAT_ATTEMPTS {
        let id = a.create_chat("big id", "", None).await.unwrap();
        if id > DOUBLE_EXACT {
            big = Some(id);
            break;
        }
    }
    let big = big.expect("a chat id above 2^53");
    a.subscribe(big).await.unwrap();

    // What jq 1.6 makes of the id as a number: not the id (later versions keep the digits
    // of a literal they do not compute with, so this only shows on 1.6).
    let version = Command::new("jq").arg("--version").output().unwrap();
    if String::from_utf8_lossy(&version.stdout).trim() == "jq-1.6" {
        let as_number = jq(".id", format!("{{\"id\": {big}}}").as_bytes());
        assert_ne!(as_number, [big.to_string()], "jq 1.6 rounds numbers");
    }

    let list = ctl(&d, None, &["--json", "chats", "list"]).stdout;
    assert_eq!(jq(".chats[0].id | type", &list), ["string"]);
    let ids = jq(".chats[].id", &list);
    assert!(ids.contains(&big.to_string()), "{ids:?} lacks {big}");
    for id in &ids {
        let shown = ctl(&d, None, &["--output", "json", "chats", "show", id]).stdout;
        assert_eq!(jq(".id", &shown), std::slice::from_ref(id));
        assert_eq!(jq(".name", &shown), ["big id"]);
    }
    // The same for the chat ids of live sessions, and for session ids.
    let subs = ctl(&d, None, &["--json", "subscribers", "list"]).stdout;
    assert!(jq(".[].chats[]", &subs).contains(&big.to_string()));
    assert!(jq(".[].session_id | type", &subs)
        .iter()
        .all(|t| t == "string"));
    // Counts stay numbers.
    assert_eq!(jq(".total | type", &list), ["number"]);
}

/// `--output plain` is a header line and one tab-separated line per row, nothing shortened or
/// boxed, dates in UTC; tables are fitted to COLUMNS (keys shortened) and as wide as their
/// content without it; `--json` means `--output json` and contradicting it is a usage error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_lines_and_tables_fitted_to_columns() {
    let d = Daemon::start();
    let (mut a, ka) = user(d.addr).await;
    let owner = hex::encode(ka.verifying_key().to_bytes());
    let chat = a.create_chat("tab\there", "", None).await.unwrap();
    a.send_message(chat, 1, b"x").await.unwrap();

    let plain = ctl(&d, None, &["--output", "plain", "chats", "list"]).stdout;
    let plain = String::from_utf8(plain).unwrap();
    let lines: Vec<Vec<&str>> = plain.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2, "{plain}");
    assert_eq!(
        lines[0],
        [
            "id",
            "name",
            "owner",
            "created",
            "members",
            "messages",
            "last activity",
            "online"
        ]
    );
    let row = &lines[1];
    assert_eq!(row[0], chat.to_string());
    assert_eq!(row[1], "tab\\there", "a tab in a value is escaped");
    assert_eq!(row[2], owner);
    assert!(row[3].ends_with('Z') && row[3].len() == 20, "{}", row[3]);
    assert_eq!(row[5], "1");
    // Whatever the width, plain is never shortened or boxed.
    let narrow = ctl(&d, Some("40"), &["--output", "plain", "chats", "list"]).stdout;
    assert_eq!(String::from_utf8(narrow).unwrap(), plain);

    // Tables: whole keys without COLUMNS (pipes and files, as before), fitted with it.
    let wide =
        String::from_utf8(ctl(&d, None, &["members", "list", &chat.to_string()]).stdout).unwrap();
    assert!(wide.contains(&owner) && wide.contains('│'), "{wide}");
    for columns in ["80", "60"] {
        let fitted = ctl(&d, Some(columns), &["members", "list", &chat.to_string()]).stdout;
        let fitted = String::from_utf8(fitted).unwrap();
        let width: usize = columns.parse().unwrap();
        assert!(
            fitted.lines().all(|l| l.chars().count() <= width),
            "wider than {columns}:\n{fitted}"
        );
        if columns == "80" {
            // Room for the shortened key on one line (at 60 it wraps too).
            assert!(fitted.contains(&format!("{}…", &owner[..16])), "{fitted}");
        }
        assert!(
            !fitted.contains(&owner[..20]),
            "the key is shortened: {fitted}"
        );
    }
    let status = ctl(&d, Some("80"), &["status"]).stdout;
    let status = String::from_utf8(status).unwrap();
    assert!(status.lines().all(|l| l.chars().count() <= 80), "{status}");

    // --json is --output json; the two may agree but not disagree.
    let both = ctl(&d, None, &["--json", "--output", "json", "status"]).stdout;
    assert_eq!(jq(".chats", &both), ["1"]);
    let clash = Command::new(bin_dir().join("mediatorctl"))
        .arg("--socket")
        .arg(d.data_dir.join("control.sock"))
        .args(["--json", "--output", "plain", "status"])
        .output()
        .unwrap();
    assert_eq!(clash.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&clash.stderr).contains("--output json"),
        "{}",
        String::from_utf8_lossy(&clash.stderr)
    );
}
