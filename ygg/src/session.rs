//! End-to-end encrypted sessions (ironwood `encrypted/session.go`,
//! `crypto.go`, `internal/e2c`) as a state machine with time as input.
//!
//! Keys: the node's ed25519 key converts to X25519 ([`ed_to_box_public`],
//! [`ed_to_box_secret`]); every session holds three local X25519 keypairs
//! (`recv`, `send`, `next`) and the remote's `current`/`next` public keys,
//! with key-sequence counters on both sides and four precomputed NaCl box
//! keys (`recv = current⊗recv`, `send = current⊗send`, `next_send =
//! next⊗send`, `next_recv = next⊗recv`).
//!
//! * Writing with no session buffers only the latest message and sends an
//!   Init with fresh keys; the buffer lives [`SESSION_TIMEOUT`].
//! * An Init (or an Ack that creates the session) with a newer `seq`
//!   (the sender's unix seconds) adopts the remote keys, rotates ours
//!   (`recv ← send ← next ← fresh`, `local_key_seq + 1`) and is answered
//!   with an Ack; an Ack for an existing session only updates.
//! * Traffic picks its key from the two key-sequence numbers in its header;
//!   a packet from the remote's `next` key ratchets both sides forward, at
//!   most once per [`ROTATION_MIN_INTERVAL`]. Nonces must strictly increase
//!   per key. Anything undecryptable triggers a fresh Init; traffic from an
//!   unknown node is answered with an Init built from throwaway keys.
//! * Sessions expire after [`SESSION_TIMEOUT`] without activity.
//!
//! Ironwood bounds neither sessions nor buffers; we add [`MAX_SESSIONS`]
//! (evicting the session closest to expiry), [`MAX_BUFFERS`] and
//! [`MAX_BUFFERED_BYTES`].

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crypto_box::aead::Aead;
use crypto_box::{Nonce, SalsaBox};
use sha2::{Digest, Sha512};

use crate::identity::{verify, Identity};
use crate::session_wire::{
    box_nonce, InitPayload, SessionPacket, BOX_PUB_LEN, SESSION_TRAFFIC_OVERHEAD_MAX,
};
use crate::wire::{PublicKey, WireCodec};

/// Idle sessions and unanswered buffers are dropped after this long.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(60);
/// A session ratchets forward on the remote's `next` key at most this often.
pub const ROTATION_MIN_INTERVAL: Duration = Duration::from_secs(60);
/// Most concurrent sessions (our addition).
pub const MAX_SESSIONS: usize = 4096;
/// Most destinations with a message waiting for a session (our addition).
pub const MAX_BUFFERS: usize = 1024;
/// Most bytes waiting for sessions in total (our addition).
pub const MAX_BUFFERED_BYTES: usize = 8 * 1024 * 1024;
/// Bytes the session layer adds to a message at most (ironwood
/// `sessionTrafficOverhead` = 79).
pub const SESSION_OVERHEAD: usize = SESSION_TRAFFIC_OVERHEAD_MAX - 3;

/// X25519 public key of an ed25519 public key (`u = (1+y)/(1−y)`). `None`
/// for a byte string that is not a valid curve point.
pub fn ed_to_box_public(key: &PublicKey) -> Option<[u8; 32]> {
    let vk = ed25519_dalek::VerifyingKey::from_bytes(key).ok()?;
    Some(vk.to_montgomery().to_bytes())
}

/// X25519 secret of an ed25519 seed: the first half of SHA-512(seed).
pub fn ed_to_box_secret(seed: &[u8; 32]) -> [u8; 32] {
    let h = Sha512::digest(seed);
    let mut out = [0u8; 32];
    out.copy_from_slice(&h[..32]);
    out
}

#[derive(Clone)]
struct KeyPair {
    public: [u8; 32],
    secret: crypto_box::SecretKey,
}

impl KeyPair {
    fn generate() -> Self {
        let secret = crypto_box::SecretKey::from_bytes(rand::random());
        Self {
            public: *secret.public_key().as_bytes(),
            secret,
        }
    }
}

fn shared(public: &[u8; 32], secret: &crypto_box::SecretKey) -> SalsaBox {
    SalsaBox::new(&crypto_box::PublicKey::from_bytes(*public), secret)
}

fn seal(b: &SalsaBox, nonce: u64, msg: &[u8]) -> Vec<u8> {
    // Encryption with a valid key and no associated data cannot fail.
    b.encrypt(&Nonce::from(box_nonce(nonce)), msg)
        .unwrap_or_default()
}

fn open(b: &SalsaBox, nonce: u64, sealed: &[u8]) -> Option<Vec<u8>> {
    b.decrypt(&Nonce::from(box_nonce(nonce)), sealed).ok()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What a session operation wants done.
#[derive(Debug, Default)]
pub struct SessionOutput {
    /// Session packets to hand to the router: `(destination, payload)`.
    pub send: Vec<(PublicKey, Vec<u8>)>,
    /// Decrypted messages: `(source, plaintext)`.
    pub recv: Vec<(PublicKey, Vec<u8>)>,
}

/// An Init/Ack body before sealing.
#[derive(Debug, Clone, Copy)]
struct Init {
    current: [u8; 32],
    next: [u8; 32],
    key_seq: u64,
    seq: u64,
}

impl Init {
    fn new(current: [u8; 32], next: [u8; 32], key_seq: u64) -> Self {
        Self {
            current,
            next,
            key_seq,
            seq: unix_now(),
        }
    }

    /// Seals for `to`, signed by `id`, with a fresh ephemeral key.
    fn encrypt(&self, id: &Identity, to: &PublicKey, ack: bool) -> Option<Vec<u8>> {
        let to_box = ed_to_box_public(to)?;
        let eph = KeyPair::generate();
        let mut payload = InitPayload {
            sig: [0; 64],
            current: self.current,
            next: self.next,
            key_seq: self.key_seq,
            seq: self.seq,
        };
        payload.sig = id.sign(&payload.bytes_for_sig(&eph.public));
        let sealed = seal(&shared(&to_box, &eph.secret), 0, &payload.to_vec());
        Some(
            SessionPacket::Init {
                ack,
                eph_pub: eph.public,
                sealed,
            }
            .to_vec(),
        )
    }

    fn decrypt(
        own: &crypto_box::SecretKey,
        from: &PublicKey,
        eph_pub: &[u8; BOX_PUB_LEN],
        sealed: &[u8],
    ) -> Option<Self> {
        let plain = open(&shared(eph_pub, own), 0, sealed)?;
        let p = InitPayload::decode(&plain).ok()?;
        if !verify(from, &p.bytes_for_sig(eph_pub), &p.sig) {
            return None;
        }
        Some(Self {
            current: p.current,
            next: p.next,
            key_seq: p.key_seq,
            seq: p.seq,
        })
    }
}

struct Session {
    /// The remote's last Init/Ack seq.
    seq: u64,
    remote_key_seq: u64,
    current: [u8; 32],
    next: [u8; 32],
    local_key_seq: u64,
    recv: KeyPair,
    send: KeyPair,
    next_kp: KeyPair,
    recv_shared: SalsaBox,
    send_shared: SalsaBox,
    next_send_shared: SalsaBox,
    next_recv_shared: SalsaBox,
    recv_nonce: u64,
    send_nonce: u64,
    next_send_nonce: u64,
    next_recv_nonce: u64,
    rotated: Option<Instant>,
    expires: Instant,
    rx: u64,
    tx: u64,
    rotations: u64,
}

impl Session {
    fn new(now: Instant, current: [u8; 32], next: [u8; 32], seq: u64) -> Self {
        let (recv, send, next_kp) = (
            KeyPair::generate(),
            KeyPair::generate(),
            KeyPair::generate(),
        );
        Self {
            seq: seq.wrapping_sub(1),
            remote_key_seq: 0,
            current,
            next,
            local_key_seq: 0,
            recv_shared: shared(&current, &recv.secret),
            send_shared: shared(&current, &send.secret),
            next_send_shared: shared(&next, &send.secret),
            next_recv_shared: shared(&next, &recv.secret),
            recv,
            send,
            next_kp,
            recv_nonce: 0,
            send_nonce: 0,
            next_send_nonce: 0,
            next_recv_nonce: 0,
            rotated: None,
            expires: now + SESSION_TIMEOUT,
            rx: 0,
            tx: 0,
            rotations: 0,
        }
    }

    fn fix_shared(&mut self, recv_nonce: u64, send_nonce: u64) {
        self.recv_shared = shared(&self.current, &self.recv.secret);
        self.send_shared = shared(&self.current, &self.send.secret);
        self.next_send_shared = shared(&self.next, &self.send.secret);
        self.next_recv_shared = shared(&self.next, &self.recv.secret);
        self.next_send_nonce = 0;
        self.next_recv_nonce = 0;
        self.recv_nonce = recv_nonce;
        self.send_nonce = send_nonce;
    }

    /// `recv ← send ← next ← fresh`, `local_key_seq + 1`.
    fn rotate_local(&mut self) {
        self.recv = self.send.clone();
        self.send = std::mem::replace(&mut self.next_kp, KeyPair::generate());
        self.local_key_seq = self.local_key_seq.wrapping_add(1);
        self.rotations += 1;
    }

    fn handle_update(&mut self, now: Instant, init: &Init) {
        self.current = init.current;
        self.next = init.next;
        self.seq = init.seq;
        self.remote_key_seq = init.key_seq;
        self.rotate_local();
        // The send nonce is never rolled back.
        let sn = self.send_nonce;
        self.fix_shared(0, sn);
        self.expires = now + SESSION_TIMEOUT;
    }

    fn init_msg(&self) -> Init {
        Init::new(self.send.public, self.next_kp.public, self.local_key_seq)
    }
}

struct Buffer {
    data: Option<Vec<u8>>,
    init: Init,
    current: KeyPair,
    next: KeyPair,
    expires: Instant,
}

/// Diagnostic view of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStats {
    /// Remote key.
    pub key: PublicKey,
    /// Plaintext bytes received.
    pub rx: u64,
    /// Plaintext bytes sent.
    pub tx: u64,
    /// Our key sequence number.
    pub local_key_seq: u64,
    /// The remote's key sequence number.
    pub remote_key_seq: u64,
    /// How often our keys rotated.
    pub rotations: u64,
}

/// All sessions of one node (ironwood `sessionManager`).
pub struct SessionManager {
    id: Identity,
    box_secret: crypto_box::SecretKey,
    sessions: HashMap<PublicKey, Session>,
    buffers: HashMap<PublicKey, Buffer>,
    buffered_bytes: usize,
}

impl SessionManager {
    /// A manager for the node with identity `id`.
    pub fn new(id: Identity) -> Self {
        let box_secret = crypto_box::SecretKey::from_bytes(ed_to_box_secret(&id.seed()));
        Self {
            id,
            box_secret,
            sessions: HashMap::new(),
            buffers: HashMap::new(),
            buffered_bytes: 0,
        }
    }

    /// Drops expired sessions and buffers.
    pub fn poll_timers(&mut self, now: Instant) {
        self.sessions.retain(|_, s| s.expires > now);
        let mut freed = 0;
        self.buffers.retain(|_, b| {
            let keep = b.expires > now;
            if !keep {
                freed += b.data.as_ref().map_or(0, Vec::len);
            }
            keep
        });
        self.buffered_bytes -= freed;
    }

    /// (sessions, buffers, buffered bytes).
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.sessions.len(), self.buffers.len(), self.buffered_bytes)
    }

    /// One entry per session.
    pub fn stats(&self) -> Vec<SessionStats> {
        let mut v: Vec<SessionStats> = self
            .sessions
            .iter()
            .map(|(k, s)| SessionStats {
                key: *k,
                rx: s.rx,
                tx: s.tx,
                local_key_seq: s.local_key_seq,
                remote_key_seq: s.remote_key_seq,
                rotations: s.rotations,
            })
            .collect();
        v.sort_by_key(|s| s.key);
        v
    }

    /// Encrypts `msg` for `to`, or buffers it behind an Init.
    pub fn write_to(&mut self, now: Instant, to: PublicKey, msg: Vec<u8>, out: &mut SessionOutput) {
        self.poll_timers(now);
        if let Some(s) = self.sessions.get_mut(&to) {
            Self::do_send(now, to, s, &msg, out);
        } else {
            self.buffer_and_init(now, to, msg, out);
        }
    }

    /// Handles one session packet from `from` (the traffic source).
    pub fn handle_data(
        &mut self,
        now: Instant,
        from: PublicKey,
        data: &[u8],
        out: &mut SessionOutput,
    ) {
        self.poll_timers(now);
        let Ok(pkt) = SessionPacket::decode(data) else {
            return;
        };
        match pkt {
            SessionPacket::Dummy => {}
            SessionPacket::Init {
                ack,
                eph_pub,
                sealed,
            } => {
                let Some(init) = Init::decrypt(&self.box_secret, &from, &eph_pub, &sealed) else {
                    return;
                };
                if ack {
                    self.handle_ack(now, from, &init, out);
                } else {
                    self.handle_init(now, from, &init, out);
                }
            }
            SessionPacket::Traffic {
                local_key_seq,
                remote_key_seq,
                nonce,
                sealed,
            } => {
                if self.sessions.contains_key(&from) {
                    self.do_recv(
                        now,
                        from,
                        local_key_seq,
                        remote_key_seq,
                        nonce,
                        &sealed,
                        out,
                    );
                } else {
                    // Unknown (possibly spoofed or replayed) sender: answer
                    // with an Init whose keys we forget, keeping no state.
                    let init = Init::new(KeyPair::generate().public, KeyPair::generate().public, 0);
                    self.send_init(from, &init, false, out);
                }
            }
        }
    }

    fn send_init(&self, to: PublicKey, init: &Init, ack: bool, out: &mut SessionOutput) {
        if let Some(bs) = init.encrypt(&self.id, &to, ack) {
            out.send.push((to, bs));
        }
    }

    fn buffer_and_init(
        &mut self,
        now: Instant,
        to: PublicKey,
        msg: Vec<u8>,
        out: &mut SessionOutput,
    ) {
        if !self.buffers.contains_key(&to) {
            if self.buffers.len() >= MAX_BUFFERS {
                return;
            }
            let (current, next) = (KeyPair::generate(), KeyPair::generate());
            let init = Init::new(current.public, next.public, 0);
            self.buffers.insert(
                to,
                Buffer {
                    data: None,
                    init,
                    current,
                    next,
                    expires: now,
                },
            );
        }
        let Some(buf) = self.buffers.get_mut(&to) else {
            return;
        };
        let old = buf.data.take().map_or(0, |d| d.len());
        self.buffered_bytes -= old;
        if self.buffered_bytes + msg.len() <= MAX_BUFFERED_BYTES {
            self.buffered_bytes += msg.len();
            buf.data = Some(msg);
        }
        buf.expires = now + SESSION_TIMEOUT;
        let init = buf.init;
        self.send_init(to, &init, false, out);
    }

    /// Finds or creates the session an Init/Ack from `from` applies to,
    /// adopting a pending buffer's keys. Returns the buffered message.
    fn session_for_init(&mut self, now: Instant, from: PublicKey, init: &Init) -> Option<Vec<u8>> {
        if self.sessions.contains_key(&from) {
            return None;
        }
        if self.sessions.len() >= MAX_SESSIONS {
            if let Some(victim) = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| *k)
            {
                self.sessions.remove(&victim);
            }
        }
        let mut s = Session::new(now, init.current, init.next, init.seq);
        let mut data = None;
        if let Some(buf) = self.buffers.remove(&from) {
            s.send = buf.current;
            s.next_kp = buf.next;
            s.fix_shared(0, 0);
            if let Some(d) = buf.data {
                self.buffered_bytes -= d.len();
                data = Some(d);
            }
        }
        self.sessions.insert(from, s);
        data
    }

    fn handle_init(&mut self, now: Instant, from: PublicKey, init: &Init, out: &mut SessionOutput) {
        let data = self.session_for_init(now, from, init);
        let Some(s) = self.sessions.get_mut(&from) else {
            return;
        };
        if init.seq > s.seq {
            s.handle_update(now, init);
            let ack = s.init_msg();
            self.send_init(from, &ack, true, out);
        }
        if let Some(d) = data {
            if let Some(s) = self.sessions.get_mut(&from) {
                Self::do_send(now, from, s, &d, out);
            }
        }
    }

    fn handle_ack(&mut self, now: Instant, from: PublicKey, ack: &Init, out: &mut SessionOutput) {
        if !self.sessions.contains_key(&from) {
            // A session created by an Ack is handled as if by an Init.
            self.handle_init(now, from, ack, out);
            return;
        }
        if let Some(s) = self.sessions.get_mut(&from) {
            if ack.seq > s.seq {
                s.handle_update(now, ack);
            }
        }
    }

    fn do_send(now: Instant, to: PublicKey, s: &mut Session, msg: &[u8], out: &mut SessionOutput) {
        s.send_nonce = s.send_nonce.wrapping_add(1);
        if s.send_nonce == 0 {
            s.rotate_local();
            s.fix_shared(0, 0);
        }
        let mut inner = Vec::with_capacity(BOX_PUB_LEN + msg.len());
        inner.extend_from_slice(&s.next_kp.public);
        inner.extend_from_slice(msg);
        let sealed = seal(&s.send_shared, s.send_nonce, &inner);
        let pkt = SessionPacket::Traffic {
            local_key_seq: s.local_key_seq,
            remote_key_seq: s.remote_key_seq,
            nonce: s.send_nonce,
            sealed,
        };
        out.send.push((to, pkt.to_vec()));
        s.tx += msg.len() as u64;
        s.expires = now + SESSION_TIMEOUT;
    }

    #[allow(clippy::too_many_arguments)]
    fn do_recv(
        &mut self,
        now: Instant,
        from: PublicKey,
        their_key_seq: u64,
        our_key_seq: u64,
        nonce: u64,
        sealed: &[u8],
        out: &mut SessionOutput,
    ) {
        let Some(s) = self.sessions.get_mut(&from) else {
            return;
        };
        let from_current = their_key_seq == s.remote_key_seq;
        let from_next = their_key_seq == s.remote_key_seq.wrapping_add(1);
        let to_recv = our_key_seq.wrapping_add(1) == s.local_key_seq;
        let to_send = our_key_seq == s.local_key_seq;
        #[derive(PartialEq)]
        enum Which {
            Recv,
            NextSend,
            NextRecv,
        }
        let which = if from_current && to_recv {
            if s.recv_nonce >= nonce {
                return;
            }
            Which::Recv
        } else if from_next && to_send {
            if s.next_send_nonce >= nonce {
                return;
            }
            Which::NextSend
        } else if from_next && to_recv {
            if s.next_recv_nonce >= nonce {
                return;
            }
            Which::NextRecv
        } else {
            // Unknown key epoch: ask for a resynchronisation.
            let init = s.init_msg();
            self.send_init(from, &init, false, out);
            return;
        };
        let key = match which {
            Which::Recv => &s.recv_shared,
            Which::NextSend => &s.next_send_shared,
            Which::NextRecv => &s.next_recv_shared,
        };
        let Some(plain) = open(key, nonce, sealed).filter(|p| p.len() >= BOX_PUB_LEN) else {
            let init = s.init_msg();
            self.send_init(from, &init, false, out);
            return;
        };
        let mut inner_key = [0u8; 32];
        inner_key.copy_from_slice(&plain[..BOX_PUB_LEN]);
        let msg = plain[BOX_PUB_LEN..].to_vec();
        match which {
            Which::Recv => s.recv_nonce = nonce,
            Which::NextSend | Which::NextRecv => {
                if which == Which::NextSend {
                    s.next_send_nonce = nonce;
                } else {
                    s.next_recv_nonce = nonce;
                }
                let may_rotate = s
                    .rotated
                    .is_none_or(|t| now.saturating_duration_since(t) > ROTATION_MIN_INTERVAL);
                if may_rotate {
                    s.current = s.next;
                    s.next = inner_key;
                    s.remote_key_seq = s.remote_key_seq.wrapping_add(1);
                    s.rotate_local();
                    s.fix_shared(nonce, 0);
                    s.rotated = Some(now);
                }
            }
        }
        s.rx += msg.len() as u64;
        s.expires = now + SESSION_TIMEOUT;
        out.recv.push((from, msg));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delivers every packet in `out.send` between two managers until quiet;
    /// returns what each side decrypted.
    fn pump(
        now: Instant,
        a: &mut SessionManager,
        b: &mut SessionManager,
        mut out_a: SessionOutput,
    ) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let (ka, kb) = (a.id.public_key(), b.id.public_key());
        let mut got_a = Vec::new();
        let mut got_b = Vec::new();
        let mut out_b = SessionOutput::default();
        for _ in 0..20 {
            let sa = std::mem::take(&mut out_a.send);
            let sb = std::mem::take(&mut out_b.send);
            if sa.is_empty() && sb.is_empty() {
                break;
            }
            for (to, p) in sa {
                assert_eq!(to, kb);
                b.handle_data(now, ka, &p, &mut out_b);
            }
            for (to, p) in sb {
                assert_eq!(to, ka);
                a.handle_data(now, kb, &p, &mut out_a);
            }
            got_a.extend(out_a.recv.drain(..).map(|(_, m)| m));
            got_b.extend(out_b.recv.drain(..).map(|(_, m)| m));
        }
        (got_a, got_b)
    }

    #[test]
    fn ed_to_x25519_matches_both_ways() {
        let a = Identity::from_seed(&[1; 32]);
        let b = Identity::from_seed(&[2; 32]);
        let sa = crypto_box::SecretKey::from_bytes(ed_to_box_secret(&a.seed()));
        let pa = ed_to_box_public(&a.public_key()).unwrap();
        assert_eq!(sa.public_key().as_bytes(), &pa);
        let sb = crypto_box::SecretKey::from_bytes(ed_to_box_secret(&b.seed()));
        let pb = ed_to_box_public(&b.public_key()).unwrap();
        let x = seal(&shared(&pb, &sa), 7, b"hi");
        assert_eq!(open(&shared(&pa, &sb), 7, &x).unwrap(), b"hi");
        assert_eq!(x.len(), 2 + 16);
    }

    #[test]
    fn handshake_buffer_and_ratchet() {
        let mut a = SessionManager::new(Identity::from_seed(&[1; 32]));
        let mut b = SessionManager::new(Identity::from_seed(&[2; 32]));
        let (ka, kb) = (a.id.public_key(), b.id.public_key());
        let mut now = Instant::now();
        let mut out = SessionOutput::default();
        a.write_to(now, kb, b"first".to_vec(), &mut out);
        a.write_to(now, kb, b"second".to_vec(), &mut out);
        assert_eq!(out.send.len(), 2, "two inits");
        let (_, got_b) = pump(now, &mut a, &mut b, out);
        // Only the latest buffered message survives.
        assert_eq!(got_b, vec![b"second".to_vec()]);
        // Traffic both ways over several minutes: keys rotate.
        for round in 0..200u32 {
            now += Duration::from_secs(1);
            let mut out = SessionOutput::default();
            let m = round.to_be_bytes().to_vec();
            a.write_to(now, kb, m.clone(), &mut out);
            let (_, got_b) = pump(now, &mut a, &mut b, out);
            assert_eq!(got_b, vec![m.clone()], "a→b round {round}");
            let mut out = SessionOutput::default();
            b.write_to(now, ka, m.clone(), &mut out);
            let (_, got_a) = pump(now, &mut b, &mut a, out);
            assert_eq!(got_a, vec![m], "b→a round {round}");
        }
        let sa = &a.stats()[0];
        assert!(sa.rotations >= 3, "{sa:?}");
        assert_eq!(a.counts().1, 0);
    }

    #[test]
    fn unknown_sender_gets_stateless_init_and_sessions_expire() {
        let mut a = SessionManager::new(Identity::from_seed(&[1; 32]));
        let mut b = SessionManager::new(Identity::from_seed(&[2; 32]));
        let (ka, kb) = (a.id.public_key(), b.id.public_key());
        let now = Instant::now();
        let mut out = SessionOutput::default();
        a.write_to(now, kb, b"x".to_vec(), &mut out);
        let _ = pump(now, &mut a, &mut b, out);
        // b restarts: it forgets the session, a's traffic triggers an init.
        let mut b2 = SessionManager::new(Identity::from_seed(&[2; 32]));
        let later = now + Duration::from_secs(2);
        let mut out = SessionOutput::default();
        a.write_to(later, kb, b"y".to_vec(), &mut out);
        let mut out_b = SessionOutput::default();
        for (_, p) in out.send {
            b2.handle_data(later, ka, &p, &mut out_b);
        }
        assert!(out_b.recv.is_empty());
        assert_eq!(out_b.send.len(), 1);
        assert_eq!(b2.counts().0, 0, "no state for unknown senders");
        a.poll_timers(later + SESSION_TIMEOUT);
        assert_eq!(a.counts(), (0, 0, 0));
    }

    #[test]
    fn garbage_never_panics() {
        let mut a = SessionManager::new(Identity::from_seed(&[1; 32]));
        let now = Instant::now();
        let mut out = SessionOutput::default();
        for len in 0..300 {
            for t in 0..5u8 {
                let mut v = vec![0xa5u8; len];
                if let Some(b) = v.first_mut() {
                    *b = t;
                }
                a.handle_data(now, [9; 32], &v, &mut out);
            }
        }
        assert!(out.recv.is_empty());
    }
}
