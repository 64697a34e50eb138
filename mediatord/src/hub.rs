//! The live-session registry: who is connected, who is authenticated as whom, and who is
//! subscribed to which chat.
//!
//! All state sits behind one `std::sync::Mutex` that is never held across an `.await`; every
//! operation is a short, synchronous update. Frames are handed to sessions with `try_send` on
//! their bounded queues: a subscriber whose queue is full is disconnected (its client
//! reconnects and catches up with GET_MESSAGES_SINCE), so a slow subscriber never slows a room.
//! Publishing is called from the store's after-commit hook, so pushes leave in commit order.

use crate::limits::Limits;
pub use crate::outbox::Outbox as SessionHandle;
use crate::outbox::{OutboxReceiver, PushFrame, QueueBudget};
use crate::peer::{Peer, Transport};
use bytes::Bytes;
use mediator_wire::PublicKey;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// A session's place in the order of who gives way when the daemon is full: sessions that
/// have not authenticated go first, then those authenticated as a key that belongs to no
/// chat and holds no invite; members of chats are never pushed out by newcomers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Guest,
    Stranger,
    Member,
}

/// Why a new session was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many sessions from this source")]
    SourceFull,
    #[error("too many unauthenticated sessions from this source")]
    SourceGuestsFull,
    #[error("too many unauthenticated sessions")]
    GuestsFull,
    #[error("session limit reached and every session belongs to a member")]
    Full,
}

/// Sessions of one source.
#[derive(Debug, Default, Clone, Copy)]
struct SourceCount {
    sessions: usize,
    guests: usize,
}

#[derive(Debug)]
struct Entry {
    handle: Arc<SessionHandle>,
    user: Option<PublicKey>,
    tier: Tier,
    chats: HashSet<i64>,
}

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<u64, Entry>,
    chats: HashMap<i64, HashSet<u64>>,
    users: HashMap<PublicKey, HashSet<u64>>,
    by_addr: HashMap<(PublicKey, String), u64>,
    /// Live sessions per source, so per-source limits are checked without a scan.
    per_source: HashMap<String, SourceCount>,
    /// Sessions that may give way at the global cap, oldest (lowest id) first.
    guests: BTreeSet<u64>,
    strangers: BTreeSet<u64>,
}

/// A snapshot of one session, for the control API.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: u64,
    pub remote: String,
    pub user: Option<PublicKey>,
    pub chats: Vec<i64>,
    pub connected_at: SystemTime,
    pub queue_depth: usize,
    pub transport: Transport,
}

/// What ending a session leaves to do: offline events for the chats where this was the
/// user's last subscribed session.
#[derive(Debug, Default)]
pub struct Departure {
    pub user: Option<PublicKey>,
    pub offline_chats: Vec<i64>,
}

/// What a successful AUTH changed: the session it replaced, and where the session's previous
/// identity (after a re-AUTH as another key) is now offline.
#[derive(Debug, Default)]
pub struct Authenticated {
    pub replaced: Option<Arc<SessionHandle>>,
    pub left: Departure,
}

/// The registry. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Hub {
    state: Arc<Mutex<State>>,
    next_id: Arc<AtomicU64>,
    /// Bytes queued for all sessions ([`Limits::max_queued_bytes`]).
    pub budget: QueueBudget,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A hub whose queues are bounded by `limits`.
    pub fn new(limits: &Limits) -> Hub {
        Hub {
            budget: QueueBudget::new(
                limits.max_queued_bytes,
                limits.max_queued_bytes_per_source,
                limits.max_session_queue_bytes,
            ),
            ..Hub::default()
        }
    }

    /// Live sessions.
    pub fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Live sessions that have not authenticated.
    pub fn guest_count(&self) -> usize {
        self.lock().guests.len()
    }

    /// Live sessions by transport and by whether they have authenticated.
    pub fn census(&self) -> HashMap<(Transport, bool), usize> {
        let st = self.lock();
        let mut counts = HashMap::new();
        for e in st.sessions.values() {
            *counts
                .entry((e.handle.transport, e.user.is_some()))
                .or_default() += 1;
        }
        counts
    }

    /// Subscriptions of all sessions (a session subscribed to three chats counts three).
    pub fn subscription_total(&self) -> usize {
        self.lock().chats.values().map(HashSet::len).sum()
    }

    /// Sessions from one source.
    pub fn sessions_from(&self, source: &str) -> usize {
        self.lock().per_source.get(source).map_or(0, |c| c.sessions)
    }

    /// Opens a session from `peer` (its remote shown to operators, counted under its source), if the
    /// limits allow: per source, sessions and unauthenticated sessions are capped; in
    /// total, unauthenticated sessions are capped, and at [`Limits::max_sessions`] the new
    /// session takes the place of the oldest guest, or else the oldest stranger (which is
    /// told to end), or is refused when every session belongs to a member.
    pub fn admit(
        &self,
        peer: Peer,
        limits: &Limits,
    ) -> Result<(Arc<SessionHandle>, OutboxReceiver), Refusal> {
        let mut st = self.lock();
        let count = st.per_source.get(&peer.source).copied().unwrap_or_default();
        if count.sessions >= limits.max_sessions_per_source {
            return Err(Refusal::SourceFull);
        }
        if count.guests >= limits.max_guest_sessions_per_source {
            return Err(Refusal::SourceGuestsFull);
        }
        if st.guests.len() >= limits.max_guest_sessions {
            return Err(Refusal::GuestsFull);
        }
        if st.sessions.len() >= limits.max_sessions {
            let victim = st.guests.pop_first().or_else(|| st.strangers.pop_first());
            let Some(victim) = victim else {
                return Err(Refusal::Full);
            };
            if let Some(e) = st.sessions.get(&victim) {
                crate::events::note(
                    crate::events::Event::SessionEvicted,
                    &e.handle.source,
                    "session limit reached; a newcomer took its place",
                );
                e.handle.kill();
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let source = peer.source.clone();
        let (handle, rx) = SessionHandle::new(id, peer, limits.session_queue, self.budget.clone());
        st.sessions.insert(
            id,
            Entry {
                handle: handle.clone(),
                user: None,
                tier: Tier::Guest,
                chats: HashSet::new(),
            },
        );
        st.guests.insert(id);
        let c = st.per_source.entry(source).or_default();
        c.sessions += 1;
        c.guests += 1;
        Ok((handle, rx))
    }

    /// Moves session `id` to `tier`, keeping the eviction sets and guest counts in step, and
    /// tells its transport when it becomes a member's or stops being one.
    fn set_tier(st: &mut State, id: u64, tier: Tier) {
        if let Some(e) = st.sessions.get(&id) {
            if (e.tier == Tier::Member) != (tier == Tier::Member) {
                e.handle.set_member(tier == Tier::Member);
            }
        }
        Self::move_tier(st, id, tier);
    }

    /// Moves session `id` to `tier` in the eviction sets and guest counts only.
    fn move_tier(st: &mut State, id: u64, tier: Tier) {
        let Some(e) = st.sessions.get_mut(&id) else {
            return;
        };
        let (old, source) = (e.tier, e.handle.source.clone());
        e.tier = tier;
        if old == tier {
            return;
        }
        match old {
            Tier::Guest => {
                st.guests.remove(&id);
                if let Some(c) = st.per_source.get_mut(&source) {
                    c.guests -= 1;
                }
            }
            Tier::Stranger => {
                st.strangers.remove(&id);
            }
            Tier::Member => {}
        }
        if tier == Tier::Stranger {
            st.strangers.insert(id);
        }
    }

    /// Marks every session of `user` as a member's (after it created or joined a chat, or
    /// was added to one), so that none of them gives way at the session cap any more.
    pub fn establish(&self, user: &PublicKey) {
        let mut st = self.lock();
        let ids: Vec<u64> = st.users.get(user).into_iter().flatten().copied().collect();
        for id in ids {
            Self::set_tier(&mut st, id, Tier::Member);
        }
    }

    fn user_subscribed(st: &State, chat: i64, user: &PublicKey, except: u64) -> bool {
        st.chats.get(&chat).is_some_and(|subs| {
            subs.iter().any(|sid| {
                *sid != except && st.sessions.get(sid).and_then(|e| e.user.as_ref()) == Some(user)
            })
        })
    }

    fn forget_user(st: &mut State, id: u64, user: &PublicKey, remote: &str) {
        if let Some(set) = st.users.get_mut(user) {
            set.remove(&id);
            if set.is_empty() {
                st.users.remove(user);
            }
        }
        let key = (*user, remote.to_string());
        if st.by_addr.get(&key) == Some(&id) {
            st.by_addr.remove(&key);
        }
    }

    /// Removes a session. Returns the chats for which an offline event is due (C8: only where
    /// no other session of the same user is still subscribed).
    pub fn unregister(&self, id: u64) -> Departure {
        let mut st = self.lock();
        // Out of the eviction sets (Member is in none). A member's session tells its
        // transport it is gone: a QUIC connection may go on carrying other sessions.
        if let Some(e) = st.sessions.get(&id) {
            if e.tier == Tier::Member {
                e.handle.set_member(false);
            }
        }
        Self::move_tier(&mut st, id, Tier::Member);
        let Some(entry) = st.sessions.remove(&id) else {
            return Departure::default();
        };
        if let Some(c) = st.per_source.get_mut(&entry.handle.source) {
            c.sessions -= 1;
            if c.sessions == 0 {
                st.per_source.remove(&entry.handle.source);
            }
        }
        for chat in &entry.chats {
            Self::drop_subscriber(&mut st, *chat, id);
        }
        let mut offline = Vec::new();
        if let Some(user) = &entry.user {
            Self::forget_user(&mut st, id, user, &entry.handle.remote);
            for chat in &entry.chats {
                if !Self::user_subscribed(&st, *chat, user, id) {
                    offline.push(*chat);
                }
            }
        }
        offline.sort_unstable();
        Departure {
            user: entry.user,
            offline_chats: offline,
        }
    }

    /// Records a successful AUTH. A session of the same user from the same remote node is
    /// replaced: it is returned so the caller can end it (C6). A re-AUTH as another key drops
    /// the previous identity's registrations and every subscription the session holds (C7): a
    /// banned member cannot keep a chat's pushes by logging in as a throwaway key. The
    /// returned departure says where the previous identity is now offline.
    pub fn authenticate(&self, id: u64, user: PublicKey, established: bool) -> Authenticated {
        let mut st = self.lock();
        let tier = if established {
            Tier::Member
        } else {
            Tier::Stranger
        };
        Self::set_tier(&mut st, id, tier);
        let (remote, previous) = match st.sessions.get(&id) {
            Some(e) => (e.handle.remote.clone(), e.user),
            None => return Authenticated::default(),
        };
        let mut left = Departure::default();
        if let Some(prev) = previous.filter(|p| *p != user) {
            Self::forget_user(&mut st, id, &prev, &remote);
            let chats = st
                .sessions
                .get_mut(&id)
                .map(|e| std::mem::take(&mut e.chats))
                .unwrap_or_default();
            for chat in &chats {
                Self::drop_subscriber(&mut st, *chat, id);
                if !Self::user_subscribed(&st, *chat, &prev, id) {
                    left.offline_chats.push(*chat);
                }
            }
            left.offline_chats.sort_unstable();
            left.user = Some(prev);
        }
        if let Some(e) = st.sessions.get_mut(&id) {
            e.user = Some(user);
        }
        st.users.entry(user).or_default().insert(id);
        let old = st.by_addr.insert((user, remote), id);
        let replaced = match old {
            Some(old) if old != id => st.sessions.get(&old).map(|e| e.handle.clone()),
            _ => None,
        };
        Authenticated { replaced, left }
    }

    /// Removes session `id` from `chat`'s subscribers.
    fn drop_subscriber(st: &mut State, chat: i64, id: u64) {
        if let Some(subs) = st.chats.get_mut(&chat) {
            subs.remove(&id);
            if subs.is_empty() {
                st.chats.remove(&chat);
            }
        }
    }

    pub fn subscription_count(&self, id: u64) -> usize {
        self.lock().sessions.get(&id).map_or(0, |e| e.chats.len())
    }

    pub fn subscribe(&self, id: u64, chat: i64) {
        let mut st = self.lock();
        if let Some(e) = st.sessions.get_mut(&id) {
            e.chats.insert(chat);
            st.chats.entry(chat).or_default().insert(id);
        }
    }

    pub fn unsubscribe(&self, id: u64, chat: i64) {
        let mut st = self.lock();
        if let Some(e) = st.sessions.get_mut(&id) {
            e.chats.remove(&chat);
        }
        Self::drop_subscriber(&mut st, chat, id);
    }

    /// Removes every session of `user` from `chat` (after a ban or a leave).
    pub fn unsubscribe_user(&self, chat: i64, user: &PublicKey) {
        let ids: Vec<u64> = {
            let st = self.lock();
            st.chats
                .get(&chat)
                .map(|subs| {
                    subs.iter()
                        .copied()
                        .filter(|sid| {
                            st.sessions.get(sid).and_then(|e| e.user.as_ref()) == Some(user)
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        for id in ids {
            self.unsubscribe(id, chat);
        }
    }

    /// Forgets every subscription to a deleted chat (C10).
    pub fn drop_chat(&self, chat: i64) {
        let mut st = self.lock();
        if let Some(subs) = st.chats.remove(&chat) {
            for id in subs {
                if let Some(e) = st.sessions.get_mut(&id) {
                    e.chats.remove(&chat);
                }
            }
        }
    }

    /// Queues `frame` for every subscriber of `chat` except session `except`.
    pub fn publish(&self, chat: i64, frame: &Bytes, except: Option<u64>) {
        let st = self.lock();
        let frame = PushFrame::new(frame.clone());
        if let Some(subs) = st.chats.get(&chat) {
            for id in subs {
                if Some(*id) == except {
                    continue;
                }
                if let Some(e) = st.sessions.get(id) {
                    e.handle.push(&frame);
                }
            }
        }
    }

    /// Queues `frame` for every authenticated session of `user`; returns how many got it.
    pub fn send_to_user(&self, user: &PublicKey, frame: &Bytes) -> usize {
        let st = self.lock();
        let frame = PushFrame::new(frame.clone());
        let mut n = 0;
        if let Some(ids) = st.users.get(user) {
            for id in ids {
                if let Some(e) = st.sessions.get(id) {
                    e.handle.push(&frame);
                    n += 1;
                }
            }
        }
        n
    }

    /// Whether any authenticated session of `user` is subscribed to `chat`.
    pub fn online(&self, chat: i64, user: &PublicKey) -> bool {
        let st = self.lock();
        Self::user_subscribed(&st, chat, user, 0)
    }

    /// Number of sessions subscribed to `chat`.
    pub fn subscribers(&self, chat: i64) -> usize {
        self.lock().chats.get(&chat).map_or(0, HashSet::len)
    }

    /// Every live session.
    pub fn snapshot(&self) -> Vec<SessionInfo> {
        let st = self.lock();
        let mut v: Vec<SessionInfo> = st
            .sessions
            .values()
            .map(|e| {
                let mut chats: Vec<i64> = e.chats.iter().copied().collect();
                chats.sort_unstable();
                SessionInfo {
                    id: e.handle.id,
                    remote: e.handle.remote.clone(),
                    user: e.user,
                    chats,
                    connected_at: e.handle.connected_at,
                    queue_depth: e.handle.queue_depth(),
                    transport: e.handle.transport,
                }
            })
            .collect();
        v.sort_by_key(|s| s.id);
        v
    }

    /// Tells every session matching `pick` to end; returns how many.
    fn kill_where(&self, pick: impl Fn(&Entry) -> bool) -> usize {
        let st = self.lock();
        let mut n = 0;
        for e in st.sessions.values().filter(|e| pick(e)) {
            e.handle.kill();
            n += 1;
        }
        n
    }

    /// Tells the session `id` to end; whether there was one.
    pub fn kill_session(&self, id: u64) -> bool {
        self.kill_where(|e| e.handle.id == id) > 0
    }

    /// Tells every session authenticated as `user` to end; returns how many.
    pub fn kill_user(&self, user: &PublicKey) -> usize {
        self.kill_where(|e| e.user.as_ref() == Some(user))
    }

    /// Tells every session from `source` to end; returns how many.
    pub fn kill_source(&self, source: &str) -> usize {
        self.kill_where(|e| e.handle.source == source)
    }

    /// Tells every session to end.
    pub fn kill_all(&self) {
        for e in self.lock().sessions.values() {
            e.handle.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            session_queue: 2,
            ..Limits::default()
        }
    }

    fn session(hub: &Hub, source: &str) -> (Arc<SessionHandle>, OutboxReceiver) {
        hub.admit(Peer::quic(format!("{source}:1"), source), &limits())
            .unwrap()
    }

    fn got(r: &mut OutboxReceiver) -> Vec<u8> {
        let mut v = Vec::new();
        while let Ok(f) = r.try_recv() {
            v.push(f.frame[0]);
        }
        v
    }

    #[test]
    fn offline_only_for_last_session_of_user() {
        let hub = Hub::default();
        let (a, _ra) = session(&hub, "n1");
        let (b, _rb) = session(&hub, "n2");
        hub.authenticate(a.id, [1; 32], true);
        hub.authenticate(b.id, [1; 32], true);
        hub.subscribe(a.id, 7);
        hub.subscribe(b.id, 7);
        hub.subscribe(a.id, 8);
        assert!(hub.online(7, &[1; 32]));
        let d = hub.unregister(a.id);
        assert_eq!(d.offline_chats, vec![8]);
        let d = hub.unregister(b.id);
        assert_eq!(d.offline_chats, vec![7]);
        assert!(!hub.online(7, &[1; 32]));
    }

    #[test]
    fn same_user_same_remote_replaces_and_reauth_forgets() {
        let hub = Hub::default();
        let (a, _ra) = session(&hub, "n1");
        let (b, _rb) = session(&hub, "n1");
        assert!(hub.authenticate(a.id, [1; 32], false).replaced.is_none());
        let old = hub.authenticate(b.id, [1; 32], false).replaced.unwrap();
        assert_eq!(old.id, a.id);
        hub.subscribe(b.id, 9);
        // The same key again keeps the subscriptions.
        assert!(hub.authenticate(b.id, [1; 32], false).left.user.is_none());
        assert_eq!(hub.subscription_count(b.id), 1);
        let re = hub.authenticate(b.id, [2; 32], false);
        assert_eq!(re.left.user, Some([1; 32]));
        assert_eq!(re.left.offline_chats, vec![9]);
        assert_eq!(hub.subscription_count(b.id), 0);
        assert_eq!(hub.subscribers(9), 0);
        assert_eq!(hub.send_to_user(&[1; 32], &Bytes::from_static(b"x")), 1);
        assert_eq!(hub.send_to_user(&[2; 32], &Bytes::from_static(b"x")), 1);
    }

    #[test]
    fn sessions_are_counted_per_source() {
        let hub = Hub::default();
        let (a, _ra) = session(&hub, "n1");
        let (b, _rb) = session(&hub, "n1");
        let (c, _rc) = session(&hub, "n2");
        assert_eq!((hub.sessions_from("n1"), hub.sessions_from("n2")), (2, 1));
        hub.unregister(a.id);
        hub.unregister(a.id);
        assert_eq!((hub.sessions_from("n1"), hub.sessions_from("n2")), (1, 1));
        hub.unregister(b.id);
        hub.unregister(c.id);
        assert_eq!((hub.sessions_from("n1"), hub.sessions_from("n3")), (0, 0));
        assert!(hub.lock().per_source.is_empty());
    }

    /// Per-source caps refuse; at the global cap a newcomer takes the place of the oldest
    /// guest, then of the oldest stranger, and never of a member.
    #[test]
    fn admission_caps_and_who_gives_way() {
        let hub = Hub::default();
        let l = Limits {
            max_sessions: 4,
            max_sessions_per_source: 3,
            max_guest_sessions_per_source: 2,
            max_guest_sessions: 3,
            ..Limits::default()
        };
        let open = |src: &str| hub.admit(Peer::quic("r", src), &l);
        let (g1, _r1) = open("a").unwrap();
        let (g2, _r2) = open("a").unwrap();
        assert_eq!(open("a").unwrap_err(), Refusal::SourceGuestsFull);
        hub.authenticate(g1.id, [1; 32], true);
        let (g3, _r3) = open("a").unwrap();
        assert_eq!(open("a").unwrap_err(), Refusal::SourceFull);
        let (g4, _r4) = open("b").unwrap();
        assert_eq!(open("c").unwrap_err(), Refusal::GuestsFull);
        // Four sessions: a member (g1) and three guests. A newcomer evicts the oldest guest.
        hub.authenticate(g2.id, [2; 32], false);
        hub.authenticate(g3.id, [3; 32], true);
        let (_n1, _rn1) = open("c").unwrap();
        assert!(g4.is_killed(), "the oldest guest gave way");
        hub.unregister(g4.id);
        let (_n2, _rn2) = open("d").unwrap();
        // No guest left older than the newcomers' own... they are guests too: n1 goes.
        assert!(_n1.is_killed());
        hub.unregister(_n1.id);
        hub.authenticate(_n2.id, [4; 32], true);
        let (_n3, _rn3) = open("e").unwrap();
        assert!(g2.is_killed(), "then the oldest stranger");
        hub.unregister(g2.id);
        hub.authenticate(_n3.id, [5; 32], true);
        assert_eq!(
            open("f").unwrap_err(),
            Refusal::Full,
            "members never give way"
        );
        assert!(!g1.is_killed() && !g3.is_killed());
        hub.establish(&[9; 32]);
        assert_eq!(hub.guest_count(), 0);
    }

    /// The transport hears when its session becomes a member's and when it stops being one
    /// (a re-AUTH as a stranger, or the end of a member's session), once per change.
    #[test]
    fn the_member_hook_follows_the_tier() {
        let hub = Hub::default();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let log = heard.clone();
        let peer = Peer {
            member_hook: Some(crate::peer::MemberHook(Arc::new(move |m| {
                log.lock().unwrap().push(m)
            }))),
            ..Peer::quic("r", "a")
        };
        let (s, _rx) = hub.admit(peer, &Limits::default()).unwrap();
        hub.authenticate(s.id, [1; 32], false);
        hub.establish(&[1; 32]);
        hub.establish(&[1; 32]);
        hub.authenticate(s.id, [2; 32], false);
        hub.authenticate(s.id, [3; 32], true);
        hub.unregister(s.id);
        assert_eq!(*heard.lock().unwrap(), [true, false, true, false]);
    }

    /// Publishing follows every change of a chat's subscribers.
    #[test]
    fn publish_follows_subscription_changes() {
        let hub = Hub::default();
        let (a, mut ra) = session(&hub, "n1");
        let (b, mut rb) = session(&hub, "n2");
        let publish = |n: u8, except| hub.publish(5, &Bytes::from(vec![n]), except);
        publish(0, None);
        hub.subscribe(a.id, 5);
        publish(1, None);
        hub.subscribe(b.id, 5);
        publish(2, Some(a.id));
        assert_eq!((got(&mut ra), got(&mut rb)), (vec![1], vec![2]));
        hub.unsubscribe(a.id, 5);
        publish(3, None);
        hub.subscribe(a.id, 5);
        hub.unregister(b.id);
        publish(4, None);
        assert_eq!((got(&mut ra), got(&mut rb)), (vec![4], vec![3]));
        hub.drop_chat(5);
        publish(5, None);
        assert_eq!(got(&mut ra), Vec::<u8>::new());
    }

    #[test]
    fn full_queue_kills_session() {
        let hub = Hub::default();
        let (a, _ra) = session(&hub, "n1");
        hub.authenticate(a.id, [1; 32], true);
        hub.subscribe(a.id, 1);
        for _ in 0..3 {
            hub.publish(1, &Bytes::from_static(b"x"), None);
        }
        assert!(a.is_killed());
        assert_eq!(a.overflowed.load(Ordering::Relaxed), 1);
    }
}
