//! The rendezvous WebSocket client: joins a room, relays sealed messages to
//! the peer, and reports the server's events. One task owns it; it knows
//! nothing of WebRTC or files.

use std::collections::VecDeque;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::message::*;
use super::Ticket;

/// How long one server URL gets to accept the connection and send `welcome`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest frame the client accepts from the server.
pub const MAX_INCOMING_BYTES: usize = 256 * 1024;

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
            ServerMessage::Error { code, message } => {
                Err(SignalError::from_server(&code, &message))
            }
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
            Err(JoinError::Final(SignalError::from_server(&code, &message)))
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

    #[test]
    fn room_url_joins_cleanly() {
        assert_eq!(room_url("ws://a:1", "ab"), "ws://a:1/v1/rooms/ab");
        assert_eq!(room_url("ws://a:1/", "ab"), "ws://a:1/v1/rooms/ab");
    }
}
