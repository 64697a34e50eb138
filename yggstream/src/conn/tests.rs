//! Two connections joined by an in-memory link on a virtual clock. The link can drop,
//! duplicate, reorder and delay packets (deterministically, from a seed), so handshakes,
//! retransmission, windows, reassembly and closes are tested without sockets or sleeps.

use super::*;
use crate::packet::{Header, DEFAULT_WINDOW};

const CLIENT: u16 = 49152;
const SERVER: u16 = 42;

/// What the link does to packets.
#[derive(Clone, Copy, Default)]
struct Faults {
    /// Out of 100 packets, how many are dropped.
    drop_pct: u64,
    /// Out of 100, how many are delivered twice.
    dup_pct: u64,
    /// Largest extra delay, in ms, that reorders packets.
    jitter_ms: u64,
}

/// A tiny deterministic generator (splitmix64: any seed, small ones included, gives
/// well-mixed low bits, which `% 100` reads; plain xorshift's let one seed lose five ACKs in
/// a row).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn pct(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }
}

/// A packet on its way: when it arrives, to whom (true = server), its bytes.
type InFlight = (Instant, u64, bool, Vec<u8>);

struct Net {
    start: Instant,
    now: Instant,
    client: Conn,
    server: Option<Conn>,
    faults: Faults,
    rng: Rng,
    /// One-way latency.
    delay: Duration,
    wire: Vec<InFlight>,
    order: u64,
    /// Every packet sent, in order, as (to_server, bytes).
    capture: Vec<(bool, Vec<u8>)>,
    /// Whether packets flow at all (false: the peer vanished).
    up: bool,
}

impl Net {
    fn new(faults: Faults, seed: u64) -> Net {
        let start = Instant::now();
        Net {
            start,
            now: start,
            client: Conn::connect(CLIENT, SERVER, start),
            server: None,
            faults,
            rng: Rng(seed | 1),
            delay: Duration::from_millis(20),
            wire: Vec::new(),
            order: 0,
            capture: Vec::new(),
            up: true,
        }
    }

    fn server(&mut self) -> &mut Conn {
        self.server.as_mut().expect("accepted")
    }

    /// Moves the packets both sides queued onto the wire.
    fn collect(&mut self) {
        let mut sent = Vec::new();
        while let Some(p) = self.client.poll_transmit() {
            sent.push((true, p));
        }
        if let Some(s) = self.server.as_mut() {
            while let Some(p) = s.poll_transmit() {
                sent.push((false, p));
            }
        }
        for (to_server, p) in sent {
            self.capture.push((to_server, p.clone()));
            if !self.up || self.rng.pct(self.faults.drop_pct) {
                continue;
            }
            let copies = if self.rng.pct(self.faults.dup_pct) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let jitter = match self.faults.jitter_ms {
                    0 => 0,
                    j => self.rng.next() % j,
                };
                let at = self.now + self.delay + Duration::from_millis(jitter);
                self.order += 1;
                self.wire.push((at, self.order, to_server, p.clone()));
            }
        }
    }

    fn deliver(&mut self, to_server: bool, p: &[u8]) {
        let (h, payload) = Header::decode(p).unwrap();
        if to_server {
            match self.server.as_mut() {
                Some(s) => s.on_packet(&h, payload, self.now),
                None if h.flags.contains(Flags::SYN) && !h.flags.contains(Flags::ACK) => {
                    self.server = Some(Conn::accept(SERVER, &h, self.now));
                }
                None => {}
            }
        } else {
            self.client.on_packet(&h, payload, self.now);
        }
    }

    /// Advances the clock to the next event (a packet arriving or a timer), handles it.
    /// Returns false when nothing is left to happen.
    fn step(&mut self) -> bool {
        self.collect();
        let next_packet = self.wire.iter().map(|w| (w.0, w.1)).min();
        let timers = [
            self.client.deadline(),
            self.server.as_ref().and_then(Conn::deadline),
        ];
        let next_timer = timers.into_iter().flatten().min();
        match (next_packet, next_timer) {
            (None, None) => false,
            (Some((at, order)), t) if t.is_none_or(|t| at <= t) => {
                self.now = self.now.max(at);
                let i = self.wire.iter().position(|w| w.1 == order).unwrap();
                let (_, _, to_server, p) = self.wire.swap_remove(i);
                self.deliver(to_server, &p);
                true
            }
            (_, Some(t)) => {
                self.now = self.now.max(t);
                self.client.on_timeout(self.now);
                if let Some(s) = self.server.as_mut() {
                    s.on_timeout(self.now);
                }
                true
            }
            _ => false,
        }
    }

    /// Steps until `done` or `limit` of virtual time has passed.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Net) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            if done(self) {
                return true;
            }
            if self.now > end || !self.step() {
                return done(self);
            }
        }
    }

    fn established(&mut self) {
        assert!(
            self.run_until(Duration::from_secs(20), |n| n.client.is_established()
                && n.server.as_ref().is_some_and(Conn::is_established)),
            "handshake did not finish"
        );
    }

    /// The client's side of the handshake: the server may still wait for the handshake ACK
    /// (lost on a faulty link), which the client's first data replaces (§3.5).
    fn client_established(&mut self) {
        assert!(
            self.run_until(Duration::from_secs(20), |n| n.client.is_established()),
            "connect did not finish"
        );
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }
}

/// Sends `data` from one side to the other through the link, reading as it arrives; returns
/// what was read.
fn transfer(net: &mut Net, data: &[u8], from_client: bool, limit: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut off = 0;
    let mut buf = vec![0u8; 50_000];
    let ok = net.run_until(limit, |n| {
        let now = n.now;
        let (tx, rx) = if from_client {
            (&mut n.client, n.server.as_mut().unwrap())
        } else {
            (n.server.as_mut().unwrap(), &mut n.client)
        };
        if off < data.len() {
            off += tx.write(&data[off..], now);
        }
        loop {
            let k = rx.read(&mut buf);
            if k == 0 {
                break;
            }
            got.extend_from_slice(&buf[..k]);
        }
        got.len() == data.len()
    });
    assert!(
        ok,
        "transfer stalled at {} of {} bytes",
        got.len(),
        data.len()
    );
    got
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// The first packets of a connection, as the specification's golden bytes give them: SYN,
/// SYN-ACK, the handshake ACK, the preamble as the first data, the mediator's ACK of it.
#[test]
fn a_connection_starts_with_the_golden_bytes() {
    let mut net = Net::new(Faults::default(), 1);
    net.established();
    let now = net.now;
    assert_eq!(net.client.write(&[0x01, 0x00], now), 2);
    net.run_until(Duration::from_secs(1), |n| n.server().readable() == 2);
    net.collect();
    let hex: Vec<(bool, String)> = net
        .capture
        .iter()
        .map(|(s, p)| (*s, hex::encode(p)))
        .collect();
    let want = [
        (true, "c000 002a 00000000 00000000 01 080000"),
        (false, "002a c000 00000000 00000000 03 080000"),
        (true, "c000 002a 00000000 00000000 02 080000"),
        (true, "c000 002a 00000000 00000000 02 080000 0100"),
        (false, "002a c000 00000000 00000002 02 07fffe"),
    ];
    assert_eq!(hex.len(), want.len(), "{hex:?}");
    for (got, (to_server, bytes)) in hex.iter().zip(want.iter()) {
        assert_eq!(got.0, *to_server);
        assert_eq!(got.1, bytes.replace(' ', ""));
    }
}

#[test]
fn data_flows_both_ways_on_a_clean_link() {
    let mut net = Net::new(Faults::default(), 2);
    net.established();
    let up = pattern(1 << 20);
    assert_eq!(transfer(&mut net, &up, true, Duration::from_secs(60)), up);
    let down = pattern(300_000);
    assert_eq!(
        transfer(&mut net, &down, false, Duration::from_secs(60)),
        down
    );
    assert_eq!(net.client.unacknowledged(), 0);
}

/// Loss, duplication and reordering: everything arrives once, in order.
#[test]
fn data_survives_loss_duplicates_and_reordering() {
    for seed in 1..=8 {
        let faults = Faults {
            drop_pct: 10,
            dup_pct: 10,
            jitter_ms: 40,
        };
        let mut net = Net::new(faults, seed);
        net.client_established();
        let data = pattern(400_000);
        assert_eq!(
            transfer(&mut net, &data, true, Duration::from_secs(300)),
            data,
            "seed {seed}"
        );
        let back = pattern(100_000);
        assert_eq!(
            transfer(&mut net, &back, false, Duration::from_secs(300)),
            back,
            "seed {seed}"
        );
    }
}

/// A client's SYNs go out at 0, 1, 3 and 7 s; the connect gives up at 10 s.
#[test]
fn connect_retries_then_times_out() {
    let mut net = Net::new(Faults::default(), 3);
    net.up = false;
    let mut sent_at = Vec::new();
    net.run_until(Duration::from_secs(15), |n| {
        n.collect();
        while sent_at.len() < n.capture.len() {
            sent_at.push(n.elapsed());
        }
        n.client.is_closed()
    });
    assert_eq!(
        sent_at,
        [0, 1, 3, 7].map(Duration::from_secs).to_vec(),
        "SYN schedule"
    );
    assert_eq!(net.client.error(), Some(ConnError::ConnectTimeout));
    assert_eq!(net.elapsed(), CONNECT_TIMEOUT);
}

/// A server connection whose handshake ACK never comes is dropped with an RST.
#[test]
fn accept_times_out_without_the_handshake_ack() {
    let now = Instant::now();
    let mut s = Conn::accept(SERVER, &Header::syn(CLIENT, SERVER), now);
    assert!(s.poll_transmit().is_some());
    // The SYN again: the SYN-ACK again.
    s.on_packet(&Header::syn(CLIENT, SERVER), &[], now);
    let again = s.poll_transmit().unwrap();
    assert_eq!(
        Header::decode(&again).unwrap().0,
        Header::syn_ack(SERVER, CLIENT)
    );
    assert_eq!(s.deadline(), Some(now + ACCEPT_TIMEOUT));
    s.on_timeout(now + ACCEPT_TIMEOUT);
    assert!(s.is_closed());
    assert_eq!(s.error(), Some(ConnError::AcceptTimeout));
    let rst = s.poll_transmit().unwrap();
    assert_eq!(Header::decode(&rst).unwrap().0, Header::rst(SERVER, CLIENT));
}

/// The first data packet completes the handshake when the handshake ACK was lost.
#[test]
fn first_data_completes_a_handshake_whose_ack_was_lost() {
    let now = Instant::now();
    let mut s = Conn::accept(SERVER, &Header::syn(CLIENT, SERVER), now);
    s.on_packet(
        &Header::data(CLIENT, SERVER, 0, 0, DEFAULT_WINDOW),
        b"\x01\x00",
        now,
    );
    assert_eq!(s.state(), State::Established);
    assert_eq!(s.readable(), 2);
}

/// The peer vanishes with data outstanding: retransmissions back off, and after 30 s of no
/// progress the connection ends with an RST.
#[test]
fn a_vanished_peer_ends_the_connection_after_the_stall_limit() {
    let mut net = Net::new(Faults::default(), 4);
    net.established();
    let t0 = net.now;
    net.up = false;
    assert!(net.client.write(&pattern(50_000), t0) > 0);
    net.run_until(Duration::from_secs(60), |n| n.client.is_closed());
    assert_eq!(net.client.error(), Some(ConnError::Stalled));
    let waited = net.now - t0;
    assert!(
        waited >= STALL_LIMIT && waited < STALL_LIMIT + MAX_RTO * 2,
        "{waited:?}"
    );
    net.collect();
    let (_, last) = net.capture.last().unwrap();
    assert!(Header::decode(last).unwrap().0.flags.contains(Flags::RST));
}

/// Three duplicate pure ACKs resend the oldest segment at once (before its timer).
#[test]
fn three_duplicate_acks_retransmit_fast() {
    let now = Instant::now();
    let mut c = Conn::connect(CLIENT, SERVER, now);
    c.on_packet(&Header::syn_ack(SERVER, CLIENT), &[], now);
    while c.poll_transmit().is_some() {}
    c.write(&pattern(3 * SEGMENT_SIZE), now);
    let mut sent = 0;
    while c.poll_transmit().is_some() {
        sent += 1;
    }
    assert_eq!(sent, 2, "the initial window is two segments");
    // The first segment arrived, the second was lost: the peer acknowledges the first, then
    // repeats that ACK.
    let ack = Header::pure_ack(SERVER, CLIENT, SEGMENT_SIZE as u32, DEFAULT_WINDOW);
    c.on_packet(&ack, &[], now);
    while c.poll_transmit().is_some() {}
    for _ in 0..2 {
        c.on_packet(&ack, &[], now);
        assert!(
            c.poll_transmit().is_none(),
            "no resend before the third duplicate"
        );
    }
    c.on_packet(&ack, &[], now);
    let resent = c.poll_transmit().expect("fast retransmit");
    let (h, payload) = Header::decode(&resent).unwrap();
    assert_eq!(h.seq, SEGMENT_SIZE as u32);
    assert_eq!(payload.len(), SEGMENT_SIZE);
}

/// A FIN that overtakes data is EOF only after the data; it is acknowledged with its
/// sequence number plus one.
#[test]
fn an_early_fin_waits_for_the_missing_bytes() {
    let now = Instant::now();
    let mut s = Conn::accept(SERVER, &Header::syn(CLIENT, SERVER), now);
    s.on_packet(&Header::handshake_ack(CLIENT, SERVER), &[], now);
    s.on_packet(
        &Header::data(CLIENT, SERVER, 0, 0, DEFAULT_WINDOW),
        b"abc",
        now,
    );
    // "def" (seq 3..6) is late; the FIN at 9 comes after "ghi" (seq 6..9).
    s.on_packet(
        &Header::data(CLIENT, SERVER, 6, 0, DEFAULT_WINDOW),
        b"ghi",
        now,
    );
    s.on_packet(&Header::fin(CLIENT, SERVER, 9, None), &[], now);
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf), 3);
    assert!(!s.is_eof(), "EOF before the missing bytes");
    assert_eq!(s.state(), State::Established);
    s.on_packet(
        &Header::data(CLIENT, SERVER, 3, 0, DEFAULT_WINDOW),
        b"def",
        now,
    );
    assert_eq!(s.read(&mut buf), 6);
    assert_eq!(&buf[..6], b"defghi");
    assert!(s.is_eof());
    assert_eq!(s.state(), State::CloseWait);
    let mut last = None;
    while let Some(p) = s.poll_transmit() {
        last = Some(Header::decode(&p).unwrap().0);
    }
    assert_eq!(last.unwrap().ack, 10, "FIN acknowledged with its seq + 1");
}

/// Both sides close: FINs cross, everything is acknowledged, both connections end.
#[test]
fn a_graceful_close_ends_both_sides() {
    let mut net = Net::new(Faults::default(), 5);
    net.established();
    let data = pattern(70_000);
    assert_eq!(
        transfer(&mut net, &data, true, Duration::from_secs(30)),
        data
    );
    let now = net.now;
    net.client.close(now);
    assert!(net.run_until(Duration::from_secs(5), |n| n.server().is_eof()));
    let now = net.now;
    net.server().close(now);
    assert!(
        net.run_until(Duration::from_secs(10), |n| n.client.is_closed()
            && n.server().is_closed())
    );
    assert_eq!(net.client.error(), None);
    assert_eq!(net.server().error(), None);
}

/// Whatever a peer sends, a connection keeps at most its receive buffer of unread bytes, in
/// order and out of order together.
#[test]
fn a_flooding_peer_cannot_grow_the_buffers() {
    let now = Instant::now();
    let mut s = Conn::accept(SERVER, &Header::syn(CLIENT, SERVER), now);
    s.on_packet(&Header::handshake_ack(CLIENT, SERVER), &[], now);
    let chunk = vec![7u8; 60_000];
    let mut seq = 0u32;
    for _ in 0..40 {
        s.on_packet(
            &Header::data(CLIENT, SERVER, seq, 0, DEFAULT_WINDOW),
            &chunk,
            now,
        );
        seq = seq.wrapping_add(chunk.len() as u32);
    }
    // Far ahead, out of order.
    for i in 0..200u32 {
        let at = seq.wrapping_add(1_000_000 + i * 70_000);
        s.on_packet(
            &Header::data(CLIENT, SERVER, at, 0, DEFAULT_WINDOW),
            &chunk,
            now,
        );
    }
    assert!(s.readable() <= RECV_BUFFER);
    assert!(s.readable() + s.ooo_bytes <= RECV_BUFFER);
    assert!(s.ooo.len() <= MAX_OUT_OF_ORDER);
    while s.poll_transmit().is_some() {}
}

/// An RST ends the connection at once, on either side, and a refused connect says so.
#[test]
fn resets_end_connections() {
    let now = Instant::now();
    let mut c = Conn::connect(CLIENT, SERVER, now);
    c.on_packet(&Header::rst(SERVER, CLIENT), &[], now);
    assert_eq!(c.error(), Some(ConnError::Refused));
    let mut net = Net::new(Faults::default(), 6);
    net.established();
    net.client.abort();
    assert!(net.run_until(Duration::from_secs(1), |n| n.server().is_closed()));
    assert_eq!(net.server().error(), Some(ConnError::Reset));
    assert_eq!(net.client.error(), Some(ConnError::Aborted));
}

#[test]
fn sequence_numbers_wrap() {
    assert!(before(u32::MAX - 5, 3));
    assert!(!before(3, u32::MAX - 5));
    assert!(before(0, 1) && !before(1, 1));
}

mod properties {
    //! The link's faults (up to 20 % loss and duplication; more makes a 30 s stall, which
    //! rightly ends a connection, likely enough to flake) and the sizes drawn at random:
    //! whatever the loss, duplication and reordering, both directions deliver every byte
    //! once and in order, and nothing is left unacknowledged at the end.
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn every_byte_arrives_once_in_order(
            seed in 1u64..u64::MAX,
            drop_pct in 0u64..20,
            dup_pct in 0u64..20,
            jitter_ms in 0u64..120,
            up in 1usize..150_000,
            down in 1usize..60_000,
        ) {
            // The handshake on a clean link (with this much loss a connect may rightly give
            // up after its four SYNs), the transfers on the faulty one.
            let mut net = Net::new(Faults::default(), seed);
            net.established();
            net.faults = Faults { drop_pct, dup_pct, jitter_ms };
            let data = pattern(up);
            prop_assert_eq!(transfer(&mut net, &data, true, Duration::from_secs(600)), data);
            let back = pattern(down);
            prop_assert_eq!(transfer(&mut net, &back, false, Duration::from_secs(600)), back);
            net.run_until(Duration::from_secs(60), |n| {
                n.client.unacknowledged() == 0 && n.server().unacknowledged() == 0
            });
            prop_assert_eq!(net.client.unacknowledged(), 0);
            prop_assert_eq!(net.server().unacknowledged(), 0);
        }
    }
}
