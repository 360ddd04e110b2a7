//! Extra data connections ("lanes") beside the main one. One SCTP association
//! keeps about one core busy, so a second peer connection, with its own
//! socket and driver thread, lets the transport use a second core.
//!
//! Both hellos say how many lanes each side can use; the sender then offers
//! each lane's SDP over the control channel (already authenticated by the
//! sealed signaling and DTLS) and the receiver answers there. Setting up runs
//! in tasks beside the transfer, which starts on the main connection at once
//! and spreads over each lane as it opens. A lane that fails to open is left
//! out; one that fails later ends the transfer like the main connection would.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, Result};
use tokio::sync::{mpsc, oneshot};

use crate::proto::wire::MAX_LANES;
use crate::transport::{Lane, Link, Transport};

/// Lanes offered when `FERRY_LANES` does not say otherwise.
const DEFAULT_LANES: u32 = 1;
/// Time for one lane to open, from its offer.
const LANE_TIMEOUT: Duration = Duration::from_secs(15);

/// How many lanes to offer: `FERRY_LANES` (0 turns them off, for comparison)
/// or the default, at most [`MAX_LANES`].
pub fn wanted() -> u32 {
    std::env::var("FERRY_LANES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_LANES)
        .min(MAX_LANES)
}

/// What the lane tasks report to the driver.
pub enum LaneEvent {
    /// Our SDP (offer or answer) for lane `.0`: send it as `Control::Lane`.
    Sdp(u32, String),
    /// Lane `.0` is open, or could not be.
    Open(u32, Result<Lane>),
}

/// The lanes being set up for one link; dropping it stops the set-up tasks.
pub struct Lanes {
    events_tx: mpsc::UnboundedSender<LaneEvent>,
    events: mpsc::UnboundedReceiver<LaneEvent>,
    /// Sender side: where each lane's answer goes.
    answers: HashMap<u32, oneshot::Sender<String>>,
    /// Lanes offered or answered so far (each at most once).
    started: Vec<u32>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Default for Lanes {
    fn default() -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        Lanes {
            events_tx,
            events,
            answers: HashMap::new(),
            started: Vec::new(),
            tasks: Vec::new(),
        }
    }
}

/// Which side of a lane's SDP exchange a task plays.
enum Role {
    /// Sender: make the offer, then wait for the receiver's answer here.
    Offer(oneshot::Receiver<String>),
    /// Receiver: answer this offer.
    Answer(String),
}

impl Lanes {
    /// Sender: make lane `lane`'s offer (reported as [`LaneEvent::Sdp`]),
    /// then wait for [`Lanes::answered`].
    pub fn offer(&mut self, link: &Link, lane: u32) {
        if self.started.contains(&lane) {
            return;
        }
        let (answer_tx, answer_rx) = oneshot::channel();
        self.answers.insert(lane, answer_tx);
        self.start(link, lane, Role::Offer(answer_rx));
    }

    /// Sender: the receiver's answer for `lane`. False if we never offered it.
    pub fn answered(&mut self, lane: u32, sdp: String) -> bool {
        match self.answers.remove(&lane) {
            Some(tx) => {
                let _ = tx.send(sdp);
                true
            }
            None => false,
        }
    }

    /// Receiver: answer the sender's offer for `lane` (the caller checked
    /// that both hellos agreed on it). False if it was offered before.
    pub fn answer(&mut self, link: &Link, lane: u32, offer: String) -> bool {
        if self.started.contains(&lane) {
            return false;
        }
        self.start(link, lane, Role::Answer(offer));
        true
    }

    /// The next report of a lane task; pending while there is none.
    pub async fn next(&mut self) -> LaneEvent {
        match self.events.recv().await {
            Some(event) => event,
            // We hold a sender ourselves, so the channel never closes.
            None => std::future::pending().await,
        }
    }

    /// One task sets up lane `lane`: our SDP goes out as [`LaneEvent::Sdp`],
    /// and the outcome comes back as [`LaneEvent::Open`].
    fn start(&mut self, link: &Link, lane: u32, role: Role) {
        self.started.push(lane);
        let config = link.config().clone();
        let incoming = link.incoming_sender();
        let events = self.events_tx.clone();
        self.tasks.push(tokio::spawn(async move {
            let result = async {
                let mut transport = Transport::new_lane(&config).await?;
                match role {
                    Role::Offer(answer) => {
                        let sdp = transport.create_offer().await?;
                        let _ = events.send(LaneEvent::Sdp(lane, sdp));
                        let answer = answer
                            .await
                            .map_err(|_| anyhow!("lane {lane}: no answer"))?;
                        transport.accept_answer(answer).await?;
                    }
                    Role::Answer(offer) => {
                        let sdp = transport.accept_offer(offer).await?;
                        let _ = events.send(LaneEvent::Sdp(lane, sdp));
                    }
                }
                transport.open_lane(LANE_TIMEOUT, lane, incoming).await
            }
            .await;
            let _ = events.send(LaneEvent::Open(lane, result));
        }));
    }
}

impl Drop for Lanes {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
