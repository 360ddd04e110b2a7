//! An open connection to the peer: its channels, the lanes added to it,
//! and the one byte-bounded stream of [`Incoming`] messages their readers
//! feed. Built by [`super::Transport::open`]; what the session uses.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use bytes::BytesMut;
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{PeerConnection, RTCIceCandidate, RTCIceCandidateType};

use super::TransportConfig;

/// Bytes queued from a link's channels to the session (each message counts
/// [`MESSAGE_COST`] more, so that a flood of empty messages is bounded too).
/// See [`Inbox`] for why bytes, not messages. It is also the flow-control
/// window each side offers in its hello, so a peer that obeys credits never
/// fills it.
pub const INBOX_BYTES: usize = 4 << 20;
const MESSAGE_COST: usize = crate::proto::wire::MESSAGE_COST as usize;

/// How the selected ICE candidate pair reaches the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// Host candidates on both sides (LAN or loopback).
    Direct,
    /// Through a NAT, via an address learned from STUN.
    Srflx,
    /// Through a TURN relay.
    Relay,
    /// No selected pair to judge, or a candidate of a type not known here.
    Unknown,
}

impl PathKind {
    /// Its name in the progress line and the `--json` `path`: `direct`,
    /// `srflx`, `relay` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::Direct => "direct",
            PathKind::Srflx => "srflx",
            PathKind::Relay => "relay",
            PathKind::Unknown => "unknown",
        }
    }
}

/// What arrives from the peer.
#[derive(Debug)]
pub enum Incoming {
    /// A message of the `control` channel: JSON text, not yet decoded.
    Control(BytesMut),
    /// A message of the data channel of lane `.0` (0: the main connection).
    Data(u32, BytesMut),
    /// The connection is gone; the reason is for people.
    Lost(String),
}

impl Incoming {
    /// What this message holds of the inbox's room.
    fn cost(&self) -> usize {
        match self {
            Incoming::Control(m) | Incoming::Data(_, m) => {
                (m.len() + MESSAGE_COST).min(INBOX_BYTES)
            }
            Incoming::Lost(_) => 0,
        }
    }
}

/// Where the readers of a link's channels (main and lanes) put what
/// arrives, for [`Link::recv`]: a queue bounded in bytes, not in messages.
///
/// The readers must keep up with webrtc. It holds at most 256 delivered
/// messages per channel; when they fill, it stops taking packets, and the
/// sender's SCTP waits for a zero-window probe to go on. A queue of 64
/// messages ahead of it stalled transfers of many small files that way
/// (10,000 files of 4 KiB: 800 files/s, against 2,400-3,900 with room for
/// thousands of small messages). Counting bytes keeps the memory bound for
/// large messages and leaves room for many small ones.
#[derive(Clone)]
pub struct Inbox {
    tx: mpsc::UnboundedSender<Incoming>,
    room: Arc<tokio::sync::Semaphore>,
}

impl Inbox {
    pub(super) fn new() -> (Inbox, mpsc::UnboundedReceiver<Incoming>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let room = Arc::new(tokio::sync::Semaphore::new(INBOX_BYTES));
        (Inbox { tx, room }, rx)
    }

    /// Queues `msg`, waiting while the inbox is full. Err once the link is gone.
    async fn put(&self, msg: Incoming) -> Result<(), ()> {
        // A message costs at most INBOX_BYTES, which fits in a u32.
        let cost = u32::try_from(msg.cost()).map_err(drop)?;
        self.room.acquire_many(cost).await.map_err(drop)?.forget();
        self.tx.send(msg).map_err(drop)
    }

    /// Reports the connection lost; never waits.
    pub(super) fn lost(&self, reason: String) {
        let _ = self.tx.send(Incoming::Lost(reason));
    }

    /// `msg` left the queue: its room is free again.
    fn taken(&self, msg: &Incoming) {
        self.room.add_permits(msg.cost());
    }
}

/// Which channel a reader serves.
#[derive(Clone, Copy)]
pub(super) enum ChannelKind {
    Control,
    Data(u32),
}

pub(super) async fn read_channel(
    dc: Arc<dyn DataChannel>,
    kind: ChannelKind,
    tx: Inbox,
    opened: tokio::sync::oneshot::Sender<()>,
) {
    let mut opened = Some(opened);
    while let Some(event) = dc.poll().await {
        let msg = match (event, kind) {
            (DataChannelEvent::OnOpen, _) => {
                if let Some(opened) = opened.take() {
                    let _ = opened.send(());
                }
                continue;
            }
            (DataChannelEvent::OnMessage(m), ChannelKind::Control) => Incoming::Control(m.data),
            (DataChannelEvent::OnMessage(m), ChannelKind::Data(lane)) => {
                Incoming::Data(lane, m.data)
            }
            (DataChannelEvent::OnClose, _) => break,
            _ => continue,
        };
        if tx.put(msg).await.is_err() {
            return;
        }
    }
    // A lane that never opened is reported by `open_lane`, not here.
    if opened.is_none() || matches!(kind, ChannelKind::Control | ChannelKind::Data(0)) {
        tx.lost("the peer closed the connection".into());
    }
}

/// An extra open connection carrying one more `data` channel.
pub struct Lane {
    pub(super) pc: Arc<dyn PeerConnection>,
    /// As configured: `Some` for a lane sending large packets on this machine.
    pub(super) sctp_mtu: Option<u32>,
    pub(super) data: Arc<dyn DataChannel>,
    pub(super) tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Lane {
    /// The SCTP packet size this lane was built with (`None`: webrtc's).
    pub fn sctp_mtu(&self) -> Option<u32> {
        self.sctp_mtu
    }

    /// Closes the connection. The transfer ends on the main connection, so
    /// nothing is left to drain here.
    pub async fn close(self) {
        for task in &self.tasks {
            task.abort();
        }
        let _ = self.pc.close().await;
    }
}

/// An open connection: send on the two channels, receive [`Incoming`].
pub struct Link {
    pub(super) pc: Arc<dyn PeerConnection>,
    pub(super) control: Arc<dyn DataChannel>,
    pub(super) data: Arc<dyn DataChannel>,
    pub(super) incoming: mpsc::UnboundedReceiver<Incoming>,
    /// For lanes' readers: their messages join the main stream.
    pub(super) tx: Inbox,
    pub(super) early: VecDeque<Incoming>,
    pub(super) tasks: Vec<tokio::task::JoinHandle<()>>,
    pub(super) lanes: Vec<Lane>,
    pub(super) config: TransportConfig,
    /// The largest UDP datagram this side receives whole (0: unknown).
    pub(super) max_datagram: u32,
}

/// What to wait for before closing a [`Link`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Everything queued on the control and main data channels (up to 2 s):
    /// the transfer ended well.
    All,
    /// Only what is queued on the control channel, a last cancel (up to
    /// 5 s): the transfer failed.
    Control,
    /// Nothing: the peer is gone.
    Nothing,
}

/// A handle for writing to the data channel from another task.
#[derive(Clone)]
pub struct DataSender(Arc<dyn DataChannel>);

impl DataSender {
    /// Waits while the channel's send buffer is full.
    pub async fn send(&self, msg: BytesMut) -> Result<()> {
        self.0
            .send(msg)
            .await
            .map_err(|e| anyhow!("sending to the peer failed: {e}"))
    }
}

impl Link {
    /// The next message from the peer, from any of its channels (control,
    /// the main data channel, the lanes added), in the order the readers
    /// queued them; taking it frees its room in the inbox. When the
    /// connection is gone, [`Incoming::Lost`] says so (after the messages
    /// that came before it). Cancel-safe (for `select!`).
    pub async fn recv(&mut self) -> Incoming {
        let msg = match self.early.pop_front() {
            Some(msg) => msg,
            None => self
                .incoming
                .recv()
                .await
                .unwrap_or_else(|| Incoming::Lost("the connection closed".into())),
        };
        self.tx.taken(&msg);
        msg
    }

    /// Sends one text message (encoded JSON) on the `control` channel.
    pub async fn send_control(&self, text: &str) -> Result<()> {
        self.control
            .send_text(text)
            .await
            .map_err(|e| anyhow!("sending to the peer failed: {e}"))
    }

    /// A handle for writing to the main connection's `data` channel.
    pub fn data_sender(&self) -> DataSender {
        DataSender(self.data.clone())
    }

    /// The configuration this link was made with, for its lanes.
    pub fn config(&self) -> &TransportConfig {
        &self.config
    }

    /// Where a lane's messages go: see [`Transport::open_lane`].
    pub fn incoming_sender(&self) -> Inbox {
        self.tx.clone()
    }

    /// Keeps an open lane with this link (closed with it) and returns a
    /// handle for writing to the lane's data channel.
    pub fn add_lane(&mut self, lane: Lane) -> DataSender {
        let sender = DataSender(lane.data.clone());
        self.lanes.push(lane);
        sender
    }

    /// The largest UDP datagram this side's sockets receive whole, for the
    /// hello (0 if unknown).
    pub fn max_datagram(&self) -> u32 {
        self.max_datagram
    }

    /// The selected candidate pair's local and remote candidates.
    async fn selected_pair(&self) -> Option<[RTCIceCandidate; 2]> {
        let sctp = self.pc.sctp().await?;
        let ice = sctp.transport().ice_transport();
        let pair = ice.get_selected_candidate_pair().await.ok()??;
        tracing::debug!(%pair, "selected candidate pair");
        Some([pair.local().clone(), pair.remote().clone()])
    }

    /// Whether the peer's end of the selected pair is an address of this
    /// machine. Packets to it never cross a network link, so no link's MTU
    /// bounds them. (The local end says little: a socket bound to 0.0.0.0
    /// reports the LAN address while it talks to 127.0.0.1.)
    pub async fn same_host(&self) -> bool {
        let Some([local, remote]) = self.selected_pair().await else {
            return false;
        };
        // A TURN server on this machine still relays: its limits apply.
        if [local.typ, remote.typ].contains(&RTCIceCandidateType::Relay) {
            return false;
        }
        remote
            .address
            .parse::<std::net::IpAddr>()
            .is_ok_and(is_this_machine)
    }

    /// The kind of network path of the selected candidate pair, judged from
    /// both of its ends: a relay at either end makes it `Relay`; a server-
    /// reflexive (NAT-mapped) address, or a peer-reflexive one that is public,
    /// makes it `Srflx`; otherwise `Direct`.
    pub async fn path(&self) -> PathKind {
        let Some(pair) = self.selected_pair().await else {
            return PathKind::Unknown;
        };
        let kinds = pair.map(|c| candidate_kind(c.typ, Some(&c.address)));
        if kinds.contains(&PathKind::Relay) {
            PathKind::Relay
        } else if kinds.contains(&PathKind::Srflx) {
            PathKind::Srflx
        } else if kinds.contains(&PathKind::Unknown) {
            PathKind::Unknown
        } else {
            PathKind::Direct
        }
    }

    /// Close the connection. `Drain::All` lets queued data reach the peer
    /// (for up to 2 s) and suits a transfer that ended well; `Drain::Control`
    /// delivers only a last control message (a cancel) and suits one that
    /// failed; `Drain::Nothing` suits a peer that is already gone.
    ///
    /// The cancel gets up to 5 s: SCTP's retransmission timer starts at 1 s
    /// and doubles while the peer doesn't answer, so after a peer that was
    /// busy or suspended for a moment, the cancel (which carries the reason
    /// the peer shows its user) may go out only a second or two later. It
    /// had 0.5 s, and such a receiver said "lost the sender" instead.
    pub async fn close(self, drain: Drain) {
        let grace = match drain {
            Drain::All => Duration::from_secs(2),
            Drain::Control => Duration::from_secs(5),
            Drain::Nothing => Duration::ZERO,
        };
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            let mut outstanding = self.control.outstanding_bytes().await.unwrap_or(0);
            if drain == Drain::All {
                outstanding += self.data.outstanding_bytes().await.unwrap_or(0);
            }
            if outstanding == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for lane in self.lanes {
            lane.close().await;
        }
        let _ = self.pc.close().await;
        for task in self.tasks {
            task.abort();
        }
    }
}

/// What one end of a candidate pair says about the path.
fn candidate_kind(kind: RTCIceCandidateType, address: Option<&str>) -> PathKind {
    match kind {
        RTCIceCandidateType::Relay => PathKind::Relay,
        RTCIceCandidateType::Srflx => PathKind::Srflx,
        // Learned from the peer's checks: through a NAT if it came from a
        // public address, else the peer's own (perhaps mDNS-hidden) LAN address.
        RTCIceCandidateType::Prflx => {
            match address.and_then(|a| a.parse::<std::net::IpAddr>().ok()) {
                Some(ip) if !is_local_address(ip) => PathKind::Srflx,
                _ => PathKind::Direct,
            }
        }
        RTCIceCandidateType::Host => PathKind::Direct,
        _ => PathKind::Unknown,
    }
}

/// Whether `ip` is one of this machine's own addresses: only those can be
/// bound.
fn is_this_machine(ip: std::net::IpAddr) -> bool {
    if ip.is_unspecified() || ip.is_multicast() {
        return false;
    }
    ip.is_loopback() || std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// Loopback, private (RFC 1918, fc00::/7), link-local or shared (100.64/10) addresses.
fn is_local_address(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_kinds() {
        use RTCIceCandidateType as T;
        assert_eq!(candidate_kind(T::Host, Some("10.0.0.2")), PathKind::Direct);
        assert_eq!(
            candidate_kind(T::Srflx, Some("203.0.113.11")),
            PathKind::Srflx
        );
        assert_eq!(
            candidate_kind(T::Relay, Some("203.0.113.2")),
            PathKind::Relay
        );
        assert_eq!(
            candidate_kind(T::Prflx, Some("203.0.113.12")),
            PathKind::Srflx
        );
        assert_eq!(
            candidate_kind(T::Prflx, Some("192.168.1.20")),
            PathKind::Direct
        );
        assert_eq!(
            candidate_kind(T::Prflx, Some("100.72.1.1")),
            PathKind::Direct
        );
        assert_eq!(candidate_kind(T::Prflx, Some("fd00::1")), PathKind::Direct);
        assert_eq!(
            candidate_kind(T::Prflx, Some("2001:db8::1")),
            PathKind::Srflx
        );
        assert_eq!(candidate_kind(T::Prflx, None), PathKind::Direct);
    }

    #[test]
    fn this_machines_addresses() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(is_this_machine(ip("127.0.0.1")));
        assert!(is_this_machine(ip("127.3.2.1")));
        assert!(is_this_machine(ip("::1")));
        // TEST-NET-2 is nobody's address, and the wildcards are not addresses.
        assert!(!is_this_machine(ip("198.51.100.7")));
        assert!(!is_this_machine(ip("0.0.0.0")));
        assert!(!is_this_machine(ip("::")));
        assert!(!is_this_machine(ip("224.0.0.251")));
        // Whatever address the machine reaches the world from is its own.
        let probe = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        if probe.connect("198.51.100.7:9").is_ok() {
            let own = probe.local_addr().unwrap().ip();
            assert!(own.is_unspecified() || is_this_machine(own), "{own}");
        }
    }
}
