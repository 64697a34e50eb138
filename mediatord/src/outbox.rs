//! A session's outbound side: one bounded queue of frames that only the session's writer
//! drains, bounded in frames and in bytes, per session and across all sessions.
//!
//! Pushes are queued with `try_send` and never wait: a session whose queue would pass
//! [`Limits::max_session_queue_bytes`](crate::limits::Limits::max_session_queue_bytes) or
//! [`Limits::session_queue`](crate::limits::Limits::session_queue) frames is disconnected as
//! a slow consumer (its client reconnects and catches up with GET_MESSAGES_SINCE), so a slow
//! reader never slows a room. Every queued byte is also counted against one shared budget of
//! [`Limits::max_queued_bytes`](crate::limits::Limits::max_queued_bytes): when it is spent,
//! a push to a session that already holds more than [`QUEUE_FAIR_SHARE`] disconnects that
//! session (the largest backlogs go first), while sessions that read normally keep getting
//! theirs. Answers that can be large reserve their room in the budget before they are built
//! ([`Outbox::reserve`]) and wait for it, so a crowd of sessions that ask and never read
//! cannot make the daemon hold more than the budget. One source may hold at most
//! [`Limits::max_queued_bytes_per_source`](crate::limits::Limits::max_queued_bytes_per_source)
//! of the budget (`crate::shares`): its sessions that ask and never read wait on each other,
//! not on everyone.

use crate::peer::{MemberHook, Peer, Transport};
use crate::shares::{Grant, SharedBudget, SourceBudget};
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

pub use crate::limits::QUEUE_FAIR_SHARE;

/// A frame in a session's queue, with the share of the global budget it holds (none for a
/// small answer or a push queued past the budget); the share is given back once the writer
/// has handed the frame to the transport.
#[derive(Debug)]
pub struct Outgoing {
    pub frame: Bytes,
    pub(crate) _budget: Option<Grant>,
    /// The session's own answer, whose bytes do not count against the push bound; the writer
    /// reports them with [`Meter::written`].
    pub answer: bool,
}

impl Outgoing {
    /// Bytes of this frame that are an answer (for [`Meter::written`]).
    pub fn answer_bytes(&self) -> usize {
        if self.answer {
            self.frame.len()
        } else {
            0
        }
    }
}

/// What every session of a hub has sent and received, for the metrics.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Pushes queued for a session.
    pub pushes: AtomicU64,
    /// Pushes a full queue could not take (their session is disconnected).
    pub pushes_dropped: AtomicU64,
    /// Request bytes read (headers and payloads).
    pub bytes_in: AtomicU64,
    /// Frame bytes handed to the transport.
    pub bytes_out: AtomicU64,
}

/// The byte budget shared by every session's queue.
#[derive(Debug, Clone)]
pub struct QueueBudget {
    shared: Arc<SharedBudget>,
    /// Bytes queued in all sessions, budgeted or not.
    queued: Arc<AtomicUsize>,
    /// Per-session bound in bytes.
    per_session: usize,
    /// Counts of every session's traffic.
    pub traffic: Arc<Traffic>,
}

impl QueueBudget {
    /// `total` bytes for everyone, `per_source` for one source, `per_session` for one session.
    pub fn new(total: usize, per_source: usize, per_session: usize) -> Self {
        QueueBudget {
            shared: Arc::new(SharedBudget::new(total, per_source)),
            queued: Arc::default(),
            per_session,
            traffic: Arc::default(),
        }
    }

    /// Bytes queued in all sessions.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

impl Default for QueueBudget {
    fn default() -> Self {
        let l = crate::limits::Limits::default();
        QueueBudget::new(
            l.max_queued_bytes,
            l.max_queued_bytes_per_source,
            l.max_session_queue_bytes,
        )
    }
}

/// A session's outbound side as seen by everyone else.
#[derive(Debug)]
pub struct Outbox {
    pub id: u64,
    /// The peer as shown to operators: the UDP address, or the Yggdrasil key in hex.
    pub remote: String,
    /// What per-source limits count by: the IP address (an IPv6 /64) on plain UDP, the
    /// node key over Yggdrasil.
    pub source: String,
    pub transport: Transport,
    pub connected_at: SystemTime,
    tx: mpsc::Sender<Outgoing>,
    kill: CancellationToken,
    /// This session's source's share of the queue budget.
    share: SourceBudget,
    per_session: usize,
    meter: Arc<Meter>,
    /// Pushes dropped because the queue was full (the session is then disconnected).
    pub overflowed: AtomicU64,
    /// Told when the session becomes a member's or stops being one (see [`Peer`]).
    member_hook: Option<MemberHook>,
}

/// Bytes in one session's queue, shared by the outbox and its writer.
#[derive(Debug)]
pub struct Meter {
    queued: AtomicUsize,
    /// The part of `queued` that is the session's own answers.
    answers: AtomicUsize,
    /// Bytes queued in all sessions ([`QueueBudget::queued`]).
    total: Arc<AtomicUsize>,
    /// Signalled each time the writer has written frames out.
    drained: Notify,
    /// The hub's traffic counts.
    pub traffic: Arc<Traffic>,
}

impl Meter {
    fn add(&self, len: usize) {
        self.queued.fetch_add(len, Ordering::Relaxed);
        self.total.fetch_add(len, Ordering::Relaxed);
    }

    /// Called by the writer once `len` bytes of frames have left the queue, `answers` of
    /// them the session's own answers.
    pub fn written(&self, len: usize, answers: usize) {
        self.answers.fetch_sub(answers, Ordering::Relaxed);
        self.queued.fetch_sub(len, Ordering::Relaxed);
        self.total.fetch_sub(len, Ordering::Relaxed);
        self.drained.notify_waiters();
    }
}

/// The writer's end of a session's queue. The queue closes when the [`Outbox`] is dropped
/// (the hub and the session let go of it when the session ends).
#[derive(Debug)]
pub struct OutboxReceiver {
    pub rx: mpsc::Receiver<Outgoing>,
    pub meter: Arc<Meter>,
    /// Ends the session (on a write error or stall).
    pub kill: CancellationToken,
    pub source: String,
}

impl OutboxReceiver {
    pub fn try_recv(&mut self) -> Result<Outgoing, mpsc::error::TryRecvError> {
        self.rx.try_recv()
    }
}

/// One push for every session it goes to: the frame as Mimir 2.x takes it (status 0), and
/// the Mimir 3.x form (status 2), made at most once however many 3.x sessions get it.
#[derive(Debug)]
pub struct PushFrame {
    mimir2: Bytes,
    mimir3: std::sync::OnceLock<Bytes>,
}

impl PushFrame {
    /// A push from its Mimir 2.x frame.
    pub fn new(frame: Bytes) -> PushFrame {
        PushFrame {
            mimir2: frame,
            mimir3: std::sync::OnceLock::new(),
        }
    }

    /// The frame for a client of this generation.
    pub fn for_client(&self, mimir3: bool) -> Bytes {
        if mimir3 {
            self.mimir3
                .get_or_init(|| Bytes::from(mediator_wire::frame::push_for_mimir3(&self.mimir2)))
                .clone()
        } else {
            self.mimir2.clone()
        }
    }
}

impl Outbox {
    /// A session's outbox with room for `frames` frames, and the writer's end of it.
    pub fn new(
        id: u64,
        peer: Peer,
        frames: usize,
        budget: QueueBudget,
    ) -> (Arc<Outbox>, OutboxReceiver) {
        let Peer {
            remote,
            source,
            transport,
            member_hook,
        } = peer;
        let (tx, rx) = mpsc::channel(frames);
        let meter = Arc::new(Meter {
            queued: AtomicUsize::new(0),
            answers: AtomicUsize::new(0),
            total: budget.queued.clone(),
            drained: Notify::new(),
            traffic: budget.traffic.clone(),
        });
        let kill = CancellationToken::new();
        let end = OutboxReceiver {
            rx,
            meter: meter.clone(),
            kill: kill.clone(),
            source: source.clone(),
        };
        let outbox = Outbox {
            id,
            remote,
            transport,
            share: budget.shared.for_source(&source),
            per_session: budget.per_session,
            source,
            connected_at: SystemTime::now(),
            tx,
            kill,
            meter,
            overflowed: AtomicU64::new(0),
            member_hook,
        };
        (Arc::new(outbox), end)
    }

    /// Resolves when the session has been told to end.
    pub fn killed(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.kill.cancelled()
    }

    /// Ends the session: its reader stops and its cleanup runs.
    pub fn kill(&self) {
        self.kill.cancel();
    }

    pub fn is_killed(&self) -> bool {
        self.kill.is_cancelled()
    }

    /// Tells the transport whether the session is now a chat member's.
    pub fn set_member(&self, member: bool) {
        if let Some(hook) = &self.member_hook {
            (hook.0)(member);
        }
    }

    /// Frames waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Bytes waiting in the queue.
    pub fn queued_bytes(&self) -> usize {
        self.meter.queued.load(Ordering::Relaxed)
    }

    fn overflow(&self, why: &'static str) {
        self.overflowed.fetch_add(1, Ordering::Relaxed);
        self.meter
            .traffic
            .pushes_dropped
            .fetch_add(1, Ordering::Relaxed);
        crate::events::note(crate::events::Event::SlowConsumer, &self.source, why);
        self.kill();
    }

    /// Queues a push; never waits. A push that the session's queue cannot take, or that
    /// finds the shared budget spent while this session already holds more than its fair
    /// share, disconnects the session (policy: never block a room). Pushes take from the
    /// whole budget only, not from the source's share: others send them, so the source cannot
    /// inflate them by asking, and its own answers must not make its pushes overflow.
    /// The per-session bound counts pushes only: the session's own answer (one at a time,
    /// the reader waits for it to drain) never makes a push overflow.
    pub fn push(&self, frame: &PushFrame) {
        let frame = frame.for_client(self.transport.is_mimir3());
        let len = frame.len();
        let mine = self.queued_bytes();
        let pushes = mine.saturating_sub(self.meter.answers.load(Ordering::Relaxed));
        if pushes + len > self.per_session {
            return self.overflow("queued bytes over the per-session bound");
        }
        let permit = match self.share.try_acquire_whole(len) {
            Some(p) => Some(p),
            None if mine > QUEUE_FAIR_SHARE => {
                return self.overflow("queue budget spent and this session holds a large backlog")
            }
            None => None,
        };
        self.account(len);
        match self.tx.try_send(Outgoing {
            frame,
            _budget: permit,
            answer: false,
        }) {
            Ok(()) => {
                self.meter.traffic.pushes.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.meter.written(len, 0);
                self.overflow("queued frames over the per-session bound");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.meter.written(len, 0),
        }
    }

    /// Reserves `bytes` of the shared budget (at most the source's share) for an answer
    /// about to be built, waiting for room in the source's share, then in the whole; the
    /// grant goes with the answer into the queue ([`Outbox::answer`]) after being trimmed to
    /// the answer's real size.
    pub async fn reserve(&self, bytes: usize) -> Grant {
        self.share.acquire(bytes).await
    }

    /// Queues this session's own answer, waiting for a free slot (the reader handles one
    /// request at a time, so this is the session's own backpressure). `reserved`, if any,
    /// is trimmed to the frame's size. Returns false when the session is gone.
    pub async fn answer(&self, frame: Bytes, reserved: Option<Grant>) -> bool {
        let len = frame.len();
        let budget = reserved.map(|mut g| {
            g.trim(len);
            g
        });
        self.account(len);
        self.meter.answers.fetch_add(len, Ordering::Relaxed);
        let sent = self
            .tx
            .send(Outgoing {
                frame,
                _budget: budget,
                answer: true,
            })
            .await;
        if sent.is_err() {
            self.meter.written(len, len);
        }
        sent.is_ok()
    }

    /// A push frame (status 0) in the form this session's client generation takes pushes:
    /// as it is for Mimir 2.x, with status 2 for Mimir 3.x.
    pub fn for_client(&self, push: Bytes) -> Bytes {
        PushFrame::new(push).for_client(self.transport.is_mimir3())
    }

    fn account(&self, len: usize) {
        self.meter.add(len);
    }

    /// Counts `len` request bytes read from this session's client.
    pub fn received(&self, len: usize) {
        self.meter
            .traffic
            .bytes_in
            .fetch_add(len as u64, Ordering::Relaxed);
    }

    /// Waits until at most `low` bytes are queued for this session: the reader does not
    /// take another request while the client is not reading its answers and pushes.
    pub async fn drained_below(&self, low: usize) {
        loop {
            let notified = self.meter.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.queued_bytes() <= low || self.is_killed() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(frames: usize, budget: &QueueBudget) -> (Arc<Outbox>, OutboxReceiver) {
        Outbox::new(1, Peer::quic("r", "s"), frames, budget.clone())
    }

    /// Bytes are bounded per session: a push past the per-session bound disconnects.
    /// A push goes to 2.x sessions as it is and to 3.x sessions with status 2, and the
    /// 3.x form is made once for all of them (the same bytes, not a copy per session).
    #[test]
    fn a_push_is_converted_once_per_generation() {
        let two = Bytes::from(vec![0, 0x00, 0x06, 0, 0, 0, 1, 9]);
        let p = PushFrame::new(two.clone());
        assert_eq!(p.for_client(false), two);
        let (a, b) = (p.for_client(true), p.for_client(true));
        assert_eq!(a[0], 2);
        assert_eq!(a[1..], two[1..]);
        assert_eq!(a.as_ptr(), b.as_ptr(), "one 3.x copy, shared");
        assert_eq!(p.for_client(false).as_ptr(), two.as_ptr());
    }

    #[test]
    fn per_session_bytes_bound_kills_the_slow_session() {
        let budget = QueueBudget::new(1 << 30, 1 << 30, 3000);
        let (o, _rx) = outbox(100, &budget);
        o.push(&PushFrame::new(Bytes::from(vec![0; 1000])));
        o.push(&PushFrame::new(Bytes::from(vec![0; 1000])));
        assert!(!o.is_killed());
        assert_eq!((o.queued_bytes(), budget.queued()), (2000, 2000));
        o.push(&PushFrame::new(Bytes::from(vec![0; 1001])));
        assert!(o.is_killed());
        assert_eq!(o.overflowed.load(Ordering::Relaxed), 1);
        assert_eq!(budget.queued(), 2000);
    }

    /// A queued frame stays small: every session's queue allocates room for a block of them.
    #[test]
    fn a_queued_frame_is_seven_words() {
        assert!(std::mem::size_of::<Outgoing>() <= 56);
    }

    /// A source whose share is spent by its own reserved answers still receives pushes:
    /// they come from the whole budget.
    #[tokio::test]
    async fn pushes_do_not_need_the_source_share() {
        let share = 2 * QUEUE_FAIR_SHARE;
        let budget = QueueBudget::new(8 * share, share, 4 * share);
        let (o, _rx) = outbox(100, &budget);
        let held = o.reserve(share).await;
        assert_eq!(held.bytes(), share);
        o.push(&PushFrame::new(Bytes::from(vec![0; QUEUE_FAIR_SHARE + 1])));
        o.push(&PushFrame::new(Bytes::from(vec![0; QUEUE_FAIR_SHARE])));
        assert!(!o.is_killed());
    }

    /// A session's own large answer in its queue does not make a push overflow; pushes
    /// alone are held to the per-session bound.
    #[tokio::test]
    async fn own_answers_do_not_count_against_the_push_bound() {
        let budget = QueueBudget::new(1 << 30, 1 << 30, 3000);
        let (o, mut rx) = outbox(100, &budget);
        assert!(o.answer(Bytes::from(vec![0; 2500]), None).await);
        o.push(&PushFrame::new(Bytes::from(vec![0; 2000])));
        assert!(!o.is_killed());
        o.push(&PushFrame::new(Bytes::from(vec![0; 1001])));
        assert!(o.is_killed());
        let f = rx.rx.recv().await.unwrap();
        rx.meter.written(f.frame.len(), f.answer_bytes());
        drop(f);
        assert_eq!(o.meter.answers.load(Ordering::Relaxed), 0);
    }

    /// With the shared budget spent, a session holding more than its fair share loses its
    /// push (and its session); a session with a small backlog still gets its push.
    #[test]
    fn spent_budget_cuts_the_largest_backlog_first() {
        let share = QUEUE_FAIR_SHARE;
        let budget = QueueBudget::new(share + 10, share + 10, 4 * share);
        let (hog, _rh) = outbox(100, &budget);
        let (light, mut rl) = outbox(100, &budget);
        hog.push(&PushFrame::new(Bytes::from(vec![0; share + 1])));
        hog.push(&PushFrame::new(Bytes::from(vec![0; 100])));
        assert!(hog.is_killed());
        light.push(&PushFrame::new(Bytes::from(vec![1; 100])));
        assert!(!light.is_killed());
        assert_eq!(rl.try_recv().unwrap().frame.len(), 100);
    }

    /// A reserved answer is trimmed to its size and its budget returns when the writer drops
    /// the frame; a second reservation waits for it.
    #[tokio::test]
    async fn reservations_wait_and_are_trimmed() {
        let budget = QueueBudget::new(1000, 1000, 5000);
        let (o, mut rx) = outbox(4, &budget);
        let p = o.reserve(1000).await;
        let second = o.reserve(900);
        tokio::pin!(second);
        assert!(futures::poll!(second.as_mut()).is_pending());
        assert!(o.answer(Bytes::from(vec![0; 50]), Some(p)).await);
        let p2 = second.await;
        assert_eq!(p2.bytes(), 900);
        let f = rx.rx.recv().await.unwrap();
        rx.meter.written(f.frame.len(), f.answer_bytes());
        drop(f);
        assert_eq!(budget.shared.available(), 100);
        assert_eq!(budget.queued(), 0);
    }

    /// The reader's wait returns once the writer has drained the queue.
    #[tokio::test]
    async fn drained_below_follows_the_writer() {
        let budget = QueueBudget::new(1 << 20, 1 << 20, 1 << 20);
        let (o, mut rx) = outbox(4, &budget);
        o.push(&PushFrame::new(Bytes::from(vec![0; 5000])));
        let writer = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let f = rx.rx.recv().await.unwrap();
            rx.meter.written(f.frame.len(), f.answer_bytes());
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), o.drained_below(100))
            .await
            .unwrap();
        writer.await.unwrap();
    }
}
