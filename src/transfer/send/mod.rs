//! `ferry send`: offer files, print the ticket, and serve one receiver
//! after another until one has everything, verified.
//!
//! `source` builds the offer and reads it; `pump` runs one receiver's
//! transfer; this module keeps the ticket, the retries and the summary.

mod pump;
mod source;

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};
use tokio_util::sync::CancellationToken;

use crate::cli::{Common, SendArgs};
use crate::error::{Interrupted, PeerLost};
use crate::files::Skip;
use crate::net::{Link, PathKind, TransportConfig};
use crate::proto::sender::DEFAULT_WINDOW;
use crate::proto::{LeftOut, Manifest, ProtoError, Sender};
use crate::signal::{SignalClient, Ticket};
use crate::transfer::peer::Peer;
use crate::transfer::progress::{Progress, Summary};
use crate::transfer::session::{self, JsonSummary};
use pump::{Pump, Sent};
use source::{build_offer, Offer, Source, StdinReader};

/// `ferry send`: lists the paths, prints a ticket and serves the offer
/// until one receiver has it all, Ctrl-C or `--timeout` (a receiver that
/// declines or fails leaves it open for another); prints the `--json`
/// summary if asked.
pub async fn run(args: SendArgs, common: Common) -> Result<()> {
    let json = common.json;
    let cancel = crate::cli::cancel_on_ctrl_c();
    let result = send(args, common, &cancel).await;
    session::report(json, crate::error::interrupt_wins(&cancel, result))
}

async fn send(args: SendArgs, common: Common, cancel: &CancellationToken) -> Result<JsonSummary> {
    let config = crate::cli::transport_config(&common)?;
    let (manifest, sources, walk) = build_offer(&args).await?;
    // Said before the ticket, so it is read before anyone is told to connect.
    if let (Some(line), false) = (walk.skipped_sentence(), common.quiet) {
        eprintln!("{line}");
    }
    let servers = rendezvous_servers(&common, &args, cancel).await?;
    let ticket = Ticket::generate(servers.clone());
    // Join the room before the ticket exists for anyone: a dead --server is
    // then an error with no ticket printed, and the sender is always the
    // room's first peer.
    let mut signal = SignalClient::connect(&ticket).await?;
    announce(&ticket, &servers, common.quiet);

    let stdin = sources
        .iter()
        .any(|s| matches!(s, Source::Stdin))
        .then(StdinReader::new);
    let share = Share {
        names: manifest.entries.iter().map(|e| e.path.clone()).collect(),
        manifest,
        left_out: walk.left_out(),
        sources,
        stdin,
        config,
        wait: args.timeout.map(Duration::from_secs),
        quiet: common.quiet,
    };
    let mut progress = Progress::new("sending", common.quiet);
    progress.say("waiting for the receiver...");
    let delivered = share.serve(&mut signal, &mut progress, cancel).await?;
    signal.close().await;
    Ok(summarize(
        delivered,
        share.manifest.file_count(),
        &progress,
        walk.skipped,
    ))
}

/// The rendezvous for the ticket: the user's `--server`, or our own, run in
/// this process on `--bind` until `cancel`.
async fn rendezvous_servers(
    common: &Common,
    args: &SendArgs,
    cancel: &CancellationToken,
) -> Result<Vec<String>> {
    if let Some(url) = &common.server {
        return Ok(vec![url.clone()]);
    }
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} for the built-in rendezvous (--bind)",
                args.bind
            )
        })?;
    let bound = listener.local_addr()?;
    let stop = cancel.child_token();
    tokio::spawn(async move {
        let config = crate::server::rendezvous::Config::default();
        let run = crate::server::rendezvous::run(listener, config, stop.cancelled_owned());
        if let Err(e) = run.await {
            tracing::warn!("built-in rendezvous stopped: {e:#}");
        }
    });
    Ok(crate::net::reachable_urls("ws", bound)?)
}

/// What every attempt offers, the same for each receiver that tries.
struct Share {
    manifest: Manifest,
    left_out: LeftOut,
    names: Vec<String>,
    sources: Vec<Source>,
    stdin: Option<StdinReader>,
    config: TransportConfig,
    /// `--timeout`: how long each wait for a receiver may last.
    wait: Option<Duration>,
    quiet: bool,
}

/// A transfer its receiver confirmed.
struct Delivered {
    sent: Sent,
    path: PathKind,
    seconds: f64,
    /// Payload bytes that crossed the link.
    moved: u64,
}

impl Share {
    /// Offers to one receiver after another until one has everything.
    /// Whatever a receiver does (declines, fails, lies, vanishes), the
    /// ticket stays open for the next one; only success, Ctrl-C, --timeout
    /// or a failure of our own ends the command.
    async fn serve(
        &self,
        signal: &mut SignalClient,
        progress: &mut Progress,
        cancel: &CancellationToken,
    ) -> Result<Delivered> {
        let mut retry = Retry::default();
        let mut attempted = false;
        loop {
            if let Some(pause) = retry.pause() {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = cancel.cancelled() => return Err(Interrupted.into()),
                }
            }
            let deadline = self.wait.map(|w| tokio::time::Instant::now() + w);
            if attempted {
                settle(signal, deadline, cancel).await?;
            }
            attempted = true;
            let left = deadline.map(|d| d.saturating_duration_since(tokio::time::Instant::now()));
            let link = match session::connect(signal, &self.config, left, cancel).await {
                Ok(link) => link,
                Err(e) if e.is::<PeerLost>() => {
                    retry.failed(progress, &format!("{e:#}"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let (outcome, got_going) = self.attempt(link, signal, progress, cancel).await;
            if got_going {
                // A transfer got going: the receiver works; the next failure is news.
                retry.reset();
            }
            match outcome {
                Ok(delivered) => return Ok(delivered),
                Err(e) if !receiver_side(&e) => {
                    progress.abandon();
                    return Err(e);
                }
                Err(e) if self.stdin.as_ref().is_some_and(StdinReader::consumed) => {
                    progress.abandon();
                    return Err(e.context(
                        "standard input can't be read twice, so this transfer can't be offered again",
                    ));
                }
                Err(e) => {
                    progress.abandon();
                    *progress = Progress::new("sending", self.quiet);
                    retry.failed(progress, &receiver_outcome(&e));
                }
            }
        }
    }

    /// One receiver's attempt, and whether any payload moved in it.
    async fn attempt(
        &self,
        link: Link,
        signal: &mut SignalClient,
        progress: &mut Progress,
        cancel: &CancellationToken,
    ) -> (Result<Delivered>, bool) {
        let path = link.path().await;
        progress.say(&format!("connected ({} path)", path.as_str()));
        let caps = session::capabilities(&link);
        let manifest = self.manifest.clone();
        let mut core = Sender::offering(manifest, &self.left_out, DEFAULT_WINDOW, caps);
        let mut timing = Attempt::new(path.as_str());
        let offer = Offer {
            sources: &self.sources,
            stdin: self.stdin.as_ref(),
            names: &self.names,
        };
        progress.say(&offer.describe(&self.manifest));
        let peer = Peer::new(link, signal, cancel);
        let outcome = Pump::new(&mut core, peer, offer, progress, &mut timing)
            .run()
            .await;
        let delivered = outcome.map(|sent| Delivered {
            sent,
            path,
            seconds: timing.seconds(),
            moved: core.stats.bytes_queued,
        });
        (delivered, timing.first_byte.is_some())
    }
}

/// The closing line and the `--json` summary of a delivered transfer.
fn summarize(
    delivered: Delivered,
    files: usize,
    progress: &Progress,
    skipped: Vec<(String, Skip)>,
) -> JsonSummary {
    let (roots, bytes) = delivered.sent;
    let summary = Summary {
        verb: "sent",
        files,
        bytes,
        moved: delivered.moved,
        seconds: delivered.seconds,
        path: delivered.path.as_str().into(),
    };
    progress.finish(&summary);
    JsonSummary {
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
    }
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
