//! The stack's shared limits against many keys: the buffer budget (unprotected connections
//! stop at the shared part but for their floor, protected ones go on into the reserve, room
//! comes back as bytes are read or acknowledged, and nothing is left counted once every
//! connection is gone),
//! and the connection table at [`MAX_CONNS`] (the oldest unprotected connection gives way,
//! protected ones never do).

use super::*;
use crate::conn::{ConnError, SEGMENT_OVERHEAD};
use crate::packet::{DEFAULT_WINDOW, SEGMENT_SIZE};

const PORT: u16 = 42;
const CLIENT_PORT: u16 = 50000;
const SMALL: Budget = Budget {
    shared: 4 * SEGMENT_SIZE,
    reserve: 2 * SEGMENT_SIZE,
};

fn key(i: usize) -> Key {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&(i as u64).to_be_bytes());
    k
}

/// Opens and accepts a connection from `key`'s `port`.
fn open(s: &mut Stack, key: Key, port: u16, now: Instant) -> ConnId {
    s.on_message(key, &Header::syn(port, PORT).to_bytes(), now);
    s.on_message(key, &Header::handshake_ack(port, PORT).to_bytes(), now);
    while s.poll_transmit().is_some() {}
    s.accept(PORT).expect("accepted")
}

/// The `i`th full segment from `key`; returns the ACK number the stack answered with, if
/// it answered.
fn segment(s: &mut Stack, key: Key, i: usize, now: Instant) -> Option<u32> {
    let seq = (i * SEGMENT_SIZE) as u32;
    let p = Header::data(CLIENT_PORT, PORT, seq, 0, DEFAULT_WINDOW).packet(&[7; SEGMENT_SIZE]);
    s.on_message(key, &p, now);
    s.collect_all();
    let mut ack = None;
    while let Some((to, p)) = s.poll_transmit() {
        assert_eq!(to, key);
        ack = Some(Header::decode(&p).unwrap().0.ack);
    }
    ack
}

fn drain(s: &mut Stack, id: ConnId) -> usize {
    let mut buf = vec![0u8; 1 << 20];
    let n = s.conn(id).unwrap().read(&mut buf);
    s.collect(id);
    n
}

/// A stack with the [`SMALL`] budget listening on [`PORT`], and an accepted connection from
/// each of two keys: the keys and the connections.
fn two_connections(now: Instant) -> (Stack, Key, Key, ConnId, ConnId) {
    let mut s = Stack::with_budget(1, SMALL);
    s.listen(PORT);
    let (a, b) = (key(1), key(2));
    let ca = open(&mut s, a, CLIENT_PORT, now);
    let cb = open(&mut s, b, CLIENT_PORT, now);
    (s, a, b, ca, cb)
}

#[test]
fn received_bytes_stop_at_the_shared_budget_except_for_protected_connections() {
    let now = Instant::now();
    let (mut s, a, b, ca, cb) = two_connections(now);
    for i in 0..4 {
        let ack = segment(&mut s, a, i, now);
        assert_eq!(ack, Some(((i + 1) * SEGMENT_SIZE) as u32));
    }
    assert_eq!(s.buffered(), SMALL.shared);
    assert!(s.is_under_pressure());
    // Spent: the next segment is dropped without an answer, for anyone unprotected.
    assert_eq!(segment(&mut s, a, 4, now), None);
    assert_eq!(segment(&mut s, b, 0, now), None);
    assert_eq!(s.conn(cb).unwrap().readable(), 0);
    // ... but a login-sized request fits in every connection's floor.
    let login = Header::data(CLIENT_PORT + 1, PORT, 0, 0, DEFAULT_WINDOW).packet(&[1; 200]);
    let cc = open(&mut s, key(3), CLIENT_PORT + 1, now);
    s.on_message(key(3), &login, now);
    assert_eq!(s.conn(cc).unwrap().readable(), 200);
    assert_eq!(drain(&mut s, cc), 200);
    s.release(cc);
    while s.poll_transmit().is_some() {}
    // A protected connection goes on into the reserve, and stops at its end.
    s.protect(cb, true);
    assert_eq!(segment(&mut s, b, 0, now), Some(SEGMENT_SIZE as u32));
    assert_eq!(segment(&mut s, b, 1, now), Some(2 * SEGMENT_SIZE as u32));
    assert_eq!(segment(&mut s, b, 2, now), None);
    assert_eq!(s.buffered(), SMALL.shared + SMALL.reserve);
    // Reading gives the room back: the retransmission is taken.
    assert_eq!(drain(&mut s, ca), 4 * SEGMENT_SIZE);
    assert_eq!(s.buffered(), SMALL.reserve);
    assert_eq!(segment(&mut s, a, 4, now), Some(5 * SEGMENT_SIZE as u32));
    s.release(ca);
    s.release(cb);
    assert!(s.is_empty());
    assert_eq!(s.buffered(), 0, "nothing stays counted");
}

#[test]
fn writes_stop_at_the_shared_budget_except_for_protected_connections() {
    let now = Instant::now();
    let (mut s, a, _b, ca, cb) = two_connections(now);
    let big = vec![1u8; 1 << 20];
    // The peer acknowledges nothing: what is written stays held.
    assert_eq!(s.write(ca, &big, now), Some(SMALL.shared));
    s.collect_all();
    assert!(
        s.buffered() >= SMALL.shared,
        "segments cost their overhead too"
    );
    // Spent: an unprotected connection gets its floor, and then waits.
    assert_eq!(s.write(cb, &big, now), Some(FLOOR));
    assert_eq!(s.write(cb, &big, now), Some(0));
    s.protect(cb, true);
    let n = s.write(cb, &big, now).unwrap();
    assert!(n > 0 && n <= SMALL.reserve, "{n}");
    assert!(s.buffered() <= SMALL.shared + SMALL.reserve + FLOOR + 4 * SEGMENT_OVERHEAD);
    // The first peer acknowledges everything: room again for the unprotected.
    // The end of the data sent to `a`.
    let sent = |s: &mut Stack| {
        let mut end = 0;
        while let Some((to, p)) = s.poll_transmit() {
            let (h, payload) = Header::decode(&p).unwrap();
            if to == a && !payload.is_empty() {
                end = end.max(h.seq + payload.len() as u32);
            }
        }
        end
    };
    let mut end = sent(&mut s);
    while end > 0 {
        let ack = Header::pure_ack(CLIENT_PORT, PORT, end, DEFAULT_WINDOW);
        s.on_message(a, &ack.to_bytes(), now);
        end = sent(&mut s);
    }
    assert_eq!(s.conn(ca).unwrap().unacknowledged(), 0);
    assert!(s.room(false) > 0);
    assert!(s.write(ca, b"more", now).unwrap() > 0);
    s.release(ca);
    s.release(cb);
    assert_eq!(s.buffered(), 0);
}

#[test]
fn a_full_table_gives_the_oldest_unprotected_place_to_a_newcomer() {
    let now = Instant::now();
    let mut s = Stack::new(1);
    s.listen(PORT);
    let mut ids = Vec::new();
    for i in 0..MAX_CONNS {
        let (k, port) = (
            key(i / MAX_CONNS_PER_KEY),
            CLIENT_PORT + (i % MAX_CONNS_PER_KEY) as u16,
        );
        ids.push(open(&mut s, k, port, now));
    }
    while s.poll_transmit().is_some() {}
    assert_eq!(s.open(), MAX_CONNS);
    // Protect every other connection but the oldest two and the newest half.
    for id in &ids[..MAX_CONNS / 2] {
        s.protect(*id, true);
    }
    s.protect(ids[0], false);
    s.protect(ids[1], false);
    // A newcomer: the oldest unprotected (ids[0]) is reset, the newcomer accepted.
    let late = key(1_000_000);
    s.on_message(late, &Header::syn(CLIENT_PORT, PORT).to_bytes(), now);
    let answers: Vec<_> = std::iter::from_fn(|| s.poll_transmit())
        .map(|(k, p)| (k, Header::decode(&p).unwrap().0))
        .collect();
    assert_eq!(
        answers,
        [
            (key(0), Header::rst(PORT, CLIENT_PORT)),
            (late, Header::syn_ack(PORT, CLIENT_PORT))
        ]
    );
    let fresh = open(&mut s, late, CLIENT_PORT, now);
    assert_eq!(s.conn(ids[0]).unwrap().error(), Some(ConnError::Aborted));
    assert!(s.conn(ids[1]).unwrap().is_established());
    assert!(s.conn(fresh).unwrap().is_established());
    // Every connection protected: the next newcomer is refused.
    s.release(ids[0]);
    for id in ids.iter().skip(1).chain([&fresh]) {
        s.protect(*id, true);
    }
    s.on_message(
        key(1_000_001),
        &Header::syn(CLIENT_PORT, PORT).to_bytes(),
        now,
    );
    let answers: Vec<_> = std::iter::from_fn(|| s.poll_transmit()).collect();
    assert_eq!(answers.len(), 1);
    assert_eq!(
        Header::decode(&answers[0].1).unwrap().0,
        Header::rst(PORT, CLIENT_PORT)
    );
    assert_eq!(s.open(), MAX_CONNS);
    for id in ids.into_iter().skip(1).chain([fresh]) {
        s.release(id);
    }
    assert!(s.is_empty());
    assert_eq!((s.open(), s.buffered()), (0, 0));
    assert!(s.unprotected.is_empty());
}
