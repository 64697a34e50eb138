//! Primitive wire encodings shared by every ironwood message: unsigned LEB128
//! varints (Go's `binary.Uvarint`, at most [`MAX_UVARINT_LEN`] bytes), tree
//! paths (a run of non-zero uvarint ports closed by a uvarint `0`), raw
//! 32-byte ed25519 keys and 64-byte signatures, plus a small cursor
//! ([`Reader`]) that decoders use to chop fields off the front of a buffer
//! without ever panicking, and [`WireCodec`], the common shape of every
//! fixed-layout message codec built from them.
//!
//! Every decoder in this crate bounds lengths before allocating: paths are
//! limited to [`MAX_PATH_LEN`] ports, and the caller's frame is already
//! limited by the peer's maximum message size.

use thiserror::Error;

/// Size of an ed25519 public key (the node identity) in bytes.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Size of an ed25519 signature in bytes.
pub const SIGNATURE_LEN: usize = 64;
/// Longest uvarint Go's `binary.Uvarint` accepts (10 bytes encode 64 bits).
pub const MAX_UVARINT_LEN: usize = 10;
/// Maximum number of ports accepted in a decoded path. Ironwood itself has no
/// limit other than the frame size; a tree deeper than this is not realistic
/// and the bound keeps allocation proportional to sane input.
pub const MAX_PATH_LEN: usize = 1024;

/// A raw ed25519 public key as carried on the wire.
pub type PublicKey = [u8; PUBLIC_KEY_LEN];
/// A raw ed25519 signature as carried on the wire.
pub type Signature = [u8; SIGNATURE_LEN];
/// A tree port: the local number a node assigns to one peer key (never 0 on a
/// path; 0 terminates a path and marks a root's self-announcement).
pub type PeerPort = u64;

/// Errors from decoding wire data.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// The input ended before the field was complete.
    #[error("truncated input while decoding {0}")]
    Truncated(&'static str),
    /// A uvarint was longer than 10 bytes or overflowed 64 bits.
    #[error("uvarint overflows 64 bits")]
    VarintOverflow,
    /// A path had more than [`MAX_PATH_LEN`] ports.
    #[error("path longer than {MAX_PATH_LEN} ports")]
    PathTooLong,
    /// Bytes were left after the last field of a fixed-layout message.
    #[error("{0} trailing bytes after message")]
    TrailingBytes(usize),
    /// A field held a value the format forbids.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// Common shape of the fixed-layout message codecs in this crate.
pub trait WireCodec: Sized {
    /// Exact number of bytes [`WireCodec::encode`] appends.
    fn encoded_len(&self) -> usize;
    /// Appends the encoding to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Decodes a complete message; the whole input must be consumed.
    fn decode(data: &[u8]) -> Result<Self, WireError>;

    /// Convenience: encodes into a fresh vector.
    fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }
}

/// Number of bytes `value` takes as a uvarint.
pub fn uvarint_len(value: u64) -> usize {
    let bits = 64 - value.leading_zeros() as usize;
    bits.max(1).div_ceil(7)
}

/// Appends `value` as a uvarint.
pub fn put_uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Result of trying to parse a uvarint at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UvarintParse {
    /// A complete value and the number of bytes it used.
    Done(u64, usize),
    /// The buffer ended inside the varint; more bytes are needed.
    Incomplete,
    /// The varint is malformed (overflow), as Go's `binary.Uvarint` reports.
    Overflow,
}

/// Parses a uvarint with Go's `binary.Uvarint` rules (the 10th byte may only
/// be 0 or 1).
pub fn parse_uvarint(data: &[u8]) -> UvarintParse {
    let mut value: u64 = 0;
    for (i, &b) in data.iter().enumerate() {
        if i == MAX_UVARINT_LEN {
            return UvarintParse::Overflow;
        }
        if b < 0x80 {
            if i == MAX_UVARINT_LEN - 1 && b > 1 {
                return UvarintParse::Overflow;
            }
            return UvarintParse::Done(value | (u64::from(b) << (7 * i)), i + 1);
        }
        value |= u64::from(b & 0x7f) << (7 * i);
    }
    if data.len() >= MAX_UVARINT_LEN {
        UvarintParse::Overflow
    } else {
        UvarintParse::Incomplete
    }
}

/// Encoded size of a path (ports plus the terminating zero).
pub fn path_len(path: &[PeerPort]) -> usize {
    path.iter().map(|&p| uvarint_len(p)).sum::<usize>() + 1
}

/// Appends a path: each port as a uvarint, then a uvarint `0`.
pub fn put_path(out: &mut Vec<u8>, path: &[PeerPort]) {
    for &port in path {
        put_uvarint(out, port);
    }
    out.push(0);
}

/// A cursor over input bytes; every method fails instead of panicking.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> &'a [u8] {
        self.data
    }

    /// Takes exactly `n` bytes.
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.data.len() < n {
            return Err(WireError::Truncated(what));
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }

    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let b = self.bytes(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// Takes a uvarint.
    pub fn uvarint(&mut self, what: &'static str) -> Result<u64, WireError> {
        match parse_uvarint(self.data) {
            UvarintParse::Done(v, n) => {
                self.data = &self.data[n..];
                Ok(v)
            }
            UvarintParse::Incomplete => Err(WireError::Truncated(what)),
            UvarintParse::Overflow => Err(WireError::VarintOverflow),
        }
    }

    /// Takes a zero-terminated path of at most [`MAX_PATH_LEN`] ports.
    pub fn path(&mut self, what: &'static str) -> Result<Vec<PeerPort>, WireError> {
        let mut path = Vec::new();
        loop {
            let port = self.uvarint(what)?;
            if port == 0 {
                return Ok(path);
            }
            if path.len() == MAX_PATH_LEN {
                return Err(WireError::PathTooLong);
            }
            path.push(port);
        }
    }

    /// Takes everything that is left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// Fails if any bytes are left.
    pub fn finish(&self) -> Result<(), WireError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingBytes(self.data.len()))
        }
    }
}

/// Lexicographic key order, the order ironwood uses to elect the root
/// (smallest key wins) and to break announcement ties.
pub fn key_less(a: &PublicKey, b: &PublicKey) -> bool {
    a < b
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn uvarint_known_values() {
        for (v, enc) in [
            (0u64, vec![0u8]),
            (1, vec![1]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (300, vec![0xac, 0x02]),
            (
                u64::MAX,
                vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ] {
            let mut out = Vec::new();
            put_uvarint(&mut out, v);
            assert_eq!(out, enc);
            assert_eq!(uvarint_len(v), enc.len());
            assert_eq!(parse_uvarint(&enc), UvarintParse::Done(v, enc.len()));
        }
    }

    #[test]
    fn uvarint_overflow_and_truncation() {
        assert_eq!(parse_uvarint(&[0x80; 10]), UvarintParse::Overflow);
        assert_eq!(parse_uvarint(&[0x80; 9]), UvarintParse::Incomplete);
        let mut tenth_too_big = vec![0xff; 9];
        tenth_too_big.push(0x02);
        assert_eq!(parse_uvarint(&tenth_too_big), UvarintParse::Overflow);
        assert_eq!(parse_uvarint(&[]), UvarintParse::Incomplete);
    }

    #[test]
    fn path_rejects_overlong() {
        let long: Vec<u64> = (1..=(MAX_PATH_LEN as u64 + 1)).collect();
        let mut out = Vec::new();
        put_path(&mut out, &long);
        assert_eq!(Reader::new(&out).path("p"), Err(WireError::PathTooLong));
    }

    proptest! {
        #[test]
        fn uvarint_roundtrip(v in any::<u64>()) {
            let mut out = Vec::new();
            put_uvarint(&mut out, v);
            prop_assert_eq!(out.len(), uvarint_len(v));
            let mut r = Reader::new(&out);
            prop_assert_eq!(r.uvarint("v").unwrap(), v);
            prop_assert!(r.finish().is_ok());
        }

        #[test]
        fn path_roundtrip(path in proptest::collection::vec(1u64.., 0..40)) {
            let mut out = Vec::new();
            put_path(&mut out, &path);
            prop_assert_eq!(out.len(), path_len(&path));
            let mut r = Reader::new(&out);
            prop_assert_eq!(r.path("p").unwrap(), path);
            prop_assert!(r.finish().is_ok());
        }

        #[test]
        fn reader_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&data);
            let _ = r.path("p");
            let _ = r.uvarint("u");
            let _ = r.array::<32>("k");
        }
    }
}
