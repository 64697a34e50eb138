//! Bloom filters as ironwood uses them (`network/bloomfilter.go` on top of
//! `bits-and-blooms/bloom/v3`): a fixed [`BLOOM_BITS`]-bit filter with
//! [`BLOOM_HASHES`] hash functions derived from MurmurHash3 x64 128 (seed 0),
//! and the sparse wire form
//! `flags0[16] || flags1[16] || u64 BE for every word neither all-0 nor all-1`.
//!
//! What nodes insert is not the raw key but the key's bloom transform
//! ([`crate::address::bloom_transform`]): the part of the key that survives in
//! the node's /64 subnet, so a lookup for an IPv6 subnet can be matched.

use crate::wire::{Reader, WireCodec, WireError};

/// Number of flag bytes for each of the two flag arrays on the wire.
pub const BLOOM_FLAG_BYTES: usize = 16;
/// Number of u64 words backing the filter.
pub const BLOOM_WORDS: usize = BLOOM_FLAG_BYTES * 8;
/// Number of bits in the filter (m).
pub const BLOOM_BITS: u64 = (BLOOM_WORDS * 64) as u64;
/// Number of hash locations per inserted key (k).
pub const BLOOM_HASHES: u64 = 8;
/// Largest possible encoding: both flag arrays plus every word.
pub const BLOOM_MAX_ENCODED_LEN: usize = 2 * BLOOM_FLAG_BYTES + BLOOM_WORDS * 8;

const C1: u64 = 0x87c3_7b91_1142_53d5;
const C2: u64 = 0x4cf5_ad43_2745_937f;

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// MurmurHash3 x64 128 with seed 0, as `(h1, h2)`.
pub fn murmur3_x64_128(data: &[u8]) -> (u64, u64) {
    let mut h1: u64 = 0;
    let mut h2: u64 = 0;
    let mut blocks = data.chunks_exact(16);
    for block in &mut blocks {
        let mut k1 = u64::from_le_bytes(block[..8].try_into().unwrap_or_default());
        let mut k2 = u64::from_le_bytes(block[8..].try_into().unwrap_or_default());
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }
    let tail = blocks.remainder();
    let mut k1: u64 = 0;
    let mut k2: u64 = 0;
    for (i, &b) in tail.iter().enumerate() {
        if i < 8 {
            k1 ^= u64::from(b) << (8 * i);
        } else {
            k2 ^= u64::from(b) << (8 * (i - 8));
        }
    }
    if tail.len() > 8 {
        h2 ^= k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
    }
    if !tail.is_empty() {
        h1 ^= k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
    }
    let len = data.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (h1, h2)
}

/// The `k` bit positions of `data`: base hashes are murmur3 of `data` and of
/// `data || 0x01`; location `i` is `h[i%2] + i*h[2 + ((i + i%2) % 4)/2]`.
pub fn bloom_locations(data: &[u8]) -> [u64; BLOOM_HASHES as usize] {
    let (a, b) = murmur3_x64_128(data);
    let mut ext = Vec::with_capacity(data.len() + 1);
    ext.extend_from_slice(data);
    ext.push(1);
    let (c, d) = murmur3_x64_128(&ext);
    let h = [a, b, c, d];
    let mut out = [0u64; BLOOM_HASHES as usize];
    for (i, slot) in out.iter_mut().enumerate() {
        let ii = i as u64;
        let loc = h[i % 2].wrapping_add(ii.wrapping_mul(h[2 + ((i + i % 2) % 4) / 2]));
        *slot = loc % BLOOM_BITS;
    }
    out
}

/// A fixed-size ironwood bloom filter.
#[derive(Clone, PartialEq, Eq)]
pub struct Bloom {
    words: [u64; BLOOM_WORDS],
}

impl Default for Bloom {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Bloom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ones: u32 = self.words.iter().map(|w| w.count_ones()).sum();
        write!(f, "Bloom({ones} bits set)")
    }
}

impl Bloom {
    /// An empty filter.
    pub fn new() -> Self {
        Self {
            words: [0; BLOOM_WORDS],
        }
    }

    /// Inserts `data` (normally a transformed key).
    pub fn add(&mut self, data: &[u8]) {
        for loc in bloom_locations(data) {
            self.words[(loc / 64) as usize] |= 1u64 << (loc % 64);
        }
    }

    /// Whether `data` may be in the set (no false negatives).
    pub fn test(&self, data: &[u8]) -> bool {
        bloom_locations(data)
            .iter()
            .all(|&loc| self.words[(loc / 64) as usize] & (1u64 << (loc % 64)) != 0)
    }

    /// ORs another filter into this one.
    pub fn merge(&mut self, other: &Bloom) {
        for (a, b) in self.words.iter_mut().zip(other.words.iter()) {
            *a |= *b;
        }
    }

    /// True if no bit is set.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// The backing words (bit `i` is word `i/64`, bit `i%64` from the LSB).
    pub fn words(&self) -> &[u64; BLOOM_WORDS] {
        &self.words
    }
}

impl WireCodec for Bloom {
    fn encoded_len(&self) -> usize {
        2 * BLOOM_FLAG_BYTES
            + 8 * self
                .words
                .iter()
                .filter(|&&w| w != 0 && w != u64::MAX)
                .count()
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let mut flags0 = [0u8; BLOOM_FLAG_BYTES];
        let mut flags1 = [0u8; BLOOM_FLAG_BYTES];
        for (i, &w) in self.words.iter().enumerate() {
            if w == 0 {
                flags0[i / 8] |= 0x80 >> (i % 8);
            } else if w == u64::MAX {
                flags1[i / 8] |= 0x80 >> (i % 8);
            }
        }
        out.extend_from_slice(&flags0);
        out.extend_from_slice(&flags1);
        for &w in self.words.iter().filter(|&&w| w != 0 && w != u64::MAX) {
            out.extend_from_slice(&w.to_be_bytes());
        }
    }

    fn decode(data: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(data);
        let flags0: [u8; BLOOM_FLAG_BYTES] = r.array("bloom flags0")?;
        let flags1: [u8; BLOOM_FLAG_BYTES] = r.array("bloom flags1")?;
        let mut words = [0u64; BLOOM_WORDS];
        for (i, word) in words.iter_mut().enumerate() {
            let f0 = flags0[i / 8] & (0x80 >> (i % 8)) != 0;
            let f1 = flags1[i / 8] & (0x80 >> (i % 8)) != 0;
            *word = match (f0, f1) {
                (true, true) => return Err(WireError::Invalid("bloom flags (both set)")),
                (true, false) => 0,
                (false, true) => u64::MAX,
                (false, false) => u64::from_be_bytes(r.array("bloom word")?),
            };
        }
        r.finish()?;
        Ok(Self { words })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn murmur3_hello_vector() {
        let (h1, h2) = murmur3_x64_128(b"hello");
        assert_eq!(h1, 0xcbd8a7b341bd9b02);
        assert_eq!(h2, 0x5b1e906a48ae1d19);
    }

    #[test]
    fn murmur3_other_lengths() {
        // Reference values of the canonical MurmurHash3_x64_128, seed 0.
        assert_eq!(murmur3_x64_128(b""), (0, 0));
        let (h1, h2) = murmur3_x64_128(b"The quick brown fox jumps over the lazy dog");
        assert_eq!(h1, 0xe34bbc7bbc071b6c);
        assert_eq!(h2, 0x7a433ca9c49a9347);
    }

    #[test]
    fn empty_bloom_wire_form() {
        let b = Bloom::new();
        let enc = b.to_vec();
        assert_eq!(enc.len(), 32);
        assert_eq!(&enc[..16], &[0xff; 16]);
        assert_eq!(&enc[16..], &[0; 16]);
        assert_eq!(Bloom::decode(&enc).unwrap(), b);
    }

    #[test]
    fn add_then_test() {
        let mut b = Bloom::new();
        b.add(b"alpha");
        assert!(b.test(b"alpha"));
        assert!(!b.test(b"beta"));
        let mut c = Bloom::new();
        c.add(b"beta");
        c.merge(&b);
        assert!(c.test(b"alpha") && c.test(b"beta"));
    }

    #[test]
    fn decode_rejects_bad_input() {
        let mut enc = Bloom::new().to_vec();
        enc[16] = 0x80; // word 0 flagged both all-0 and all-1
        assert!(Bloom::decode(&enc).is_err());
        let mut enc = Bloom::new().to_vec();
        enc.push(0);
        assert!(Bloom::decode(&enc).is_err());
        let mut enc = Bloom::new().to_vec();
        enc[0] = 0x7f; // word 0 neither: needs 8 more bytes
        assert!(Bloom::decode(&enc).is_err());
        assert!(Bloom::decode(&[]).is_err());
    }

    proptest! {
        #[test]
        fn roundtrip(keys in proptest::collection::vec(any::<[u8; 32]>(), 0..300), full in any::<bool>()) {
            let mut b = Bloom::new();
            for k in &keys { b.add(k); }
            if full { b.words[3] = u64::MAX; }
            let enc = b.to_vec();
            prop_assert_eq!(enc.len(), b.encoded_len());
            prop_assert_eq!(Bloom::decode(&enc).unwrap(), b.clone());
            for k in &keys { prop_assert!(b.test(k)); }
        }

        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Bloom::decode(&data);
        }
    }
}
