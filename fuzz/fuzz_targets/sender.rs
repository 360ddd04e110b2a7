//! The sender state machine fed what a hostile receiver can send: any
//! sequence of control messages (hello, accept with resume claims, resend,
//! done...), with the driver's side played honestly (reads served from
//! fixed file contents, data items taken when the channel has room). Every
//! block it sends must carry the chaining value of its data.
//!
//! Input: records of `tag, length (u16 big-endian), payload`; the last
//! record may be short. `tag % 2`: 0 a control message, 1 the data channel
//! takes up to `tag >> 1` items. The offer is fixed ([`manifest`]); the
//! seeds are the receiver's side of real transfers of it
//! (tests/decoders.rs, `write_fuzz_seeds`).
#![no_main]

use bytes::Bytes;
use ferry::proto::hash::{block_cv, single_block_root};
use ferry::proto::{Capabilities, Control};
use ferry::proto::{
    DataItem, Entry, EntryKind, Manifest, ProtoError, ReadRequest, Sender, SenderAction,
};
use libfuzzer_sys::fuzz_target;

const BLOCK_SIZE: u32 = 16 * 1024;
/// Bytes the stream (unknown size) yields before it ends.
const STREAM_LEN: usize = 300;

/// Must match `sender_fuzz_manifest` in tests/decoders.rs.
fn manifest() -> Manifest {
    let file = |path: &str, size| Entry {
        path: path.into(),
        kind: EntryKind::File,
        size,
        mode: 0o644,
    };
    Manifest {
        block_size: BLOCK_SIZE,
        entries: vec![
            Entry {
                path: "d".into(),
                kind: EntryKind::Dir,
                size: None,
                mode: 0o755,
            },
            file("d/a", Some(u64::from(BLOCK_SIZE) + 100)),
            file("b", Some(10)),
            file("e", Some(0)),
            file("s", None),
        ],
    }
}

fn content(file: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(file as u8))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let manifest = manifest();
    let mut s = Sender::with_lanes(manifest.clone(), 4, Capabilities::lanes(2));
    drive(&mut s, &manifest);
    let mut input = data;
    while let Some((&tag, rest)) = input.split_first() {
        let len = match rest {
            [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
            _ => 0,
        };
        let rest = rest.get(2..).unwrap_or_default();
        let (payload, rest) = rest.split_at(len.min(rest.len()));
        input = rest;
        if tag % 2 == 0 {
            match Control::decode(payload) {
                Ok(msg) => s.handle_control(msg),
                Err(e) => s.abort(ProtoError::Protocol(e.to_string())),
            }
        } else {
            for _ in 0..tag >> 1 {
                let Some(item) = s.poll_data() else { break };
                check(&item, &manifest);
            }
        }
        drive(&mut s, &manifest);
    }
});

fn drive(s: &mut Sender, manifest: &Manifest) {
    while let Some(action) = s.poll_action() {
        match action {
            SenderAction::Read(req) => read(s, &req, manifest),
            SenderAction::OfferLane(lane) => s.lane_offer(lane, format!("offer {lane}")),
            _ => {}
        }
    }
}

fn read(s: &mut Sender, req: &ReadRequest, manifest: &Manifest) {
    let size = manifest.entries[req.file as usize]
        .size
        .map_or(STREAM_LEN, |n| n as usize);
    let all = content(req.file, size);
    let start = (req.offset as usize).min(all.len());
    let end = (start + req.len as usize).min(all.len());
    let bytes = Bytes::copy_from_slice(&all[start..end]);
    let cv = (!bytes.is_empty()).then(|| block_cv(req.offset, &bytes));
    let root = (req.block == 0).then(|| single_block_root(&bytes));
    s.block_read(req, bytes, cv, root);
}

fn check(item: &DataItem, manifest: &Manifest) {
    if let DataItem::Block {
        file,
        block,
        cv,
        data,
    } = item
    {
        let offset = block * u64::from(manifest.block_size);
        assert_eq!(block_cv(offset, data), *cv, "block sent with a wrong cv");
        let size = manifest.entries[*file as usize]
            .size
            .map_or(STREAM_LEN, |n| n as usize);
        assert_eq!(
            data[..],
            content(*file, size)[offset as usize..][..data.len()]
        );
    }
}
