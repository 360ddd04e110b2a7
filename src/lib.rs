//! ferry: peer-to-peer file transfer over WebRTC data channels.
//!
//! The crate is a library plus the thin `ferry` binary. See `docs/ARCHITECTURE.md`.

pub mod cli;
pub mod files;
pub mod lanes;
pub mod limits;
pub mod logging;
pub mod net;
pub mod progress;
pub mod proto;
pub mod receive;
pub mod rendezvous;
pub mod resume;
pub mod send;
pub mod serve;
pub mod session;
pub mod signal;
pub mod stun;
pub mod ticket;
pub mod transport;
pub mod turn;
pub mod web;

pub use session::{error_line, exit_code};
