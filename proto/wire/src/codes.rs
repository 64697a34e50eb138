//! Command codes (client → server) and push codes (server → client), `mediator-protocol.md` §4.

/// A request command understood by the server. Any other byte is answered with
/// "unknown cmd" and the session is closed (§2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Command {
    GetNonce = 0x01,
    Auth = 0x02,
    Ping = 0x03,
    CreateChat = 0x10,
    DeleteChat = 0x11,
    UpdateChatInfo = 0x12,
    AddUser = 0x20,
    DeleteUser = 0x21,
    LeaveChat = 0x22,
    GetUserChats = 0x23,
    SendMessage = 0x30,
    DeleteMessage = 0x31,
    GetLastMessageId = 0x33,
    Subscribe = 0x35,
    GetMessagesSince = 0x36,
    SendInvite = 0x40,
    InviteResponse = 0x42,
    UpdateMemberInfo = 0x50,
    GetMembersInfo = 0x52,
    GetMembers = 0x53,
    ChangeMemberStatus = 0x55,
}

impl Command {
    /// Every command, in code order.
    pub const ALL: [Command; 21] = [
        Command::GetNonce,
        Command::Auth,
        Command::Ping,
        Command::CreateChat,
        Command::DeleteChat,
        Command::UpdateChatInfo,
        Command::AddUser,
        Command::DeleteUser,
        Command::LeaveChat,
        Command::GetUserChats,
        Command::SendMessage,
        Command::DeleteMessage,
        Command::GetLastMessageId,
        Command::Subscribe,
        Command::GetMessagesSince,
        Command::SendInvite,
        Command::InviteResponse,
        Command::UpdateMemberInfo,
        Command::GetMembersInfo,
        Command::GetMembers,
        Command::ChangeMemberStatus,
    ];

    /// The command for a wire code, or `None` for an unknown code (push codes included).
    pub fn from_u8(code: u8) -> Option<Command> {
        Command::ALL.iter().copied().find(|c| *c as u8 == code)
    }

    /// A stable lower-case name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Command::GetNonce => "get_nonce",
            Command::Auth => "auth",
            Command::Ping => "ping",
            Command::CreateChat => "create_chat",
            Command::DeleteChat => "delete_chat",
            Command::UpdateChatInfo => "update_chat_info",
            Command::AddUser => "add_user",
            Command::DeleteUser => "delete_user",
            Command::LeaveChat => "leave_chat",
            Command::GetUserChats => "get_user_chats",
            Command::SendMessage => "send_message",
            Command::DeleteMessage => "delete_message",
            Command::GetLastMessageId => "get_last_message_id",
            Command::Subscribe => "subscribe",
            Command::GetMessagesSince => "get_messages_since",
            Command::SendInvite => "send_invite",
            Command::InviteResponse => "invite_response",
            Command::UpdateMemberInfo => "update_member_info",
            Command::GetMembersInfo => "get_members_info",
            Command::GetMembers => "get_members",
            Command::ChangeMemberStatus => "change_member_status",
        }
    }
}

/// A server-initiated frame: an OK frame whose reqId field holds this code (§2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum PushCode {
    GotMessage = 0x0032,
    GotInvite = 0x0041,
    RequestMemberInfo = 0x0051,
    GotMemberInfo = 0x0054,
}

impl PushCode {
    /// The push for a reqId, if the client would treat that reqId as a push.
    pub fn from_u16(v: u16) -> Option<PushCode> {
        match v {
            0x0032 => Some(PushCode::GotMessage),
            0x0041 => Some(PushCode::GotInvite),
            0x0051 => Some(PushCode::RequestMemberInfo),
            0x0054 => Some(PushCode::GotMemberInfo),
            _ => None,
        }
    }
}

/// Permission bits of `users.perms_flags` (§4).
pub mod perms {
    pub const OWNER: u8 = 0x80;
    pub const ADMIN: u8 = 0x40;
    pub const MODERATOR: u8 = 0x20;
    pub const USER: u8 = 0x10;
    pub const READ_ONLY: u8 = 0x08;
    pub const BANNED: u8 = 0x01;
    /// Bits that make a member a moderator or more: owner, admin, moderator.
    pub const MODERATION: u8 = OWNER | ADMIN | MODERATOR;
    /// Bits a CHANGE_MEMBER_STATUS may carry; anything in `!VALID` is rejected.
    pub const VALID: u8 = OWNER | ADMIN | MODERATOR | USER | READ_ONLY | BANNED;
    /// Perms of the creator of a chat.
    pub const CREATOR: u8 = OWNER | USER;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_codes_round_trip() {
        for c in Command::ALL {
            assert_eq!(Command::from_u8(c as u8), Some(c));
        }
        for push in [0x32u8, 0x41, 0x51, 0x54, 0x34, 0x00, 0xff] {
            assert_eq!(Command::from_u8(push), None);
        }
    }
}
