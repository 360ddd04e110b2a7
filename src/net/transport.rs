//! The only module that touches webrtc: one peer connection with a `control`
//! and a `data` channel, turned into a stream of [`Incoming`] messages, plus
//! optional extra connections ("lanes") that carry only a `data` channel.
//! Each peer connection is its own SCTP association, UDP socket and driver
//! thread, so lanes spread the transport's CPU work over more cores.
//!
//! ICE is "vanilla": each side waits for candidate gathering to finish and
//! sends one complete SDP, so signaling is exactly one offer and one answer.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use crate::signal::IceServer;
use anyhow::{anyhow, bail, Context as _, Result};
use rtc::ice::mdns::MulticastDnsMode;
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, RTCDataChannelInit};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCIceServer, RTCPeerConnectionState, RTCSessionDescription,
    SettingEngineBuilder,
};
use webrtc::runtime::TokioRuntime;

use super::link::{read_channel, ChannelKind, Inbox, Incoming, Lane, Link};
use super::runtime::{mdns_socket_opens, FerryRuntime};

/// Per-channel send buffer: `send` waits while this much is unacknowledged.
const SEND_BUFFER_LIMIT: usize = 1 << 20;
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);

/// How this side's peer connections (the main one and its lanes) are built.
#[derive(Debug, Clone, Default)]
pub struct TransportConfig {
    /// STUN and TURN servers for ICE: the user's, plus the rendezvous's
    /// once it has welcomed us.
    pub ice_servers: Vec<IceServer>,
    /// Extra data connections ("lanes") this side offers beside the main
    /// one, at most `proto::wire::MAX_LANES`.
    pub lanes: u32,
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
                    ChannelKind::Control
                } else {
                    ChannelKind::Data(0)
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
            ChannelKind::Data(lane),
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::net::{Drain, PathKind};
    use bytes::BytesMut;

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
