//! All QUIC connections together are bounded (`limits.max_connections`), and strangers
//! filling the table cannot lock out an established member: at the limit a newcomer takes
//! the place of the oldest connection without a member's session, a member's connection is
//! never pushed out, a member's new connection gets in, and only when every place holds a
//! member's connection is a newcomer refused.

use mediator_client::{connect, random_key, Session};
use mediator_tests::daemon_with_config;
use std::net::SocketAddr;
use std::time::Duration;

async fn session(addr: SocketAddr, key: &ed25519_dalek::SigningKey) -> Session {
    let conn = connect(addr).await.expect("connect");
    let mut s = Session::open(&conn).await.expect("open");
    std::mem::forget(conn);
    s.auth(key).await.expect("auth");
    s
}

/// Whether the session still answers (a pushed-out connection is closed at once).
async fn alive(s: &mut Session) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.ping()).await,
        Ok(Ok(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_filling_the_connection_table_never_push_out_a_member() {
    let d = daemon_with_config("[limits]\nmax_connections = 4\n");
    let km = random_key();
    let mut member = session(d.addr, &km).await;
    member.create_chat("kept", "", None).await.unwrap();

    // Three strangers fill the table; two more push out the two oldest.
    let mut strangers = Vec::new();
    for _ in 0..3 {
        strangers.push(session(d.addr, &random_key()).await);
    }
    for _ in 0..2 {
        strangers.push(session(d.addr, &random_key()).await);
    }
    assert!(!alive(&mut strangers[0]).await, "the oldest stranger stays");
    assert!(!alive(&mut strangers[1]).await, "the second oldest stays");
    for s in &mut strangers[2..] {
        assert!(alive(s).await, "a newer stranger was pushed out");
    }
    assert!(alive(&mut member).await, "the member was pushed out");

    // The member's second connection gets in (it pushes out a stranger)...
    let mut again = session(d.addr, &km).await;
    assert!(alive(&mut again).await);
    assert!(alive(&mut member).await);
    // ... and so do two more members', until every place is a member's.
    let mut members = Vec::new();
    for name in ["two", "three"] {
        let mut s = session(d.addr, &random_key()).await;
        s.create_chat(name, "", None).await.unwrap();
        members.push(s);
    }
    for s in strangers.iter_mut() {
        assert!(!alive(s).await, "a stranger kept a member's place");
    }
    // A newcomer is refused now; the members all answer.
    let refused = async {
        let conn = connect(d.addr).await?;
        let mut s = Session::open(&conn).await?;
        s.auth(&random_key()).await
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(10), refused)
            .await
            .map_or(true, |r| r.is_err()),
        "a newcomer got a member's place"
    );
    for s in members.iter_mut().chain([&mut member, &mut again]) {
        assert!(alive(s).await, "a member was pushed out");
    }
}
