//! ferry: peer-to-peer file transfer over WebRTC data channels.
//!
//! The crate is a library plus the thin `ferry` binary. See `docs/ARCHITECTURE.md`.

pub mod files;
pub mod proto;
pub mod rendezvous;
pub mod signal;
pub mod ticket;
pub mod transport;
