//! A connection's clocks: the SYN schedule and connect limit, the accept limit, the
//! retransmission timer (RFC 6298 estimate with Karn's rule, exponential back-off, the stall
//! limit), the close limit and TIME_WAIT.

use super::*;

impl Conn {
    pub(super) fn rtt_sample(&mut self, r: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(r);
                self.rttvar = self.rttvar * 3 / 4 + diff / 4;
                self.srtt = Some(srtt * 7 / 8 + r / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        self.rto = (srtt + (self.rttvar * 4).max(MIN_RTO_VARIANCE)).clamp(MIN_RTO, MAX_RTO);
    }

    /// Resends the oldest `count` unacknowledged segments.
    pub(super) fn retransmit(&mut self, count: usize, now: Instant) {
        let (ack, window) = (self.rcv_nxt, self.recv_window());
        let mut resend = Vec::new();
        for seg in self.retx.iter_mut().take(count) {
            seg.retransmitted = true;
            seg.sent_at = now;
            let h = Header::data(self.local_port, self.remote_port, seg.seq, ack, window);
            resend.push(h.packet(&seg.data));
        }
        self.out.extend(resend);
    }

    /// When [`Conn::on_timeout`] should run next.
    pub fn deadline(&self) -> Option<Instant> {
        let step = match self.state {
            State::Closed => return None,
            State::SynSent => {
                let waited: Duration = SYN_RETRIES.iter().take(self.syn_sends - 1).sum();
                let next = SYN_RETRIES
                    .get(self.syn_sends - 1)
                    .map(|d| self.opened + waited + *d);
                let end = self.opened + CONNECT_TIMEOUT;
                return Some(next.map_or(end, |n| n.min(end)));
            }
            State::SynReceived => return Some(self.opened + ACCEPT_TIMEOUT),
            _ => self.rto_deadline,
        };
        let close = self.close_requested.map(|t| t + CLOSE_TIMEOUT);
        match (step, close) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs the timers due at `now`.
    pub fn on_timeout(&mut self, now: Instant) {
        match self.state {
            State::Closed => return,
            State::SynSent => {
                if now >= self.opened + CONNECT_TIMEOUT {
                    self.error = Some(ConnError::ConnectTimeout);
                    self.enter_closed();
                } else if self.deadline().is_some_and(|d| now >= d) {
                    self.send_syn();
                }
                return;
            }
            State::SynReceived => {
                if now >= self.opened + ACCEPT_TIMEOUT {
                    self.fail(ConnError::AcceptTimeout);
                }
                return;
            }
            _ => {}
        }
        if let Some(t) = self.close_requested {
            if now >= t + CLOSE_TIMEOUT && !matches!(self.state, State::TimeWait) {
                if self.fin_seq.is_some() {
                    // Our FIN went out; a reference peer never acknowledges it. Done.
                    self.enter_closed();
                } else {
                    self.fail(ConnError::CloseTimeout);
                }
                return;
            }
        }
        let Some(due) = self.rto_deadline else {
            return;
        };
        if now < due {
            return;
        }
        if self.state == State::TimeWait {
            self.enter_closed();
            return;
        }
        if self.retx.is_empty() {
            // Only our FIN is outstanding: send it again a few times, then forget it.
            if self.fin_seq.is_some() {
                if self.fin_sends >= FIN_SENDS {
                    self.enter_closed();
                    return;
                }
                self.send_fin();
                self.rto = (self.rto * 2).min(MAX_RTO);
                self.rto_deadline = Some(now + self.rto);
            } else {
                self.rto_deadline = None;
            }
            return;
        }
        self.stalled += self.rto;
        if self.stalled >= STALL_LIMIT {
            self.fail(ConnError::Stalled);
            return;
        }
        if !self.in_stall {
            self.in_stall = true;
            self.ssthresh = (self.cwnd / 2).max(SEGMENT_SIZE as u32);
            self.cwnd = SEGMENT_SIZE as u32;
        }
        let count = (self.cwnd as usize / SEGMENT_SIZE).max(1);
        self.retransmit(count, now);
        self.rto = (self.rto * 2).min(MAX_RTO);
        self.rto_deadline = Some(now + self.rto);
    }
}
