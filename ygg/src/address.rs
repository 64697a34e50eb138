//! Key → Yggdrasil IPv6 address / /64 subnet, and back to a partial key
//! (yggdrasil-go `src/address/address.go`).
//!
//! The address is `0x02`, then the number of leading one bits of the
//! bit-inverted key, then the inverted key's bits after the first zero,
//! truncated to 16 bytes. The subnet is the first 8 bytes with the low bit
//! of the first byte set (`0x03…`). [`key_from_addr`] rebuilds the key bits
//! that survive in an address/subnet (the lost bits come back as 1s), which is
//! what the bloom transform uses.

use std::net::Ipv6Addr;

use crate::wire::PublicKey;

/// First byte of every Yggdrasil node address (200::/7 with the low bit 0).
pub const ADDRESS_PREFIX: u8 = 0x02;
/// First byte of every Yggdrasil routed subnet (300::/8).
pub const SUBNET_PREFIX: u8 = ADDRESS_PREFIX | 0x01;

/// The node IPv6 address for `key`.
pub fn addr_for_key(key: &PublicKey) -> [u8; 16] {
    let mut inv = *key;
    for b in inv.iter_mut() {
        *b = !*b;
    }
    let mut addr = [0u8; 16];
    addr[0] = ADDRESS_PREFIX;
    let mut ones: u8 = 0;
    let mut done = false;
    let mut acc: u8 = 0;
    let mut nbits = 0;
    let mut out_idx = 2;
    for idx in 0..(8 * inv.len()) {
        let bit = (inv[idx / 8] >> (7 - (idx % 8))) & 1;
        if !done {
            if bit != 0 {
                // Go counts into a byte; 256 leading ones cannot occur for a
                // 32-byte key with a zero bit, and an all-ones key wraps the
                // same way Go's byte does.
                ones = ones.wrapping_add(1);
                continue;
            }
            done = true;
            continue;
        }
        acc = (acc << 1) | bit;
        nbits += 1;
        if nbits == 8 {
            nbits = 0;
            if out_idx < addr.len() {
                addr[out_idx] = acc;
                out_idx += 1;
            }
        }
    }
    addr[1] = ones;
    addr
}

/// The node /64 subnet prefix (8 bytes) for `key`.
pub fn subnet_for_key(key: &PublicKey) -> [u8; 8] {
    let addr = addr_for_key(key);
    let mut snet = [0u8; 8];
    snet.copy_from_slice(&addr[..8]);
    snet[0] |= 0x01;
    snet
}

/// The node address as an [`Ipv6Addr`].
pub fn ipv6_for_key(key: &PublicKey) -> Ipv6Addr {
    Ipv6Addr::from(addr_for_key(key))
}

/// The subnet as `(network address, 64)`.
pub fn subnet_ipv6_for_key(key: &PublicKey) -> (Ipv6Addr, u8) {
    let mut full = [0u8; 16];
    full[..8].copy_from_slice(&subnet_for_key(key));
    (Ipv6Addr::from(full), 64)
}

/// Rebuilds the partial key an address carries (Go `Address.GetKey`): bits
/// that are not in the address come back as 1s.
pub fn key_from_addr(addr: &[u8; 16]) -> PublicKey {
    let mut key = [0u8; 32];
    let ones = usize::from(addr[1]);
    for idx in 0..ones.min(256) {
        key[idx / 8] |= 0x80 >> (idx % 8);
    }
    let key_offset = ones + 1;
    let addr_offset = 16; // prefix byte + ones byte, in bits
    for idx in addr_offset..(8 * addr.len()) {
        let bit = (addr[idx / 8] >> (7 - (idx % 8))) & 1;
        let key_idx = key_offset + (idx - addr_offset);
        if key_idx / 8 >= key.len() {
            break;
        }
        key[key_idx / 8] |= bit << (7 - (key_idx % 8));
    }
    for b in key.iter_mut() {
        *b = !*b;
    }
    key
}

/// Rebuilds the partial key a subnet carries (Go `Subnet.GetKey`).
pub fn key_from_subnet(snet: &[u8; 8]) -> PublicKey {
    let mut addr = [0u8; 16];
    addr[..8].copy_from_slice(snet);
    key_from_addr(&addr)
}

/// Yggdrasil's bloom/lookup transform: `SubnetForKey(key).GetKey()`.
pub fn bloom_transform(key: &PublicKey) -> PublicKey {
    key_from_subnet(&subnet_for_key(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn all_ones_key() {
        // Key 0xff.. inverts to zeros: no leading ones, the rest are zeros.
        let a = addr_for_key(&[0xff; 32]);
        assert_eq!(a, [0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn leading_zero_keys_get_more_ones() {
        let mut k = [0xffu8; 32];
        k[0] = 0x00;
        k[1] = 0x3f; // inverted: 0xff 0xc0 ... → 10 leading ones, then 0, then zeros
        let a = addr_for_key(&k);
        assert_eq!(a[0], 0x02);
        assert_eq!(a[1], 10);
        assert!(a[2..].iter().all(|&b| b == 0));
        assert_eq!(subnet_for_key(&k)[0], 0x03);
    }

    /// Produced by the real daemon: `yggdrasil -genconf -json`, then
    /// `-useconffile … -publickey / -address / -subnet` (yggdrasil 0.5.12).
    #[test]
    fn golden_vector_from_real_yggdrasil() {
        let seed: [u8; 32] =
            hex::decode("5366116d2d61a564bee1c03d7c4e7bf1c2652309b707c64dfa19c3d1ca5c7482")
                .unwrap()
                .try_into()
                .unwrap();
        let id = crate::identity::Identity::from_seed(&seed);
        assert_eq!(
            hex::encode(id.public_key()),
            "c4aa114d93bb985dae3eb7766bf4c5d0a6bba1d78e4bf208a38f4c013f003b41"
        );
        let addr: Ipv6Addr = "200:76ab:dd64:d888:cf44:a382:9113:2816".parse().unwrap();
        assert_eq!(ipv6_for_key(&id.public_key()), addr);
        let net: Ipv6Addr = "300:76ab:dd64:d888::".parse().unwrap();
        assert_eq!(subnet_ipv6_for_key(&id.public_key()), (net, 64));
    }

    proptest! {
        #[test]
        fn transform_keeps_address_bits(key in any::<[u8; 32]>()) {
            let partial = key_from_addr(&addr_for_key(&key));
            prop_assert_eq!(addr_for_key(&partial), addr_for_key(&key));
            let x = bloom_transform(&key);
            prop_assert_eq!(subnet_for_key(&x), subnet_for_key(&key));
            prop_assert_eq!(bloom_transform(&x), x);
        }
    }
}
