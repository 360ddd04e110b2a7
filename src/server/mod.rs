//! `ferry serve` and the rendezvous it runs (also in-process inside `ferry
//! send`): rooms that pair two peers and relay their sealed messages, the
//! limits that keep one client from exhausting it, a STUN responder, TURN
//! credentials for coturn, and the embedded web page.
//!
//! It never sees a ticket's secret and never touches files or WebRTC: it
//! speaks only the frames of [`crate::signal`].

pub mod limits;
pub mod rendezvous;
pub mod stun;
pub mod turn;
pub mod web;

use std::time::Duration;

use anyhow::{Context as _, Result};

use crate::cli::{Common, ServeArgs};
use crate::error::UsageError;
use rendezvous::Config;
use turn::TurnRest;

/// `ferry serve`: listens for signaling and the web page on `--listen`, runs
/// the STUN responder unless `--no-stun`, and hands out TURN credentials
/// with `--turn-secret`, until Ctrl-C.
pub async fn run(args: ServeArgs, common: Common) -> Result<()> {
    let mut config = Config {
        // --stun/--turn given to serve are handed to every client.
        ice_servers: crate::cli::ice_servers(&common)?,
        ..Config::default()
    };
    if let Some(secret) = args.turn_secret {
        if let Some(bad) = args
            .turn_url
            .iter()
            .find(|u| !(u.starts_with("turn:") || u.starts_with("turns:")))
        {
            return Err(UsageError(format!(
                "--turn-url {bad:?} must start with turn: or turns:"
            ))
            .into());
        }
        config.turn = Some(TurnRest::new(
            secret,
            args.turn_url.clone(),
            Duration::from_secs(args.turn_ttl),
        ));
    }
    let _ = raise_open_file_limit();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
    let bound = listener.local_addr()?;
    let cancel = crate::cli::cancel_on_ctrl_c();

    let stun = if args.no_stun {
        None
    } else {
        let socket = tokio::net::UdpSocket::bind(args.stun_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen for STUN on udp {} (--stun-listen to move it, --no-stun to run none)",
                    args.stun_listen
                )
            })?;
        let addr = socket.local_addr()?;
        config.stun_port = Some(addr.port());
        Some((
            addr,
            tokio::spawn(crate::server::stun::serve(socket, cancel.clone())),
        ))
    };

    if !common.quiet {
        eprintln!(
            "ferry rendezvous listening on http://{bound} (signaling at ws://{bound}/v1/rooms/...)"
        );
        if let Some((addr, _)) = &stun {
            eprintln!("STUN on udp {addr}");
        }
        if !args.turn_url.is_empty() {
            eprintln!("TURN credentials for {}", args.turn_url.join(", "));
        }
    }
    let result = rendezvous::run(listener, config, cancel.clone().cancelled_owned()).await;
    cancel.cancel();
    if let Some((_, task)) = stun {
        let _ = task.await;
    }
    result
}

/// Every WebSocket is an open file: the common soft limit of 1,024 would cap
/// the server far below its own limits, so take what the hard limit allows.
/// Returns the soft limit now in force, if it could be read.
pub fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        let before = limit.rlim_cur;
        if before < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Some(before);
            }
            tracing::debug!(
                from = before,
                to = limit.rlim_cur,
                "raised the open file limit"
            );
        }
        Some(limit.rlim_cur)
    }
}
