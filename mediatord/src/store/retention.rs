//! Retention in storage: deleting old messages a bounded batch at a time and giving the freed
//! pages back to the file system. Each function here is one short write job; the daemon's
//! janitor and `mediatorctl messages purge` (`crate::retention`) repeat them, so other writes
//! interleave between batches and the writer never stalls behind a large purge.
//!
//! Messages past an age are found through `messages_ts`, chats over a count or size through
//! the counters the triggers keep in `chats` (see [`super::schema`]); nothing scans the
//! messages table. Deleted messages leave no trace: ids are never reused (the chat's counter
//! lives in `chats`), and a client syncing from a purged id gets the messages that remain
//! after it, as GET_MESSAGES_SINCE answers from the first id above the one asked for.
//!
//! Space: new files are created with `auto_vacuum = INCREMENTAL` (older ones are rewritten
//! once when upgraded to version 7), so [`Retention::vacuum_step`] moves free pages to the end of the
//! file and truncates them; in WAL mode the file shrinks when the next checkpoint completes.

use super::queries::DbResult;

/// Messages deleted per write job: about 1 MiB of WAL for 1 KiB messages, a few
/// milliseconds of writer time, so protocol writes wait at most that long behind a purge.
pub const PURGE_BATCH: u32 = 500;

/// Pages given back per write job by [`Retention::vacuum_step`] (4 KiB each: 1 MiB), each moved from
/// the end of the file into a free slot: a few milliseconds of writer time.
pub const VACUUM_STEP_PAGES: u32 = 256;

/// Free pages below which vacuuming is not worth a write job (1 MiB).
pub const VACUUM_MIN_FREE_PAGES: u32 = 256;

/// Chats over a limit examined per pass of [`Retention::chats_over`].
pub const CHATS_PER_PASS: u32 = 64;

/// Chat ids looked at per read of [`Retention::message_chats`] (one index seek each), while
/// looking for the messages of deleted chats left by a previous run.
pub const CHATS_PER_SCAN: u32 = 1024;

/// A chat over a per-chat limit, with its counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverLimit {
    pub chat: i64,
    pub messages: u64,
    pub bytes: u64,
}

/// Retention's statements on one database connection (or transaction).
pub trait Retention {
    /// Deletes up to `batch` messages stamped before `before` (Unix seconds), of one chat or
    /// of all; returns how many.
    fn purge_older(&self, chat: Option<i64>, before: i64, batch: u32) -> DbResult<usize>;

    /// Up to `limit` chats (from id `after` on) holding more than `max_messages` messages
    /// or more than `max_bytes` bytes of bodies; `None` is no limit.
    fn chats_over(
        &self,
        max_messages: Option<u64>,
        max_bytes: Option<u64>,
        after: i64,
        limit: u32,
    ) -> DbResult<Vec<OverLimit>>;

    /// A chat's message count and body bytes (0, 0 when there is no such chat).
    fn chat_counters(&self, chat: i64) -> DbResult<(u64, u64)>;

    /// The chat's oldest `batch` messages as (id, body bytes), oldest first.
    fn oldest_messages(&self, chat: i64, batch: u32) -> DbResult<Vec<(i64, u64)>>;

    /// Deletes the chat's messages up to id `last`; returns how many.
    fn delete_through(&self, chat: i64, last: i64) -> DbResult<usize>;

    /// The ids of up to `limit` chats that have messages, above `after`, in order, each with
    /// whether the chat still exists (one index seek per id: the deleted chats whose
    /// messages are not all removed yet are the ones that do not).
    fn message_chats(&self, after: i64, limit: u32) -> DbResult<Vec<(i64, bool)>>;

    /// Deletes up to `batch` messages of the deleted chat `chat` (none while a chat has that
    /// id); returns how many.
    fn sweep_deleted_chat(&self, chat: i64, batch: u32) -> DbResult<usize>;

    /// Bytes per page of the file.
    fn page_size(&self) -> DbResult<u64>;

    /// Pages on the file's free list (0 on a server that reclaims space itself).
    fn free_pages(&self) -> DbResult<u32>;

    /// Gives up to `pages` free pages back to the file system (a no-op where the file
    /// cannot, or the server does it itself); returns how many were given back.
    fn vacuum_step(&self, pages: u32) -> DbResult<u32>;

    /// Deletes up to `batch` of a chat's oldest messages, as many as it takes to bring it
    /// under `max_messages` and `max_bytes` (it may take several calls); returns how many.
    fn trim_chat(
        &self,
        chat: i64,
        max_messages: Option<u64>,
        max_bytes: Option<u64>,
        batch: u32,
    ) -> DbResult<usize> {
        let (count, bytes) = self.chat_counters(chat)?;
        let excess_count = max_messages.map_or(0, |m| count.saturating_sub(m));
        let mut excess_bytes = max_bytes.map_or(0, |m| bytes.saturating_sub(m));
        if excess_count == 0 && excess_bytes == 0 {
            return Ok(0);
        }
        // The oldest ids first, until both excesses are covered.
        let (mut last, mut taken) = (None, 0u64);
        for (id, len) in self.oldest_messages(chat, batch)? {
            if taken >= excess_count && excess_bytes == 0 {
                break;
            }
            last = Some(id);
            taken += 1;
            excess_bytes = excess_bytes.saturating_sub(len);
        }
        match last {
            Some(last) => self.delete_through(chat, last),
            None => Ok(0),
        }
    }
}
