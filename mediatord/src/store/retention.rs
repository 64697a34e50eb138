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
//! once when upgraded to version 7), so [`vacuum_step`] moves free pages to the end of the
//! file and truncates them; in WAL mode the file shrinks when the next checkpoint completes.

use rusqlite::{params, Connection};

/// Messages deleted per write job: about 1 MiB of WAL for 1 KiB messages, a few
/// milliseconds of writer time, so protocol writes wait at most that long behind a purge.
pub const PURGE_BATCH: u32 = 500;

/// Pages given back per write job by [`vacuum_step`] (4 KiB each: 1 MiB), each moved from
/// the end of the file into a free slot: a few milliseconds of writer time.
pub const VACUUM_STEP_PAGES: u32 = 256;

/// Free pages below which vacuuming is not worth a write job (1 MiB).
pub const VACUUM_MIN_FREE_PAGES: u32 = 256;

/// Chats over a limit examined per pass of [`chats_over`].
pub const CHATS_PER_PASS: u32 = 64;

/// The oldest messages everywhere, through the time index.
const PURGE_OLDER: &str = "DELETE FROM messages WHERE seq IN
     (SELECT seq FROM messages WHERE ts < ?1 ORDER BY ts LIMIT ?2)";

/// Deletes up to `batch` messages stamped before `before` (Unix seconds), of one chat or of
/// all; returns how many.
pub fn purge_older(
    c: &Connection,
    chat: Option<i64>,
    before: i64,
    batch: u32,
) -> rusqlite::Result<usize> {
    match chat {
        None => c
            .prepare_cached(PURGE_OLDER)?
            .execute(params![before, batch]),
        Some(chat) => c
            .prepare_cached(
                "DELETE FROM messages WHERE seq IN
                     (SELECT seq FROM messages WHERE chat_id = ?1 AND ts < ?2 LIMIT ?3)",
            )?
            .execute(params![chat, before, batch]),
    }
}

/// A chat over a per-chat limit, with its counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverLimit {
    pub chat: i64,
    pub messages: u64,
    pub bytes: u64,
}

/// Up to `limit` chats (from id `after` on) holding more than `max_messages` messages or
/// more than `max_bytes` bytes of bodies; `None` is no limit.
pub fn chats_over(
    c: &Connection,
    max_messages: Option<u64>,
    max_bytes: Option<u64>,
    after: i64,
    limit: u32,
) -> rusqlite::Result<Vec<OverLimit>> {
    let cap = |v: Option<u64>| v.map_or(i64::MAX, |v| i64::try_from(v).unwrap_or(i64::MAX));
    let mut st = c.prepare_cached(
        "SELECT id, message_count, message_bytes FROM chats
         WHERE id > ?1 AND (message_count > ?2 OR message_bytes > ?3) ORDER BY id LIMIT ?4",
    )?;
    let rows = st.query_map(
        params![after, cap(max_messages), cap(max_bytes), limit],
        |r| {
            Ok(OverLimit {
                chat: r.get(0)?,
                messages: r.get::<_, i64>(1)?.max(0) as u64,
                bytes: r.get::<_, i64>(2)?.max(0) as u64,
            })
        },
    )?;
    rows.collect()
}

/// Deletes up to `batch` of a chat's oldest messages, as many as it takes to bring it under
/// `max_messages` and `max_bytes` (it may take several calls); returns how many.
pub fn trim_chat(
    c: &Connection,
    chat: i64,
    max_messages: Option<u64>,
    max_bytes: Option<u64>,
    batch: u32,
) -> rusqlite::Result<usize> {
    let (count, bytes): (i64, i64) = c
        .prepare_cached("SELECT message_count, message_bytes FROM chats WHERE id = ?1")?
        .query_row(params![chat], |r| Ok((r.get(0)?, r.get(1)?)))
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok((0, 0)),
            e => Err(e),
        })?;
    let excess_count = max_messages.map_or(0, |m| (count.max(0) as u64).saturating_sub(m));
    let mut excess_bytes = max_bytes.map_or(0, |m| (bytes.max(0) as u64).saturating_sub(m));
    if excess_count == 0 && excess_bytes == 0 {
        return Ok(0);
    }
    // The oldest ids first, until both excesses are covered.
    let mut st = c.prepare_cached(
        "SELECT id, IFNULL(length(body), 0) FROM messages WHERE chat_id = ?1 ORDER BY id LIMIT ?2",
    )?;
    let mut rows = st.query(params![chat, batch])?;
    let (mut last, mut taken) = (None, 0u64);
    while let Some(r) = rows.next()? {
        if taken >= excess_count && excess_bytes == 0 {
            break;
        }
        last = Some(r.get::<_, i64>(0)?);
        taken += 1;
        excess_bytes = excess_bytes.saturating_sub(r.get::<_, i64>(1)?.max(0) as u64);
    }
    drop(rows);
    let Some(last) = last else { return Ok(0) };
    c.prepare_cached("DELETE FROM messages WHERE chat_id = ?1 AND id <= ?2")?
        .execute(params![chat, last])
}

/// Bytes per page of the file.
pub fn page_size(c: &Connection) -> rusqlite::Result<u64> {
    c.query_row("PRAGMA page_size", [], |r| r.get(0))
}

/// Pages on the file's free list.
pub fn free_pages(c: &Connection) -> rusqlite::Result<u32> {
    c.query_row("PRAGMA freelist_count", [], |r| r.get(0))
}

/// Gives up to `pages` free pages back to the file system (a no-op on a file without
/// incremental auto-vacuum); returns how many were given back.
pub fn vacuum_step(c: &Connection, pages: u32) -> rusqlite::Result<u32> {
    let before = free_pages(c)?;
    // The pragma returns one row per page it frees: step it to the end.
    let mut st = c.prepare(&format!("PRAGMA incremental_vacuum({pages})"))?;
    let mut rows = st.query([])?;
    while rows.next()?.is_some() {}
    drop(rows);
    Ok(before.saturating_sub(free_pages(c)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema;

    /// A file-backed database (auto-vacuum needs pages on disk) with `chats` chats of `per`
    /// messages of `size` bytes each, stamped 0, 1, 2… in arrival order.
    fn database(dir: &std::path::Path, chats: i64, per: i64, size: i64) -> Connection {
        let mut c = Connection::open(dir.join("r.db")).unwrap();
        schema::prepare(&mut c).unwrap();
        let tx = c.transaction().unwrap();
        for chat in 1..=chats {
            tx.execute(
                "INSERT INTO chats (id, owner, created_at) VALUES (?1, X'01', 0)",
                [chat],
            )
            .unwrap();
        }
        for id in 1..=per {
            for chat in 1..=chats {
                tx.execute(
                    "INSERT INTO messages (chat_id, id, guid, ts, author, body)
                     VALUES (?1, ?2, ?2, ?2, X'01', zeroblob(?3))",
                    params![chat, id, size],
                )
                .unwrap();
            }
        }
        schema::recount(&tx).unwrap();
        tx.commit().unwrap();
        c
    }

    fn ids(c: &Connection, chat: i64) -> Vec<i64> {
        let mut st = c
            .prepare("SELECT id FROM messages WHERE chat_id = ?1 ORDER BY id")
            .unwrap();
        st.query_map([chat], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// Purging by age searches the time index, not the table.
    #[test]
    fn age_purge_uses_the_time_index() {
        let c = Connection::open_in_memory().unwrap();
        schema::create(&c).unwrap();
        let plan: Vec<String> = c
            .prepare(&format!("EXPLAIN QUERY PLAN {PURGE_OLDER}"))
            .unwrap()
            .query_map(params![1, 1], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let plan = plan.join("; ");
        assert!(
            plan.contains("SEARCH messages USING COVERING INDEX messages_ts (ts<?)"),
            "{plan}"
        );
        assert!(!plan.contains("SCAN messages"), "{plan}");
    }

    #[test]
    fn purges_by_age_in_batches_everywhere_or_in_one_chat() {
        let dir = tempfile::tempdir().unwrap();
        let c = database(dir.path(), 3, 10, 10);
        assert_eq!(purge_older(&c, Some(2), 4, 100).unwrap(), 3);
        assert_eq!(ids(&c, 2), (4..=10).collect::<Vec<_>>());
        assert_eq!(ids(&c, 1), (1..=10).collect::<Vec<_>>());
        // Everywhere, two at a time: batches never exceed their size.
        let mut removed = Vec::new();
        loop {
            let n = purge_older(&c, None, 6, 2).unwrap();
            removed.push(n);
            if n < 2 {
                break;
            }
        }
        assert!(removed.iter().all(|n| *n <= 2));
        assert_eq!(removed.iter().sum::<usize>(), 5 + 5 + 2);
        for chat in 1..=3 {
            assert_eq!(ids(&c, chat), (6..=10).collect::<Vec<_>>());
        }
    }

    #[test]
    fn trims_chats_over_count_and_size_from_their_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let c = database(dir.path(), 3, 10, 100);
        c.execute_batch("DELETE FROM messages WHERE chat_id = 3 AND id > 2")
            .unwrap();
        let over = chats_over(&c, Some(4), None, 0, 10).unwrap();
        assert_eq!(
            over.iter().map(|o| o.chat).collect::<Vec<_>>(),
            vec![1, 2],
            "chat 3 holds 2 messages"
        );
        assert_eq!(over[0].messages, 10);
        assert_eq!(over[0].bytes, 1000);
        assert_eq!(chats_over(&c, Some(4), None, 1, 10).unwrap().len(), 1);
        assert!(chats_over(&c, None, None, 0, 10).unwrap().is_empty());
        // By count, in batches of 4: 10 → 6 → 4.
        assert_eq!(trim_chat(&c, 1, Some(4), None, 4).unwrap(), 4);
        assert_eq!(trim_chat(&c, 1, Some(4), None, 4).unwrap(), 2);
        assert_eq!(trim_chat(&c, 1, Some(4), None, 4).unwrap(), 0);
        assert_eq!(ids(&c, 1), vec![7, 8, 9, 10]);
        // By size: 1,000 bytes to at most 250 takes the 8 oldest.
        assert_eq!(trim_chat(&c, 2, None, Some(250), 100).unwrap(), 8);
        assert_eq!(ids(&c, 2), vec![9, 10]);
        assert!(chats_over(&c, Some(4), Some(500), 0, 10)
            .unwrap()
            .is_empty());
        assert_eq!(trim_chat(&c, 99, Some(1), Some(1), 100).unwrap(), 0);
    }

    #[test]
    fn vacuum_gives_freed_pages_back() {
        let dir = tempfile::tempdir().unwrap();
        let c = database(dir.path(), 2, 500, 2000);
        let pages =
            |c: &Connection| -> u32 { c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap() };
        let full = pages(&c);
        while purge_older(&c, None, 400, PURGE_BATCH).unwrap() > 0 {}
        let free = free_pages(&c).unwrap();
        assert!(free > 300, "{free} free pages after deleting 80%");
        let mut given = 0;
        loop {
            let n = vacuum_step(&c, 100).unwrap();
            assert!(n <= 100);
            given += n;
            if n == 0 {
                break;
            }
        }
        assert_eq!(given, free);
        assert_eq!(free_pages(&c).unwrap(), 0);
        assert!(pages(&c) < full / 3, "{} of {full} pages left", pages(&c));
    }
}
