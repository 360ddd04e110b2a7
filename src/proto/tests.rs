//! A sender and a receiver driven against each other in memory.

use std::collections::HashMap;

use bytes::Bytes;

use super::hash::{block_cv, single_block_root, Cv};
use super::*;

const BS: u32 = 16 * 1024;

struct Outcome {
    sender: Result<(), ProtoError>,
    receiver: Result<(), ProtoError>,
    /// Final file contents by file index, for files the receiver finished.
    files: HashMap<u32, Vec<u8>>,
    /// Blocks written by file index, in order.
    writes: Vec<(u32, u64)>,
    bytes_received: u64,
    /// Lanes the sender was told to open.
    lanes_opened: u32,
}

/// What the in-memory network and disk may do to the transfer.
#[derive(Default)]
struct Faults {
    /// Flip a byte in the data message with this index (counting data messages).
    corrupt_data_msgs: Vec<usize>,
    /// Corrupt every data message (a peer that never sends good data).
    corrupt_all: bool,
    /// Replace the manifest the sender offers.
    manifest: Option<Manifest>,
    /// Extra raw messages injected before the first real data message.
    inject: Vec<Vec<u8>>,
    /// Lanes each side offers in its hello (sender, receiver).
    lanes: (u32, u32),
    /// Flow-control windows in the hellos (sender, receiver).
    window: (u32, u32),
}

fn file(path: &str, size: u64) -> Entry {
    Entry {
        path: path.into(),
        kind: EntryKind::File,
        size: Some(size),
        mode: 0o644,
    }
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

fn transfer(
    manifest: Manifest,
    sources: Vec<Vec<u8>>,
    have_disk: HashMap<u32, Vec<u8>>,
    faults: Faults,
) -> Outcome {
    let offered = faults.manifest.clone().unwrap_or_else(|| manifest.clone());
    let caps = |lanes, window| Capabilities {
        lanes,
        window,
        ..Capabilities::default()
    };
    let mut sender = Sender::with_lanes(manifest, 4, caps(faults.lanes.0, faults.window.0));
    let mut receiver = Receiver::with_lanes(caps(faults.lanes.1, faults.window.1));
    let mut disk: HashMap<u32, Vec<u8>> = have_disk.clone();
    let mut out = Outcome {
        sender: Ok(()),
        receiver: Ok(()),
        files: HashMap::new(),
        writes: Vec::new(),
        bytes_received: 0,
        lanes_opened: 0,
    };
    let (mut s_done, mut r_done) = (false, false);
    let mut data_msgs = 0usize;
    let mut injected = false;
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 100_000, "no progress");
        let mut progress = false;
        while let Some(action) = sender.poll_action() {
            progress = true;
            match action {
                SenderAction::SendControl(msg) => {
                    let msg = match (msg, &faults.manifest) {
                        (Control::Manifest { .. }, Some(_)) => Control::Manifest {
                            block_size: offered.block_size,
                            entries: offered.entries.clone(),
                            more: false,
                            left_out: Default::default(),
                        },
                        (msg, _) => msg,
                    };
                    receiver.handle_control(Control::decode(msg.encode().as_bytes()).unwrap());
                }
                SenderAction::Read(req) => {
                    let src = &sources[req.file as usize];
                    let start = (req.offset as usize).min(src.len());
                    let end = (start + req.len as usize).min(src.len());
                    let bytes = Bytes::copy_from_slice(&src[start..end]);
                    let cv = (!bytes.is_empty()).then(|| block_cv(req.offset, &bytes));
                    let root = (req.block == 0).then(|| single_block_root(&bytes));
                    sender.block_read(&req, bytes, cv, root);
                }
                // The SDP of a lane is the driver's; here a stand-in text
                // that each side checks it got from the other.
                SenderAction::OfferLane(lane) => sender.lane_offer(lane, format!("offer {lane}")),
                SenderAction::LaneAnswered { lane, sdp } => {
                    assert_eq!(sdp, format!("answer {lane}"));
                    out.lanes_opened += 1;
                }
                SenderAction::Finished => s_done = true,
                SenderAction::Failed(e) => {
                    out.sender = Err(e);
                    s_done = true;
                }
            }
        }
        // With lanes open, file ends go on lane 0 and blocks round-robin on
        // the others; lane 0 is delivered first (a file's end overtakes its
        // blocks) and the other lanes' messages interleave one by one.
        if out.lanes_opened > 0 {
            let lanes = out.lanes_opened as usize;
            let mut queues: Vec<std::collections::VecDeque<bytes::BytesMut>> =
                vec![Default::default(); lanes + 1];
            let mut next = 0;
            while let Some(item) = sender.poll_data() {
                progress = true;
                let lane = match item {
                    DataItem::FileEnd { .. } => 0,
                    DataItem::Block { .. } => {
                        next += 1;
                        1 + next % lanes
                    }
                };
                queues[lane].extend(item.messages());
            }
            while let Some(msg) = queues[0].pop_front() {
                receiver.handle_lane_data(0, &msg);
            }
            while queues.iter().any(|q| !q.is_empty()) {
                for (lane, q) in queues.iter_mut().enumerate() {
                    if let Some(msg) = q.pop_front() {
                        receiver.handle_lane_data(lane as u32, &msg);
                    }
                }
            }
        }
        while let Some(item) = sender.poll_data() {
            progress = true;
            if !injected {
                injected = true;
                for m in &faults.inject {
                    receiver.handle_data(m);
                }
            }
            for mut msg in item.messages() {
                if msg[0] == wire::DATA_PREFIX {
                    if faults.corrupt_all || faults.corrupt_data_msgs.contains(&data_msgs) {
                        let last = msg.len() - 1;
                        msg[last] ^= 0x40;
                    }
                    data_msgs += 1;
                }
                receiver.handle_data(&msg);
            }
        }
        while let Some(action) = receiver.poll_action() {
            progress = true;
            match action {
                ReceiverAction::SendControl(msg) => {
                    sender.handle_control(Control::decode(msg.encode().as_bytes()).unwrap())
                }
                ReceiverAction::Offer(m) => {
                    // Re-verify held blocks as a driver would: by their data.
                    let have = have_disk
                        .iter()
                        .map(|(&f, bytes)| {
                            let blocks = bytes
                                .chunks(m.block_size as usize)
                                .enumerate()
                                .filter(|(_, c)| c.len() == m.block_size as usize)
                                .map(|(i, c)| {
                                    (i as u64, block_cv(i as u64 * u64::from(m.block_size), c))
                                })
                                .collect::<Vec<(u64, Cv)>>();
                            (
                                f,
                                Held {
                                    blocks,
                                    single_root: None,
                                },
                            )
                        })
                        .collect();
                    receiver.accept(m, have);
                }
                ReceiverAction::Write {
                    file,
                    block,
                    offset,
                    data,
                    ..
                } => {
                    // So that the disk writer can write it with O_DIRECT as it is.
                    let align = crate::proto::receiver::BLOCK_ALIGN;
                    assert_eq!(data.as_ptr() as usize % align, 0, "block {block} unaligned");
                    let f = disk.entry(file).or_default();
                    let end = offset as usize + data.len();
                    if f.len() < end {
                        f.resize(end, 0);
                    }
                    f[offset as usize..end].copy_from_slice(&data);
                    out.writes.push((file, block));
                }
                ReceiverAction::Finish { file, size, root } => {
                    let mut f = disk.remove(&file).unwrap_or_default();
                    f.truncate(size as usize);
                    assert_eq!(blake3::hash(&f), root, "finished file must match its root");
                    out.files.insert(file, f);
                    receiver.file_finished(file);
                }
                ReceiverAction::AnswerLane { lane, offer } => {
                    assert_eq!(offer, format!("offer {lane}"));
                    receiver.lane_answer(lane, format!("answer {lane}"));
                }
                ReceiverAction::Finished => r_done = true,
                ReceiverAction::Failed(e) => {
                    out.receiver = Err(e);
                    r_done = true;
                }
            }
        }
        if !progress || (s_done && r_done) {
            break;
        }
    }
    out.bytes_received = receiver.stats.bytes_received;
    out
}

/// A manifest of files `f0`, `f1`, ... with the sizes of `sources`.
fn numbered_files(sources: &[Vec<u8>]) -> Manifest {
    manifest(
        sources
            .iter()
            .enumerate()
            .map(|(i, d)| file(&format!("f{i}"), d.len() as u64))
            .collect(),
    )
}

fn manifest(entries: Vec<Entry>) -> Manifest {
    Manifest {
        block_size: BS,
        entries,
    }
}

#[test]
fn tree_transfers_byte_identical_with_b3sum_roots() {
    let sizes = [
        0usize,
        1,
        BS as usize - 1,
        BS as usize,
        BS as usize + 1,
        5 * BS as usize + 123,
        9 * BS as usize,
    ];
    let mut entries = vec![Entry {
        path: "d".into(),
        kind: EntryKind::Dir,
        size: None,
        mode: 0o755,
    }];
    let mut sources = vec![Vec::new()];
    for (i, &s) in sizes.iter().enumerate() {
        entries.push(file(&format!("d/f{i}"), s as u64));
        sources.push(data(s, i as u8));
    }
    let out = transfer(
        manifest(entries),
        sources.clone(),
        HashMap::new(),
        Faults::default(),
    );
    assert_eq!(out.sender, Ok(()));
    assert_eq!(out.receiver, Ok(()));
    for (i, src) in sources.iter().enumerate().skip(1) {
        assert_eq!(out.files.get(&(i as u32)), Some(src), "file {i}");
    }
    assert_eq!(out.bytes_received, sizes.iter().sum::<usize>() as u64);
}

#[test]
fn corrupted_block_is_fetched_again() {
    let src = data(4 * BS as usize, 3);
    let faults = Faults {
        corrupt_data_msgs: vec![0],
        ..Default::default()
    };
    let out = transfer(
        manifest(vec![file("a", src.len() as u64)]),
        vec![src.clone()],
        HashMap::new(),
        faults,
    );
    assert_eq!(out.receiver, Ok(()));
    assert_eq!(out.files.get(&0), Some(&src));
    // Block 0 was written once, after the resend: 4 blocks in all.
    assert_eq!(out.writes.len(), 4);
    assert_eq!(out.bytes_received, src.len() as u64 + u64::from(BS));
}

#[test]
fn always_bad_blocks_fail_after_bounded_retries() {
    let src = data(2 * BS as usize, 1);
    let faults = Faults {
        corrupt_all: true,
        ..Default::default()
    };
    let out = transfer(
        manifest(vec![file("a", src.len() as u64)]),
        vec![src],
        HashMap::new(),
        faults,
    );
    assert!(
        matches!(out.receiver, Err(ProtoError::Verify { .. })),
        "{:?}",
        out.receiver
    );
    assert!(out.sender.is_err());
    assert!(out.files.is_empty());
}

#[test]
fn hostile_manifest_is_refused_before_any_write() {
    for path in ["../escape", "/etc/passwd", "a/../../b", "C:\\x"] {
        let faults = Faults {
            manifest: Some(manifest(vec![file(path, 3)])),
            ..Default::default()
        };
        let out = transfer(
            manifest(vec![file("ok", 3)]),
            vec![data(3, 0)],
            HashMap::new(),
            faults,
        );
        assert!(
            matches!(out.receiver, Err(ProtoError::Manifest(_))),
            "{path}: {:?}",
            out.receiver
        );
        assert!(matches!(out.sender, Err(ProtoError::PeerCancelled(_))));
        assert!(out.writes.is_empty());
    }
}

#[test]
fn resume_moves_only_missing_blocks_and_refetches_changed_ones() {
    let src = data(10 * BS as usize, 9);
    // The receiver holds the first 6 blocks, but block 2 differs from the source.
    let mut held = src[..6 * BS as usize].to_vec();
    held[2 * BS as usize + 5] ^= 1;
    let out = transfer(
        manifest(vec![file("big", src.len() as u64)]),
        vec![src.clone()],
        HashMap::from([(0, held)]),
        Faults::default(),
    );
    assert_eq!(out.receiver, Ok(()));
    assert_eq!(out.files.get(&0), Some(&src));
    // Blocks 6..10 plus the changed block 2.
    assert_eq!(out.bytes_received, 5 * u64::from(BS));
    let mut written: Vec<u64> = out.writes.iter().map(|w| w.1).collect();
    written.sort();
    assert_eq!(written, vec![2, 6, 7, 8, 9]);
}

#[test]
fn hostile_frames_fail_cleanly() {
    let src = data(3 * BS as usize, 2);
    let cases: Vec<Vec<u8>> = vec![
        vec![wire::DATA_PREFIX, 1, 2, 3],              // data without header
        wire::encode_block_header(7, 0, 10, &[0; 32]), // unknown file
        wire::encode_block_header(0, 99, BS, &[0; 32]), // past the end
        wire::encode_block_header(0, u64::MAX, BS, &[0; 32]), // offset overflow
        wire::encode_block_header(0, 0, BS + 1, &[0; 32]), // wrong length
        wire::encode_file_end(0, 5, &[0; 32]),         // wrong size
        vec![42],                                      // unknown kind
    ];
    for inject in cases {
        let faults = Faults {
            inject: vec![inject.clone()],
            ..Default::default()
        };
        let out = transfer(
            manifest(vec![file("a", src.len() as u64)]),
            vec![src.clone()],
            HashMap::new(),
            faults,
        );
        assert!(
            matches!(out.receiver, Err(ProtoError::Protocol(_))),
            "{inject:?}: {:?}",
            out.receiver
        );
        assert!(out.files.is_empty());
    }
}

#[test]
fn stream_of_unknown_length() {
    for len in [0usize, 5, BS as usize, 3 * BS as usize + 17] {
        let src = data(len, 4);
        let entry = Entry {
            path: "stdin".into(),
            kind: EntryKind::File,
            size: None,
            mode: 0,
        };
        let out = transfer(
            manifest(vec![entry]),
            vec![src.clone()],
            HashMap::new(),
            Faults::default(),
        );
        assert_eq!(out.receiver, Ok(()), "len {len}");
        assert_eq!(out.files.get(&0), Some(&src), "len {len}");
    }
}

#[test]
fn empty_folder_only_transfer_finishes() {
    let entries = vec![Entry {
        path: "empty".into(),
        kind: EntryKind::Dir,
        size: None,
        mode: 0o755,
    }];
    let out = transfer(
        manifest(entries),
        vec![Vec::new()],
        HashMap::new(),
        Faults::default(),
    );
    assert_eq!(out.sender, Ok(()));
    assert_eq!(out.receiver, Ok(()));
}

#[test]
fn lanes_carry_blocks_interleaved_and_files_end_before_their_blocks() {
    let sources = vec![
        data(5 * BS as usize + 3, 1),
        data(2 * BS as usize, 2),
        Vec::new(),
        data(BS as usize / 2, 3),
    ];
    let m = numbered_files(&sources);
    let faults = Faults {
        lanes: (3, 2),
        ..Default::default()
    };
    let out = transfer(m, sources.clone(), HashMap::new(), faults);
    assert!(out.sender.is_ok(), "{:?}", out.sender);
    assert!(out.receiver.is_ok(), "{:?}", out.receiver);
    // The smaller offer wins.
    assert_eq!(out.lanes_opened, 2);
    for (i, src) in sources.iter().enumerate() {
        assert_eq!(out.files.get(&(i as u32)), Some(src), "file {i}");
    }
}

#[test]
fn lanes_need_both_sides() {
    let sources = vec![data(3 * BS as usize, 4)];
    let m = manifest(vec![file("a", sources[0].len() as u64)]);
    for lanes in [(2, 0), (0, 2), (0, 0)] {
        let faults = Faults {
            lanes,
            ..Default::default()
        };
        let out = transfer(m.clone(), sources.clone(), HashMap::new(), faults);
        assert!(out.receiver.is_ok() && out.sender.is_ok());
        assert_eq!(out.lanes_opened, 0, "{lanes:?}");
        assert_eq!(out.files.get(&0), Some(&sources[0]));
    }
}

#[test]
fn data_on_a_lane_never_agreed_is_refused() {
    let mut receiver = Receiver::with_lanes(Capabilities::lanes(2));
    // The sender's hello offers one lane only.
    receiver.handle_control(Control::Hello {
        protocol: wire::PROTOCOL_VERSION,
        software: "test".into(),
        lanes: 1,
        max_datagram: 9000,
        window: 0,
    });
    assert_eq!(
        receiver.peer(),
        Capabilities {
            lanes: 1,
            max_datagram: 9000,
            window: 0,
        }
    );
    receiver.handle_lane_data(2, &[2, 0]);
    let failed = std::iter::from_fn(|| receiver.poll_action())
        .any(|a| matches!(a, ReceiverAction::Failed(ProtoError::Protocol(_))));
    assert!(failed, "data on lane 2 must fail the transfer");
}

/// A receiver that accepted `entries`, ready for data.
fn accepting(entries: Vec<Entry>) -> Receiver {
    accepting_with(Capabilities::default(), 0, entries)
}

/// The same for a receiver offering `caps`, whose sender's hello gave `sender_window`.
fn accepting_with(caps: Capabilities, sender_window: u32, entries: Vec<Entry>) -> Receiver {
    let mut receiver = Receiver::with_lanes(caps);
    receiver.handle_control(Control::Hello {
        protocol: wire::PROTOCOL_VERSION,
        software: "test".into(),
        lanes: 0,
        max_datagram: 0,
        window: sender_window,
    });
    receiver.handle_control(Control::Manifest {
        block_size: BS,
        entries,
        more: false,
        left_out: Default::default(),
    });
    let offer = std::iter::from_fn(|| receiver.poll_action()).find_map(|a| match a {
        ReceiverAction::Offer(m) => Some(m),
        _ => None,
    });
    receiver.accept(offer.expect("an offer"), Vec::new());
    while receiver.poll_action().is_some() {}
    receiver
}

fn send_block(receiver: &mut Receiver, block: u64, bytes: &[u8]) {
    let cv = block_cv(block * u64::from(BS), bytes);
    receiver.handle_data(&wire::encode_block_header(
        0,
        block,
        bytes.len() as u32,
        &cv,
    ));
    let mut msg = vec![wire::DATA_PREFIX];
    msg.extend_from_slice(bytes);
    receiver.handle_data(&msg);
}

#[test]
fn stream_blocks_far_ahead_are_refused_before_any_allocation() {
    let stream = Entry {
        path: "s".into(),
        kind: EntryKind::File,
        size: None,
        mode: 0,
    };
    // Out of order within the allowance, as lanes deliver: fine.
    let mut receiver = accepting(vec![stream.clone()]);
    let block = data(BS as usize, 9);
    for i in [3, 0, receiver::STREAM_AHEAD, 1] {
        send_block(&mut receiver, i, &block);
    }
    let actions: Vec<_> = std::iter::from_fn(|| receiver.poll_action()).collect();
    assert!(
        actions
            .iter()
            .all(|a| matches!(a, ReceiverAction::Write { .. })),
        "{actions:?}"
    );
    assert_eq!(actions.len(), 4);

    // A block 2^36 blocks in (offset 2^50): refused, nothing to write.
    let mut receiver = accepting(vec![stream]);
    send_block(&mut receiver, 1 << 36, b"hello");
    let actions: Vec<_> = std::iter::from_fn(|| receiver.poll_action()).collect();
    assert!(
        actions.iter().any(
            |a| matches!(a, ReceiverAction::Failed(ProtoError::Protocol(m)) if m.contains("too far ahead"))
        ),
        "{actions:?}"
    );
    assert!(!actions
        .iter()
        .any(|a| matches!(a, ReceiverAction::Write { .. })));
}

#[test]
fn manifest_parts_piling_up_past_the_paths_limit_are_refused() {
    let mut receiver = Receiver::new();
    receiver.handle_control(Control::Hello {
        protocol: wire::PROTOCOL_VERSION,
        software: "test".into(),
        lanes: 0,
        max_datagram: 0,
        window: 0,
    });
    // Parts of 16 entries with 4000-byte paths (about 64 KiB each), never ending.
    let name = "n".repeat(200);
    let path = vec![name.as_str(); 20].join("/");
    let mut total = 0;
    let mut refused = None;
    for p in 0.. {
        let entries: Vec<Entry> = (0..16)
            .map(|i| file(&format!("{path}{p}-{i}"), 1))
            .collect();
        total += manifest::paths_bytes(&entries);
        receiver.handle_control(Control::Manifest {
            block_size: BS,
            entries,
            more: true,
            left_out: Default::default(),
        });
        let failed = std::iter::from_fn(|| receiver.poll_action())
            .find(|a| matches!(a, ReceiverAction::Failed(_)));
        // Refused at exactly the part that goes over, not before.
        assert_eq!(
            failed.is_some(),
            total > manifest::MAX_PATHS_BYTES,
            "part {p}"
        );
        if let Some(failed) = failed {
            refused = Some(failed);
            break;
        }
    }
    assert!(
        matches!(
            refused,
            Some(ReceiverAction::Failed(ProtoError::Manifest(
                ManifestError::PathsTooLong(_)
            )))
        ),
        "{refused:?}"
    );
}

#[test]
fn hellos_carry_each_sides_capabilities() {
    let manifest = Manifest {
        block_size: 16 * 1024,
        entries: vec![],
    };
    let mut sender = Sender::with_lanes(
        manifest,
        4,
        Capabilities {
            lanes: 3,
            max_datagram: 96_000,
            window: 0,
        },
    );
    let mut receiver = Receiver::with_lanes(Capabilities {
        lanes: 1,
        max_datagram: 2_000,
        window: 0,
    });
    let hello_of = |action: Option<ControlOrOther>| match action {
        Some(ControlOrOther::Control(msg @ Control::Hello { .. })) => msg,
        _ => panic!("the first action must be the hello"),
    };
    let to_receiver = hello_of(sender.poll_action().map(ControlOrOther::from_sender));
    let to_sender = hello_of(receiver.poll_action().map(ControlOrOther::from_receiver));
    // Both decode from the wire as they were sent.
    let to_receiver = Control::decode(to_receiver.encode().as_bytes()).unwrap();
    let to_sender = Control::decode(to_sender.encode().as_bytes()).unwrap();
    receiver.handle_control(to_receiver);
    sender.handle_control(to_sender);
    assert_eq!(
        receiver.peer(),
        Capabilities {
            lanes: 3,
            max_datagram: 96_000,
            window: 0,
        }
    );
    assert_eq!(
        sender.peer(),
        Capabilities {
            lanes: 1,
            max_datagram: 2_000,
            window: 0,
        }
    );
    // The agreed lane count is the smaller offer.
    let offers: Vec<u32> = std::iter::from_fn(|| sender.poll_action())
        .filter_map(|a| match a {
            SenderAction::OfferLane(lane) => Some(lane),
            _ => None,
        })
        .collect();
    assert_eq!(offers, [1], "the sender offers the one lane both offered");
}

fn hello_with_lanes(lanes: u32) -> Control {
    Control::Hello {
        protocol: wire::PROTOCOL_VERSION,
        software: "test".into(),
        lanes,
        max_datagram: 0,
        window: 0,
    }
}

fn lane(lane: u32, sdp: &str) -> Control {
    Control::Lane {
        lane,
        sdp: sdp.into(),
    }
}

#[test]
fn a_lane_offer_is_answered_once_and_only_when_both_hellos_agreed() {
    // Our hello offers 2 lanes, the sender's 1: only lane 1 is agreed.
    let agreed = || {
        let mut receiver = Receiver::with_lanes(Capabilities::lanes(2));
        receiver.handle_control(hello_with_lanes(1));
        while receiver.poll_action().is_some() {}
        receiver
    };
    let mut receiver = agreed();
    receiver.handle_control(lane(1, "o1"));
    match receiver.poll_action() {
        Some(ReceiverAction::AnswerLane { lane: 1, offer }) => assert_eq!(offer, "o1"),
        other => panic!("expected the lane to be answered, got {other:?}"),
    }
    receiver.lane_answer(1, "a1".into());
    match receiver.poll_action() {
        Some(ReceiverAction::SendControl(msg)) => assert_eq!(msg, lane(1, "a1")),
        other => panic!("expected the answer to go out, got {other:?}"),
    }
    // The same lane again, one never agreed, and lane 0 (the main
    // connection) are protocol errors.
    receiver.handle_control(lane(1, "o1 again"));
    let mut refused = vec![receiver];
    for bad in [2, 0, wire::MAX_LANES + 1] {
        let mut receiver = agreed();
        receiver.handle_control(lane(bad, "o"));
        refused.push(receiver);
    }
    for mut receiver in refused {
        let failed = std::iter::from_fn(|| receiver.poll_action())
            .any(|a| matches!(a, ReceiverAction::Failed(ProtoError::Protocol(_))));
        assert!(failed);
    }
}

#[test]
fn a_lane_answer_is_taken_only_for_an_offer_that_went_out() {
    let m = manifest(vec![file("a", 10)]);
    let offering = || {
        let mut sender = Sender::with_lanes(m.clone(), 4, Capabilities::lanes(2));
        sender.handle_control(hello_with_lanes(2));
        let offers: Vec<SenderAction> = std::iter::from_fn(|| sender.poll_action())
            .filter(|a| matches!(a, SenderAction::OfferLane(_)))
            .collect();
        assert_eq!(offers.len(), 2);
        sender
    };
    let mut sender = offering();
    sender.lane_offer(1, "o1".into());
    match sender.poll_action() {
        Some(SenderAction::SendControl(msg)) => assert_eq!(msg, lane(1, "o1")),
        other => panic!("expected the offer to go out, got {other:?}"),
    }
    sender.handle_control(lane(1, "a1"));
    match sender.poll_action() {
        Some(SenderAction::LaneAnswered { lane: 1, sdp }) => assert_eq!(sdp, "a1"),
        other => panic!("expected the answer for the driver, got {other:?}"),
    }
    // A second answer, and an answer to lane 2, whose offer is not out yet.
    sender.handle_control(lane(1, "a1 again"));
    let mut early = offering();
    early.handle_control(lane(2, "a2"));
    for mut sender in [sender, early] {
        let failed = std::iter::from_fn(|| sender.poll_action())
            .any(|a| matches!(a, SenderAction::Failed(ProtoError::Protocol(_))));
        assert!(failed);
    }
}

/// The control message in a first action, whichever core made it.
enum ControlOrOther {
    Control(Control),
    Other,
}

impl ControlOrOther {
    fn from_sender(action: SenderAction) -> Self {
        match action {
            SenderAction::SendControl(msg) => ControlOrOther::Control(msg),
            _ => ControlOrOther::Other,
        }
    }
    fn from_receiver(action: ReceiverAction) -> Self {
        match action {
            ReceiverAction::SendControl(msg) => ControlOrOther::Control(msg),
            _ => ControlOrOther::Other,
        }
    }
}

/// Reads in flight once sending starts, for `files` files of `size` bytes.
fn first_reads(files: usize, size: u64) -> usize {
    let manifest = Manifest {
        block_size: 16 * 1024,
        entries: (0..files)
            .map(|i| Entry {
                path: format!("f{i}"),
                kind: EntryKind::File,
                size: Some(size),
                mode: 0o644,
            })
            .collect(),
    };
    let mut sender = accepted_sender(manifest, 4, 0);
    std::iter::from_fn(|| sender.poll_action())
        .filter(|a| matches!(a, SenderAction::Read(_)))
        .count()
}

#[test]
fn the_read_window_counts_bytes_and_caps_reads() {
    // Four full blocks of large files.
    assert_eq!(first_reads(3, 1 << 20), 4);
    // Small files fill the same bytes only with many reads: capped at 64.
    assert_eq!(first_reads(1000, 100), sender::MAX_READS);
    // 64 KiB of 5000-byte files: reads go on until the bytes reach it.
    assert_eq!(first_reads(100, 5000), 14);
}

#[test]
fn flow_control_bounds_what_is_unconsumed_and_never_stalls() {
    let sources = vec![
        data(5 * BS as usize + 7, 5),
        data(100, 6),
        data(2 * BS as usize, 7),
    ];
    let m = numbered_files(&sources);
    // Windows far smaller than a block, one block, and on one side only.
    for window in [(1, 1), (1, 2 * BS), (1, 0), (0, 2 * BS)] {
        for lanes in [(0, 0), (2, 2)] {
            let faults = Faults {
                window,
                lanes,
                ..Default::default()
            };
            let out = transfer(m.clone(), sources.clone(), HashMap::new(), faults);
            assert!(out.sender.is_ok(), "{window:?} {lanes:?}: {:?}", out.sender);
            assert!(
                out.receiver.is_ok(),
                "{window:?} {lanes:?}: {:?}",
                out.receiver
            );
            for (i, src) in sources.iter().enumerate() {
                assert_eq!(out.files.get(&(i as u32)), Some(src), "file {i}");
            }
        }
    }
}

#[test]
fn a_sender_stops_at_the_window_and_goes_on_with_credit() {
    let sources = [data(8 * BS as usize, 8)];
    let window = 3 * BS;
    let mut sender = sending_with_window(&sources[0], window, 16);
    // Serve every read, then take items until the window closes.
    let mut sent = 0u64;
    let mut largest = 0u64;
    loop {
        while let Some(action) = sender.poll_action() {
            if let SenderAction::Read(req) = action {
                let start = req.offset as usize;
                let bytes = Bytes::copy_from_slice(&sources[0][start..start + req.len as usize]);
                let cv = block_cv(req.offset, &bytes);
                sender.block_read(&req, bytes, Some(cv), None);
            }
        }
        let Some(item) = sender.poll_data() else {
            break;
        };
        let cost: u64 = item
            .messages()
            .iter()
            .map(|m| m.len() as u64 + wire::MESSAGE_COST)
            .sum();
        assert_eq!(cost, item.cost(), "DataItem::cost counts its messages");
        sent += cost;
        largest = largest.max(cost);
    }
    assert!(!sender.has_data());
    assert!(
        sent >= u64::from(window) && sent < u64::from(window) + largest,
        "{sent}"
    );
    // A credit for more than was sent is a lie.
    let mut liar = sending_with_window(&sources[0], window, 4);
    while liar.poll_action().is_some() {}
    liar.handle_control(Control::Credit { consumed: u64::MAX });
    let failed = std::iter::from_fn(|| liar.poll_action())
        .any(|a| matches!(a, SenderAction::Failed(ProtoError::Protocol(_))));
    assert!(failed, "an impossible credit must fail the transfer");
    // Credit for everything reopens the window.
    sender.handle_control(Control::Credit { consumed: sent });
    assert!(sender.has_data() || sender.poll_action().is_some());
}

/// A sender of `source` as file "a", both hellos with `window`, just
/// accepted: its first reads (up to `read_window` blocks) are pending.
fn sending_with_window(source: &[u8], window: u32, read_window: usize) -> Sender {
    let m = manifest(vec![file("a", source.len() as u64)]);
    accepted_sender(m, read_window, window)
}

/// A sender of `m` whose offer was just accepted, both hellos with `window`.
fn accepted_sender(m: Manifest, read_window: usize, window: u32) -> Sender {
    let caps = Capabilities {
        window,
        ..Capabilities::default()
    };
    let mut sender = Sender::with_lanes(m, read_window, caps);
    while sender.poll_action().is_some() {}
    sender.handle_control(Control::Hello {
        protocol: wire::PROTOCOL_VERSION,
        software: "test".into(),
        lanes: 0,
        max_datagram: 0,
        window,
    });
    sender.handle_control(Control::Accept { have: vec![] });
    sender
}

#[test]
fn a_receiver_credits_only_a_sender_that_obeys() {
    for (sender_window, credits) in [(1, true), (0, false)] {
        let caps = Capabilities {
            window: 8 * BS,
            ..Capabilities::default()
        };
        let mut receiver = accepting_with(caps, sender_window, vec![file("a", 4 * BS as u64)]);
        let block = data(BS as usize, 9);
        let mut sent_credit = false;
        for b in 0..4u64 {
            send_block(&mut receiver, b, &block);
            sent_credit |= std::iter::from_fn(|| receiver.poll_action())
                .any(|a| matches!(a, ReceiverAction::SendControl(Control::Credit { .. })));
        }
        assert_eq!(sent_credit, credits, "sender window {sender_window}");
    }
}
