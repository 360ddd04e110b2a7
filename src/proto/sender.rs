//! The sending side of a transfer as a state machine: control messages and
//! finished reads go in; control messages to send, reads to do and data items
//! to put on the channel come out. No I/O, no clock.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use super::hash::{root_from_cvs, Cv};
use super::manifest::{block_count, EntryKind, Manifest};
use super::wire::{
    cv_from_hex, manifest_parts, Capabilities, Control, HaveFile, LeftOut, MAX_LANES,
    PROTOCOL_VERSION,
};
use super::ProtoError;

/// Blocks read ahead of the channel: bounds the sender's memory to about
/// `window` full blocks' worth of bytes, whatever the file size.
pub const DEFAULT_WINDOW: usize = 8;
/// Most reads in flight at once, however small the blocks: small files
/// fill the window's bytes only with many reads, and each read is a task.
pub const MAX_READS: usize = 64;
/// A block re-requested more often than this fails the transfer.
pub const MAX_RESENDS: u32 = 3;

/// Why a block is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// To send it.
    Send,
    /// To check a block the receiver says it already has.
    Verify,
}

/// A block of a source file the driver must read and hash, then hand back
/// with [`Sender::block_read`] (or [`Sender::read_failed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    /// Index of the file in the manifest's entries.
    pub file: u32,
    /// Index of the block within the file.
    pub block: u64,
    /// Byte offset of the block in the file: `block * block_size`.
    pub offset: u64,
    /// Bytes to read; a stream of unknown length may return fewer (end of stream).
    pub len: u32,
    /// Whether the block is to be sent, or only checked against a claim
    /// of the receiver's; the driver reads and hashes it the same way.
    pub purpose: Purpose,
}

/// What the driver must do next, as [`Sender::poll_action`] hands it out.
/// Carry out each in order.
#[derive(Debug)]
pub enum SenderAction {
    /// Send this message on the `control` channel, in order with the others.
    SendControl(Control),
    /// Read and hash this block of the source (off the async thread if
    /// need be), then report with [`Sender::block_read`], or
    /// [`Sender::read_failed`] if it could not be read.
    Read(ReadRequest),
    /// Both hellos offered lanes: set up extra data connection `lane`
    /// (numbered from 1) and hand its SDP offer to [`Sender::lane_offer`].
    /// Data items may go on any open lane; the transfer does not wait for
    /// them.
    OfferLane(u32),
    /// The receiver answered lane `lane`'s offer with `sdp`: complete that
    /// connection with it.
    LaneAnswered {
        /// The lane, numbered from 1.
        lane: u32,
        /// The receiver's SDP answer.
        sdp: String,
    },
    /// The receiver has everything, verified (it sent `done`): the transfer
    /// succeeded; stop driving.
    Finished,
    /// The transfer failed. Any `cancel` for the peer was queued as a
    /// [`SenderAction::SendControl`] just before: send it, then stop.
    Failed(ProtoError),
}

/// One item for a data channel. Each item travels whole on one channel (a
/// block's header and data stay together); items may go on different lanes,
/// and the receiver accepts a file's end before blocks still in flight.
#[derive(Debug, Clone)]
pub enum DataItem {
    /// One block: a block header and its data messages (docs/PROTOCOL.md §4).
    Block {
        /// Index of the file in the manifest's entries.
        file: u32,
        /// Index of the block within the file.
        block: u64,
        /// The block's BLAKE3 chaining value, which the receiver checks.
        cv: Cv,
        /// The block's bytes: `block_size`, or fewer for a file's last block.
        data: Bytes,
    },
    /// A file end (§4): every block of `file` has been handed out or was
    /// confirmed as already held.
    FileEnd {
        /// Index of the file in the manifest's entries.
        file: u32,
        /// The file's final size in bytes (for a stream, what was read).
        size: u64,
        /// BLAKE3 hash of the whole file, as `b3sum` prints it.
        root: [u8; 32],
    },
}

struct SendFile {
    /// Declared size, or `None` for a stream whose end is found by reading.
    size: Option<u64>,
    cvs: Vec<Option<Cv>>,
    single_root: Option<blake3::Hash>,
    /// Blocks the receiver claims to hold, with their CVs.
    claimed: HashMap<u64, Cv>,
    /// Set once the end of an unknown-length stream was read.
    ended_at: Option<u64>,
    end_queued: bool,
}

impl SendFile {
    fn blocks(&self, block_size: u32) -> Option<u64> {
        match (self.size, self.ended_at) {
            (Some(size), _) => Some(block_count(size, block_size)),
            (None, Some(size)) => Some(block_count(size, block_size)),
            (None, None) => None,
        }
    }
}

/// Where the SDP exchange of one lane stands, on the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LaneOffer {
    /// Asked the driver for an offer.
    Making,
    /// The offer went out; waiting for the receiver's answer.
    Offered,
    /// The answer came back and went to the driver.
    Answered,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    AwaitHello,
    AwaitAccept,
    Sending,
    Done,
}

/// Counters a driver may show.
#[derive(Debug, Default, Clone)]
pub struct SenderStats {
    /// Payload bytes handed to the channel.
    pub bytes_queued: u64,
    /// Bytes the receiver already had, verified against the source.
    pub bytes_skipped: u64,
}

/// The sending side of a transfer, as a sans-IO state machine.
///
/// A new sender has already queued its `hello` and the manifest parts. The
/// driver (`transfer/send/pump.rs`) loops: it drains [`poll_action`] until
/// `None` and carries out each [`SenderAction`]; then it waits for the next
/// input and feeds it in: a control message from the receiver to
/// [`handle_control`], a finished read to [`block_read`] or
/// [`read_failed`], a lane's SDP offer to [`lane_offer`], a local failure
/// to [`abort`]. Whenever a data channel has room and [`has_data`] says
/// so, it takes an item from [`poll_data`] and puts its
/// [`DataItem::messages`] on that channel. It stops at
/// [`SenderAction::Finished`] or [`SenderAction::Failed`].
///
/// [`poll_action`]: Sender::poll_action
/// [`handle_control`]: Sender::handle_control
/// [`block_read`]: Sender::block_read
/// [`read_failed`]: Sender::read_failed
/// [`lane_offer`]: Sender::lane_offer
/// [`abort`]: Sender::abort
/// [`has_data`]: Sender::has_data
/// [`poll_data`]: Sender::poll_data
pub struct Sender {
    manifest: Manifest,
    files: Vec<Option<SendFile>>,
    phase: Phase,
    window: usize,
    actions: VecDeque<SenderAction>,
    ready: VecDeque<DataItem>,
    /// Next block to consider in file order.
    cursor: (usize, u64),
    resends: VecDeque<(u32, u64)>,
    resend_counts: HashMap<(u32, u64), u32>,
    reads_in_flight: usize,
    /// Bytes asked for by the reads in flight.
    read_bytes_in_flight: u64,
    /// A stream (unknown length) allows one read at a time, in order.
    stream_read_busy: bool,
    /// Extra data connections offered in our hello.
    lanes: u32,
    /// The SDP exchange of each agreed lane: index 0 is lane 1.
    lane_offers: Vec<LaneOffer>,
    /// What the receiver's hello said it can do.
    peer: Capabilities,
    /// Whether our hello offered flow control (see `Control::Credit`).
    obeys_credit: bool,
    /// Cost of the data items handed out, and of those the receiver credited.
    sent_cost: u64,
    credited: u64,
    /// Bytes handed out and skipped so far, for progress and the summary.
    pub stats: SenderStats,
}

impl Sender {
    /// A sender offering `manifest` without lanes or flow control, reading
    /// at most `window` blocks ahead of the channel (at least 1; see
    /// [`DEFAULT_WINDOW`]).
    pub fn new(manifest: Manifest, window: usize) -> Sender {
        Sender::with_lanes(manifest, window, Capabilities::default())
    }

    /// A sender whose hello offers `caps`: up to `caps.lanes` extra data
    /// connections; once the receiver's hello agrees,
    /// [`SenderAction::OfferLane`] asks for each one's offer.
    pub fn with_lanes(manifest: Manifest, window: usize, caps: Capabilities) -> Sender {
        Sender::offering(manifest, &LeftOut::new(), window, caps)
    }

    /// [`with_lanes`](Self::with_lanes), telling the receiver what the
    /// offer leaves out.
    pub fn offering(
        manifest: Manifest,
        left_out: &LeftOut,
        window: usize,
        caps: Capabilities,
    ) -> Sender {
        let files = manifest
            .entries
            .iter()
            .map(|e| {
                (e.kind == EntryKind::File).then(|| SendFile {
                    size: e.size,
                    cvs: Vec::new(),
                    single_root: None,
                    claimed: HashMap::new(),
                    ended_at: None,
                    end_queued: false,
                })
            })
            .collect();
        let mut sender = Sender {
            manifest,
            files,
            phase: Phase::AwaitHello,
            window: window.max(1),
            actions: VecDeque::new(),
            ready: VecDeque::new(),
            cursor: (0, 0),
            resends: VecDeque::new(),
            resend_counts: HashMap::new(),
            reads_in_flight: 0,
            read_bytes_in_flight: 0,
            stream_read_busy: false,
            lanes: caps.lanes.min(MAX_LANES),
            lane_offers: Vec::new(),
            peer: Capabilities::default(),
            obeys_credit: caps.window > 0,
            sent_cost: 0,
            credited: 0,
            stats: SenderStats::default(),
        };
        let hello = hello(Capabilities {
            lanes: sender.lanes,
            ..caps
        });
        sender.actions.push_back(SenderAction::SendControl(hello));
        for part in manifest_parts(&sender.manifest, left_out) {
            sender.actions.push_back(SenderAction::SendControl(part));
        }
        sender
    }

    /// The manifest being offered.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// What the receiver's hello said it can do (all zero before it).
    pub fn peer(&self) -> Capabilities {
        self.peer
    }

    /// The next thing the driver must do, in order; `None` once there is
    /// nothing until the next input. Call it until `None` after every input.
    pub fn poll_action(&mut self) -> Option<SenderAction> {
        self.actions.pop_front()
    }

    /// The next item for the data channel, when the driver has room for it.
    /// `None` when nothing is ready, or when the receiver's flow-control
    /// window is full (until its next `credit`). Taking an item may queue
    /// more reads: drain [`Sender::poll_action`] afterwards.
    pub fn poll_data(&mut self) -> Option<DataItem> {
        if !self.window_open() {
            return None;
        }
        let item = self.ready.pop_front();
        if let Some(item) = &item {
            self.sent_cost += item.cost();
            self.schedule_reads();
        }
        item
    }

    /// Whether [`Sender::poll_data`] has an item now: one is ready, and the
    /// receiver's window (when both hellos agreed on flow control) has room.
    pub fn has_data(&self) -> bool {
        !self.ready.is_empty() && self.window_open()
    }

    fn window_open(&self) -> bool {
        !self.flow_control() || self.sent_cost - self.credited < u64::from(self.peer.window)
    }

    fn flow_control(&self) -> bool {
        self.obeys_credit && self.peer.window > 0
    }

    /// A control message from the receiver, decoded. One it does not
    /// expect at this point fails the transfer (a protocol error); after
    /// the transfer ended, messages are ignored.
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
                self.phase = Phase::AwaitAccept;
                let lanes = self.lanes.min(lanes);
                self.lane_offers = vec![LaneOffer::Making; lanes as usize];
                for lane in 1..=lanes {
                    self.actions.push_back(SenderAction::OfferLane(lane));
                }
            }
            (Control::Lane { lane, sdp }, _) => self.lane_answered(lane, sdp),
            (Control::Accept { have }, Phase::AwaitAccept) => {
                if let Err(e) = self.record_claims(have) {
                    return self.fail(e);
                }
                self.phase = Phase::Sending;
                self.schedule_reads();
            }
            (Control::Resend { file, block }, Phase::Sending) => self.resend(file, block),
            (Control::Credit { consumed }, Phase::Sending) if self.flow_control() => {
                if consumed < self.credited || consumed > self.sent_cost {
                    let what = format!(
                        "a credit for {consumed} where {} was credited and {} sent",
                        self.credited, self.sent_cost
                    );
                    return self.fail(ProtoError::Protocol(what));
                }
                self.credited = consumed;
            }
            (Control::Done, Phase::Sending) => {
                if self.all_ended() {
                    self.phase = Phase::Done;
                    self.actions.push_back(SenderAction::Finished);
                } else {
                    self.fail(ProtoError::Protocol(
                        "receiver said done before the transfer ended".into(),
                    ));
                }
            }
            (Control::Cancel { reason }, _) => {
                self.phase = Phase::Done;
                self.actions
                    .push_back(SenderAction::Failed(ProtoError::PeerCancelled(reason)));
            }
            (other, phase) => {
                let what = format!("unexpected {} while {phase:?}", control_name(&other));
                self.fail(ProtoError::Protocol(what));
            }
        }
    }

    /// A read finished. `data` may be short only for a stream, at its end.
    /// `single_root` is the BLAKE3 of `data` when `block == 0`.
    pub fn block_read(
        &mut self,
        req: &ReadRequest,
        data: Bytes,
        cv: Option<Cv>,
        single_root: Option<blake3::Hash>,
    ) {
        self.read_done(req);
        if self.phase == Phase::Done {
            return;
        }
        let Some(Some(file)) = self.files.get_mut(req.file as usize) else {
            return self.fail(ProtoError::Protocol(format!(
                "read of unknown file {}",
                req.file
            )));
        };
        let is_stream = file.size.is_none();
        if is_stream {
            self.stream_read_busy = false;
        }
        if data.len() < req.len as usize {
            if !is_stream {
                let path = self.manifest.entries[req.file as usize].path.clone();
                let what = "it is shorter than offered".into();
                return self.fail(ProtoError::SourceChanged { path, what });
            }
            // End of stream: this block (possibly empty) is the last.
            file.ended_at = Some(req.offset + data.len() as u64);
        }
        if let Some(cv) = cv.filter(|_| !data.is_empty()) {
            let idx = req.block as usize;
            if file.cvs.len() <= idx {
                file.cvs.resize(idx + 1, None);
            }
            if let Some(old) = file.cvs[idx] {
                if old != cv {
                    let path = self.manifest.entries[req.file as usize].path.clone();
                    let what = "a block read twice differed".into();
                    return self.fail(ProtoError::SourceChanged { path, what });
                }
            }
            file.cvs[idx] = Some(cv);
            if req.block == 0 {
                file.single_root = single_root;
            }
            let send = match req.purpose {
                Purpose::Send => true,
                Purpose::Verify => file.claimed.get(&req.block) != Some(&cv),
            };
            if send {
                self.stats.bytes_queued += data.len() as u64;
                self.ready.push_back(DataItem::Block {
                    file: req.file,
                    block: req.block,
                    cv,
                    data,
                });
            } else {
                self.stats.bytes_skipped += data.len() as u64;
            }
        }
        self.queue_file_end(req.file);
        self.schedule_reads();
    }

    /// A [`SenderAction::Read`] could not be done: the transfer fails with
    /// `err`, and the receiver is told why.
    pub fn read_failed(&mut self, err: ProtoError) {
        self.reads_in_flight = self.reads_in_flight.saturating_sub(1);
        self.fail(err);
    }

    fn read_done(&mut self, req: &ReadRequest) {
        self.reads_in_flight = self.reads_in_flight.saturating_sub(1);
        self.read_bytes_in_flight = self.read_bytes_in_flight.saturating_sub(u64::from(req.len));
    }

    /// Stop because of something outside the protocol core (a malformed
    /// message, a local error); the peer is told why.
    pub fn abort(&mut self, err: ProtoError) {
        self.fail(err);
    }

    fn record_claims(&mut self, have: Vec<HaveFile>) -> Result<(), ProtoError> {
        for h in have {
            let Some(Some(file)) = self.files.get_mut(h.file as usize) else {
                return Err(ProtoError::Protocol(format!(
                    "resume state names unknown file {}",
                    h.file
                )));
            };
            for b in h.blocks {
                let cv = cv_from_hex(&b.cv).ok_or_else(|| {
                    ProtoError::Protocol("resume state has a malformed block hash".into())
                })?;
                file.claimed.insert(b.block, cv);
            }
        }
        Ok(())
    }

    fn resend(&mut self, file: u32, block: u64) {
        let known = matches!(self.files.get(file as usize), Some(Some(f))
            if f.blocks(self.manifest.block_size).is_some_and(|n| block < n));
        if !known {
            return self.fail(ProtoError::Protocol(format!(
                "resend of unknown block {block} of file {file}"
            )));
        }
        let count = self.resend_counts.entry((file, block)).or_insert(0);
        *count += 1;
        if *count > MAX_RESENDS {
            let path = self.manifest.entries[file as usize].path.clone();
            return self.fail(ProtoError::Verify { path, block });
        }
        self.resends.push_back((file, block));
        self.schedule_reads();
    }

    fn queue_file_end(&mut self, idx: u32) {
        let block_size = self.manifest.block_size;
        let Some(Some(file)) = self.files.get_mut(idx as usize) else {
            return;
        };
        if file.end_queued {
            return;
        }
        let Some(n) = file.blocks(block_size) else {
            return;
        };
        if file.cvs.len() < n as usize || file.cvs[..n as usize].iter().any(Option::is_none) {
            return;
        }
        let cvs: Vec<Cv> = file.cvs[..n as usize].iter().flatten().copied().collect();
        let Some(root) = root_from_cvs(&cvs, file.single_root) else {
            return self.fail(ProtoError::Protocol("missing single-block root".into()));
        };
        let size = file.size.or(file.ended_at).unwrap_or(0);
        file.end_queued = true;
        self.ready.push_back(DataItem::FileEnd {
            file: idx,
            size,
            root: *root.as_bytes(),
        });
    }

    fn all_ended(&self) -> bool {
        self.files.iter().flatten().all(|f| f.end_queued)
    }

    /// Whether the reads in flight and the blocks waiting for the channel
    /// leave room for another read: at most `window` full blocks of bytes
    /// and [`MAX_READS`] reads.
    fn has_room(&self) -> bool {
        let ready: u64 = self
            .ready
            .iter()
            .map(|i| match i {
                DataItem::Block { data, .. } => data.len() as u64,
                DataItem::FileEnd { .. } => 0,
            })
            .sum();
        let window = self.window as u64 * u64::from(self.manifest.block_size);
        self.reads_in_flight < MAX_READS.max(self.window)
            && self.read_bytes_in_flight + ready < window
    }

    /// Issue reads up to the window: resends first, then the next blocks in order.
    fn schedule_reads(&mut self) {
        if self.phase != Phase::Sending {
            return;
        }
        let block_size = self.manifest.block_size;
        while self.has_room() {
            if let Some((file, block)) = self.resends.pop_front() {
                let size = self.files[file as usize]
                    .as_ref()
                    .and_then(|f| f.size.or(f.ended_at))
                    .unwrap_or(0);
                let offset = block * u64::from(block_size);
                let len = (size - offset).min(u64::from(block_size)) as u32;
                self.push_read(ReadRequest {
                    file,
                    block,
                    offset,
                    len,
                    purpose: Purpose::Send,
                });
                continue;
            }
            let (fi, bi) = self.cursor;
            if fi >= self.files.len() {
                return;
            }
            let Some(file) = self.files[fi].as_ref() else {
                self.cursor = (fi + 1, 0);
                continue;
            };
            let offset = bi * u64::from(block_size);
            match file.size {
                Some(size) => {
                    if offset >= size {
                        self.cursor = (fi + 1, 0);
                        self.queue_file_end(fi as u32); // empty file
                        continue;
                    }
                    let len = (size - offset).min(u64::from(block_size)) as u32;
                    let purpose = if file.claimed.contains_key(&bi) {
                        Purpose::Verify
                    } else {
                        Purpose::Send
                    };
                    self.cursor = (fi, bi + 1);
                    self.push_read(ReadRequest {
                        file: fi as u32,
                        block: bi,
                        offset,
                        len,
                        purpose,
                    });
                }
                None => {
                    if file.ended_at.is_some() {
                        self.cursor = (fi + 1, 0);
                        continue;
                    }
                    if self.stream_read_busy {
                        return;
                    }
                    self.stream_read_busy = true;
                    self.cursor = (fi, bi + 1);
                    self.push_read(ReadRequest {
                        file: fi as u32,
                        block: bi,
                        offset,
                        len: block_size,
                        purpose: Purpose::Send,
                    });
                }
            }
        }
    }

    /// The driver made lane `lane`'s SDP offer, as
    /// [`SenderAction::OfferLane`] asked: it goes to the receiver.
    pub fn lane_offer(&mut self, lane: u32, sdp: String) {
        if self.phase == Phase::Done {
            return;
        }
        match self.lane_state(lane) {
            Some(state @ LaneOffer::Making) => {
                *state = LaneOffer::Offered;
                let msg = Control::Lane { lane, sdp };
                self.actions.push_back(SenderAction::SendControl(msg));
            }
            _ => self.fail(ProtoError::Local(format!(
                "internal: an offer for lane {lane}, which was not asked for"
            ))),
        }
    }

    /// The receiver's `lane` message: the answer to one of our offers.
    fn lane_answered(&mut self, lane: u32, sdp: String) {
        match self.lane_state(lane) {
            Some(state @ LaneOffer::Offered) => {
                *state = LaneOffer::Answered;
                self.actions
                    .push_back(SenderAction::LaneAnswered { lane, sdp });
            }
            _ => self.fail(ProtoError::Protocol(format!(
                "an answer for lane {lane}, which was never offered"
            ))),
        }
    }

    fn lane_state(&mut self, lane: u32) -> Option<&mut LaneOffer> {
        let index = usize::try_from(lane).ok()?.checked_sub(1)?;
        self.lane_offers.get_mut(index)
    }

    fn push_read(&mut self, req: ReadRequest) {
        self.reads_in_flight += 1;
        self.read_bytes_in_flight += u64::from(req.len);
        self.actions.push_back(SenderAction::Read(req));
    }

    fn fail(&mut self, err: ProtoError) {
        if self.phase == Phase::Done {
            return;
        }
        self.phase = Phase::Done;
        self.actions
            .push_back(SenderAction::SendControl(Control::Cancel {
                reason: err.to_string(),
            }));
        self.actions.push_back(SenderAction::Failed(err));
    }
}

pub(super) fn hello(caps: Capabilities) -> Control {
    Control::Hello {
        protocol: PROTOCOL_VERSION,
        software: concat!("ferry/", env!("CARGO_PKG_VERSION")).into(),
        lanes: caps.lanes,
        max_datagram: caps.max_datagram,
        window: caps.window,
    }
}

pub(super) fn control_name(msg: &Control) -> &'static str {
    match msg {
        Control::Hello { .. } => "hello",
        Control::Manifest { .. } => "manifest",
        Control::Accept { .. } => "accept",
        Control::Resend { .. } => "resend",
        Control::Done => "done",
        Control::Credit { .. } => "credit",
        Control::Cancel { .. } => "cancel",
        Control::Lane { .. } => "lane",
    }
}
