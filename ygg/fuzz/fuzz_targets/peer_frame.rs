//! Fuzz target: ironwood peer frames. Decoding must never panic, a decoded
//! frame must re-encode to a frame that decodes to the same message, and
//! the router must survive any unsigned message from a peer.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use yggnode::identity::Identity;
use yggnode::proto::PeerMessage;
use yggnode::router::Router;
use yggnode::wire::{parse_uvarint, UvarintParse};

fuzz_target!(|data: &[u8]| {
    // The frame layer: uvarint length prefix, then type + body.
    if let UvarintParse::Done(len, n) = parse_uvarint(data) {
        let _ = (len, n);
    }
    let Ok(msg) = PeerMessage::decode(data) else {
        return;
    };
    let mut framed = Vec::new();
    msg.encode_frame(&mut framed);
    let UvarintParse::Done(len, n) = parse_uvarint(&framed) else {
        panic!("own frame has no length");
    };
    assert_eq!(len as usize, framed.len() - n);
    let again = PeerMessage::decode(&framed[n..]).expect("own frame decodes");
    assert_eq!(again.frame_type(), msg.frame_type());
    // Signed messages are checked by the link before the router sees them.
    if matches!(msg, PeerMessage::SigRes(_) | PeerMessage::Announce(_)) {
        return;
    }
    let now = Instant::now();
    let (mut r, _) = Router::new(Identity::from_seed(&[1; 32]), now);
    let mut out = Vec::new();
    r.add_peer(now, 1, [2; 32], 0, &mut out);
    r.handle_message(now, 1, msg, &mut out);
    r.maintenance(now + Duration::from_secs(1), &mut out);
    let _ = r.take_delivered();
});
