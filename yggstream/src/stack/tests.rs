//! Two stacks wired back to back (packets handed over at once), and a stack fed packets by
//! hand: connections through listeners, the answers to packets for unknown tuples, a peer
//! that restarts on the same tuple, the per-key and global limits, and the table emptied
//! after every connection has gone.

use super::*;
use crate::conn::{ConnError, State};
use crate::packet::DEFAULT_WINDOW;

const A: Key = [0xaa; 32];
const B: Key = [0xbb; 32];
const PORT: u16 = 42;

/// Hands every queued packet to the other stack until both are quiet.
fn pump(a: &mut Stack, b: &mut Stack, now: Instant) {
    loop {
        let mut moved = false;
        a.collect_all();
        b.collect_all();
        while let Some((to, p)) = a.poll_transmit() {
            assert_eq!(to, B);
            b.on_message(A, &p, now);
            moved = true;
        }
        while let Some((to, p)) = b.poll_transmit() {
            assert_eq!(to, A);
            a.on_message(B, &p, now);
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

/// The packets `s` queued, decoded.
fn sent(s: &mut Stack) -> Vec<(Key, Header, Vec<u8>)> {
    s.collect_all();
    std::iter::from_fn(|| s.poll_transmit())
        .map(|(k, p)| {
            let (h, payload) = Header::decode(&p).unwrap();
            (k, h, payload.to_vec())
        })
        .collect()
}

#[test]
fn a_connection_through_a_listener_carries_data_both_ways() {
    let now = Instant::now();
    let (mut client, mut server) = (Stack::new(7), Stack::new(9));
    server.listen(PORT);
    let c = client.connect(B, PORT, now).unwrap();
    pump(&mut client, &mut server, now);
    let s = server.accept(PORT).expect("accepted");
    assert!(server.accept(PORT).is_none());
    let tuple = server.tuple(s).unwrap();
    assert_eq!(tuple.remote, A);
    assert!(EPHEMERAL_PORTS.contains(&tuple.remote_port));
    assert_eq!(client.conn(c).unwrap().write(b"\x01\x00hello", now), 7);
    pump(&mut client, &mut server, now);
    let mut buf = [0u8; 16];
    assert_eq!(server.conn(s).unwrap().read(&mut buf), 7);
    assert_eq!(&buf[..7], b"\x01\x00hello");
    server.conn(s).unwrap().write(b"ok", now);
    pump(&mut client, &mut server, now);
    assert_eq!(client.conn(c).unwrap().read(&mut buf), 2);
    // Both sides close and let go: both tables empty.
    client.conn(c).unwrap().close(now);
    pump(&mut client, &mut server, now);
    assert!(server.conn(s).unwrap().is_eof());
    server.conn(s).unwrap().close(now);
    pump(&mut client, &mut server, now);
    client.release(c);
    server.release(s);
    pump(&mut client, &mut server, now);
    assert!(client.is_empty() && server.is_empty());
}

#[test]
fn packets_for_unknown_tuples_get_resets() {
    let now = Instant::now();
    let mut s = Stack::new(1);
    // A SYN to a port nobody listens on.
    s.on_message(A, &Header::syn(50000, PORT).to_bytes(), now);
    let out = sent(&mut s);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, A);
    assert_eq!(out[0].1, Header::rst(PORT, 50000));
    // Data for a connection that does not exist.
    s.listen(PORT);
    let data = Header::data(50000, PORT, 0, 0, DEFAULT_WINDOW).packet(b"x");
    s.on_message(A, &data, now);
    assert_eq!(sent(&mut s)[0].1, Header::rst(PORT, 50000));
    // An RST for one: nothing. Short messages and datagrams: nothing.
    s.on_message(A, &Header::rst(50000, PORT).to_bytes(), now);
    s.on_message(A, &[0xc0, 0x00, 0x00], now);
    s.on_message(A, &Header::datagram(PORT).packet(b"hi"), now);
    assert!(sent(&mut s).is_empty());
    assert!(s.is_empty());
}

/// A 3.x client restarts with the same key and port: the old connection ends as reset and
/// the new one is accepted.
#[test]
fn a_syn_on_an_established_tuple_replaces_the_connection() {
    let now = Instant::now();
    let mut s = Stack::new(1);
    s.listen(PORT);
    let open = |s: &mut Stack| {
        s.on_message(A, &Header::syn(49152, PORT).to_bytes(), now);
        s.on_message(A, &Header::handshake_ack(49152, PORT).to_bytes(), now);
        s.accept(PORT).expect("accepted")
    };
    let old = open(&mut s);
    let new = open(&mut s);
    assert_ne!(old, new);
    assert_eq!(s.conn(old).unwrap().error(), Some(ConnError::Reset));
    assert_eq!(s.conn(new).unwrap().state(), State::Established);
    // Data on the tuple goes to the new connection.
    let data = Header::data(49152, PORT, 0, 0, DEFAULT_WINDOW).packet(b"hi");
    assert_eq!(s.on_message(A, &data, now), Some(new));
    s.release(old);
    s.release(new);
    assert!(s.is_empty());
}

#[test]
fn limits_per_key_and_accept_queue_hold() {
    let now = Instant::now();
    let mut s = Stack::new(1);
    s.listen(PORT);
    // Half-open connections of one key.
    for p in 0..MAX_HALF_OPEN_PER_KEY as u16 {
        s.on_message(A, &Header::syn(50000 + p, PORT).to_bytes(), now);
    }
    let _ = sent(&mut s);
    s.on_message(A, &Header::syn(60000, PORT).to_bytes(), now);
    assert_eq!(sent(&mut s)[0].1, Header::rst(PORT, 60000));
    // Another key is not affected.
    s.on_message(B, &Header::syn(60000, PORT).to_bytes(), now);
    assert!(sent(&mut s)[0].1.flags.contains(Flags::SYN | Flags::ACK));
    // Completed handshakes leave the half-open count; connections per key stay bounded.
    let mut accepted = 0;
    for p in 0..(MAX_CONNS_PER_KEY as u16 + 10) {
        let port = 50000 + p;
        s.on_message(A, &Header::syn(port, PORT).to_bytes(), now);
        s.on_message(A, &Header::handshake_ack(port, PORT).to_bytes(), now);
        while s.accept(PORT).is_some() {
            accepted += 1;
        }
    }
    assert_eq!(accepted, MAX_CONNS_PER_KEY);
    assert!(s.conns_of(&A) <= MAX_CONNS_PER_KEY);
}

#[test]
fn an_accept_queue_that_is_full_refuses() {
    let now = Instant::now();
    let mut s = Stack::new(1);
    s.listen(PORT);
    // Distinct keys, so only the queue's bound applies.
    for i in 0..(ACCEPT_QUEUE + 3) {
        let key = [i as u8; 32];
        s.on_message(key, &Header::syn(50000, PORT).to_bytes(), now);
        s.on_message(key, &Header::handshake_ack(50000, PORT).to_bytes(), now);
    }
    let resets = sent(&mut s)
        .iter()
        .filter(|(_, h, _)| h.flags.contains(Flags::RST))
        .count();
    assert_eq!(resets, 3);
    assert_eq!(s.len(), ACCEPT_QUEUE);
}

/// Half-open connections that never complete, connections reset before being accepted and
/// connections closed by their owner all leave the table.
#[test]
fn no_connection_stays_behind() {
    let now = Instant::now();
    let mut s = Stack::new(1);
    s.listen(PORT);
    for i in 0..50u16 {
        s.on_message(B, &Header::syn(50000 + i, PORT).to_bytes(), now);
        if i % 2 == 0 {
            s.on_message(B, &Header::rst(50000 + i, PORT).to_bytes(), now);
        }
    }
    // The rest time out without their handshake ACK.
    s.on_timeout(now + crate::conn::ACCEPT_TIMEOUT);
    let _ = sent(&mut s);
    assert!(s.is_empty(), "{} left", s.len());
    assert!(s.half_open.is_empty() && s.by_key.is_empty() && s.by_tuple.is_empty());
}

#[test]
fn outgoing_connections_pick_free_ephemeral_ports() {
    let now = Instant::now();
    let mut s = Stack::new(u64::from(u16::MAX));
    let a = s.connect(B, PORT, now).unwrap();
    let b = s.connect(B, PORT, now).unwrap();
    let (ta, tb) = (s.tuple(a).unwrap(), s.tuple(b).unwrap());
    assert_ne!(ta.local_port, tb.local_port);
    assert!(EPHEMERAL_PORTS.contains(&ta.local_port) && EPHEMERAL_PORTS.contains(&tb.local_port));
    let syns = sent(&mut s);
    assert_eq!(syns.len(), 2);
    assert!(syns
        .iter()
        .all(|(k, h, _)| *k == B && h.flags == Flags::SYN));
}

/// The timer heap: the earliest deadline of all connections, stale entries skipped, and the
/// heap kept near the number of connections however often deadlines move.
#[test]
fn deadlines_come_from_the_heap_and_it_stays_small() {
    let start = Instant::now();
    let mut s = Stack::new(1);
    s.listen(PORT);
    // Half-open connections time out at ACCEPT_TIMEOUT after their SYN.
    for i in 0..8u16 {
        let at = start + std::time::Duration::from_millis(u64::from(i) * 10);
        s.on_message([i as u8; 32], &Header::syn(50000, PORT).to_bytes(), at);
    }
    let _ = sent(&mut s);
    assert_eq!(s.deadline(), Some(start + crate::conn::ACCEPT_TIMEOUT));
    // One connection established: its deadline moves with every packet (none while idle).
    s.on_message(
        [0; 32],
        &Header::handshake_ack(50000, PORT).to_bytes(),
        start,
    );
    let id = s.accept(PORT).unwrap();
    let next = start + std::time::Duration::from_millis(10) + crate::conn::ACCEPT_TIMEOUT;
    assert_eq!(
        s.deadline(),
        Some(next),
        "the established one left the heap"
    );
    for i in 0..10_000u32 {
        let now = start + std::time::Duration::from_micros(u64::from(i));
        assert_eq!(s.write(id, b"x", now), Some(1));
        let ack = Header::pure_ack(50000, PORT, i + 1, DEFAULT_WINDOW);
        s.on_message([0; 32], &ack.to_bytes(), now);
        let _ = sent(&mut s);
        assert!(s.deadline().is_some());
    }
    assert!(
        s.timers.len() <= 2 * s.len() + 64,
        "{} heap entries",
        s.timers.len()
    );
    // Past every timer: the half-open ones are gone, the idle established one stays.
    s.on_timeout(start + std::time::Duration::from_secs(60));
    let _ = sent(&mut s);
    assert_eq!(s.len(), 1);
    assert_eq!(s.deadline(), None);
}
