//! SEND_MESSAGE's storage on both backends (#18). The PostgreSQL writer stores the messages
//! of consecutive queued sends in one statement (`mediatord_send_messages`): set-based when
//! every guid is free, one message at a time when a run holds a retry or a guid collision.
//! The same runs go through the SQLite writer, which stores each send on its own, and both
//! must answer the same, run the hooks in queue order and keep the chats' counters. On
//! PostgreSQL the test also counts the function's calls (one per run, a run bounded in
//! bytes) and breaks an insert with a trigger, which must fail that message alone.

use mediator_tests::Postgres;
use mediator_wire::codes::perms;
use mediator_wire::WireError;
use mediatord::clock::Clock;
use mediatord::store::postgres::store::MAX_SEND_RUN_BYTES;
use mediatord::store::queries::{Inserted, NewMessage};
use mediatord::store::{Reject, Store};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const OWNER: [u8; 32] = [1; 32];
const BOB: [u8; 32] = [2; 32];
const CAROL: [u8; 32] = [3; 32];
const DAVE: [u8; 32] = [4; 32];
const EVE: [u8; 32] = [5; 32];

/// One send of a run: chat, guid, author, body.
type Send = (i64, i64, [u8; 32], &'static [u8]);

/// Chat 1 (Bob a member, Carol read-only, Dave banned) and chat 2 (Bob a member).
async fn setup(store: &Store) {
    store
        .write(|c| {
            c.create_chat(1, &OWNER, b"one", b"", None, 1)?;
            c.create_chat(2, &OWNER, b"two", b"", None, 1)?;
            for (chat, key) in [(1, BOB), (1, CAROL), (1, DAVE), (2, BOB)] {
                c.add_member(chat, &key, 1, 1)?;
            }
            c.set_perms(1, &CAROL, perms::READ_ONLY, 1)?;
            c.set_perms(1, &DAVE, perms::BANNED, 1)?;
            Ok(())
        })
        .await
        .unwrap();
}

/// Queues `sends` in order behind a write that holds the writer, so they form one run;
/// returns each answer and the stored messages the hooks saw, in the order they ran.
async fn run(store: &Store, clock: &Clock, sends: &[Send]) -> (Vec<String>, Vec<Inserted>) {
    let (started_tx, started) = std::sync::mpsc::channel::<()>();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let holder = store.clone();
    let hold = tokio::spawn(async move {
        holder
            .write(move |_| {
                let _ = started_tx.send(());
                let _ = released.recv_timeout(Duration::from_secs(30));
                Ok(())
            })
            .await
    });
    tokio::task::block_in_place(|| started.recv_timeout(Duration::from_secs(30)))
        .expect("the holding write never ran");
    let hooked = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (k, &(chat, guid, author, body)) in sends.iter().enumerate() {
        let (sender, clock, hooked) = (store.clone(), clock.clone(), hooked.clone());
        let msg = NewMessage {
            chat,
            guid,
            author,
            body: bytes::Bytes::from_static(body),
        };
        tasks.push(tokio::spawn(async move {
            sender
                .send_message(msg, clock, move |ins| hooked.lock().unwrap().push(ins))
                .await
        }));
        // Queued in this order, behind the holder.
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.writer_state().queued < k + 1 {
            assert!(Instant::now() < deadline, "send {k} was not queued");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    release.send(()).unwrap();
    hold.await.unwrap().unwrap();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(match t.await.unwrap() {
            Ok(i) => format!("{i:?}"),
            Err(Reject::Wire(w)) => format!("refused {w:?}"),
            Err(Reject::Store(_)) => "store error".to_string(),
        });
    }
    // A caller of SEND_MESSAGE is answered before its batch's hooks run; a write answers
    // after its own hook, so once it is answered every earlier hook has run.
    store.write(|_| Ok(())).await.unwrap();
    let hooked = hooked.lock().unwrap().clone();
    (answers, hooked)
}

fn stored(id: i64, guid: i64, ts: i64, duplicate: bool) -> String {
    format!(
        "{:?}",
        Inserted {
            id,
            guid,
            ts,
            duplicate
        }
    )
}

/// Every guid free: stored together, refusals answered, ids per chat in queue order.
const FRESH: &[Send] = &[
    (1, 10, BOB, b"a"),
    (2, 10, BOB, b"b"),
    (1, 40, CAROL, b"read-only"),
    (1, 41, DAVE, b"banned"),
    (1, 42, EVE, b"stranger"),
    (1, 11, BOB, b"c"),
    (99, 43, OWNER, b"no such chat"),
    (1, 12, OWNER, b"d"),
];

/// A retry, a collision that bumps twice, and two sends of the run under one guid.
const COLLIDING: &[Send] = &[
    (1, 10, BOB, b"a"),
    (1, 11, OWNER, b"x"),
    (1, 20, BOB, b"e"),
    (1, 20, BOB, b"f"),
    (1, 44, CAROL, b"read-only"),
];

/// Runs both runs on `store`; checks the answers, the hooks and the chats' last ids.
async fn both_runs(store: &Store) {
    let clock = Clock::manual(1000);
    setup(store).await;
    let (answers, hooked) = run(store, &clock, FRESH).await;
    let refused = |w: WireError| format!("refused {w:?}");
    assert_eq!(
        answers,
        [
            stored(1, 10, 1000, false),
            stored(1, 10, 1000, false),
            refused(WireError::ReadOnlyUser),
            refused(WireError::NotAMemberOrBanned),
            refused(WireError::NotAMemberOrBanned),
            stored(2, 11, 1000, false),
            refused(WireError::NotAMemberOrBanned),
            stored(3, 12, 1000, false),
        ]
    );
    let ids: Vec<(i64, i64)> = hooked.iter().map(|i| (i.id, i.guid)).collect();
    assert_eq!(
        ids,
        [(1, 10), (1, 10), (2, 11), (3, 12)],
        "hooks in queue order"
    );
    clock.advance(1000);
    let (answers, hooked) = run(store, &clock, COLLIDING).await;
    assert_eq!(
        answers,
        [
            stored(1, 10, 1000, true),
            stored(4, 13, 2000, false),
            stored(5, 20, 2000, false),
            stored(6, 21, 2000, false),
            refused(WireError::ReadOnlyUser),
        ]
    );
    assert_eq!(hooked.len(), 4, "a retry's hook sees it too: {hooked:?}");
    assert!(hooked[0].duplicate);
    let (last1, last2, total) = store
        .read(|c| {
            Ok((
                c.last_message_id(1)?,
                c.last_message_id(2)?,
                c.totals()?.messages,
            ))
        })
        .await
        .unwrap();
    assert_eq!((last1, last2, total), (6, 1, 7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_stores_sends_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("m.db")).unwrap();
    both_runs(&store).await;
    store.shutdown();
}

/// Calls of the server-side function `name` so far (statistics reach the view about a
/// second after the writer's session went idle).
fn calls(pg: &Postgres, db: &str, name: &str) -> i64 {
    let out = pg
        .psql(
            db,
            &format!(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions \
                 WHERE funcname = '{name}'"
            ),
        )
        .unwrap();
    out.trim().parse().unwrap()
}

/// Waits until the statistics show `want` calls of `name`; returns what they show then.
fn settled_calls(pg: &Postgres, db: &str, name: &str, want: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = calls(pg, db, name);
        if n >= want || Instant::now() > deadline {
            // Let a later flush show a call too many, if there was one.
            std::thread::sleep(Duration::from_millis(1500));
            return calls(pg, db, name);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stores_a_run_of_sends_in_one_statement() {
    let pg = Postgres::start();
    let url = pg.create_database("sends");
    pg.psql("sends", "ALTER DATABASE sends SET track_functions = 'pl'")
        .unwrap();
    let store = mediatord::store::postgres::store::open(&url).expect("open postgres");
    both_runs(&store).await;
    // One call per run; the fresh run needed no guid rule, the colliding one ran it for each
    // of its four members' messages.
    let runs = tokio::task::block_in_place(|| {
        (
            settled_calls(&pg, "sends", "mediatord_send_messages", 2),
            calls(&pg, "sends", "mediatord_insert_message"),
        )
    });
    assert_eq!(runs, (2, 4), "(runs stored, guid rules run)");
    // The counters the triggers and the function keep agree with the rows.
    let drift = pg
        .psql(
            "sends",
            "SELECT count(*) FROM chats c WHERE message_count <> \
                 (SELECT count(*) FROM messages m WHERE m.chat_id = c.id) \
             OR message_bytes <> (SELECT coalesce(sum(octet_length(body)), 0) \
                 FROM messages m WHERE m.chat_id = c.id) \
             OR last_message_id <> (SELECT coalesce(max(id), 0) \
                 FROM messages m WHERE m.chat_id = c.id)",
        )
        .unwrap();
    assert_eq!(drift.trim(), "0", "chats whose counters drifted");

    // An insert that fails: the run is rolled back and stored again one by one, so only
    // that message fails and its neighbours are stored.
    pg.psql(
        "sends",
        "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.body = 'boom'::bytea THEN RAISE EXCEPTION 'boom'; END IF; \
             RETURN NEW; END $$; \
         CREATE TRIGGER refuse_boom BEFORE INSERT ON messages \
             FOR EACH ROW EXECUTE FUNCTION refuse_boom();",
    )
    .unwrap();
    let clock = Clock::manual(3000);
    let (answers, hooked) = run(
        &store,
        &clock,
        &[
            (1, 30, BOB, b"g"),
            (1, 31, BOB, b"boom"),
            (2, 32, BOB, b"h"),
        ],
    )
    .await;
    assert_eq!(
        answers,
        [
            stored(7, 30, 3000, false),
            "store error".to_string(),
            stored(2, 32, 3000, false),
        ]
    );
    assert_eq!(hooked.len(), 2);
    let (last1, total) = store
        .read(|c| Ok((c.last_message_id(1)?, c.totals()?.messages)))
        .await
        .unwrap();
    assert_eq!((last1, total), (7, 9), "the failed message took no id");

    // A run stops growing at MAX_SEND_RUN_BYTES of bodies: three 5 MiB messages are stored
    // by two statements (two, then one).
    let before = tokio::task::block_in_place(|| {
        std::thread::sleep(Duration::from_millis(1500));
        calls(&pg, "sends", "mediatord_send_messages")
    });
    let big: &'static [u8] = Box::leak(vec![7u8; 5 << 20].into_boxed_slice());
    assert!(2 * big.len() >= MAX_SEND_RUN_BYTES && big.len() < MAX_SEND_RUN_BYTES);
    let (answers, _) = run(
        &store,
        &clock,
        &[(1, 60, BOB, big), (1, 61, BOB, big), (1, 62, BOB, big)],
    )
    .await;
    assert_eq!(
        answers,
        [
            stored(8, 60, 3000, false),
            stored(9, 61, 3000, false),
            stored(10, 62, 3000, false),
        ]
    );
    let runs = tokio::task::block_in_place(|| {
        settled_calls(&pg, "sends", "mediatord_send_messages", before + 2)
    });
    assert_eq!(runs - before, 2, "statements for three 5 MiB messages");
    store.shutdown();
}
