//! The signaling vocabulary: the frames a client and the rendezvous server
//! exchange, and the sealed peer-to-peer messages inside them.
//!
//! Every SDP and ICE candidate crosses the rendezvous server sealed with
//! AES-256-GCM under a key derived from the ticket secret, so the server can
//! neither read nor alter them (docs/PROTOCOL.md §2). Pure data and crypto:
//! no sockets here, so the server and the client share it.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Serialize};

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
        /// The complete SDP, candidates included (ferry does not trickle).
        sdp: String,
        /// Random id chosen by the offerer and echoed in the answer, so an
        /// answer meant for an earlier peer in the same room is never applied.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
    },
    /// A trickled ICE candidate.
    Candidate {
        /// The candidate line; empty marks the end of candidates.
        candidate: String,
        /// The media stream identification it belongs to, if known.
        sdp_mid: Option<String>,
        /// The index of the media description it belongs to, if known.
        sdp_mline_index: Option<u16>,
    },
    /// The sender is giving up; `reason` is for humans.
    Bye {
        /// Why, for the peer's user; never parsed.
        reason: String,
    },
}

/// The WebRTC role a peer plays; also the `from` part of the AEAD associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Makes the SDP offer: the peer that joined the room second.
    Offerer,
    /// Answers the offer: the peer that was waiting in the room.
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

    /// The role of the peer at the other end: what its messages are
    /// opened with.
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
    /// URLs of the one server: `stun:`, `stuns:`, `turn:` or `turns:`.
    pub urls: Vec<String>,
    /// TURN user name; for `ferry serve`'s minted credentials, `EXPIRY:ferry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password for `username`.
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
    /// The client has a place in the room; sent at once after the upgrade.
    Welcome {
        /// Whether the client is the first or the second in the room.
        position: Position,
        /// STUN/TURN servers to use besides the client's own; may be empty.
        #[serde(default)]
        ice_servers: Vec<IceServer>,
    },
    /// To the peer already in the room: a second one arrived.
    PeerJoined,
    /// A message from the other peer, forwarded verbatim.
    Relay {
        /// The sealed message ([`seal`]).
        data: String,
    },
    /// The other peer disconnected; its place is free again.
    PeerLeft,
    /// A refusal; the server closes the connection after it.
    Error {
        /// One of [`codes`]; what a client acts on.
        code: String,
        /// Human-readable detail, not to be parsed.
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
    /// A message for the other peer. Dropped while the client is alone in
    /// the room.
    Relay {
        /// The sealed message ([`seal`]).
        data: String,
    },
}

/// Error codes of the server's `error` message.
pub mod codes {
    /// The room already has two peers: someone else used the ticket.
    pub const ROOM_FULL: &str = "room_full";
    /// A malformed room id, a non-text frame, invalid JSON, or a message
    /// other than `relay`.
    pub const BAD_REQUEST: &str = "bad_request";
    /// A frame larger than the server's limit.
    pub const TOO_LARGE: &str = "too_large";
    /// More relays on one connection than the server allows.
    pub const TOO_MANY_MESSAGES: &str = "too_many_messages";
    /// The room reached its maximum lifetime.
    pub const ROOM_EXPIRED: &str = "room_expired";
    /// The server has too many rooms open.
    pub const SERVER_BUSY: &str = "server_busy";
    /// The server is stopping.
    pub const SHUTTING_DOWN: &str = "shutting_down";
    /// The client's address is over a per-address limit; the message says
    /// which, and when to retry.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// Nothing, not even a pong, came from the client for too long.
    pub const IDLE_TIMEOUT: &str = "idle_timeout";
}

/// What can go wrong while signaling.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// No server of the ticket could be joined.
    #[error("could not reach the rendezvous server at {}: {reason} (is `ferry send` still running? check --server)", tried.join(", "))]
    Unreachable {
        /// The server URLs tried, in order.
        tried: Vec<String>,
        /// Why each one failed, joined with `; `.
        reason: String,
        /// Every server refused the connection: nothing listens there any
        /// more (for a ticket's built-in rendezvous: its sender has ended).
        refused: bool,
    },
    /// The server answered `room_full`.
    #[error(
        "the transfer room already has two peers: someone else used this ticket; ask for a new one"
    )]
    RoomFull,
    /// The server said `peer_left`.
    #[error("the other peer left the rendezvous room")]
    PeerLeft,
    /// A relayed message did not open: the server altered it, or the
    /// ticket is wrong.
    #[error("a signaling message failed authentication: the rendezvous server tampered with it, or the ticket is wrong")]
    Tampered,
    /// A sealed message already opened on this connection arrived again.
    #[error("a signaling message arrived a second time: the rendezvous server is replaying old messages; use another server")]
    Replayed,
    /// An `error` from the server other than `room_full`: `code: message`.
    #[error("the rendezvous server reported an error: {0}")]
    Server(String),
    /// The server or the peer sent something that breaks the protocol
    /// (an invalid frame, a second welcome, an authentic message ferry does
    /// not understand).
    #[error("signaling protocol error: {0}")]
    Protocol(String),
    /// The WebSocket to the server closed.
    #[error("the rendezvous server closed the connection")]
    Closed,
    /// The WebSocket to the server failed; the library's words.
    #[error("rendezvous connection failed: {0}")]
    WebSocket(String),
}

impl SignalError {
    /// The error for a server `error` frame with `code` and `message`.
    pub fn from_server(code: &str, message: &str) -> SignalError {
        if code == codes::ROOM_FULL {
            SignalError::RoomFull
        } else {
            SignalError::Server(format!("{code}: {message}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::Ticket;

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
        // Produced by Python's `cryptography` (see docs/PROTOCOL.md §2, "Test vector"):
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
            ServerMessage::Error { code, message } => SignalError::from_server(&code, &message),
            _ => SignalError::Closed,
        }
    }

    #[test]
    fn roles() {
        assert_eq!(Position::Second.role(), Role::Offerer);
        assert_eq!(Position::First.role(), Role::Answerer);
        assert_eq!(Role::Offerer.other(), Role::Answerer);
    }
}
