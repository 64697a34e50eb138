//! Golden-byte tests: every frame the server emits, byte for byte, against the spec's layouts
//! and worked examples (`mediator-protocol.md` §2–§7).

use mediator_wire::frame::{error_frame, FrameWriter};
use mediator_wire::response::*;
use mediator_wire::system::SystemEvent;
use mediator_wire::tlv::tag;
use mediator_wire::Command;

fn h(b: &[u8]) -> String {
    hex::encode(b)
}

#[test]
fn get_nonce_request_and_response() {
    // §5.1: request 01 rrrr 00000022 01 20 <32B pk>; response 00 rrrr 00000022 03 20 <nonce>.
    let mut w = FrameWriter::request(Command::GetNonce, 0x1234);
    w.tlv(tag::PUBKEY, &[0x11; 32]);
    assert_eq!(
        h(&w.finish()),
        format!("01123400000022 0120{}", "11".repeat(32)).replace(' ', "")
    );
    assert_eq!(
        h(&encode_nonce(0x1234, &[0x22; 32])),
        format!("00123400000022 0320{}", "22".repeat(32)).replace(' ', "")
    );
}

#[test]
fn auth_request_example() {
    // §5.2: 02 rrrr 00000086 01 20 <pk> 03 20 <nonce> 02 40 <sig>.
    let mut w = FrameWriter::request(Command::Auth, 2);
    w.tlv(tag::PUBKEY, &[1; 32])
        .tlv(tag::NONCE, &[2; 32])
        .tlv(tag::SIGNATURE, &[3; 64]);
    assert_eq!(
        h(&w.finish()),
        format!(
            "02000200000086 0120{} 0320{} 0240{}",
            "01".repeat(32),
            "02".repeat(32),
            "03".repeat(64)
        )
        .replace(' ', "")
    );
}

#[test]
fn empty_ok_error_and_delete_chat() {
    assert_eq!(h(&FrameWriter::ok(7).finish()), "00000700000000");
    assert_eq!(
        h(&error_frame(2, "unknown nonce")),
        "0100020000000f000d756e6b6e6f776e206e6f6e6365"
    );
    assert_eq!(
        h(&error_frame(0x0102, "bad tlv payload")),
        format!("01010200000011000f{}", h(b"bad tlv payload"))
    );
    assert_eq!(h(&encode_delete_chat(9)), "0000090000000101");
}

#[test]
fn single_value_responses() {
    assert_eq!(
        h(&encode_i64(5, tag::CHAT_ID, 0x0102030405060708)),
        "0000050000000a 10080102030405060708".replace(' ', "")
    );
    assert_eq!(
        h(&encode_send_message(5, -1, 3)),
        "00000500000014 1208ffffffffffffffff 11080000000000000003".replace(' ', "")
    );
}

#[test]
fn got_message_push() {
    let f = GotMessage::frame(1, 2, 3, 4, &[0xaa; 32], b"hi");
    assert_eq!(
        h(&f),
        format!(
            "0000320000004e 1008{} 1108{} 1208{} 3208{} 0120{} 2302{}",
            "0000000000000001",
            "0000000000000002",
            "0000000000000003",
            "0000000000000004",
            "aa".repeat(32),
            "6869"
        )
        .replace(' ', "")
    );
    let (frame, _) = mediator_wire::frame::ResponseFrame::decode(&f).unwrap();
    assert_eq!(frame.push_code(), Some(mediator_wire::PushCode::GotMessage));
    let m = GotMessage::decode(frame.payload).unwrap();
    assert_eq!(
        (m.chat_id, m.message.id, m.message.blob.as_slice()),
        (1, 2, &b"hi"[..])
    );
}

#[test]
fn chat_deleted_push_is_tlv() {
    // B1 fix: CHAT_DELETED travels as a normal GOT_MESSAGE with message id 0.
    let body = SystemEvent::ChatDeleted {
        actor: [1; 32],
        random: [2; 32],
    }
    .encode();
    let f = GotMessage::frame(77, 0, 99, 1000, &[9; 32], &body);
    let (frame, _) = mediator_wire::frame::ResponseFrame::decode(&f).unwrap();
    let m = GotMessage::decode(frame.payload).unwrap();
    assert_eq!(m.message.id, 0);
    assert_eq!(m.message.blob.len(), 65);
    assert_eq!(m.message.blob[0], 0x05);
}

#[test]
fn messages_since_flat_records() {
    let mut w = FrameWriter::ok(1);
    put_list_count(&mut w, 2);
    put_message(&mut w, 1, 10, 100, &[1; 32], b"a");
    put_message(&mut w, 2, 20, 200, &[2; 32], b"");
    let f = w.finish();
    assert_eq!(
        h(&f[7..]),
        format!(
            "310400000002 1108{} 1208{} 3208{} 0120{} 230161 1108{} 1208{} 3208{} 0120{} 2300",
            "0000000000000001",
            "000000000000000a",
            "0000000000000064",
            "01".repeat(32),
            "0000000000000002",
            "0000000000000014",
            "00000000000000c8",
            "02".repeat(32)
        )
        .replace(' ', "")
    );
    let recs = decode_messages(&f[7..]).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].blob, b"");

    // Built record by record with the count filled in at the end: the same bytes, header
    // included (a count past 255 too).
    let mut a = MessagesAnswer::new(1, 0);
    a.push(1, 10, 100, &[1; 32], b"a");
    a.push(2, 20, 200, &[2; 32], b"");
    assert_eq!(a.count(), 2);
    assert_eq!(a.finish(), f);
    let (mut a, mut w) = (MessagesAnswer::new(9, 16), FrameWriter::ok(9));
    put_list_count(&mut w, 300);
    for i in 0..300 {
        a.push(i, i, i, &[7; 32], &[i as u8; 3]);
        put_message(&mut w, i, i, i, &[7; 32], &[i as u8; 3]);
    }
    assert_eq!(a.finish(), w.finish());
    assert_eq!(
        h(&MessagesAnswer::new(3, 0).finish()),
        "00000300000006310400000000"
    );
}

#[test]
fn members_and_member_info() {
    let mut w = FrameWriter::ok(1);
    put_list_count(&mut w, 1);
    MemberRecord {
        user: [3; 32],
        perms: 0x90,
        online: true,
        last_seen: 5,
    }
    .put(&mut w);
    let f = w.finish();
    assert_eq!(
        h(&f[7..]),
        format!(
            "310400000001 1520{} 330190 340101 37080000000000000005",
            "03".repeat(32)
        )
        .replace(' ', "")
    );
    assert_eq!(decode_members(&f[7..]).unwrap()[0].perms, 0x90);

    let f = GotMemberInfo::frame(4, &[5; 32], b"xyz", 6);
    assert_eq!(
        h(&f),
        format!(
            "00005400000041 10080000000000000004 310400000001 1520{} 240378797a 32080000000000000006",
            "05".repeat(32)
        )
        .replace(' ', "")
    );
    let r = RequestMemberInfo {
        chat_id: 4,
        last_update: 0,
    }
    .frame();
    assert_eq!(
        h(&r),
        "00005100000014 10080000000000000004 36080000000000000000".replace(' ', "")
    );
}

#[test]
fn invite_push_element_order() {
    let inv = Invite {
        invite_id: 1,
        chat_id: 2,
        from: [7; 32],
        timestamp: 3,
        name: b"n".to_vec(),
        desc: b"".to_vec(),
        avatar: None,
        data: vec![0xee; 2],
    };
    let f = inv.frame();
    assert_eq!(
        h(&f[7..]),
        format!(
            "13080000000000000001 10080000000000000002 0120{} 32080000000000000003 20016e 2100 2502eeee",
            "07".repeat(32)
        )
        .replace(' ', "")
    );
    let with_avatar = Invite {
        avatar: Some(vec![]),
        ..inv.clone()
    };
    let f2 = with_avatar.frame();
    assert!(h(&f2[7..]).contains("2100 2200 2502".replace(' ', "").as_str()));
    assert_eq!(Invite::decode(&f2[7..]).unwrap(), with_avatar);
    assert_eq!(Invite::decode(&f[7..]).unwrap(), inv);
}

#[test]
fn user_chats_list() {
    let f = encode_user_chats(3, &[1, 2]);
    assert_eq!(
        h(&f),
        "0000030000001a 310400000002 10080000000000000001 10080000000000000002".replace(' ', "")
    );
    assert_eq!(decode_user_chats(&f[7..]).unwrap(), vec![1, 2]);
}
