//! The subscribed session of the `transports` benchmark and its exactly-once check. One task
//! owns the session and takes each push as it arrives, noting when; the senders note every
//! message the server acknowledged ([`Acked`]). At each checkpoint ([`Subscriber::settle`])
//! the subscriber waits until it holds as many messages as were acknowledged, PINGs (the
//! server answers a PING only after every push it queued for the session before it), and then
//! compares: every acknowledged message must have arrived exactly once, with its sender's
//! guid, author key and blob, and no other message may have (the server's own system
//! messages aside). Any difference fails the run.

use crate::client::{now_ns, BLOB_HEADER};
use anyhow::{anyhow, bail, Context, Result};
use mediator_client::{ClientError, Push, Session};
use mediator_wire::response::GotMessage;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often [`Subscriber::settle`] looks whether every acknowledged message has arrived.
const SETTLE_POLL: Duration = Duration::from_millis(2);
/// How long the subscriber task waits for a push before it looks whether the session ended.
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// Message ids (or bad pushes) a failure names at most.
const SHOWN_IDS: usize = 10;

/// What a sender knows of a message the server acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub guid: i64,
    pub author: [u8; 32],
    pub blob_hash: u64,
}

/// Acknowledged messages by message id.
pub type Acked = HashMap<i64, Sent>;

/// A hash of a message blob, to compare what was sent with what was pushed.
pub fn blob_hash(blob: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(blob);
    h.finish()
}

#[derive(Default)]
struct Inbox {
    /// User messages pushed, by message id.
    got: HashMap<i64, Sent>,
    /// Message ids pushed again.
    dups: Vec<i64>,
    /// Pushes that should not have come.
    bad: Vec<String>,
    /// send → push of each new message since the last [`Subscriber::take_latencies`].
    latencies: Vec<Duration>,
    /// Why the session ended, if it did.
    ended: Option<String>,
}

impl Inbox {
    fn note(&mut self, push: Push, at_ns: u64, chat: i64, server: &[u8; 32]) {
        let m = match push {
            Push::Message(m) => m,
            // SUBSCRIBE asks the new subscriber for its member info.
            Push::RequestMemberInfo(_) => return,
            other => return self.bad(format!("unexpected push {other:?}")),
        };
        let GotMessage { chat_id, message } = m;
        if chat_id != chat {
            return self.bad(format!("a message of chat {chat_id}, not {chat}"));
        }
        if message.author == *server {
            return; // a system message
        }
        if self.got.contains_key(&message.id) {
            self.dups.push(message.id);
            return;
        }
        if message.blob.len() >= BLOB_HEADER {
            let sent = u64::from_be_bytes(message.blob[16..24].try_into().expect("8 bytes"));
            self.latencies
                .push(Duration::from_nanos(at_ns.saturating_sub(sent)));
        }
        self.got.insert(
            message.id,
            Sent {
                guid: message.guid,
                author: message.author,
                blob_hash: blob_hash(&message.blob),
            },
        );
    }

    /// Fails unless exactly the messages of `acked` arrived, each once and as sent, and
    /// nothing unexpected.
    fn check(&self, acked: &Acked) -> Result<()> {
        if !self.bad.is_empty() {
            bail!("bad pushes: {}", self.bad.join("; "));
        }
        if !self.dups.is_empty() {
            bail!(
                "{} messages pushed more than once, ids {:?}",
                self.dups.len(),
                first(self.dups.iter().copied())
            );
        }
        let missing = acked.keys().filter(|id| !self.got.contains_key(id));
        let unknown = self.got.keys().filter(|id| !acked.contains_key(id));
        let (n_missing, n_unknown) = (missing.clone().count(), unknown.clone().count());
        if n_missing > 0 || n_unknown > 0 {
            bail!(
                "{n_missing} of {} acknowledged messages not pushed (ids {:?}), {n_unknown} \
                 pushed but never acknowledged (ids {:?})",
                acked.len(),
                first(missing.copied()),
                first(unknown.copied()),
            );
        }
        for (id, sent) in acked {
            let got = &self.got[id];
            if got != sent {
                bail!("message {id} was pushed as {got:?}, sent as {sent:?}");
            }
        }
        Ok(())
    }

    fn bad(&mut self, what: String) {
        if self.bad.len() < SHOWN_IDS {
            self.bad.push(what);
        }
    }
}

enum Ctl {
    Ping(oneshot::Sender<Result<(), ClientError>>),
    Close(oneshot::Sender<Session>),
}

/// The session subscribed to the benchmark's chat, run by a task of its own.
pub struct Subscriber {
    inbox: Arc<Mutex<Inbox>>,
    ctl: mpsc::Sender<Ctl>,
    task: JoinHandle<()>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(inbox: &Mutex<Inbox>) -> MutexGuard<'_, Inbox> {
    inbox.lock().unwrap_or_else(|p| p.into_inner())
}

impl Subscriber {
    /// Takes over `session`, already subscribed to `chat` of the mediator with key `server`.
    pub fn start(session: Session, chat: i64, server: [u8; 32]) -> Subscriber {
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let (ctl, rx) = mpsc::channel(1);
        let task = tokio::spawn(run(session, inbox.clone(), chat, server, rx));
        Subscriber { inbox, ctl, task }
    }

    /// The send → push latencies noted since the last call.
    pub fn take_latencies(&self) -> Vec<Duration> {
        std::mem::take(&mut lock(&self.inbox).latencies)
    }

    /// Waits (up to `wait`) for as many messages as `acked` holds, PINGs, and checks that
    /// exactly the messages of `acked` have arrived, each once and as sent.
    pub async fn settle(&self, acked: &Acked, wait: Duration) -> Result<()> {
        let deadline = Instant::now() + wait;
        loop {
            let (n, ended) = {
                let i = lock(&self.inbox);
                (i.got.len(), i.ended.clone())
            };
            if let Some(why) = ended {
                bail!("{why}, {n} of {} messages pushed", acked.len());
            }
            if n >= acked.len() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
        let (tx, rx) = oneshot::channel();
        self.ctl
            .send(Ctl::Ping(tx))
            .await
            .map_err(|_| anyhow!("the subscriber's task ended"))?;
        rx.await
            .map_err(|_| anyhow!("the subscriber's task ended"))?
            .context("PING on the subscriber's session")?;
        lock(&self.inbox).check(acked)
    }

    /// Ends the task and gives the session back (`None` if the task is gone).
    pub async fn close(self) -> Option<Session> {
        let (tx, rx) = oneshot::channel();
        self.ctl.send(Ctl::Close(tx)).await.ok()?;
        rx.await.ok()
    }
}

/// The smallest [`SHOWN_IDS`] ids.
fn first(ids: impl Iterator<Item = i64>) -> Vec<i64> {
    let mut v: Vec<i64> = ids.collect();
    v.sort_unstable();
    v.truncate(SHOWN_IDS);
    v
}

async fn run(
    mut s: Session,
    inbox: Arc<Mutex<Inbox>>,
    chat: i64,
    server: [u8; 32],
    mut ctl: mpsc::Receiver<Ctl>,
) {
    let mut live = true;
    loop {
        tokio::select! {
            p = s.next_push(IDLE_WAIT), if live => match p {
                Some(p) => lock(&inbox).note(p, now_ns(), chat, &server),
                None if s.is_closed() => {
                    live = false;
                    lock(&inbox).ended = Some("the server ended the subscriber's session".into());
                }
                None => {}
            },
            c = ctl.recv() => match c {
                None => return,
                Some(Ctl::Ping(reply)) => {
                    let r = s.ping().await;
                    // Pushes the reader queued before the answer; settle only pings once the
                    // count is complete, so these are late extras, if any.
                    let now = now_ns();
                    let mut i = lock(&inbox);
                    for p in s.drain_pushes() {
                        i.note(p, now, chat, &server);
                    }
                    drop(i);
                    let _ = reply.send(r);
                }
                Some(Ctl::Close(reply)) => {
                    let _ = reply.send(s);
                    return;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mediator_client::MessageRecord;

    const CHAT: i64 = 7;
    const SERVER: [u8; 32] = [9; 32];
    const AUTHOR: [u8; 32] = [1; 32];

    fn push(id: i64, author: [u8; 32], blob: &[u8]) -> Push {
        Push::Message(GotMessage {
            chat_id: CHAT,
            message: MessageRecord {
                id,
                guid: id * 10,
                timestamp: 0,
                author,
                blob: blob.to_vec(),
            },
        })
    }

    fn sent(id: i64, blob: &[u8]) -> Sent {
        Sent {
            guid: id * 10,
            author: AUTHOR,
            blob_hash: blob_hash(blob),
        }
    }

    /// Each acknowledged message once, as sent, plus a system message: accepted; a duplicate,
    /// a missing, an unknown or an altered message: refused.
    #[test]
    fn exactly_once_and_as_sent() {
        let blob = [5u8; 40];
        let acked: Acked = [(1, sent(1, &blob)), (2, sent(2, &blob))].into();
        let inbox = |pushes: Vec<Push>| {
            let mut i = Inbox::default();
            for p in pushes {
                i.note(p, now_ns(), CHAT, &SERVER);
            }
            i
        };
        let system = push(3, SERVER, b"member added");
        let ok = inbox(vec![push(1, AUTHOR, &blob), system, push(2, AUTHOR, &blob)]);
        ok.check(&acked).unwrap();
        assert_eq!(ok.latencies.len(), 2);

        let twice = inbox(vec![
            push(1, AUTHOR, &blob),
            push(2, AUTHOR, &blob),
            push(2, AUTHOR, &blob),
        ]);
        assert!(twice.check(&acked).is_err());
        let missing = inbox(vec![push(1, AUTHOR, &blob)]);
        assert!(missing.check(&acked).is_err());
        let unknown = inbox(vec![
            push(1, AUTHOR, &blob),
            push(2, AUTHOR, &blob),
            push(4, AUTHOR, &blob),
        ]);
        assert!(unknown.check(&acked).is_err());
        let altered = inbox(vec![push(1, AUTHOR, &blob), push(2, AUTHOR, &[6u8; 40])]);
        assert!(altered.check(&acked).is_err());
        let other_author = inbox(vec![push(1, AUTHOR, &blob), push(2, [2; 32], &blob)]);
        assert!(other_author.check(&acked).is_err());
    }
}
