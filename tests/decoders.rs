//! Property tests: every decoder of peer, network or disk input returns an
//! error or a value for any bytes, and never panics; and what ferry encodes,
//! it decodes back.

use ferry::proto::hash::block_cv;
use ferry::proto::manifest::validate_path;
use ferry::proto::wire::{self, Control, Frame};
use ferry::proto::{Entry, EntryKind, Manifest, Receiver, ReceiverAction};
use ferry::signal::{self, Role, SignalMessage};
use ferry::ticket::Ticket;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn ticket_parser_never_panics(s in "\\PC{0,300}") {
        let _ = s.parse::<Ticket>();
    }

    #[test]
    fn ticket_like_strings_never_panic(body in "[a-z2-7]{0,200}") {
        let _ = format!("ferry{body}").parse::<Ticket>();
    }

    #[test]
    fn tickets_round_trip(secret in any::<[u8; 32]>(), port in 1u16.., n in 1usize..=8) {
        let servers = (0..n).map(|i| format!("ws://10.0.0.{i}:{port}")).collect();
        let t = Ticket { servers, secret };
        prop_assert_eq!(t.to_string().parse::<Ticket>().ok(), Some(t));
    }

    #[test]
    fn sealed_envelopes_never_panic(s in "\\PC{0,400}", key in any::<[u8; 32]>()) {
        let _ = signal::open(&key, "ferry/1|room|offerer", &s);
    }

    #[test]
    fn sealed_envelopes_open_only_unchanged(key in any::<[u8; 32]>(), sdp in "\\PC{0,200}", flip in any::<prop::sample::Index>()) {
        let aad = signal::associated_data("00112233445566778899aabbccddeeff", Role::Offerer);
        let msg = SignalMessage::Description { sdp_type: "offer".into(), sdp, session: Some("s1".into()) };
        let sealed = signal::seal(&key, &aad, &msg);
        prop_assert_eq!(signal::open(&key, &aad, &sealed).ok(), Some(msg));
        let mut bytes = sealed.into_bytes();
        let i = flip.index(bytes.len());
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        prop_assert!(signal::open(&key, &aad, &tampered).is_err());
    }

    #[test]
    fn control_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Control::decode(&bytes);
    }

    #[test]
    fn control_json_shapes_never_panic(kind in prop::sample::select(vec!["hello", "manifest", "accept", "resend", "done", "cancel"]),
                                       field in "[a-z_]{0,10}", value in "\\PC{0,20}", num in any::<i64>()) {
        for json in [
            format!(r#"{{"type":"{kind}","{field}":"{value}"}}"#),
            format!(r#"{{"type":"{kind}","{field}":{num}}}"#),
            format!(r#"{{"type":"{kind}","file":{num},"block":{num}}}"#),
            format!(r#"{{"type":"{kind}","block_size":{num},"entries":[{{"path":"{value}","kind":"file","size":{num}}}]}}"#),
        ] {
            let _ = Control::decode(json.as_bytes());
        }
    }

    #[test]
    fn frame_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        let _ = Frame::decode(&bytes);
    }

    #[test]
    fn paths_never_panic_and_accepted_paths_are_tame(p in "\\PC{0,64}") {
        if let Ok(parts) = validate_path(&p) {
            for part in parts {
                prop_assert!(!part.is_empty() && part != "." && part != "..");
                prop_assert!(!part.contains('/') && !part.contains('\\') && !part.contains('\0'));
            }
            prop_assert!(!p.starts_with('/'));
        }
    }

    #[test]
    fn manifests_never_panic(paths in prop::collection::vec("[a-zA-Z./\\\\:]{0,12}", 0..12), sizes in prop::collection::vec(any::<Option<u64>>(), 12), block_size in any::<u32>()) {
        let entries = paths.into_iter().zip(sizes).enumerate().map(|(i, (path, size))| Entry {
            path, kind: if i % 3 == 0 { EntryKind::Dir } else { EntryKind::File }, size, mode: 0o644,
        }).collect();
        let _ = Manifest { block_size, entries }.validate();
    }

    #[test]
    fn resume_state_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400), bs in any::<u32>()) {
        let _ = ferry::resume::parse(&bytes, bs);
    }

    /// A receiver fed an arbitrary sequence of data messages after a valid
    /// offer fails cleanly or keeps going, and only ever writes blocks whose
    /// bytes match the chaining value it was given.
    #[test]
    fn receiver_survives_arbitrary_data(msgs in prop::collection::vec(arb_message(), 0..40)) {
        let mut r = Receiver::new();
        r.handle_control(Control::Hello { protocol: 1, software: "prop".into(), lanes: 0 });
        let m = Manifest { block_size: 16 * 1024, entries: vec![
            Entry { path: "a".into(), kind: EntryKind::File, size: Some(40_000), mode: 0 },
            Entry { path: "s".into(), kind: EntryKind::File, size: None, mode: 0 },
        ]};
        r.handle_control(Control::Manifest { block_size: m.block_size, entries: m.entries.clone(), more: false });
        r.accept(m, vec![]);
        for msg in &msgs {
            r.handle_data(msg);
        }
        while let Some(action) = r.poll_action() {
            if let ReceiverAction::Write { offset, cv, data, .. } = action {
                prop_assert_eq!(block_cv(offset, &data), cv);
            }
        }
    }
}

fn arb_message() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0u32..3, 0u64..4, 0u32..20_000, any::<[u8; 32]>())
            .prop_map(|(f, b, len, cv)| wire::encode_block_header(f, b, len, &cv)),
        prop::collection::vec(any::<u8>(), 1..3000).prop_map(|mut v| {
            v.insert(0, wire::DATA_PREFIX);
            v
        }),
        (0u32..3, 0u64..50_000, any::<[u8; 32]>())
            .prop_map(|(f, s, r)| wire::encode_file_end(f, s, &r)),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}
