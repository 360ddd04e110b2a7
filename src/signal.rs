//! Sealed signaling messages and the rendezvous WebSocket client.
//!
//! Every SDP and ICE candidate crosses the rendezvous server sealed with
//! AES-256-GCM under a key derived from the ticket secret, so the server can
//! neither read nor alter them. See `docs/PROTOCOL-signaling.md`.

use std::collections::VecDeque;
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use data_encoding::BASE64URL_NOPAD;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::ticket::Ticket;

/// How long one server URL gets to accept the connection and send `welcome`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest frame the client accepts from the server.
pub const MAX_INCOMING_BYTES: usize = 256 * 1024;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A signaling message between the two peers. It travels sealed; the server
/// only ever sees the opaque `data` string.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SignalMessage {
    /// An SDP offer or answer.
    Description {
        /// `"offer"` or `"answer"`.
        sdp_type: String,
        sdp: String,
        /// Random id chosen by the offerer and echoed in the answer, so an
        /// answer meant for an earlier peer in the same room is never applied.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
    },
    /// A trickled ICE candidate.
    Candidate {
        candidate: String,
        sdp_mid: Option<String>,
        sdp_mline_index: Option<u16>,
    },
    /// The sender is giving up; `reason` is for humans.
    Bye { reason: String },
}

/// The WebRTC role a peer plays; also the `from` part of the AEAD associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Offerer,
    Answerer,
}

impl Role {
    /// The name used in associated data: `"offerer"` or `"answerer"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Offerer => "offerer",
            Role::Answerer => "answerer",
        }
    }

    pub fn other(self) -> Role {
        match self {
            Role::Offerer => Role::Answerer,
            Role::Answerer => Role::Offerer,
        }
    }
}

/// Associated data binding a sealed message to its room and its sender's role.
pub fn associated_data(room_id: &str, from: Role) -> String {
    format!("ferry/1|{room_id}|{}", from.as_str())
}

/// Seals `msg`: base64url-no-padding of `nonce || ciphertext || tag`.
pub fn seal(key: &[u8; 32], aad: &str, msg: &SignalMessage) -> String {
    let plaintext = match serde_json::to_vec(msg) {
        Ok(p) => p,
        // SignalMessage has only strings and integers; serializing it cannot fail.
        Err(_) => unreachable!("SignalMessage always serializes"),
    };
    let mut nonce = [0u8; NONCE_LEN];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
    let cipher = Aes256Gcm::new(key.into());
    let payload = Payload {
        msg: &plaintext,
        aad: aad.as_bytes(),
    };
    let ciphertext = match cipher.encrypt(Nonce::from_slice(&nonce), payload) {
        Ok(c) => c,
        // aes-gcm only fails to encrypt inputs larger than 64 GiB.
        Err(_) => unreachable!("signaling message too large to seal"),
    };
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    BASE64URL_NOPAD.encode(&out)
}

/// Opens a sealed message. Anything that fails authentication, including bad
/// base64 or a wrong length, is [`SignalError::Tampered`].
pub fn open(key: &[u8; 32], aad: &str, sealed: &str) -> Result<SignalMessage, SignalError> {
    let raw = BASE64URL_NOPAD
        .decode(sealed.as_bytes())
        .map_err(|_| SignalError::Tampered)?;
    if raw.len() < NONCE_LEN + TAG_LEN {
        return Err(SignalError::Tampered);
    }
    let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new(key.into());
    let plaintext = cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| SignalError::Tampered)?;
    // Authentic but unparseable means the peer speaks something else, not tampering.
    serde_json::from_slice(&plaintext).map_err(|e| {
        SignalError::Protocol(format!(
            "the peer sent a signaling message ferry does not understand: {e}"
        ))
    })
}

/// A STUN/TURN server as handed out by the rendezvous server; same shape as
/// the browser's `RTCIceServer`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Order of arrival in the room.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    /// Was waiting in the room: the WebRTC answerer.
    First,
    /// Joined a waiting peer: the WebRTC offerer.
    Second,
}

impl Position {
    /// The second peer offers, so an offer is only made once someone listens.
    pub fn role(self) -> Role {
        match self {
            Position::First => Role::Answerer,
            Position::Second => Role::Offerer,
        }
    }
}

/// Frames the rendezvous server sends.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Welcome {
        position: Position,
        #[serde(default)]
        ice_servers: Vec<IceServer>,
    },
    PeerJoined,
    Relay {
        data: String,
    },
    PeerLeft,
    Error {
        code: String,
        #[serde(default)]
        message: String,
    },
    /// A message type from a newer server; ignored for forward compatibility.
    #[serde(other)]
    Unknown,
}

/// Frames a client sends.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Relay { data: String },
}

/// Error codes of the server's `error` message.
pub mod codes {
    pub const ROOM_FULL: &str = "room_full";
    pub const BAD_REQUEST: &str = "bad_request";
    pub const TOO_LARGE: &str = "too_large";
    pub const TOO_MANY_MESSAGES: &str = "too_many_messages";
    pub const ROOM_EXPIRED: &str = "room_expired";
    pub const SERVER_BUSY: &str = "server_busy";
    pub const SHUTTING_DOWN: &str = "shutting_down";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const IDLE_TIMEOUT: &str = "idle_timeout";
}

/// What can go wrong while signaling.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("could not reach the rendezvous server at {}: {reason} (is `ferry send` still running? check --server)", tried.join(", "))]
    Unreachable {
        tried: Vec<String>,
        reason: String,
        /// Every server refused the connection: nothing listens there any
        /// more (for a ticket's built-in rendezvous: its sender has ended).
        refused: bool,
    },
    #[error(
        "the transfer room already has two peers: someone else used this ticket; ask for a new one"
    )]
    RoomFull,
    #[error("the other peer left the rendezvous room")]
    PeerLeft,
    #[error("a signaling message failed authentication: the rendezvous server tampered with it, or the ticket is wrong")]
    Tampered,
    #[error("a signaling message arrived a second time: the rendezvous server is replaying old messages; use another server")]
    Replayed,
    #[error("the rendezvous server reported an error: {0}")]
    Server(String),
    #[error("signaling protocol error: {0}")]
    Protocol(String),
    #[error("the rendezvous server closed the connection")]
    Closed,
    #[error("rendezvous connection failed: {0}")]
    WebSocket(String),
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Server messages a client holds while its owner is busy elsewhere; the
/// server sends a few dozen per transfer.
const INCOMING_QUEUE: usize = 64;

/// One peer's connection to its rendezvous room. Owned by a single task.
///
/// The WebSocket itself lives in a task of its own, so the server's pings
/// are answered even while the owner is busy (asking the user, re-hashing a
/// partial file); the two talk over channels.
pub struct SignalClient {
    outgoing: mpsc::Sender<Message>,
    incoming: mpsc::Receiver<Result<ServerMessage, SignalError>>,
    socket: tokio::task::JoinHandle<()>,
    position: Position,
    ice_servers: Vec<IceServer>,
    key: [u8; 32],
    room_id: String,
    /// Sealed messages that arrived while waiting for `peer_joined`.
    pending: VecDeque<String>,
    /// Every authentic message opened so far: the nonce is fresh each time,
    /// so one seen twice was replayed by the server. Only authentic ones
    /// are kept, and a peer sends a handful, so this stays small.
    opened: std::collections::HashSet<String>,
    peer_present: bool,
}

impl std::fmt::Debug for SignalClient {
    // Hand-written so the signaling key never ends up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalClient")
            .field("room_id", &self.room_id)
            .field("position", &self.position)
            .field("peer_present", &self.peer_present)
            .finish_non_exhaustive()
    }
}

impl SignalClient {
    /// Tries each server URL of the ticket in order (each gets
    /// [`CONNECT_TIMEOUT`] to connect and welcome us) and joins the ticket's
    /// room. Sequential on purpose: two URLs often reach the same server, and
    /// joining twice would fill the room with ourselves.
    pub async fn connect(ticket: &Ticket) -> Result<SignalClient, SignalError> {
        let room_id = ticket.room_id();
        let mut tried = Vec::new();
        let mut reasons = Vec::new();
        let mut refused = 0;
        for server in &ticket.servers {
            let url = room_url(server, &room_id);
            tried.push(server.clone());
            match tokio::time::timeout(CONNECT_TIMEOUT, join(&url)).await {
                Ok(Ok((ws, position, ice_servers))) => {
                    tracing::debug!(%server, ?position, "joined rendezvous room");
                    let (outgoing, to_socket) = mpsc::channel(INCOMING_QUEUE);
                    let (from_socket, incoming) = mpsc::channel(INCOMING_QUEUE);
                    let socket = tokio::spawn(socket_task(ws, to_socket, from_socket));
                    return Ok(SignalClient {
                        outgoing,
                        incoming,
                        socket,
                        position,
                        ice_servers,
                        key: ticket.signaling_key(),
                        room_id,
                        pending: VecDeque::new(),
                        opened: Default::default(),
                        peer_present: position == Position::Second,
                    });
                }
                // The server answered for this room: another URL would not help.
                Ok(Err(JoinError::Final(e))) => return Err(e),
                Ok(Err(JoinError::Refused)) => {
                    refused += 1;
                    reasons.push(format!("{server}: nothing is listening there"));
                }
                Ok(Err(JoinError::Retry(reason))) => {
                    tracing::debug!(%server, %reason, "rendezvous server unusable");
                    reasons.push(format!("{server}: {reason}"));
                }
                Err(_) => {
                    tracing::debug!(%server, "rendezvous connect timed out");
                    reasons.push(format!(
                        "{server}: timed out after {}s",
                        CONNECT_TIMEOUT.as_secs()
                    ));
                }
            }
        }
        Err(SignalError::Unreachable {
            refused: refused > 0 && refused == tried.len(),
            tried,
            reason: if reasons.is_empty() {
                "the ticket lists no server".to_owned()
            } else {
                reasons.join("; ")
            },
        })
    }

    /// Our order of arrival. After a peer leaves and a new one joins, the peer
    /// that stayed becomes `First` (it was there first for the new session).
    pub fn position(&self) -> Position {
        self.position
    }

    /// STUN/TURN servers offered by the rendezvous server.
    pub fn ice_servers(&self) -> &[IceServer] {
        &self.ice_servers
    }

    /// The room this client joined.
    pub fn room_id(&self) -> &str {
        &self.room_id
    }

    /// Whether a peer is in the room, as far as the server has told us.
    pub fn peer_present(&self) -> bool {
        self.peer_present
    }

    /// Applies every server message that has already arrived, without
    /// waiting: a peer that joined, sent its offer and left before we got to
    /// it must not be answered. Returns true if the last thing it learnt is
    /// that the peer left.
    fn catch_up(&mut self) -> Result<bool, SignalError> {
        let mut left = false;
        while let Ok(msg) = self.incoming.try_recv() {
            match msg? {
                ServerMessage::PeerJoined => {
                    self.on_peer_joined();
                    left = false;
                }
                ServerMessage::Relay { data } => {
                    self.peer_present = true;
                    self.pending.push_back(data);
                    left = false;
                }
                ServerMessage::PeerLeft => {
                    self.peer_present = false;
                    self.pending.clear();
                    left = true;
                }
                other => self.unexpected(other)?,
            }
        }
        Ok(left)
    }

    /// Returns once a peer is in the room: at once for `Second`, after
    /// `peer_joined` for `First`. Wrap it in a timeout of your own.
    pub async fn wait_for_peer(&mut self) -> Result<(), SignalError> {
        self.catch_up()?;
        while !self.peer_present {
            match self.next_server_message().await? {
                ServerMessage::PeerJoined => self.on_peer_joined(),
                ServerMessage::Relay { data } => {
                    // A relay can only come from a peer, so one is here.
                    self.peer_present = true;
                    self.pending.push_back(data);
                }
                ServerMessage::PeerLeft => {}
                other => self.unexpected(other)?,
            }
        }
        Ok(())
    }

    /// Returns once the peer in the room leaves, is replaced, or sends
    /// something (kept for [`recv`](Self::recv)): after a failed attempt,
    /// the next one starts from news rather than from stale state.
    pub async fn wait_for_change(&mut self) -> Result<(), SignalError> {
        self.catch_up()?;
        if !self.pending.is_empty() || !self.peer_present {
            return Ok(());
        }
        match self.next_server_message().await? {
            ServerMessage::PeerJoined => self.on_peer_joined(),
            ServerMessage::Relay { data } => self.pending.push_back(data),
            ServerMessage::PeerLeft => {
                self.peer_present = false;
                self.pending.clear();
            }
            other => self.unexpected(other)?,
        }
        Ok(())
    }

    /// Seals `msg` with our role's associated data and relays it to the peer.
    pub async fn send(&mut self, msg: &SignalMessage) -> Result<(), SignalError> {
        let aad = associated_data(&self.room_id, self.position.role());
        let frame = ClientMessage::Relay {
            data: seal(&self.key, &aad, msg),
        };
        let text = serde_json::to_string(&frame)
            .map_err(|e| SignalError::Protocol(format!("cannot encode frame: {e}")))?;
        self.outgoing
            .send(Message::text(text))
            .await
            .map_err(|_| SignalError::Closed)
    }

    /// The next message from the peer, opened with the peer's role. A message
    /// that fails authentication is [`SignalError::Tampered`]; the client stays
    /// usable afterwards, so the caller decides whether to give up.
    pub async fn recv(&mut self) -> Result<SignalMessage, SignalError> {
        if self.catch_up()? {
            return Err(SignalError::PeerLeft);
        }
        loop {
            if let Some(data) = self.pending.pop_front() {
                return self.open_from_peer(&data);
            }
            match self.next_server_message().await? {
                ServerMessage::Relay { data } => {
                    self.peer_present = true;
                    return self.open_from_peer(&data);
                }
                ServerMessage::PeerJoined => self.on_peer_joined(),
                ServerMessage::PeerLeft => {
                    self.peer_present = false;
                    self.pending.clear();
                    return Err(SignalError::PeerLeft);
                }
                other => self.unexpected(other)?,
            }
        }
    }

    /// Leaves the room politely.
    pub async fn close(self) {
        // The socket task closes the WebSocket once nothing more can be sent.
        drop(self.outgoing);
        let mut socket = self.socket;
        if tokio::time::timeout(Duration::from_secs(2), &mut socket)
            .await
            .is_err()
        {
            socket.abort();
        }
    }

    fn open_from_peer(&mut self, data: &str) -> Result<SignalMessage, SignalError> {
        let aad = associated_data(&self.room_id, self.position.role().other());
        let msg = open(&self.key, &aad, data)?;
        if !self.opened.insert(data.to_owned()) {
            return Err(SignalError::Replayed);
        }
        Ok(msg)
    }

    fn on_peer_joined(&mut self) {
        // Anything queued came from an earlier peer.
        self.pending.clear();
        // Whoever was waiting answers; this also covers a new peer replacing one that left.
        self.position = Position::First;
        self.peer_present = true;
    }

    fn unexpected(&self, msg: ServerMessage) -> Result<(), SignalError> {
        match msg {
            ServerMessage::Error { code, message } => Err(server_error(&code, &message)),
            ServerMessage::Welcome { .. } => Err(SignalError::Protocol(
                "the rendezvous server sent a second welcome".to_owned(),
            )),
            // Unknown types come from newer servers; stray peer events are harmless.
            _ => Ok(()),
        }
    }

    async fn next_server_message(&mut self) -> Result<ServerMessage, SignalError> {
        match self.incoming.recv().await {
            Some(msg) => msg,
            None => Err(SignalError::Closed),
        }
    }
}

/// Owns the WebSocket: writes what the client sends, reads and parses what
/// the server sends (answering pings on the way), and ends at the first error.
async fn socket_task(
    mut ws: Ws,
    mut outgoing: mpsc::Receiver<Message>,
    incoming: mpsc::Sender<Result<ServerMessage, SignalError>>,
) {
    loop {
        tokio::select! {
            msg = outgoing.recv() => match msg {
                Some(msg) => {
                    if let Err(e) = ws.send(msg).await {
                        let _ = incoming.send(Err(ws_error(e))).await;
                        return;
                    }
                }
                None => {
                    if let Err(e) = ws.close(None).await {
                        tracing::debug!(error = %e, "closing rendezvous connection");
                    }
                    // Drain until the server acknowledges, briefly, so the leave is clean.
                    let drain = async { while let Some(Ok(_)) = ws.next().await {} };
                    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
                    return;
                }
            },
            // Cancel-safe: it holds no partial frame between polls.
            msg = read_server_message(&mut ws) => {
                let end = msg.is_err();
                if incoming.send(msg).await.is_err() || end {
                    return;
                }
            }
        }
    }
}

fn room_url(server: &str, room_id: &str) -> String {
    format!("{}/v1/rooms/{room_id}", server.trim_end_matches('/'))
}

enum JoinError {
    /// Nothing listens at this address; try the next.
    Refused,
    /// This server is unusable; try the next.
    Retry(String),
    /// The server answered definitively for our room.
    Final(SignalError),
}

async fn join(url: &str) -> Result<(Ws, Position, Vec<IceServer>), JoinError> {
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_INCOMING_BYTES))
        .max_frame_size(Some(MAX_INCOMING_BYTES));
    let (mut ws, _response) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Io(io)
                if io.kind() == std::io::ErrorKind::ConnectionRefused =>
            {
                JoinError::Refused
            }
            other => JoinError::Retry(other.to_string()),
        })?;
    match read_server_message(&mut ws).await {
        Ok(ServerMessage::Welcome {
            position,
            ice_servers,
        }) => Ok((ws, position, ice_servers)),
        Ok(ServerMessage::Error { code, message }) => {
            Err(JoinError::Final(server_error(&code, &message)))
        }
        Ok(other) => Err(JoinError::Retry(format!(
            "expected a welcome, got {other:?}"
        ))),
        Err(e) => Err(JoinError::Retry(e.to_string())),
    }
}

async fn read_server_message(ws: &mut Ws) -> Result<ServerMessage, SignalError> {
    loop {
        let frame = match ws.next().await {
            None => return Err(SignalError::Closed),
            Some(Err(e)) => return Err(ws_error(e)),
            Some(Ok(frame)) => frame,
        };
        match frame {
            Message::Text(text) => {
                return serde_json::from_str(text.as_str()).map_err(|e| {
                    SignalError::Protocol(format!(
                        "the rendezvous server sent an invalid message: {e}"
                    ))
                })
            }
            Message::Close(_) => return Err(SignalError::Closed),
            // tungstenite answers pings itself.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            Message::Binary(_) => {
                return Err(SignalError::Protocol(
                    "the rendezvous server sent a binary frame".to_owned(),
                ))
            }
        }
    }
}

fn server_error(code: &str, message: &str) -> SignalError {
    if code == codes::ROOM_FULL {
        SignalError::RoomFull
    } else {
        SignalError::Server(format!("{code}: {message}"))
    }
}

fn ws_error(e: tokio_tungstenite::tungstenite::Error) -> SignalError {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::ConnectionClosed | E::AlreadyClosed => SignalError::Closed,
        other => SignalError::WebSocket(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [9; 32];

    fn samples() -> Vec<SignalMessage> {
        vec![
            SignalMessage::Description {
                sdp_type: "offer".into(),
                sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n".into(),
                session: None,
            },
            SignalMessage::Candidate {
                candidate: "candidate:1 1 udp 2130706431 192.0.2.2 5000 typ host".into(),
                sdp_mid: Some("0".into()),
                sdp_mline_index: Some(0),
            },
            SignalMessage::Candidate {
                candidate: String::new(),
                sdp_mid: None,
                sdp_mline_index: None,
            },
            SignalMessage::Bye {
                reason: "cancelled".into(),
            },
        ]
    }

    #[test]
    fn seal_open_round_trip() {
        let aad = associated_data("00112233445566778899aabbccddeeff", Role::Offerer);
        for msg in samples() {
            let sealed = seal(&KEY, &aad, &msg);
            assert!(sealed
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(open(&KEY, &aad, &sealed).ok(), Some(msg));
        }
    }

    #[test]
    fn opens_the_documented_test_vector() {
        // Produced by Python's `cryptography` (see docs/PROTOCOL-signaling.md):
        // secret 00..1f, nonce 00..0b, sender "offerer".
        let ticket = Ticket {
            servers: vec!["ws://x".into()],
            secret: std::array::from_fn(|i| i as u8),
        };
        let aad = associated_data(&ticket.room_id(), Role::Offerer);
        assert_eq!(aad, "ferry/1|2b0723a884ddb28ba9761423a3ff7b55|offerer");
        let sealed =
            "AAECAwQFBgcICQoLp3qWqoQIilx5HohAZ3q654g1sJxal2GNmvHJffDYfy6e6JDvNA7aOlE_rSJUeA";
        assert_eq!(
            open(&ticket.signaling_key(), &aad, sealed).ok(),
            Some(SignalMessage::Bye {
                reason: "test".into()
            })
        );
    }

    #[test]
    fn nonces_differ() {
        let msg = &samples()[0];
        assert_ne!(seal(&KEY, "a", msg), seal(&KEY, "a", msg));
    }

    #[test]
    fn json_shape_is_stable() {
        let v = serde_json::to_value(&samples()[1]).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"candidate","candidate":"candidate:1 1 udp 2130706431 192.0.2.2 5000 typ host","sdp_mid":"0","sdp_mline_index":0})
        );
        let v = serde_json::to_value(&samples()[0]).unwrap();
        assert_eq!(v["type"], "description");
        assert_eq!(v["sdp_type"], "offer");
    }

    #[test]
    fn wrong_key_aad_or_bytes_are_tampered() {
        let aad = associated_data("r", Role::Offerer);
        let msg = &samples()[0];
        let sealed = seal(&KEY, &aad, msg);
        assert!(matches!(
            open(&[8; 32], &aad, &sealed),
            Err(SignalError::Tampered)
        ));
        let reflected = associated_data("r", Role::Answerer);
        assert!(matches!(
            open(&KEY, &reflected, &sealed),
            Err(SignalError::Tampered)
        ));
        let other_room = associated_data("s", Role::Offerer);
        assert!(matches!(
            open(&KEY, &other_room, &sealed),
            Err(SignalError::Tampered)
        ));
        let mut raw = BASE64URL_NOPAD.decode(sealed.as_bytes()).unwrap();
        for i in [0, NONCE_LEN, raw.len() - 1] {
            raw[i] ^= 1;
            let flipped = BASE64URL_NOPAD.encode(&raw);
            assert!(matches!(
                open(&KEY, &aad, &flipped),
                Err(SignalError::Tampered)
            ));
            raw[i] ^= 1;
        }
        assert!(open(&KEY, &aad, &BASE64URL_NOPAD.encode(&raw)).is_ok());
        for junk in ["", "!!!", "AAAA", &sealed[..sealed.len() - 4]] {
            assert!(matches!(open(&KEY, &aad, junk), Err(SignalError::Tampered)));
        }
    }

    #[test]
    fn authentic_but_unknown_plaintext_is_protocol_error() {
        let aad = "x";
        let cipher = Aes256Gcm::new((&KEY).into());
        let nonce = [1u8; NONCE_LEN];
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: br#"{"type":"teleport"}"#,
                    aad: aad.as_bytes(),
                },
            )
            .unwrap();
        let sealed = BASE64URL_NOPAD.encode(&[&nonce[..], &ct].concat());
        assert!(matches!(
            open(&KEY, aad, &sealed),
            Err(SignalError::Protocol(_))
        ));
    }

    #[test]
    fn server_messages_parse() {
        let w: ServerMessage = serde_json::from_str(
            r#"{"type":"welcome","position":"second","ice_servers":[{"urls":["stun:192.0.2.2:3478"]}]}"#,
        )
        .unwrap();
        assert_eq!(
            w,
            ServerMessage::Welcome {
                position: Position::Second,
                ice_servers: vec![IceServer {
                    urls: vec!["stun:192.0.2.2:3478".into()],
                    username: None,
                    credential: None
                }]
            }
        );
        let e: ServerMessage =
            serde_json::from_str(r#"{"type":"error","code":"room_full","message":"m"}"#).unwrap();
        assert!(matches!(server_error_of(e), SignalError::RoomFull));
        let u: ServerMessage = serde_json::from_str(r#"{"type":"from_the_future","x":1}"#).unwrap();
        assert_eq!(u, ServerMessage::Unknown);
        assert_eq!(
            serde_json::to_string(&ServerMessage::PeerJoined).unwrap(),
            r#"{"type":"peer_joined"}"#
        );
    }

    fn server_error_of(m: ServerMessage) -> SignalError {
        match m {
            ServerMessage::Error { code, message } => server_error(&code, &message),
            _ => SignalError::Closed,
        }
    }

    #[test]
    fn room_url_joins_cleanly() {
        assert_eq!(room_url("ws://a:1", "ab"), "ws://a:1/v1/rooms/ab");
        assert_eq!(room_url("ws://a:1/", "ab"), "ws://a:1/v1/rooms/ab");
    }

    #[test]
    fn roles() {
        assert_eq!(Position::Second.role(), Role::Offerer);
        assert_eq!(Position::First.role(), Role::Answerer);
        assert_eq!(Role::Offerer.other(), Role::Answerer);
    }
}
