//! The receiver state machine fed what a hostile sender can send: any
//! sequence of control messages and data-channel messages on any lane, with
//! the driver's side played honestly (offers accepted, finished files
//! reported). Every block handed out for writing must match its chaining
//! value.
//!
//! Input: records of `tag, length (u16 big-endian), payload`; the last
//! record may be short. `tag % 4`: 0 a control message, 1 a data message on
//! lane `(tag >> 2) % 4` (lanes 3 and up were never agreed), 2 blocks
//! already on disk for the next accept (44-byte items: file u32, block u64,
//! chaining value), 3 the user declines. The seeds are real transfers
//! (tests/decoders.rs, `write_fuzz_seeds`).
#![no_main]

use ferry::proto::hash::{block_cv, Cv};
use ferry::proto::{Capabilities, Control, Held, ProtoError, Receiver, ReceiverAction};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = Receiver::with_lanes(Capabilities::lanes(2));
    let mut held = Vec::new();
    let mut block_size = 0u64;
    drive(&mut r, &mut held, &mut block_size);
    let mut input = data;
    while let Some((&tag, rest)) = input.split_first() {
        let len = match rest {
            [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
            _ => 0,
        };
        let rest = rest.get(2..).unwrap_or_default();
        let (payload, rest) = rest.split_at(len.min(rest.len()));
        input = rest;
        match tag % 4 {
            0 => match Control::decode(payload) {
                Ok(msg) => r.handle_control(msg),
                Err(e) => r.abort(ProtoError::Protocol(e.to_string())),
            },
            1 => r.handle_lane_data(u32::from(tag >> 2) % 4, payload),
            2 => held = parse_held(payload),
            _ => r.decline("fuzz"),
        }
        drive(&mut r, &mut held, &mut block_size);
    }
});

fn drive(r: &mut Receiver, held: &mut Vec<(u32, Held)>, block_size: &mut u64) {
    while let Some(action) = r.poll_action() {
        match action {
            ReceiverAction::Offer(manifest) => {
                *block_size = u64::from(manifest.block_size);
                r.accept(manifest, std::mem::take(held));
            }
            ReceiverAction::Write {
                block,
                offset,
                cv,
                data,
                ..
            } => {
                assert_eq!(offset, block * *block_size);
                assert!(!data.is_empty() && data.len() as u64 <= *block_size);
                assert_eq!(block_cv(offset, &data), cv, "unverified block written");
            }
            ReceiverAction::Finish { file, .. } => r.file_finished(file),
            ReceiverAction::AnswerLane { lane, .. } => r.lane_answer(lane, format!("answer {lane}")),
            ReceiverAction::SendControl(_)
            | ReceiverAction::Finished
            | ReceiverAction::Failed(_) => {}
        }
    }
}

fn parse_held(payload: &[u8]) -> Vec<(u32, Held)> {
    let mut out: Vec<(u32, Held)> = Vec::new();
    for item in payload.chunks_exact(44) {
        let file = u32::from_be_bytes([item[0], item[1], item[2], item[3]]);
        let mut block = [0u8; 8];
        block.copy_from_slice(&item[4..12]);
        let block = u64::from_be_bytes(block);
        let mut cv: Cv = [0; 32];
        cv.copy_from_slice(&item[12..]);
        let pos = match out.iter().position(|(f, _)| *f == file) {
            Some(pos) => pos,
            None => {
                out.push((file, Held::default()));
                out.len() - 1
            }
        };
        let held = &mut out[pos].1;
        if block == 0 {
            // Any root will do: the disk may hold anything.
            held.single_root = Some(blake3::hash(&cv));
        }
        held.blocks.push((block, cv));
    }
    out
}
