//! The live-session registry: who is connected, who is authenticated as whom, and who is
//! subscribed to which chat.
//!
//! All state sits behind one `std::sync::Mutex` that is never held across an `.await`; every
//! operation is a short, synchronous update. Frames are handed to sessions with `try_send` on
//! their bounded queues: a subscriber whose queue is full is disconnected (its client
//! reconnects and catches up with GET_MESSAGES_SINCE), so a slow subscriber never slows a room.
//! Publishing is called from the store's after-commit hook, so pushes leave in commit order.

use bytes::Bytes;
use mediator_wire::PublicKey;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A session's outbound side as seen by everyone else.
#[derive(Debug)]
pub struct SessionHandle {
    pub id: u64,
    /// The remote node's identity: the Yggdrasil key in hex, or the UDP address.
    pub remote: String,
    pub connected_at: SystemTime,
    tx: mpsc::Sender<Bytes>,
    kill: CancellationToken,
    /// Pushes dropped because the queue was full (the session is then disconnected).
    pub overflowed: AtomicU64,
}

impl SessionHandle {
    pub fn new(id: u64, remote: String, tx: mpsc::Sender<Bytes>) -> Self {
        SessionHandle {
            id,
            remote,
            connected_at: SystemTime::now(),
            tx,
            kill: CancellationToken::new(),
            overflowed: AtomicU64::new(0),
        }
    }

    /// Resolves when the session has been told to end.
    pub fn killed(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.kill.cancelled()
    }

    /// Ends the session: its reader stops and its cleanup runs.
    pub fn kill(&self) {
        self.kill.cancel();
    }

    /// Frames waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Queues a push; on a full queue, disconnects the session (policy: never block a room).
    pub fn push(&self, frame: Bytes) {
        match self.tx.try_send(frame) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflowed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    session = self.id,
                    "send queue full, disconnecting slow session"
                );
                self.kill();
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

#[derive(Debug)]
struct Entry {
    handle: Arc<SessionHandle>,
    user: Option<PublicKey>,
    chats: HashSet<i64>,
}

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<u64, Entry>,
    chats: HashMap<i64, HashSet<u64>>,
    users: HashMap<PublicKey, HashSet<u64>>,
    by_addr: HashMap<(PublicKey, String), u64>,
    /// Live sessions per remote node, so the per-remote limit is checked without a scan.
    per_remote: HashMap<String, usize>,
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
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh session id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Sessions from one remote node.
    pub fn sessions_from(&self, remote: &str) -> usize {
        self.lock().per_remote.get(remote).copied().unwrap_or(0)
    }

    pub fn register(&self, handle: Arc<SessionHandle>) {
        let mut st = self.lock();
        let remote = handle.remote.clone();
        let entry = Entry {
            handle,
            user: None,
            chats: HashSet::new(),
        };
        if let Some(old) = st.sessions.insert(entry.handle.id, entry) {
            // Ids are unique; should one be registered twice, count it once.
            Self::uncount_remote(&mut st, &old.handle.remote);
        }
        *st.per_remote.entry(remote).or_default() += 1;
    }

    fn uncount_remote(st: &mut State, remote: &str) {
        if let Some(n) = st.per_remote.get_mut(remote) {
            *n -= 1;
            if *n == 0 {
                st.per_remote.remove(remote);
            }
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
        let Some(entry) = st.sessions.remove(&id) else {
            return Departure::default();
        };
        Self::uncount_remote(&mut st, &entry.handle.remote);
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
    pub fn authenticate(&self, id: u64, user: PublicKey) -> Authenticated {
        let mut st = self.lock();
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
        if let Some(subs) = st.chats.get(&chat) {
            for id in subs {
                if Some(*id) == except {
                    continue;
                }
                if let Some(e) = st.sessions.get(id) {
                    e.handle.push(frame.clone());
                }
            }
        }
    }

    /// Queues `frame` for every authenticated session of `user`; returns how many got it.
    pub fn send_to_user(&self, user: &PublicKey, frame: &Bytes) -> usize {
        let st = self.lock();
        let mut n = 0;
        if let Some(ids) = st.users.get(user) {
            for id in ids {
                if let Some(e) = st.sessions.get(id) {
                    e.handle.push(frame.clone());
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
                }
            })
            .collect();
        v.sort_by_key(|s| s.id);
        v
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

    fn session(hub: &Hub, remote: &str) -> (Arc<SessionHandle>, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(2);
        let h = Arc::new(SessionHandle::new(hub.next_id(), remote.into(), tx));
        hub.register(h.clone());
        (h, rx)
    }

    #[test]
    fn offline_only_for_last_session_of_user() {
        let hub = Hub::default();
        let (a, _ra) = session(&hub, "n1");
        let (b, _rb) = session(&hub, "n2");
        hub.authenticate(a.id, [1; 32]);
        hub.authenticate(b.id, [1; 32]);
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
        assert!(hub.authenticate(a.id, [1; 32]).replaced.is_none());
        let old = hub.authenticate(b.id, [1; 32]).replaced.unwrap();
        assert_eq!(old.id, a.id);
        hub.subscribe(b.id, 9);
        // The same key again keeps the subscriptions.
        assert!(hub.authenticate(b.id, [1; 32]).left.user.is_none());
        assert_eq!(hub.subscription_count(b.id), 1);
        let re = hub.authenticate(b.id, [2; 32]);
        assert_eq!(re.left.user, Some([1; 32]));
        assert_eq!(re.left.offline_chats, vec![9]);
        assert_eq!(hub.subscription_count(b.id), 0);
        assert_eq!(hub.subscribers(9), 0);
        assert_eq!(hub.send_to_user(&[1; 32], &Bytes::from_static(b"x")), 1);
        assert_eq!(hub.send_to_user(&[2; 32], &Bytes::from_static(b"x")), 1);
    }

    #[test]
    fn sessions_are_counted_per_remote() {
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
        assert!(hub.lock().per_remote.is_empty());
    }

    /// Publishing follows every change of a chat's subscribers.
    #[test]
    fn publish_follows_subscription_changes() {
        let hub = Hub::default();
        let (a, mut ra) = session(&hub, "n1");
        let (b, mut rb) = session(&hub, "n2");
        let got = |r: &mut mpsc::Receiver<Bytes>| {
            let mut v = Vec::new();
            while let Ok(f) = r.try_recv() {
                v.push(f[0]);
            }
            v
        };
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
        hub.authenticate(a.id, [1; 32]);
        hub.subscribe(a.id, 1);
        for _ in 0..3 {
            hub.publish(1, &Bytes::from_static(b"x"), None);
        }
        assert!(a.kill.is_cancelled());
        assert_eq!(a.overflowed.load(Ordering::Relaxed), 1);
    }
}
