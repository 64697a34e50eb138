//! Property tests: decoders never panic on arbitrary bytes, and encode/decode round-trip.

use mediator_wire::frame::{FrameWriter, RequestFrame, ResponseFrame};
use mediator_wire::request::{CreateChat, Request};
use mediator_wire::response::*;
use mediator_wire::system::SystemEvent;
use mediator_wire::tlv::{self, TlvIter, TlvMap};
use mediator_wire::Command;
use proptest::prelude::*;

proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = RequestFrame::decode(&bytes);
        let _ = ResponseFrame::decode(&bytes);
        let _ = TlvIter::new(&bytes).count();
        if let Ok(m) = TlvMap::parse(&bytes) {
            for c in Command::ALL {
                let _ = Request::decode(c, &m);
            }
            let _ = CreateChat::decode(&m, &[0; 32]);
        }
        let _ = decode_messages(&bytes);
        let _ = decode_members(&bytes);
        let _ = decode_members_info(&bytes);
        let _ = decode_user_chats(&bytes);
        let _ = GotMessage::decode(&bytes);
        let _ = Invite::decode(&bytes);
        let _ = GotMemberInfo::decode(&bytes);
        let _ = SystemEvent::decode(&bytes);
        let _ = mediator_wire::frame::decode_error_text(&bytes);
    }

    #[test]
    fn varint_round_trip(v in 0u32..=tlv::MAX_VARINT_VALUE) {
        let mut out = Vec::new();
        tlv::put_varint(&mut out, v);
        prop_assert_eq!(out.len(), tlv::varint_len(v));
        prop_assert_eq!(tlv::read_varint(&out, 0).unwrap(), (v, out.len()));
    }

    #[test]
    fn tlv_round_trip(elems in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..12)) {
        let mut p = Vec::new();
        for (t, v) in &elems {
            tlv::put(&mut p, *t, v);
        }
        let back: Vec<(u8, Vec<u8>)> = TlvIter::new(&p).map(|e| e.map(|(t, v)| (t, v.to_vec()))).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(&back, &elems);
        let m = TlvMap::parse(&p).unwrap();
        for (t, _) in &elems {
            let last = elems.iter().rev().find(|(t2, _)| t2 == t).unwrap();
            prop_assert_eq!(m.get(*t).unwrap(), last.1.as_slice());
        }
    }

    #[test]
    fn messages_round_trip(recs in proptest::collection::vec((any::<i64>(), any::<i64>(), any::<i64>(), any::<[u8; 32]>(), proptest::collection::vec(any::<u8>(), 0..200)), 0..8)) {
        let mut w = FrameWriter::ok(1);
        put_list_count(&mut w, recs.len());
        for (id, guid, ts, a, b) in &recs {
            put_message(&mut w, *id, *guid, *ts, a, b);
        }
        let f = w.finish();
        let (frame, used) = ResponseFrame::decode(&f).unwrap();
        prop_assert_eq!(used, f.len());
        let back = decode_messages(frame.payload).unwrap();
        prop_assert_eq!(back.len(), recs.len());
        for (r, (id, guid, ts, a, b)) in back.iter().zip(&recs) {
            prop_assert_eq!((r.id, r.guid, r.timestamp, &r.author, &r.blob), (*id, *guid, *ts, a, b));
        }
    }

    #[test]
    fn members_round_trip(recs in proptest::collection::vec((any::<[u8; 32]>(), any::<u8>(), any::<bool>(), any::<i64>()), 0..8)) {
        let mut w = FrameWriter::ok(1);
        put_list_count(&mut w, recs.len());
        let recs: Vec<MemberRecord> = recs.into_iter().map(|(user, perms, online, last_seen)| MemberRecord { user, perms, online, last_seen }).collect();
        for r in &recs { r.put(&mut w); }
        let f = w.finish();
        prop_assert_eq!(decode_members(&f[7..]).unwrap(), recs);
    }

    #[test]
    fn system_round_trip(a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), perms in any::<u8>(), g in any::<i64>(), on in any::<bool>(), name in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40))) {
        for ev in [
            SystemEvent::UserBanned { target: a, actor: b, random: a },
            SystemEvent::PermsChanged { target: a, perms, actor: b, random: b },
            SystemEvent::MessageDeleted { guid: g, deleter: a },
            SystemEvent::MemberOnline { user: b, online: on, timestamp: g },
            SystemEvent::ChatInfoChange { actor: a, name: name.clone(), desc: None, avatar: Some(b.to_vec()) },
        ] {
            prop_assert_eq!(SystemEvent::decode(&ev.encode()).unwrap(), ev);
        }
    }
}
