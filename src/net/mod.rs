//! The network under a transfer: WebRTC peer connections and their data
//! channels, extra connections ("lanes") for speed, and which local
//! addresses a peer can reach.
//!
//! The only code that touches webrtc. It knows nothing of files or the
//! transfer protocol's meaning: it moves messages, and `transfer` decides.

mod addrs;
pub mod lanes;
mod link;
mod runtime;
pub mod transport;

pub use addrs::{loopback_only, reachable_urls, NoNetwork};
pub use lanes::Lanes;
pub use link::{DataSender, Drain, Inbox, Incoming, Lane, Link, PathKind, INBOX_BYTES};
pub use transport::{Transport, TransportConfig};
