//! The receiving half of a connection: in-order data into the read buffer, out-of-order
//! segments kept (bounded) until the gap fills, the peer's FIN taken once every byte before it
//! has arrived, and the window updates a read sends.

use super::{before, Conn, State, MAX_OUT_OF_ORDER, RECV_BUFFER, WINDOW_UPDATE_LEVEL};
use std::time::Instant;

impl Conn {
    /// Reads up to `buf.len()` received bytes; 0 at EOF or when nothing is there (see
    /// [`Conn::is_eof`]).
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let free_before = RECV_BUFFER.saturating_sub(self.readable.len() + self.ooo_bytes);
        let n = buf.len().min(self.readable.len());
        for (dst, src) in buf.iter_mut().zip(self.readable.drain(..n)) {
            *dst = src;
        }
        if self.readable.is_empty() && self.readable.capacity() > super::SHRINK_ABOVE {
            self.readable = std::collections::VecDeque::new();
        }
        let free_after = RECV_BUFFER.saturating_sub(self.readable.len() + self.ooo_bytes);
        if free_before < WINDOW_UPDATE_LEVEL
            && free_after >= WINDOW_UPDATE_LEVEL
            && self.is_established()
            && !self.eof
        {
            self.send_ack();
        }
        n
    }

    /// Bytes ready to read.
    pub fn readable(&self) -> usize {
        self.readable.len()
    }

    /// Whether the peer closed its side and every byte before its FIN has been read.
    pub fn is_eof(&self) -> bool {
        self.eof && self.readable.is_empty()
    }

    pub(super) fn on_data(&mut self, seq: u32, payload: &[u8]) {
        if !matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        ) || self.peer_fin.is_some_and(|f| !before(seq, f))
        {
            return;
        }
        let free = RECV_BUFFER.saturating_sub(self.readable.len() + self.ooo_bytes);
        if seq == self.rcv_nxt {
            if payload.len() > free {
                // Past our window: a compatible peer never sends it. Drop, re-advertise.
                self.send_ack();
                return;
            }
            if payload.len() > self.recv_allowance {
                // The stack's buffer budget is spent: drop it without a word, as a full
                // queue would; the peer retransmits once there is room (or stalls out).
                return;
            }
            self.readable.extend(payload);
            self.rcv_nxt = self.rcv_nxt.wrapping_add(payload.len() as u32);
            while let Some(data) = self.ooo.remove(&self.rcv_nxt) {
                self.ooo_bytes -= data.len();
                self.rcv_nxt = self.rcv_nxt.wrapping_add(data.len() as u32);
                self.readable.extend(data);
            }
        } else if before(self.rcv_nxt, seq)
            && self.ooo.len() < MAX_OUT_OF_ORDER
            && payload.len() <= free.min(self.recv_allowance)
            && !self.ooo.contains_key(&seq)
        {
            self.ooo_bytes += payload.len();
            self.ooo.insert(seq, payload.to_vec());
        }
        // In order, ahead (a duplicate ACK) or old: acknowledge what we have.
        self.send_ack();
    }

    /// Takes the peer's FIN once every byte before it has arrived.
    pub(super) fn take_fin(&mut self, now: Instant) {
        let Some(fin) = self.peer_fin else {
            return;
        };
        if self.eof || fin != self.rcv_nxt {
            return;
        }
        self.eof = true;
        self.rcv_nxt = fin.wrapping_add(1);
        self.ooo.clear();
        self.ooo_bytes = 0;
        self.state = match self.state {
            State::Established => State::CloseWait,
            State::FinWait1 => State::Closing,
            State::FinWait2 => State::TimeWait,
            s => s,
        };
        self.send_ack();
        if self.state == State::TimeWait {
            self.rto_deadline = Some(now + self.rto);
        }
    }
}
