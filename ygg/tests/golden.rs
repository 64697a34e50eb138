//! Golden vectors for the ironwood wire formats, produced by the real Go
//! implementation rather than by this crate.
//!
//! Provenance: every hex constant below was printed by ironwood
//! v0.0.0-20241213013129-743fe2fccbd3 (commit 743fe2f, the version Yggdrasil
//! 0.5.12 uses) with its own encoders, for the inputs stated next to each
//! constant; the bloom transforms were printed by yggdrasil-go v0.5.12's
//! `address.SubnetForKey(key).GetKey()`. Node keys are ed25519 keys from the
//! 32-byte seeds `[0x01; 32]` (A), `[0x02; 32]` (B) and `[0x03; 32]` (C).
//! Ed25519 signatures are deterministic, so the signatures are part of the
//! vectors; our own signing must reproduce them bit for bit.
//!
//! How to regenerate: copy the ironwood module out of the Go module cache into
//! a scratch directory (outside this repository) and make it writable. Add a
//! throwaway `_test.go` file to its `network` package that builds
//! `routerSigReq`, `routerSigRes`, `routerInfo`/`routerAnnounce`,
//! `pathLookup`, `pathNotifyInfo`/`pathNotify`, `pathBroken`, `traffic` and
//! `bloom` values with the field values given below, signs exactly where the
//! router does (`_handleRequest` for `psig`, `_useResponse` for the node's own
//! `sig`, `_becomeRoot` for a root, `pathNotifyInfo.sign`), and prints
//! `encode()` / `bytesForSig()` and the peer frame as `peerWriter.sendPacket`
//! builds it (`uvarint(size+1)` then `wireEncode`) in hex. Add a second one to
//! the `encrypted` package that calls `sessionInit.encrypt` /
//! `sessionAck.encrypt` with fixed fields (the ephemeral key inside is random,
//! so those two vectors change on every run; any run's output is valid), and
//! that connects an `encrypted.PacketConn` (A) to a raw `network.PacketConn`
//! (B) over `net.Pipe`, installs a session in A with fixed X25519 keys and
//! counters, writes one message once the two nodes have exchanged tree and
//! bloom messages (a few seconds), and prints what B's `ReadFrom` returns plus
//! every frame A wrote on the pipe (the session packet is deterministic for
//! fixed keys; the captured tree frames carry random nonces). Run with
//! `go test -run <name> -v`. The bloom transforms come from a separate small
//! Go program that imports yggdrasil-go's `src/address` package. Nothing from
//! those scratch directories is part of this repository.

use std::time::Instant;

use crypto_box::aead::Aead;
use crypto_box::{Nonce, PublicKey as BoxPublic, SalsaBox, SecretKey as BoxSecret};
use yggnode::address::bloom_transform;
use yggnode::bloom::Bloom;
use yggnode::identity::{verify, Identity};
use yggnode::proto::{
    Announce, FrameType, PathBroken, PathLookup, PathNotify, PathNotifyInfo, PeerMessage, SigReq,
    SigRes, Traffic, TRAFFIC_OVERHEAD,
};
use yggnode::session::{ed_to_box_public, ed_to_box_secret, SessionManager, SessionOutput};
use yggnode::session_wire::{
    box_nonce, InitPayload, SessionPacket, SESSION_INIT_LEN, SESSION_TYPE_ACK, SESSION_TYPE_INIT,
};
use yggnode::wire::{
    parse_uvarint, path_len, put_path, put_uvarint, uvarint_len, PeerPort, Reader, UvarintParse,
    WireCodec,
};
use yggnode::PublicKey;

// ---------------------------------------------------------------------------
// helpers

fn hx(s: &str) -> Vec<u8> {
    hex::decode(s).expect("valid hex in a golden vector")
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    hx(s)
        .try_into()
        .expect("golden vector has the expected length")
}

fn id(byte: u8) -> Identity {
    Identity::from_seed(&[byte; 32])
}

fn a() -> Identity {
    id(0x01)
}

fn b() -> Identity {
    id(0x02)
}

fn c() -> Identity {
    id(0x03)
}

/// `uvarint(len) || type || body` as our encoder produces it.
fn our_frame(msg: &PeerMessage) -> Vec<u8> {
    let mut out = Vec::new();
    msg.encode_frame(&mut out);
    out
}

/// Splits an ironwood frame into its length prefix and `type || body`,
/// checks the prefix, and decodes it with our decoder.
fn decode_go_frame(frame: &[u8]) -> PeerMessage {
    let UvarintParse::Done(len, n) = parse_uvarint(frame) else {
        panic!("bad frame length prefix");
    };
    assert_eq!(
        len as usize,
        frame.len() - n,
        "length prefix counts type + body"
    );
    PeerMessage::decode(&frame[n..]).expect("our decoder accepts ironwood's frame")
}

/// The frame decodes, has type byte `ty`, and re-encodes to the same bytes.
fn check_go_frame(frame: &[u8], ty: FrameType) -> PeerMessage {
    let msg = decode_go_frame(frame);
    assert_eq!(msg.frame_type(), ty);
    let n = uvarint_len(msg.body_len() as u64);
    assert_eq!(frame[n], ty as u8, "type byte");
    assert_eq!(our_frame(&msg), frame, "re-encoding an ironwood frame");
    msg
}

// ---------------------------------------------------------------------------
// keys

/// ed25519 public keys of the three seeds, as Go's `ed25519.NewKeyFromSeed`
/// derives them.
const PUB_A: &str = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c";
const PUB_B: &str = "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394";
const PUB_C: &str = "ed4928c628d1c2c6eae90338905995612959273a5c63f93636c14614ac8737d1";

/// ironwood `encrypted/internal/e2c`: X25519 (box) keys of A and B.
const BOX_PUB_A: &str = "1b1b58dd50ea14b60da17b790cd02754d970c9bab864ebb3c0f3016fe51d3f57";
const BOX_SECRET_A: &str = "5ce86efb75fa4e2c410f46e16de9f6acae1a1703528651b69bc176c088bef3ee";
const BOX_PUB_B: &str = "60346e7c911a5f6ba154129174cafe75b294ac3bbd5549632f48cec6266f8410";
const BOX_SECRET_B: &str = "aa3c626bc9c38c8c201878ebb1d5b0b50ac40e8986c78793db1d4ef369fca1ce";

#[test]
fn identities_and_box_keys_match_go() {
    assert_eq!(a().public_key(), arr::<32>(PUB_A));
    assert_eq!(b().public_key(), arr::<32>(PUB_B));
    assert_eq!(c().public_key(), arr::<32>(PUB_C));
    assert_eq!(ed_to_box_public(&a().public_key()), Some(arr(BOX_PUB_A)));
    assert_eq!(ed_to_box_public(&b().public_key()), Some(arr(BOX_PUB_B)));
    assert_eq!(ed_to_box_secret(&[0x01; 32]), arr::<32>(BOX_SECRET_A));
    assert_eq!(ed_to_box_secret(&[0x02; 32]), arr::<32>(BOX_SECRET_B));
}

// ---------------------------------------------------------------------------
// uvarints and paths (`network/wire.go`)

#[test]
fn uvarints_match_ironwood() {
    let cases: [(u64, &str); 9] = [
        (0, "00"),
        (1, "01"),
        (127, "7f"),
        (128, "8001"),
        (300, "ac02"),
        (16383, "ff7f"),
        (16384, "808001"),
        (1 << 32, "8080808010"),
        (u64::MAX, "ffffffffffffffffff01"),
    ];
    for (value, go) in cases {
        let go = hx(go);
        let mut ours = Vec::new();
        put_uvarint(&mut ours, value);
        assert_eq!(ours, go, "uvarint {value}");
        assert_eq!(uvarint_len(value), go.len());
        assert_eq!(parse_uvarint(&go), UvarintParse::Done(value, go.len()));
    }
}

#[test]
fn paths_match_ironwood() {
    // ironwood `wireAppendPath` / `wireSizePath`; decoding with
    // `wireDecodePath` of the encoding followed by one extra byte 0xaa gave
    // back the same ports and consumed exactly the encoding.
    let cases: [(&[PeerPort], &str); 5] = [
        (&[], "00"),
        (&[1], "0100"),
        (&[1, 2, 300], "0102ac0200"),
        (&[127, 128, 16383, 16384], "7f8001ff7f80800100"),
        (&[1 << 21, u64::MAX], "80808001ffffffffffffffffff0100"),
    ];
    for (path, go) in cases {
        let go = hx(go);
        let mut ours = Vec::new();
        put_path(&mut ours, path);
        assert_eq!(ours, go, "path {path:?}");
        assert_eq!(path_len(path), go.len());
        let mut input = go.clone();
        input.push(0xaa);
        let mut r = Reader::new(&input);
        assert_eq!(r.path("golden").unwrap(), path);
        assert_eq!(r.remaining(), &[0xaa]);
    }
}

// ---------------------------------------------------------------------------
// spanning tree (`network/router.go`)

/// SigReq{seq: 7, nonce: 0x0123456789abcdef}.
const SIGREQ: &str = "07ef9bafcdf8acd19101";
/// `routerSigReq.bytesForSig(node = A, parent = B)`.
const SIGREQ_BYTES_FOR_SIG: &str = concat!(
    "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
    "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394",
    "07ef9bafcdf8acd19101",
);
/// The SigReq as a peer frame.
const SIGREQ_FRAME: &str = "0b0207ef9bafcdf8acd19101";

/// B answers A's SigReq above with port 300 (`_handleRequest`):
/// `bytesForSig(node = A, parent = B)` and B's signature over it.
const SIGRES_BYTES_FOR_SIG: &str = concat!(
    "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
    "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394",
    "07ef9bafcdf8acd19101ac02",
);
const SIGRES_PSIG: &str = concat!(
    "ecf4f87d27fedb32a89f810bb0fcd9163a429c7924042d01d41cac2f753b1d67",
    "27a6b1092238e8e88ec70ba1c2b9621d9e7a7d2f38197f586582bb96d9c1b909",
);
const SIGRES: &str = concat!(
    "07ef9bafcdf8acd19101ac02ecf4f87d27fedb32a89f810bb0fcd9163a429c79",
    "24042d01d41cac2f753b1d6727a6b1092238e8e88ec70ba1c2b9621d9e7a7d2f",
    "38197f586582bb96d9c1b909",
);
const SIGRES_FRAME: &str = concat!(
    "4d0307ef9bafcdf8acd19101ac02ecf4f87d27fedb32a89f810bb0fcd9163a42",
    "9c7924042d01d41cac2f753b1d6727a6b1092238e8e88ec70ba1c2b9621d9e7a",
    "7d2f38197f586582bb96d9c1b909",
);

/// A adopts that response (`_useResponse`): A's own signature over the same
/// bytes, and the resulting announcement of A with parent B.
const ANNOUNCE_SIG: &str = concat!(
    "ef8ab35fd2fe012c57e461c6af61f932414ffaab1664f9619ecd089e50f18a00",
    "9418f164b732393ff6ed1683f707a86a6396fb1906a49b1476b55506b63c4803",
);
const ANNOUNCE: &str = concat!(
    "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
    "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394",
    "07ef9bafcdf8acd19101ac02ecf4f87d27fedb32a89f810bb0fcd9163a429c79",
    "24042d01d41cac2f753b1d6727a6b1092238e8e88ec70ba1c2b9621d9e7a7d2f",
    "38197f586582bb96d9c1b909ef8ab35fd2fe012c57e461c6af61f932414ffaab",
    "1664f9619ecd089e50f18a009418f164b732393ff6ed1683f707a86a6396fb19",
    "06a49b1476b55506b63c4803",
);
const ANNOUNCE_FRAME: &str = concat!(
    "cd01048a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b4",
    "0f6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8f",
    "c9b39407ef9bafcdf8acd19101ac02ecf4f87d27fedb32a89f810bb0fcd9163a",
    "429c7924042d01d41cac2f753b1d6727a6b1092238e8e88ec70ba1c2b9621d9e",
    "7a7d2f38197f586582bb96d9c1b909ef8ab35fd2fe012c57e461c6af61f93241",
    "4ffaab1664f9619ecd089e50f18a009418f164b732393ff6ed1683f707a86a63",
    "96fb1906a49b1476b55506b63c4803",
);

/// C as a root (`_becomeRoot`): SigReq{seq: 1, nonce: 42}, port 0,
/// key = parent = C, sig = psig.
const ROOT_ANNOUNCE: &str = concat!(
    "ed4928c628d1c2c6eae90338905995612959273a5c63f93636c14614ac8737d1",
    "ed4928c628d1c2c6eae90338905995612959273a5c63f93636c14614ac8737d1",
    "012a00a3d90a211d106a5cee2e99f0228548f54e9db65ec8510ec50ab2f90423",
    "03940e57104ec9b0552c3c7ed0896fd04dac710ea0146f2e70e93d62b60e1267",
    "720403a3d90a211d106a5cee2e99f0228548f54e9db65ec8510ec50ab2f90423",
    "03940e57104ec9b0552c3c7ed0896fd04dac710ea0146f2e70e93d62b60e1267",
    "720403",
);

fn sigreq() -> SigReq {
    SigReq {
        seq: 7,
        nonce: 0x0123_4567_89ab_cdef,
    }
}

#[test]
fn sigreq_matches_ironwood() {
    let req = sigreq();
    assert_eq!(req.to_vec(), hx(SIGREQ));
    assert_eq!(req.encoded_len(), hx(SIGREQ).len());
    assert_eq!(SigReq::decode(&hx(SIGREQ)).unwrap(), req);
    assert_eq!(
        req.bytes_for_sig(&a().public_key(), &b().public_key()),
        hx(SIGREQ_BYTES_FOR_SIG)
    );
    assert_eq!(our_frame(&PeerMessage::SigReq(req)), hx(SIGREQ_FRAME));
    assert_eq!(hx(SIGREQ_FRAME)[1], 2, "wireProtoSigReq");
    assert_eq!(
        check_go_frame(&hx(SIGREQ_FRAME), FrameType::SigReq),
        PeerMessage::SigReq(req)
    );
}

#[test]
fn sigres_matches_ironwood() {
    let (node, parent) = (a(), b());
    let res = SigRes::sign(sigreq(), 300, &node.public_key(), &parent);
    assert_eq!(
        res.bytes_for_sig(&node.public_key(), &parent.public_key()),
        hx(SIGRES_BYTES_FOR_SIG)
    );
    assert_eq!(
        res.psig,
        arr::<64>(SIGRES_PSIG),
        "our psig equals ironwood's"
    );
    assert_eq!(res.to_vec(), hx(SIGRES));
    let decoded = SigRes::decode(&hx(SIGRES)).unwrap();
    assert_eq!(decoded, res);
    assert!(decoded.check(&node.public_key(), &parent.public_key()));
    assert!(!decoded.check(&parent.public_key(), &node.public_key()));
    assert_eq!(our_frame(&PeerMessage::SigRes(res)), hx(SIGRES_FRAME));
    assert_eq!(hx(SIGRES_FRAME)[1], 3, "wireProtoSigRes");
    check_go_frame(&hx(SIGRES_FRAME), FrameType::SigRes);
}

#[test]
fn announce_matches_ironwood() {
    let (node, parent) = (a(), b());
    let res = SigRes::decode(&hx(SIGRES)).unwrap();
    let bs = res.bytes_for_sig(&node.public_key(), &parent.public_key());
    let sig = node.sign(&bs);
    assert_eq!(sig, arr::<64>(ANNOUNCE_SIG), "our sig equals ironwood's");
    let ann = Announce {
        key: node.public_key(),
        parent: parent.public_key(),
        res,
        sig,
    };
    assert!(ann.check());
    assert_eq!(ann.to_vec(), hx(ANNOUNCE));
    let decoded = Announce::decode(&hx(ANNOUNCE)).unwrap();
    assert_eq!(decoded, ann);
    assert!(decoded.check());
    assert!(verify(&decoded.key, &bs, &decoded.sig));
    assert!(verify(&decoded.parent, &bs, &decoded.res.psig));
    // 205 bytes of type + body: the length prefix takes two bytes.
    assert_eq!(&hx(ANNOUNCE_FRAME)[..3], &[0xcd, 0x01, 4]);
    assert_eq!(our_frame(&PeerMessage::Announce(ann)), hx(ANNOUNCE_FRAME));
    check_go_frame(&hx(ANNOUNCE_FRAME), FrameType::Announce);
    // A flipped signature bit must not verify.
    let mut bad = hx(ANNOUNCE);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(!Announce::decode(&bad).unwrap().check());
}

#[test]
fn root_announce_matches_ironwood() {
    let root = c();
    let req = SigReq { seq: 1, nonce: 42 };
    let res = SigRes::sign(req, 0, &root.public_key(), &root);
    let ann = Announce {
        key: root.public_key(),
        parent: root.public_key(),
        res,
        sig: res.psig,
    };
    assert!(ann.check());
    assert_eq!(ann.to_vec(), hx(ROOT_ANNOUNCE));
    assert_eq!(Announce::decode(&hx(ROOT_ANNOUNCE)).unwrap(), ann);
}

// ---------------------------------------------------------------------------
// path discovery (`network/pathfinder.go`)

/// PathLookup{source: A, dest: B, from: [1, 2, 300]}.
const LOOKUP: &str = concat!(
    "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
    "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394",
    "0102ac0200",
);
const LOOKUP_FRAME: &str = concat!(
    "46068a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f",
    "6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9",
    "b3940102ac0200",
);

/// pathNotifyInfo{seq: 1_700_000_000, path: [3, 16384, 1]} signed by C.
const NOTIFY_INFO_BYTES_FOR_SIG: &str = "80e2cfaa06038080010100";
const NOTIFY_INFO_SIG: &str = concat!(
    "f000eaeda9830789cb558dfbed7e94006ffb7d6a05c135e5189dc4e894b4becb",
    "c8ecc7b6ad51d00a5db67e476dcf02ef08c7d986fce6af80f3539739cfc72707",
);
const NOTIFY_INFO: &str = concat!(
    "80e2cfaa06038080010100f000eaeda9830789cb558dfbed7e94006ffb7d6a05",
    "c135e5189dc4e894b4becbc8ecc7b6ad51d00a5db67e476dcf02ef08c7d986fc",
    "e6af80f3539739cfc72707",
);
/// PathNotify{path: [5, 6], watermark: 2^40 + 12345, source: C, dest: A,
/// info: the info above}.
const NOTIFY: &str = concat!(
    "050600b9e080808020ed4928c628d1c2c6eae90338905995612959273a5c63f9",
    "3636c14614ac8737d18a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d9412",
    "1bf3748801b40f6f5c80e2cfaa06038080010100f000eaeda9830789cb558dfb",
    "ed7e94006ffb7d6a05c135e5189dc4e894b4becbc8ecc7b6ad51d00a5db67e47",
    "6dcf02ef08c7d986fce6af80f3539739cfc72707",
);
const NOTIFY_FRAME: &str = concat!(
    "950107050600b9e080808020ed4928c628d1c2c6eae90338905995612959273a",
    "5c63f93636c14614ac8737d18a88e3dd7409f195fd52db2d3cba5d72ca6709bf",
    "1d94121bf3748801b40f6f5c80e2cfaa06038080010100f000eaeda9830789cb",
    "558dfbed7e94006ffb7d6a05c135e5189dc4e894b4becbc8ecc7b6ad51d00a5d",
    "b67e476dcf02ef08c7d986fce6af80f3539739cfc72707",
);

/// PathBroken{path: [7, 200], watermark: 0x1234567, source: A, dest: B}.
const BROKEN: &str = concat!(
    "07c80100e78a8d098a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121b",
    "f3748801b40f6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a2",
    "5df60f5b8fc9b394",
);
const BROKEN_FRAME: &str = concat!(
    "490807c80100e78a8d098a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94",
    "121bf3748801b40f6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee",
    "37a25df60f5b8fc9b394",
);

#[test]
fn path_lookup_matches_ironwood() {
    let lookup = PathLookup {
        source: a().public_key(),
        dest: b().public_key(),
        from: vec![1, 2, 300],
    };
    assert_eq!(lookup.to_vec(), hx(LOOKUP));
    assert_eq!(PathLookup::decode(&hx(LOOKUP)).unwrap(), lookup);
    assert_eq!(
        our_frame(&PeerMessage::PathLookup(lookup.clone())),
        hx(LOOKUP_FRAME)
    );
    assert_eq!(hx(LOOKUP_FRAME)[1], 6, "wireProtoPathLookup");
    assert_eq!(
        check_go_frame(&hx(LOOKUP_FRAME), FrameType::PathLookup),
        PeerMessage::PathLookup(lookup)
    );
}

fn notify_info() -> PathNotifyInfo {
    let mut info = PathNotifyInfo {
        seq: 1_700_000_000,
        path: vec![3, 16384, 1],
        sig: [0; 64],
    };
    info.sign(&c());
    info
}

#[test]
fn path_notify_matches_ironwood() {
    let info = notify_info();
    assert_eq!(info.bytes_for_sig(), hx(NOTIFY_INFO_BYTES_FOR_SIG));
    assert_eq!(
        info.sig,
        arr::<64>(NOTIFY_INFO_SIG),
        "our sig equals ironwood's"
    );
    assert_eq!(info.to_vec(), hx(NOTIFY_INFO));
    assert_eq!(PathNotifyInfo::decode(&hx(NOTIFY_INFO)).unwrap(), info);
    let notify = PathNotify {
        path: vec![5, 6],
        watermark: (1 << 40) + 12345,
        source: c().public_key(),
        dest: a().public_key(),
        info,
    };
    assert!(notify.check());
    assert_eq!(notify.to_vec(), hx(NOTIFY));
    let decoded = PathNotify::decode(&hx(NOTIFY)).unwrap();
    assert_eq!(decoded, notify);
    assert!(decoded.check());
    assert_eq!(
        our_frame(&PeerMessage::PathNotify(notify)),
        hx(NOTIFY_FRAME)
    );
    assert_eq!(
        &hx(NOTIFY_FRAME)[..3],
        &[0x95, 0x01, 7],
        "2-byte length, wireProtoPathNotify"
    );
    check_go_frame(&hx(NOTIFY_FRAME), FrameType::PathNotify);
    // Signed by C, so it must not verify as coming from A.
    let mut wrong = decoded;
    wrong.source = a().public_key();
    assert!(!wrong.check());
}

#[test]
fn path_broken_matches_ironwood() {
    let broken = PathBroken {
        path: vec![7, 200],
        watermark: 0x123_4567,
        source: a().public_key(),
        dest: b().public_key(),
    };
    assert_eq!(broken.to_vec(), hx(BROKEN));
    assert_eq!(PathBroken::decode(&hx(BROKEN)).unwrap(), broken);
    assert_eq!(
        our_frame(&PeerMessage::PathBroken(broken.clone())),
        hx(BROKEN_FRAME)
    );
    assert_eq!(hx(BROKEN_FRAME)[1], 8, "wireProtoPathBroken");
    assert_eq!(
        check_go_frame(&hx(BROKEN_FRAME), FrameType::PathBroken),
        PeerMessage::PathBroken(broken)
    );
}

// ---------------------------------------------------------------------------
// traffic (`network/traffic.go`)

/// traffic{path: [1, 300], from: [2, 16384], source: A, dest: B,
/// watermark: u64::MAX, payload: "hello ironwood"}.
const TRAFFIC: &str = concat!(
    "01ac020002808001008a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d9412",
    "1bf3748801b40f6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37",
    "a25df60f5b8fc9b394ffffffffffffffffff0168656c6c6f2069726f6e776f6f",
    "64",
);
const TRAFFIC_FRAME: &str = concat!(
    "620901ac020002808001008a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d",
    "94121bf3748801b40f6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91b4",
    "ee37a25df60f5b8fc9b394ffffffffffffffffff0168656c6c6f2069726f6e77",
    "6f6f64",
);
/// traffic{path: [9], from: [], source: B, dest: A, watermark: 12_345_678,
/// payload: 03 00 ff}.
const TRAFFIC2: &str = concat!(
    "0900008139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8f",
    "c9b3948a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b4",
    "0f6f5ccec2f1050300ff",
);

#[test]
fn traffic_matches_ironwood() {
    let tr = Traffic {
        path: vec![1, 300],
        from: vec![2, 16384],
        source: a().public_key(),
        dest: b().public_key(),
        watermark: u64::MAX,
        payload: b"hello ironwood".to_vec(),
    };
    assert_eq!(tr.to_vec(), hx(TRAFFIC));
    assert_eq!(Traffic::decode(&hx(TRAFFIC)).unwrap(), tr);
    assert_eq!(
        our_frame(&PeerMessage::Traffic(tr.clone())),
        hx(TRAFFIC_FRAME)
    );
    assert_eq!(hx(TRAFFIC_FRAME)[1], 9, "wireTraffic");
    assert_eq!(
        check_go_frame(&hx(TRAFFIC_FRAME), FrameType::Traffic),
        PeerMessage::Traffic(tr)
    );

    let tr2 = Traffic {
        path: vec![9],
        from: vec![],
        source: b().public_key(),
        dest: a().public_key(),
        watermark: 12_345_678,
        payload: vec![0x03, 0x00, 0xff],
    };
    assert_eq!(tr2.to_vec(), hx(TRAFFIC2));
    assert_eq!(Traffic::decode(&hx(TRAFFIC2)).unwrap(), tr2);

    // ironwood: an empty traffic with watermark u64::MAX has size() 76; the
    // MTU subtracts that plus the type byte.
    assert_eq!(TRAFFIC_OVERHEAD, 76 + 1);
}

#[test]
fn keepalive_frame_matches_ironwood() {
    // `peerMonitor.keepAlive` writes the literal frame 01 01.
    assert_eq!(our_frame(&PeerMessage::KeepAlive), [0x01, 0x01]);
    assert_eq!(decode_go_frame(&[0x01, 0x01]), PeerMessage::KeepAlive);
}

// ---------------------------------------------------------------------------
// bloom filters (`network/bloomfilter.go`)

/// yggdrasil-go v0.5.12 `address.SubnetForKey(key).GetKey()` of A, B and C
/// (the bloom transform Yggdrasil configures ironwood with).
const XFORM_A: &str = "8a88e3dd7409ffffffffffffffffffffffffffffffffffffffffffffffffffff";
const XFORM_B: &str = "8139770ea87d7fffffffffffffffffffffffffffffffffffffffffffffffffff";
const XFORM_C: &str = "ed4928c628d1ffffffffffffffffffffffffffffffffffffffffffffffffffff";

/// `newBloom()` + `addKey(XFORM_A)` + `addKey(XFORM_B)`, encoded; ironwood's
/// filter tests negative for XFORM_C.
const BLOOM_AB: &str = concat!(
    "fffebefdfdffff59ffe7ffb7fffff7fd00000000000000000000000000000000",
    "0000000020080000000000000000002000000000000000400000000000800000",
    "0000000000000100080000000000000000100000000000000000010000000000",
    "0000000010000000000000000001000001000000000000004000000000000000",
    "000400000000000000008000000000000004000000000000",
);
const BLOOM_AB_FRAME: &str = concat!(
    "990105fffebefdfdffff59ffe7ffb7fffff7fd00000000000000000000000000",
    "0000000000000020080000000000000000002000000000000000400000000000",
    "8000000000000000000100080000000000000000100000000000000000010000",
    "0000000000000010000000000000000001000001000000000000004000000000",
    "000000000400000000000000008000000000000004000000000000",
);
/// `newBloom()` encoded.
const BLOOM_EMPTY: &str = "ffffffffffffffffffffffffffffffff00000000000000000000000000000000";
/// `newBloom()` + `addKey(PUB_C)` (untransformed).
const BLOOM_RAW_C: &str = concat!(
    "ff77ffffffffbbfffbffdfffffbffeff00000000000000000000000000000000",
    "0002000000000000040000000000000000000000000000020000000000000400",
    "0000000000000200000200000000000000000000100000000000000000000010",
);
/// A filter built from 128 words, all zero except word 3 = all ones,
/// word 7 = 0x0123456789abcdef and word 127 = 0x8000000000000001.
const BLOOM_WORDS: &str = concat!(
    "eefffffffffffffffffffffffffffffe10000000000000000000000000000000",
    "0123456789abcdef8000000000000001",
);

#[test]
fn bloom_transform_matches_yggdrasil() {
    assert_eq!(bloom_transform(&a().public_key()), arr::<32>(XFORM_A));
    assert_eq!(bloom_transform(&b().public_key()), arr::<32>(XFORM_B));
    assert_eq!(bloom_transform(&c().public_key()), arr::<32>(XFORM_C));
}

#[test]
fn bloom_matches_ironwood() {
    let mut bloom = Bloom::new();
    bloom.add(&arr::<32>(XFORM_A));
    bloom.add(&arr::<32>(XFORM_B));
    assert_eq!(bloom.to_vec(), hx(BLOOM_AB));
    assert_eq!(bloom.encoded_len(), hx(BLOOM_AB).len());
    let decoded = Bloom::decode(&hx(BLOOM_AB)).unwrap();
    assert_eq!(decoded, bloom);
    assert!(decoded.test(&arr::<32>(XFORM_A)));
    assert!(decoded.test(&arr::<32>(XFORM_B)));
    assert!(!decoded.test(&arr::<32>(XFORM_C)));
    assert_eq!(
        our_frame(&PeerMessage::Bloom(Box::new(bloom))),
        hx(BLOOM_AB_FRAME)
    );
    assert_eq!(
        &hx(BLOOM_AB_FRAME)[..3],
        &[0x99, 0x01, 5],
        "2-byte length, wireProtoBloomFilter"
    );
    check_go_frame(&hx(BLOOM_AB_FRAME), FrameType::Bloom);

    assert_eq!(Bloom::new().to_vec(), hx(BLOOM_EMPTY));

    let mut raw = Bloom::new();
    raw.add(&c().public_key());
    assert_eq!(raw.to_vec(), hx(BLOOM_RAW_C));

    let words = Bloom::decode(&hx(BLOOM_WORDS)).unwrap();
    for (i, &w) in words.words().iter().enumerate() {
        let want = match i {
            3 => u64::MAX,
            7 => 0x0123_4567_89ab_cdef,
            127 => 0x8000_0000_0000_0001,
            _ => 0,
        };
        assert_eq!(w, want, "word {i}");
    }
    assert_eq!(words.to_vec(), hx(BLOOM_WORDS));
}

// ---------------------------------------------------------------------------
// frames captured on a live ironwood link

/// Frames ironwood node A (an `encrypted.PacketConn`, default config, so the
/// bloom transform is the identity) wrote on a `net.Pipe` to node B, in
/// order: SigReq, Bloom (empty), SigRes (A answering B's SigReq, port 1),
/// Announce (A as root), KeepAlive, SigReq, Announce (A with parent B),
/// Bloom (A's key), KeepAlive, PathLookup (A looking for B), Traffic (the
/// session packet of `SESSION_TRAFFIC` to B). Nonces are random.
const CAPTURED: [&str; 11] = [
    "0b0202e9afa4c6bbc5f7c647",
    concat!(
        "2105ffffffffffffffffffffffffffffffff0000000000000000000000000000",
        "0000",
    ),
    concat!(
        "4d03029edd989094b6f5e48d010165263bbe968dab6fd1ef0b0fd863cf261c2e",
        "1c1c32840e2f44112d4e8558ad8ef7e5baca83dc35f19fc590445b40cfeb1743",
        "a0c35d167de2c8ec1750b9f96c00",
    ),
    concat!(
        "cc01048a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b4",
        "0f6f5c8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b4",
        "0f6f5c01fadcdee3abf9cacb6200d43c70ac3ebe8a58d7661eec7c3e2b76a16d",
        "ea5c9ff7731e253953425710398bdf8a8bbcc40a8a619801c68181cb13647fd0",
        "b1d92e3a819f6a11d10aa571550ed43c70ac3ebe8a58d7661eec7c3e2b76a16d",
        "ea5c9ff7731e253953425710398bdf8a8bbcc40a8a619801c68181cb13647fd0",
        "b1d92e3a819f6a11d10aa571550e",
    ),
    "0101",
    "0c020397dbd38fbafcfcf0d201",
    concat!(
        "cc01048a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b4",
        "0f6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8f",
        "c9b39402e9afa4c6bbc5f7c6470113138d19e66cae1ee5394cf5c39e4a4dddce",
        "f254654f1d2e75243cec0cece425d0ab289f9c98a0a74c7baf7ab1cf4f04540b",
        "646f988dda34ba11f721086a1f0822a0a6dee4dfc3e1cabcba525349ce2feadc",
        "9de1eb4d064f00b1eb1d74189e6f6d4930ca4b7183558bf52f116fe00139810a",
        "d69e569db60579930a5b23e3bc0b",
    ),
    concat!(
        "5905dbfffffbffffffffff7f7fffffdfdfff0000000000000000000000000000",
        "0000000000000000000800000000000400000000000000008000000000020000",
        "0000000000000000000400200000000000400000000000400000",
    ),
    "0101",
    concat!(
        "43068a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f",
        "6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9",
        "b3940100",
    ),
    concat!(
        "8f01090001008a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf374",
        "8801b40f6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df6",
        "0f5b8fc9b3940103c80105808001a4188560bc7bba8c4bbdec1072c2871400b1",
        "9b7125117a0b03f2e27cde6d6e844f65e75020afd7a8ab2168d5de3b487b27e0",
        "05ad0c8b00ae97332bedbd5b337e87e4d1",
    ),
];

#[test]
fn frames_captured_from_ironwood_link() {
    let (ka, kb) = (a().public_key(), b().public_key());
    let expected = [
        FrameType::SigReq,
        FrameType::Bloom,
        FrameType::SigRes,
        FrameType::Announce,
        FrameType::KeepAlive,
        FrameType::SigReq,
        FrameType::Announce,
        FrameType::Bloom,
        FrameType::KeepAlive,
        FrameType::PathLookup,
        FrameType::Traffic,
    ];
    assert_eq!(CAPTURED.len(), expected.len());
    let msgs: Vec<PeerMessage> = CAPTURED
        .iter()
        .zip(expected)
        .map(|(f, ty)| check_go_frame(&hx(f), ty))
        .collect();

    let PeerMessage::SigReq(req_to_b) = &msgs[0] else {
        unreachable!()
    };
    let PeerMessage::Bloom(empty) = &msgs[1] else {
        unreachable!()
    };
    assert!(empty.is_empty());
    let PeerMessage::SigRes(res) = &msgs[2] else {
        unreachable!()
    };
    assert_eq!(res.port, 1);
    assert!(res.check(&kb, &ka), "A's psig for B's request");
    let PeerMessage::Announce(root) = &msgs[3] else {
        unreachable!()
    };
    assert_eq!((root.key, root.parent, root.res.port), (ka, ka, 0));
    assert!(root.check());
    let PeerMessage::Announce(child) = &msgs[6] else {
        unreachable!()
    };
    assert_eq!((child.key, child.parent), (ka, kb));
    assert_eq!(child.res.req, *req_to_b, "B answered A's first SigReq");
    assert!(child.check(), "psig by B and sig by A, both from ironwood");
    let PeerMessage::Bloom(own) = &msgs[7] else {
        unreachable!()
    };
    assert!(own.test(&ka));
    let PeerMessage::PathLookup(lookup) = &msgs[9] else {
        unreachable!()
    };
    assert_eq!((lookup.source, lookup.dest), (ka, kb));
    assert_eq!(lookup.from, vec![1]);
    let PeerMessage::Traffic(tr) = &msgs[10] else {
        unreachable!()
    };
    assert_eq!((tr.source, tr.dest), (ka, kb));
    assert!(tr.path.is_empty(), "B is the root");
    assert_eq!(tr.from, vec![1]);
    assert_eq!(tr.payload, hx(SESSION_TRAFFIC));
}

// ---------------------------------------------------------------------------
// encrypted sessions (`encrypted/session.go`, `crypto.go`)

/// `sessionInit{current, next, keySeq: 300, seq: 1_700_000_001}.encrypt(A, B)`,
/// with current/next the X25519 public keys of the secrets `[0x11; 32]` and
/// `[0x12; 32]`.
const INIT_A_TO_B: &str = concat!(
    "014fd24e36630611d4e6c80f3901050da03582cafafa63a4e006b0a14de77544",
    "688565b85bd97b1ad37e8a0e8bd99936b0440f214d515b759a0f2e0b053395e2",
    "dd7d67b415720f2c402095ca12f4286067d2ade56b6556ad9e6d95be80ebd8ca",
    "1a2d6c5e2dae4422c5829eb01ced9ca4939ad9ecad4771de433d82a8b3132fa4",
    "7f416030b361c85984b5a3d69c2c923d1c0f2deaec3284c685db73fb6eba100a",
    "4ea4b639014c534d5152b2973cd313bbc4859d8fb84d19f233dedc69600f3911",
    "9e",
);
const INIT_CURRENT: &str = "7b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13";
const INIT_NEXT: &str = "052a50773ac8d91773f2dc9662e12f0defe915e415b8a1c8e20a5a3d6ab2b843";

/// `sessionAck{current, next, keySeq: 1, seq: 1_700_000_002}.encrypt(B, A)`,
/// current/next from the secrets `[0x21; 32]` and `[0x22; 32]`.
const ACK_B_TO_A: &str = concat!(
    "02a849fe3acf852fab5b823368050c995213a470699d849c3e55232165950f23",
    "0a20c5f9333b9171dcc6d488d74a562b44d8f458715478f3c9ee6383500bc60b",
    "6082bebc2a5485757de8cc79555b2bf5f8db78d2cff8b7a8b67405cbd528fad9",
    "0459638df91d2e945587542abccc397c31ca34f15e1eb74e3376b85130186fd9",
    "ad50e79da1575073457ddc8b4ad20dd4e1e558050e944b65d48fba7549f41050",
    "43185ccfe18fc13be0bd7f5ef9c5405e745dd399dbadef3e0706344f1898182f",
    "e8",
);
const ACK_CURRENT: &str = "7d34a4815fa6b982535e60af3bd9b49556816080f1641ff81d2b7c8ae8268a44";
const ACK_NEXT: &str = "0faa684ed28867b97f4a6a2dee5df8ce974e76b7018e3f22a1c4cf2678570f20";

/// What B's `network.PacketConn.ReadFrom` returned after A's session
/// (`sendPriv = [0x31; 32]`, `nextPub` of `[0x32; 32]`, B's current key the
/// public key of `[0x41; 32]`, `localKeySeq = 200`, `remoteKeySeq = 5`, send
/// nonce 16383 before the send) sent "hello from ironwood" (`doSend`).
const SESSION_TRAFFIC: &str = concat!(
    "03c80105808001a4188560bc7bba8c4bbdec1072c2871400b19b7125117a0b03",
    "f2e27cde6d6e844f65e75020afd7a8ab2168d5de3b487b27e005ad0c8b00ae97",
    "332bedbd5b337e87e4d1",
);
/// X25519 public keys of `[0x31; 32]` and `[0x32; 32]` as ironwood printed them.
const TRAFFIC_SEND_PUB: &str = "04f5f29162c31a8defa18e6e742224ee806fc1718a278be859ba5620402b8f3a";
const TRAFFIC_NEXT_PUB: &str = "59d9225473451efffe6b36dbcaefdbf7b1895de62084509a7f5b58bf01d06418";

fn box_pub_of(secret: [u8; 32]) -> [u8; 32] {
    *BoxSecret::from_bytes(secret).public_key().as_bytes()
}

/// Opens an Init/Ack addressed to `to_seed`, checks the signature of `from`,
/// and returns (ack flag, payload).
fn open_init(packet: &[u8], to_seed: u8, from: &PublicKey) -> (bool, InitPayload) {
    assert_eq!(packet.len(), SESSION_INIT_LEN);
    assert_eq!(SESSION_INIT_LEN, 1 + 32 + 16 + 64 + 32 + 32 + 8 + 8);
    let SessionPacket::Init {
        ack,
        eph_pub,
        sealed,
    } = SessionPacket::decode(packet).unwrap()
    else {
        panic!("not an init/ack");
    };
    assert_eq!(
        &packet[1..33],
        &eph_pub,
        "ephemeral key right after the type"
    );
    assert_eq!(sealed.len(), 160, "box of the 144-byte payload");
    assert_eq!(&packet[33..], &sealed[..]);
    let secret = BoxSecret::from_bytes(ed_to_box_secret(&[to_seed; 32]));
    let shared = SalsaBox::new(&BoxPublic::from_bytes(eph_pub), &secret);
    let plain = shared
        .decrypt(&Nonce::from(box_nonce(0)), &sealed[..])
        .expect("ironwood's box opens with the recipient's converted key");
    let payload = InitPayload::decode(&plain).unwrap();
    assert_eq!(payload.to_vec(), plain);
    assert!(
        verify(from, &payload.bytes_for_sig(&eph_pub), &payload.sig),
        "signature over eph || current || next || keySeq || seq"
    );
    (ack, payload)
}

#[test]
fn session_init_and_ack_from_ironwood_decrypt() {
    assert_eq!(box_pub_of([0x11; 32]), arr::<32>(INIT_CURRENT));
    assert_eq!(box_pub_of([0x22; 32]), arr::<32>(ACK_NEXT));

    let init = hx(INIT_A_TO_B);
    assert_eq!(init[0], SESSION_TYPE_INIT);
    let (ack, p) = open_init(&init, 0x02, &a().public_key());
    assert!(!ack);
    assert_eq!(p.current, arr::<32>(INIT_CURRENT));
    assert_eq!(p.next, arr::<32>(INIT_NEXT));
    assert_eq!((p.key_seq, p.seq), (300, 1_700_000_001));
    assert_eq!(SessionPacket::decode(&init).unwrap().to_vec(), init);

    let ackp = hx(ACK_B_TO_A);
    assert_eq!(ackp[0], SESSION_TYPE_ACK);
    let (ack, p) = open_init(&ackp, 0x01, &b().public_key());
    assert!(ack);
    assert_eq!(p.current, arr::<32>(ACK_CURRENT));
    assert_eq!(p.next, arr::<32>(ACK_NEXT));
    assert_eq!((p.key_seq, p.seq), (1, 1_700_000_002));
}

#[test]
fn session_manager_accepts_ironwood_init_and_ack() {
    let now = Instant::now();
    let (ka, kb) = (a().public_key(), b().public_key());

    // B receives A's Init: a session with A's key sequence, answered by an Ack.
    let mut mgr_b = SessionManager::new(b());
    let mut out = SessionOutput::default();
    mgr_b.handle_data(now, ka, &hx(INIT_A_TO_B), &mut out);
    assert!(out.recv.is_empty());
    assert_eq!(out.send.len(), 1, "one Ack");
    let (to, our_ack) = &out.send[0];
    assert_eq!(*to, ka);
    assert_eq!(our_ack[0], SESSION_TYPE_ACK);
    let stats = mgr_b.stats();
    assert_eq!(stats.len(), 1);
    assert_eq!(
        (
            stats[0].key,
            stats[0].remote_key_seq,
            stats[0].local_key_seq
        ),
        (ka, 300, 1)
    );
    // Our Ack has the same layout and opens under A's converted key.
    let (ack, p) = open_init(our_ack, 0x01, &kb);
    assert!(ack);
    assert_eq!(p.key_seq, 1);

    // A receives B's Ack with no session: handled as an Init, answered by an Ack.
    let mut mgr_a = SessionManager::new(a());
    let mut out = SessionOutput::default();
    mgr_a.handle_data(now, kb, &hx(ACK_B_TO_A), &mut out);
    assert_eq!(out.send.len(), 1);
    assert_eq!(out.send[0].1[0], SESSION_TYPE_ACK);
    assert_eq!(mgr_a.stats()[0].remote_key_seq, 1);

    // The same Init claimed by another sender, or tampered with, is ignored.
    let mut mgr = SessionManager::new(b());
    let mut out = SessionOutput::default();
    mgr.handle_data(now, c().public_key(), &hx(INIT_A_TO_B), &mut out);
    let mut tampered = hx(INIT_A_TO_B);
    tampered[100] ^= 0x40;
    mgr.handle_data(now, ka, &tampered, &mut out);
    assert!(out.send.is_empty() && out.recv.is_empty());
    assert_eq!(mgr.counts().0, 0);
}

#[test]
fn session_traffic_from_ironwood() {
    let pkt = hx(SESSION_TRAFFIC);
    // 0x03 || uvarint 200 || uvarint 5 || uvarint 16384 || box
    assert_eq!(&pkt[..7], &[0x03, 0xc8, 0x01, 0x05, 0x80, 0x80, 0x01]);
    let SessionPacket::Traffic {
        local_key_seq,
        remote_key_seq,
        nonce,
        sealed,
    } = SessionPacket::decode(&pkt).unwrap()
    else {
        panic!("not traffic");
    };
    assert_eq!((local_key_seq, remote_key_seq, nonce), (200, 5, 16384));
    let msg = b"hello from ironwood";
    assert_eq!(sealed.len(), 16 + 32 + msg.len());

    // B opens it with its current secret and A's send key; inside is A's
    // next key, then the message.
    assert_eq!(box_pub_of([0x31; 32]), arr::<32>(TRAFFIC_SEND_PUB));
    assert_eq!(box_pub_of([0x32; 32]), arr::<32>(TRAFFIC_NEXT_PUB));
    let recv = SalsaBox::new(
        &BoxPublic::from_bytes(arr(TRAFFIC_SEND_PUB)),
        &BoxSecret::from_bytes([0x41; 32]),
    );
    let plain = recv
        .decrypt(&Nonce::from(box_nonce(nonce)), &sealed[..])
        .expect("opens with nonce 16384");
    assert_eq!(&plain[..32], &arr::<32>(TRAFFIC_NEXT_PUB));
    assert_eq!(&plain[32..], msg);

    // Rebuilding the packet from the same keys gives ironwood's bytes.
    let send = SalsaBox::new(
        &BoxPublic::from_bytes(box_pub_of([0x41; 32])),
        &BoxSecret::from_bytes([0x31; 32]),
    );
    let resealed = send
        .encrypt(&Nonce::from(box_nonce(16384)), &plain[..])
        .unwrap();
    let ours = SessionPacket::Traffic {
        local_key_seq: 200,
        remote_key_seq: 5,
        nonce: 16384,
        sealed: resealed,
    };
    assert_eq!(ours.encoded_len(), pkt.len());
    assert_eq!(ours.to_vec(), pkt);
}
