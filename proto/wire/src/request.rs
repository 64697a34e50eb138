//! Typed requests and the server's exact field-check error strings (`mediator-protocol.md` §5).
//!
//! Each command's request is decoded from a parsed [`TlvMap`] by checking its fields in the
//! order the Go server checks them, so that the first failing check yields the same error text.
//! Checks that need server state (authentication, membership, ranks) are the daemon's job and
//! are interleaved there; the one field check that depends on the session (CREATE_CHAT's
//! "keys mismatch") takes the session key as an argument.

use crate::codes::Command;
use crate::errors::WireError;
use crate::tlv::{tag, TlvMap};
use crate::{PublicKey, Signature};
use thiserror::Error;

/// Longest chat name, in runes (Go `utf8.RuneCountInString`) (§5.4).
pub const MAX_CHAT_NAME_RUNES: usize = 25;
/// Longest chat description, in runes (§5.4).
pub const MAX_CHAT_DESC_RUNES: usize = 200;
/// Largest chat avatar, in bytes (§5.4).
pub const MAX_AVATAR_BYTES: usize = 204_800;
/// Smallest and largest GET_MESSAGES_SINCE page (§5.14).
pub const MIN_PAGE_LIMIT: u32 = 1;
pub const MAX_PAGE_LIMIT: u32 = 500;

/// A failed field check: the error the server sends in the ERR frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct FieldError(pub WireError);

/// Counts runes as Go does: each byte of an invalid UTF-8 sequence counts as one rune.
pub fn go_rune_count(bytes: &[u8]) -> usize {
    bytes
        .utf8_chunks()
        .map(|c| c.valid().chars().count() + c.invalid().len())
        .sum()
}

fn need<T>(v: Option<T>, e: WireError) -> Result<T, FieldError> {
    v.ok_or(FieldError(e))
}

fn chat_id(m: &TlvMap<'_>) -> Result<i64, FieldError> {
    need(m.i64(tag::CHAT_ID), WireError::MissingChatId)
}

/// Checks name, description and avatar sizes (§5.4 check 10, §5.24).
fn check_chat_fields(
    name: Option<&[u8]>,
    desc: Option<&[u8]>,
    avatar: Option<&[u8]>,
) -> Result<(), FieldError> {
    let too_large = name.is_some_and(|n| go_rune_count(n) > MAX_CHAT_NAME_RUNES)
        || desc.is_some_and(|d| go_rune_count(d) > MAX_CHAT_DESC_RUNES)
        || avatar.is_some_and(|a| a.len() > MAX_AVATAR_BYTES);
    if too_large {
        return Err(FieldError(WireError::FieldTooLarge));
    }
    Ok(())
}

/// CREATE_CHAT 0x10 (§5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateChat<'a> {
    pub pubkey: PublicKey,
    pub nonce: [u8; 32],
    pub counter: [u8; 4],
    pub signature: Signature,
    pub name: &'a [u8],
    pub desc: &'a [u8],
    pub avatar: Option<&'a [u8]>,
}

impl<'a> CreateChat<'a> {
    /// Decodes and checks fields 3–10 of §5.4; `session_key` is the authenticated key.
    pub fn decode(m: &TlvMap<'a>, session_key: &PublicKey) -> Result<Self, FieldError> {
        let pubkey = need(m.fixed(tag::PUBKEY), WireError::MissingOwnerPubkey)?;
        if &pubkey != session_key {
            return Err(FieldError(WireError::KeysMismatch));
        }
        let nonce = need(m.fixed(tag::NONCE), WireError::MissingNonce)?;
        let counter = need(m.fixed(tag::COUNTER), WireError::MissingCounter)?;
        let signature = need(m.fixed(tag::SIGNATURE), WireError::MissingSignature)?;
        let name = need(m.get(tag::CHAT_NAME), WireError::MissingChatName)?;
        let desc = need(m.get(tag::CHAT_DESC), WireError::MissingChatDesc)?;
        let avatar = m.get(tag::CHAT_AVATAR);
        check_chat_fields(Some(name), Some(desc), avatar)?;
        Ok(CreateChat {
            pubkey,
            nonce,
            counter,
            signature,
            name,
            desc,
            avatar,
        })
    }
}

/// UPDATE_CHAT_INFO 0x12 (§5.24): only the fields being changed are present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateChatInfo<'a> {
    pub chat_id: i64,
    pub name: Option<&'a [u8]>,
    pub desc: Option<&'a [u8]>,
    pub avatar: Option<&'a [u8]>,
}

impl<'a> UpdateChatInfo<'a> {
    pub fn decode(m: &TlvMap<'a>) -> Result<Self, FieldError> {
        let chat_id = chat_id(m)?;
        let (name, desc, avatar) = (
            m.get(tag::CHAT_NAME),
            m.get(tag::CHAT_DESC),
            m.get(tag::CHAT_AVATAR),
        );
        if name.is_none() && desc.is_none() && avatar.is_none() {
            return Err(FieldError(WireError::NothingToUpdate));
        }
        check_chat_fields(name, desc, avatar)?;
        Ok(UpdateChatInfo {
            chat_id,
            name,
            desc,
            avatar,
        })
    }
}

/// A decoded request. Blobs borrow from the frame payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    GetNonce {
        pubkey: PublicKey,
    },
    Auth {
        pubkey: PublicKey,
        nonce: [u8; 32],
        signature: Signature,
    },
    Ping,
    CreateChat(CreateChat<'a>),
    DeleteChat {
        chat_id: i64,
    },
    UpdateChatInfo(UpdateChatInfo<'a>),
    AddUser {
        chat_id: i64,
        user: PublicKey,
    },
    DeleteUser {
        chat_id: i64,
        user: PublicKey,
    },
    LeaveChat {
        chat_id: i64,
    },
    GetUserChats,
    SendMessage {
        chat_id: i64,
        guid: i64,
        blob: &'a [u8],
    },
    DeleteMessage {
        chat_id: i64,
        guid: i64,
    },
    GetLastMessageId {
        chat_id: i64,
    },
    Subscribe {
        chat_id: i64,
    },
    GetMessagesSince {
        chat_id: i64,
        since_id: i64,
        limit: u32,
    },
    SendInvite {
        chat_id: i64,
        to: PublicKey,
        data: &'a [u8],
    },
    InviteResponse {
        invite_id: i64,
        accepted: bool,
    },
    UpdateMemberInfo {
        chat_id: i64,
        timestamp: i64,
        info: &'a [u8],
    },
    GetMembersInfo {
        chat_id: i64,
        last_update: i64,
    },
    GetMembers {
        chat_id: i64,
    },
    ChangeMemberStatus {
        chat_id: i64,
        user: PublicKey,
        perms: u8,
    },
}

impl<'a> Request<'a> {
    /// Decodes the fields of every command except CREATE_CHAT (which needs the session key,
    /// see [`CreateChat::decode`]) and PING (whose payload is never parsed).
    pub fn decode(cmd: Command, m: &TlvMap<'a>) -> Result<Request<'a>, FieldError> {
        const USER_KEY: WireError = WireError::MissingUserPubkey;
        Ok(match cmd {
            Command::Ping => Request::Ping,
            Command::GetNonce => Request::GetNonce {
                pubkey: need(m.fixed(tag::PUBKEY), WireError::MissingPubkey)?,
            },
            Command::Auth => Request::Auth {
                pubkey: need(m.fixed(tag::PUBKEY), WireError::MissingPubkey)?,
                nonce: need(m.fixed(tag::NONCE), WireError::MissingNonce)?,
                signature: need(m.fixed(tag::SIGNATURE), WireError::MissingSignature)?,
            },
            Command::CreateChat => return Err(FieldError(WireError::CreateChatNeedsKey)),
            Command::DeleteChat => Request::DeleteChat {
                chat_id: chat_id(m)?,
            },
            Command::UpdateChatInfo => Request::UpdateChatInfo(UpdateChatInfo::decode(m)?),
            Command::AddUser => Request::AddUser {
                chat_id: chat_id(m)?,
                user: need(m.fixed(tag::USER_PUBKEY), USER_KEY)?,
            },
            Command::DeleteUser => Request::DeleteUser {
                chat_id: chat_id(m)?,
                user: need(m.fixed(tag::USER_PUBKEY), USER_KEY)?,
            },
            Command::LeaveChat => Request::LeaveChat {
                chat_id: chat_id(m)?,
            },
            Command::GetUserChats => Request::GetUserChats,
            Command::SendMessage => Request::SendMessage {
                chat_id: chat_id(m)?,
                guid: need(m.i64(tag::MESSAGE_GUID), WireError::MissingGuid)?,
                blob: m.get(tag::MESSAGE_BLOB).unwrap_or(&[]),
            },
            Command::DeleteMessage => Request::DeleteMessage {
                chat_id: chat_id(m)?,
                guid: need(m.i64(tag::MESSAGE_GUID), WireError::MissingMessageGuid)?,
            },
            Command::GetLastMessageId => Request::GetLastMessageId {
                chat_id: chat_id(m)?,
            },
            Command::Subscribe => Request::Subscribe {
                chat_id: chat_id(m)?,
            },
            Command::GetMessagesSince => {
                let chat_id = chat_id(m)?;
                let since_id = need(m.i64(tag::SINCE_ID), WireError::MissingSinceId)?;
                let limit = need(m.u32(tag::LIMIT), WireError::MissingLimit)?;
                if !(MIN_PAGE_LIMIT..=MAX_PAGE_LIMIT).contains(&limit) {
                    return Err(FieldError(WireError::LimitOutOfRange));
                }
                Request::GetMessagesSince {
                    chat_id,
                    since_id,
                    limit,
                }
            }
            Command::SendInvite => Request::SendInvite {
                chat_id: chat_id(m)?,
                to: need(m.fixed(tag::USER_PUBKEY), WireError::MissingToPubkey)?,
                data: m.get(tag::INVITE_DATA).unwrap_or(&[]),
            },
            Command::InviteResponse => {
                let invite_id = need(m.i64(tag::INVITE_ID), WireError::MissingInviteId)?;
                let accepted = need(m.u8(tag::ACCEPTED), WireError::MissingAccepted)?;
                if accepted > 1 {
                    return Err(FieldError(WireError::InvalidAccepted));
                }
                Request::InviteResponse {
                    invite_id,
                    accepted: accepted == 1,
                }
            }
            Command::UpdateMemberInfo => Request::UpdateMemberInfo {
                chat_id: chat_id(m)?,
                timestamp: need(m.i64(tag::TIMESTAMP), WireError::MissingTimestamp)?,
                info: m.get(tag::MEMBER_INFO).unwrap_or(&[]),
            },
            Command::GetMembersInfo => Request::GetMembersInfo {
                chat_id: chat_id(m)?,
                last_update: m.i64(tag::LAST_UPDATE).unwrap_or(0),
            },
            Command::GetMembers => Request::GetMembers {
                chat_id: chat_id(m)?,
            },
            Command::ChangeMemberStatus => Request::ChangeMemberStatus {
                chat_id: chat_id(m)?,
                user: need(m.fixed(tag::USER_PUBKEY), USER_KEY)?,
                perms: need(m.u8(tag::PERMS), WireError::MissingPerms)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlv::put;

    #[test]
    fn rune_count_matches_go() {
        assert_eq!(go_rune_count("héllo".as_bytes()), 5);
        assert_eq!(go_rune_count(&[0xe2, 0x82, b'a']), 3);
        assert_eq!(go_rune_count(&[0xff, 0xfe]), 2);
    }

    #[test]
    fn field_errors_follow_check_order() {
        let empty = TlvMap::parse(&[]).unwrap();
        let cases = [
            (Command::GetNonce, "missing or invalid pubkey"),
            (Command::Auth, "missing or invalid pubkey"),
            (Command::SendMessage, "missing or invalid chat id"),
            (Command::InviteResponse, "missing or invalid invite id"),
        ];
        for (cmd, text) in cases {
            assert_eq!(
                Request::decode(cmd, &empty).map_err(|e| e.0.text()),
                Err(text)
            );
        }
        let mut p = Vec::new();
        put(&mut p, tag::CHAT_ID, &5i64.to_be_bytes());
        put(&mut p, tag::SINCE_ID, &0i64.to_be_bytes());
        put(&mut p, tag::LIMIT, &501u32.to_be_bytes());
        let m = TlvMap::parse(&p).unwrap();
        assert_eq!(
            Request::decode(Command::GetMessagesSince, &m).map_err(|e| e.0.text()),
            Err("limit must be between 1 and 500")
        );
        let mut p = Vec::new();
        put(&mut p, tag::INVITE_ID, &5i64.to_be_bytes());
        put(&mut p, tag::ACCEPTED, &[2]);
        let m = TlvMap::parse(&p).unwrap();
        assert_eq!(
            Request::decode(Command::InviteResponse, &m).map_err(|e| e.0.text()),
            Err("invalid accepted value")
        );
    }

    #[test]
    fn create_chat_checks_in_order() {
        let me = [7u8; 32];
        let mut p = Vec::new();
        put(&mut p, tag::PUBKEY, &[8u8; 32]);
        let m = TlvMap::parse(&p).unwrap();
        assert_eq!(
            CreateChat::decode(&m, &me).map_err(|e| e.0.text()),
            Err("keys mismatch")
        );
        let mut p = Vec::new();
        put(&mut p, tag::PUBKEY, &me);
        put(&mut p, tag::NONCE, &[1; 32]);
        put(&mut p, tag::COUNTER, &[0; 4]);
        put(&mut p, tag::SIGNATURE, &[0; 64]);
        put(&mut p, tag::CHAT_NAME, "x".repeat(26).as_bytes());
        let m = TlvMap::parse(&p).unwrap();
        assert_eq!(
            CreateChat::decode(&m, &me).map_err(|e| e.0.text()),
            Err("missing chat description")
        );
        put(&mut p, tag::CHAT_DESC, b"");
        let m = TlvMap::parse(&p).unwrap();
        assert_eq!(
            CreateChat::decode(&m, &me).map_err(|e| e.0.text()),
            Err("field too large")
        );
        put(&mut p, tag::CHAT_NAME, "ü".repeat(25).as_bytes());
        let m = TlvMap::parse(&p).unwrap();
        let c = CreateChat::decode(&m, &me).unwrap();
        assert_eq!(c.desc, b"");
        assert_eq!(c.avatar, None);
    }
}
