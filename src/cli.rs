//! Command-line interface. The doc comments are the `--help` text.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::error::UsageError;
use crate::net::TransportConfig;
use crate::proto::wire::MAX_LANES;
use crate::signal::IceServer;

/// Send files and folders peer-to-peer over WebRTC, verified with BLAKE3.
#[derive(Parser, Debug)]
#[command(
    name = "ferry",
    version,
    about,
    propagate_version = true,
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Which of `send`, `receive` and `serve` to run.
    #[command(subcommand)]
    pub command: Command,
    /// The options every subcommand takes.
    #[command(flatten)]
    pub common: Common,
}

// The doc comments of `Common`, `Command` and the `*Args` structs
// themselves do not reach `--help` (those of their fields and variants
// do): clap replaces them with `Cli`'s and each `Command` variant's.

/// Options every subcommand takes (`global`, so they may follow it).
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Rendezvous server (ws:// or wss:// URL) instead of the built-in one
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// STUN server for address discovery, e.g. stun:example.org:3478 (repeatable)
    #[arg(long, global = true, value_name = "URL")]
    pub stun: Vec<String>,
    /// TURN relay, e.g. turn:user:pass@example.org:3478 (repeatable)
    #[arg(long, global = true, value_name = "URL")]
    pub turn: Vec<String>,
    /// Print one JSON summary object on stdout at the end
    #[arg(long, global = true)]
    pub json: bool,
    /// Nothing on stderr but errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log more (-v, -vv); RUST_LOG is honored too
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Extra data connections to offer beside the main one (0: none); for
    /// benchmarks and troubleshooting, so not in --help
    #[arg(long, global = true, env = "FERRY_LANES", default_value_t = DEFAULT_LANES, hide = true)]
    pub lanes: u32,
}

/// Lanes offered unless `--lanes` / `FERRY_LANES` says otherwise: one
/// extra connection, which lets the transport use a second core.
pub const DEFAULT_LANES: u32 = 1;

/// Shown under every `--help`.
const EXIT_CODES: &str =
    "Exit codes: 0 done, 1 failed, 2 usage error or bad ticket, 130 interrupted (Ctrl-C)";

/// The subcommand to run.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Offer files and folders; prints a ticket (first line of stdout) and a browser link
    #[command(after_help = EXIT_CODES)]
    Send(SendArgs),
    /// Receive what a ticket offers
    #[command(after_help = EXIT_CODES)]
    Receive(ReceiveArgs),
    /// Run the standalone rendezvous server (signaling and the web page)
    #[command(after_help = EXIT_CODES)]
    Serve(ServeArgs),
}

/// Options of `ferry send`.
#[derive(Args, Debug)]
pub struct SendArgs {
    /// Files or folders to send; `-` reads standard input as one stream (needs --name)
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Name for the stream read from `-`
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Address of the built-in rendezvous (when no --server is given)
    #[arg(long, default_value = "0.0.0.0:0", value_name = "ADDR")]
    pub bind: SocketAddr,
    /// Inside folders, send what symbolic links point to (by default links
    /// are left out, and said so)
    #[arg(long)]
    pub follow_symlinks: bool,
    /// Give up if no receiver connects within this many seconds (counted
    /// afresh each time a receiver declines or fails; default: wait until Ctrl-C)
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
}

/// Options of `ferry receive`.
#[derive(Args, Debug)]
pub struct ReceiveArgs {
    /// The ticket printed by `ferry send`
    pub ticket: String,
    /// Folder to receive into
    #[arg(long, short, default_value = ".", value_name = "DIR")]
    pub out: PathBuf,
    /// Accept without asking
    #[arg(long, short)]
    pub yes: bool,
    /// Overwrite existing files
    #[arg(long)]
    pub force: bool,
    /// Give up if the sender can't be reached within this many seconds
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,
}

/// Options of `ferry serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on for HTTP and WebSocket signaling
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// UDP address of the built-in STUN responder, offered to every client
    #[arg(long, default_value = "0.0.0.0:3478", value_name = "ADDR")]
    pub stun_listen: SocketAddr,
    /// Run no STUN responder
    #[arg(long, conflicts_with = "stun_listen")]
    pub no_stun: bool,
    /// Secret shared with a TURN server (coturn's static-auth-secret): hand
    /// every client short-lived credentials for --turn-url
    #[arg(
        long,
        env = "FERRY_TURN_SECRET",
        hide_env_values = true,
        value_name = "SECRET",
        requires = "turn_url"
    )]
    pub turn_secret: Option<String>,
    /// The TURN server of --turn-secret, e.g. turn:turn.example.org:3478 (repeatable)
    #[arg(long, value_name = "URL", requires = "turn_secret")]
    pub turn_url: Vec<String>,
    /// How long minted TURN credentials stay valid, in seconds
    #[arg(long, default_value_t = 12 * 3600, value_name = "SECS")]
    pub turn_ttl: u64,
}

/// One token for every way a transfer stops early; Ctrl-C cancels it.
pub fn cancel_on_ctrl_c() -> CancellationToken {
    let token = CancellationToken::new();
    let child = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            child.cancel();
        }
    });
    token
}

/// How this side's peer connections are built: the ICE servers of
/// `--stun` / `--turn` (the rendezvous adds its own) and the lanes offered.
pub fn transport_config(common: &Common) -> Result<TransportConfig> {
    let lanes = common.lanes.min(MAX_LANES);
    Ok(TransportConfig {
        ice_servers: ice_servers(common)?,
        lanes,
        // One driver thread per connection, so each has a core of its own.
        driver_threads: 1 + lanes as usize,
        sctp_mtu: None,
    })
}

/// ICE servers from `--stun` / `--turn`. A TURN URL may carry its
/// credentials as `turn:USER:PASS@host:port`.
pub fn ice_servers(common: &Common) -> Result<Vec<IceServer>> {
    let mut out = Vec::new();
    for url in &common.stun {
        if !url.starts_with("stun:") && !url.starts_with("stuns:") {
            return Err(
                UsageError(format!("--stun {url:?} must start with stun: or stuns:")).into(),
            );
        }
        out.push(IceServer {
            urls: vec![url.clone()],
            ..Default::default()
        });
    }
    for url in &common.turn {
        let (scheme, rest) = url
            .split_once(':')
            .filter(|(s, _)| *s == "turn" || *s == "turns")
            .ok_or_else(|| UsageError(format!("--turn {url:?} must start with turn: or turns:")))?;
        let (creds, host) = match rest.rsplit_once('@') {
            Some((creds, host)) => (Some(creds), host),
            None => (None, rest),
        };
        let (username, credential) = match creds.map(|c| c.split_once(':')) {
            Some(Some((u, p))) => (Some(u.to_string()), Some(p.to_string())),
            Some(None) => {
                return Err(UsageError(format!(
                    "--turn {url:?}: write credentials as USER:PASS@host"
                ))
                .into())
            }
            None => (None, None),
        };
        out.push(IceServer {
            urls: vec![format!("{scheme}:{host}")],
            username,
            credential,
        });
    }
    Ok(out)
}
