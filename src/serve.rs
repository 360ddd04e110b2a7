//! `ferry serve`: the standalone rendezvous (signaling and the web page).

use anyhow::{Context as _, Result};

use crate::cli::{Common, ServeArgs};
use crate::rendezvous::{self, Config};

pub async fn run(args: ServeArgs, common: Common) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
    let bound = listener.local_addr()?;
    if !common.quiet {
        eprintln!(
            "ferry rendezvous listening on http://{bound} (signaling at ws://{bound}/v1/rooms/...)"
        );
    }
    let cancel = crate::session::cancel_on_ctrl_c();
    rendezvous::run(listener, Config::default(), cancel.cancelled_owned()).await
}
