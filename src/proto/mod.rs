//! The transfer protocol, sans I/O: no sockets, no tasks, no clock.
//!
//! [`Sender`] and [`Receiver`] are state machines. Drivers feed them what
//! arrived (control messages, data messages, finished reads) and carry out
//! the actions they return. Tests drive two of them against each other in
//! memory (see `tests` below).

pub mod hash;
pub mod manifest;
pub mod receiver;
pub mod sender;
pub mod wire;

pub use manifest::{Entry, EntryKind, Manifest, ManifestError};
pub use receiver::{Held, Receiver, ReceiverAction};
pub use sender::{DataItem, Purpose, ReadRequest, Sender, SenderAction};
pub use wire::{left_out_sentence, Capabilities, Control, LeftOut};

use bytes::{BufMut, BytesMut};

/// Why a transfer stopped, as seen by the protocol.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ProtoError {
    /// The peer's `hello` gave this `protocol` version, not
    /// [`wire::PROTOCOL_VERSION`].
    #[error("the peer speaks ferry protocol version {0}; this ferry speaks version 1 (upgrade the older side)")]
    Version(u32),
    /// The offer breaks a rule of docs/PROTOCOL.md §5.1; refused before
    /// anything is written.
    #[error("refused the offer: {0}")]
    Manifest(#[from] ManifestError),
    /// The peer sent `cancel`, with this reason.
    #[error("the peer cancelled: {0}")]
    PeerCancelled(String),
    /// This receiver declined the offer ([`Receiver::decline`]); the reason
    /// also goes to the sender in its `cancel`.
    #[error("the transfer was declined: {0}")]
    Declined(String),
    /// The peer broke the protocol: a malformed message, or one not
    /// expected at this point (docs/PROTOCOL.md §3, §4). Says what it did.
    #[error("protocol error from the peer: {0}")]
    Protocol(String),
    #[error("block {block} of {path:?} failed verification repeatedly; giving up")]
    /// A block failed verification more than [`receiver::MAX_BAD_BLOCKS`]
    /// times (receiver), or was asked for again more than
    /// [`sender::MAX_RESENDS`] times (sender).
    Verify {
        /// The file's path, as offered.
        path: String,
        /// Index of the block within the file.
        block: u64,
    },
    /// Every block of the file (its offered path) verified, but their merged
    /// root differs from the one in its file end.
    #[error("{0:?} does not match its BLAKE3 hash after all blocks verified; the sender is inconsistent")]
    RootMismatch(String),
    #[error("{path} changed while it was being sent ({what}); send it again once nothing is writing to it")]
    /// The sender found a source file changed while reading it (§6): it
    /// sends `cancel` rather than a file end for a mixed version.
    SourceChanged {
        /// The file's path, as offered.
        path: String,
        /// What changed, in words: "it is shorter than offered".
        what: String,
    },
    /// Something on this side, outside the protocol: a read or write that
    /// failed, an interruption, an internal error. The text is shown as is.
    #[error("{0}")]
    Local(String),
}

impl DataItem {
    /// What [`DataItem::messages`] cost in flow control: each message's
    /// length plus [`wire::MESSAGE_COST`].
    pub fn cost(&self) -> u64 {
        match self {
            DataItem::Block { data, .. } => {
                let chunks = data.len().div_ceil(wire::DATA_PAYLOAD) as u64;
                wire::BLOCK_HEADER_LEN as u64
                    + wire::MESSAGE_COST
                    + data.len() as u64
                    + chunks * (1 + wire::MESSAGE_COST)
            }
            DataItem::FileEnd { file, size, root } => {
                wire::encode_file_end(*file, *size, root).len() as u64 + wire::MESSAGE_COST
            }
        }
    }

    /// The data-channel messages for this item, in order, each at most
    /// [`wire::MAX_MESSAGE`] bytes.
    pub fn messages(&self) -> Vec<BytesMut> {
        match self {
            DataItem::Block {
                file,
                block,
                cv,
                data,
            } => {
                let mut out = Vec::with_capacity(2 + data.len() / wire::DATA_PAYLOAD);
                let len = data.len() as u32;
                out.push(BytesMut::from(
                    &wire::encode_block_header(*file, *block, len, cv)[..],
                ));
                for chunk in data.chunks(wire::DATA_PAYLOAD) {
                    let mut msg = BytesMut::with_capacity(1 + chunk.len());
                    msg.put_u8(wire::DATA_PREFIX);
                    msg.put_slice(chunk);
                    out.push(msg);
                }
                out
            }
            DataItem::FileEnd { file, size, root } => {
                vec![BytesMut::from(
                    &wire::encode_file_end(*file, *size, root)[..],
                )]
            }
        }
    }
}

#[cfg(test)]
mod tests;
