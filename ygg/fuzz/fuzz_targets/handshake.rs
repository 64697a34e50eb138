//! Fuzz target: the Yggdrasil `meta` link handshake. Header and body
//! parsing must never panic, with and without a password.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yggnode::handshake::{decode, decode_body, parse_header, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let _ = decode(data, b"");
    let _ = decode(data, b"password");
    if let Some(h) = data.get(..HEADER_LEN) {
        let h: [u8; HEADER_LEN] = h.try_into().expect("length checked");
        let _ = parse_header(&h);
    }
    let _ = decode_body(data, b"");
});
