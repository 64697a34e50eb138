//! Removing the messages of deleted chats. DELETE_CHAT (and `mediatorctl chats delete`)
//! removes a chat's row, members, settings and invites in one command and leaves its messages
//! (`Protocol::delete_chat`): removing them in that command held every other write for
//! 1.3 s per 100,000 messages (measured on SQLite). The [`sweeper`] task removes them
//! afterwards, `PURGE_BATCH` per write job with a pause between jobs, as retention does, so
//! a protocol write waits behind at most one batch; then it gives the freed pages back.
//!
//! Deleted chats reach the sweeper through [`DeletedChats`], filled after each deletion's
//! commit. A stop or a crash in the middle leaves messages behind: at start the sweeper looks
//! for chats that have messages but no row (`Retention::message_chats`, one index seek per
//! chat id) and removes theirs first. Meanwhile nothing reads them (every read of messages
//! goes through a chat or a membership) and their id is not given to a new chat.

use crate::retention::{give_back_space, in_batches};
use crate::store::retention as r;
use crate::store::{Reject, Store};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Deleted chats whose messages are still to be removed, from the deleting command to the
/// [`sweeper`]. Holds each id once; the sweeper empties it as it goes.
#[derive(Default)]
pub struct DeletedChats {
    pending: Mutex<BTreeSet<i64>>,
    wake: Notify,
}

impl DeletedChats {
    /// A chat was deleted (its deletion committed).
    pub fn push(&self, chat: i64) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(chat);
        self.wake.notify_one();
    }

    /// The chats deleted since the last call.
    fn take(&self) -> BTreeSet<i64> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Removes the messages of one deleted chat, a batch per write job; returns how many.
pub async fn sweep_chat(store: &Store, chat: i64, stop: &CancellationToken) -> Result<u64, Reject> {
    in_batches(store, stop, move |c| {
        c.sweep_deleted_chat(chat, r::PURGE_BATCH)
    })
    .await
}

/// Finds every chat that has messages but no row any more and removes those messages;
/// returns how many.
pub async fn sweep_leftovers(store: &Store, stop: &CancellationToken) -> Result<u64, Reject> {
    let (mut total, mut after) = (0u64, i64::MIN);
    loop {
        let scanned = store
            .read(move |c| Ok(c.message_chats(after, r::CHATS_PER_SCAN)?))
            .await?;
        for &(chat, exists) in &scanned {
            if !exists {
                total += sweep_chat(store, chat, stop).await?;
            }
        }
        match scanned.last() {
            Some(&(last, _)) if scanned.len() == r::CHATS_PER_SCAN as usize => after = last,
            _ => return Ok(total),
        }
        if stop.is_cancelled() {
            return Ok(total);
        }
    }
}

/// The sweeper task: the leftovers of an earlier run first, then each chat as it is
/// deleted, until `stop`.
pub async fn sweeper(store: Store, deleted: Arc<DeletedChats>, stop: CancellationToken) {
    let report = |what: &str, done: Result<u64, Reject>| match done {
        Ok(0) => {}
        Ok(n) => tracing::info!(messages = n, "{what}: messages of deleted chats removed"),
        Err(e) => tracing::warn!(error = %e, "{what}: removing the messages of deleted chats"),
    };
    let give_back = || async {
        if let Err(e) = give_back_space(&store, &stop).await {
            tracing::warn!(error = %e, "giving back the space of deleted chats");
        }
    };
    let removed = sweep_leftovers(&store, &stop).await;
    if matches!(removed, Ok(n) if n > 0) {
        give_back().await;
    }
    report("at start", removed);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = deleted.wake.notified() => {}
        }
        let mut removed = Ok(0);
        for chat in deleted.take() {
            removed = match (removed, sweep_chat(&store, chat, &stop).await) {
                (Ok(a), Ok(b)) => Ok(a + b),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
        }
        give_back().await;
        report("after a deletion", removed);
    }
}
