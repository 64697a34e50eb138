//! Fuzz target: request/response frame decoding, TLV parsing, typed request decoding and
//! every response, push and system-body decoder. None may panic on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediator_wire::frame::{decode_error_text, RequestFrame, ResponseFrame};
use mediator_wire::request::{CreateChat, Request};
use mediator_wire::response::*;
use mediator_wire::system::SystemEvent;
use mediator_wire::tlv::TlvMap;
use mediator_wire::Command;

fuzz_target!(|data: &[u8]| {
    if let Ok((frame, _)) = RequestFrame::decode(data) {
        if let (Some(cmd), Ok(map)) = (Command::from_u8(frame.header.cmd), TlvMap::parse(frame.payload)) {
            let _ = Request::decode(cmd, &map);
            let _ = CreateChat::decode(&map, &[0; 32]);
        }
    }
    if let Ok((frame, _)) = ResponseFrame::decode(data) {
        let p = frame.payload;
        let _ = decode_error_text(p);
        let _ = decode_messages(p);
        let _ = decode_members(p);
        let _ = decode_members_info(p);
        let _ = decode_user_chats(p);
        let _ = GotMessage::decode(p);
        let _ = Invite::decode(p);
        let _ = GotMemberInfo::decode(p);
        let _ = RequestMemberInfo::decode(p);
    }
    let _ = SystemEvent::decode(data);
});
