//! The only module that touches webrtc: one peer connection with a `control`
//! and a `data` channel, turned into a stream of [`Incoming`] messages, plus
//! optional extra connections ("lanes") that carry only a `data` channel.
//! Each peer connection is its own SCTP association, UDP socket and driver
//! thread, so lanes spread the transport's CPU work over more cores.
//!
//! ICE is "vanilla": each side waits for candidate gathering to finish and
//! sends one complete SDP, so signaling is exactly one offer and one answer.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::signal::IceServer;
use anyhow::{anyhow, bail, Context as _, Result};
use bytes::BytesMut;
use rtc::ice::mdns::MulticastDnsMode;
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidate, RTCIceCandidateType, RTCIceGatheringState, RTCIceServer,
    RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
};
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime,
    TokioRuntime,
};

/// UDP socket buffer asked for: the kernel default (~212 KiB) drops packets at
/// speed; the kernel caps this at net.core.rmem_max.
const UDP_BUFFER: usize = 4 << 20;
/// Per-channel send buffer: `send` waits while this much is unacknowledged.
const SEND_BUFFER_LIMIT: usize = 1 << 20;
/// Bytes queued from a link's channels to the session (each message counts
/// [`MESSAGE_COST`] more, so that a flood of empty messages is bounded too).
/// See [`Inbox`] for why bytes, not messages. It is also the flow-control
/// window each side offers in its hello, so a peer that obeys credits never
/// fills it.
pub const INBOX_BYTES: usize = 4 << 20;
const MESSAGE_COST: usize = crate::proto::wire::MESSAGE_COST as usize;
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Default)]
pub struct TransportConfig {
    pub ice_servers: Vec<IceServer>,
    /// Threads that drive this process's connections (at least 1). webrtc
    /// sizes its pool once, from the first connection built, so give every
    /// connection the same value: 1 + the lanes that may be opened, for
    /// each connection to have a core's worth of its own.
    pub driver_threads: usize,
    /// Largest SCTP packet this connection sends. `None` keeps webrtc's
    /// 1191 bytes, which fits any path (TURN over IPv6 included); larger
    /// packets are for paths that never leave the machine (see
    /// `lanes::sctp_mtu`).
    pub sctp_mtu: Option<u32>,
}

/// How the selected ICE candidate pair reaches the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// Host candidates on both sides (LAN or loopback).
    Direct,
    /// Through a NAT, via an address learned from STUN.
    Srflx,
    /// Through a TURN relay.
    Relay,
    Unknown,
}

impl PathKind {
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
    fn new() -> (Inbox, mpsc::UnboundedReceiver<Incoming>) {
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
    fn lost(&self, reason: String) {
        let _ = self.tx.send(Incoming::Lost(reason));
    }

    /// `msg` left the queue: its room is free again.
    fn taken(&self, msg: &Incoming) {
        self.room.add_permits(msg.cost());
    }
}

enum PcEvent {
    GatheringComplete,
    State(RTCPeerConnectionState),
    Channel(Arc<dyn DataChannel>),
}

struct Handler {
    events: mpsc::UnboundedSender<PcEvent>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.events.send(PcEvent::GatheringComplete);
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(%state, "peer connection state");
        let _ = self.events.send(PcEvent::State(state));
    }
    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        // Never await here: this runs on the connection's driver.
        let _ = self.events.send(PcEvent::Channel(channel));
    }
}

/// The tokio runtime, but every ICE socket gets large buffers.
#[derive(Debug)]
struct FerryRuntime {
    tokio: TokioRuntime,
    /// True until the channels are open; see [`SETUP_TICK`].
    setting_up: Arc<AtomicBool>,
    /// The largest datagram every socket of this connection receives whole.
    whole_datagram: Arc<AtomicUsize>,
}

/// The largest UDP datagram a socket reporting `gro` segments receives
/// whole. webrtc's driver reads into a buffer of about `gro × 1500` bytes
/// (at most 64 segments), as `AsyncUdpSocket::max_gro_segments` documents,
/// or a single-datagram buffer without GRO; 1500 is the safe figure then.
fn whole_datagram(gro: usize) -> usize {
    if gro > 1 {
        gro.min(64) * 1500
    } else {
        1500
    }
}

/// How often the connection's driver wakes while the handshakes run.
///
/// webrtc 0.21's driver sends what the core produced while handling a read
/// (the DTLS and SCTP replies, the data-channel OPEN) only on its next wake-up,
/// which is the next timer, often 200 ms away. Each of three handshake steps
/// paid that wait (0.62 s to the first byte on loopback). Capping the driver's
/// sleep during setup makes it flush within a few milliseconds; after setup the
/// traffic itself keeps it awake, and the cap is lifted.
const SETUP_TICK: Duration = Duration::from_millis(2);

impl Runtime for FerryRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.tokio.spawn(future)
    }
    fn spawn_reactor(
        &self,
        size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.tokio.spawn_reactor(size, future)
    }
    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let sock = socket2::SockRef::from(&socket);
        // Best effort: a smaller buffer is slower, not broken.
        let _ = sock.set_recv_buffer_size(UDP_BUFFER);
        let _ = sock.set_send_buffer_size(UDP_BUFFER);
        tracing::debug!(
            local = ?socket.local_addr().ok(),
            recv_buffer = sock.recv_buffer_size().unwrap_or(0),
            send_buffer = sock.send_buffer_size().unwrap_or(0),
            "ICE socket buffers granted"
        );
        let wrapped = self.tokio.wrap_udp_socket(socket)?;
        let whole = whole_datagram(wrapped.max_gro_segments());
        self.whole_datagram.fetch_min(whole, Ordering::Relaxed);
        tracing::debug!(
            gro = wrapped.max_gro_segments(),
            whole,
            "ICE socket receive offload"
        );
        Ok(wrapped)
    }
    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.tokio.wrap_tcp_listener(listener)
    }
    fn connect_tcp<'a>(
        &'a self,
        remote: std::net::SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.tokio.connect_tcp(remote)
    }
    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<std::net::SocketAddr>>> + Send + 'a>> {
        self.tokio.resolve_host(host)
    }
    fn now(&self) -> Instant {
        self.tokio.now()
    }
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        if self.setting_up.load(Ordering::Relaxed) {
            return self.tokio.sleep(duration.min(SETUP_TICK));
        }
        self.tokio.sleep(duration)
    }
    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.tokio.interval(period)
    }
    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.tokio.block_on(future)
    }
    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.tokio.yield_now()
    }
    fn name(&self) -> &'static str {
        "ferry-tokio"
    }
}

/// Whether webrtc's mDNS socket can be opened here, tried by opening the very
/// socket webrtc opens (and closing it again).
///
/// In its default mode webrtc opens it for every connection, to resolve the
/// `.local` host candidates browsers hide their addresses behind, and fails to
/// build the connection when it can't. Joining 224.0.0.251 without naming an
/// interface fails with ENODEV wherever no route covers the group: a host whose
/// only interface is loopback (`unshare -n`, many containers), or one whose LAN
/// has no default route. (webrtc offers no way to name the interface.)
fn mdns_socket_opens() -> io::Result<()> {
    rtc::mdns::MulticastSocket::new().into_std().map(drop)
}

/// A peer connection being negotiated.
pub struct Transport {
    pc: Arc<dyn PeerConnection>,
    events: mpsc::UnboundedReceiver<PcEvent>,
    channels: Vec<Arc<dyn DataChannel>>,
    /// A lane carries only the `data` channel.
    lane: bool,
    /// Kept so that lanes are set up like the main connection.
    config: TransportConfig,
    /// Shared with this connection's runtime: cleared once the channels open.
    setting_up: Arc<AtomicBool>,
    /// Filled in by the runtime as it wraps this connection's sockets.
    whole_datagram: Arc<AtomicUsize>,
}

impl Transport {
    /// The main connection: `control` and `data` channels.
    pub async fn new(config: &TransportConfig) -> Result<Transport> {
        Transport::build(config, false).await
    }

    /// An extra lane: a `data` channel only, opened with [`Transport::open_lane`].
    pub async fn new_lane(config: &TransportConfig) -> Result<Transport> {
        Transport::build(config, true).await
    }

    async fn build(config: &TransportConfig, lane: bool) -> Result<Transport> {
        let (tx, events) = mpsc::unbounded_channel();
        let ice_servers = config
            .ice_servers
            .iter()
            .map(|s| RTCIceServer {
                urls: s.urls.clone(),
                username: s.username.clone().unwrap_or_default(),
                credential: s.credential.clone().unwrap_or_default(),
            })
            .collect();
        let setting_up = Arc::new(AtomicBool::new(true));
        let whole_datagram = Arc::new(AtomicUsize::new(usize::MAX));
        let mut settings = SettingEngineBuilder::new();
        if let Some(mtu) = config.sctp_mtu {
            settings = settings.with_sctp_mtu(mtu);
        }
        if let Err(e) = mdns_socket_opens() {
            // Where the group can't be joined no mDNS answer could arrive
            // either; without this the connection could not be built at all.
            tracing::debug!("mDNS is off ({e}): `.local` candidates will not be resolved");
            settings = settings.with_multicast_dns_mode(MulticastDnsMode::Disabled);
        }
        let settings = settings
            // Loopback candidates let two processes on one machine connect
            // without a network; a remote peer simply never reaches them.
            .with_include_loopback_candidate(true)
            .with_ice_timeouts(
                Some(Duration::from_secs(4)),
                Some(Duration::from_secs(8)),
                Some(Duration::from_secs(1)),
            )
            // RFC 8445's pacing (Ta = 50 ms) instead of webrtc's 200 ms: the
            // controlling side nominates a working pair on the next check, so
            // this is time to connect. 28 attempts keep the 1.4 s per pair.
            .with_ice_connection_attempts(Some(Duration::from_millis(50)), Some(28))
            .build();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(
                RTCConfigurationBuilder::new()
                    .with_ice_servers(ice_servers)
                    .build(),
            )
            .with_setting_engine(settings)
            .with_handler(Arc::new(Handler { events: tx }))
            .with_runtime(Arc::new(FerryRuntime {
                tokio: TokioRuntime,
                setting_up: setting_up.clone(),
                whole_datagram: whole_datagram.clone(),
            }))
            .with_udp_addrs(vec!["0.0.0.0:0".to_string(), "127.0.0.1:0".to_string()])
            .with_dedicated_reactor_pool_size(config.driver_threads.max(1))
            .with_data_channel_send_buffer_limit(SEND_BUFFER_LIMIT)
            .build()
            .await
            .context("creating the WebRTC peer connection")?;
        Ok(Transport {
            pc: Arc::new(pc),
            events,
            channels: Vec::new(),
            lane,
            config: config.clone(),
            setting_up,
            whole_datagram,
        })
    }

    /// Offerer: create the channels and return the complete offer SDP.
    pub async fn create_offer(&mut self) -> Result<String> {
        let labels: &[&str] = if self.lane {
            &["data"]
        } else {
            &["control", "data"]
        };
        for &label in labels {
            let init = RTCDataChannelInit {
                ordered: true,
                ..Default::default()
            };
            let dc = self
                .pc
                .create_data_channel(label, Some(init))
                .await
                .context("creating a data channel")?;
            self.channels.push(dc);
        }
        let offer = self
            .pc
            .create_offer(None)
            .await
            .context("creating the offer")?;
        self.pc
            .set_local_description(offer)
            .await
            .context("applying the offer")?;
        self.gathered_sdp().await
    }

    /// Answerer: apply the peer's offer and return the complete answer SDP.
    pub async fn accept_offer(&mut self, sdp: String) -> Result<String> {
        let offer = RTCSessionDescription::offer(sdp)
            .map_err(|e| anyhow!("the peer's offer is invalid: {e}"))?;
        self.pc
            .set_remote_description(offer)
            .await
            .map_err(|e| anyhow!("the peer's offer was refused: {e}"))?;
        let answer = self
            .pc
            .create_answer(None)
            .await
            .context("creating the answer")?;
        self.pc
            .set_local_description(answer)
            .await
            .context("applying the answer")?;
        self.gathered_sdp().await
    }

    /// Offerer: apply the peer's answer.
    pub async fn accept_answer(&mut self, sdp: String) -> Result<()> {
        let answer = RTCSessionDescription::answer(sdp)
            .map_err(|e| anyhow!("the peer's answer is invalid: {e}"))?;
        self.pc
            .set_remote_description(answer)
            .await
            .map_err(|e| anyhow!("the peer's answer was refused: {e}"))?;
        Ok(())
    }

    async fn gathered_sdp(&mut self) -> Result<String> {
        let deadline = tokio::time::Instant::now() + GATHER_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(PcEvent::GatheringComplete)) | Err(_) => break,
                Ok(Some(PcEvent::Channel(dc))) => self.channels.push(dc),
                Ok(Some(PcEvent::State(_))) => {}
                Ok(None) => bail!("the peer connection stopped while gathering candidates"),
            }
        }
        let desc = self
            .pc
            .local_description()
            .await
            .ok_or_else(|| anyhow!("no local description"))?;
        Ok(desc.sdp)
    }

    /// Wait until both channels are open, then hand over a [`Link`].
    pub async fn open(mut self, timeout: Duration) -> Result<Link> {
        let (tx, incoming) = Inbox::new();
        let mut readers = Vec::new();
        let mut spawned = 0;
        let mut control = None;
        let mut data = None;
        let mut opened = futures::stream::FuturesUnordered::new();
        let mut open_count = 0;
        let mut early = VecDeque::new();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut incoming = incoming;
        while open_count < 2 {
            // Start readers for channels we know of.
            while spawned < self.channels.len() {
                let dc = self.channels[spawned].clone();
                spawned += 1;
                let label = dc.label().await.unwrap_or_default();
                let is_control = match label.as_str() {
                    "control" => true,
                    "data" => false,
                    other => {
                        tracing::warn!(label = other, "ignoring an unexpected data channel");
                        continue;
                    }
                };
                if is_control {
                    control = Some(dc.clone())
                } else {
                    data = Some(dc.clone())
                }
                let (open_tx, open_rx) = tokio::sync::oneshot::channel();
                opened.push(open_rx);
                let kind = if is_control {
                    Kind::Control
                } else {
                    Kind::Data(0)
                };
                readers.push(tokio::spawn(read_channel(dc, kind, tx.clone(), open_tx)));
            }
            tokio::select! {
                event = self.events.recv() => match event {
                    Some(PcEvent::Channel(dc)) => self.channels.push(dc),
                    Some(PcEvent::State(RTCPeerConnectionState::Failed)) =>
                        bail!("no network path to the peer: ICE failed (behind strict NATs, a TURN relay is needed: --turn)"),
                    Some(_) => {}
                    None => bail!("the peer connection stopped"),
                },
                Some(_) = futures::StreamExt::next(&mut opened) => open_count += 1,
                msg = incoming.recv() => match msg {
                    Some(Incoming::Lost(reason)) => bail!("connection lost while opening: {reason}"),
                    Some(other) => early.push_back(other),
                    None => bail!("the data channels closed"),
                },
                _ = tokio::time::sleep_until(deadline) => bail!(
                    "could not connect to the peer within {}s: no network path found (a TURN relay may be needed: --turn)",
                    timeout.as_secs()
                ),
            }
        }
        self.setting_up.store(false, Ordering::Relaxed);
        let (Some(control), Some(data)) = (control, data) else {
            bail!("the peer did not open both channels")
        };
        // Connection-state changes after this point end the link.
        readers.push(watch_state(self.events, tx.clone()));
        let max_datagram = u32::try_from(self.whole_datagram.load(Ordering::Relaxed)).unwrap_or(0);
        Ok(Link {
            pc: self.pc,
            control,
            data,
            incoming,
            tx,
            early,
            tasks: readers,
            lanes: Vec::new(),
            config: self.config,
            max_datagram,
        })
    }

    /// Lane `lane`: wait until its `data` channel is open; its messages then
    /// arrive as `Incoming::Data(lane, _)` on `tx` (a [`Link::incoming_sender`]),
    /// and losing it after that is reported there as `Incoming::Lost`.
    pub async fn open_lane(mut self, timeout: Duration, lane: u32, tx: Inbox) -> Result<Lane> {
        let deadline = tokio::time::Instant::now() + timeout;
        let wait = |what: &'static str| anyhow!("lane {lane}: {what}");
        // The offerer made the channel; the answerer learns of it from an event.
        let data = loop {
            if let Some(dc) = self.channels.first() {
                break dc.clone();
            }
            tokio::select! {
                event = self.events.recv() => match event {
                    Some(PcEvent::Channel(dc)) => self.channels.push(dc),
                    Some(PcEvent::State(RTCPeerConnectionState::Failed)) => return Err(wait("ICE failed")),
                    Some(_) => {}
                    None => return Err(wait("the connection stopped")),
                },
                _ = tokio::time::sleep_until(deadline) => return Err(wait("timed out waiting for its channel")),
            }
        };
        let (open_tx, open_rx) = tokio::sync::oneshot::channel();
        let reader = tokio::spawn(read_channel(
            data.clone(),
            Kind::Data(lane),
            tx.clone(),
            open_tx,
        ));
        let opened = async {
            tokio::pin!(open_rx);
            loop {
                tokio::select! {
                    opened = &mut open_rx => return opened.map_err(|_| wait("its channel closed")),
                    event = self.events.recv() => match event {
                        Some(PcEvent::State(RTCPeerConnectionState::Failed)) => return Err(wait("ICE failed")),
                        Some(_) => {}
                        None => return Err(wait("the connection stopped")),
                    },
                    _ = tokio::time::sleep_until(deadline) => return Err(wait("timed out opening")),
                }
            }
        };
        let opened = opened.await;
        self.setting_up.store(false, Ordering::Relaxed);
        if let Err(e) = opened {
            reader.abort();
            let _ = self.pc.close().await;
            return Err(e);
        }
        let watcher = watch_state(self.events, tx);
        Ok(Lane {
            pc: self.pc,
            sctp_mtu: self.config.sctp_mtu,
            data,
            tasks: vec![reader, watcher],
        })
    }
}

/// Reports the connection's failure or close as `Incoming::Lost`.
fn watch_state(
    mut events: mpsc::UnboundedReceiver<PcEvent>,
    tx: Inbox,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let PcEvent::State(
                state @ (RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed),
            ) = event
            {
                tx.lost(format!("the connection to the peer was lost ({state})"));
                break;
            }
        }
    })
}

/// Which channel a reader serves.
#[derive(Clone, Copy)]
enum Kind {
    Control,
    Data(u32),
}

async fn read_channel(
    dc: Arc<dyn DataChannel>,
    kind: Kind,
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
            (DataChannelEvent::OnMessage(m), Kind::Control) => Incoming::Control(m.data),
            (DataChannelEvent::OnMessage(m), Kind::Data(lane)) => Incoming::Data(lane, m.data),
            (DataChannelEvent::OnClose, _) => break,
            _ => continue,
        };
        if tx.put(msg).await.is_err() {
            return;
        }
    }
    // A lane that never opened is reported by `open_lane`, not here.
    if opened.is_none() || matches!(kind, Kind::Control | Kind::Data(0)) {
        tx.lost("the peer closed the connection".into());
    }
}

/// An extra open connection carrying one more `data` channel.
pub struct Lane {
    pc: Arc<dyn PeerConnection>,
    /// As configured: `Some` for a lane sending large packets on this machine.
    sctp_mtu: Option<u32>,
    data: Arc<dyn DataChannel>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
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
    pc: Arc<dyn PeerConnection>,
    control: Arc<dyn DataChannel>,
    data: Arc<dyn DataChannel>,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    /// For lanes' readers: their messages join the main stream.
    tx: Inbox,
    early: VecDeque<Incoming>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    lanes: Vec<Lane>,
    config: TransportConfig,
    /// The largest UDP datagram this side receives whole (0: unknown).
    max_datagram: u32,
}

/// What to wait for before closing a [`Link`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    All,
    Control,
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

    pub async fn send_control(&self, text: &str) -> Result<()> {
        self.control
            .send_text(text)
            .await
            .map_err(|e| anyhow!("sending to the peer failed: {e}"))
    }

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
pub(crate) mod tests {
    use super::*;

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

    #[test]
    fn whole_datagrams_follow_the_drivers_buffers() {
        assert_eq!(whole_datagram(1), 1500);
        assert_eq!(whole_datagram(64), 96_000);
        assert_eq!(whole_datagram(200), 96_000);
    }

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

    /// Two main connections in one process, open to each other.
    pub(crate) async fn linked_pair() -> (Link, Link) {
        let config = TransportConfig {
            driver_threads: 2,
            ..TransportConfig::default()
        };
        let mut offerer = Transport::new(&config).await.unwrap();
        let mut answerer = Transport::new(&config).await.unwrap();
        let offer = offerer.create_offer().await.unwrap();
        let answer = answerer.accept_offer(offer).await.unwrap();
        offerer.accept_answer(answer).await.unwrap();
        let (a, b) = tokio::join!(
            offerer.open(Duration::from_secs(10)),
            answerer.open(Duration::from_secs(10))
        );
        (a.unwrap(), b.unwrap())
    }

    /// Two peer connections in one process over loopback: both channels open
    /// and carry messages both ways, in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_peers_exchange_messages() {
        let (a, mut b) = linked_pair().await;
        a.send_control("hello").await.unwrap();
        let sender = a.data_sender();
        for i in 0..100u8 {
            sender
                .send(BytesMut::from(&vec![i; 60_000][..]))
                .await
                .unwrap();
        }
        // Each channel is in order; the two channels are not ordered together.
        let (mut control, mut next) = (0, 0u8);
        while control == 0 || next < 100 {
            match b.recv().await {
                Incoming::Control(m) => {
                    assert_eq!(&m[..], b"hello");
                    control += 1;
                }
                Incoming::Data(0, m) => {
                    assert!(m.len() == 60_000 && m.iter().all(|&x| x == next));
                    next += 1;
                }
                other => panic!("expected a message, got {other:?}"),
            }
        }
        assert_eq!(control, 1);
        let path = a.path().await;
        assert_eq!(path, PathKind::Direct);
        a.close(Drain::All).await;
        // The other side notices.
        loop {
            if let Incoming::Lost(_) = b.recv().await {
                break;
            }
        }
    }
}
