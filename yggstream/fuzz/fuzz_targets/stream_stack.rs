//! Fuzz target: a ygg_stream stack listening on port 42, fed a sequence of messages from a
//! few remote keys, application reads, writes and closes, and clock steps, all taken from
//! the input, some connections protected. It must never panic, keep within its limits (the
//! buffer budget included), answer every packet with at most a bounded number of packets,
//! and end with an empty table and nothing counted once every connection has been accepted
//! and released and the clock has run past every timer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};
use yggstream::stack::{MAX_CONNS_PER_KEY, MAX_HALF_OPEN_PER_KEY};
use yggstream::{Budget, ConnId, Stack};

/// Small enough for the input to reach it.
const BUDGET: Budget = Budget {
    shared: 48 * 1024,
    reserve: 16 * 1024,
};

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut now = start;
    let mut s = Stack::with_budget(7, BUDGET);
    s.listen(42);
    let mut owned: Vec<ConnId> = Vec::new();
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 6 {
            // A message from key (op / 6) % 3 of the next byte's length.
            0 | 1 => {
                let Some((&n, tail)) = rest.split_first() else {
                    break;
                };
                let n = (n as usize).min(tail.len());
                let (msg, tail) = tail.split_at(n);
                rest = tail;
                let key = [(op / 6) % 3; 32];
                s.on_message(key, msg, now);
            }
            2 => {
                while let Some(id) = s.accept(42) {
                    s.protect(id, op & 0x40 != 0);
                    owned.push(id);
                }
            }
            3 => {
                if let Some(&id) = owned.first() {
                    if let Some(c) = s.conn(id) {
                        let mut buf = [0u8; 512];
                        c.read(&mut buf);
                    }
                    s.collect(id);
                    s.write(id, &[op; 300], now);
                }
            }
            4 => {
                if let Some(id) = owned.pop() {
                    if op & 0x40 != 0 {
                        if let Some(c) = s.conn(id) {
                            c.close(now);
                        }
                        s.disown(id);
                    } else {
                        s.release(id);
                    }
                }
            }
            _ => {
                now += Duration::from_millis(u64::from(op) * 40);
                s.on_timeout(now);
            }
        }
        let mut sent = 0;
        while s.poll_transmit().is_some() {
            sent += 1;
        }
        assert!(sent <= 4096, "{sent} packets for one step");
        assert!(s.len() <= 3 * (MAX_CONNS_PER_KEY + MAX_HALF_OPEN_PER_KEY));
        // A write may pass the limit by the overhead of the segments it makes.
        assert!(s.buffered() <= BUDGET.shared + BUDGET.reserve + 1024);
    }
    // The application takes what waits in the accept queue and lets everything go.
    while let Some(id) = s.accept(42) {
        owned.push(id);
    }
    for id in owned {
        s.release(id);
    }
    // Past every timer (close limits, TIME_WAIT, stall limit): nothing is left.
    for _ in 0..8 {
        now += Duration::from_secs(60);
        s.on_timeout(now);
        while s.poll_transmit().is_some() {}
    }
    assert!(s.is_empty(), "{} connections left", s.len());
    assert_eq!((s.open(), s.buffered()), (0, 0));
});
