//! One ygg_stream connection as a state machine without I/O: the caller feeds it packets
//! ([`Conn::on_packet`]), application writes and reads, and the clock ([`Conn::on_timeout`]
//! at [`Conn::deadline`]); it queues the packets to send ([`Conn::poll_transmit`]).
//!
//! It follows the compatible behaviour of the specification (`docs/mimir3.md` §3.5–§3.9),
//! not the reference's bugs: a FIN is EOF only once every byte before it has arrived (an
//! early FIN waits), a FIN is acknowledged with its sequence number plus one, our FIN is
//! sent a few times and then the connection is forgotten, sequence numbers compare with
//! wrap-around, and nothing a peer sends can make it buffer more than its receive window
//! ([`RECV_BUFFER`]) in order and out of order together.
//!
//! Sending is TCP-like: segments of [`SEGMENT_SIZE`] within the smaller of the peer's window
//! and the congestion window (Reno: slow start from [`INITIAL_CWND`], congestion avoidance,
//! halving on three duplicate ACKs or a timeout), retransmission on RFC 6298 timers with
//! Karn's rule, and the connection ends after [`STALL_LIMIT`] without progress.

use crate::packet::{Flags, Header, DEFAULT_WINDOW, SEGMENT_SIZE};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Bytes received and not yet read (in order and out of order together) a connection keeps;
/// it is also the window it advertises when empty.
pub const RECV_BUFFER: usize = DEFAULT_WINDOW as usize;
/// Bytes written by the application and not yet acknowledged a connection accepts.
pub const SEND_BUFFER: usize = 512 * 1024;
/// Out-of-order segments kept at most.
pub const MAX_OUT_OF_ORDER: usize = 64;
/// Congestion window at the start: two segments.
pub const INITIAL_CWND: u32 = 2 * SEGMENT_SIZE as u32;
/// Largest congestion window, and the slow-start threshold at the start.
pub const MAX_CWND: u32 = 512 * 1024;
/// Retransmission timeout before the first RTT sample.
pub const INITIAL_RTO: Duration = Duration::from_millis(500);
/// Bounds of the retransmission timeout.
pub const MIN_RTO: Duration = Duration::from_millis(200);
pub const MAX_RTO: Duration = Duration::from_secs(5);
/// Least variance term of the timeout (`max(50 ms, 4·RTTVAR)`).
pub const MIN_RTO_VARIANCE: Duration = Duration::from_millis(50);
/// Time without progress while data is outstanding after which the connection is aborted.
pub const STALL_LIMIT: Duration = Duration::from_secs(30);
/// A connect gives up after this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Waits between SYNs: sent at 0, 1, 3 and 7 s.
pub const SYN_RETRIES: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];
/// A SYN_RECEIVED connection without the handshake's ACK is dropped after this long.
pub const ACCEPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a graceful close may wait for the data to be acknowledged before aborting.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Times our FIN is sent (reference peers never acknowledge it properly).
pub const FIN_SENDS: u32 = 3;
/// A read that frees the receive buffer past this level (from below) sends a window update.
pub const WINDOW_UPDATE_LEVEL: usize = RECV_BUFFER / 2;
/// What one unacknowledged segment costs besides its bytes (its record and the allocator's
/// header), counted in [`Conn::buffered`] so that many small segments cannot hide memory.
pub const SEGMENT_OVERHEAD: usize = 64;
/// A receive or send buffer that empties while its allocation is larger than this gives the
/// allocation back, so an idle connection holds no more than this per direction.
pub const SHRINK_ABOVE: usize = 16 * 1024;

/// Where a connection is (RFC 793 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
    Closed,
}

/// Why a connection ended other than by both sides closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    #[error("connection refused")]
    Refused,
    #[error("connection reset by the peer")]
    Reset,
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("no handshake ACK in time")]
    AcceptTimeout,
    #[error("no progress for 30 s with data outstanding")]
    Stalled,
    #[error("close did not finish in time")]
    CloseTimeout,
    #[error("aborted")]
    Aborted,
}

/// `a` before `b`, in sequence space (wrapping).
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// A sent segment waiting for its acknowledgement.
#[derive(Debug)]
struct Segment {
    seq: u32,
    data: Vec<u8>,
    sent_at: Instant,
    retransmitted: bool,
}

impl Segment {
    fn end(&self) -> u32 {
        self.seq.wrapping_add(self.data.len() as u32)
    }
}

/// One connection. See the module docs.
#[derive(Debug)]
pub struct Conn {
    local_port: u16,
    remote_port: u16,
    state: State,
    error: Option<ConnError>,
    /// Packets waiting to be sent.
    out: VecDeque<Vec<u8>>,
    opened: Instant,

    /// Bytes the connection may still add to its receive and to its send buffers, set by its
    /// stack from the shared budget before each packet and write; unlimited on its own.
    recv_allowance: usize,
    send_allowance: usize,

    // Sending.
    unsent: VecDeque<u8>,
    retx: VecDeque<Segment>,
    /// Bytes of the segments in `retx`.
    retx_bytes: usize,
    snd_una: u32,
    snd_nxt: u32,
    peer_window: u32,
    cwnd: u32,
    ssthresh: u32,
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    /// The retransmission timer: re-armed by every packet received.
    rto_deadline: Option<Instant>,
    stalled: Duration,
    in_stall: bool,
    dup_acks: u32,
    syn_sends: usize,
    close_requested: Option<Instant>,
    fin_seq: Option<u32>,
    fin_sends: u32,

    // Receiving.
    rcv_nxt: u32,
    readable: VecDeque<u8>,
    ooo: BTreeMap<u32, Vec<u8>>,
    ooo_bytes: usize,
    peer_fin: Option<u32>,
    eof: bool,
}

impl Conn {
    fn new(local_port: u16, remote_port: u16, state: State, now: Instant) -> Conn {
        Conn {
            local_port,
            remote_port,
            state,
            error: None,
            out: VecDeque::new(),
            opened: now,
            recv_allowance: usize::MAX,
            send_allowance: usize::MAX,
            unsent: VecDeque::new(),
            retx: VecDeque::new(),
            retx_bytes: 0,
            snd_una: 0,
            snd_nxt: 0,
            peer_window: 0,
            cwnd: INITIAL_CWND,
            ssthresh: MAX_CWND,
            srtt: None,
            rttvar: Duration::ZERO,
            rto: INITIAL_RTO,
            rto_deadline: None,
            stalled: Duration::ZERO,
            in_stall: false,
            dup_acks: 0,
            syn_sends: 0,
            close_requested: None,
            fin_seq: None,
            fin_sends: 0,
            rcv_nxt: 0,
            readable: VecDeque::new(),
            ooo: BTreeMap::new(),
            ooo_bytes: 0,
            peer_fin: None,
            eof: false,
        }
    }

    /// A connection from `local_port` to `remote_port`, sending its SYN.
    pub fn connect(local_port: u16, remote_port: u16, now: Instant) -> Conn {
        let mut c = Conn::new(local_port, remote_port, State::SynSent, now);
        c.send_syn();
        c
    }

    /// A connection accepted from a SYN `syn` received on `local_port`, sending its SYN-ACK.
    pub fn accept(local_port: u16, syn: &Header, now: Instant) -> Conn {
        let mut c = Conn::new(local_port, syn.src_port, State::SynReceived, now);
        c.peer_window = syn.window;
        c.emit(Header::syn_ack(local_port, syn.src_port), &[]);
        c
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Why the connection ended, if it ended abnormally.
    pub fn error(&self) -> Option<ConnError> {
        self.error
    }

    pub fn local_port(&self) -> u16 {
        self.local_port
    }

    pub fn remote_port(&self) -> u16 {
        self.remote_port
    }

    /// Whether the connection is over and can be forgotten once its packets are sent.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether our side is closing or closed: [`Conn::close`] was called (its FIN may still
    /// wait for the data to be acknowledged), or the connection ended.
    pub fn is_closing(&self) -> bool {
        self.close_requested.is_some() || self.state == State::Closed
    }

    /// Whether the handshake is done (data may flow).
    pub fn is_established(&self) -> bool {
        !matches!(
            self.state,
            State::SynSent | State::SynReceived | State::Closed
        )
    }

    /// The next packet to send.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    fn emit(&mut self, h: Header, payload: &[u8]) {
        self.out.push_back(h.packet(payload));
    }

    fn recv_window(&self) -> u32 {
        RECV_BUFFER.saturating_sub(self.readable.len() + self.ooo_bytes) as u32
    }

    fn send_ack(&mut self) {
        let h = Header::pure_ack(
            self.local_port,
            self.remote_port,
            self.rcv_nxt,
            self.recv_window(),
        );
        self.emit(h, &[]);
    }

    fn send_syn(&mut self) {
        self.syn_sends += 1;
        self.emit(Header::syn(self.local_port, self.remote_port), &[]);
    }

    /// Ends the connection with `error`, sending an RST unless the peer reset it.
    fn fail(&mut self, error: ConnError) {
        if error != ConnError::Reset && error != ConnError::Refused {
            self.out.clear();
            self.emit(Header::rst(self.local_port, self.remote_port), &[]);
        }
        self.error = Some(error);
        self.enter_closed();
    }

    fn enter_closed(&mut self) {
        self.state = State::Closed;
        self.unsent = VecDeque::new();
        self.retx = VecDeque::new();
        self.retx_bytes = 0;
        self.ooo.clear();
        self.ooo_bytes = 0;
        self.rto_deadline = None;
        if self.error.is_some() {
            // Ended abnormally: what was received and not read is lost, as with TCP's RST.
            self.readable = VecDeque::new();
        }
    }

    /// Sets how many more bytes the connection may receive and may accept for sending until
    /// the next call: its share of the stack's budget (see [`crate::stack`]).
    pub fn set_allowance(&mut self, recv: usize, send: usize) {
        self.recv_allowance = recv;
        self.send_allowance = send;
    }

    /// Bytes received and not read, in order and out of order.
    pub fn buffered_recv(&self) -> usize {
        self.readable.len() + self.ooo_bytes
    }

    /// Bytes written and not acknowledged, plus [`SEGMENT_OVERHEAD`] per unacknowledged
    /// segment.
    pub fn buffered_send(&self) -> usize {
        self.unsent.len() + self.retx_bytes + self.retx.len() * SEGMENT_OVERHEAD
    }

    /// Bytes the connection holds: [`Conn::buffered_recv`] + [`Conn::buffered_send`].
    pub fn buffered(&self) -> usize {
        self.buffered_recv() + self.buffered_send()
    }

    /// Aborts at once: pending data is dropped and one RST is sent.
    pub fn abort(&mut self) {
        if self.state != State::Closed {
            self.fail(ConnError::Aborted);
        }
    }

    /// Closes gracefully: once everything written is acknowledged a FIN is sent. Gives up
    /// (RST) after [`CLOSE_TIMEOUT`].
    pub fn close(&mut self, now: Instant) {
        match self.state {
            State::SynSent | State::SynReceived => self.abort(),
            State::Established | State::CloseWait => {
                self.close_requested.get_or_insert(now);
                self.maybe_send_fin(now);
            }
            _ => {}
        }
    }

    fn maybe_send_fin(&mut self, now: Instant) {
        if self.close_requested.is_none()
            || self.fin_seq.is_some()
            || !self.unsent.is_empty()
            || !self.retx.is_empty()
        {
            return;
        }
        let seq = self.snd_nxt;
        self.fin_seq = Some(seq);
        self.snd_nxt = seq.wrapping_add(1);
        self.state = match self.state {
            State::CloseWait => State::LastAck,
            _ => State::FinWait1,
        };
        self.send_fin();
        self.rto_deadline = Some(now + self.rto);
    }

    fn send_fin(&mut self) {
        if let Some(seq) = self.fin_seq {
            self.fin_sends += 1;
            let h = Header::fin(
                self.local_port,
                self.remote_port,
                seq,
                Some((self.rcv_nxt, self.recv_window())),
            );
            self.emit(h, &[]);
        }
    }

    /// Accepts up to `data.len()` bytes for sending (as many as [`SEND_BUFFER`] allows) and
    /// sends what the windows allow; returns how many were accepted (0: wait and retry).
    pub fn write(&mut self, data: &[u8], now: Instant) -> usize {
        if !matches!(self.state, State::Established | State::CloseWait)
            || self.close_requested.is_some()
        {
            return 0;
        }
        let held = self.unsent.len() + self.in_flight() as usize;
        let n = data
            .len()
            .min(SEND_BUFFER.saturating_sub(held))
            .min(self.send_allowance);
        self.unsent.extend(&data[..n]);
        self.flush(now);
        n
    }

    /// Bytes written and not yet acknowledged.
    pub fn unacknowledged(&self) -> usize {
        self.unsent.len() + self.in_flight() as usize
    }

    fn in_flight(&self) -> u32 {
        let fin = u32::from(self.fin_seq.is_some());
        self.snd_nxt.wrapping_sub(self.snd_una).saturating_sub(fin)
    }

    /// Sends the segments the windows allow.
    fn flush(&mut self, now: Instant) {
        while !self.unsent.is_empty() {
            let window = self.peer_window.min(self.cwnd);
            let room = window.saturating_sub(self.in_flight()) as usize;
            let n = self.unsent.len().min(SEGMENT_SIZE).min(room);
            if n == 0 {
                break;
            }
            let data: Vec<u8> = self.unsent.drain(..n).collect();
            if self.unsent.is_empty() && self.unsent.capacity() > SHRINK_ABOVE {
                self.unsent = VecDeque::new();
            }
            let h = Header::data(
                self.local_port,
                self.remote_port,
                self.snd_nxt,
                self.rcv_nxt,
                self.recv_window(),
            );
            self.emit(h, &data);
            if self.retx.is_empty() {
                self.rto_deadline = Some(now + self.rto);
            }
            self.retx_bytes += data.len();
            self.retx.push_back(Segment {
                seq: self.snd_nxt,
                data,
                sent_at: now,
                retransmitted: false,
            });
            self.snd_nxt = self.snd_nxt.wrapping_add(n as u32);
        }
    }

    /// Handles a packet for this connection.
    pub fn on_packet(&mut self, h: &Header, payload: &[u8], now: Instant) {
        if self.state == State::Closed {
            return;
        }
        if h.flags.contains(Flags::RST) {
            let e = match self.state {
                State::SynSent => ConnError::Refused,
                _ => ConnError::Reset,
            };
            self.error = Some(e);
            self.enter_closed();
            return;
        }
        // Any packet from the peer re-arms the retransmission timer.
        if self.rto_deadline.is_some() {
            self.rto_deadline = Some(now + self.rto);
        }
        match self.state {
            State::SynSent => {
                if h.flags.contains(Flags::SYN) && h.flags.contains(Flags::ACK) {
                    self.peer_window = h.window;
                    self.state = State::Established;
                    let ack = Header::handshake_ack(self.local_port, self.remote_port);
                    self.emit(ack, &[]);
                }
                return;
            }
            State::SynReceived => {
                if h.flags.contains(Flags::SYN) {
                    if !h.flags.contains(Flags::ACK) {
                        let again = Header::syn_ack(self.local_port, self.remote_port);
                        self.emit(again, &[]);
                    }
                    return;
                }
                if !h.flags.contains(Flags::ACK) {
                    return;
                }
                self.state = State::Established;
            }
            _ => {}
        }
        if h.flags.contains(Flags::SYN) {
            // A SYN on a live connection is the stack's business (a restarted peer).
            return;
        }
        if h.flags.contains(Flags::ACK) {
            self.on_ack(h, payload.is_empty(), now);
        }
        if !payload.is_empty() {
            self.on_data(h.seq, payload);
        }
        if h.flags.contains(Flags::FIN) {
            if self.eof {
                // The peer sent its FIN again: our ACK of it was lost.
                self.send_ack();
            } else if matches!(
                self.state,
                State::Established | State::FinWait1 | State::FinWait2
            ) {
                // The first FIN counts; one at another sequence number later is ignored.
                self.peer_fin.get_or_insert(h.seq);
            }
        }
        self.take_fin(now);
        self.flush(now);
        self.maybe_send_fin(now);
    }

    fn on_ack(&mut self, h: &Header, pure: bool, now: Instant) {
        self.peer_window = h.window;
        let ack = h.ack;
        if before(self.snd_una, ack) && !before(self.snd_nxt, ack) {
            let mut sample = None;
            while let Some(seg) = self.retx.front() {
                if before(ack, seg.end()) {
                    break;
                }
                let seg = self.retx.pop_front().expect("front");
                self.retx_bytes -= seg.data.len();
                if sample.is_none() {
                    sample = Some(if seg.retransmitted {
                        None
                    } else {
                        Some(now.saturating_duration_since(seg.sent_at))
                    });
                }
            }
            if let Some(Some(rtt)) = sample {
                self.rtt_sample(rtt);
            }
            let acked = ack.wrapping_sub(self.snd_una);
            self.snd_una = ack;
            self.grow_cwnd(acked);
            self.dup_acks = 0;
            self.stalled = Duration::ZERO;
            self.in_stall = false;
            if let Some(fin) = self.fin_seq {
                if !before(ack, fin.wrapping_add(1)) {
                    self.our_fin_acked(now);
                }
            }
            self.rto_deadline = if self.retx.is_empty() && self.fin_seq.is_none() {
                None
            } else {
                Some(now + self.rto)
            };
        } else if pure
            && ack == self.snd_una
            && ack != 0
            && !self.retx.is_empty()
            && !h.flags.contains(Flags::FIN)
        {
            self.dup_acks += 1;
            if self.dup_acks == 3 {
                self.cwnd = (self.cwnd / 2).max(SEGMENT_SIZE as u32);
                self.ssthresh = self.cwnd;
                self.retransmit(1, now);
            }
        }
    }

    fn our_fin_acked(&mut self, now: Instant) {
        self.state = match self.state {
            State::FinWait1 => State::FinWait2,
            State::Closing => State::TimeWait,
            State::LastAck => {
                self.enter_closed();
                return;
            }
            s => s,
        };
        if self.state == State::TimeWait {
            self.rto_deadline = Some(now + self.rto);
        }
    }

    fn grow_cwnd(&mut self, acked: u32) {
        let seg = SEGMENT_SIZE as u32;
        let add = if self.cwnd < self.ssthresh {
            acked.min(seg)
        } else {
            (seg.saturating_mul(seg) / self.cwnd.max(1)).max(1)
        };
        self.cwnd = self.cwnd.saturating_add(add).min(MAX_CWND);
    }
}

mod recv;
#[cfg(test)]
mod tests;
mod timers;
