//! The disk writer: a thread of its own that owns the partial files and
//! their state logs. The driver sends it commands in order (so a file is
//! finished only after all its writes) and hears back when files are in
//! place or a write failed.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::files::resume::{self, StateLog};
use crate::files::{self, FilesError, PartFile};
use crate::proto::hash::Cv;

/// Verified blocks queued for the disk writer (about this many MiB).
const WRITE_QUEUE: usize = 4;

pub(super) enum WriteCmd {
    /// The offer's block size, for the resume state logs.
    Begin {
        block_size: u32,
    },
    Dir {
        rel: String,
    },
    Write {
        file: u32,
        rel: String,
        block: u64,
        offset: u64,
        cv: Cv,
        data: Bytes,
        /// Record the block in the file's resume state log.
        log: bool,
    },
    Finish {
        file: u32,
        rel: String,
        size: u64,
        mode: u32,
    },
}

pub(super) enum WriteEvent {
    /// File `.0` is in place.
    Finished(u32),
    /// A write failed; the writer has stopped.
    Failed(FilesError),
}

/// The driver's end of the disk writer.
pub(super) struct DiskWriter {
    cmds: mpsc::Sender<WriteCmd>,
    events: mpsc::UnboundedReceiver<WriteEvent>,
    thread: std::thread::JoinHandle<()>,
}

impl DiskWriter {
    /// Starts the writer thread for files under `out`.
    pub(super) fn start(out: PathBuf, force: bool) -> DiskWriter {
        let (cmds, rx) = mpsc::channel(WRITE_QUEUE);
        let (event_tx, events) = mpsc::unbounded_channel();
        let thread = std::thread::spawn(move || Disk::new(out, force, event_tx).run(rx));
        DiskWriter {
            cmds,
            events,
            thread,
        }
    }

    /// Queues a command (waits while the queue is full).
    pub(super) async fn send(&self, cmd: WriteCmd) -> Result<()> {
        self.cmds
            .send(cmd)
            .await
            .map_err(|_| anyhow!("the disk writer stopped"))
    }

    /// The next event. Cancel-safe.
    pub(super) async fn next(&mut self) -> Option<WriteEvent> {
        self.events.recv().await
    }

    /// Why the writer stopped, if it said so: a writer that fails reports
    /// it just before its queue closes.
    pub(super) fn failure(&mut self) -> Option<FilesError> {
        std::iter::from_fn(|| self.events.try_recv().ok()).find_map(|event| match event {
            WriteEvent::Failed(e) => Some(e),
            WriteEvent::Finished(_) => None,
        })
    }

    /// Closes the queue and waits for the thread to finish what it holds.
    pub(super) async fn stop(self) {
        drop(self.cmds);
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

/// The writer thread's state.
struct Disk {
    out: PathBuf,
    force: bool,
    events: mpsc::UnboundedSender<WriteEvent>,
    parts: HashMap<u32, (PartFile, Option<StateLog>)>,
    finishing: Vec<Finishing>,
    block_size: u32,
}

impl Disk {
    fn new(out: PathBuf, force: bool, events: mpsc::UnboundedSender<WriteEvent>) -> Disk {
        Disk {
            out,
            force,
            events,
            parts: HashMap::new(),
            finishing: Vec::new(),
            block_size: crate::proto::manifest::DEFAULT_BLOCK_SIZE,
        }
    }

    /// Carries out commands until the queue closes or one fails.
    fn run(mut self, mut cmds: mpsc::Receiver<WriteCmd>) {
        loop {
            // Files finish in batches: whenever the queue runs dry, or after
            // FINISH_BATCH of them, so many small files share one flush.
            let cmd = match cmds.try_recv() {
                Ok(cmd) if self.finishing.len() < FINISH_BATCH => Some(cmd),
                Ok(cmd) => self.finish_batch().then_some(cmd),
                Err(_) => match self.finish_batch() {
                    true => cmds.blocking_recv(),
                    false => None,
                },
            };
            let Some(cmd) = cmd else { return };
            if let Err(e) = self.apply(cmd) {
                let _ = self.events.send(WriteEvent::Failed(e));
                return;
            }
        }
    }

    fn apply(&mut self, cmd: WriteCmd) -> Result<(), FilesError> {
        match cmd {
            WriteCmd::Begin { block_size } => {
                self.block_size = block_size;
                Ok(())
            }
            WriteCmd::Dir { rel } => files::create_dir_safe(&self.out, &rel).map(|_| ()),
            WriteCmd::Write {
                file,
                rel,
                block,
                offset,
                cv,
                data,
                log,
            } => {
                let (part, state) = self.part(file, &rel, log)?;
                // Data first, then its record: a record without data fails re-verification.
                part.write_at(offset, &data)?;
                match state {
                    Some(state) => state.record(block, &cv),
                    None => Ok(()),
                }
            }
            WriteCmd::Finish {
                file,
                rel,
                size,
                mode,
            } => match self.parts.remove(&file) {
                Some((mut part, log)) => {
                    part.set_len(size)?;
                    self.finishing.push(Finishing {
                        file,
                        part,
                        log,
                        mode,
                    });
                    Ok(())
                }
                None => {
                    finish_unwritten(&self.out, &rel, size, mode, self.force)?;
                    let _ = self.events.send(WriteEvent::Finished(file));
                    Ok(())
                }
            },
        }
    }

    /// The partial file of `file` (and its state log, if `log`), opened on
    /// its first write.
    fn part(
        &mut self,
        file: u32,
        rel: &str,
        log: bool,
    ) -> Result<&mut (PartFile, Option<StateLog>), FilesError> {
        match self.parts.entry(file) {
            Entry::Occupied(open) => Ok(open.into_mut()),
            Entry::Vacant(slot) => {
                let part = PartFile::open(&self.out, rel, self.force)?;
                let state = log
                    .then(|| StateLog::open(part.part_path(), self.block_size))
                    .transpose()?;
                Ok(slot.insert((part, state)))
            }
        }
    }

    /// Make the batch's data durable (one fsync, or one syncfs for several
    /// files), move each file into place, then make the folders durable
    /// once each. False if a file failed (the failure is reported).
    fn finish_batch(&mut self) -> bool {
        match finish_batch(&mut self.finishing, self.force, &self.events) {
            Ok(()) => true,
            Err(e) => {
                let _ = self.events.send(WriteEvent::Failed(e));
                false
            }
        }
    }
}

/// Files finished together: one flush of their data covers all of them.
const FINISH_BATCH: usize = 256;

/// A verified, complete partial file waiting to be moved into place.
struct Finishing {
    file: u32,
    part: PartFile,
    log: Option<StateLog>,
    mode: u32,
}

/// See [`Disk::finish_batch`].
fn finish_batch(
    batch: &mut Vec<Finishing>,
    force: bool,
    events: &mpsc::UnboundedSender<WriteEvent>,
) -> Result<(), FilesError> {
    let synced = match batch.as_slice() {
        [one] => one.part.sync(),
        [first, ..] => first.part.sync_filesystem(),
        [] => Ok(()),
    };
    let mut folders = std::collections::BTreeSet::new();
    let mut result = synced;
    for done in batch.drain(..) {
        if result.is_err() {
            break;
        }
        result = done.part.place(done.mode, force).map(|target| {
            if let Some(log) = done.log {
                log.remove();
            }
            if let Some(dir) = target.parent() {
                folders.insert(dir.to_path_buf());
            }
            let _ = events.send(WriteEvent::Finished(done.file));
        });
    }
    batch.clear();
    for dir in &folders {
        files::sync_dir(dir);
    }
    result
}

/// Finish a file none of whose blocks arrived this run: it is empty, or an
/// earlier run left every block in its partial file.
fn finish_unwritten(
    out: &Path,
    rel: &str,
    size: u64,
    mode: u32,
    force: bool,
) -> Result<(), FilesError> {
    if size == 0 {
        return files::create_empty_file(out, rel, mode, force).map(|_| ());
    }
    let mut part = PartFile::open(out, rel, force)?;
    let state = resume::state_path(part.part_path());
    part.set_len(size)?;
    part.finish(mode, force)?;
    let _ = std::fs::remove_file(state);
    Ok(())
}
