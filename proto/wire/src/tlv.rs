//! TLV payload encoding (`mediator-protocol.md` §3).
//!
//! An element is `tag (1) | length (varint, 1–4 bytes) | value`. The varint is protobuf style:
//! seven bits a byte, least significant group first, 0x80 meaning "more follows", at most
//! [`MAX_VARINT_BYTES`] bytes. Readers accept non-minimal encodings, writers emit the minimal
//! one. A request payload parses into a [`TlvMap`] (last duplicate wins, unknown tags kept but
//! ignored by callers); list responses are read element by element with [`TlvIter`], because
//! their record order is part of the wire contract.

use thiserror::Error;

/// The longest varint accepted or produced.
pub const MAX_VARINT_BYTES: usize = 4;
/// The largest value a 4-byte varint can hold (2^28 − 1).
pub const MAX_VARINT_VALUE: u32 = (1 << 28) - 1;

/// Tag numbers (§3.4). Identical on server and client.
pub mod tag {
    pub const PUBKEY: u8 = 0x01;
    pub const SIGNATURE: u8 = 0x02;
    pub const NONCE: u8 = 0x03;
    pub const COUNTER: u8 = 0x04;
    pub const CHAT_ID: u8 = 0x10;
    pub const MESSAGE_ID: u8 = 0x11;
    pub const MESSAGE_GUID: u8 = 0x12;
    pub const INVITE_ID: u8 = 0x13;
    pub const SINCE_ID: u8 = 0x14;
    pub const USER_PUBKEY: u8 = 0x15;
    pub const CHAT_NAME: u8 = 0x20;
    pub const CHAT_DESC: u8 = 0x21;
    pub const CHAT_AVATAR: u8 = 0x22;
    pub const MESSAGE_BLOB: u8 = 0x23;
    pub const MEMBER_INFO: u8 = 0x24;
    pub const INVITE_DATA: u8 = 0x25;
    pub const LIMIT: u8 = 0x30;
    pub const COUNT: u8 = 0x31;
    pub const TIMESTAMP: u8 = 0x32;
    pub const PERMS: u8 = 0x33;
    pub const ONLINE: u8 = 0x34;
    pub const ACCEPTED: u8 = 0x35;
    pub const LAST_UPDATE: u8 = 0x36;
    pub const LAST_SEEN: u8 = 0x37;
}

/// Why a TLV payload could not be parsed. The server answers all of them with
/// "bad tlv payload" and keeps the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TlvError {
    #[error("tlv length varint truncated at offset {offset}")]
    TruncatedVarint { offset: usize },
    #[error("tlv length varint longer than {MAX_VARINT_BYTES} bytes at offset {offset}")]
    VarintTooLong { offset: usize },
    #[error("tlv value of {len} bytes at offset {offset} runs past the payload end")]
    ValueOverrun { offset: usize, len: usize },
}

/// Reads a varint from the start of `buf`: `(value, bytes used)`.
pub fn read_varint(buf: &[u8], offset: usize) -> Result<(u32, usize), TlvError> {
    let mut value: u32 = 0;
    for i in 0..MAX_VARINT_BYTES {
        let Some(&b) = buf.get(i) else {
            return Err(TlvError::TruncatedVarint { offset });
        };
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(TlvError::VarintTooLong { offset })
}

/// Number of bytes of the minimal varint for `value`.
pub fn varint_len(value: u32) -> usize {
    match value {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        0x4000..=0x1f_ffff => 3,
        _ => 4,
    }
}

/// Appends the minimal varint for `value`. Values above [`MAX_VARINT_VALUE`] cannot occur:
/// every value we encode is bounded by the frame limits, far below 2^28.
pub fn put_varint(out: &mut Vec<u8>, mut value: u32) {
    debug_assert!(value <= MAX_VARINT_VALUE, "tlv value too long to encode");
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends one element.
pub fn put(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    put_varint(out, value.len() as u32);
    out.extend_from_slice(value);
}

/// Encoded size of one element with a value of `value_len` bytes.
pub fn element_len(value_len: usize) -> usize {
    1 + varint_len(value_len as u32) + value_len
}

/// Sequential reader over the elements of a payload, in wire order.
#[derive(Debug, Clone)]
pub struct TlvIter<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> TlvIter<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        TlvIter {
            buf,
            pos: 0,
            failed: false,
        }
    }
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = Result<(u8, &'a [u8]), TlvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let start = self.pos;
        let tag = self.buf[start];
        let (len, used) = match read_varint(&self.buf[start + 1..], start + 1) {
            Ok(v) => v,
            Err(e) => {
                self.failed = true;
                return Some(Err(e));
            }
        };
        let value_start = start + 1 + used;
        let len = len as usize;
        if len > self.buf.len() - value_start {
            self.failed = true;
            return Some(Err(TlvError::ValueOverrun { offset: start, len }));
        }
        self.pos = value_start + len;
        Some(Ok((tag, &self.buf[value_start..self.pos])))
    }
}

/// A parsed request payload: tag → value, the last duplicate winning (§3.2).
/// Holds borrowed slices only; parsing allocates nothing.
#[derive(Clone)]
pub struct TlvMap<'a> {
    values: [Option<&'a [u8]>; 256],
}

impl std::fmt::Debug for TlvMap<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (tag, v) in self.values.iter().enumerate() {
            if let Some(v) = v {
                m.entry(&tag, &v.len());
            }
        }
        m.finish()
    }
}

impl<'a> TlvMap<'a> {
    /// Parses a whole payload. The elements must fill it exactly; an empty payload is an
    /// empty map.
    pub fn parse(payload: &'a [u8]) -> Result<Self, TlvError> {
        let mut values = [None; 256];
        for item in TlvIter::new(payload) {
            let (tag, value) = item?;
            values[tag as usize] = Some(value);
        }
        Ok(TlvMap { values })
    }

    /// The value of `tag`, if present (a present empty value is `Some(&[])`).
    pub fn get(&self, tag: u8) -> Option<&'a [u8]> {
        self.values[tag as usize]
    }

    /// The value of `tag` if it is present with exactly `N` bytes.
    pub fn fixed<const N: usize>(&self, tag: u8) -> Option<[u8; N]> {
        self.get(tag).and_then(|v| v.try_into().ok())
    }

    /// An 8-byte big-endian integer, exactly 8 bytes.
    pub fn i64(&self, tag: u8) -> Option<i64> {
        self.fixed::<8>(tag).map(i64::from_be_bytes)
    }

    /// A 4-byte big-endian integer, exactly 4 bytes.
    pub fn u32(&self, tag: u8) -> Option<u32> {
        self.fixed::<4>(tag).map(u32::from_be_bytes)
    }

    /// A 1-byte value, exactly 1 byte.
    pub fn u8(&self, tag: u8) -> Option<u8> {
        self.fixed::<1>(tag).map(|b| b[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(v: u32) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        out
    }

    #[test]
    fn varint_examples_from_spec() {
        for (v, hex) in [
            (0u32, "00"),
            (127, "7f"),
            (128, "8001"),
            (200, "c801"),
            (204_800, "80c00c"),
            (MAX_VARINT_VALUE, "ffffff7f"),
        ] {
            assert_eq!(hex::encode(varint(v)), hex, "value {v}");
            assert_eq!(varint_len(v), hex.len() / 2);
            assert_eq!(read_varint(&varint(v), 0), Ok((v, hex.len() / 2)));
        }
    }

    #[test]
    fn varint_reader_accepts_non_minimal_and_rejects_five_bytes() {
        assert_eq!(read_varint(&[0x80, 0x00], 0), Ok((0, 2)));
        assert_eq!(
            read_varint(&[0x80, 0x80, 0x80, 0x80, 0x01], 3),
            Err(TlvError::VarintTooLong { offset: 3 })
        );
        assert_eq!(
            read_varint(&[0x80], 0),
            Err(TlvError::TruncatedVarint { offset: 0 })
        );
    }

    #[test]
    fn map_last_duplicate_wins_and_exact_sizes() {
        let mut p = Vec::new();
        put(&mut p, tag::CHAT_ID, &1i64.to_be_bytes());
        put(&mut p, tag::CHAT_ID, &2i64.to_be_bytes());
        put(&mut p, tag::LIMIT, &[0, 0, 1]);
        put(&mut p, 0xee, b"unknown");
        let m = TlvMap::parse(&p).unwrap();
        assert_eq!(m.i64(tag::CHAT_ID), Some(2));
        assert_eq!(m.u32(tag::LIMIT), None, "3 bytes is not a u32");
        assert_eq!(m.get(tag::MESSAGE_BLOB), None);
        assert!(TlvMap::parse(&[]).is_ok());
    }

    #[test]
    fn map_rejects_overrun_and_truncation() {
        assert!(matches!(
            TlvMap::parse(&[0x10, 0x08, 0, 0]),
            Err(TlvError::ValueOverrun { .. })
        ));
        assert!(matches!(
            TlvMap::parse(&[0x10]),
            Err(TlvError::TruncatedVarint { .. })
        ));
        let mut empty = Vec::new();
        put(&mut empty, tag::MESSAGE_BLOB, &[]);
        assert_eq!(
            TlvMap::parse(&empty).unwrap().get(tag::MESSAGE_BLOB),
            Some(&[][..])
        );
    }
}
