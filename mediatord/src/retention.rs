//! Retention: the daemon's side of `[retention]` and of `mediatorctl messages purge`. It
//! repeats the store's batch jobs (`store::retention`) until nothing is left to remove,
//! pausing between batches so that protocol writes are never queued behind more than one
//! batch, then gives the freed pages back to the file system the same way.
//!
//! Removal is silent, as in a server that keeps a window of history: no system message, no
//! push; members' apps keep the copies they have, and a later sync returns what remains.

use crate::config::RetentionSection;
use crate::store::prelude::*;
use crate::store::retention as r;
use crate::store::{Reject, Store};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Pause between two batches of one purge: lets queued protocol writes and the checkpointer
/// run (a batch takes a few milliseconds of writer time).
pub const BATCH_PAUSE: Duration = Duration::from_millis(2);

/// What one pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// Messages past `max_age` (or the purge's cutoff).
    pub by_age: u64,
    /// Messages beyond a chat's count or size limit.
    pub by_limit: u64,
    /// Bytes given back to the file system.
    pub bytes_freed: u64,
}

impl Removed {
    pub fn messages(&self) -> u64 {
        self.by_age + self.by_limit
    }
}

/// Removes every message stamped before `before` (Unix seconds), in one chat or all, a batch
/// at a time; stops early (keeping what it removed) when `stop` is cancelled.
pub async fn purge_older(
    store: &Store,
    chat: Option<i64>,
    before: i64,
    stop: &CancellationToken,
) -> Result<u64, Reject> {
    in_batches(store, stop, move |c| {
        c.purge_older(chat, before, r::PURGE_BATCH)
    })
    .await
}

/// Runs `batch` (which removes at most [`r::PURGE_BATCH`] rows) on the writer, pausing
/// [`BATCH_PAUSE`] between runs, until a run removes fewer (nothing left) or `stop` is
/// cancelled; returns how many rows all runs removed.
pub(crate) async fn in_batches<F>(
    store: &Store,
    stop: &CancellationToken,
    batch: F,
) -> Result<u64, Reject>
where
    F: Fn(&dyn Db) -> crate::store::queries::DbResult<usize> + Clone + Send + 'static,
{
    let mut total = 0u64;
    loop {
        let run = batch.clone();
        let n = store.write(move |c| Ok(run(c)?)).await?;
        total += n as u64;
        if n < r::PURGE_BATCH as usize || stop.is_cancelled() {
            return Ok(total);
        }
        tokio::time::sleep(BATCH_PAUSE).await;
    }
}

/// Trims every chat over `max_messages` or `max_bytes` to its limits.
async fn trim_chats(
    store: &Store,
    max_messages: Option<u64>,
    max_bytes: Option<u64>,
    stop: &CancellationToken,
) -> Result<u64, Reject> {
    let (mut total, mut after) = (0u64, 0i64);
    loop {
        let over = store
            .read(move |c| Ok(c.chats_over(max_messages, max_bytes, after, r::CHATS_PER_PASS)?))
            .await?;
        for o in &over {
            let chat = o.chat;
            total += in_batches(store, stop, move |c| {
                c.trim_chat(chat, max_messages, max_bytes, r::PURGE_BATCH)
            })
            .await?;
        }
        match over.last() {
            Some(last) if over.len() == r::CHATS_PER_PASS as usize && !stop.is_cancelled() => {
                after = last.chat
            }
            _ => return Ok(total),
        }
    }
}

/// Gives free pages back to the file system, a step at a time, once there are enough of
/// them to be worth it; returns how many bytes.
pub async fn give_back_space(store: &Store, stop: &CancellationToken) -> Result<u64, Reject> {
    let page = store.read(|c| Ok(c.page_size()?)).await?;
    let mut total = 0u64;
    loop {
        let free = store.read(|c| Ok(c.free_pages()?)).await?;
        if free < r::VACUUM_MIN_FREE_PAGES || stop.is_cancelled() {
            return Ok(total * page);
        }
        let n = store
            .write(|c| Ok(c.vacuum_step(r::VACUUM_STEP_PAGES)?))
            .await?;
        if n == 0 {
            // A file without incremental auto-vacuum keeps its free pages for reuse.
            return Ok(total * page);
        }
        total += u64::from(n);
        tokio::time::sleep(BATCH_PAUSE).await;
    }
}

/// One pass of the configured policy at time `now` (Unix seconds): age first, then the
/// per-chat limits, then space.
pub async fn apply(
    store: &Store,
    policy: &RetentionSection,
    now: i64,
    stop: &CancellationToken,
) -> Result<Removed, Reject> {
    let mut done = Removed::default();
    if let Some(age) = policy.max_age {
        let before = now.saturating_sub(i64::try_from(age).unwrap_or(i64::MAX));
        done.by_age = purge_older(store, None, before, stop).await?;
    }
    if policy.max_messages_per_chat.is_some() || policy.max_bytes_per_chat.is_some() {
        done.by_limit = trim_chats(
            store,
            policy.max_messages_per_chat,
            policy.max_bytes_per_chat,
            stop,
        )
        .await?;
    }
    done.bytes_freed = give_back_space(store, stop).await?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with chats 1 and 2, `per` messages of `size` bytes each, message i of each
    /// stamped at second i.
    async fn store(dir: &std::path::Path, per: i64, size: usize) -> Store {
        let store = Store::open(&dir.join("m.db")).unwrap();
        store
            .write(move |c| {
                for chat in 1..=2 {
                    c.as_sqlite().unwrap().execute(
                        "INSERT INTO chats (id, owner, created_at) VALUES (?1, X'01', 0)",
                        [chat],
                    )?;
                    for i in 1..=per {
                        c.insert_message(chat, i, &[1], &vec![7u8; size], i)?;
                    }
                }
                Ok(())
            })
            .await
            .unwrap();
        store
    }

    async fn counts(store: &Store) -> Vec<(i64, i64, i64)> {
        store
            .read(|c| {
                let mut st = c.as_sqlite().unwrap().prepare(
                    "SELECT chat_id, COUNT(*), MIN(id) FROM messages GROUP BY chat_id ORDER BY chat_id",
                )?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_policy_pass_removes_by_age_then_by_limits_and_frees_space() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), 1200, 1000).await;
        let stop = CancellationToken::new();
        let policy = RetentionSection {
            max_age: Some(1000),
            max_messages_per_chat: Some(150),
            max_bytes_per_chat: None,
        };
        // At second 1,100, messages 1..=99 of each chat are past 1,000 s; then each chat
        // keeps its newest 150 of the 1,101 left.
        let done = apply(&store, &policy, 1100, &stop).await.unwrap();
        assert_eq!(done.by_age, 2 * 99);
        assert_eq!(done.by_limit, 2 * (1101 - 150));
        assert!(done.bytes_freed > 1_600_000, "{done:?}");
        assert_eq!(counts(&store).await, vec![(1, 150, 1051), (2, 150, 1051)]);
        // A second pass finds nothing to do.
        let again = apply(&store, &policy, 1100, &stop).await.unwrap();
        assert_eq!(again, Removed::default());
        store.shutdown();
    }

    #[tokio::test]
    async fn an_operator_purge_takes_one_chat_and_counts_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), 1200, 10).await;
        let stop = CancellationToken::new();
        let n = purge_older(&store, Some(2), 1101, &stop).await.unwrap();
        assert_eq!(n, 1100, "more than two batches");
        assert_eq!(counts(&store).await, vec![(1, 1200, 1), (2, 100, 1101)]);
        store.shutdown();
    }
}
