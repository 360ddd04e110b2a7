//! ferry: peer-to-peer file transfer over WebRTC data channels.
//!
//! The crate is a library plus the thin `ferry` binary (docs/ARCHITECTURE.md).
//! Its folders follow the architecture:
//!
//! - [`proto`]: the transfer protocol as a sans-IO state machine (no I/O, no
//!   clock, no async); everything else drives it.
//! - [`transfer`]: `ferry send` and `ferry receive`: the session that meets
//!   the peer and the drivers that connect the core to the network, the
//!   disk and the progress display.
//! - [`net`]: WebRTC peer connections, lanes and local addresses; the only
//!   code that touches webrtc.
//! - [`signal`]: tickets, the sealed signaling messages and the rendezvous
//!   client.
//! - [`files`]: the file system: listing and reading sources, safe paths
//!   under `--out`, partial files, placement and the resume log.
//! - [`server`]: `ferry serve` and the in-process rendezvous: rooms, limits,
//!   STUN, TURN credentials and the web page.
//! - [`cli`], [`logging`], [`error`]: arguments, log output, and how errors
//!   reach a person.

#![warn(missing_docs)]

pub mod cli;
pub mod error;
pub mod files;
pub mod logging;
pub mod net;
pub mod proto;
pub mod server;
pub mod signal;
pub mod transfer;

pub use error::{error_line, exit_code};
