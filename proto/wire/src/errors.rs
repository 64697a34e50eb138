//! Every error text the server sends in an ERR frame, each written once.
//!
//! The texts are part of the wire: real clients show them to users and some compare them
//! (the Go server's strings, `mediator-protocol.md` §5, kept byte for byte, plus the texts of
//! the limits this server adds). Handlers, the store and the request decoders name a
//! [`WireError`]; only [`WireError::text`] spells it. The one text built at run time, the
//! SQLite error appended to a failed SEND_MESSAGE, starts with [`WireError::DbError`]'s text.

use std::fmt;

macro_rules! wire_errors {
    ($($(#[$doc:meta])* $name:ident => $text:literal,)*) => {
        /// An error the server reports to the client, by meaning; see [`WireError::text`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum WireError {
            $($(#[$doc])* $name,)*
        }

        impl WireError {
            /// Every error, in declaration order (for tests and documentation).
            pub const ALL: &'static [WireError] = &[$(WireError::$name,)*];

            /// The exact text of the ERR frame.
            pub const fn text(self) -> &'static str {
                match self {
                    $(WireError::$name => $text,)*
                }
            }
        }
    };
}

wire_errors! {
    // Sessions and authentication.
    /// A command other than PING, GET_NONCE and AUTH before AUTH.
    AuthRequired => "auth required",
    /// CREATE_CHAT before AUTH (its own text, §5.4).
    NotAuthenticated => "not authenticated",
    UnknownNonce => "unknown nonce",
    InvalidSignature => "invalid signature",
    /// CREATE_CHAT whose signature does not start with two zero bytes (proof of work).
    SignatureFilterFailed => "signature filter failed",
    /// The session or the daemon holds as many nonces as it may.
    TooManyNonces => "too many nonces",
    /// A rate limit of this server (per key or per source); nothing was changed.
    RateLimited => "rate limited, slow down",
    /// The key is blocked server-wide by the operator (AUTH, CREATE_CHAT).
    Blocked => "blocked by the server operator",
    UnknownCommand => "unknown cmd",
    PayloadTooLarge => "payload too large",
    BadTlvPayload => "bad tlv payload",
    DbError => "db error",
    GuidCollisions => "db error - guid collision limit exceeded",

    // Request fields.
    MissingPubkey => "missing or invalid pubkey",
    MissingNonce => "missing or invalid nonce",
    MissingSignature => "missing or invalid signature",
    MissingCounter => "missing or invalid counter",
    MissingOwnerPubkey => "missing or invalid owner pubkey",
    MissingUserPubkey => "missing or invalid user pubkey",
    MissingToPubkey => "missing or invalid to_pubkey",
    MissingChatId => "missing or invalid chat id",
    MissingGuid => "missing or invalid guid",
    MissingMessageGuid => "missing or invalid message guid",
    MissingSinceId => "missing or invalid since message id",
    MissingLimit => "missing or invalid limit",
    MissingInviteId => "missing or invalid invite id",
    MissingAccepted => "missing or invalid accepted flag",
    MissingTimestamp => "missing or invalid timestamp",
    MissingPerms => "missing or invalid perms",
    MissingChatName => "missing chat name",
    MissingChatDesc => "missing chat description",
    KeysMismatch => "keys mismatch",
    NothingToUpdate => "nothing to update",
    LimitOutOfRange => "limit must be between 1 and 500",
    InvalidAccepted => "invalid accepted value",
    FieldTooLarge => "field too large",
    MessageTooLarge => "message too large",
    /// CREATE_CHAT decoded without the session's key (a server bug, never sent).
    CreateChatNeedsKey => "create chat needs the session key",

    // Chats.
    TooManyChats => "too many chats",
    /// No unused chat id found after several random draws.
    NoChatId => "db chat meta",
    NoSuchChat => "no such chat",
    NotAnOwner => "not an owner",
    ChatDeleted => "chat deleted",

    // Membership and roles.
    InsufficientPerms => "insufficient perms",
    NotAMember => "not a member",
    NotAMemberOrBanned => "not a member or banned",
    TargetNotAMember => "target user not a member",
    OwnerCannotLeave => "owner can't leave",
    BannedUser => "banned user",
    ReadOnlyUser => "read-only user",
    CannotBanYourself => "cannot ban yourself",
    CannotModifyOwnPerms => "cannot modify own permissions",
    CannotModifyOwnerPerms => "cannot modify owner permissions",
    InvalidPermFlags => "invalid permission flags",
    TooManySubscriptions => "too many subscriptions",

    // Messages.
    MessageNotFound => "message not found",

    // Invites.
    UserIsBanned => "user is banned",
    AlreadyAMember => "user is already a member",
    InviteExists => "invite already exists",
    TooManyInvites => "too many invites",
    InviteNotFound => "invite not found",
    NotInviteRecipient => "not recipient of this invite",
    InviterLostRights => "inviter lost invite rights",
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

impl std::error::Error for WireError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden texts: a change here changes what clients see.
    #[test]
    fn texts_are_the_wire_texts() {
        let golden = [
            (WireError::AuthRequired, "auth required"),
            (WireError::NotAuthenticated, "not authenticated"),
            (WireError::RateLimited, "rate limited, slow down"),
            (WireError::Blocked, "blocked by the server operator"),
            (WireError::UnknownCommand, "unknown cmd"),
            (WireError::InsufficientPerms, "insufficient perms"),
            (WireError::OwnerCannotLeave, "owner can't leave"),
            (WireError::NoChatId, "db chat meta"),
            (WireError::MissingToPubkey, "missing or invalid to_pubkey"),
            (
                WireError::GuidCollisions,
                "db error - guid collision limit exceeded",
            ),
        ];
        for (e, text) in golden {
            assert_eq!(e.text(), text);
            assert_eq!(e.to_string(), text);
        }
    }

    #[test]
    fn every_text_is_written_once() {
        let mut texts: Vec<&str> = WireError::ALL.iter().map(|e| e.text()).collect();
        let n = texts.len();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), n, "two errors share a text");
        assert!(texts.iter().all(|t| !t.is_empty() && t.len() <= 64));
    }
}
