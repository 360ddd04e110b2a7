//! What crosses the data channels: JSON control messages and binary data frames.
//!
//! See docs/PROTOCOL.md for the normative description.

use serde::{Deserialize, Serialize};

use super::hash::Cv;
use super::manifest::{Entry, Manifest};

/// Version of the transfer protocol spoken on the data channels.
pub const PROTOCOL_VERSION: u32 = 1;
/// Most extra data connections (lanes) either side offers or accepts.
pub const MAX_LANES: u32 = 8;
/// Largest message either side sends or accepts on a data channel.
pub const MAX_MESSAGE: usize = 65535;
/// Largest control message accepted. Senders keep manifest parts under
/// [`MANIFEST_PART`], well inside the 64 KiB SCTP message limit.
pub const MAX_CONTROL_MESSAGE: usize = MAX_MESSAGE;
/// What one data message costs in flow control beside its length, so that
/// many small messages count for what they cost to queue.
pub const MESSAGE_COST: u64 = 64;
/// Target size of one manifest part, in bytes of JSON.
pub const MANIFEST_PART: usize = 48 * 1024;

/// Control messages, sent as JSON text on the `control` channel.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Control {
    /// First message from both sides. `lanes`: how many extra data
    /// connections (lanes) this side can use; 0 (or absent) for none.
    Hello {
        /// Protocol version; a peer with another is refused.
        protocol: u32,
        /// The sending side's software and version (`ferry/0.1.0`); informative only.
        software: String,
        /// Extra data connections this side can use (§2, Lanes).
        #[serde(default, skip_serializing_if = "is_zero")]
        lanes: u32,
        /// Largest UDP datagram this side's connections receive whole, in
        /// bytes; 0 (or absent) if unknown. Lets lanes between two processes
        /// on one machine use large SCTP packets (see `lanes::sctp_mtu`).
        #[serde(default, skip_serializing_if = "is_zero")]
        max_datagram: u32,
        /// Flow control (see `credit`): as receiver, the most data this side
        /// lets the sender have unconsumed, in message cost; as sender, any
        /// non-zero value says it obeys credits. 0 (or absent): none.
        #[serde(default, skip_serializing_if = "is_zero")]
        window: u32,
    },
    /// Sender -> receiver: the SDP offer of lane `lane` (1..=lanes); receiver
    /// -> sender: its answer. Only after both hellos offered lanes.
    Lane {
        /// The lane, numbered from 1.
        lane: u32,
        /// A complete SDP (vanilla ICE): the offer or the answer.
        sdp: String,
    },
    /// Sender -> receiver: what is offered, after hello, in one or more parts
    /// so that every message stays small; `more` is true on all but the last.
    Manifest {
        /// Block size in bytes, the same in every part (§5.1).
        block_size: u32,
        /// This part's entries; the receiver joins all parts' in order.
        entries: Vec<Entry>,
        /// Another part follows.
        #[serde(default)]
        more: bool,
        /// On the last part: how many things of each kind the sender's walk
        /// left out ("symlink", "fifo", ...), so the receiver can say so.
        #[serde(default, skip_serializing_if = "LeftOut::is_empty")]
        left_out: LeftOut,
    },
    /// Receiver -> sender: start sending. `have` lists blocks the receiver
    /// already holds, verified, so the sender can skip them (resume).
    Accept {
        /// Per file, the blocks already held (may be empty).
        #[serde(default)]
        have: Vec<HaveFile>,
    },
    /// Receiver -> sender: send this block again (it failed verification).
    Resend {
        /// Index of the file in the manifest's entries.
        file: u32,
        /// Index of the block within the file.
        block: u64,
    },
    /// Receiver -> sender: every file is verified and in place.
    Done,
    /// Receiver -> sender, when both hellos gave a `window`: the cost of the
    /// data messages it has consumed so far (each message's length plus
    /// [`MESSAGE_COST`]). The sender keeps what it sent minus this below the
    /// receiver's window.
    Credit {
        /// Total cost consumed since the start, on all data channels.
        consumed: u64,
    },
    /// Either side: stop, with a reason a person can read.
    Cancel {
        /// Why, for the peer's user; never parsed.
        reason: String,
    },
}

/// What a hello says its side can do beyond the basics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Extra data connections (lanes) this side can use, at most [`MAX_LANES`].
    pub lanes: u32,
    /// Largest UDP datagram this side receives whole, in bytes; 0 if unknown.
    pub max_datagram: u32,
    /// Flow-control window in message cost (see [`Control::Credit`]); 0: none.
    pub window: u32,
}

impl Capabilities {
    /// Up to `lanes` lanes, nothing known about datagrams.
    pub fn lanes(lanes: u32) -> Capabilities {
        Capabilities {
            lanes,
            ..Capabilities::default()
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Blocks of one file a receiver already holds, with their chaining values
/// (hex), so the sender can check them against its source.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct HaveFile {
    /// Index of the file in the manifest's entries.
    pub file: u32,
    /// The blocks of it the receiver holds.
    pub blocks: Vec<HaveBlock>,
}

/// One block a receiver already holds, in `accept.have` (§6, Resume).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct HaveBlock {
    /// Index of the block within the file.
    pub block: u64,
    /// Its chaining value as re-verified on the receiver's disk, in hex.
    pub cv: String,
}

/// Counts by kind of what a sender left out of its offer. The kinds a
/// receiver knows are [`LEFT_OUT_KINDS`]; it counts any other as "other".
pub type LeftOut = std::collections::BTreeMap<String, u64>;

/// The kinds of [`LeftOut`], with how a person reads one and several.
pub const LEFT_OUT_KINDS: [(&str, &str, &str); 6] = [
    ("symlink", "symbolic link", "symbolic links"),
    (
        "broken symlink",
        "broken symbolic link",
        "broken symbolic links",
    ),
    (
        "folder already sent",
        "link to a folder already sent",
        "links to folders already sent",
    ),
    ("fifo", "FIFO", "FIFOs"),
    ("socket", "socket", "sockets"),
    ("device", "device file", "device files"),
];

/// "2 symbolic links and 1 FIFO": never a peer's own words, which could
/// hold anything; unknown kinds are summed as "other things".
pub fn left_out_sentence(left: &LeftOut) -> Option<String> {
    let mut parts = Vec::new();
    let mut other = 0u64;
    for (kind, n) in left {
        match LEFT_OUT_KINDS.iter().find(|(k, ..)| k == kind) {
            Some(_) => {}
            None => other = other.saturating_add(*n),
        }
    }
    for (kind, one, many) in LEFT_OUT_KINDS {
        if let Some(&n) = left.get(kind).filter(|n| **n > 0) {
            parts.push(format!("{n} {}", if n == 1 { one } else { many }));
        }
    }
    if other > 0 {
        parts.push(format!(
            "{other} other thing{}",
            if other == 1 { "" } else { "s" }
        ));
    }
    match parts.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        [rest @ .., last] => Some(format!("{} and {last}", rest.join(", "))),
    }
}

/// The manifest as control messages, each at most about [`MANIFEST_PART`]
/// bytes; the last carries `left_out`.
pub fn manifest_parts(manifest: &Manifest, left_out: &LeftOut) -> Vec<Control> {
    let mut parts = Vec::new();
    let mut entries = Vec::new();
    let mut size = 0;
    for entry in &manifest.entries {
        // A path is at most 4 KiB, so one entry always fits a part.
        let len = serde_json::to_string(entry).map_or(0, |s| s.len()) + 1;
        if size + len > MANIFEST_PART && !entries.is_empty() {
            let block_size = manifest.block_size;
            parts.push(Control::Manifest {
                block_size,
                entries: std::mem::take(&mut entries),
                more: true,
                left_out: LeftOut::new(),
            });
            size = 0;
        }
        size += len;
        entries.push(entry.clone());
    }
    parts.push(Control::Manifest {
        block_size: manifest.block_size,
        entries,
        more: false,
        left_out: left_out.clone(),
    });
    parts
}

impl Control {
    /// The message as JSON text for the `control` channel.
    pub fn encode(&self) -> String {
        // Serializing these plain types cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a `control` channel message; one larger than
    /// [`MAX_CONTROL_MESSAGE`], malformed or of an unknown type is an error.
    pub fn decode(text: &[u8]) -> Result<Control, FrameError> {
        if text.len() > MAX_CONTROL_MESSAGE {
            return Err(FrameError::TooLarge(text.len()));
        }
        serde_json::from_slice(text).map_err(|e| FrameError::BadControl(e.to_string()))
    }
}

const KIND_BLOCK: u8 = 1;
const KIND_DATA: u8 = 2;
const KIND_FILE_END: u8 = 3;
/// Bytes of a block header message.
pub const BLOCK_HEADER_LEN: usize = 52;
const FILE_END_LEN: usize = 48;
/// Payload bytes carried by one data message.
pub const DATA_PAYLOAD: usize = MAX_MESSAGE - 1;

/// A decoded binary message from the `data` channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A block starts; `len` bytes of [`Frame::Data`] follow on the same channel.
    Block {
        /// Index of the file in the manifest's entries.
        file: u32,
        /// Index of the block; it starts at byte `block * block_size`.
        block: u64,
        /// Bytes in the block: `block_size`, or fewer for a file's last block.
        len: u32,
        /// BLAKE3 chaining value of the block (§5.2).
        cv: Cv,
    },
    /// The next bytes of the current block.
    Data(&'a [u8]),
    /// All blocks of `file` have been sent; its size and BLAKE3 root.
    FileEnd {
        /// Index of the file in the manifest's entries.
        file: u32,
        /// Final size of the file in bytes.
        size: u64,
        /// BLAKE3 hash of the whole file, as `b3sum` prints it.
        root: [u8; 32],
    },
}

/// Why a message from a channel could not be decoded; a protocol error of
/// the peer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// A data message of zero bytes, with no kind byte.
    #[error("empty data message")]
    Empty,
    /// A message over [`MAX_MESSAGE`] (data) or [`MAX_CONTROL_MESSAGE`]
    /// (control) bytes; its length.
    #[error("a message of {0} bytes is larger than the {MAX_MESSAGE} bytes allowed")]
    TooLarge(usize),
    /// A data message whose first byte is not a kind of §4.
    #[error("unknown data message kind {0}")]
    UnknownKind(u8),
    /// A data message of a known kind but the wrong length or non-zero
    /// reserved bytes: its kind and length.
    #[error("malformed data message of kind {0} ({1} bytes)")]
    Malformed(u8, usize),
    /// A control message that is not valid JSON of a known type; the parser's words.
    #[error("malformed control message: {0}")]
    BadControl(String),
}

impl Frame<'_> {
    /// Parses one binary message of a `data` channel (docs/PROTOCOL.md §4).
    /// Checks only its own shape; whether it fits the transfer is the
    /// receiver's business.
    pub fn decode(msg: &[u8]) -> Result<Frame<'_>, FrameError> {
        if msg.len() > MAX_MESSAGE {
            return Err(FrameError::TooLarge(msg.len()));
        }
        let (&kind, rest) = msg.split_first().ok_or(FrameError::Empty)?;
        let malformed = FrameError::Malformed(kind, msg.len());
        match kind {
            KIND_BLOCK => {
                if msg.len() != BLOCK_HEADER_LEN || rest[..3] != [0, 0, 0] {
                    return Err(malformed);
                }
                Ok(Frame::Block {
                    file: u32::from_be_bytes(arr(&msg[4..8])),
                    block: u64::from_be_bytes(arr(&msg[8..16])),
                    len: u32::from_be_bytes(arr(&msg[16..20])),
                    cv: arr(&msg[20..52]),
                })
            }
            KIND_DATA => {
                if rest.is_empty() {
                    return Err(malformed);
                }
                Ok(Frame::Data(rest))
            }
            KIND_FILE_END => {
                if msg.len() != FILE_END_LEN || rest[..3] != [0, 0, 0] {
                    return Err(malformed);
                }
                Ok(Frame::FileEnd {
                    file: u32::from_be_bytes(arr(&msg[4..8])),
                    size: u64::from_be_bytes(arr(&msg[8..16])),
                    root: arr(&msg[16..48]),
                })
            }
            other => Err(FrameError::UnknownKind(other)),
        }
    }
}

fn arr<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(s);
    out
}

/// The 52-byte block header message (kind 1) for block `block` of `file`,
/// announcing `len` bytes with chaining value `cv`.
pub fn encode_block_header(file: u32, block: u64, len: u32, cv: &Cv) -> Vec<u8> {
    let mut out = Vec::with_capacity(BLOCK_HEADER_LEN);
    out.extend_from_slice(&[KIND_BLOCK, 0, 0, 0]);
    out.extend_from_slice(&file.to_be_bytes());
    out.extend_from_slice(&block.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(cv);
    out
}

/// Prefix for a data message; the payload (at most [`DATA_PAYLOAD`] bytes) follows.
pub const DATA_PREFIX: u8 = KIND_DATA;

/// The 48-byte file end message (kind 3) for `file`: its final `size` and
/// BLAKE3 `root`.
pub fn encode_file_end(file: u32, size: u64, root: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FILE_END_LEN);
    out.extend_from_slice(&[KIND_FILE_END, 0, 0, 0]);
    out.extend_from_slice(&file.to_be_bytes());
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(root);
    out
}

/// A chaining value as lowercase hex, as `accept.have` carries it.
pub fn cv_to_hex(cv: &Cv) -> String {
    data_encoding::HEXLOWER.encode(cv)
}

/// A chaining value from hex (either case); `None` unless it is exactly
/// 32 bytes of valid hex.
pub fn cv_from_hex(hex: &str) -> Option<Cv> {
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.as_bytes())
        .ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::manifest::{Entry, EntryKind};

    #[test]
    fn frames_round_trip() {
        let cv = [7u8; 32];
        let h = encode_block_header(3, 1 << 40, 1 << 20, &cv);
        assert_eq!(h.len(), BLOCK_HEADER_LEN);
        assert_eq!(
            Frame::decode(&h),
            Ok(Frame::Block {
                file: 3,
                block: 1 << 40,
                len: 1 << 20,
                cv
            })
        );
        let e = encode_file_end(9, 12345, &[1; 32]);
        assert_eq!(
            Frame::decode(&e),
            Ok(Frame::FileEnd {
                file: 9,
                size: 12345,
                root: [1; 32]
            })
        );
        assert_eq!(
            Frame::decode(&[DATA_PREFIX, 1, 2]),
            Ok(Frame::Data(&[1, 2]))
        );
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        assert_eq!(Frame::decode(&[]), Err(FrameError::Empty));
        assert_eq!(
            Frame::decode(&[DATA_PREFIX]),
            Err(FrameError::Malformed(2, 1))
        );
        assert_eq!(Frame::decode(&[9, 1]), Err(FrameError::UnknownKind(9)));
        assert!(Frame::decode(&vec![2u8; MAX_MESSAGE + 1]).is_err());
        let h = encode_block_header(1, 2, 3, &[0; 32]);
        for cut in 0..h.len() {
            assert!(Frame::decode(&h[..cut]).is_err() || cut == 0 && h.is_empty());
        }
        let mut bad = h.clone();
        bad[1] = 1;
        assert!(Frame::decode(&bad).is_err());
        // Every short prefix of every kind must decode or fail cleanly.
        for kind in 0..=255u8 {
            for len in 0..60 {
                let mut m = vec![0u8; len];
                if let Some(first) = m.first_mut() {
                    *first = kind;
                }
                let _ = Frame::decode(&m);
            }
        }
    }

    #[test]
    fn what_was_left_out_is_said_in_our_words_never_the_peers() {
        let left = LeftOut::from([
            ("symlink".to_string(), 3),
            ("fifo".to_string(), 1),
            ("\x1b[31mrm -rf".to_string(), 5),
            ("socket".to_string(), 0),
        ]);
        assert_eq!(
            left_out_sentence(&left).unwrap(),
            "3 symbolic links, 1 FIFO and 5 other things"
        );
        assert_eq!(left_out_sentence(&LeftOut::new()), None);
        // Older peers send no field at all.
        let old = r#"{"type":"manifest","block_size":1048576,"entries":[],"more":false}"#;
        assert!(matches!(
            Control::decode(old.as_bytes()),
            Ok(Control::Manifest { left_out, .. }) if left_out.is_empty()
        ));
    }

    #[test]
    fn control_round_trip_and_garbage() {
        let m = Control::Manifest {
            block_size: 1 << 20,
            entries: vec![Entry {
                path: "a".into(),
                kind: EntryKind::File,
                size: Some(1),
                mode: 0o644,
            }],
            more: false,
            left_out: LeftOut::from([("symlink".to_string(), 2)]),
        };
        assert_eq!(Control::decode(m.encode().as_bytes()), Ok(m));
        assert_eq!(
            Control::decode(br#"{"type":"accept"}"#),
            Ok(Control::Accept { have: vec![] })
        );
        assert!(Control::decode(b"{").is_err());
        assert!(Control::decode(br#"{"type":"nope"}"#).is_err());
        assert!(Control::decode(br#"{"type":"resend","file":-1,"block":0}"#).is_err());
    }

    #[test]
    fn big_manifests_are_split_into_small_parts() {
        let entries: Vec<Entry> = (0..5000)
            .map(|i| Entry {
                path: format!("folder/a-rather-long-file-name-{i}.txt"),
                kind: EntryKind::File,
                size: Some(i),
                mode: 0o644,
            })
            .collect();
        let manifest = Manifest {
            block_size: 1 << 20,
            entries: entries.clone(),
        };
        let parts = manifest_parts(&manifest, &LeftOut::new());
        assert!(parts.len() > 3);
        let mut joined = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            assert!(
                part.encode().len() <= MANIFEST_PART + 4096,
                "part {i} too big"
            );
            let Control::Manifest { entries, more, .. } =
                Control::decode(part.encode().as_bytes()).unwrap()
            else {
                panic!("not a manifest part");
            };
            assert_eq!(more, i + 1 < parts.len());
            joined.extend(entries);
        }
        assert_eq!(joined, entries);
    }

    #[test]
    fn cv_hex_round_trip() {
        let cv = [0xab; 32];
        assert_eq!(cv_from_hex(&cv_to_hex(&cv)), Some(cv));
        assert_eq!(cv_from_hex("abc"), None);
        assert_eq!(cv_from_hex("zz"), None);
    }
}
