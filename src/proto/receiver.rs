//! The receiving side of a transfer as a state machine: control messages and
//! data-channel messages go in; verified blocks to write, files to finish and
//! control messages to send come out. Every block is checked against its
//! BLAKE3 chaining value before it is handed out for writing.

use std::collections::{HashMap, VecDeque};

use bytes::{Buf, Bytes, BytesMut};

use super::hash::{block_cv, root_from_cvs, single_block_root, Cv};
use super::manifest::{
    block_count, paths_bytes, EntryKind, Manifest, ManifestError, MAX_ENTRIES, MAX_PATHS_BYTES,
};
use super::sender::{control_name, hello};
use super::wire::{
    cv_to_hex, Capabilities, Control, Frame, HaveBlock, HaveFile, LeftOut, MAX_LANES, MESSAGE_COST,
    PROTOCOL_VERSION,
};
use super::ProtoError;

/// A block failing verification more often than this fails the transfer.
pub const MAX_BAD_BLOCKS: u32 = 3;

/// Blocks are assembled starting at an address that is a multiple of this,
/// so the disk writer can hand them to the device with `O_DIRECT` (no copy
/// into the page cache) without copying them first.
pub const BLOCK_ALIGN: usize = 4096;
/// How far past its blocks received so far a block of a stream (a file of
/// unknown size) may lie. Nothing else bounds a stream's block indexes, and
/// each index costs memory; an honest sender is only as far ahead as it has
/// blocks in flight on its lanes.
pub const STREAM_AHEAD: u64 = 256;

/// What the driver must do next, as [`Receiver::poll_action`] hands it out.
/// Carry out each in order.
#[derive(Debug)]
pub enum ReceiverAction {
    /// Send this message on the `control` channel, in order with the others.
    SendControl(Control),
    /// The offer arrived and is valid: ask the user, then call `accept` or `decline`.
    Offer(Manifest),
    /// Write verified bytes at `offset` of `file`.
    Write {
        /// Index of the file in the manifest's entries.
        file: u32,
        /// Index of the block within the file.
        block: u64,
        /// Where the block starts in the file, in bytes: `block * block_size`.
        offset: u64,
        /// The block's verified chaining value, for the resume log.
        cv: Cv,
        /// The block's bytes, starting at a [`BLOCK_ALIGN`] address.
        data: Bytes,
    },
    /// Every block of `file` is written and the whole-file hash matched: move
    /// it into place (truncated to `size`) and report back with `file_finished`.
    Finish {
        /// Index of the file in the manifest's entries.
        file: u32,
        /// The file's final size in bytes (for a stream, from its file end).
        size: u64,
        /// The file's BLAKE3 hash, computed here from the verified blocks.
        root: blake3::Hash,
    },
    /// The sender offered lane `lane` (an extra data connection) with
    /// `offer`, and both hellos agreed on it: answer it and hand the answer
    /// to [`Receiver::lane_answer`].
    AnswerLane {
        /// The lane, numbered from 1.
        lane: u32,
        /// The sender's SDP offer for it.
        offer: String,
    },
    /// Everything is in place; `Done` was sent.
    Finished,
    /// The transfer failed. A `cancel` for the peer, unless the peer
    /// cancelled, was queued as a [`ReceiverAction::SendControl`] just
    /// before: send it, then stop.
    Failed(ProtoError),
}

/// Blocks of one file already on the receiver's disk, re-verified there.
#[derive(Debug, Default, Clone)]
pub struct Held {
    /// Block indexes with the chaining values they were re-verified with.
    pub blocks: Vec<(u64, Cv)>,
    /// BLAKE3 of the data when the file is a single block (its root can't
    /// be derived from a chaining value).
    pub single_root: Option<blake3::Hash>,
}

struct RecvFile {
    size: Option<u64>,
    cvs: Vec<Option<Cv>>,
    /// How many of `cvs` are set.
    verified: u64,
    single_root: Option<blake3::Hash>,
    end: Option<(u64, [u8; 32])>,
    finishing: bool,
    finished: bool,
}

struct Assembly {
    file: u32,
    block: u64,
    len: usize,
    cv: Cv,
    buf: BytesMut,
    /// Bytes of this block seen so far.
    got: usize,
    /// A block we already hold with this CV: read past it.
    discard: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    AwaitHello,
    AwaitManifest,
    AwaitDecision,
    Receiving,
    Done,
}

/// Counters a driver may show.
#[derive(Debug, Default, Clone)]
pub struct ReceiverStats {
    /// Block payload bytes that arrived over the channel.
    pub bytes_received: u64,
    /// Bytes verified and handed out for writing.
    pub bytes_verified: u64,
    /// Bytes already held from an earlier run.
    pub bytes_resumed: u64,
}

/// The receiving side of a transfer, as a sans-IO state machine.
///
/// A new receiver has already queued its `hello`. The driver
/// (`transfer/receive/pump.rs`) loops: it drains [`poll_action`] until
/// `None` and carries out each [`ReceiverAction`]; then it waits for the
/// next input and feeds it in: a control message from the sender to
/// [`handle_control`], a data-channel message to [`handle_lane_data`]
/// (with the channel's lane; 0 for the main connection), a file moved into
/// place to [`file_finished`], a lane's SDP answer to [`lane_answer`], a
/// failed write or other local failure to [`abort`]. On
/// [`ReceiverAction::Offer`] it asks the user and calls [`accept`] or
/// [`decline`]. It stops at [`ReceiverAction::Finished`] or
/// [`ReceiverAction::Failed`], after sending the control messages queued
/// before them.
///
/// [`poll_action`]: Receiver::poll_action
/// [`handle_control`]: Receiver::handle_control
/// [`handle_lane_data`]: Receiver::handle_lane_data
/// [`file_finished`]: Receiver::file_finished
/// [`lane_answer`]: Receiver::lane_answer
/// [`abort`]: Receiver::abort
/// [`accept`]: Receiver::accept
/// [`decline`]: Receiver::decline
pub struct Receiver {
    phase: Phase,
    /// Empty until the offer is accepted.
    manifest: Manifest,
    /// The offer's parts received so far.
    manifest_parts: Option<Manifest>,
    /// What the sender said it left out of its offer.
    left_out: LeftOut,
    files: Vec<Option<RecvFile>>,
    /// The block being assembled on each data channel: index 0 is the main
    /// connection's, 1.. the lanes agreed in the hellos.
    assembling: Vec<Option<Assembly>>,
    /// Lanes the sender has offered (each may be offered once).
    lanes_offered: Vec<u32>,
    /// Extra data connections offered in our hello.
    lanes: u32,
    /// What the sender's hello said it can do.
    peer: Capabilities,
    /// Our flow-control window (0: none), and how often to credit.
    window: u32,
    credit_every: u64,
    /// Cost of the data messages consumed, and of those credited.
    consumed: u64,
    credited: u64,
    bad_blocks: HashMap<(u32, u64), u32>,
    actions: VecDeque<ReceiverAction>,
    unfinished: usize,
    /// Bytes received, verified and resumed so far, for progress and the summary.
    pub stats: ReceiverStats,
}

impl Default for Receiver {
    fn default() -> Self {
        Self::new()
    }
}

impl Receiver {
    /// A receiver without lanes or flow control.
    pub fn new() -> Receiver {
        Receiver::with_lanes(Capabilities::default())
    }

    /// A receiver whose hello offers `caps`: it accepts up to `caps.lanes`
    /// extra data connections.
    pub fn with_lanes(caps: Capabilities) -> Receiver {
        let lanes = caps.lanes.min(MAX_LANES);
        let mut actions = VecDeque::new();
        actions.push_back(ReceiverAction::SendControl(hello(Capabilities {
            lanes,
            ..caps
        })));
        Receiver {
            phase: Phase::AwaitHello,
            manifest: Manifest::default(),
            manifest_parts: None,
            left_out: LeftOut::new(),
            files: Vec::new(),
            assembling: vec![None],
            lanes_offered: Vec::new(),
            lanes,
            peer: Capabilities::default(),
            window: caps.window,
            credit_every: 0,
            consumed: 0,
            credited: 0,
            bad_blocks: HashMap::new(),
            actions,
            unfinished: 0,
            stats: ReceiverStats::default(),
        }
    }

    /// What the sender's hello said it can do (all zero before it).
    pub fn peer(&self) -> Capabilities {
        self.peer
    }

    /// The next thing the driver must do, in order; `None` once there is
    /// nothing until the next input. Call it until `None` after every input.
    pub fn poll_action(&mut self) -> Option<ReceiverAction> {
        self.actions.pop_front()
    }

    /// A control message from the sender, decoded. One it does not expect
    /// at this point fails the transfer (a protocol error); after the
    /// transfer ended, messages are ignored.
    pub fn handle_control(&mut self, msg: Control) {
        if self.phase == Phase::Done {
            return;
        }
        match (msg, &self.phase) {
            (
                Control::Hello {
                    protocol,
                    lanes,
                    max_datagram,
                    window,
                    ..
                },
                Phase::AwaitHello,
            ) => {
                if protocol != PROTOCOL_VERSION {
                    return self.fail(ProtoError::Version(protocol));
                }
                self.peer = Capabilities {
                    lanes,
                    max_datagram,
                    window,
                };
                // Credits only go to a sender that said it obeys them; an
                // eighth of the window at a time keeps it busy.
                if window > 0 && self.window > 0 {
                    self.credit_every = (u64::from(self.window) / 8).max(1);
                }
                self.assembling = (0..=self.lanes.min(lanes)).map(|_| None).collect();
                self.phase = Phase::AwaitManifest;
            }
            (Control::Lane { lane, sdp }, _) => self.lane_offered(lane, sdp),
            (
                Control::Manifest {
                    block_size,
                    entries,
                    more,
                    left_out,
                },
                Phase::AwaitManifest,
            ) => {
                let parts = self.manifest_parts.get_or_insert_with(|| Manifest {
                    block_size,
                    entries: Vec::new(),
                });
                let total = parts.entries.len() + entries.len();
                let same_block_size = parts.block_size == block_size;
                if !same_block_size {
                    return self.fail(ProtoError::Protocol(
                        "manifest parts disagree on the block size".into(),
                    ));
                }
                if total > MAX_ENTRIES {
                    return self.fail(ProtoError::Manifest(ManifestError::TooManyEntries(total)));
                }
                // Checked per part, before the parts pile up in memory.
                let bytes = paths_bytes(&parts.entries) + paths_bytes(&entries);
                if bytes > MAX_PATHS_BYTES {
                    return self.fail(ProtoError::Manifest(ManifestError::PathsTooLong(bytes)));
                }
                let Some(parts) = self.manifest_parts.as_mut() else {
                    return;
                };
                parts.entries.extend(entries);
                if more {
                    return;
                }
                self.left_out = left_out;
                let manifest = self.manifest_parts.take().unwrap_or_default();
                if let Err(e) = manifest.validate() {
                    return self.fail(ProtoError::Manifest(e));
                }
                self.phase = Phase::AwaitDecision;
                self.actions.push_back(ReceiverAction::Offer(manifest));
            }
            (Control::Cancel { reason }, _) => {
                self.phase = Phase::Done;
                self.actions
                    .push_back(ReceiverAction::Failed(ProtoError::PeerCancelled(reason)));
            }
            (other, phase) => {
                let what = format!("unexpected {} while {phase:?}", control_name(&other));
                self.fail(ProtoError::Protocol(what));
            }
        }
    }

    /// Start receiving `manifest` (as offered). `have` lists, per file
    /// index, blocks already on disk that the driver re-verified.
    ///
    /// Queues the `accept` message, claiming those blocks; when there is
    /// no file to receive, `done` and [`ReceiverAction::Finished`] follow
    /// at once. Ignored unless an offer is waiting for a decision.
    pub fn accept(&mut self, manifest: Manifest, have: Vec<(u32, Held)>) {
        if self.phase != Phase::AwaitDecision {
            return;
        }
        self.files = manifest
            .entries
            .iter()
            .map(|e| {
                (e.kind == EntryKind::File).then(|| RecvFile {
                    size: e.size,
                    cvs: Vec::new(),
                    verified: 0,
                    single_root: None,
                    end: None,
                    finishing: false,
                    finished: false,
                })
            })
            .collect();
        self.unfinished = self.files.iter().flatten().count();
        let block_size = u64::from(manifest.block_size);
        let mut claims = Vec::new();
        for (idx, held) in have {
            let Some(Some(file)) = self.files.get_mut(idx as usize) else {
                continue;
            };
            // Only files of known size can be resumed (a stream can't be re-read).
            let Some(size) = file.size else { continue };
            let n = block_count(size, manifest.block_size);
            if n == 1 {
                // A one-block file's root comes from its data, not from CVs.
                match held.single_root {
                    Some(root) => file.single_root = Some(root),
                    None => continue,
                }
            }
            let mut listed = Vec::new();
            for (block, cv) in held.blocks {
                if block >= n {
                    continue;
                }
                let i = block as usize;
                if file.cvs.len() <= i {
                    file.cvs.resize(i + 1, None);
                }
                if file.cvs[i].replace(cv).is_none() {
                    file.verified += 1;
                    self.stats.bytes_resumed += (size - block * block_size).min(block_size);
                }
                listed.push(HaveBlock {
                    block,
                    cv: cv_to_hex(&cv),
                });
            }
            if !listed.is_empty() {
                claims.push(HaveFile {
                    file: idx,
                    blocks: listed,
                });
            }
        }
        self.manifest = manifest;
        self.phase = Phase::Receiving;
        self.actions
            .push_back(ReceiverAction::SendControl(Control::Accept {
                have: claims,
            }));
        if self.unfinished == 0 {
            self.finish_all();
        }
    }

    /// What the sender said its offer leaves out (valid from the offer on).
    pub fn left_out(&self) -> &LeftOut {
        &self.left_out
    }

    /// Refuse the offer (or stop a transfer under way): the sender gets a
    /// `cancel` with `reason`, and the transfer fails with
    /// [`ProtoError::Declined`].
    pub fn decline(&mut self, reason: &str) {
        self.fail(ProtoError::Declined(reason.to_string()));
    }

    /// The driver moved `file` into place.
    pub fn file_finished(&mut self, file: u32) {
        if let Some(Some(f)) = self.files.get_mut(file as usize) {
            if f.finishing && !f.finished {
                f.finished = true;
                self.unfinished -= 1;
                if self.unfinished == 0 {
                    self.finish_all();
                }
            }
        }
    }

    /// Stop because of something outside the protocol core (a write that
    /// failed, a malformed message); the peer is told why.
    pub fn abort(&mut self, err: ProtoError) {
        self.fail(err);
    }

    /// Whether the sender may open lane `lane`: both hellos offered it.
    fn lane_agreed(&self, lane: u32) -> bool {
        lane >= 1 && (lane as usize) < self.assembling.len()
    }

    /// The sender's `lane` message: an offer, answered once if agreed.
    fn lane_offered(&mut self, lane: u32, offer: String) {
        if !self.lane_agreed(lane) || self.lanes_offered.contains(&lane) {
            return self.fail(ProtoError::Protocol(format!(
                "an offer for lane {lane}, which was not agreed"
            )));
        }
        self.lanes_offered.push(lane);
        self.actions
            .push_back(ReceiverAction::AnswerLane { lane, offer });
    }

    /// The driver answered lane `lane`, as [`ReceiverAction::AnswerLane`]
    /// asked: the answer goes to the sender.
    pub fn lane_answer(&mut self, lane: u32, sdp: String) {
        if self.phase == Phase::Done {
            return;
        }
        if !self.lanes_offered.contains(&lane) {
            return self.fail(ProtoError::Local(format!(
                "internal: an answer for lane {lane}, which was not offered"
            )));
        }
        let msg = Control::Lane { lane, sdp };
        self.actions.push_back(ReceiverAction::SendControl(msg));
    }

    /// A message from the main connection's data channel.
    pub fn handle_data(&mut self, msg: &[u8]) {
        self.handle_lane_data(0, msg)
    }

    /// A message from the data channel of lane `lane` (0: the main connection).
    ///
    /// Blocks are assembled per lane and checked against their chaining
    /// value as they complete: a good one becomes a
    /// [`ReceiverAction::Write`] (and, once its file is whole and its root
    /// matches, a [`ReceiverAction::Finish`]); a bad one a `resend`. A
    /// `credit` is queued when flow control is on and enough was consumed.
    pub fn handle_lane_data(&mut self, lane: u32, msg: &[u8]) {
        self.consumed += msg.len() as u64 + MESSAGE_COST;
        self.take_data(lane, msg);
        // After this message's writes, so that credit follows the disk.
        if self.credit_every > 0
            && self.phase == Phase::Receiving
            && self.consumed - self.credited >= self.credit_every
        {
            self.credited = self.consumed;
            let credit = Control::Credit {
                consumed: self.consumed,
            };
            self.actions.push_back(ReceiverAction::SendControl(credit));
        }
    }

    fn take_data(&mut self, lane: u32, msg: &[u8]) {
        if lane as usize >= self.assembling.len() {
            return self.fail(ProtoError::Protocol(format!(
                "data on lane {lane}, which was never agreed"
            )));
        }
        if self.phase != Phase::Receiving {
            if self.phase != Phase::Done {
                self.fail(ProtoError::Protocol(
                    "data before the transfer was accepted".into(),
                ));
            }
            return;
        }
        let result = match Frame::decode(msg) {
            Ok(Frame::Block {
                file,
                block,
                len,
                cv,
            }) => self.start_block(lane as usize, file, block, len, cv),
            Ok(Frame::Data(bytes)) => self.block_data(lane as usize, bytes),
            Ok(Frame::FileEnd { file, size, root }) => {
                self.file_end(lane as usize, file, size, root)
            }
            Err(e) => Err(ProtoError::Protocol(e.to_string())),
        };
        if let Err(e) = result {
            self.fail(e);
        }
    }

    fn start_block(
        &mut self,
        lane: usize,
        file_idx: u32,
        block: u64,
        len: u32,
        cv: Cv,
    ) -> Result<(), ProtoError> {
        if self.assembling[lane].is_some() {
            return Err(ProtoError::Protocol(
                "a block started before the previous one ended".into(),
            ));
        }
        let block_size = self.manifest.block_size;
        let Some(Some(file)) = self.files.get(file_idx as usize) else {
            return Err(ProtoError::Protocol(format!(
                "block for unknown file {file_idx}"
            )));
        };
        if file.finishing {
            return Err(ProtoError::Protocol(format!(
                "block for file {file_idx} after it was complete"
            )));
        }
        let offset = block
            .checked_mul(u64::from(block_size))
            .ok_or_else(|| ProtoError::Protocol("block offset out of range".into()))?;
        let expected = match file.size {
            Some(size) if offset < size => (size - offset).min(u64::from(block_size)),
            Some(_) => {
                return Err(ProtoError::Protocol(format!(
                    "block {block} is past the end of file {file_idx}"
                )))
            }
            None if block >= file.verified.saturating_add(STREAM_AHEAD) => {
                return Err(ProtoError::Protocol(format!(
                    "block {block} of stream {file_idx} is too far ahead of the {} blocks received",
                    file.verified
                )))
            }
            None if len >= 1
                && len <= block_size
                && offset.checked_add(u64::from(len)).is_some() =>
            {
                u64::from(len)
            }
            None => 0,
        };
        if u64::from(len) != expected || len == 0 {
            return Err(ProtoError::Protocol(format!(
                "block {block} of file {file_idx} has wrong length {len}"
            )));
        }
        if file
            .end
            .is_some_and(|(size, _)| offset + u64::from(len) > size)
        {
            return Err(ProtoError::Protocol(format!(
                "block {block} is past the end of file {file_idx}"
            )));
        }
        let discard = file.cvs.get(block as usize).copied().flatten() == Some(cv);
        let buf = if discard {
            BytesMut::new()
        } else {
            aligned_buffer(len as usize)
        };
        self.assembling[lane] = Some(Assembly {
            file: file_idx,
            block,
            len: len as usize,
            cv,
            buf,
            got: 0,
            discard,
        });
        Ok(())
    }

    fn block_data(&mut self, lane: usize, bytes: &[u8]) -> Result<(), ProtoError> {
        let Some(asm) = self.assembling[lane].as_mut() else {
            return Err(ProtoError::Protocol(
                "block data without a block header".into(),
            ));
        };
        self.stats.bytes_received += bytes.len() as u64;
        if bytes.len() > asm.len - asm.got {
            return Err(ProtoError::Protocol(
                "more block data than the header announced".into(),
            ));
        }
        asm.got += bytes.len();
        if !asm.discard {
            asm.buf.extend_from_slice(bytes);
        }
        if asm.got < asm.len {
            return Ok(());
        }
        let Some(asm) = self.assembling[lane].take() else {
            return Ok(());
        };
        if asm.discard {
            return Ok(());
        }
        self.complete_block(asm)
    }

    fn complete_block(&mut self, asm: Assembly) -> Result<(), ProtoError> {
        let block_size = u64::from(self.manifest.block_size);
        let offset = asm.block * block_size;
        let data = asm.buf.freeze();
        if block_cv(offset, &data) != asm.cv {
            let count = self.bad_blocks.entry((asm.file, asm.block)).or_insert(0);
            *count += 1;
            if *count > MAX_BAD_BLOCKS {
                let path = self.manifest.entries[asm.file as usize].path.clone();
                return Err(ProtoError::Verify {
                    path,
                    block: asm.block,
                });
            }
            self.actions
                .push_back(ReceiverAction::SendControl(Control::Resend {
                    file: asm.file,
                    block: asm.block,
                }));
            return Ok(());
        }
        let Some(Some(file)) = self.files.get_mut(asm.file as usize) else {
            return Ok(());
        };
        let i = asm.block as usize;
        if file.cvs.len() <= i {
            file.cvs.resize(i + 1, None);
        }
        if file.cvs[i].replace(asm.cv).is_none() {
            file.verified += 1;
        }
        if asm.block == 0 {
            file.single_root = Some(single_block_root(&data));
        }
        self.stats.bytes_verified += data.len() as u64;
        self.actions.push_back(ReceiverAction::Write {
            file: asm.file,
            block: asm.block,
            offset,
            cv: asm.cv,
            data,
        });
        self.try_finish(asm.file)
    }

    fn file_end(
        &mut self,
        lane: usize,
        idx: u32,
        size: u64,
        root: [u8; 32],
    ) -> Result<(), ProtoError> {
        if self.assembling[lane].is_some() {
            return Err(ProtoError::Protocol("file end inside a block".into()));
        }
        let block_size = self.manifest.block_size;
        let Some(Some(file)) = self.files.get_mut(idx as usize) else {
            return Err(ProtoError::Protocol(format!(
                "file end for unknown file {idx}"
            )));
        };
        if file.end.is_some() {
            return Err(ProtoError::Protocol(format!(
                "second file end for file {idx}"
            )));
        }
        if file.size.is_some_and(|s| s != size) {
            return Err(ProtoError::Protocol(format!(
                "file {idx} ended at {size} bytes, not the size offered"
            )));
        }
        let n = block_count(size, block_size) as usize;
        file.cvs.truncate(n);
        file.verified = file.cvs.iter().flatten().count() as u64;
        file.end = Some((size, root));
        self.try_finish(idx)
    }

    fn try_finish(&mut self, idx: u32) -> Result<(), ProtoError> {
        let block_size = self.manifest.block_size;
        let path = self.manifest.entries[idx as usize].path.clone();
        let Some(Some(file)) = self.files.get_mut(idx as usize) else {
            return Ok(());
        };
        let Some((size, want)) = file.end else {
            return Ok(());
        };
        let n = block_count(size, block_size) as usize;
        if file.finishing || file.cvs.len() < n || file.cvs.iter().any(Option::is_none) {
            return Ok(());
        }
        let cvs: Vec<Cv> = file.cvs.iter().flatten().copied().collect();
        // A single-block file resumed from disk has no root yet: fetch it again.
        let Some(root) = root_from_cvs(&cvs, file.single_root) else {
            file.cvs.clear();
            file.verified = 0;
            self.actions
                .push_back(ReceiverAction::SendControl(Control::Resend {
                    file: idx,
                    block: 0,
                }));
            return Ok(());
        };
        if root.as_bytes() != &want {
            return Err(ProtoError::RootMismatch(path));
        }
        file.finishing = true;
        self.actions.push_back(ReceiverAction::Finish {
            file: idx,
            size,
            root,
        });
        Ok(())
    }

    fn finish_all(&mut self) {
        self.phase = Phase::Done;
        self.actions
            .push_back(ReceiverAction::SendControl(Control::Done));
        self.actions.push_back(ReceiverAction::Finished);
    }

    fn fail(&mut self, err: ProtoError) {
        if self.phase == Phase::Done {
            return;
        }
        self.phase = Phase::Done;
        if !matches!(err, ProtoError::PeerCancelled(_)) {
            self.actions
                .push_back(ReceiverAction::SendControl(Control::Cancel {
                    reason: err.to_string(),
                }));
        }
        self.actions.push_back(ReceiverAction::Failed(err));
    }
}
/// An empty buffer with room for `len` bytes whose start is aligned to
/// [`BLOCK_ALIGN`]: over-allocate and skip the first few bytes.
pub(crate) fn aligned_buffer(len: usize) -> BytesMut {
    let mut buf = BytesMut::with_capacity(len + BLOCK_ALIGN);
    let pad = (BLOCK_ALIGN - buf.as_ptr() as usize % BLOCK_ALIGN) % BLOCK_ALIGN;
    buf.resize(pad, 0);
    buf.advance(pad);
    buf
}
