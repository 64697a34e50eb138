//! Ironwood peer messages (Yggdrasil 0.5): the spanning-tree messages
//! (`SigReq`, `SigRes`, `Announce`), path discovery (`PathLookup`,
//! `PathNotify`, `PathBroken`) and routed `Traffic`, plus the frame layer
//! that carries them on a link: `uvarint(len) || type:u8 || body`, where
//! `len` counts the type byte and the body.
//!
//! Field order and encodings follow ironwood's `network/router.go`,
//! `pathfinder.go` and `traffic.go`. Every decoder rejects truncated input
//! and (except `Traffic`, whose payload runs to the end) trailing bytes.

use crate::bloom::Bloom;
use crate::identity::{verify, Identity};
use crate::wire::{
    path_len, put_path, put_uvarint, uvarint_len, PeerPort, PublicKey, Reader, Signature,
    WireCodec, WireError, PUBLIC_KEY_LEN, SIGNATURE_LEN,
};

/// The type byte at the start of every peer frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// Ignored filler.
    Dummy = 0,
    /// Empty liveness answer.
    KeepAlive = 1,
    /// Tree: signature request.
    SigReq = 2,
    /// Tree: signature response.
    SigRes = 3,
    /// Tree: node info announcement.
    Announce = 4,
    /// Bloom filter of keys reachable through the sender.
    Bloom = 5,
    /// Path discovery request (multicast along the tree).
    PathLookup = 6,
    /// Path discovery answer.
    PathNotify = 7,
    /// A router could not forward traffic.
    PathBroken = 8,
    /// Routed session traffic.
    Traffic = 9,
}

impl FrameType {
    /// Maps a type byte; any unknown value closes the link in ironwood.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Dummy,
            1 => Self::KeepAlive,
            2 => Self::SigReq,
            3 => Self::SigRes,
            4 => Self::Announce,
            5 => Self::Bloom,
            6 => Self::PathLookup,
            7 => Self::PathNotify,
            8 => Self::PathBroken,
            9 => Self::Traffic,
            _ => return None,
        })
    }
}

/// `SigReq = uvarint seq || uvarint nonce`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SigReq {
    /// Requested info sequence number (requester's own seq + 1).
    pub seq: u64,
    /// Random nonce chosen by the requester.
    pub nonce: u64,
}

impl SigReq {
    fn put(&self, out: &mut Vec<u8>) {
        put_uvarint(out, self.seq);
        put_uvarint(out, self.nonce);
    }

    fn chop(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            seq: r.uvarint("sigreq seq")?,
            nonce: r.uvarint("sigreq nonce")?,
        })
    }

    /// `node[32] || parent[32] || uvarint seq || uvarint nonce`.
    pub fn bytes_for_sig(&self, node: &PublicKey, parent: &PublicKey) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 * PUBLIC_KEY_LEN + 20);
        out.extend_from_slice(node);
        out.extend_from_slice(parent);
        self.put(&mut out);
        out
    }
}

impl WireCodec for SigReq {
    fn encoded_len(&self) -> usize {
        uvarint_len(self.seq) + uvarint_len(self.nonce)
    }
    fn encode(&self, out: &mut Vec<u8>) {
        self.put(out)
    }
    fn decode(data: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(data);
        let v = Self::chop(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

/// `SigRes = SigReq || uvarint port || psig[64]`: the parent's signature
/// over the requester's (node) and its own (parent) key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SigRes {
    /// The request being answered.
    pub req: SigReq,
    /// The port the responder assigned to the requester.
    pub port: PeerPort,
    /// The responder's signature over [`SigRes::bytes_for_sig`].
    pub psig: Signature,
}

impl SigRes {
    /// `SigReq::bytes_for_sig(node, parent) || uvarint port`.
    pub fn bytes_for_sig(&self, node: &PublicKey, parent: &PublicKey) -> Vec<u8> {
        let mut out = self.req.bytes_for_sig(node, parent);
        put_uvarint(&mut out, self.port);
        out
    }

    /// Builds the response `parent` gives to `node`'s request.
    pub fn sign(req: SigReq, port: PeerPort, node: &PublicKey, parent: &Identity) -> Self {
        let mut res = Self {
            req,
            port,
            psig: [0; SIGNATURE_LEN],
        };
        res.psig = parent.sign(&res.bytes_for_sig(node, &parent.public_key()));
        res
    }

    /// Checks `psig` under `parent`.
    pub fn check(&self, node: &PublicKey, parent: &PublicKey) -> bool {
        verify(parent, &self.bytes_for_sig(node, parent), &self.psig)
    }

    fn chop(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            req: SigReq::chop(r)?,
            port: r.uvarint("sigres port")?,
            psig: r.array("sigres psig")?,
        })
    }
}

impl WireCodec for SigRes {
    fn encoded_len(&self) -> usize {
        self.req.encoded_len() + uvarint_len(self.port) + SIGNATURE_LEN
    }
    fn encode(&self, out: &mut Vec<u8>) {
        self.req.put(out);
        put_uvarint(out, self.port);
        out.extend_from_slice(&self.psig);
    }
    fn decode(data: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(data);
        let v = Self::chop(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

/// `Announce = key[32] || parent[32] || SigRes || sig[64]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Announce {
    /// The node this info describes.
    pub key: PublicKey,
    /// Its parent (itself for a root).
    pub parent: PublicKey,
    /// The parent's response (seq, nonce, port, psig).
    pub res: SigRes,
    /// The node's own signature over the same bytes.
    pub sig: Signature,
}

impl Announce {
    /// Validity: `port == 0` only for a root (`key == parent`), `sig` verifies
    /// under `key` and `psig` under `parent`.
    pub fn check(&self) -> bool {
        if self.res.port == 0 && self.key != self.parent {
            return false;
        }
        let bs = self.res.bytes_for_sig(&self.key, &self.parent);
        verify(&self.key, &bs, &self.sig) && verify(&self.parent, &bs, &self.res.psig)
    }
}

impl WireCodec for Announce {
    fn encoded_len(&self) -> usize {
        2 * PUBLIC_KEY_LEN + self.res.encoded_len() + SIGNATURE_LEN
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.parent);
        self.res.encode(out);
        out.extend_from_slice(&self.sig);
    }
    fn decode(data: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(data);
        let v = Self {
            key: r.array("announce key")?,
            parent: r.array("announce parent")?,
            res: SigRes::chop(&mut r)?,
            sig: r.array("announce sig")?,
        };
        r.finish()?;
        Ok(v)
    }
}

/// `PathLookup = source[32] || dest[32] || from:path`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathLookup {
    /// Who is looking.
    pub source: PublicKey,
    /// Who is looked for (matched through the bloom transform).
    pub dest: PublicKey,
    /// The requester's tree coordinates.
    pub from: Vec<PeerPort>,
}

impl WireCodec for PathLookup {
    fn encoded_len(&self) -> usize {
        2 * PUBLIC_KEY_LEN + path_len(&self.from)
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.source);
        out.extend_from_slice(&self.dest);
        put_path(out, &self.from);
    }
    fn decode(data: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(data);
        let v = Self {
            source: r.array("lookup source")?,
            dest: r.array("lookup dest")?,
            from: r.path("lookup from")?,
        };
        r.finish()?;
        Ok(v)
    }
}

/// `info = uvarint seq || path:path || sig[64]`, signed by the notify source
/// over `uvarint seq || path`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathNotifyInfo {
    /// Unix seconds at signing time.
    pub seq: u64,
    /// The source's tree coordinates.
    pub path: Vec<PeerPort>,
    /// The source's signature.
    pub sig: Signature,
}

impl PathNotifyInfo {
    /// `uvarint seq || path`.
    pub fn bytes_for_sig(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(uvarint_len(self.seq) + path_len(&self.path));
        put_uvarint(&mut out, self.seq);
        put_path(&mut out, &self.path);
        out
    }

    /// Signs with `id`, replacing `sig`.
    pub fn sign(&mut self, id: &Identity) {
        self.sig = id.sign(&self.bytes_for_sig());
    }

    /// Same seq and path (the signature is ignored), as ironwood compares.
    pub fn same_content(&self, other: &Self) -> bool {
        self.seq == other.seq && self.path == other.path
    }
}

impl WireCodec for PathNotifyInfo {
    fn encoded_len(&self) -> usize {
        uvarint_len(self.seq) + path_len(&self.path) + SIGNATURE_LEN
    }
    fn encode(&self, out: &mut Vec<u8>) {
        put_uvarint(out, self.seq);
        put_path(out, &self.path);
        out.extend_from_slice(&self.sig);
    }
    fn decode(data: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(data);
        let v = Self {
            seq: r.uvarint("notify info seq")?,
            path: r.path("notify info path")?,
            sig: r.array("notify info sig")?,
        };
        r.finish()?;
        Ok(v)
    }
}

/// `PathNotify = path:path || uvarint watermark || source[32] || dest[32] || info`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathNotify {
    /// Where the notify is routed (the lookup's `from`).
    pub path: Vec<PeerPort>,
    /// Greedy-routing watermark.
    pub watermark: u64,
    /// Who answers (the looked-up node).
    pub source: PublicKey,
    /// Who asked.
    pub dest: PublicKey,
    /// The signed coordinates of `source`.
    pub info: PathNotifyInfo,
}

impl PathNotify {
    /// Checks the info signature under `source`.
    pub fn check(&self) -> bool {
        verify(&self.source, &self.info.bytes_for_sig(), &self.info.sig)
    }
}

impl WireCodec for PathNotify {
    fn encoded_len(&self) -> usize {
        path_len(&self.path)
            + uvarint_len(self.watermark)
            + 2 * PUBLIC_KEY_LEN
            + self.info.encoded_len()
    }
    fn encode(&self, out: &mut Vec<u8>) {
        put_path(out, &self.path);
        put_uvarint(out, self.watermark);
        out.extend_from_slice(&self.source);
        out.extend_from_slice(&self.dest);
        self.info.encode(out);
    }
    fn decode(data: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(data);
        let path = r.path("notify path")?;
        let watermark = r.uvarint("notify watermark")?;
        let source = r.array("notify source")?;
        let dest = r.array("notify dest")?;
        let info = PathNotifyInfo::decode(r.rest())?;
        Ok(Self {
            path,
            watermark,
            source,
            dest,
            info,
        })
    }
}

/// `PathBroken = path:path || uvarint watermark || source[32] || dest[32]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathBroken {
    /// Route back toward the traffic's sender (`traffic.from`).
    pub path: Vec<PeerPort>,
    /// Greedy-routing watermark.
    pub watermark: u64,
    /// The original traffic source.
    pub source: PublicKey,
    /// The original traffic destination.
    pub dest: PublicKey,
}

impl WireCodec for PathBroken {
    fn encoded_len(&self) -> usize {
        path_len(&self.path) + uvarint_len(self.watermark) + 2 * PUBLIC_KEY_LEN
    }
    fn encode(&self, out: &mut Vec<u8>) {
        put_path(out, &self.path);
        put_uvarint(out, self.watermark);
        out.extend_from_slice(&self.source);
        out.extend_from_slice(&self.dest);
    }
    fn decode(data: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(data);
        let v = Self {
            path: r.path("broken path")?,
            watermark: r.uvarint("broken watermark")?,
            source: r.array("broken source")?,
            dest: r.array("broken dest")?,
        };
        r.finish()?;
        Ok(v)
    }
}

/// `Traffic = path:path || from:path || source[32] || dest[32] || uvarint watermark || payload`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Traffic {
    /// Destination coordinates.
    pub path: Vec<PeerPort>,
    /// Sender coordinates.
    pub from: Vec<PeerPort>,
    /// Sender key.
    pub source: PublicKey,
    /// Destination key.
    pub dest: PublicKey,
    /// Greedy-routing watermark (`u64::MAX` when first sent).
    pub watermark: u64,
    /// The (encrypted-layer) payload, running to the end of the frame.
    pub payload: Vec<u8>,
}

/// Bytes of a traffic header with empty paths and a maximal watermark, plus
/// the frame type byte: ironwood's MTU overhead (76 + 1).
pub const TRAFFIC_OVERHEAD: usize = 1 + 1 + 2 * PUBLIC_KEY_LEN + 10 + 1;

impl WireCodec for Traffic {
    fn encoded_len(&self) -> usize {
        path_len(&self.path)
            + path_len(&self.from)
            + 2 * PUBLIC_KEY_LEN
            + uvarint_len(self.watermark)
            + self.payload.len()
    }
    fn encode(&self, out: &mut Vec<u8>) {
        put_path(out, &self.path);
        put_path(out, &self.from);
        out.extend_from_slice(&self.source);
        out.extend_from_slice(&self.dest);
        put_uvarint(out, self.watermark);
        out.extend_from_slice(&self.payload);
    }
    fn decode(data: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(data);
        Ok(Self {
            path: r.path("traffic path")?,
            from: r.path("traffic from")?,
            source: r.array("traffic source")?,
            dest: r.array("traffic dest")?,
            watermark: r.uvarint("traffic watermark")?,
            payload: r.rest().to_vec(),
        })
    }
}

/// One decoded peer frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerMessage {
    /// Type 0 (any body is ignored, as ironwood does).
    Dummy,
    /// Type 1 (any body is ignored, as ironwood does).
    KeepAlive,
    /// Type 2.
    SigReq(SigReq),
    /// Type 3.
    SigRes(SigRes),
    /// Type 4.
    Announce(Announce),
    /// Type 5.
    Bloom(Box<Bloom>),
    /// Type 6.
    PathLookup(PathLookup),
    /// Type 7.
    PathNotify(PathNotify),
    /// Type 8.
    PathBroken(PathBroken),
    /// Type 9.
    Traffic(Traffic),
}

/// Errors from decoding a frame's type + body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame of length zero (ironwood: `ErrEmptyMessage`).
    #[error("empty frame")]
    Empty,
    /// Unknown type byte (ironwood: `ErrUnrecognizedMessage`).
    #[error("unrecognized frame type {0}")]
    UnknownType(u8),
    /// The body did not decode.
    #[error("bad {0:?} frame: {1}")]
    Body(FrameType, WireError),
}

impl PeerMessage {
    /// The frame type byte.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Self::Dummy => FrameType::Dummy,
            Self::KeepAlive => FrameType::KeepAlive,
            Self::SigReq(_) => FrameType::SigReq,
            Self::SigRes(_) => FrameType::SigRes,
            Self::Announce(_) => FrameType::Announce,
            Self::Bloom(_) => FrameType::Bloom,
            Self::PathLookup(_) => FrameType::PathLookup,
            Self::PathNotify(_) => FrameType::PathNotify,
            Self::PathBroken(_) => FrameType::PathBroken,
            Self::Traffic(_) => FrameType::Traffic,
        }
    }

    /// Length of type byte + body (the value of the frame's length prefix).
    pub fn body_len(&self) -> usize {
        1 + match self {
            Self::Dummy | Self::KeepAlive => 0,
            Self::SigReq(m) => m.encoded_len(),
            Self::SigRes(m) => m.encoded_len(),
            Self::Announce(m) => m.encoded_len(),
            Self::Bloom(m) => m.encoded_len(),
            Self::PathLookup(m) => m.encoded_len(),
            Self::PathNotify(m) => m.encoded_len(),
            Self::PathBroken(m) => m.encoded_len(),
            Self::Traffic(m) => m.encoded_len(),
        }
    }

    /// Appends the complete frame `uvarint(len) || type || body`.
    pub fn encode_frame(&self, out: &mut Vec<u8>) {
        let len = self.body_len();
        out.reserve(len + 3);
        put_uvarint(out, len as u64);
        out.push(self.frame_type() as u8);
        match self {
            Self::Dummy | Self::KeepAlive => {}
            Self::SigReq(m) => m.encode(out),
            Self::SigRes(m) => m.encode(out),
            Self::Announce(m) => m.encode(out),
            Self::Bloom(m) => m.encode(out),
            Self::PathLookup(m) => m.encode(out),
            Self::PathNotify(m) => m.encode(out),
            Self::PathBroken(m) => m.encode(out),
            Self::Traffic(m) => m.encode(out),
        }
    }

    /// Decodes `type || body` (a frame without its length prefix).
    pub fn decode(frame: &[u8]) -> Result<Self, FrameError> {
        let (&t, body) = frame.split_first().ok_or(FrameError::Empty)?;
        let ft = FrameType::from_u8(t).ok_or(FrameError::UnknownType(t))?;
        let e = |err| FrameError::Body(ft, err);
        Ok(match ft {
            FrameType::Dummy => Self::Dummy,
            FrameType::KeepAlive => Self::KeepAlive,
            FrameType::SigReq => Self::SigReq(SigReq::decode(body).map_err(e)?),
            FrameType::SigRes => Self::SigRes(SigRes::decode(body).map_err(e)?),
            FrameType::Announce => Self::Announce(Announce::decode(body).map_err(e)?),
            FrameType::Bloom => Self::Bloom(Box::new(Bloom::decode(body).map_err(e)?)),
            FrameType::PathLookup => Self::PathLookup(PathLookup::decode(body).map_err(e)?),
            FrameType::PathNotify => Self::PathNotify(PathNotify::decode(body).map_err(e)?),
            FrameType::PathBroken => Self::PathBroken(PathBroken::decode(body).map_err(e)?),
            FrameType::Traffic => Self::Traffic(Traffic::decode(body).map_err(e)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::parse_uvarint;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = PublicKey> {
        any::<[u8; 32]>()
    }
    fn sig() -> impl Strategy<Value = Signature> {
        proptest::collection::vec(any::<u8>(), 64).prop_map(|v| v.try_into().unwrap())
    }
    fn path() -> impl Strategy<Value = Vec<PeerPort>> {
        proptest::collection::vec(1u64.., 0..12)
    }
    fn sigreq() -> impl Strategy<Value = SigReq> {
        (any::<u64>(), any::<u64>()).prop_map(|(seq, nonce)| SigReq { seq, nonce })
    }
    fn sigres() -> impl Strategy<Value = SigRes> {
        (sigreq(), any::<u64>(), sig()).prop_map(|(req, port, psig)| SigRes { req, port, psig })
    }
    fn info() -> impl Strategy<Value = PathNotifyInfo> {
        (any::<u64>(), path(), sig()).prop_map(|(seq, path, sig)| PathNotifyInfo { seq, path, sig })
    }

    fn message() -> impl Strategy<Value = PeerMessage> {
        prop_oneof![
            Just(PeerMessage::Dummy),
            Just(PeerMessage::KeepAlive),
            sigreq().prop_map(PeerMessage::SigReq),
            sigres().prop_map(PeerMessage::SigRes),
            (key(), key(), sigres(), sig()).prop_map(|(key, parent, res, sig)| {
                PeerMessage::Announce(Announce {
                    key,
                    parent,
                    res,
                    sig,
                })
            }),
            proptest::collection::vec(any::<[u8; 32]>(), 0..20).prop_map(|keys| {
                let mut b = Bloom::new();
                for k in &keys {
                    b.add(k);
                }
                PeerMessage::Bloom(Box::new(b))
            }),
            (key(), key(), path()).prop_map(|(source, dest, from)| {
                PeerMessage::PathLookup(PathLookup { source, dest, from })
            }),
            (path(), any::<u64>(), key(), key(), info()).prop_map(
                |(path, watermark, source, dest, info)| PeerMessage::PathNotify(PathNotify {
                    path,
                    watermark,
                    source,
                    dest,
                    info
                })
            ),
            (path(), any::<u64>(), key(), key()).prop_map(|(path, watermark, source, dest)| {
                PeerMessage::PathBroken(PathBroken {
                    path,
                    watermark,
                    source,
                    dest,
                })
            }),
            (
                path(),
                path(),
                key(),
                key(),
                any::<u64>(),
                proptest::collection::vec(any::<u8>(), 0..100)
            )
                .prop_map(|(path, from, source, dest, watermark, payload)| {
                    PeerMessage::Traffic(Traffic {
                        path,
                        from,
                        source,
                        dest,
                        watermark,
                        payload,
                    })
                }),
        ]
    }

    proptest! {
        #[test]
        fn frame_roundtrip(msg in message()) {
            let mut out = Vec::new();
            msg.encode_frame(&mut out);
            let (len, n) = match parse_uvarint(&out) {
                crate::wire::UvarintParse::Done(len, n) => (len, n),
                other => panic!("{other:?}"),
            };
            prop_assert_eq!(len as usize, out.len() - n);
            prop_assert_eq!(len as usize, msg.body_len());
            prop_assert_eq!(PeerMessage::decode(&out[n..]).unwrap(), msg);
        }

        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = PeerMessage::decode(&data);
            for t in 0u8..=10 {
                let mut f = vec![t];
                f.extend_from_slice(&data);
                let _ = PeerMessage::decode(&f);
            }
        }

        #[test]
        fn truncated_fixed_messages_fail(msg in message()) {
            let mut out = Vec::new();
            msg.encode_frame(&mut out);
            let n = match parse_uvarint(&out) {
                crate::wire::UvarintParse::Done(_, n) => n,
                _ => unreachable!(),
            };
            let frame = &out[n..];
            if !matches!(msg, PeerMessage::Dummy | PeerMessage::KeepAlive | PeerMessage::Traffic(_)) {
                prop_assert!(PeerMessage::decode(&frame[..frame.len() - 1]).is_err());
                let mut longer = frame.to_vec();
                longer.push(0);
                prop_assert!(PeerMessage::decode(&longer).is_err());
            }
        }
    }

    #[test]
    fn keepalive_frame_bytes() {
        let mut out = Vec::new();
        PeerMessage::KeepAlive.encode_frame(&mut out);
        assert_eq!(out, [0x01, 0x01]);
    }

    #[test]
    fn sig_req_res_announce_verify() {
        let node = Identity::from_seed(&[1; 32]);
        let parent = Identity::from_seed(&[2; 32]);
        let req = SigReq {
            seq: 5,
            nonce: 0xdead_beef,
        };
        let res = SigRes::sign(req, 3, &node.public_key(), &parent);
        assert!(res.check(&node.public_key(), &parent.public_key()));
        assert!(!res.check(&parent.public_key(), &node.public_key()));
        let sig = node.sign(&res.bytes_for_sig(&node.public_key(), &parent.public_key()));
        let ann = Announce {
            key: node.public_key(),
            parent: parent.public_key(),
            res,
            sig,
        };
        assert!(ann.check());
        let mut bad = ann;
        bad.res.port = 0;
        assert!(!bad.check());
        // Root self-announcement: port 0, key == parent.
        let root_res = SigRes::sign(req, 0, &node.public_key(), &node);
        let root = Announce {
            key: node.public_key(),
            parent: node.public_key(),
            res: root_res,
            sig: root_res.psig,
        };
        assert!(root.check());
    }

    #[test]
    fn traffic_overhead_matches_ironwood_mtu() {
        let tr = Traffic {
            path: vec![],
            from: vec![],
            source: [0; 32],
            dest: [0; 32],
            watermark: u64::MAX,
            payload: vec![],
        };
        // ironwood: MTU = peerMaxMessageSize - (size of empty traffic + 1).
        assert_eq!(tr.encoded_len() + 1, TRAFFIC_OVERHEAD);
        assert_eq!(TRAFFIC_OVERHEAD, 77);
    }
}
