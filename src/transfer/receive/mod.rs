//! `ferry receive`: join a ticket's room, decide on the offer, verify and
//! write.
//!
//! `decide` checks the offer against `--out` and asks; `pump` runs the
//! transfer; `writer` is the disk thread. This module connects and reports.

mod decide;
mod pump;
mod writer;

use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use tokio_util::sync::CancellationToken;

use crate::cli::{Common, ReceiveArgs};
use crate::proto::{Manifest, Receiver};
use crate::signal::{SignalClient, SignalError, Ticket};
use crate::transfer::peer::Peer;
use crate::transfer::progress::{Progress, Summary};
use crate::transfer::session::{self, JsonSummary};
use decide::check_out;
use pump::Pump;

/// `ferry receive`: meets the sender named by the ticket, shows the offer
/// (and asks, unless `--yes` or stdin is not a terminal) and receives it
/// into `--out`; prints the `--json` summary if asked.
pub async fn run(args: ReceiveArgs, common: Common) -> Result<()> {
    let json = common.json;
    let cancel = crate::cli::cancel_on_ctrl_c();
    let result = receive(args, common, &cancel).await;
    session::report(json, crate::error::interrupt_wins(&cancel, result))
}

async fn receive(
    args: ReceiveArgs,
    common: Common,
    cancel: &CancellationToken,
) -> Result<JsonSummary> {
    let mut ticket: Ticket = args.ticket.parse()?;
    if let Some(server) = &common.server {
        ticket.servers.insert(0, server.clone());
    }
    let out = args.out.clone();
    tokio::task::spawn_blocking(move || check_out(&out)).await??;
    let config = crate::cli::transport_config(&common)?;
    let wait = Duration::from_secs(args.timeout);
    let connecting = async {
        let mut signal = SignalClient::connect(&ticket).await.map_err(spent_ticket)?;
        let link = session::connect(&mut signal, &config, Some(wait), cancel).await?;
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
    let peer = Peer::new(link, &mut signal, cancel);
    let result = Pump::new(&mut core, peer, &mut ctx, cancel).run().await;
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
    /// Ask before accepting (a terminal, and no --yes).
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

impl Ctx {
    /// The offered path of entry `file`.
    fn entry_path(&self, file: u32) -> String {
        self.manifest
            .as_ref()
            .and_then(|m| m.entries.get(file as usize))
            .map(|e| e.path.clone())
            .unwrap_or_default()
    }
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
