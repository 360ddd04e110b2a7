//! The peer as both drivers see it during a transfer: the link and its
//! lanes, the rendezvous watched for the peer leaving, and the one
//! cancellation token. Written once so that sending and receiving wait on
//! the same things in the same order, and each driver keeps only what is
//! its own (reads and data writers, or the disk writer).

use anyhow::Result;
use bytes::BytesMut;
use tokio_util::sync::CancellationToken;

use crate::error::Interrupted;
use crate::net::lanes::{self, LaneEvent, Lanes};
use crate::net::{DataSender, Drain, Incoming, Link};
use crate::proto::wire::FrameError;
use crate::proto::Control;
use crate::signal::SignalClient;
use crate::transfer::session::PeerWatch;

/// What happened on the peer's side, for the driver to hand to its core.
pub enum PeerEvent {
    /// The user interrupted (Ctrl-C): the one cancellation path.
    Cancelled,
    /// A message on the control channel, decoded.
    Control(Result<Control, FrameError>),
    /// A message on the data channel of lane `.0` (0: the main connection).
    Data(u32, BytesMut),
    /// Our SDP for lane `.0` (an offer or an answer) is ready for the core.
    LaneSdp(u32, String),
    /// A lane opened and carries data from now on; `same_host` when it
    /// sends large packets on this machine.
    LaneOpen {
        channel: DataSender,
        same_host: bool,
    },
    /// The connection to the peer failed or closed.
    Lost(String),
    /// The rendezvous says the peer left its room.
    Left(String),
}

/// The peer's link, lanes and rendezvous, owned for one transfer.
pub struct Peer<'a> {
    link: Link,
    lanes: Lanes,
    watch: PeerWatch,
    signal: &'a mut SignalClient,
    cancel: CancellationToken,
    /// The SCTP packet size for lanes, once known (see `lanes::sctp_mtu`).
    lane_mtu: Option<Option<u32>>,
}

impl<'a> Peer<'a> {
    pub fn new(link: Link, signal: &'a mut SignalClient, cancel: &CancellationToken) -> Self {
        Peer {
            link,
            lanes: Lanes::default(),
            watch: PeerWatch::default(),
            signal,
            cancel: cancel.clone(),
            lane_mtu: None,
        }
    }

    pub fn link(&mut self) -> &mut Link {
        &mut self.link
    }

    /// The next event. Cancellation comes first, so Ctrl-C is never kept
    /// waiting behind a busy link; a lane that fails to open is only
    /// reported (the transfer goes on without it). Cancel-safe.
    pub async fn next(&mut self) -> PeerEvent {
        loop {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return PeerEvent::Cancelled,
                msg = self.link.recv() => return match msg {
                    Incoming::Control(bytes) => PeerEvent::Control(Control::decode(&bytes)),
                    Incoming::Data(lane, bytes) => PeerEvent::Data(lane, bytes),
                    Incoming::Lost(reason) => PeerEvent::Lost(reason),
                },
                event = self.lanes.next() => match event {
                    LaneEvent::Sdp(lane, sdp) => return PeerEvent::LaneSdp(lane, sdp),
                    LaneEvent::Open(lane, Ok(opened)) => {
                        tracing::debug!(lane, "lane open");
                        let same_host = opened.sctp_mtu().is_some();
                        let channel = self.link.add_lane(opened);
                        return PeerEvent::LaneOpen { channel, same_host };
                    }
                    LaneEvent::Open(_, Err(e)) => tracing::warn!("{e:#}; going on without it"),
                },
                reason = self.watch.gone(self.signal) => return PeerEvent::Left(reason),
            }
        }
    }

    /// Tells the peer that `who` ("the sender") was interrupted, and returns
    /// the error that ends this side's transfer (exit code 130).
    pub async fn interrupted(&self, who: &str) -> anyhow::Error {
        let reason = format!("{who} was interrupted");
        let _ = self.send(&Control::Cancel { reason }).await;
        Interrupted.into()
    }

    /// Sends a control message.
    pub async fn send(&self, msg: &Control) -> Result<()> {
        self.link.send_control(&msg.encode()).await
    }

    /// Sender: start setting up lane `lane` (its offer comes back as
    /// [`PeerEvent::LaneSdp`]). `peer_max_datagram` is from the peer's hello.
    pub async fn offer_lane(&mut self, lane: u32, peer_max_datagram: u32) {
        let mtu = self.lane_mtu(peer_max_datagram).await;
        self.lanes.offer(&self.link, lane, mtu);
    }

    /// Sender: the receiver's answer for a lane we offered.
    pub fn lane_answered(&mut self, lane: u32, sdp: String) {
        self.lanes.answered(lane, sdp);
    }

    /// Receiver: answer the sender's offer for lane `lane` (the answer comes
    /// back as [`PeerEvent::LaneSdp`]).
    pub async fn answer_lane(&mut self, lane: u32, offer: String, peer_max_datagram: u32) {
        let mtu = self.lane_mtu(peer_max_datagram).await;
        self.lanes.answer(&self.link, lane, mtu, offer);
    }

    async fn lane_mtu(&mut self, peer_max_datagram: u32) -> Option<u32> {
        if self.lane_mtu.is_none() {
            self.lane_mtu = Some(lanes::sctp_mtu_for(&self.link, peer_max_datagram).await);
        }
        self.lane_mtu.flatten()
    }

    /// Stops the lanes' set-up and closes the link, delivering `drain`.
    pub async fn close(self, drain: Drain) {
        drop(self.lanes);
        self.link.close(drain).await;
    }
}
