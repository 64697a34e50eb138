//! Fuzz target: encrypted session packets (Init/Ack/traffic). Decoding and
//! the session state machine must never panic on any input, from an
//! unknown sender or from one with an established session.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use yggnode::identity::Identity;
use yggnode::session::{SessionManager, SessionOutput};
use yggnode::session_wire::SessionPacket;
use yggnode::wire::WireCodec;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = SessionPacket::decode(data) {
        assert!(SessionPacket::decode(&p.to_vec()).is_ok());
    }
    let now = Instant::now();
    let a = Identity::from_seed(&[1; 32]);
    let b = Identity::from_seed(&[2; 32]);
    let mut ma = SessionManager::new(a.clone());
    let mut mb = SessionManager::new(b.clone());
    // Establish a session a→b, then feed the fuzz input to b as if from a.
    let mut out = SessionOutput::default();
    ma.write_to(now, b.public_key(), b"x".to_vec(), &mut out);
    let mut back = SessionOutput::default();
    for (_, p) in out.send.drain(..) {
        mb.handle_data(now, a.public_key(), &p, &mut back);
    }
    mb.handle_data(now, a.public_key(), data, &mut back);
    mb.handle_data(now, [7; 32], data, &mut back);
});
