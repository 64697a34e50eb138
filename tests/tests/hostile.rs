//! The hostile-network findings of issue 12, each tried against the real daemon the way an
//! attacker would: a key without a private key, a re-AUTH to keep a chat's pushes, and so on.
//! Every test here failed on `1b2834f`.

use mediator_client::{connect, Session};
use mediator_tests::{user, Daemon};
use std::time::Duration;

/// Canonical and non-canonical encodings of small-order points (see `yggnode::identity`'s
/// golden tests): keys with no private key behind them, and the R values that forge
/// signatures for them when S = 0.
const SMALL_ORDER: [&str; 14] = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "0100000000000000000000000000000000000000000000000000000000000080",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
];

fn point(h: &str) -> [u8; 32] {
    hex::decode(h).unwrap().try_into().unwrap()
}

/// Finding 1: AUTH as a small-order key with R of small order and S = 0. On `1b2834f` about
/// one (key, R) pair in eight logged in; now every one is "invalid signature", and the
/// session still works afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_order_keys_cannot_log_in() {
    let d = Daemon::start();
    let conn = connect(d.addr).await.unwrap();
    let mut s = Session::open(&conn).await.unwrap();
    for k in SMALL_ORDER {
        let pk = point(k);
        for r in SMALL_ORDER {
            let nonce = s.get_nonce(&pk).await.unwrap();
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&point(r));
            let err = s
                .auth_with(&pk, &nonce, &sig)
                .await
                .expect_err("a small-order key must not log in");
            assert_eq!(
                err.server_text(),
                Some("invalid signature"),
                "key {k} R {r}"
            );
        }
    }
    s.auth(&mediator_client::random_key()).await.unwrap();
}

/// Finding 6: a member re-AUTHs its subscribed session as a throwaway key, is banned, and
/// must not receive the chat's live messages any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauth_as_another_key_drops_subscriptions() {
    let d = Daemon::start();
    let (mut owner, _) = user(d.addr).await;
    let chat = owner.create_chat("room", "", None).await.unwrap();
    let (mut member, member_key) = user(d.addr).await;
    let member_pk = member_key.verifying_key().to_bytes();
    owner.add_user(chat, &member_pk).await.unwrap();
    member.subscribe(chat).await.unwrap();
    owner.send_message(chat, 1, b"before").await.unwrap();
    assert!(member
        .wait_message(Duration::from_secs(5), |m| m.message.blob == b"before")
        .await
        .is_some());

    member.auth(&mediator_client::random_key()).await.unwrap();
    owner.ban_user(chat, &member_pk).await.unwrap();
    owner.send_message(chat, 2, b"after the ban").await.unwrap();
    assert!(
        member
            .wait_message(Duration::from_secs(2), |m| m.message.blob
                == b"after the ban")
            .await
            .is_none(),
        "a banned member kept the chat's pushes through a re-AUTH"
    );
    // The owner saw the member go offline when its identity left the session.
    owner.ping().await.unwrap();
}

/// Runs `mediatord` on `dir` expecting it to refuse to start; returns its error output.
fn refused_start(dir: &std::path::Path) -> String {
    use std::process::{Command, Stdio};
    let mut child = Command::new(mediator_tests::bin_dir().join("mediatord"))
        .arg("--data-dir")
        .arg(dir)
        .args(["--quic-listen", "127.0.0.1:0", "--log", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("mediatord started on {} instead of refusing", dir.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    err
}

/// Finding 8: a second daemon on the same data directory exits with a clear error while the
/// first keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_daemon_on_the_same_directory_is_refused() {
    let mut d = Daemon::start();
    let err = refused_start(&d.data_dir);
    assert!(err.contains("another mediatord"), "{err}");
    assert!(err.contains(&d.child.id().to_string()), "{err}");
    assert!(d.alive());
    let (mut s, _) = user(d.addr).await;
    s.ping().await.unwrap();
}

/// Finding 10: a database without its key, an empty database and a damaged one are refused
/// with a message that says what to do; nothing in the directory is changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_key_and_damaged_database_are_refused() {
    let mut d = Daemon::start();
    let (mut s, _) = user(d.addr).await;
    s.create_chat("kept", "", None).await.unwrap();
    assert!(d.signal_and_wait(libc::SIGTERM).success());
    let dir = d.data_dir.clone();
    let key = std::fs::read(dir.join("mediator.key")).unwrap();
    let db = std::fs::read(dir.join("mediator.db")).unwrap();

    std::fs::remove_file(dir.join("mediator.key")).unwrap();
    let err = refused_start(&dir);
    assert!(err.contains("mediator.key is missing"), "{err}");
    assert!(
        !dir.join("mediator.key").exists(),
        "no new identity was made"
    );
    std::fs::write(dir.join("mediator.key"), &key).unwrap();

    std::fs::write(dir.join("mediator.db"), b"").unwrap();
    let err = refused_start(&dir);
    assert!(err.contains("is empty"), "{err}");

    let mut garbage = db.clone();
    garbage[..16].copy_from_slice(b"not a database!!");
    std::fs::write(dir.join("mediator.db"), &garbage).unwrap();
    let err = refused_start(&dir);
    assert!(err.contains("not an SQLite database"), "{err}");

    // A valid header over damaged pages: quick_check finds it.
    let mut damaged = db.clone();
    for b in damaged[4096..].iter_mut().step_by(7) {
        *b ^= 0x5a;
    }
    std::fs::write(dir.join("mediator.db"), &damaged).unwrap();
    let err = refused_start(&dir);
    assert!(
        err.contains("damaged") || err.contains("malformed"),
        "{err}"
    );

    std::fs::write(dir.join("mediator.db"), &db).unwrap();
    let d = Daemon::start_in(&dir, &[]);
    let (mut s, _) = user(d.addr).await;
    s.ping().await.unwrap();
    let _keep = d;
}
