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
//!
//! Between two processes on one machine, lanes send large SCTP packets
//! ([`sctp_mtu`]): webrtc's 1191-byte packets cost a DTLS record, a checksum
//! and a system call each, and sixteen times fewer of them more than halved
//! the transport's CPU per byte here (docs/BENCHMARKS.md). The main
//! connection is built before its path is known, so it keeps small packets;
//! the sender moves the data to such a lane once it opens.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, Result};
use tokio::sync::{mpsc, oneshot};

use crate::net::{Lane, Link, Transport, TransportConfig};

/// Time for one lane to open, from its offer.
const LANE_TIMEOUT: Duration = Duration::from_secs(15);
/// SCTP packet size for lanes that stay on this machine: the most one DTLS
/// record carries (2^14 bytes) less a margin, so each packet is one record
/// in one datagram.
pub const SAME_HOST_SCTP_MTU: u32 = 16_000;
/// DTLS record header, explicit nonce and tag, with room to spare.
const DTLS_OVERHEAD: u32 = 64;

/// [`sctp_mtu`] for lanes beside `link`, to a peer whose hello gave
/// `peer_max_datagram`.
pub async fn sctp_mtu_for(link: &Link, peer_max_datagram: u32) -> Option<u32> {
    sctp_mtu(
        link.same_host().await,
        link.max_datagram(),
        peer_max_datagram,
    )
}

/// The SCTP packet size for a lane: [`SAME_HOST_SCTP_MTU`] when the main
/// connection's path stays on this machine and both sides receive datagrams
/// that large whole (each hello says how large); otherwise `None`, webrtc's
/// default, which fits any network path.
pub fn sctp_mtu(same_host: bool, own_max_datagram: u32, peer_max_datagram: u32) -> Option<u32> {
    let needed = SAME_HOST_SCTP_MTU + DTLS_OVERHEAD;
    (same_host && own_max_datagram >= needed && peer_max_datagram >= needed)
        .then_some(SAME_HOST_SCTP_MTU)
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
    /// then wait for [`Lanes::answered`]. `sctp_mtu`: see [`sctp_mtu`].
    pub fn offer(&mut self, link: &Link, lane: u32, sctp_mtu: Option<u32>) {
        if self.started.contains(&lane) {
            return;
        }
        let (answer_tx, answer_rx) = oneshot::channel();
        self.answers.insert(lane, answer_tx);
        self.start(link, lane, sctp_mtu, Role::Offer(answer_rx));
    }

    /// Sender: the receiver's answer for `lane` (the core checked that we
    /// offered it).
    pub fn answered(&mut self, lane: u32, sdp: String) {
        if let Some(tx) = self.answers.remove(&lane) {
            let _ = tx.send(sdp);
        }
    }

    /// Receiver: answer the sender's offer for `lane` (the core checked
    /// that both hellos agreed on it, and that it is the first offer).
    pub fn answer(&mut self, link: &Link, lane: u32, sctp_mtu: Option<u32>, offer: String) {
        if !self.started.contains(&lane) {
            self.start(link, lane, sctp_mtu, Role::Answer(offer));
        }
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
    fn start(&mut self, link: &Link, lane: u32, sctp_mtu: Option<u32>, role: Role) {
        self.started.push(lane);
        let config = TransportConfig {
            sctp_mtu,
            ..link.config().clone()
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_packets_only_on_this_machine_and_when_both_receive_them() {
        let big = 96_000;
        assert_eq!(sctp_mtu(true, big, big), Some(SAME_HOST_SCTP_MTU));
        // A network link's MTU bounds what crosses it.
        assert_eq!(sctp_mtu(false, big, big), None);
        // Either side reading into smaller buffers would lose datagrams,
        // and a peer that does not say (0) might.
        assert_eq!(sctp_mtu(true, 1500, big), None);
        assert_eq!(sctp_mtu(true, big, 0), None);
        assert_eq!(sctp_mtu(true, SAME_HOST_SCTP_MTU, big), None);
    }

    /// Both sides set up lane 1 as the sender and receiver do, over a path
    /// on this machine, and 16 MB cross it in large packets, intact and in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lane_on_this_machine_sends_large_packets() {
        let (mut a, mut b) = crate::net::transport::tests::linked_pair().await;
        assert!(a.same_host().await && b.same_host().await);
        let mtu = sctp_mtu(true, a.max_datagram(), b.max_datagram());
        if mtu.is_none() {
            // No UDP GRO on this kernel: large packets are rightly off.
            assert!(a.max_datagram() < SAME_HOST_SCTP_MTU);
            return;
        }
        let (mut offers, mut answers) = (Lanes::default(), Lanes::default());
        offers.offer(&a, 1, mtu);
        let LaneEvent::Sdp(1, offer) = offers.next().await else {
            panic!("expected the offer")
        };
        answers.answer(&b, 1, mtu, offer);
        let LaneEvent::Sdp(1, answer) = answers.next().await else {
            panic!("expected the answer")
        };
        offers.answered(1, answer);
        let (sent, got) = tokio::join!(offers.next(), answers.next());
        let (LaneEvent::Open(1, Ok(sent)), LaneEvent::Open(1, Ok(got))) = (sent, got) else {
            panic!("lane 1 did not open on both sides")
        };
        assert_eq!((sent.sctp_mtu(), got.sctp_mtu()), (mtu, mtu));
        let writer = a.add_lane(sent);
        b.add_lane(got);
        let send = async {
            for i in 0..250u32 {
                let msg = bytes::BytesMut::from(&vec![i as u8; 64_000][..]);
                writer.send(msg).await.unwrap();
            }
        };
        let receive = async {
            for i in 0..250u32 {
                match b.recv().await {
                    crate::net::Incoming::Data(1, m) => {
                        assert!(
                            m.len() == 64_000 && m.iter().all(|&x| x == i as u8),
                            "message {i}"
                        )
                    }
                    other => panic!("expected data on lane 1, got {other:?}"),
                }
            }
        };
        tokio::join!(send, receive);
    }
}
