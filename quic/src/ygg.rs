//! quinn over the Yggdrasil node: a [`quinn::AsyncUdpSocket`] whose datagrams travel as
//! Yggdrasil session traffic, addressed by ed25519 keys, exactly as yggquic runs quic-go over
//! the yggdrasil-go core.
//!
//! quinn addresses peers with `SocketAddr`s, Yggdrasil with 32-byte keys, so the socket keeps
//! a two-way table that gives each remote key a synthetic address `[fd00::N]:1` (N a counter),
//! and [`YggSocket::key_of`] turns a connection's remote address back into its key. The table
//! is bounded by [`MAX_REMOTES`]; when it is full, the least recently seen tenth of the keys
//! is forgotten in one pass, so a flood of new keys costs one scan per [`EVICT_BATCH`] keys
//! rather than one scan of the whole table per key.
//!
//! Sending never waits: when the node's send queue is full the packet is dropped, as a busy
//! UDP path would drop it, and QUIC's loss recovery and congestion control take over. Packets
//! are never larger than quinn's configured payload size (1,452 bytes at most for yggquic
//! peers), far below the node's MTU; no GSO/GRO, no fragmentation.

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use std::collections::HashMap;
use std::io::{self, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use yggnode::{Node, PublicKey, SendError};

/// Remote keys remembered by one socket.
pub const MAX_REMOTES: usize = 100_000;
/// Keys forgotten at once when the table is full (a tenth of it).
pub const EVICT_BATCH: usize = MAX_REMOTES / 10;
/// Port of every synthetic address (any fixed value works; quinn only needs equality).
const SYNTHETIC_PORT: u16 = 1;

#[derive(Debug, Default)]
struct Table {
    by_key: HashMap<PublicKey, (SocketAddr, u64)>,
    by_addr: HashMap<SocketAddr, PublicKey>,
    next: u64,
    clock: u64,
}

impl Table {
    /// Forgets the `n` least recently seen keys (clock values are unique, so exactly `n`).
    fn evict(&mut self, n: usize) {
        let mut seen: Vec<u64> = self.by_key.values().map(|(_, s)| *s).collect();
        if n == 0 || seen.is_empty() {
            return;
        }
        let n = n.min(seen.len());
        let (_, &mut cutoff, _) = seen.select_nth_unstable(n - 1);
        let by_addr = &mut self.by_addr;
        self.by_key.retain(|_, (addr, s)| {
            let keep = *s > cutoff;
            if !keep {
                by_addr.remove(addr);
            }
            keep
        });
    }

    fn addr_for(&mut self, key: PublicKey) -> SocketAddr {
        self.clock += 1;
        let clock = self.clock;
        if let Some((addr, seen)) = self.by_key.get_mut(&key) {
            *seen = clock;
            return *addr;
        }
        if self.by_key.len() >= MAX_REMOTES {
            self.evict(EVICT_BATCH.max(1));
        }
        self.next += 1;
        let n = self.next;
        let ip = Ipv6Addr::new(
            0xfd00,
            0,
            0,
            0,
            (n >> 48) as u16,
            (n >> 32) as u16,
            (n >> 16) as u16,
            n as u16,
        );
        let addr = SocketAddr::V6(SocketAddrV6::new(ip, SYNTHETIC_PORT, 0, 0));
        self.by_key.insert(key, (addr, clock));
        self.by_addr.insert(addr, key);
        addr
    }
}

/// A quinn socket over a [`Node`].
pub struct YggSocket {
    node: Arc<Node>,
    table: Mutex<Table>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for YggSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YggSocket")
            .field("key", &hex::encode(self.node.public_key()))
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl YggSocket {
    /// Wraps `node`; the node's datagram receiver is used by this socket from now on.
    pub fn new(node: Arc<Node>) -> Arc<YggSocket> {
        Arc::new(YggSocket {
            node,
            table: Mutex::new(Table::default()),
            dropped: AtomicU64::new(0),
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The ed25519 key behind a synthetic remote address.
    pub fn key_of(&self, addr: &SocketAddr) -> Option<PublicKey> {
        self.table().by_addr.get(addr).copied()
    }

    /// The synthetic address quinn uses for `key` (to dial it).
    pub fn addr_of(&self, key: PublicKey) -> SocketAddr {
        self.table().addr_for(key)
    }

    /// Packets dropped because the node's send queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct AlwaysWritable;

impl UdpPoller for AlwaysWritable {
    fn poll_writable(self: Pin<&mut Self>, _cx: &mut Context) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncUdpSocket for YggSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(AlwaysWritable)
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let Some(key) = self.key_of(&transmit.destination) else {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "no Yggdrasil key for this address",
            ));
        };
        match self.node.try_send_to(key, transmit.contents) {
            Ok(()) => Ok(()),
            Err(SendError::Full) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(io::Error::other(e.to_string())),
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(m)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        loop {
            let (key, data) = match self.node.poll_recv_from(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(io::Error::other(e.to_string()))),
                Poll::Ready(Ok(d)) => d,
            };
            if data.len() > buf.len() {
                // Larger than any QUIC packet we accept: not QUIC, drop it.
                continue;
            }
            buf[..data.len()].copy_from_slice(&data);
            *m = RecvMeta {
                addr: self.table().addr_for(key),
                len: data.len(),
                stride: data.len(),
                ..Default::default()
            };
            return Poll::Ready(Ok(1));
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0),
            SYNTHETIC_PORT,
            0,
            0,
        )))
    }

    fn may_fragment(&self) -> bool {
        false
    }
}

/// A quinn endpoint serving `server` over the node.
pub fn endpoint(
    socket: Arc<YggSocket>,
    endpoint_config: quinn::EndpointConfig,
    server: quinn::ServerConfig,
) -> io::Result<quinn::Endpoint> {
    let runtime =
        quinn::default_runtime().ok_or_else(|| io::Error::other("no async runtime for quinn"))?;
    quinn::Endpoint::new_with_abstract_socket(endpoint_config, Some(server), socket, runtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_addresses_are_stable_and_bounded() {
        let mut t = Table::default();
        let a = t.addr_for([1; 32]);
        let b = t.addr_for([2; 32]);
        assert_ne!(a, b);
        assert_eq!(t.addr_for([1; 32]), a);
        assert_eq!(t.by_addr.get(&b), Some(&[2; 32]));
    }

    fn key(i: u32) -> PublicKey {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&i.to_le_bytes());
        k
    }

    /// A full table forgets its least recently seen tenth in one pass: recently seen keys keep
    /// their addresses, both maps stay in step, and the next tenth of new keys needs no pass.
    #[test]
    fn a_full_table_forgets_the_least_recently_seen_tenth() {
        let mut t = Table::default();
        let max = MAX_REMOTES as u32;
        for i in 0..max {
            t.addr_for(key(i));
        }
        // Key 0 is the oldest insertion but seen again now.
        let a0 = t.addr_for(key(0));
        let newest = t.addr_for(key(max - 1));
        t.addr_for(key(max));
        assert_eq!(t.by_key.len(), MAX_REMOTES - EVICT_BATCH + 1);
        assert_eq!(t.by_addr.len(), t.by_key.len());
        assert_eq!(t.addr_for(key(0)), a0);
        assert_eq!(t.addr_for(key(max - 1)), newest);
        assert!(!t.by_key.contains_key(&key(1)));
        assert!(!t.by_key.contains_key(&key(EVICT_BATCH as u32)));
        assert!(t.by_key.contains_key(&key(EVICT_BATCH as u32 + 1)));
        for i in 1..EVICT_BATCH as u32 {
            t.addr_for(key(max + i));
        }
        assert_eq!(t.by_key.len(), MAX_REMOTES);
        for (k, (addr, _)) in &t.by_key {
            assert_eq!(t.by_addr.get(addr), Some(k));
        }
    }
}
