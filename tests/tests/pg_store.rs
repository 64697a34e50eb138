//! The store's operations on both backends (#18): the same script of protocol and operator
//! operations runs through [`Store::write`] and [`Store::read`] on the embedded SQLite file
//! and on a real PostgreSQL server, and both must give the same transcript, which is also
//! checked against the values the protocol requires. A second test checks the writer's
//! contract on PostgreSQL: every caller answered after its commit, hooks in commit order,
//! a rejected command leaves nothing behind.

use mediator_tests::Postgres;
use mediator_wire::WireError;
use mediatord::store::audit::AuditEntry;
use mediatord::store::blocks::BlockRow;
use mediatord::store::{Reject, Store};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const OWNER: [u8; 32] = [1; 32];
const BOB: [u8; 32] = [2; 32];
const CAROL: [u8; 32] = [3; 32];

/// Runs the script on `store`; returns what it read, as text, line by line.
async fn script(store: &Store) -> Vec<String> {
    let out = store
        .write(|c| {
            let mut t = Vec::new();
            // A chat with a name that is not UTF-8, kept byte for byte.
            c.create_chat(7, &OWNER, b"caf\xe9", b"desc", Some(&[9, 9]), 100)?;
            c.add_member(7, &BOB, 101, 101)?;
            c.add_member(7, &CAROL, 102, 102)?;
            t.push(format!("settings {:?}", c.settings(7)?));
            t.push(format!("owner member {:?}", c.member(7, &OWNER)?));
            c.set_perms(7, &CAROL, 0x11, 103)?;
            c.record_ban(7, &CAROL, 0x90)?;
            t.push(format!(
                "carol {:?} rank {}",
                c.member(7, &CAROL)?,
                c.ban_rank(7, &CAROL)?
            ));
            t.push(format!(
                "carol required {:?}",
                c.require_member(7, &CAROL).map_err(|e| e.to_string())
            ));
            c.set_member_info(7, &BOB, b"bob's info", 104)?;
            t.push(format!("infos {:?}", {
                let mut v: Vec<_> = c.member_infos(7, &[&BOB, &OWNER])?.into_iter().collect();
                v.sort();
                v
            }));
            // Messages: ids in order, a retried send is the same message, a guid collision
            // bumps the guid.
            let a = c.insert_message(7, 50, &BOB, b"hello", 110)?;
            let again = c.insert_message(7, 50, &BOB, b"hello", 111)?;
            let other = c.insert_message(7, 50, &OWNER, b"other", 112)?;
            let big = c.insert_message(7, 60, &OWNER, &vec![5u8; 5000], 113)?;
            t.push(format!("inserted {a:?} {again:?} {other:?} {big:?}"));
            t.push(format!("last id {}", c.last_message_id(7)?));
            t.push(format!("author of 51 {:?}", c.message_author(7, 51)?));
            t.push(format!("guid of 3 {:?}", c.message_guid(7, 3)?));
            c.update_settings(7, Some(b"new name"), None, None)?;
            c.set_last_seen(7, &BOB, 120)?;
            t.push(format!("members {:?}", c.members(7, false)?));
            t.push(format!("all members {}", c.members(7, true)?.len()));
            t.push(format!("bob's chats {:?}", c.user_chats(&BOB)?));
            t.push(format!(
                "established {} {}",
                c.is_established(&BOB)?,
                c.is_established(&[8; 32])?
            ));
            let inv = c.insert_invite(&OWNER, &[8; 32], 7, b"secret", 130)?;
            t.push(format!(
                "pending {:?}",
                c.pending_invite(&[8; 32], 7)?.map(|p| p.1)
            ));
            t.push(format!(
                "invites {:?}",
                c.invites_for(&[8; 32], 0, 1 << 20)?.len()
            ));
            c.mark_invite_sent(inv)?;
            c.refresh_invite(inv, &BOB, b"again", 131)?;
            t.push(format!(
                "invite {:?}",
                c.invite(inv)?.map(|i| (i.from, i.data, i.timestamp))
            ));
            t.push(format!(
                "established by invite {}",
                c.is_established(&[8; 32])?
            ));
            t.push(format!("pending for {}", c.pending_invites_for(&[8; 32])?));
            c.put_block(&BlockRow {
                kind: "key".into(),
                value: "ab".into(),
                until: Some(200),
                reason: "spam".into(),
                created_at: 1,
            })?;
            c.put_block(&BlockRow {
                kind: "key".into(),
                value: "ab".into(),
                until: None,
                reason: "spam".into(),
                created_at: 2,
            })?;
            t.push(format!("blocks {:?}", c.active_blocks(1000)?));
            Ok(t)
        })
        .await
        .expect("script");
    let mut out = out;
    // Reads beside the writer.
    let read = store
        .read(|c| {
            let mut t = Vec::new();
            let mut ids = Vec::new();
            let page = c.each_message_since(7, 0, 10, 1000, false, &mut |m| {
                ids.push((m.id, m.guid, m.body.len()))
            })?;
            t.push(format!("page {page:?} {ids:?}"));
            let mut ids = Vec::new();
            let page = c.each_message_since(7, 2, 10, 1000, true, &mut |m| {
                ids.push((m.id, m.body.len()))
            })?;
            t.push(format!("page past 2 {page:?} {ids:?}"));
            t.push(format!("size {:?}", c.messages_since_size(7, 0, 10, 1000)?));
            t.push(format!("totals {:?}", c.totals()?));
            t.push(format!("details {:?}", c.chat_details(7)?));
            t.push(format!("list {:?}", c.chat_list(None)?));
            Ok(t)
        })
        .await
        .expect("reads");
    out.extend(read);
    // Retention, audit, a rejected command, deletion.
    let rest = store
        .write(|c| {
            let mut t = Vec::new();
            t.push(format!("over {:?}", c.chats_over(Some(1), None, 0, 10)?));
            t.push(format!("trimmed {}", c.trim_chat(7, Some(1), None, 100)?));
            t.push(format!("left {}", c.last_message_id(7)?));
            t.push(format!("purged {}", c.purge_older(None, 1000, 10)?));
            let e = AuditEntry {
                id: 0,
                ts: 5,
                uid: 1000,
                user: "alice".into(),
                action: "chats delete".into(),
                target: "chat 7".into(),
                result: "ok".into(),
            };
            let id = c.record(&e)?;
            t.push(format!(
                "audit {:?}",
                c.list(10, None)?
                    .into_iter()
                    .map(|a| a.id == id)
                    .collect::<Vec<_>>()
            ));
            c.delete_chat(7)?;
            t.push(format!("exists {}", c.chat_exists(7)?));
            Ok(t)
        })
        .await
        .expect("rest");
    out.extend(rest);
    let refused = store
        .write(|c| -> Result<(), Reject> {
            c.create_chat(8, &OWNER, b"x", b"", None, 1)?;
            Err(Reject::Wire(WireError::NoSuchChat))
        })
        .await;
    out.push(format!("refused {:?}", refused.map_err(|e| e.to_string())));
    out.push(format!(
        "after refusal {}",
        store.read(|c| Ok(c.chat_exists(8)?)).await.unwrap()
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_give_the_same_answers() {
    let pg = Postgres::start();
    let url = pg.create_database("store");
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(&dir.path().join("m.db")).unwrap();
    let postgres = mediatord::store::postgres::store::open(&url).expect("open postgres");
    let a = script(&sqlite).await;
    let b = script(&postgres).await;
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "sqlite and postgresql differ");
    }
    assert_eq!(a.len(), b.len());
    let line = |p: &str| a.iter().find(|l| l.starts_with(p)).unwrap().clone();
    assert!(
        line("settings").contains("name: [99, 97, 102, 233]"),
        "{}",
        line("settings")
    );
    assert_eq!(
        line("inserted"),
        "inserted Inserted { id: 1, guid: 50, ts: 110, duplicate: false } \
         Inserted { id: 1, guid: 50, ts: 110, duplicate: true } \
         Inserted { id: 2, guid: 51, ts: 112, duplicate: false } \
         Inserted { id: 3, guid: 60, ts: 113, duplicate: false }"
    );
    assert_eq!(line("page "), "page (2, true) [(1, 50, 5), (2, 51, 5)]");
    assert_eq!(line("page past 2"), "page past 2 (1, false) [(3, 5000)]");
    assert_eq!(line("trimmed"), "trimmed 2");
    assert_eq!(
        line("refused"),
        format!("refused Err({:?})", WireError::NoSuchChat.text())
    );
    assert_eq!(line("after refusal"), "after refusal false");
    let serving = pg
        .psql("store", "SELECT state FROM mediatord_schema")
        .unwrap();
    assert_eq!(serving.trim(), "serving");
    sqlite.shutdown();
    postgres.shutdown();
}

/// 200 concurrent commands on PostgreSQL: each answered, a rejected one rolled back alone,
/// hooks in the order the commands were executed (commit order), batches shared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_writer_keeps_commit_order_and_atomicity() {
    let pg = Postgres::start();
    let url = pg.create_database("writer");
    let store = mediatord::store::postgres::store::open(&url).expect("open postgres");
    store
        .write(|c| Ok(c.create_chat(1, &OWNER, b"c", b"", None, 1)?))
        .await
        .unwrap();
    let executed = Arc::new(Mutex::new(Vec::new()));
    let hooked = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..200usize {
        let (store, executed, hooked, next) = (
            store.clone(),
            executed.clone(),
            hooked.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let r = store
                .write_then(
                    move |c| {
                        let n = next.fetch_add(1, Ordering::SeqCst);
                        executed.lock().unwrap().push(n);
                        let ins = c.insert_message(1, i as i64 * 1000, &BOB, b"m", 1)?;
                        if i % 17 == 0 {
                            return Err(Reject::Wire(WireError::NoSuchChat));
                        }
                        Ok((n, ins.id))
                    },
                    move |(n, _)| hooked.lock().unwrap().push(*n),
                )
                .await;
            (i, r)
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        let (i, r) = t.await.unwrap();
        match r {
            Ok((_, id)) => ids.push(id),
            Err(Reject::Wire(w)) => assert_eq!((i % 17, w), (0, WireError::NoSuchChat)),
            Err(e) => panic!("{e}"),
        }
    }
    let hooked = hooked.lock().unwrap().clone();
    let mut sorted = hooked.clone();
    sorted.sort_unstable();
    assert_eq!(hooked, sorted, "hooks out of commit order");
    let kept = 200 - (0..200).filter(|i| i % 17 == 0).count();
    assert_eq!(hooked.len(), kept);
    // Rolled-back commands left no message and took no id for good.
    let stored: i64 = store
        .read(|c| Ok(c.totals()?.messages as i64))
        .await
        .unwrap();
    assert_eq!(stored as usize, kept);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), kept, "every acknowledged message has its own id");
    // A command that swallows a database error and says it succeeded: PostgreSQL has failed
    // its transaction, so its writes are rolled back and its caller is told; the next command
    // is not harmed.
    let swallowed = store
        .write(|c| {
            c.create_chat(50, &OWNER, b"a", b"", None, 1)?;
            let _ = c.create_chat(50, &OWNER, b"again", b"", None, 1);
            Ok(())
        })
        .await;
    assert!(
        swallowed.is_err(),
        "a failed transaction was reported as written"
    );
    let after = store
        .write(|c| {
            Ok((
                c.chat_exists(50)?,
                c.create_chat(51, &OWNER, b"b", b"", None, 1)?,
            ))
        })
        .await
        .unwrap();
    assert!(!after.0, "the swallowed command's writes were kept");
    let gauge = store.writer_state();
    assert!(gauge.queued == 0, "{gauge:?}");
    store.shutdown();
}
