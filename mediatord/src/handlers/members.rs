//! Membership and roles: ADD_USER, DELETE_USER (a ban), LEAVE_CHAT and CHANGE_MEMBER_STATUS
//! with the rank rules of §11 S1–S3, then GET_MEMBERS, UPDATE_MEMBER_INFO and
//! GET_MEMBERS_INFO with its paging by size ([`members_info_page`]).

use super::{moderation, ok_empty, random32, rank, require_moderator, Reply, Result, Session};
use crate::store::prelude::*;
use crate::store::queries as q;
use crate::store::Reject;
use bytes::Bytes;
use mediator_wire::codes::perms;
use mediator_wire::frame::FrameWriter;
use mediator_wire::response::{self as resp, GotMemberInfo, MemberRecord};
use mediator_wire::system::SystemEvent;
use mediator_wire::{PublicKey, WireError};

/// Most member info in one GET_MEMBERS_INFO answer when members share a time at the cut (see
/// [`members_info_page`]); under the real client's 50 MiB frame limit.
pub const MEMBERS_INFO_TIE_CEILING: usize = 40 * 1024 * 1024;

/// How far ahead of the server's clock a client's UPDATE_MEMBER_INFO time may be; later
/// times are stored as now plus this.
const MAX_CLOCK_AHEAD_SECS: i64 = 300;

impl Session {
    pub(super) async fn add_user(
        &self,
        req_id: u16,
        me: PublicKey,
        chat: i64,
        user: PublicKey,
    ) -> Result<Bytes> {
        let clock = self.server.clock.clone();
        let change = move |c: &dyn Db| {
            let caller = c.require_member(chat, &me)?;
            require_moderator(caller)?;
            let now = clock.now_secs();
            match c.member(chat, &user)? {
                // Already a member: nothing changes (§11 S1: no demotion by upsert).
                Some(t) if !t.banned => return Ok(None),
                // Un-banning needs a caller who outranks the target (§11 S1) and ranks at
                // least as high as whoever banned it.
                Some(t) => {
                    if rank(caller.perms) <= rank(t.perms)
                        || rank(caller.perms) < c.ban_rank(chat, &user)?
                    {
                        return Err(Reject::Wire(WireError::InsufficientPerms));
                    }
                    c.set_perms(chat, &user, perms::USER, now)?;
                    c.clear_ban(chat, &user)?;
                }
                None => c.add_member(chat, &user, now, now)?,
            }
            Ok(Some(SystemEvent::UserAdded {
                target: user,
                actor: me,
                random: random32(),
            }))
        };
        self.change_and_announce(chat, false, change, move |hub| hub.establish(&user))
            .await?;
        Ok(ok_empty(req_id))
    }

    pub(super) async fn ban_user(
        &self,
        req_id: u16,
        me: PublicKey,
        chat: i64,
        user: PublicKey,
    ) -> Result<Bytes> {
        let (change, after) = moderation::ban(self.server.clock.clone(), chat, me, user);
        self.change_and_announce(chat, false, change, after).await?;
        Ok(ok_empty(req_id))
    }

    pub(super) async fn leave_chat(&self, req_id: u16, me: PublicKey, chat: i64) -> Result<Bytes> {
        let (change, then) = moderation::depart(chat, me);
        // The user's other devices are told, then stop receiving the chat.
        let sid = self.handle.id;
        let after = move |hub: &crate::hub::Hub| {
            hub.unsubscribe(sid, chat);
            then(hub);
        };
        self.change_and_announce(chat, false, change, after).await?;
        Ok(ok_empty(req_id))
    }

    pub(super) async fn change_status(
        &self,
        req_id: u16,
        me: PublicKey,
        chat: i64,
        user: PublicKey,
        new: u8,
    ) -> Result<Bytes> {
        let (change, after) = moderation::set_perms(self.server.clock.clone(), chat, me, user, new);
        self.change_and_announce(chat, false, change, after).await?;
        Ok(ok_empty(req_id))
    }

    pub(super) async fn update_member_info(
        &self,
        req_id: u16,
        me: PublicKey,
        chat: i64,
        ts: i64,
        info: &[u8],
    ) -> Result<Bytes> {
        let clock = self.server.clock.clone();
        if info.len() > self.server.limits.max_blob_bytes {
            return Err(Reject::Wire(WireError::FieldTooLarge));
        }
        let info = info.to_vec();
        let hub = self.server.hub.clone();
        // The time is the client's; a far-future one would make every member's client skip
        // later updates (GET_MEMBERS_INFO sends info changed after the newest time it has).
        let ts = ts.min(clock.now_secs() + MAX_CLOCK_AHEAD_SECS);
        self.server
            .store
            .write_then(
                move |c| {
                    c.require_member(chat, &me)?;
                    c.set_member_info(chat, &me, &info, ts)?;
                    Ok(Bytes::from(GotMemberInfo::frame(chat, &me, &info, ts)))
                },
                move |frame| hub.publish(chat, frame, None),
            )
            .await?;
        Ok(ok_empty(req_id))
    }

    /// GET_MEMBERS_INFO, with at most [`Limits::max_sync_bytes`] of member info in one
    /// answer (see [`members_info_page`]), so four members with 16 MiB of info each no
    /// longer make an answer over the client's 50 MiB frame limit. Only the infos the
    /// answer includes are read, after their room in the queue budget is free.
    pub(super) async fn members_info(
        &self,
        req_id: u16,
        me: PublicKey,
        chat: i64,
        last: i64,
    ) -> Result<Reply> {
        let max_bytes = self.server.limits.max_sync_bytes;
        let rows = self
            .server
            .store
            .read(move |c| {
                c.require_member(chat, &me)?;
                Ok(c.members(chat, false)?)
            })
            .await?;
        let page = members_info_page(&rows, last, max_bytes);
        let bytes: usize = page
            .iter()
            .map(|(i, _, _)| rows[*i].info_len.unwrap_or(0))
            .sum();
        let reserved = self.room_for(bytes + 64 * page.len()).await;
        let keys: Vec<Vec<u8>> = page
            .iter()
            .filter(|(_, with_info, _)| *with_info)
            .map(|(i, _, _)| rows[*i].pubkey.clone())
            .collect();
        let infos = if keys.is_empty() {
            Default::default()
        } else {
            self.server
                .store
                .read(move |c| {
                    let k: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
                    Ok(c.member_infos(chat, &k)?)
                })
                .await?
        };
        let cap = bytes + 64 * page.len() + 6;
        let mut w = FrameWriter::ok_with_capacity(req_id, cap);
        resp::put_list_count(&mut w, page.len());
        for (i, with_info, changed_at) in &page {
            let r = &rows[*i];
            let user: PublicKey = r.pubkey.as_slice().try_into().unwrap_or([0; 32]);
            let info = match with_info {
                true => infos.get(&r.pubkey).map_or(&[][..], Vec::as_slice),
                false => &[],
            };
            resp::put_member_info(&mut w, &user, info, *changed_at);
        }
        Ok(Reply {
            frame: Bytes::from(w.finish()),
            after: Vec::new(),
            reserved,
        })
    }

    pub(super) async fn members(&self, req_id: u16, me: PublicKey, chat: i64) -> Result<Bytes> {
        let rows = self
            .server
            .store
            .read(move |c| {
                c.require_member(chat, &me)?;
                Ok(c.members(chat, false)?)
            })
            .await?;
        let mut w = FrameWriter::ok_with_capacity(req_id, 50 * rows.len() + 6);
        let recs: Vec<MemberRecord> = rows
            .iter()
            .filter_map(|r| {
                let user: PublicKey = r.pubkey.as_slice().try_into().ok()?;
                Some(MemberRecord {
                    user,
                    perms: r.perms,
                    online: self.server.hub.online(chat, &user),
                    last_seen: r.last_seen,
                })
            })
            .collect();
        resp::put_list_count(&mut w, recs.len());
        for r in &recs {
            r.put(&mut w);
        }
        Ok(Bytes::from(w.finish()))
    }
}

/// The entries of a GET_MEMBERS_INFO answer, in member order: (row index, whether its
/// info is sent, the time sent), with at most about `max_bytes` of info (one member's info
/// always fits). Fresh info (changed after `last`, §5.18) is taken oldest first; members
/// whose info does not fit this time are listed with empty info and `last` as their time,
/// so the client, which asks again with the newest time it stored, is sent them on its next
/// request. Info sharing its time with the last one taken goes with it, up to
/// [`MEMBERS_INFO_TIE_CEILING`]. Rows whose key is not 32 bytes are skipped.
pub fn members_info_page(
    rows: &[q::MemberRow],
    last: i64,
    max_bytes: usize,
) -> Vec<(usize, bool, i64)> {
    let fresh = |r: &q::MemberRow| r.info_len.is_some() && (last == 0 || r.changed_at > last);
    let mut order: Vec<usize> = (0..rows.len()).filter(|i| fresh(&rows[*i])).collect();
    order.sort_by_key(|i| rows[*i].changed_at);
    let info_len = |i: usize| rows[i].info_len.unwrap_or(0);
    let (mut fit, mut bytes) = (0, 0usize);
    while fit < order.len() && (fit == 0 || bytes + info_len(order[fit]) <= max_bytes) {
        bytes += info_len(order[fit]);
        fit += 1;
    }
    // Members sharing the time of the last one taken go in the same answer, up to the
    // ceiling: the client would skip those left out, as their time is not after the one it
    // keeps. Past the ceiling, the whole tie waits for the next request.
    if fit < order.len() && fit > 0 {
        let tie = rows[order[fit - 1]].changed_at;
        let mut with_tie = (fit, bytes);
        while with_tie.0 < order.len()
            && rows[order[with_tie.0]].changed_at == tie
            && with_tie.1 + info_len(order[with_tie.0]) <= MEMBERS_INFO_TIE_CEILING
        {
            with_tie.1 += info_len(order[with_tie.0]);
            with_tie.0 += 1;
        }
        fit = with_tie.0;
        if fit < order.len() && rows[order[fit]].changed_at == tie {
            while fit > 1 && rows[order[fit - 1]].changed_at == tie {
                fit -= 1;
            }
        }
    }
    let mut sent = vec![false; rows.len()];
    for i in &order[..fit] {
        sent[*i] = true;
    }
    rows.iter()
        .enumerate()
        .filter(|(_, r)| r.pubkey.len() == 32)
        .map(|(i, r)| match (sent[i], fresh(r)) {
            (true, _) => (i, true, r.changed_at),
            (false, true) => (i, false, last),
            (false, false) => (i, false, r.changed_at),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(k: u8, info_len: Option<usize>, changed_at: i64) -> q::MemberRow {
        q::MemberRow {
            pubkey: vec![k; 32],
            perms: 0,
            banned: false,
            info_len,
            changed_at,
            last_seen: 0,
            accepted_at: 0,
        }
    }

    /// Four members with large info: each answer takes what fits, oldest first, and a
    /// client that asks again with the newest time it got receives the rest in turn.
    #[test]
    fn members_info_pages_cover_everyone_in_turn() {
        let rows = vec![
            row(1, Some(6), 40),
            row(2, Some(6), 10),
            row(3, None, 5),
            row(4, Some(6), 30),
            row(5, Some(6), 30),
        ];
        let mut last = 0;
        let mut seen = Vec::new();
        for _ in 0..4 {
            let page = members_info_page(&rows, last, 10);
            assert_eq!(page.len(), rows.len());
            let sent: Vec<usize> = page.iter().filter(|p| p.1).map(|p| p.0).collect();
            assert!(!sent.is_empty() || seen.len() == 4);
            // The client keeps the newest time it was sent.
            last = page.iter().map(|p| p.2).max().unwrap().max(last);
            seen.extend(sent);
        }
        seen.sort_unstable();
        assert_eq!(seen, vec![0, 1, 3, 4]);
        // Members sharing the time at the cut (3 and 4, at 30) go together.
        let page = members_info_page(&rows, 10, 7);
        let sent: Vec<usize> = page.iter().filter(|p| p.1).map(|p| p.0).collect();
        assert_eq!(sent, vec![3, 4]);
        assert_eq!(page[0], (0, false, 10));
    }
}
