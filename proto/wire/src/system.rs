//! System-message bodies and their guids (`mediator-protocol.md` §7).
//!
//! A system message travels in a GOT_MESSAGE push (and, when stored, in GET_MESSAGES_SINCE)
//! with the mediator's key as author and this plain body as MESSAGE_BLOB. Byte 0 is the
//! event code. The guid is Java's `Arrays.hashCode` of the body shifted into the high half,
//! XOR the timestamp in seconds.

use crate::tlv::{self, tag, TlvMap};
use crate::PublicKey;
use thiserror::Error;

/// Event codes (§7.3).
pub mod code {
    pub const USER_ADDED: u8 = 0x01;
    pub const USER_ENTERED: u8 = 0x02;
    pub const USER_LEFT: u8 = 0x03;
    pub const USER_BANNED: u8 = 0x04;
    pub const CHAT_DELETED: u8 = 0x05;
    pub const CHAT_INFO_CHANGE: u8 = 0x06;
    pub const PERMS_CHANGED: u8 = 0x07;
    pub const MESSAGE_DELETED: u8 = 0x08;
    pub const MEMBER_ONLINE: u8 = 0x09;
}

/// A system body that does not match any known layout.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("malformed system message body (code {code:#04x}, {len} bytes)")]
pub struct SystemDecodeError {
    pub code: u8,
    pub len: usize,
}

/// A system event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemEvent {
    UserAdded {
        target: PublicKey,
        actor: PublicKey,
        random: [u8; 32],
    },
    UserLeft {
        user: PublicKey,
        random: [u8; 32],
    },
    UserBanned {
        target: PublicKey,
        actor: PublicKey,
        random: [u8; 32],
    },
    ChatDeleted {
        actor: PublicKey,
        random: [u8; 32],
    },
    ChatInfoChange {
        actor: PublicKey,
        name: Option<Vec<u8>>,
        desc: Option<Vec<u8>>,
        avatar: Option<Vec<u8>>,
    },
    PermsChanged {
        target: PublicKey,
        perms: u8,
        actor: PublicKey,
        random: [u8; 32],
    },
    MessageDeleted {
        guid: i64,
        deleter: PublicKey,
    },
    MemberOnline {
        user: PublicKey,
        online: bool,
        /// Unix seconds.
        timestamp: i64,
    },
}

impl SystemEvent {
    /// The event code (byte 0 of the body).
    pub fn code(&self) -> u8 {
        match self {
            SystemEvent::UserAdded { .. } => code::USER_ADDED,
            SystemEvent::UserLeft { .. } => code::USER_LEFT,
            SystemEvent::UserBanned { .. } => code::USER_BANNED,
            SystemEvent::ChatDeleted { .. } => code::CHAT_DELETED,
            SystemEvent::ChatInfoChange { .. } => code::CHAT_INFO_CHANGE,
            SystemEvent::PermsChanged { .. } => code::PERMS_CHANGED,
            SystemEvent::MessageDeleted { .. } => code::MESSAGE_DELETED,
            SystemEvent::MemberOnline { .. } => code::MEMBER_ONLINE,
        }
    }

    /// Whether the event is stored as a message (and so gets a message id), §7.3.
    pub fn is_stored(&self) -> bool {
        !matches!(
            self,
            SystemEvent::ChatDeleted { .. } | SystemEvent::MemberOnline { .. }
        )
    }

    /// The body bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(98);
        b.push(self.code());
        match self {
            SystemEvent::UserAdded {
                target,
                actor,
                random,
            }
            | SystemEvent::UserBanned {
                target,
                actor,
                random,
            } => {
                b.extend_from_slice(target);
                b.extend_from_slice(actor);
                b.extend_from_slice(random);
            }
            SystemEvent::UserLeft { user, random } => {
                b.extend_from_slice(user);
                b.extend_from_slice(random);
            }
            SystemEvent::ChatDeleted { actor, random } => {
                b.extend_from_slice(actor);
                b.extend_from_slice(random);
            }
            SystemEvent::ChatInfoChange {
                actor,
                name,
                desc,
                avatar,
            } => {
                tlv::put(&mut b, tag::PUBKEY, actor);
                for (t, v) in [
                    (tag::CHAT_NAME, name),
                    (tag::CHAT_DESC, desc),
                    (tag::CHAT_AVATAR, avatar),
                ] {
                    if let Some(v) = v {
                        tlv::put(&mut b, t, v);
                    }
                }
            }
            SystemEvent::PermsChanged {
                target,
                perms,
                actor,
                random,
            } => {
                b.extend_from_slice(target);
                b.push(*perms);
                b.extend_from_slice(actor);
                b.extend_from_slice(random);
            }
            SystemEvent::MessageDeleted { guid, deleter } => {
                b.extend_from_slice(&guid.to_be_bytes());
                b.extend_from_slice(deleter);
            }
            SystemEvent::MemberOnline {
                user,
                online,
                timestamp,
            } => {
                b.extend_from_slice(user);
                b.push(u8::from(*online));
                b.extend_from_slice(&timestamp.to_be_bytes());
            }
        }
        b
    }

    /// Parses a body.
    pub fn decode(body: &[u8]) -> Result<Self, SystemDecodeError> {
        let err = || SystemDecodeError {
            code: body.first().copied().unwrap_or(0),
            len: body.len(),
        };
        let k = |r: std::ops::Range<usize>| -> Result<[u8; 32], SystemDecodeError> {
            body.get(r).and_then(|s| s.try_into().ok()).ok_or_else(err)
        };
        let exact = |n: usize| if body.len() == n { Ok(()) } else { Err(err()) };
        let Some(&c) = body.first() else {
            return Err(err());
        };
        Ok(match c {
            code::USER_ADDED | code::USER_BANNED => {
                exact(97)?;
                let (target, actor, random) = (k(1..33)?, k(33..65)?, k(65..97)?);
                if c == code::USER_ADDED {
                    SystemEvent::UserAdded {
                        target,
                        actor,
                        random,
                    }
                } else {
                    SystemEvent::UserBanned {
                        target,
                        actor,
                        random,
                    }
                }
            }
            code::USER_LEFT => {
                exact(65)?;
                SystemEvent::UserLeft {
                    user: k(1..33)?,
                    random: k(33..65)?,
                }
            }
            code::CHAT_DELETED => {
                exact(65)?;
                SystemEvent::ChatDeleted {
                    actor: k(1..33)?,
                    random: k(33..65)?,
                }
            }
            code::CHAT_INFO_CHANGE => {
                let m = TlvMap::parse(&body[1..]).map_err(|_| err())?;
                SystemEvent::ChatInfoChange {
                    actor: m.fixed(tag::PUBKEY).ok_or_else(err)?,
                    name: m.get(tag::CHAT_NAME).map(<[u8]>::to_vec),
                    desc: m.get(tag::CHAT_DESC).map(<[u8]>::to_vec),
                    avatar: m.get(tag::CHAT_AVATAR).map(<[u8]>::to_vec),
                }
            }
            code::PERMS_CHANGED => {
                exact(98)?;
                SystemEvent::PermsChanged {
                    target: k(1..33)?,
                    perms: body[33],
                    actor: k(34..66)?,
                    random: k(66..98)?,
                }
            }
            code::MESSAGE_DELETED => {
                exact(41)?;
                let mut g = [0u8; 8];
                g.copy_from_slice(&body[1..9]);
                SystemEvent::MessageDeleted {
                    guid: i64::from_be_bytes(g),
                    deleter: k(9..41)?,
                }
            }
            code::MEMBER_ONLINE => {
                exact(42)?;
                let mut t = [0u8; 8];
                t.copy_from_slice(&body[34..42]);
                SystemEvent::MemberOnline {
                    user: k(1..33)?,
                    online: body[33] != 0,
                    timestamp: i64::from_be_bytes(t),
                }
            }
            _ => return Err(err()),
        })
    }
}

/// Java `Arrays.hashCode(byte[])`: h = 31·h + signed byte, from 1, wrapping.
pub fn java_hash(body: &[u8]) -> i32 {
    body.iter().fold(1i32, |h, &b| {
        h.wrapping_mul(31).wrapping_add(b as i8 as i32)
    })
}

/// The guid of a system message (§7.2): `(hash as i64) << 32 ^ ts_seconds`.
pub fn system_guid(body: &[u8], ts_seconds: i64) -> i64 {
    (i64::from(java_hash(body)) << 32) ^ ts_seconds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_known_values() {
        // Arrays.hashCode(new byte[0]) == 1; {1} -> 32; {-1} -> 30; "abc" -> 126145.
        assert_eq!(java_hash(&[]), 1);
        assert_eq!(java_hash(&[1]), 32);
        assert_eq!(java_hash(&[0xff]), 30);
        assert_eq!(java_hash(b"abc"), 126_145);
        assert_eq!(system_guid(b"abc", 5), (126_145i64 << 32) ^ 5);
        // A negative hash sign-extends into the high half.
        let body = (0u8..=255)
            .map(|b| [b; 7])
            .find(|body| java_hash(body) < 0)
            .expect("some 7-byte body hashes negative");
        assert_eq!((system_guid(&body, 0x1234) >> 32) as i32, java_hash(&body));
        assert!(system_guid(&body, 0x1234) < 0);
    }

    #[test]
    fn golden_bodies() {
        let (a, b, r) = ([0xaa; 32], [0xbb; 32], [0xcc; 32]);
        let e = SystemEvent::PermsChanged {
            target: a,
            perms: 0x20,
            actor: b,
            random: r,
        };
        let body = e.encode();
        assert_eq!(body.len(), 98);
        assert_eq!(body[0], 0x07);
        assert_eq!(body[33], 0x20);
        assert_eq!(
            hex::encode(
                SystemEvent::MessageDeleted {
                    guid: 0x0102030405060708,
                    deleter: a
                }
                .encode()
            ),
            format!("080102030405060708{}", "aa".repeat(32))
        );
        assert_eq!(
            hex::encode(
                SystemEvent::MemberOnline {
                    user: b,
                    online: true,
                    timestamp: 0x65
                }
                .encode()
            ),
            format!("09{}01{}", "bb".repeat(32), "0000000000000065")
        );
        let info = SystemEvent::ChatInfoChange {
            actor: a,
            name: Some(b"new".to_vec()),
            desc: None,
            avatar: None,
        };
        assert_eq!(
            hex::encode(info.encode()),
            format!("060120{}2003{}", "aa".repeat(32), hex::encode("new"))
        );
        for ev in [
            e,
            info,
            SystemEvent::UserAdded {
                target: a,
                actor: b,
                random: r,
            },
            SystemEvent::UserLeft { user: a, random: r },
            SystemEvent::ChatDeleted {
                actor: a,
                random: r,
            },
        ] {
            assert_eq!(SystemEvent::decode(&ev.encode()).unwrap(), ev);
        }
    }
}
