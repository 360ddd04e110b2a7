//! `ferry send`: offer files, print the ticket, stream verified blocks.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::{Common, SendArgs};
use crate::files::{self, SourceFile};
use crate::lanes::{self, LaneEvent, Lanes};
use crate::progress::{Progress, Summary};
use crate::proto::hash::{block_cv, single_block_root, Cv};
use crate::proto::manifest::{validate_path, DEFAULT_BLOCK_SIZE};
use crate::proto::sender::DEFAULT_WINDOW;
use crate::proto::{
    Control, DataItem, Entry, EntryKind, Manifest, ProtoError, ReadRequest, Sender, SenderAction,
};
use crate::session::{self, drain_for, Interrupted, JsonSummary, PeerLost, PeerWatch, UsageError};
use crate::signal::SignalClient;
use crate::ticket::Ticket;
use crate::transport::Incoming;

/// Where each offered file's bytes come from.
enum Source {
    Path(PathBuf),
    Stdin,
    Dir,
}

struct ReadDone {
    req: ReadRequest,
    result: Result<(Bytes, Option<Cv>, Option<blake3::Hash>), files::FilesError>,
}

pub async fn run(args: SendArgs, common: Common) -> Result<()> {
    let json = common.json;
    session::report(json, send(args, common).await)
}

async fn send(args: SendArgs, common: Common) -> Result<JsonSummary> {
    let cancel = session::cancel_on_ctrl_c();
    let ice = session::ice_servers(&common)?;
    let (manifest, sources) = build_offer(&args).await?;

    // Rendezvous: the user's, or our own on --bind.
    let servers = match &common.server {
        Some(url) => vec![url.clone()],
        None => {
            let listener = tokio::net::TcpListener::bind(args.bind)
                .await
                .with_context(|| {
                    format!(
                        "cannot listen on {} for the built-in rendezvous (--bind)",
                        args.bind
                    )
                })?;
            let bound = listener.local_addr()?;
            let shutdown = cancel.child_token();
            tokio::spawn(async move {
                let stop = shutdown.clone();
                if let Err(e) = crate::rendezvous::run(
                    listener,
                    crate::rendezvous::Config::default(),
                    stop.cancelled_owned(),
                )
                .await
                {
                    tracing::warn!("built-in rendezvous stopped: {e:#}");
                }
            });
            crate::net::reachable_urls("ws", bound)?
        }
    };
    let ticket = Ticket::generate(servers.clone());
    // Join the room before the ticket exists for anyone: a dead --server is
    // then an error with no ticket printed, and the sender is always the
    // room's first peer.
    let mut signal = SignalClient::connect(&ticket).await?;
    announce(&ticket, &servers, common.quiet);

    let files = manifest.file_count();
    let names: Vec<String> = manifest.entries.iter().map(|e| e.path.clone()).collect();
    let wait = args.timeout.map(Duration::from_secs);
    // Timed from the first connection: waiting for someone to paste the ticket is not transfer time.
    let mut started = None;
    let mut moved = 0u64;
    let mut progress = Progress::new("sending", common.quiet);
    progress.say("waiting for the receiver...");
    // A receiver that vanishes (killed, network gone) may come back with the
    // same ticket and resume; anything else ends the command.
    let (roots, bytes, path) = loop {
        let link = match session::connect(&mut signal, ice.clone(), wait, &cancel).await {
            Ok(link) => link,
            Err(e) if e.is::<PeerLost>() => {
                progress.say(&format!(
                    "{e:#}; waiting for the receiver to try again (Ctrl-C to stop)"
                ));
                continue;
            }
            Err(e) => return Err(e),
        };
        let path = link.path().await;
        started.get_or_insert_with(Instant::now);
        progress.say(&format!("connected ({} path)", path.as_str()));
        let caps = session::capabilities(&link);
        let mut core = Sender::with_lanes(manifest.clone(), DEFAULT_WINDOW, caps);
        progress.start(manifest.total_bytes(), 0, path.as_str());
        let outcome = pump(
            &mut core,
            link,
            &mut signal,
            &sources,
            &names,
            &mut progress,
            &cancel,
        )
        .await;
        moved += core.stats.bytes_queued;
        match outcome {
            Ok((roots, bytes)) => break (roots, bytes, path),
            Err(e) if e.is::<PeerLost>() && sources.iter().any(|s| matches!(s, Source::Stdin)) => {
                progress.abandon();
                return Err(
                    e.context("standard input can't be read twice, so this transfer can't resume")
                );
            }
            Err(e) if e.is::<PeerLost>() => {
                progress.abandon();
                progress = Progress::new("sending", common.quiet);
                progress.say(&format!(
                    "{e}; waiting for the receiver to run the same command again (Ctrl-C to stop)"
                ));
            }
            Err(e) => {
                progress.abandon();
                return Err(e);
            }
        }
    };
    signal.close().await;
    let summary = Summary {
        verb: "sent",
        files,
        bytes,
        moved,
        seconds: started.map_or(0.0, |t| t.elapsed().as_secs_f64()),
        path: path.as_str().into(),
    };
    progress.finish(&summary);
    Ok(JsonSummary {
        ok: true,
        error: None,
        files,
        bytes: summary.bytes,
        bytes_sent: Some(summary.moved),
        bytes_received: None,
        seconds: summary.seconds,
        path: summary.path,
        blake3: roots,
    })
}

/// Print the ticket as the first line of stdout, and the link on stderr.
fn announce(ticket: &Ticket, servers: &[String], quiet: bool) {
    let text = ticket.to_string();
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
    if quiet {
        return;
    }
    let whom = if crate::net::loopback_only(servers) {
        "Only this machine can use this ticket (its only address is loopback); run:"
    } else {
        "On the other machine, run:"
    };
    eprintln!("{whom}\n\n    ferry receive {text}\n");
    if let Some(http) = servers.first().and_then(|s| s.strip_prefix("ws://")) {
        let link = format!("http://{http}/#{text}");
        eprintln!("or open in a browser:\n\n    {link}\n");
        if std::io::stderr().is_terminal() {
            if let Ok(code) = qrcode::QrCode::new(link.as_bytes()) {
                let art = code
                    .render::<qrcode::render::unicode::Dense1x2>()
                    .quiet_zone(true)
                    .build();
                eprintln!("{art}");
            }
        }
    }
}

async fn build_offer(args: &SendArgs) -> Result<(Manifest, Vec<Source>)> {
    let stdin_count = args.paths.iter().filter(|p| p.as_os_str() == "-").count();
    if stdin_count > 1 {
        return Err(UsageError("`-` (standard input) can be given only once".into()).into());
    }
    let mut entries = Vec::new();
    let mut sources = Vec::new();
    if stdin_count == 1 {
        let name = args.name.clone().ok_or_else(|| {
            UsageError("sending `-` (standard input) needs --name NAME for the receiver".into())
        })?;
        validate_path(&name).map_err(|e| UsageError(format!("--name: {e}")))?;
        entries.push(Entry {
            path: name,
            kind: EntryKind::File,
            size: None,
            mode: 0o644,
        });
        sources.push(Source::Stdin);
    }
    let paths: Vec<PathBuf> = args
        .paths
        .iter()
        .filter(|p| p.as_os_str() != "-")
        .cloned()
        .collect();
    if !paths.is_empty() {
        let walked = tokio::task::spawn_blocking(move || files::walk_sources(&paths)).await??;
        for e in walked {
            let kind = match e.kind {
                files::EntryKind::File => EntryKind::File,
                files::EntryKind::Dir => EntryKind::Dir,
            };
            entries.push(Entry {
                path: e.rel_path,
                kind,
                size: (kind == EntryKind::File).then_some(e.size),
                mode: e.mode,
            });
            sources.push(if kind == EntryKind::File {
                Source::Path(e.abs_path)
            } else {
                Source::Dir
            });
        }
    }
    let manifest = Manifest {
        block_size: DEFAULT_BLOCK_SIZE,
        entries,
    };
    manifest
        .validate()
        .map_err(|e| UsageError(format!("cannot offer these paths: {e}")))?;
    Ok((manifest, sources))
}

/// Drive the protocol core until the receiver confirms everything.
/// Returns the BLAKE3 of each file and the total bytes.
async fn pump(
    core: &mut Sender,
    mut link: crate::transport::Link,
    signal: &mut SignalClient,
    sources: &[Source],
    names: &[String],
    progress: &mut Progress,
    cancel: &CancellationToken,
) -> Result<(BTreeMap<String, String>, u64)> {
    let (read_tx, mut read_rx) = mpsc::unbounded_channel::<ReadDone>();
    // One writer task per data channel (the main one, then each lane as it
    // opens); a finished block goes to whichever has room first.
    let mut writers = tokio::task::JoinSet::new();
    let mut data_txs = vec![spawn_writer(&mut writers, link.data_sender())];
    let mut lanes = Lanes::default();
    let mut new_channel = None;
    let mut main_sends_data = true;
    let mut open: HashMap<u32, Arc<SourceFile>> = HashMap::new();
    let stdin = sources
        .iter()
        .any(|s| matches!(s, Source::Stdin))
        .then(|| StdinReader::new(read_tx.clone()));
    let mut roots = BTreeMap::new();
    let mut total = 0u64;
    let mut watch = PeerWatch::default();
    let result: Result<()> = loop {
        let mut finished = None;
        while let Some(action) = core.poll_action() {
            match action {
                SenderAction::SendControl(msg) => {
                    if let Err(e) = link.send_control(&msg.encode()).await {
                        finished = Some(Err(e));
                        break;
                    }
                }
                SenderAction::Read(req) => match &sources[req.file as usize] {
                    Source::Stdin => match &stdin {
                        Some(stdin) => stdin.read(req),
                        None => {
                            core.read_failed(ProtoError::Local("internal: no stdin reader".into()))
                        }
                    },
                    Source::Path(path) => {
                        let file = match open.get(&req.file) {
                            Some(f) => Ok(f.clone()),
                            None => SourceFile::open(path).map(Arc::new),
                        };
                        let tx = read_tx.clone();
                        match file {
                            Ok(file) => {
                                open.insert(req.file, file.clone());
                                tokio::task::spawn_blocking(move || {
                                    let result = file
                                        .read_at(req.offset, req.len as usize)
                                        .map(|data| hash(&req, data));
                                    let _ = tx.send(ReadDone { req, result });
                                });
                            }
                            Err(e) => core.read_failed(ProtoError::Local(e.to_string())),
                        }
                    }
                    Source::Dir => {
                        core.read_failed(ProtoError::Local("internal: read of a folder".into()))
                    }
                },
                SenderAction::OpenLanes(n) => {
                    let mtu = lanes::sctp_mtu_for(&link, core.peer().max_datagram).await;
                    for lane in 1..=n {
                        lanes.offer(&link, lane, mtu);
                    }
                }
                SenderAction::Finished => finished = Some(Ok(())),
                SenderAction::Failed(e) => finished = Some(Err(anyhow!(e))),
            }
        }
        if let Some(done) = finished {
            break done;
        }
        if let Some((channel, same_host)) = new_channel.take() {
            // A lane with large packets moves data at a fraction of the main
            // connection's CPU per byte (see `lanes`): it takes all of it. The
            // main writer sends what it holds, then ends.
            if same_host && main_sends_data {
                data_txs.remove(0);
                main_sends_data = false;
            }
            data_txs.push(spawn_writer(&mut writers, channel));
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                let reason = Control::Cancel { reason: "the sender was interrupted".into() };
                let _ = link.send_control(&reason.encode()).await;
                break Err(Interrupted.into());
            }
            msg = link.recv() => match msg {
                Incoming::Control(bytes) => match Control::decode(&bytes) {
                    Ok(Control::Lane { lane, sdp }) => {
                        if !lanes.answered(lane, sdp) {
                            core.abort(ProtoError::Protocol(format!("an answer for lane {lane}, which was never offered")));
                        }
                    }
                    Ok(msg) => core.handle_control(msg),
                    Err(e) => core.abort(ProtoError::Protocol(e.to_string())),
                },
                Incoming::Data(..) => core.abort(ProtoError::Protocol("the receiver sent data".into())),
                Incoming::Lost(reason) => break Err(PeerLost(format!("lost the receiver: {reason}")).into()),
            },
            Some(done) = read_rx.recv() => match done.result {
                Ok((data, cv, root)) => core.block_read(&done.req, data, cv, root),
                Err(e) => core.read_failed(ProtoError::Local(e.to_string())),
            },
            event = lanes.next() => match event {
                LaneEvent::Sdp(lane, sdp) => {
                    if let Err(e) = link.send_control(&Control::Lane { lane, sdp }.encode()).await {
                        break Err(PeerLost(format!("lost the receiver: {e:#}")).into());
                    }
                }
                LaneEvent::Open(lane, Ok(opened)) => {
                    tracing::debug!(lane, "lane open");
                    // Joins `data_txs` below: the reserve branch borrows it here.
                    let same_host = opened.sctp_mtu().is_some();
                    new_channel = Some((link.add_lane(opened), same_host));
                }
                LaneEvent::Open(_, Err(e)) => tracing::warn!("{e:#}; going on without it"),
            },
            permit = reserve_any(&data_txs), if core.has_data() => {
                let Some(permit) = permit else { break Err(anyhow!("the data channel closed")) };
                if let Some(item) = core.poll_data() {
                    match &item {
                        DataItem::Block { file, data, .. } => {
                            progress.file(&names[*file as usize]);
                            progress.advance(data.len() as u64);
                        }
                        DataItem::FileEnd { file, size, root } => {
                            open.remove(file);
                            total += size;
                            roots.insert(names[*file as usize].clone(), data_encoding::HEXLOWER.encode(root));
                        }
                    }
                    permit.send(item);
                }
            }
            reason = watch.gone(signal) => break Err(PeerLost(format!("lost the receiver: {reason}")).into()),
            Some(res) = writers.join_next() => match res {
                // Only a writer whose queue we closed ends well: the main one.
                Ok(Ok(())) => {}
                Ok(Err(e)) => break Err(PeerLost(format!("lost the receiver: {e:#}")).into()),
                Err(_) => break Err(anyhow!("the data writer stopped")),
            },
        }
    };
    drop(data_txs);
    writers.abort_all();
    drop(lanes);
    link.close(drain_for(&result)).await;
    result.map(|()| (roots, total))
}

fn hash(req: &ReadRequest, data: Bytes) -> (Bytes, Option<Cv>, Option<blake3::Hash>) {
    let cv = (!data.is_empty()).then(|| block_cv(req.offset, &data));
    let root = (req.block == 0).then(|| single_block_root(&data));
    (data, cv, root)
}

/// A writer task for one data channel; returns where to queue its items.
fn spawn_writer(
    writers: &mut tokio::task::JoinSet<Result<()>>,
    channel: crate::transport::DataSender,
) -> mpsc::Sender<DataItem> {
    let (tx, rx) = mpsc::channel::<DataItem>(2);
    writers.spawn(write_data(channel, rx));
    tx
}

/// Room for one item on whichever data channel has it first.
async fn reserve_any(txs: &[mpsc::Sender<DataItem>]) -> Option<mpsc::Permit<'_, DataItem>> {
    let (permit, _, _) =
        futures::future::select_all(txs.iter().map(|tx| Box::pin(tx.reserve()))).await;
    permit.ok()
}

/// Puts data items on the channel in order; `send` waits on back-pressure.
async fn write_data(
    channel: crate::transport::DataSender,
    mut items: mpsc::Receiver<DataItem>,
) -> Result<()> {
    while let Some(item) = items.recv().await {
        for msg in item.messages() {
            channel.send(msg).await?;
        }
    }
    Ok(())
}

/// Standard input, read block by block on a thread of its own (reads of a
/// pipe block and can't be positioned).
struct StdinReader {
    requests: std::sync::mpsc::Sender<ReadRequest>,
}

impl StdinReader {
    fn new(done: mpsc::UnboundedSender<ReadDone>) -> StdinReader {
        let (requests, rx) = std::sync::mpsc::channel::<ReadRequest>();
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            while let Ok(req) = rx.recv() {
                let mut buf = BytesMut::zeroed(req.len as usize);
                let mut filled = 0;
                let result = loop {
                    if filled == buf.len() {
                        break Ok(());
                    }
                    match stdin.read(&mut buf[filled..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                buf.truncate(filled);
                let result =
                    result
                        .map(|()| hash(&req, buf.freeze()))
                        .map_err(|e| files::FilesError::Io {
                            action: "reading",
                            path: "standard input".into(),
                            source: e,
                        });
                if done.send(ReadDone { req, result }).is_err() {
                    return;
                }
            }
        });
        StdinReader { requests }
    }

    fn read(&self, req: ReadRequest) {
        let _ = self.requests.send(req);
    }
}
