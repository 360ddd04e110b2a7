//! One receiver's transfer: the loop that runs the [`Sender`] core against
//! the peer, the source reads and the data channels. Each kind of event has
//! a method of its own; the core decides, these only carry it out.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::source::{read_error, Offer, ReadDone, Source};
use super::Attempt;
use crate::error::PeerLost;
use crate::files::{FilesError, SourceFile, Stamp};
use crate::net::DataSender;
use crate::proto::{DataItem, ProtoError, ReadRequest, Sender, SenderAction};
use crate::transfer::peer::{Peer, PeerEvent};
use crate::transfer::progress::Progress;
use crate::transfer::session::drain_for;

/// Items queued for each data channel's writer task.
const WRITER_QUEUE: usize = 2;

/// What a finished transfer reports: each file's BLAKE3, and the bytes sent.
pub(super) type Sent = (BTreeMap<String, String>, u64);

pub(super) struct Pump<'a> {
    core: &'a mut Sender,
    peer: Peer<'a>,
    offer: Offer<'a>,
    progress: &'a mut Progress,
    timing: &'a mut Attempt,
    reads: Reads,
    writers: Writers,
    /// The writer tasks, apart from their queues so that waiting for room
    /// and waiting for a writer to end can be selected together.
    writer_tasks: JoinSet<Result<()>>,
    roots: BTreeMap<String, String>,
    total: u64,
}

impl<'a> Pump<'a> {
    pub(super) fn new(
        core: &'a mut Sender,
        peer: Peer<'a>,
        offer: Offer<'a>,
        progress: &'a mut Progress,
        timing: &'a mut Attempt,
    ) -> Self {
        let mut peer = peer;
        let mut writer_tasks = JoinSet::new();
        let writers = Writers::new(&mut writer_tasks, peer.link().data_sender());
        Pump {
            core,
            peer,
            offer,
            progress,
            timing,
            reads: Reads::new(),
            writers,
            writer_tasks,
            roots: BTreeMap::new(),
            total: 0,
        }
    }

    /// Runs until the receiver confirms everything, or the transfer fails.
    pub(super) async fn run(mut self) -> Result<Sent> {
        let result = self.drive().await;
        let Pump {
            peer,
            writers,
            mut writer_tasks,
            roots,
            total,
            ..
        } = self;
        drop(writers);
        writer_tasks.abort_all();
        peer.close(drain_for(&result)).await;
        result.map(|()| (roots, total))
    }

    async fn drive(&mut self) -> Result<()> {
        loop {
            if let Some(done) = self.do_actions().await {
                return done;
            }
            tokio::select! {
                biased;
                event = self.peer.next() => self.on_peer(event).await?,
                Some(done) = self.reads.next() => self.on_read(done),
                permit = room(&self.writers.queues), if self.core.has_data() => {
                    self.on_room(permit.ok_or_else(|| lost_receiver("the data channel closed"))?)
                }
                Some(ended) = self.writer_tasks.join_next() => match ended {
                    // Only a writer whose queue we closed ends well: the main one.
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(lost_receiver(&format!("{e:#}"))),
                    Err(_) => return Err(anyhow!("the data writer stopped")),
                },
            }
        }
    }

    /// Carries out what the core asks; `Some` once the transfer is over.
    async fn do_actions(&mut self) -> Option<Result<()>> {
        while let Some(action) = self.core.poll_action() {
            match action {
                SenderAction::SendControl(msg) => {
                    if let Err(e) = self.peer.send(&msg).await {
                        return Some(Err(lost_receiver(&format!("{e:#}"))));
                    }
                }
                SenderAction::Read(req) => self.read(req),
                SenderAction::OfferLane(lane) => {
                    let max_datagram = self.core.peer().max_datagram;
                    self.peer.offer_lane(lane, max_datagram).await;
                }
                SenderAction::LaneAnswered { lane, sdp } => self.peer.lane_answered(lane, sdp),
                SenderAction::Finished => {
                    self.timing.end();
                    return Some(Ok(()));
                }
                SenderAction::Failed(e) => return Some(Err(anyhow!(e))),
            }
        }
        None
    }

    async fn on_peer(&mut self, event: PeerEvent) -> Result<()> {
        match event {
            PeerEvent::Cancelled => return Err(self.peer.interrupted("the sender").await),
            PeerEvent::Control(Ok(msg)) => self.core.handle_control(msg),
            PeerEvent::Control(Err(e)) => self.core.abort(ProtoError::Protocol(e.to_string())),
            PeerEvent::Data(..) => self
                .core
                .abort(ProtoError::Protocol("the receiver sent data".into())),
            PeerEvent::LaneSdp(lane, sdp) => self.core.lane_offer(lane, sdp),
            PeerEvent::LaneOpen { channel, same_host } => {
                self.writers.add(&mut self.writer_tasks, channel, same_host)
            }
            PeerEvent::Lost(reason) | PeerEvent::Left(reason) => {
                return Err(lost_receiver(&reason))
            }
        }
        Ok(())
    }

    /// Starts the read the core asked for; it comes back through `reads`.
    fn read(&mut self, req: ReadRequest) {
        let file = req.file as usize;
        match &self.offer.sources[file] {
            Source::Stdin => match self.offer.stdin {
                Some(stdin) => stdin.read(req, self.reads.done_tx()),
                None => self
                    .core
                    .read_failed(ProtoError::Local("internal: no stdin reader".into())),
            },
            Source::Path(path, stamp) => match self.reads.open(req.file, path, *stamp) {
                Ok(source) => self.reads.spawn(source, req),
                Err(e) => self
                    .core
                    .read_failed(read_error(&self.offer.names[file], e)),
            },
            Source::Dir => self
                .core
                .read_failed(ProtoError::Local("internal: read of a folder".into())),
        }
    }

    fn on_read(&mut self, done: ReadDone) {
        match done.result {
            Ok((data, cv, root)) => self.core.block_read(&done.req, data, cv, root),
            Err(e) => {
                let name = &self.offer.names[done.req.file as usize];
                self.core.read_failed(read_error(name, e))
            }
        }
    }

    /// A data channel has room: give it the core's next item.
    fn on_room(&mut self, permit: mpsc::OwnedPermit<DataItem>) {
        let Some(item) = self.core.poll_data() else {
            return;
        };
        match &item {
            DataItem::Block { file, data, .. } => {
                if self.timing.first_byte.is_none() {
                    self.first_payload();
                }
                self.progress.file(&self.offer.names[*file as usize]);
                self.progress.advance(data.len() as u64);
            }
            DataItem::FileEnd { file, size, root } => {
                self.reads.close(*file);
                self.total += size;
                let name = self.offer.names[*file as usize].clone();
                self.roots
                    .insert(name, data_encoding::HEXLOWER.encode(root));
            }
        }
        permit.send(item);
    }

    /// The first payload byte: the transfer's time and bar start here, not
    /// while the receiver sat at its prompt.
    fn first_payload(&mut self) {
        self.timing.begin();
        let m = self.core.manifest();
        let total = (!m.has_stream()).then(|| m.total_bytes());
        self.progress
            .start(total, self.core.stats.bytes_skipped, self.timing.path);
        self.progress.begin();
    }
}

fn lost_receiver(reason: &str) -> anyhow::Error {
    PeerLost(format!("lost the receiver: {reason}")).into()
}

/// Source files open for reading, and where their reads report back.
struct Reads {
    tx: mpsc::UnboundedSender<ReadDone>,
    rx: mpsc::UnboundedReceiver<ReadDone>,
    open: HashMap<u32, Arc<SourceFile>>,
}

impl Reads {
    fn new() -> Reads {
        let (tx, rx) = mpsc::unbounded_channel();
        Reads {
            tx,
            rx,
            open: HashMap::new(),
        }
    }

    fn done_tx(&self) -> mpsc::UnboundedSender<ReadDone> {
        self.tx.clone()
    }

    /// File `file`, opened on its first read and kept until its end is sent.
    fn open(
        &mut self,
        file: u32,
        path: &Path,
        stamp: Stamp,
    ) -> Result<Arc<SourceFile>, FilesError> {
        if let Some(open) = self.open.get(&file) {
            return Ok(open.clone());
        }
        let opened = Arc::new(SourceFile::open(path, stamp)?);
        self.open.insert(file, opened.clone());
        Ok(opened)
    }

    fn close(&mut self, file: u32) {
        self.open.remove(&file);
    }

    /// Reads and hashes on a blocking thread.
    fn spawn(&self, source: Arc<SourceFile>, req: ReadRequest) {
        let tx = self.done_tx();
        tokio::task::spawn_blocking(move || {
            let result = source
                .read_at(req.offset, req.len as usize)
                .map(|data| super::source::hash(&req, data));
            let _ = tx.send(ReadDone { req, result });
        });
    }

    async fn next(&mut self) -> Option<ReadDone> {
        self.rx.recv().await
    }
}

/// The queues of the writer tasks, one per data channel (the main one, then
/// each lane as it opens); an item goes to whichever has room first.
struct Writers {
    queues: Vec<mpsc::Sender<DataItem>>,
    main_sends_data: bool,
}

impl Writers {
    fn new(tasks: &mut JoinSet<Result<()>>, main: DataSender) -> Writers {
        Writers {
            queues: vec![spawn_writer(tasks, main)],
            main_sends_data: true,
        }
    }

    fn add(&mut self, tasks: &mut JoinSet<Result<()>>, channel: DataSender, same_host: bool) {
        // A lane with large packets moves data at a fraction of the main
        // connection's CPU per byte (see `lanes`): it takes all of it. The
        // main writer sends what it holds, then ends.
        if same_host && self.main_sends_data {
            self.queues.remove(0);
            self.main_sends_data = false;
        }
        self.queues.push(spawn_writer(tasks, channel));
    }
}

/// A writer task for one data channel; returns where to queue its items.
fn spawn_writer(tasks: &mut JoinSet<Result<()>>, channel: DataSender) -> mpsc::Sender<DataItem> {
    let (tx, rx) = mpsc::channel::<DataItem>(WRITER_QUEUE);
    tasks.spawn(write_data(channel, rx));
    tx
}

/// Room for one item on whichever queue has it first; `None` if they closed.
async fn room(queues: &[mpsc::Sender<DataItem>]) -> Option<mpsc::OwnedPermit<DataItem>> {
    let waits = queues.iter().map(|tx| Box::pin(tx.clone().reserve_owned()));
    let (permit, _, _) = futures::future::select_all(waits).await;
    permit.ok()
}

/// Puts data items on the channel in order; `send` waits on back-pressure.
async fn write_data(channel: DataSender, mut items: mpsc::Receiver<DataItem>) -> Result<()> {
    while let Some(item) = items.recv().await {
        for msg in item.messages() {
            channel.send(msg).await?;
        }
    }
    Ok(())
}
