//! The control calls for server-wide blocks and for ending sessions: the value an operator
//! gives is normalised to what the checks compare (a key in lowercase hex; a source as
//! connections count it), the row is stored and recorded in the audit log in one
//! transaction, then the in-memory list is updated and the live sessions the block covers
//! end.

use super::service::{Caller, Service};
use crate::blocks::Kind;
use crate::store::blocks::BlockRow;
use mediator_control::v1::*;
use std::net::IpAddr;
use tonic::{Response, Status};

/// The value a block of `kind` compares, from what an operator typed.
pub fn normalise(kind: Kind, value: &str) -> Result<String, String> {
    let v = value.trim();
    let hex_key = || {
        hex::decode(v)
            .ok()
            .filter(|b| b.len() == 32)
            .map(|_| v.to_ascii_lowercase())
    };
    match kind {
        Kind::Key => hex_key().ok_or_else(|| format!("'{v}' is not a key (64 hex characters)")),
        Kind::Source => {
            if let Some(k) = hex_key() {
                return Ok(k);
            }
            let addr = v.strip_suffix("/64").unwrap_or(v);
            addr.parse::<IpAddr>()
                .map(crate::quic::source_of)
                .map_err(|_| {
                    format!(
                        "'{v}' is not a source (an IP address, an IPv6 /64 or a Yggdrasil node key)"
                    )
                })
        }
    }
}

fn kind_of(s: &str) -> Result<Kind, Status> {
    Kind::parse(s).ok_or_else(|| Status::invalid_argument("kind must be 'key' or 'source'"))
}

impl Service {
    pub(super) async fn set_block(
        &self,
        caller: Caller,
        r: BlockRequest,
    ) -> Result<Response<BlockReply>, Status> {
        let kind = kind_of(&r.kind)?;
        let value = normalise(kind, &r.value).map_err(Status::invalid_argument)?;
        let now = self.server.clock.now_secs();
        let until = (r.for_secs > 0).then(|| now.saturating_add(r.for_secs as i64));
        let row = BlockRow {
            kind: kind.name().to_string(),
            value: value.clone(),
            until,
            reason: r.reason.clone(),
            created_at: now,
        };
        let action = format!("{}s block", kind.name());
        let target = match until {
            Some(_) => format!("{value} for {}s: {}", r.for_secs, r.reason),
            None => format!("{value}: {}", r.reason),
        };
        self.audited(
            &caller,
            &action,
            target,
            move |c| Ok(c.put_block(&row)?),
            |_| String::new(),
        )
        .await
        .map_err(|e| Status::internal(format!("database error: {e}")))?;
        self.server.blocks.set(kind, &value, until);
        let ended = match kind {
            Kind::Key => {
                let mut key = [0u8; 32];
                // `normalise` checked it is 32 bytes of hex.
                hex::decode_to_slice(&value, &mut key)
                    .map_err(|e| Status::internal(e.to_string()))?;
                self.server.hub.kill_user(&key)
            }
            Kind::Source => self.server.hub.kill_source(&value),
        };
        tracing::info!(kind = kind.name(), value, ?until, ended, "blocked");
        Ok(Response::new(BlockReply {
            value,
            until: until.unwrap_or(0),
            sessions_ended: ended as u64,
        }))
    }

    pub(super) async fn lift_block(
        &self,
        caller: Caller,
        r: UnblockRequest,
    ) -> Result<Response<ModerationReply>, Status> {
        let kind = kind_of(&r.kind)?;
        let value = normalise(kind, &r.value).map_err(Status::invalid_argument)?;
        let v = value.clone();
        let changed = self
            .audited(
                &caller,
                &format!("{}s unblock", kind.name()),
                value.clone(),
                move |c| Ok(c.remove_block(kind.name(), &v)?),
                |was| {
                    if *was {
                        String::new()
                    } else {
                        "nothing to change".into()
                    }
                },
            )
            .await
            .map_err(|e| Status::internal(format!("database error: {e}")))?;
        self.server.blocks.lift(kind, &value);
        Ok(Response::new(ModerationReply { changed }))
    }

    pub(super) async fn blocks_in_force(&self) -> Result<Response<ListBlocksReply>, Status> {
        let now = self.server.clock.now_secs();
        let list = self
            .server
            .store
            .read(move |c| Ok(c.active_blocks(now)?))
            .await
            .map_err(|e| Status::internal(format!("database error: {e}")))?;
        Ok(Response::new(ListBlocksReply {
            blocks: list
                .into_iter()
                .map(|b| BlockEntry {
                    kind: b.kind,
                    value: b.value,
                    until: b.until.unwrap_or(0),
                    reason: b.reason,
                    created_at: b.created_at,
                })
                .collect(),
        }))
    }

    pub(super) async fn kick(
        &self,
        caller: Caller,
        r: KickRequest,
    ) -> Result<Response<KickReply>, Status> {
        let (target, ended) = if r.session_id != 0 {
            let ended = usize::from(self.server.hub.kill_session(r.session_id));
            (format!("session {}", r.session_id), ended)
        } else {
            let key: [u8; 32] = r
                .key
                .as_slice()
                .try_into()
                .map_err(|_| Status::invalid_argument("give a session id or a 32-byte key"))?;
            (
                format!("key {}", hex::encode(key)),
                self.server.hub.kill_user(&key),
            )
        };
        let result = format!("ok: {ended} ended");
        self.note(self.entry(&caller, "sessions kick", target, result))
            .await;
        Ok(Response::new(KickReply {
            sessions_ended: ended as u64,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_normalised_as_the_checks_compare_them() {
        let key = "AB".repeat(32);
        assert_eq!(normalise(Kind::Key, &key), Ok("ab".repeat(32)));
        assert!(normalise(Kind::Key, "10.0.0.1").is_err());
        assert_eq!(normalise(Kind::Source, " 10.0.0.1 "), Ok("10.0.0.1".into()));
        assert_eq!(
            normalise(Kind::Source, "::ffff:10.0.0.1"),
            Ok("10.0.0.1".into())
        );
        assert_eq!(
            normalise(Kind::Source, "2001:db8:1:2:3:4:5:6"),
            Ok("2001:db8:1:2::/64".into())
        );
        assert_eq!(
            normalise(Kind::Source, "2001:db8:1:2::/64"),
            Ok("2001:db8:1:2::/64".into())
        );
        assert_eq!(
            normalise(Kind::Source, &key),
            Ok("ab".repeat(32)),
            "a node key"
        );
        assert!(normalise(Kind::Source, "example.org").is_err());
    }
}
