//! `ferry receive`: join a ticket's room, check the offer, verify and write.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use indicatif::HumanBytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::{Common, ReceiveArgs};
use crate::error::{Interrupted, PeerLost};
use crate::files::resume::{self, StateLog};
use crate::files::{self, FilesError, PartFile};
use crate::net::lanes::{self, LaneEvent, Lanes};
use crate::net::{Incoming, Link};
use crate::proto::hash::Cv;
use crate::proto::{
    left_out_sentence, Control, EntryKind, Held, LeftOut, Manifest, ProtoError, Receiver,
    ReceiverAction,
};
use crate::signal::Ticket;
use crate::signal::{SignalClient, SignalError};
use crate::transfer::progress::{Progress, Summary};
use crate::transfer::session::{self, drain_for, JsonSummary, PeerWatch};

/// Verified blocks queued for the disk writer (about this many MiB).
const WRITE_QUEUE: usize = 4;

pub async fn run(args: ReceiveArgs, common: Common) -> Result<()> {
    let json = common.json;
    session::report(json, receive(args, common).await)
}

async fn receive(args: ReceiveArgs, common: Common) -> Result<JsonSummary> {
    let mut ticket: Ticket = args.ticket.parse()?;
    if let Some(server) = &common.server {
        ticket.servers.insert(0, server.clone());
    }
    let out = args.out.clone();
    tokio::task::spawn_blocking(move || check_out(&out)).await??;
    let cancel = crate::cli::cancel_on_ctrl_c();
    let ice = crate::cli::ice_servers(&common)?;
    let wait = Duration::from_secs(args.timeout);
    let connecting = async {
        let mut signal = SignalClient::connect(&ticket).await.map_err(spent_ticket)?;
        let link = session::connect(&mut signal, ice, Some(wait), &cancel).await?;
        Ok::<_, anyhow::Error>((signal, link))
    };
    let (mut signal, link) = tokio::time::timeout(wait, connecting).await.map_err(|_| {
        anyhow!(
            "could not reach the sender within {}s (--timeout)",
            args.timeout
        )
    })??;
    let path = link.path().await;
    let progress = Progress::new("receiving", common.quiet);
    progress.say(&format!("connected ({} path)", path.as_str()));
    let opts = Options {
        out: args.out.clone(),
        force: args.force,
        ask: !args.yes && std::io::stdin().is_terminal(),
    };
    let mut ctx = Ctx {
        first_byte: None,
        opts,
        progress,
        roots: BTreeMap::new(),
        manifest: None,
        locked: HashSet::new(),
        path: path.as_str().into(),
    };
    let mut core = Receiver::with_lanes(session::capabilities(&link));
    let result = pump(&mut core, link, &mut signal, &mut ctx, &cancel).await;
    signal.close().await;
    if let Err(e) = result {
        ctx.progress.abandon();
        return Err(e);
    }
    let manifest = ctx.manifest.unwrap_or_default();
    let summary = Summary {
        verb: "received",
        files: manifest.file_count(),
        bytes: total_size(&manifest, &core),
        moved: core.stats.bytes_received,
        // From the first payload byte: time at the prompt is not transfer time.
        seconds: ctx.first_byte.map_or(0.0, |t| t.elapsed().as_secs_f64()),
        path: ctx.path.clone(),
    };
    ctx.progress.finish(&summary);
    Ok(JsonSummary {
        ok: true,
        error: None,
        files: summary.files,
        bytes: summary.bytes,
        bytes_sent: None,
        bytes_received: Some(summary.moved),
        seconds: summary.seconds,
        path: summary.path,
        blake3: ctx.roots,
        skipped: None,
    })
}

fn total_size(manifest: &Manifest, core: &Receiver) -> u64 {
    // Streams of unknown length count what arrived.
    let declared = manifest.total_bytes();
    declared.max(core.stats.bytes_verified)
}

struct Options {
    out: PathBuf,
    force: bool,
    ask: bool,
}

struct Ctx {
    opts: Options,
    progress: Progress,
    roots: BTreeMap<String, String>,
    manifest: Option<Manifest>,
    locked: HashSet<u32>,
    path: String,
    /// When the first data message arrived.
    first_byte: Option<Instant>,
}

enum WriteCmd {
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

enum WriteEvent {
    Finished(u32),
    Failed(String),
}

async fn pump(
    core: &mut Receiver,
    mut link: Link,
    signal: &mut SignalClient,
    ctx: &mut Ctx,
    cancel: &CancellationToken,
) -> Result<()> {
    let (write_tx, write_rx) = mpsc::channel::<WriteCmd>(WRITE_QUEUE);
    let (event_tx, mut events) = mpsc::unbounded_channel::<WriteEvent>();
    let out = ctx.opts.out.clone();
    let force = ctx.opts.force;
    std::thread::spawn(move || write_files(&out, force, write_rx, event_tx));
    let mut watch = PeerWatch::default();
    let mut lanes = Lanes::default();
    let result: Result<()> = loop {
        let mut finished = None;
        while let Some(action) = core.poll_action() {
            let step: Result<()> = match action {
                ReceiverAction::SendControl(msg) => match link.send_control(&msg.encode()).await {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        if let Some(why) = cancel_in_backlog(&mut link).await {
                            finished.get_or_insert(Err(why));
                        }
                        Err(e)
                    }
                },
                ReceiverAction::Offer(manifest) => {
                    match decide(&manifest, core.left_out(), ctx, cancel).await {
                        Ok(plan) => start(core, ctx, manifest, plan, &write_tx).await,
                        Err(e) if e.is::<Interrupted>() => {
                            core.abort(ProtoError::Local("the receiver was interrupted".into()));
                            finished = Some(Err(e));
                            Ok(())
                        }
                        Err(e) => {
                            // The sender gets the short form, about this side.
                            let why = e
                                .downcast_ref::<Refused>()
                                .map_or_else(|| format!("{e:#}"), |r| r.for_sender.clone());
                            core.decline(&why);
                            finished = Some(Err(e));
                            Ok(())
                        }
                    }
                }
                ReceiverAction::Write {
                    file,
                    block,
                    offset,
                    cv,
                    data,
                } => {
                    let rel = entry_path(ctx, file);
                    if ctx.locked.contains(&file) {
                        let path = ctx.opts.out.join(&rel);
                        core.decline(&format!("{rel} already exists there with other content"));
                        finished = Some(Err(Refused {
                            message: format!(
                                "{} already exists with different content; use --force to replace it, or --out DIR",
                                path.display()
                            ),
                            for_sender: String::new(),
                        }
                        .into()));
                        Ok(())
                    } else {
                        ctx.progress.file(&rel);
                        ctx.progress.advance(data.len() as u64);
                        // A file of one block resumes by fetching that block
                        // again: a state log would cost more than it saves.
                        let log = ctx
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
                        to_writer(&write_tx, cmd).await
                    }
                }
                ReceiverAction::Finish { file, size, root } => {
                    let rel = entry_path(ctx, file);
                    let mode = ctx
                        .manifest
                        .as_ref()
                        .and_then(|m| m.entries.get(file as usize))
                        .map_or(0, |e| e.mode);
                    ctx.roots.insert(rel.clone(), root.to_hex().to_string());
                    if ctx.locked.contains(&file) {
                        // Already in place, and every block of it matched.
                        core.file_finished(file);
                        Ok(())
                    } else {
                        let cmd = WriteCmd::Finish {
                            file,
                            rel,
                            size,
                            mode,
                        };
                        to_writer(&write_tx, cmd).await
                    }
                }
                ReceiverAction::Finished => {
                    finished = Some(Ok(()));
                    Ok(())
                }
                ReceiverAction::Failed(e) => {
                    // A decline already carries its own, better error.
                    if finished.is_none() {
                        finished = Some(Err(match e {
                            // On this side the peer is the sender: say so.
                            ProtoError::PeerCancelled(why) => sender_cancelled(&why),
                            e => anyhow!(e),
                        }));
                    }
                    Ok(())
                }
            };
            if let Err(e) = step {
                // A writer that stopped says why, just before its queue closes.
                let why = std::iter::from_fn(|| events.try_recv().ok())
                    .find_map(|event| match event {
                        WriteEvent::Failed(why) => Some(why),
                        WriteEvent::Finished(_) => None,
                    })
                    .unwrap_or_else(|| format!("{e:#}"));
                core.abort(ProtoError::Local(why));
            }
        }
        if let Some(done) = finished {
            // Flush whatever the last actions queued (the cancel or done message).
            while let Some(ReceiverAction::SendControl(msg)) = core.poll_action() {
                let _ = link.send_control(&msg.encode()).await;
            }
            break done;
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                let reason = Control::Cancel { reason: "the receiver was interrupted".into() };
                let _ = link.send_control(&reason.encode()).await;
                break Err(Interrupted.into());
            }
            msg = link.recv() => match msg {
                Incoming::Control(bytes) => match Control::decode(&bytes) {
                    Ok(Control::Lane { lane, sdp }) => {
                        let mtu = lanes::sctp_mtu_for(&link, core.peer().max_datagram).await;
                        if !(core.lane_allowed(lane) && lanes.answer(&link, lane, mtu, sdp)) {
                            core.abort(ProtoError::Protocol(format!("an offer for lane {lane}, which was not agreed")));
                        }
                    }
                    Ok(msg) => core.handle_control(msg),
                    Err(e) => core.abort(ProtoError::Protocol(e.to_string())),
                },
                Incoming::Data(lane, bytes) => {
                    if ctx.first_byte.is_none() {
                        ctx.first_byte = Some(Instant::now());
                        ctx.progress.begin();
                    }
                    core.handle_lane_data(lane, &bytes)
                }
                Incoming::Lost(reason) => break Err(lost_sender(&reason)),
            },
            event = lanes.next() => match event {
                LaneEvent::Sdp(lane, sdp) => {
                    if let Err(e) = link.send_control(&Control::Lane { lane, sdp }.encode()).await {
                        break Err(lost_sender(&format!("{e:#}")));
                    }
                }
                LaneEvent::Open(lane, Ok(opened)) => {
                    tracing::debug!(lane, "lane open");
                    link.add_lane(opened);
                }
                LaneEvent::Open(_, Err(e)) => tracing::warn!("{e:#}; going on without it"),
            },
            Some(event) = events.recv() => match event {
                WriteEvent::Finished(file) => core.file_finished(file),
                WriteEvent::Failed(e) => core.abort(ProtoError::Local(e)),
            },
            reason = watch.gone(signal) => {
                // The rendezvous may tell of the sender's exit before its
                // cancel, queued behind data, has been read.
                let why = cancel_in_backlog(&mut link).await;
                break Err(why.unwrap_or_else(|| lost_sender(&reason)));
            }
        }
    };
    drop(write_tx);
    drop(lanes);
    link.close(drain_for(&result)).await;
    result
}

/// The offer is accepted: tell the core what is already here and the disk
/// writer what to set up.
async fn start(
    core: &mut Receiver,
    ctx: &mut Ctx,
    manifest: Manifest,
    plan: Plan,
    write_tx: &mpsc::Sender<WriteCmd>,
) -> Result<()> {
    let mut cmds = vec![WriteCmd::Begin {
        block_size: manifest.block_size,
    }];
    cmds.extend(
        manifest
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::Dir)
            .map(|e| WriteCmd::Dir {
                rel: e.path.clone(),
            }),
    );
    ctx.manifest = Some(manifest.clone());
    ctx.locked = plan.locked;
    let total = (!manifest.has_stream()).then(|| manifest.total_bytes());
    core.accept(manifest, plan.held);
    ctx.progress
        .start(total, core.stats.bytes_resumed, &ctx.path);
    for cmd in cmds {
        to_writer(write_tx, cmd).await?;
    }
    Ok(())
}

/// Queue a command for the disk writer (waits while its queue is full).
async fn to_writer(tx: &mpsc::Sender<WriteCmd>, cmd: WriteCmd) -> Result<()> {
    tx.send(cmd)
        .await
        .map_err(|_| anyhow!("the disk writer stopped"))
}

fn sender_cancelled(why: &str) -> anyhow::Error {
    anyhow!("the sender cancelled the transfer ({why})")
}

/// A sender that fails sends a cancel saying why and closes; by the time
/// this side notices the close, the cancel may still wait behind data it
/// has not read. Reads what has arrived (for at most half a second) and
/// returns the sender's reason if it is there.
async fn cancel_in_backlog(link: &mut Link) -> Option<anyhow::Error> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
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

fn entry_path(ctx: &Ctx, file: u32) -> String {
    ctx.manifest
        .as_ref()
        .and_then(|m| m.entries.get(file as usize))
        .map(|e| e.path.clone())
        .unwrap_or_default()
}

/// A ticket whose every address refuses connections was most likely
/// printed by a `ferry send` that has ended (its rendezvous ran inside it).
fn spent_ticket(e: SignalError) -> anyhow::Error {
    match e {
        SignalError::Unreachable {
            refused: true,
            tried,
            ..
        } => anyhow!(
            "the sender has finished or stopped: nothing answers at {} any more; ask for a new ticket",
            tried.join(", ")
        ),
        other => other.into(),
    }
}

/// Show the offer, check it fits and overwrites nothing, and ask if we may.
async fn decide(
    manifest: &Manifest,
    left_out: &LeftOut,
    ctx: &mut Ctx,
    cancel: &CancellationToken,
) -> Result<Plan> {
    let files = manifest.file_count();
    let dirs = manifest.entries.len() - files;
    let folders = match dirs {
        0 => String::new(),
        1 => " in 1 folder".into(),
        n => format!(" in {n} folders"),
    };
    let mut lines = vec![format!(
        "offered: {files} file{}{folders}, {}",
        if files == 1 { "" } else { "s" },
        crate::transfer::progress::offer_size(manifest)
    )];
    for e in manifest
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .take(10)
    {
        let size = e
            .size
            .map_or("a stream".to_string(), |s| HumanBytes(s).to_string());
        lines.push(format!("  {} ({size})", e.path));
    }
    if files > 10 {
        lines.push(format!("  ... and {} more", files - 10));
    }
    if let Some(list) = left_out_sentence(left_out) {
        lines.push(format!(
            "the sender left out {list} (ferry sends regular files and folders)"
        ));
    }
    ctx.progress.say(&lines.join("\n"));

    let out = ctx.opts.out.clone();
    let force = ctx.opts.force;
    let m = manifest.clone();
    let plan = tokio::task::spawn_blocking(move || preflight(&out, &m, force)).await??;

    if ctx.opts.ask {
        let question = format!("Accept and save into {}? [Y/n] ", ctx.opts.out.display());
        // A thread of its own, so Ctrl-C need not wait for Enter: the
        // process exits with the read still blocked.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            eprint!("{question}");
            let mut line = String::new();
            let _ = tx.send(std::io::stdin().read_line(&mut line).map(|_| line));
        });
        let answer = tokio::select! {
            answer = rx => answer.map_err(|_| anyhow!("the question was not answered"))??,
            _ = cancel.cancelled() => {
                eprintln!();
                return Err(Interrupted.into());
            }
        };
        if matches!(answer.trim().to_lowercase().as_str(), "n" | "no") {
            return Err(Refused {
                message: "declined; nothing was written".into(),
                for_sender: "its user said no".into(),
            }
            .into());
        }
    }
    Ok(plan)
}

/// This receiver turns an offer down: `message` for its user, and the short
/// form its cancel carries to the sender ("x.bin already exists there").
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct Refused {
    message: String,
    for_sender: String,
}

/// Before connecting: `--out` is a folder, or can be made (it is created
/// only once an offer is accepted), and we can write there.
fn check_out(out: &Path) -> Result<()> {
    // The folder itself, or the nearest existing one above it.
    let mut dir = out;
    loop {
        match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) if dir == out => bail!(
                "--out {} is a file, not a folder; give a folder (a missing one is created)",
                out.display()
            ),
            Ok(_) => bail!(
                "--out {}: {} is a file, so the folder can't be made there; give another --out",
                out.display(),
                dir.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                dir = match dir.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
            }
            Err(e) => bail!(
                "cannot use --out {}: {}",
                out.display(),
                files::io_reason(&e)
            ),
        }
    }
    // Permission bits don't tell root, a read-only mount or an immutable
    // folder apart: try it.
    let probe = dir.join(format!(
        ".ferry-probe-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(file) => {
            drop(file);
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => bail!(
            "cannot write into {} ({}); give a folder you can write to with --out",
            dir.display(),
            files::io_reason(&e)
        ),
    }
}

/// What the disk already holds for an offer.
#[derive(Default)]
struct Plan {
    held: Vec<(u32, Held)>,
    /// Files whose complete target already exists: they must match, block
    /// for block, or the transfer fails (never overwritten without --force).
    locked: HashSet<u32>,
}

/// Before a byte is written: every path is safe under `out`, nothing would
/// be overwritten without --force, what is already here (an earlier run's
/// partial files, or complete files) is re-verified, and the rest fits on
/// the disk.
fn preflight(out: &Path, manifest: &Manifest, force: bool) -> Result<Plan> {
    let mut plan = Plan::default();
    let mut have_bytes = 0u64;
    for (i, e) in manifest.entries.iter().enumerate() {
        let target = files::safe_join(out, &e.path)?;
        let (EntryKind::File, Some(size)) = (e.kind, e.size) else {
            continue;
        };
        resume::drop_orphan_log(out, &e.path)?;
        let existing = target.symlink_metadata().ok();
        let held = match existing {
            Some(meta) if !force => {
                if !meta.is_file() || meta.len() != size {
                    return Err(Refused {
                        message: format!(
                            "{} already exists in {}; use --force to replace it, or --out DIR",
                            e.path,
                            out.display()
                        ),
                        for_sender: format!("{} already exists there", e.path),
                    }
                    .into());
                }
                plan.locked.insert(i as u32);
                resume::held_in_file(&target, size, manifest.block_size)?
            }
            _ => resume::held_in_part(out, &e.path, size, manifest.block_size)?,
        };
        have_bytes += held
            .blocks
            .iter()
            .map(|(b, _)| {
                (size - b * u64::from(manifest.block_size)).min(u64::from(manifest.block_size))
            })
            .sum::<u64>();
        if !held.blocks.is_empty() || plan.locked.contains(&(i as u32)) {
            plan.held.push((i as u32, held));
        }
    }
    let need = manifest.total_bytes().saturating_sub(have_bytes);
    let free = files::available_space(out)?;
    if need > free {
        return Err(Refused {
            message: format!(
                "not enough space in {}: the transfer needs {} more and {} is free; free some space or use --out DIR",
                out.display(),
                HumanBytes(need),
                HumanBytes(free)
            ),
            for_sender: format!("it has no room for {} (not enough space)", HumanBytes(need)),
        }
        .into());
    }
    Ok(plan)
}

/// The disk writer: owns the partial files and their state logs; commands
/// arrive in order, so a file is finished only after all its writes.
fn write_files(
    out: &Path,
    force: bool,
    mut cmds: mpsc::Receiver<WriteCmd>,
    events: mpsc::UnboundedSender<WriteEvent>,
) {
    let mut parts: HashMap<u32, (PartFile, Option<StateLog>)> = HashMap::new();
    let mut finishing = Vec::new();
    let mut block_size = crate::proto::manifest::DEFAULT_BLOCK_SIZE;
    loop {
        // Files finish in batches: whenever the queue runs dry, or after
        // FINISH_BATCH of them, so many small files share one flush.
        let cmd = match cmds.try_recv() {
            Ok(cmd) if finishing.len() < FINISH_BATCH => Some(cmd),
            Ok(cmd) => {
                if !finish_batch(&mut finishing, force, &events) {
                    return;
                }
                Some(cmd)
            }
            Err(_) => {
                if !finish_batch(&mut finishing, force, &events) {
                    return;
                }
                cmds.blocking_recv()
            }
        };
        let Some(cmd) = cmd else { return };
        let result: Result<(), FilesError> = match cmd {
            WriteCmd::Begin { block_size: size } => {
                block_size = size;
                Ok(())
            }
            WriteCmd::Dir { rel } => files::create_dir_safe(out, &rel).map(|_| ()),
            WriteCmd::Write {
                file,
                rel,
                block,
                offset,
                cv,
                data,
                log,
            } => {
                let open = match parts.entry(file) {
                    std::collections::hash_map::Entry::Occupied(o) => Ok(o.into_mut()),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        PartFile::open(out, &rel, force)
                            .and_then(|p| {
                                let log = log
                                    .then(|| StateLog::open(p.part_path(), block_size))
                                    .transpose()?;
                                Ok((p, log))
                            })
                            .map(|pair| v.insert(pair))
                    }
                };
                // Data first, then its record: a record without data fails re-verification.
                open.and_then(|(part, log)| {
                    part.write_at(offset, &data)?;
                    match log {
                        Some(log) => log.record(block, &cv),
                        None => Ok(()),
                    }
                })
            }
            WriteCmd::Finish {
                file,
                rel,
                size,
                mode,
            } => match parts.remove(&file) {
                Some((mut part, log)) => part.set_len(size).map(|()| {
                    finishing.push(Finishing {
                        file,
                        part,
                        log,
                        mode,
                    })
                }),
                None => finish_unwritten(out, &rel, size, mode, force).map(|()| {
                    let _ = events.send(WriteEvent::Finished(file));
                }),
            },
        };
        if let Err(e) = result {
            let _ = events.send(WriteEvent::Failed(e.to_string()));
            return;
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

/// Make the batch's data durable (one fsync, or one syncfs for several
/// files), move each file into place, then make the folders durable once
/// each. False if a file failed (the failure is reported).
fn finish_batch(
    batch: &mut Vec<Finishing>,
    force: bool,
    events: &mpsc::UnboundedSender<WriteEvent>,
) -> bool {
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
    match result {
        Ok(()) => true,
        Err(e) => {
            let _ = events.send(WriteEvent::Failed(e.to_string()));
            false
        }
    }
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
