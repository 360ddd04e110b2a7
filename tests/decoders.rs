//! Property tests: every decoder of peer, network or disk input returns an
//! error or a value for any bytes, and never panics; and what ferry encodes,
//! it decodes back.

use ferry::proto::hash::block_cv;
use ferry::proto::manifest::validate_path;
use ferry::proto::wire::{self, Control, Frame};
use ferry::proto::{Capabilities, Entry, EntryKind, Manifest, Receiver, ReceiverAction};
use ferry::signal::Ticket;
use ferry::signal::{self, Role, SignalMessage};
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
        let _ = ferry::files::resume::parse(&bytes, bs);
    }

    /// A receiver fed an arbitrary sequence of data messages after a valid
    /// offer fails cleanly or keeps going, and only ever writes blocks whose
    /// bytes match the chaining value it was given.
    #[test]
    fn receiver_survives_arbitrary_data(msgs in prop::collection::vec(arb_message(), 0..40)) {
        let mut r = Receiver::new();
        r.handle_control(Control::Hello { protocol: 1, software: "prop".into(), lanes: 0, max_datagram: 0, window: 0 });
        let m = Manifest { block_size: 16 * 1024, entries: vec![
            Entry { path: "a".into(), kind: EntryKind::File, size: Some(40_000), mode: 0 },
            Entry { path: "s".into(), kind: EntryKind::File, size: None, mode: 0 },
        ]};
        r.handle_control(Control::Manifest { block_size: m.block_size, entries: m.entries.clone(), more: false, left_out: Default::default() });
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

// ---------------------------------------------------------------------------
// Seed corpora for the cargo-fuzz targets in fuzz/. They are produced by the
// real encoders so that they follow the formats; regenerate them when a
// format changes with
//   cargo test --release --test decoders -- --ignored write_fuzz_seeds

use std::path::Path;

use bytes::Bytes;
use ferry::proto::hash::single_block_root;
use ferry::proto::{Held, Sender, SenderAction};
use ferry::signal::{ClientMessage, IceServer, Position, ServerMessage};

/// Key and room of the `signal_open` target.
const FUZZ_KEY: [u8; 32] = [7; 32];
const FUZZ_ROOM: &str = "00112233445566778899aabbccddeeff";
/// Block size and stream length of the `sender` target's offer.
const FUZZ_BLOCK_SIZE: u32 = 16 * 1024;
const FUZZ_STREAM_LEN: usize = 300;

/// The `sender` target's offer (fuzz/fuzz_targets/sender.rs, `manifest`)
/// when `big` is `FUZZ_BLOCK_SIZE + 100`; a smaller `d/a` keeps seeds small.
fn fuzz_manifest(big: u64) -> Manifest {
    let file = |path: &str, size| Entry {
        path: path.into(),
        kind: EntryKind::File,
        size,
        mode: 0o644,
    };
    Manifest {
        block_size: FUZZ_BLOCK_SIZE,
        entries: vec![
            Entry {
                path: "d".into(),
                kind: EntryKind::Dir,
                size: None,
                mode: 0o755,
            },
            file("d/a", Some(big)),
            file("b", Some(10)),
            file("e", Some(0)),
            file("s", None),
        ],
    }
}

fn fuzz_content(file: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(file as u8))
        .collect()
}

/// One record of the `receiver` and `sender` targets' input.
fn fuzz_record(out: &mut Vec<u8>, tag: u8, payload: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
}

/// A transfer of `manifest` between an in-memory sender (offering `lanes`)
/// and a receiver holding `have` (file, blocks) on disk, with the data
/// message `corrupt` (counting from 0) damaged on the way. Returns what the
/// receiver and what the sender were sent, in the targets' record format.
fn fuzz_transcript(
    manifest: &Manifest,
    lanes: u32,
    have: Vec<(u32, Vec<u64>)>,
    corrupt: Option<usize>,
) -> (Vec<u8>, Vec<u8>) {
    let mut s = Sender::with_lanes(manifest.clone(), 4, Capabilities::lanes(lanes));
    let mut r = Receiver::with_lanes(Capabilities::lanes(2));
    let (mut to_r, mut to_s) = (Vec::new(), Vec::new());
    let size_of = |file: u32| {
        manifest.entries[file as usize]
            .size
            .map_or(FUZZ_STREAM_LEN, |n| n as usize)
    };
    // Held blocks, built the way the target builds them from a tag-2 record.
    let mut held_items = Vec::new();
    let mut held = Vec::new();
    for (file, blocks) in have {
        let data = fuzz_content(file, size_of(file));
        let mut h = Held::default();
        for block in blocks {
            let offset = block * u64::from(FUZZ_BLOCK_SIZE);
            let end = (offset as usize + FUZZ_BLOCK_SIZE as usize).min(data.len());
            let cv = block_cv(offset, &data[offset as usize..end]);
            if block == 0 {
                h.single_root = Some(blake3::hash(&cv));
            }
            h.blocks.push((block, cv));
            held_items.extend_from_slice(&file.to_be_bytes());
            held_items.extend_from_slice(&block.to_be_bytes());
            held_items.extend_from_slice(&cv);
        }
        held.push((file, h));
    }
    if !held_items.is_empty() {
        fuzz_record(&mut to_r, 2, &held_items);
    }
    let mut held = Some(held);
    let (mut open_lanes, mut next_lane, mut data_msgs) = (0u32, 0u32, 0usize);
    for _ in 0..10_000 {
        let mut progress = false;
        while let Some(action) = s.poll_action() {
            progress = true;
            match action {
                SenderAction::SendControl(msg) => {
                    fuzz_record(&mut to_r, 0, msg.encode().as_bytes());
                    r.handle_control(msg);
                }
                SenderAction::Read(req) => {
                    let all = fuzz_content(req.file, size_of(req.file));
                    let start = (req.offset as usize).min(all.len());
                    let end = (start + req.len as usize).min(all.len());
                    let bytes = Bytes::copy_from_slice(&all[start..end]);
                    let cv = (!bytes.is_empty()).then(|| block_cv(req.offset, &bytes));
                    let root = (req.block == 0).then(|| single_block_root(&bytes));
                    s.block_read(&req, bytes, cv, root);
                }
                SenderAction::OfferLane(lane) => s.lane_offer(lane, format!("offer {lane}")),
                SenderAction::LaneAnswered { .. } => open_lanes += 1,
                SenderAction::Finished | SenderAction::Failed(_) => {}
            }
        }
        while let Some(item) = s.poll_data() {
            progress = true;
            // Tag 3: the data channel takes one item.
            fuzz_record(&mut to_s, 3, &[]);
            let lane = match item {
                ferry::proto::DataItem::Block { .. } if open_lanes > 0 => {
                    next_lane = next_lane % open_lanes + 1;
                    next_lane
                }
                _ => 0,
            };
            for msg in item.messages() {
                let mut msg = msg.to_vec();
                if msg[0] == wire::DATA_PREFIX {
                    if corrupt == Some(data_msgs) {
                        msg[1] ^= 1;
                    }
                    data_msgs += 1;
                }
                fuzz_record(&mut to_r, 1 | (lane as u8) << 2, &msg);
                r.handle_lane_data(lane, &msg);
            }
        }
        while let Some(action) = r.poll_action() {
            progress = true;
            match action {
                ReceiverAction::SendControl(msg) => {
                    fuzz_record(&mut to_s, 0, msg.encode().as_bytes());
                    s.handle_control(msg);
                }
                ReceiverAction::Offer(m) => r.accept(m, held.take().unwrap_or_default()),
                ReceiverAction::Finish { file, .. } => r.file_finished(file),
                ReceiverAction::AnswerLane { lane, .. } => {
                    r.lane_answer(lane, format!("answer {lane}"))
                }
                ReceiverAction::Write { .. }
                | ReceiverAction::Finished
                | ReceiverAction::Failed(_) => {}
            }
        }
        if !progress {
            break;
        }
    }
    (to_r, to_s)
}

fn write_seeds(target: &str, seeds: &[Vec<u8>]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("seed-") {
            std::fs::remove_file(&path).unwrap();
        }
    }
    for (i, seed) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
    }
}

#[test]
#[ignore = "writes fuzz/corpus/*/seed-*; run by hand when a format changes"]
fn write_fuzz_seeds() {
    let tickets = [
        vec!["ws://127.0.0.1:8080".to_string()],
        vec!["wss://ferry.example.org".into(), "ws://[::1]:9000/x".into()],
        (0..8).map(|i| format!("ws://10.0.0.{i}:80")).collect(),
    ];
    write_seeds(
        "ticket",
        &tickets
            .into_iter()
            .enumerate()
            .map(|(i, servers)| {
                let t = Ticket::new(servers, [i as u8 * 40; 32]).unwrap();
                t.to_string().into_bytes()
            })
            .collect::<Vec<_>>(),
    );

    let signals = [
        SignalMessage::Description {
            sdp_type: "offer".into(),
            sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n".into(),
            session: Some("s1".into()),
        },
        SignalMessage::Candidate {
            candidate: "candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
        },
        SignalMessage::Bye {
            reason: "cancelled".into(),
        },
    ];
    let aad = signal::associated_data(FUZZ_ROOM, Role::Offerer);
    write_seeds(
        "signal_open",
        &signals
            .iter()
            .map(|m| signal::seal(&FUZZ_KEY, &aad, m).into_bytes())
            .collect::<Vec<_>>(),
    );

    let tagged = |which: u8, json: Vec<u8>| [vec![which], json].concat();
    let mut json = [
        ServerMessage::Welcome {
            position: Position::First,
            ice_servers: vec![IceServer {
                urls: vec!["turn:192.0.2.1:3478?transport=udp".into()],
                username: Some("u".into()),
                credential: Some("p".into()),
            }],
        },
        ServerMessage::PeerJoined,
        ServerMessage::Relay {
            data: "AAAA".into(),
        },
        ServerMessage::PeerLeft,
        ServerMessage::Error {
            code: "room_full".into(),
            message: "full".into(),
        },
    ]
    .iter()
    .map(|m| tagged(0, serde_json::to_vec(m).unwrap()))
    .collect::<Vec<_>>();
    json.push(tagged(0, br#"{"type":"from_the_future","x":[1]}"#.to_vec()));
    json.push(tagged(
        1,
        serde_json::to_vec(&ClientMessage::Relay {
            data: "AAAA".into(),
        })
        .unwrap(),
    ));
    json.extend(
        signals
            .iter()
            .map(|m| tagged(2, serde_json::to_vec(m).unwrap())),
    );
    write_seeds("signal_json", &json);

    let small = fuzz_manifest(100);
    let mut controls = vec![
        Control::Hello {
            protocol: 1,
            software: "ferry 0.1.0".into(),
            lanes: 2,
            max_datagram: 65_000,
            window: 4 << 20,
        },
        Control::Credit { consumed: 1 << 40 },
        Control::Lane {
            lane: 1,
            sdp: "v=0\r\n".into(),
        },
        Control::Accept {
            have: vec![wire::HaveFile {
                file: 1,
                blocks: vec![wire::HaveBlock {
                    block: 0,
                    cv: wire::cv_to_hex(&[9; 32]),
                }],
            }],
        },
        Control::Resend { file: 1, block: 0 },
        Control::Done,
        Control::Cancel {
            reason: "no".into(),
        },
    ];
    controls.extend(wire::manifest_parts(&small, &Default::default()));
    write_seeds(
        "control",
        &controls
            .iter()
            .map(|c| c.encode().into_bytes())
            .collect::<Vec<_>>(),
    );

    write_seeds(
        "frame",
        &[
            wire::encode_block_header(1, 2, FUZZ_BLOCK_SIZE, &[5; 32]),
            vec![wire::DATA_PREFIX, 1, 2, 3],
            wire::encode_file_end(1, 40_000, &[6; 32]),
        ],
    );

    let nested = Manifest {
        block_size: 1 << 20,
        entries: vec![
            Entry {
                path: "日本".into(),
                kind: EntryKind::Dir,
                size: None,
                mode: 0o755,
            },
            Entry {
                path: "日本/é.txt".into(),
                kind: EntryKind::File,
                size: Some(1),
                mode: 0,
            },
        ],
    };
    write_seeds(
        "manifest",
        &[
            serde_json::to_vec(&small).unwrap(),
            serde_json::to_vec(&nested).unwrap(),
            b"a/b/c.txt".to_vec(),
            b".hidden/x..y".to_vec(),
        ],
    );

    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join(".f.ferry-part");
    let mut log = ferry::files::resume::StateLog::open(&part, 1 << 20).unwrap();
    for (block, cv) in [(0, [1; 32]), (2, [2; 32]), (0, [3; 32])] {
        log.record(block, &cv).unwrap();
    }
    let state = std::fs::read(ferry::files::resume::state_path(&part)).unwrap();
    write_seeds("resume_state", &[state[..16].to_vec(), state]);

    let big = fuzz_manifest(u64::from(FUZZ_BLOCK_SIZE) + 100);
    let runs = [
        fuzz_transcript(&big, 0, vec![], None),
        fuzz_transcript(&small, 2, vec![], None),
        fuzz_transcript(&big, 0, vec![(1, vec![0, 1])], None),
        fuzz_transcript(&small, 0, vec![], Some(1)),
    ];
    write_seeds(
        "receiver",
        &runs.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>(),
    );
    write_seeds(
        "sender",
        &runs.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>(),
    );
}
