//! `ferry send`: offer files, print the ticket, stream verified blocks.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::{Common, SendArgs};
use crate::error::{Interrupted, PeerLost, UsageError};
use crate::files::{self, SourceFile};
use crate::net::lanes::{self, LaneEvent, Lanes};
use crate::net::Incoming;
use crate::proto::hash::{block_cv, single_block_root, Cv};
use crate::proto::manifest::{validate_path, DEFAULT_BLOCK_SIZE};
use crate::proto::sender::DEFAULT_WINDOW;
use crate::proto::{
    Control, DataItem, Entry, EntryKind, Manifest, ProtoError, ReadRequest, Sender, SenderAction,
};
use crate::signal::SignalClient;
use crate::signal::Ticket;
use crate::transfer::progress::{Progress, Summary};
use crate::transfer::session::{self, drain_for, JsonSummary, PeerWatch};

/// Where each offered file's bytes come from.
enum Source {
    /// A file, and what it looked like when offered.
    Path(PathBuf, files::Stamp),
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
    let cancel = crate::cli::cancel_on_ctrl_c();
    let ice = crate::cli::ice_servers(&common)?;
    let (manifest, sources, walk) = build_offer(&args).await?;
    // Said before the ticket, so it is read before anyone is told to connect.
    if let (Some(line), false) = (walk.skipped_sentence(), common.quiet) {
        eprintln!("{line}");
    }
    let left_out = walk.left_out();
    let skipped = walk.skipped;

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
                if let Err(e) = crate::server::rendezvous::run(
                    listener,
                    crate::server::rendezvous::Config::default(),
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
    let mut progress = Progress::new("sending", common.quiet);
    progress.say("waiting for the receiver...");
    // Whatever a receiver does (declines, fails, lies, vanishes), the ticket
    // stays open for the next one; only success, Ctrl-C, --timeout or a
    // failure of our own ends the command.
    let stdin = sources
        .iter()
        .any(|s| matches!(s, Source::Stdin))
        .then(StdinReader::new);
    let mut retry = Retry::default();
    let mut attempted = false;
    let (roots, bytes, path, seconds, moved) = loop {
        if let Some(pause) = retry.pause() {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = cancel.cancelled() => return Err(Interrupted.into()),
            }
        }
        let deadline = wait.map(|w| tokio::time::Instant::now() + w);
        if attempted {
            settle(&mut signal, deadline, &cancel).await?;
        }
        attempted = true;
        let left = deadline.map(|d| d.saturating_duration_since(tokio::time::Instant::now()));
        let link = match session::connect(&mut signal, ice.clone(), left, &cancel).await {
            Ok(link) => link,
            Err(e) if e.is::<PeerLost>() => {
                retry.failed(&progress, &format!("{e:#}"));
                continue;
            }
            Err(e) => return Err(e),
        };
        let path = link.path().await;
        progress.say(&format!("connected ({} path)", path.as_str()));
        let caps = session::capabilities(&link);
        let mut core = Sender::offering(manifest.clone(), &left_out, DEFAULT_WINDOW, caps);
        let mut timing = Attempt::new(path.as_str());
        let offer = Offer {
            sources: &sources,
            stdin: stdin.as_ref(),
            names: &names,
        };
        progress.say(&offer.describe(&manifest));
        let outcome = pump(
            &mut core,
            link,
            &mut signal,
            &offer,
            &mut progress,
            &mut timing,
            &cancel,
        )
        .await;
        if timing.first_byte.is_some() {
            // A transfer got going: the receiver works; the next failure is news.
            retry.reset();
        }
        match outcome {
            // The summary is about the receiver that got it all.
            Ok((roots, bytes)) => {
                break (
                    roots,
                    bytes,
                    path,
                    timing.seconds(),
                    core.stats.bytes_queued,
                )
            }
            Err(e) if !receiver_side(&e) => {
                progress.abandon();
                return Err(e);
            }
            Err(e) if stdin.as_ref().is_some_and(StdinReader::consumed) => {
                progress.abandon();
                return Err(e.context(
                    "standard input can't be read twice, so this transfer can't be offered again",
                ));
            }
            Err(e) => {
                progress.abandon();
                progress = Progress::new("sending", common.quiet);
                retry.failed(&progress, &receiver_outcome(&e));
            }
        }
    };
    signal.close().await;
    let summary = Summary {
        verb: "sent",
        files,
        bytes,
        moved,
        seconds,
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
        skipped: Some(
            skipped
                .into_iter()
                .map(|(path, why)| session::SkippedJson {
                    path,
                    why: why.as_str(),
                })
                .collect(),
        ),
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

/// What this command offers, for every attempt.
#[derive(Clone, Copy)]
struct Offer<'a> {
    sources: &'a [Source],
    stdin: Option<&'a StdinReader>,
    names: &'a [String],
}

impl Offer<'_> {
    /// "offering big.iso (100 MiB); waiting for the receiver to accept".
    fn describe(&self, manifest: &Manifest) -> String {
        let files = manifest.file_count();
        let size = crate::transfer::progress::offer_size(manifest);
        let what = match files {
            1 => manifest
                .entries
                .iter()
                .zip(self.names)
                .find(|(e, _)| e.kind == EntryKind::File)
                .map_or_else(String::new, |(_, name)| name.clone()),
            n => format!("{n} files"),
        };
        format!("offering {what} ({size}); waiting for the receiver to accept")
    }
}

/// One receiver's attempt: the path, and the time from its first payload
/// byte (waiting at its prompt is not transfer time) to its end.
struct Attempt {
    path: &'static str,
    first_byte: Option<Instant>,
    end: Option<Instant>,
}

impl Attempt {
    fn new(path: &'static str) -> Attempt {
        Attempt {
            path,
            first_byte: None,
            end: None,
        }
    }

    fn begin(&mut self) {
        self.first_byte = Some(Instant::now());
    }

    fn end(&mut self) {
        self.end = Some(Instant::now());
    }

    /// Zero when no payload moved (everything was already there).
    fn seconds(&self) -> f64 {
        match (self.first_byte, self.end) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            (Some(a), None) => a.elapsed().as_secs_f64(),
            _ => 0.0,
        }
    }
}

/// The first pause between failed attempts; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Back-off between failed attempts, and saying a repeated failure once.
#[derive(Default)]
struct Retry {
    /// Failed attempts since a transfer last got going.
    failures: u32,
    last: Option<String>,
    repeats: u64,
}

impl Retry {
    fn pause(&self) -> Option<Duration> {
        let n = self.failures.checked_sub(1)?;
        let factor = 1u32.checked_shl(n).unwrap_or(u32::MAX);
        Some(RETRY_FIRST.saturating_mul(factor).min(RETRY_MAX))
    }

    fn failed(&mut self, progress: &Progress, what: &str) {
        self.failures = self.failures.saturating_add(1);
        if self.last.as_deref() == Some(what) {
            self.repeats += 1;
            // At 10, 100, 1000...: a stuck receiver stays visible without a line per try.
            let n = self.repeats;
            if n >= 10 && 10u64.pow(n.ilog10()) == n {
                progress.say(&format!("the same again ({} times in a row)", self.repeats));
            }
            return;
        }
        self.last = Some(what.to_string());
        self.repeats = 1;
        progress.say(&format!(
            "{what}; waiting for the next receiver (Ctrl-C to stop)"
        ));
    }

    fn reset(&mut self) {
        *self = Retry::default();
    }
}

/// After an attempt, wait until the receiver that was in the room leaves
/// or tries again (nobody else can join while it is there). Uses no CPU.
async fn settle(
    signal: &mut SignalClient,
    deadline: Option<tokio::time::Instant>,
    cancel: &CancellationToken,
) -> Result<()> {
    if !signal.peer_present() {
        return Ok(());
    }
    let until = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        changed = signal.wait_for_change() => Ok(changed?),
        _ = until => Err(anyhow!(
            "the last receiver stayed in the room for the --timeout without trying again, and nobody else can join meanwhile"
        )),
        _ = cancel.cancelled() => Err(Interrupted.into()),
    }
}

/// Whether an attempt ended because of the receiver (it declined, was
/// interrupted, lied, vanished, or could not be reached): the sender then
/// waits for another. Its own failures (a source it cannot read) end it.
fn receiver_side(e: &anyhow::Error) -> bool {
    if e.is::<PeerLost>() {
        return true;
    }
    !matches!(
        e.downcast_ref::<ProtoError>(),
        None | Some(ProtoError::Local(_) | ProtoError::SourceChanged { .. })
    )
}

/// One line about how a receiver's attempt ended, for the sender's user.
fn receiver_outcome(e: &anyhow::Error) -> String {
    let line = match e.downcast_ref::<ProtoError>() {
        Some(ProtoError::PeerCancelled(reason)) => {
            if let Some(why) = reason.strip_prefix("the transfer was declined: ") {
                format!("the receiver declined: {why}")
            } else if reason.starts_with("the receiver") {
                reason.clone()
            } else {
                format!("the receiver stopped: {reason}")
            }
        }
        Some(other) => format!("dropped the receiver: {other}"),
        None => format!("{e:#}"),
    };
    one_line(&line)
}

/// A peer's text on one short line: no control characters, at most 200 characters.
fn one_line(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

async fn build_offer(args: &SendArgs) -> Result<(Manifest, Vec<Source>, files::Walk)> {
    let stdin_count = args.paths.iter().filter(|p| p.as_os_str() == "-").count();
    if stdin_count > 1 {
        return Err(UsageError("`-` (standard input) can be given only once".into()).into());
    }
    let mut entries = Vec::new();
    let mut sources = Vec::new();
    let mut walk = files::Walk::default();
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
        let follow = args.follow_symlinks;
        walk = tokio::task::spawn_blocking(move || files::walk_sources(&paths, follow)).await??;
        for e in std::mem::take(&mut walk.entries) {
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
                Source::Path(e.abs_path, e.stamp)
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
    Ok((manifest, sources, walk))
}

/// Drive the protocol core until the receiver confirms everything.
/// Returns the BLAKE3 of each file and the total bytes.
async fn pump(
    core: &mut Sender,
    mut link: crate::net::Link,
    signal: &mut SignalClient,
    offer: &Offer<'_>,
    progress: &mut Progress,
    timing: &mut Attempt,
    cancel: &CancellationToken,
) -> Result<(BTreeMap<String, String>, u64)> {
    let Offer {
        sources,
        stdin,
        names,
    } = *offer;
    let (read_tx, mut read_rx) = mpsc::unbounded_channel::<ReadDone>();
    // One writer task per data channel (the main one, then each lane as it
    // opens); a finished block goes to whichever has room first.
    let mut writers = tokio::task::JoinSet::new();
    let mut data_txs = vec![spawn_writer(&mut writers, link.data_sender())];
    let mut lanes = Lanes::default();
    let mut new_channel = None;
    let mut main_sends_data = true;
    let mut open: HashMap<u32, Arc<SourceFile>> = HashMap::new();
    let mut roots = BTreeMap::new();
    let mut total = 0u64;
    let mut watch = PeerWatch::default();
    let result: Result<()> = loop {
        let mut finished = None;
        while let Some(action) = core.poll_action() {
            match action {
                SenderAction::SendControl(msg) => {
                    if let Err(e) = link.send_control(&msg.encode()).await {
                        finished = Some(Err(PeerLost(format!("lost the receiver: {e:#}")).into()));
                        break;
                    }
                }
                SenderAction::Read(req) => match &sources[req.file as usize] {
                    Source::Stdin => match stdin {
                        Some(stdin) => stdin.read(req, read_tx.clone()),
                        None => {
                            core.read_failed(ProtoError::Local("internal: no stdin reader".into()))
                        }
                    },
                    Source::Path(path, stamp) => {
                        let file = match open.get(&req.file) {
                            Some(f) => Ok(f.clone()),
                            None => SourceFile::open(path, *stamp).map(Arc::new),
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
                            Err(e) => core.read_failed(read_error(&names[req.file as usize], e)),
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
                SenderAction::Finished => {
                    timing.end();
                    finished = Some(Ok(()));
                }
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
                Err(e) => core.read_failed(read_error(&names[done.req.file as usize], e)),
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
                let Some(permit) = permit else { break Err(PeerLost("lost the receiver: the data channel closed".into()).into()) };
                if let Some(item) = core.poll_data() {
                    match &item {
                        DataItem::Block { file, data, .. } => {
                            if timing.first_byte.is_none() {
                                timing.begin();
                                let m = core.manifest();
                                let total = (!m.has_stream()).then(|| m.total_bytes());
                                progress.start(total, core.stats.bytes_skipped, timing.path);
                                progress.begin();
                            }
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
    channel: crate::net::DataSender,
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
    channel: crate::net::DataSender,
    mut items: mpsc::Receiver<DataItem>,
) -> Result<()> {
    while let Some(item) = items.recv().await {
        for msg in item.messages() {
            channel.send(msg).await?;
        }
    }
    Ok(())
}

/// A failed read as the protocol's error: a changed source is named by its
/// offered path (the receiver is told that, not where it lives here).
fn read_error(name: &str, e: files::FilesError) -> ProtoError {
    match e {
        files::FilesError::Changed { what, .. } => ProtoError::SourceChanged {
            path: name.to_string(),
            what: what.to_string(),
        },
        other => ProtoError::Local(other.to_string()),
    }
}

/// Standard input, read block by block on a thread of its own (reads of a
/// pipe block and can't be positioned). It lives as long as the command, so
/// an offer declined before any read can be made again.
struct StdinReader {
    requests: std::sync::mpsc::Sender<(ReadRequest, mpsc::UnboundedSender<ReadDone>)>,
    /// Whether any byte was taken from standard input.
    consumed: Arc<AtomicBool>,
}

impl StdinReader {
    fn new() -> StdinReader {
        let (requests, rx) =
            std::sync::mpsc::channel::<(ReadRequest, mpsc::UnboundedSender<ReadDone>)>();
        let consumed = Arc::new(AtomicBool::new(false));
        let count = consumed.clone();
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            while let Ok((req, done)) = rx.recv() {
                let mut buf = BytesMut::zeroed(req.len as usize);
                let mut filled = 0;
                let result = loop {
                    if filled == buf.len() {
                        break Ok(());
                    }
                    match stdin.read(&mut buf[filled..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            filled += n;
                            count.store(true, Ordering::Relaxed);
                        }
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
                            err: e,
                        });
                // An attempt that ended no longer listens; the next one may.
                let _ = done.send(ReadDone { req, result });
            }
        });
        StdinReader { requests, consumed }
    }

    fn read(&self, req: ReadRequest, done: mpsc::UnboundedSender<ReadDone>) {
        let _ = self.requests.send((req, done));
    }

    /// Whether any of standard input was read: it can't be offered again.
    fn consumed(&self) -> bool {
        self.consumed.load(Ordering::Relaxed)
    }
}
