//! Identity commands: GET_NONCE and AUTH (§5.1, §5.2; strict signatures, failed-AUTH rate
//! per source, nonces bound to the session), the invites pushed after each AUTH (§11 L2),
//! and the end of a session or identity: `last_seen` and the offline events (§10).

use super::invites::invite_frame;
use super::{live_system_frame, ok_empty, random32, Reply, Result, Session};
use crate::events::{self, Event};
use crate::ratelimit::Kind;
use crate::store::Reject;
use bytes::Bytes;
use mediator_wire::response as resp;
use mediator_wire::system::SystemEvent;
use mediator_wire::{PublicKey, WireError};

impl Session {
    pub(super) fn get_nonce(&mut self, req_id: u16, pubkey: PublicKey) -> Result<Bytes> {
        let nonce = random32();
        if self.nonces.issue(pubkey, nonce).is_err() {
            events::note(
                Event::NonceRefused,
                &self.handle.source,
                "max_nonces reached",
            );
            return Err(Reject::Wire(WireError::TooManyNonces));
        }
        Ok(Bytes::from(resp::encode_nonce(req_id, &nonce)))
    }

    pub(super) async fn auth(
        &mut self,
        req_id: u16,
        pubkey: PublicKey,
        nonce: [u8; 32],
        sig: [u8; 64],
    ) -> Result<Reply> {
        // A source that spent its failed-AUTH allowance costs no signature check.
        let (rate, source) = (
            self.server.limits.rate_failed_auth_per_source,
            self.handle.source.clone(),
        );
        if self
            .server
            .rates
            .spent(Kind::FailedAuthBySource, &source, rate)
        {
            events::note(Event::RateLimited, &source, "failed AUTH");
            return Err(Reject::Wire(WireError::RateLimited));
        }
        // The Go server's precedence: the nonce, then the signature.
        let failed = if !self.nonces.valid(&pubkey, &nonce) {
            Some((WireError::UnknownNonce, "unknown nonce".to_string()))
        } else {
            yggnode::identity::check(&pubkey, &nonce, &sig)
                .err()
                .map(|why| (WireError::InvalidSignature, why.to_string()))
        };
        if let Some((text, why)) = failed {
            let detail = format!("key {}: {why}", hex::encode(pubkey));
            events::note(Event::AuthFailed, &source, &detail);
            self.server
                .rates
                .allow(Kind::FailedAuthBySource, &source, rate);
            return Err(Reject::Wire(text));
        }
        self.nonces.consume(&pubkey, &nonce);
        // Checked after the signature, so only the key's holder learns that it is blocked;
        // a refusal counts as a failed AUTH of the source.
        if self
            .server
            .blocks
            .blocks_key(&pubkey, self.server.clock.now_secs())
        {
            let detail = format!("key {}: blocked by the operator", hex::encode(pubkey));
            events::note(Event::AuthFailed, &source, &detail);
            self.server
                .rates
                .allow(Kind::FailedAuthBySource, &source, rate);
            return Err(Reject::Wire(WireError::Blocked));
        }
        // Keys that belong to a chat or hold an invite are established: their sessions
        // never give way to newcomers at the session cap.
        let established = self
            .server
            .store
            .read(move |c| Ok(c.is_established(&pubkey)?))
            .await?;
        self.user = Some(pubkey);
        tracing::Span::current().record("user", tracing::field::display(hex::encode(pubkey)));
        let done = self
            .server
            .hub
            .authenticate(self.handle.id, pubkey, established);
        if let Some(old) = done.replaced {
            tracing::debug!(old = old.id, new = self.handle.id, "session replaced");
            old.kill();
        }
        self.announce_offline(done.left).await;
        let after = self.pending_invites(pubkey).await;
        Ok(Reply {
            frame: ok_empty(req_id),
            after,
            reserved: None,
        })
    }

    /// Unanswered, unexpired invites for `user`, as GOT_INVITE frames (§11 L2: pushed on
    /// each AUTH until answered, not only once), at most about
    /// [`Limits::max_invite_push_bytes`] per AUTH: those never delivered first, then the
    /// newest, so a pile of spam invites costs a login little and every invite is still
    /// delivered over successive logins.
    async fn pending_invites(&self, user: PublicKey) -> Vec<Bytes> {
        let clock = self.server.clock.clone();
        let min_ts = clock.now_secs() - self.server.limits.invite_ttl.as_secs() as i64;
        let max_bytes = self.server.limits.max_invite_push_bytes;
        let res = self
            .server
            .store
            .read(move |c| {
                Ok(c.invites_for(&user, min_ts, max_bytes)?
                    .into_iter()
                    .map(|(inv, s)| (inv.id, invite_frame(&inv, s)))
                    .collect::<Vec<_>>())
            })
            .await;
        match res {
            Ok(list) => {
                let ids: Vec<i64> = list.iter().map(|(id, _)| *id).collect();
                if !ids.is_empty() {
                    let store = self.server.store.clone();
                    tokio::spawn(async move {
                        let _ = store
                            .write(move |c| {
                                for id in ids {
                                    c.mark_invite_sent(id)?;
                                }
                                Ok(())
                            })
                            .await;
                    });
                }
                list.into_iter().map(|(_, f)| f).collect()
            }
            Err(e) => {
                tracing::error!(error = %e, "reading pending invites");
                Vec::new()
            }
        }
    }

    /// Disconnect clean-up (§10, with C6/C8): unsubscribe, record `last_seen`, and tell each
    /// chat the user went offline where this was their last subscribed session.
    pub async fn finish(&self) {
        let dep = self.server.hub.unregister(self.handle.id);
        self.announce_offline(dep).await;
    }

    /// Records `last_seen` and pushes the offline event for each chat a departing identity
    /// (a session's end, or its re-AUTH as another key) has left.
    pub(super) async fn announce_offline(&self, dep: crate::hub::Departure) {
        let clock = self.server.clock.clone();
        let Some(user) = dep.user else { return };
        if dep.offline_chats.is_empty() {
            return;
        }
        let (hub, key) = (self.server.hub.clone(), self.server.key);
        let chats = dep.offline_chats;
        let res = self
            .server
            .store
            .write_then(
                move |c| {
                    let now = clock.now_secs();
                    for chat in &chats {
                        c.set_last_seen(*chat, &user, now)?;
                    }
                    Ok((now, chats))
                },
                move |(now, chats)| {
                    let body = SystemEvent::MemberOnline {
                        user,
                        online: false,
                        timestamp: *now,
                    }
                    .encode();
                    for chat in chats {
                        // Another session may have subscribed since; then the user is online.
                        if hub.online(*chat, &user) {
                            continue;
                        }
                        hub.publish(*chat, &live_system_frame(*chat, &key, &body, *now), None);
                    }
                },
            )
            .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "recording last_seen");
        }
    }
}
