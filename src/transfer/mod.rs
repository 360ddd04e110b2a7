//! `ferry send` and `ferry receive`: each drives a [`crate::proto`] core,
//! feeding it what arrives from the peer and the disk and carrying out what
//! it asks. `session` meets the peer and opens the link; `progress` shows
//! the core's events to a person.
//!
//! Protocol decisions belong to the core, socket details to `net`, paths
//! and writes to `files`: the drivers here only connect them.

mod peer;
pub mod progress;
pub mod receive;
pub mod send;
pub mod session;
