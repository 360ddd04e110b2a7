//! What `send` and `receive` share: meeting the peer through the rendezvous,
//! opening the WebRTC link, the one cancellation path, and the JSON summary.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use tokio_util::sync::CancellationToken;

use crate::error::{error_line, Interrupted, PeerLost};
use crate::net::{Drain, Link, Transport, TransportConfig};
use crate::proto::Capabilities;
use crate::signal::{Position, SignalClient, SignalError, SignalMessage};

/// Time allowed from "the peer is there" to "both channels are open".
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Time allowed for the peer's offer or answer to come through the
/// rendezvous. Making one takes milliseconds, but a browser gathers all its
/// candidates first, which can take ~10 s when a STUN server is unreachable.
const DESCRIPTION_TIMEOUT: Duration = Duration::from_secs(20);

/// Wait in the room for a peer and open a WebRTC link to it, built as
/// `config` says (the rendezvous's ICE servers are added to its own).
/// `wait_for_peer` bounds how long to wait for the other side to show up.
/// The signaling connection stays open: the caller watches it with
/// [`PeerWatch`] during the transfer and may wait for another peer after.
pub async fn connect(
    signal: &mut SignalClient,
    config: &TransportConfig,
    wait_for_peer: Option<Duration>,
    cancel: &CancellationToken,
) -> Result<Link> {
    let work = async {
        let waiting = signal.wait_for_peer();
        match wait_for_peer {
            Some(limit) => tokio::time::timeout(limit, waiting).await.map_err(|_| {
                anyhow!(
                    "no peer joined within {}s (--timeout); nobody used the ticket",
                    limit.as_secs()
                )
            })??,
            None => waiting.await?,
        }
        let mut ice_servers = config.ice_servers.clone();
        ice_servers.extend(signal.ice_servers().iter().cloned());
        let negotiate = async {
            let config = TransportConfig {
                ice_servers,
                ..config.clone()
            };
            let transport = match signal.position() {
                // The second to arrive makes the offer: the first is already listening.
                Position::Second => {
                    let mut transport = Transport::new(&config).await?;
                    let sdp = transport.create_offer().await?;
                    let session = data_encoding::HEXLOWER.encode(&rand::random::<[u8; 8]>());
                    let offer = SignalMessage::Description {
                        sdp_type: "offer".into(),
                        sdp,
                        session: Some(session.clone()),
                    };
                    signal.send(&offer).await?;
                    let (answer, _) = within_description_timeout(
                        expect_description(signal, "answer", Some(&session)),
                        "the peer did not answer",
                    )
                    .await?;
                    transport.accept_answer(answer).await?;
                    transport
                }
                Position::First => {
                    let (offer, session) = within_description_timeout(
                        expect_description(signal, "offer", None),
                        "the peer joined but sent no offer",
                    )
                    .await?;
                    // Built only now: a peer that never offers costs nothing.
                    let mut transport = Transport::new(&config).await?;
                    let sdp = transport.accept_offer(offer).await?;
                    let answer = SignalMessage::Description {
                        sdp_type: "answer".into(),
                        sdp,
                        session,
                    };
                    signal.send(&answer).await?;
                    transport
                }
            };
            // A peer that vanishes now would otherwise hold us until ICE gives up.
            let mut watch = PeerWatch::default();
            tokio::select! {
                link = transport.open(CONNECT_TIMEOUT) => link,
                reason = watch.gone(signal) => Err(PeerLost(reason).into()),
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(5), negotiate)
            .await
            .map_err(|_| anyhow!("timed out connecting to the peer"))?
    };
    let result = tokio::select! {
        link = work => link,
        _ = cancel.cancelled() => return Err(Interrupted.into()),
    };
    result.map_err(|e| match e.downcast_ref::<SignalError>() {
        Some(SignalError::PeerLeft) => PeerLost("the peer left while connecting".into()).into(),
        // A server that tampers or replays is an attack, not bad luck: stop.
        Some(SignalError::Tampered | SignalError::Replayed) => e,
        // Reaching the rendezvous and waiting for the peer are not this peer's fault.
        _ if !signal.peer_present() => e,
        // The peer came and then could not be reached (it died, or no path
        // exists): the sender may wait for another attempt.
        _ => PeerLost(format!("{e:#}")).into(),
    })
}

/// Watches the rendezvous for the peer leaving the room (its process ended
/// or lost the network), which is known long before ICE gives up on the path.
#[derive(Default)]
pub struct PeerWatch {
    /// False once the rendezvous itself went away: the transfer goes on without it.
    lost_server: bool,
    /// Set when the peer left; messages it sent just before may still be in flight.
    deadline: Option<tokio::time::Instant>,
}

/// How long messages already on the way are still awaited after the peer left.
const LEFT_GRACE: Duration = Duration::from_millis(500);

/// What this side's hello offers, the same for sender and receiver: lanes,
/// the datagrams its sockets take whole, and a flow-control window the size
/// of the link's inbox.
pub fn capabilities(link: &Link) -> Capabilities {
    Capabilities {
        lanes: link.config().lanes,
        max_datagram: link.max_datagram(),
        window: crate::net::INBOX_BYTES as u32,
    }
}

/// How much of what is queued for the peer is worth delivering, given how
/// the transfer ended: everything after success, our cancel after a failure,
/// nothing to a peer that is gone.
pub fn drain_for<T>(result: &Result<T>) -> Drain {
    match result {
        Ok(_) => Drain::All,
        Err(e) if e.is::<PeerLost>() => Drain::Nothing,
        Err(_) => Drain::Control,
    }
}

impl PeerWatch {
    /// Resolves once the peer is gone for good. Cancel-safe (for `select!`).
    pub async fn gone(&mut self, signal: &mut SignalClient) -> String {
        loop {
            if let Some(deadline) = self.deadline {
                // A new peer in the room (a receiver run again to resume) means
                // the old one is gone for good: it need not wait out the grace.
                // Its messages stay queued in `signal` for the next session.
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    Ok(()) = signal.wait_for_peer() => {}
                }
                return "the peer left the rendezvous room".into();
            }
            if self.lost_server {
                return std::future::pending().await;
            }
            match signal.recv().await {
                Err(SignalError::PeerLeft) => {
                    self.deadline = Some(tokio::time::Instant::now() + LEFT_GRACE)
                }
                // Late or trickled signaling, or garbage from the server: not our concern now.
                Ok(_)
                | Err(SignalError::Tampered | SignalError::Replayed | SignalError::Protocol(_)) => {
                }
                Err(e) => {
                    tracing::debug!("rendezvous connection ended: {e}");
                    self.lost_server = true;
                }
            }
        }
    }
}

async fn within_description_timeout<T>(
    wait: impl std::future::Future<Output = Result<T>>,
    what: &str,
) -> Result<T> {
    tokio::time::timeout(DESCRIPTION_TIMEOUT, wait)
        .await
        .unwrap_or_else(|_| {
            Err(anyhow!(
                "{what} within {}s: the rendezvous server is dropping messages, or the peer is stuck",
                DESCRIPTION_TIMEOUT.as_secs()
            ))
        })
}

/// The next description of type `want`; with `session`, only one that
/// answers our own offer (a late answer meant for an earlier peer is skipped).
async fn expect_description(
    signal: &mut SignalClient,
    want: &str,
    session: Option<&str>,
) -> Result<(String, Option<String>)> {
    loop {
        match signal.recv().await.context("signaling")? {
            SignalMessage::Description {
                sdp_type,
                sdp,
                session: got,
            } if sdp_type == want => {
                if session.is_some() && got.as_deref() != session {
                    tracing::debug!("skipping an {want} for another session");
                    continue;
                }
                return Ok((sdp, got));
            }
            SignalMessage::Description { sdp_type, .. } => {
                bail!("the peer sent an {sdp_type} where an {want} was expected")
            }
            SignalMessage::Bye { reason } => bail!("the peer left: {reason}"),
            // Candidates travel inside the descriptions; ignore trickled extras.
            SignalMessage::Candidate { .. } => {}
        }
    }
}

/// The `--json` summary object (see the CLI contract in the README).
#[derive(serde::Serialize)]
pub struct JsonSummary {
    /// Whether the transfer succeeded.
    pub ok: bool,
    /// On failure: the one-line error, as printed on stderr.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Files in the offer (folders not counted).
    pub files: usize,
    /// Size of the transfer in bytes (a stream counts what it carried).
    pub bytes: u64,
    /// On send: payload bytes put on the channels in this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_sent: Option<u64>,
    /// On receive: payload bytes that arrived in this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_received: Option<u64>,
    /// Seconds from the first payload byte to the end.
    pub seconds: f64,
    /// The network path: `direct`, `srflx`, `relay`, or `unknown`.
    pub path: String,
    /// Relative path to BLAKE3 hash (hex, as `b3sum` prints it), per file.
    pub blake3: BTreeMap<String, String>,
    /// On send: what the walk left out (`path`, `why`), so scripts see it too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<Vec<SkippedJson>>,
}

/// One thing the sender's walk left out, in the `--json` `skipped` list.
#[derive(serde::Serialize, Debug)]
pub struct SkippedJson {
    /// Its path as it would have been offered.
    pub path: String,
    /// The kind of thing it is: `symlink`, `fifo`, ... ([`Skip::as_str`]).
    ///
    /// [`Skip::as_str`]: crate::files::Skip::as_str
    pub why: &'static str,
}

impl JsonSummary {
    /// The summary of a failed transfer: `ok` false, `error` set, nothing
    /// counted.
    pub fn failed(error: &anyhow::Error) -> JsonSummary {
        JsonSummary {
            ok: false,
            error: Some(error_line(error)),
            files: 0,
            bytes: 0,
            bytes_sent: None,
            bytes_received: None,
            seconds: 0.0,
            path: "unknown".into(),
            blake3: BTreeMap::new(),
            skipped: None,
        }
    }

    /// Writes the summary as one line of JSON on stdout.
    pub fn print(&self) {
        if let Ok(line) = serde_json::to_string(self) {
            println!("{line}");
        }
    }
}

/// Print the `--json` summary (success or failure) if asked, and pass the
/// result on.
pub fn report(json: bool, result: Result<JsonSummary>) -> Result<()> {
    if json {
        match &result {
            Ok(summary) => summary.print(),
            Err(e) => JsonSummary::failed(e).print(),
        }
    }
    result.map(|_| ())
}
