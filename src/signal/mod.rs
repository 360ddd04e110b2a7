//! Signaling: how two peers find each other and exchange WebRTC offers,
//! answers and candidates through a rendezvous server that cannot read them.
//!
//! Owns the ticket format, the sealed message vocabulary shared with the
//! server, and the client side of the WebSocket. Knows nothing of WebRTC
//! sessions or files: `transfer` drives it, `server` speaks its frames.

mod client;
pub mod code;
mod message;
pub mod pake;
mod ticket;

pub use client::{SignalClient, CONNECT_TIMEOUT, MAX_INCOMING_BYTES};
pub use message::*;
pub use ticket::*;
