//! The transfer: the loop that runs the [`Receiver`] core against the peer
//! and the disk writer. Each kind of event has a method of its own; the core
//! verifies and decides, these only carry it out.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::decide::{decide, Plan, Refused};
use super::writer::{DiskWriter, WriteCmd, WriteEvent};
use super::Ctx;
use crate::error::{Interrupted, PeerLost};
use crate::net::{Incoming, Link};
use crate::proto::hash::Cv;
use crate::proto::{Control, EntryKind, Manifest, ProtoError, Receiver, ReceiverAction};
use crate::transfer::peer::{Peer, PeerEvent};
use crate::transfer::session::drain_for;

/// How long a lost sender's last messages are still looked for.
const BACKLOG_WAIT: Duration = Duration::from_millis(500);

pub(super) struct Pump<'a> {
    core: &'a mut Receiver,
    peer: Peer<'a>,
    ctx: &'a mut Ctx,
    disk: DiskWriter,
    /// For the question at the prompt (the peer has its own copy).
    cancel: CancellationToken,
    /// How the transfer ended, once the core or the user said so.
    finished: Option<Result<()>>,
}

impl<'a> Pump<'a> {
    pub(super) fn new(
        core: &'a mut Receiver,
        peer: Peer<'a>,
        ctx: &'a mut Ctx,
        cancel: &CancellationToken,
    ) -> Self {
        let disk = DiskWriter::start(ctx.opts.out.clone(), ctx.opts.force);
        Pump {
            core,
            peer,
            ctx,
            disk,
            cancel: cancel.clone(),
            finished: None,
        }
    }

    /// Runs until every file is in place, or the transfer fails.
    pub(super) async fn run(mut self) -> Result<()> {
        let result = self.drive().await;
        let Pump { peer, disk, .. } = self;
        peer.close(drain_for(&result)).await;
        disk.stop().await;
        result
    }

    async fn drive(&mut self) -> Result<()> {
        loop {
            self.do_actions().await;
            if let Some(done) = self.finished.take() {
                // Flush whatever the last actions queued (the cancel or done message).
                while let Some(ReceiverAction::SendControl(msg)) = self.core.poll_action() {
                    let _ = self.peer.send(&msg).await;
                }
                return done;
            }
            tokio::select! {
                biased;
                event = self.peer.next() => self.on_peer(event).await?,
                Some(event) = self.disk.next() => match event {
                    WriteEvent::Finished(file) => self.core.file_finished(file),
                    WriteEvent::Failed(e) => self.core.abort(ProtoError::Local(e.to_string())),
                },
            }
        }
    }

    /// Carries out what the core asks. A step that fails (the peer or the
    /// disk writer gone) stops the core, saying why.
    async fn do_actions(&mut self) {
        while let Some(action) = self.core.poll_action() {
            if let Err(e) = self.act(action).await {
                let why = self
                    .disk
                    .failure()
                    .map_or_else(|| format!("{e:#}"), |e| e.to_string());
                self.core.abort(ProtoError::Local(why));
            }
        }
    }

    async fn act(&mut self, action: ReceiverAction) -> Result<()> {
        match action {
            ReceiverAction::SendControl(msg) => self.send(&msg).await,
            ReceiverAction::Offer(manifest) => self.on_offer(manifest).await,
            ReceiverAction::Write {
                file,
                block,
                offset,
                cv,
                data,
            } => self.on_write(file, block, offset, cv, data).await,
            ReceiverAction::Finish { file, size, root } => self.on_finish(file, size, root).await,
            ReceiverAction::AnswerLane { lane, offer } => {
                let max_datagram = self.core.peer().max_datagram;
                self.peer.answer_lane(lane, offer, max_datagram).await;
                Ok(())
            }
            ReceiverAction::Finished => {
                self.finished = Some(Ok(()));
                Ok(())
            }
            ReceiverAction::Failed(e) => {
                // A decline already carries its own, better error.
                if self.finished.is_none() {
                    self.finished = Some(Err(match e {
                        // On this side the peer is the sender: say so.
                        ProtoError::PeerCancelled(why) => sender_cancelled(&why),
                        e => anyhow!(e),
                    }));
                }
                Ok(())
            }
        }
    }

    async fn send(&mut self, msg: &Control) -> Result<()> {
        let Err(e) = self.peer.send(msg).await else {
            return Ok(());
        };
        if let Some(why) = cancel_in_backlog(self.peer.link()).await {
            self.finished.get_or_insert(Err(why));
        }
        Err(e)
    }

    async fn on_peer(&mut self, event: PeerEvent) -> Result<()> {
        match event {
            PeerEvent::Cancelled => return Err(self.peer.interrupted("the receiver").await),
            PeerEvent::Control(Ok(msg)) => self.core.handle_control(msg),
            PeerEvent::Control(Err(e)) => self.core.abort(ProtoError::Protocol(e.to_string())),
            PeerEvent::Data(lane, bytes) => {
                if self.ctx.first_byte.is_none() {
                    self.ctx.first_byte = Some(Instant::now());
                    self.ctx.progress.begin();
                }
                self.core.handle_lane_data(lane, &bytes)
            }
            PeerEvent::LaneSdp(lane, sdp) => self.core.lane_answer(lane, sdp),
            // Its messages join the link's stream.
            PeerEvent::LaneOpen { .. } => {}
            PeerEvent::Lost(reason) => return Err(lost_sender(&reason)),
            PeerEvent::Left(reason) => {
                // The rendezvous may tell of the sender's exit before its
                // cancel, queued behind data, has been read.
                let why = cancel_in_backlog(self.peer.link()).await;
                return Err(why.unwrap_or_else(|| lost_sender(&reason)));
            }
        }
        Ok(())
    }

    async fn on_offer(&mut self, manifest: Manifest) -> Result<()> {
        match decide(&manifest, self.core.left_out(), self.ctx, &self.cancel).await {
            Ok(plan) => return self.start(manifest, plan).await,
            Err(e) if e.is::<Interrupted>() => {
                let why = "the receiver was interrupted".into();
                self.core.abort(ProtoError::Local(why));
                self.finished = Some(Err(e));
            }
            Err(e) => {
                // The sender gets the short form, about this side.
                let why = e
                    .downcast_ref::<Refused>()
                    .map_or_else(|| format!("{e:#}"), |r| r.for_sender.clone());
                self.core.decline(&why);
                self.finished = Some(Err(e));
            }
        }
        Ok(())
    }

    /// The offer is accepted: tell the core what is already here and the
    /// disk writer what to set up.
    async fn start(&mut self, manifest: Manifest, plan: Plan) -> Result<()> {
        self.disk
            .send(WriteCmd::Begin {
                block_size: manifest.block_size,
            })
            .await?;
        for e in manifest.entries.iter().filter(|e| e.kind == EntryKind::Dir) {
            let rel = e.path.clone();
            self.disk.send(WriteCmd::Dir { rel }).await?;
        }
        self.ctx.manifest = Some(manifest.clone());
        self.ctx.locked = plan.locked;
        let total = (!manifest.has_stream()).then(|| manifest.total_bytes());
        self.core.accept(manifest, plan.held);
        let resumed = self.core.stats.bytes_resumed;
        self.ctx.progress.start(total, resumed, &self.ctx.path);
        Ok(())
    }

    async fn on_write(
        &mut self,
        file: u32,
        block: u64,
        offset: u64,
        cv: Cv,
        data: Bytes,
    ) -> Result<()> {
        let rel = self.ctx.entry_path(file);
        if self.ctx.locked.contains(&file) {
            let path = self.ctx.opts.out.join(&rel);
            self.core
                .decline(&format!("{rel} already exists there with other content"));
            self.finished = Some(Err(Refused {
                message: format!(
                    "{} already exists with different content; use --force to replace it, or --out DIR",
                    path.display()
                ),
                for_sender: String::new(),
            }
            .into()));
            return Ok(());
        }
        self.ctx.progress.file(&rel);
        self.ctx.progress.advance(data.len() as u64);
        // A file of one block resumes by fetching that block again: a
        // state log would cost more than it saves.
        let log = self
            .ctx
            .manifest
            .as_ref()
            .and_then(|m| {
                let size = m.entries.get(file as usize)?.size?;
                Some(size > u64::from(m.block_size))
            })
            .unwrap_or(true);
        let cmd = WriteCmd::Write {
            file,
            rel,
            block,
            offset,
            cv,
            data,
            log,
        };
        self.disk.send(cmd).await
    }

    async fn on_finish(&mut self, file: u32, size: u64, root: blake3::Hash) -> Result<()> {
        let rel = self.ctx.entry_path(file);
        let mode = self
            .ctx
            .manifest
            .as_ref()
            .and_then(|m| m.entries.get(file as usize))
            .map_or(0, |e| e.mode);
        self.ctx
            .roots
            .insert(rel.clone(), root.to_hex().to_string());
        if self.ctx.locked.contains(&file) {
            // Already in place, and every block of it matched.
            self.core.file_finished(file);
            return Ok(());
        }
        let cmd = WriteCmd::Finish {
            file,
            rel,
            size,
            mode,
        };
        self.disk.send(cmd).await
    }
}

fn sender_cancelled(why: &str) -> anyhow::Error {
    anyhow!("the sender cancelled the transfer ({why})")
}

/// A sender that fails sends a cancel saying why and closes; by the time
/// this side notices the close, the cancel may still wait behind data it
/// has not read. Reads what has arrived (for at most half a second) and
/// returns the sender's reason if it is there.
async fn cancel_in_backlog(link: &mut Link) -> Option<anyhow::Error> {
    let deadline = tokio::time::Instant::now() + BACKLOG_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, link.recv()).await.ok()? {
            Incoming::Control(bytes) => {
                if let Ok(Control::Cancel { reason }) = Control::decode(&bytes) {
                    return Some(sender_cancelled(&reason));
                }
            }
            Incoming::Data(..) => {}
            Incoming::Lost(_) => return None,
        }
    }
}

fn lost_sender(reason: &str) -> anyhow::Error {
    PeerLost(format!(
        "lost the sender: {reason}; the partial data is kept, so running the same command again resumes"
    ))
    .into()
}
