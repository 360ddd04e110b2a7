//! The manifest: what a sender offers, checked before anything is written.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// Default block size: 1 MiB. Power of two, so every block is a BLAKE3 subtree.
pub const DEFAULT_BLOCK_SIZE: u32 = 1 << 20;
/// Accepted block sizes, inclusive: from this (16 KiB, sixteen BLAKE3
/// chunks)...
pub const MIN_BLOCK_SIZE: u32 = 16 * 1024;
/// ...to this (16 MiB). A block size must also be a power of two.
pub const MAX_BLOCK_SIZE: u32 = 16 << 20;
/// A manifest may not list more entries than this.
pub const MAX_ENTRIES: usize = 1_000_000;
/// The offer's paths may total at most this many bytes: with [`MAX_ENTRIES`]
/// alone, a peer could make a receiver hold gigabytes of manifest.
pub const MAX_PATHS_BYTES: usize = 256 << 20;
/// Longest name (one path component) accepted, in bytes: what common file
/// systems allow.
pub const MAX_COMPONENT_BYTES: usize = 255;
/// Longest relative path accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// What an offered entry is; `"file"` or `"dir"` on the wire.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A regular file (or a stream): its bytes follow as blocks.
    File,
    /// A folder, created even when empty; it has no data.
    Dir,
}

/// One offered file or folder.
///
/// Its index in [`Manifest::entries`] is the `file` number that data
/// messages, `accept`, `resend` and the drivers' actions use.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path, `/`-separated, UTF-8.
    pub path: String,
    /// File or folder.
    pub kind: EntryKind,
    /// Size in bytes; `None` for a stream of unknown length (stdin). Always 0 for folders.
    #[serde(default)]
    pub size: Option<u64>,
    /// Unix permission bits (`0o777` mask); 0 means "receiver's default".
    #[serde(default)]
    pub mode: u32,
}

/// What a sender offers (docs/PROTOCOL.md §5.1): its files and folders, in
/// order, and the block size their data is cut into. Sent as one or more
/// `manifest` control messages; a receiver checks it with
/// [`Manifest::validate`] before writing anything.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// Bytes per block: a power of two from [`MIN_BLOCK_SIZE`] to
    /// [`MAX_BLOCK_SIZE`] (ferry sends [`DEFAULT_BLOCK_SIZE`]).
    pub block_size: u32,
    /// The offered entries. The `file` of data messages and of `accept`
    /// and `resend` is an index into this list, folders included.
    pub entries: Vec<Entry>,
}

/// A relative path that must not be used, and why.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("unsafe path {path:?}: {reason}")]
pub struct UnsafePath {
    /// The path as given.
    pub path: String,
    /// Why it is refused, as words that follow the path in a sentence.
    pub reason: &'static str,
}

/// Why an offer is refused as a whole (docs/PROTOCOL.md §5.1).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ManifestError {
    /// A path that is not safe to use anywhere ([`validate_path`]).
    #[error("{0}")]
    UnsafePath(#[from] UnsafePath),
    /// Two entries with this path.
    #[error("the offer lists {0:?} twice")]
    Duplicate(String),
    /// Two paths that differ only in letter case.
    #[error(
        "the offer lists {0:?} and {1:?}, which are the same name on case-insensitive file systems"
    )]
    CaseClash(String, String),
    /// An entry (the first) below an entry of kind file (the second).
    #[error("the offer puts {0:?} inside {1:?}, which it also lists as a file")]
    FileAsParent(String, String),
    /// A block size that is not a power of two in the accepted range.
    #[error("the offer's block size {0} is not a power of two between 16 KiB and 16 MiB")]
    BlockSize(u32),
    /// More than [`MAX_ENTRIES`] entries; how many.
    #[error("the offer lists {0} entries; at most {MAX_ENTRIES} are accepted")]
    TooManyEntries(usize),
    /// Paths that total more than [`MAX_PATHS_BYTES`]; their total.
    #[error("the offer's paths total {0} bytes; at most {MAX_PATHS_BYTES} are accepted")]
    PathsTooLong(usize),
    /// A folder with a non-zero size.
    #[error("the offer's folder {0:?} has a size")]
    DirWithSize(String),
    /// No entries at all.
    #[error("the offer is empty")]
    Empty,
    /// Sizes whose sum does not fit in a `u64`.
    #[error("the offer's sizes add up to more than 2^64 bytes")]
    TotalTooLarge,
}

/// Check one relative path (from a peer, or about to be offered to one) and
/// return its components.
///
/// Refused: empty, absolute, `.`/`..`/empty components, backslashes, drive
/// prefixes (`C:`, which name a drive or stream on Windows peers), NUL and
/// other control characters (C1 too: terminals may act on them when a name
/// is printed), overlong names.
pub fn validate_path(path: &str) -> Result<Vec<&str>, UnsafePath> {
    let bad = |reason| {
        Err(UnsafePath {
            path: path.to_string(),
            reason,
        })
    };
    if path.is_empty() {
        return bad("the path is empty");
    }
    if path.len() > MAX_PATH_BYTES {
        return bad("the path is longer than 4096 bytes");
    }
    if path.starts_with('/') {
        return bad("it is an absolute path");
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" => return bad("it has an empty part (two slashes in a row)"),
            "." | ".." => {
                return bad("it has a '.' or '..' part, which could reach outside the folder")
            }
            _ => {}
        }
        if part.len() > MAX_COMPONENT_BYTES {
            return bad("a name in it is longer than 255 bytes");
        }
        if part.contains('\\') {
            return bad("it has a backslash, which Windows reads as a folder separator");
        }
        if part.chars().any(char::is_control) {
            return bad("its name has a control character");
        }
        let b = part.as_bytes();
        if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
            return bad("it starts with a letter and a colon, which Windows reads as a drive");
        }
        parts.push(part);
    }
    Ok(parts)
}

impl Manifest {
    /// Validate everything a receiver relies on before writing a byte.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if !self.block_size.is_power_of_two()
            || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&self.block_size)
        {
            return Err(ManifestError::BlockSize(self.block_size));
        }
        if self.entries.is_empty() {
            return Err(ManifestError::Empty);
        }
        if self.entries.len() > MAX_ENTRIES {
            return Err(ManifestError::TooManyEntries(self.entries.len()));
        }
        // Drivers add the sizes up (progress, free space): the sum must fit.
        self.entries
            .iter()
            .try_fold(0u64, |sum, e| sum.checked_add(e.size.unwrap_or(0)))
            .ok_or(ManifestError::TotalTooLarge)?;
        let paths_bytes = paths_bytes(&self.entries);
        if paths_bytes > MAX_PATHS_BYTES {
            return Err(ManifestError::PathsTooLong(paths_bytes));
        }
        let mut kinds: HashMap<&str, EntryKind> = HashMap::with_capacity(self.entries.len());
        let mut folded: HashMap<String, &str> = HashMap::with_capacity(self.entries.len());
        for entry in &self.entries {
            validate_path(&entry.path)?;
            if entry.kind == EntryKind::Dir && entry.size.unwrap_or(0) != 0 {
                return Err(ManifestError::DirWithSize(entry.path.clone()));
            }
            if kinds.insert(&entry.path, entry.kind).is_some() {
                return Err(ManifestError::Duplicate(entry.path.clone()));
            }
            if let Some(other) = folded.insert(entry.path.to_lowercase(), &entry.path) {
                return Err(ManifestError::CaseClash(
                    other.to_string(),
                    entry.path.clone(),
                ));
            }
        }
        // No entry may live under something offered as a file.
        let mut checked: HashSet<&str> = HashSet::new();
        for entry in &self.entries {
            let mut end = 0;
            while let Some(pos) = entry.path[end..].find('/') {
                let parent = &entry.path[..end + pos];
                if checked.insert(parent) && kinds.get(parent) == Some(&EntryKind::File) {
                    return Err(ManifestError::FileAsParent(
                        entry.path.clone(),
                        parent.to_string(),
                    ));
                }
                end += pos + 1;
            }
        }
        Ok(())
    }

    /// Total payload bytes, counting unknown-length streams as 0. Exact for
    /// a validated manifest; saturates otherwise.
    pub fn total_bytes(&self) -> u64 {
        self.entries
            .iter()
            .filter_map(|e| e.size)
            .fold(0u64, u64::saturating_add)
    }

    /// Whether some file is a stream of unknown length (standard input).
    pub fn has_stream(&self) -> bool {
        self.entries
            .iter()
            .any(|e| e.kind == EntryKind::File && e.size.is_none())
    }

    /// How many entries are files (folders not counted).
    pub fn file_count(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .count()
    }
}

/// Bytes of all the entries' paths together.
pub fn paths_bytes(entries: &[Entry]) -> usize {
    entries.iter().map(|e| e.path.len()).sum()
}

/// Number of blocks in a file of `size` bytes.
pub fn block_count(size: u64, block_size: u32) -> u64 {
    size.div_ceil(u64::from(block_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File,
            size: Some(size),
            mode: 0o644,
        }
    }
    fn dir(path: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::Dir,
            size: None,
            mode: 0o755,
        }
    }
    fn manifest(entries: Vec<Entry>) -> Manifest {
        Manifest {
            block_size: DEFAULT_BLOCK_SIZE,
            entries,
        }
    }

    #[test]
    fn hostile_paths_are_refused() {
        for p in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/..",
            ".",
            "./a",
            "a//b",
            "a/",
            "C:\\x",
            "C:x",
            "c:/x",
            "a\\b",
            "a/\0b",
            "a\nb",
            "a\u{7f}",
        ] {
            assert!(validate_path(p).is_err(), "{p:?} accepted");
        }
        assert!(validate_path(&"x".repeat(256)).is_err());
        assert!(validate_path(&vec!["abc"; 1500].join("/")).is_err());
    }

    #[test]
    fn good_paths_are_accepted() {
        for p in [
            "a",
            "a/b/c.txt",
            "é/ü.txt",
            "日本.txt",
            ".hidden",
            "a..b",
            "with space",
            "ab:c",
        ] {
            assert_eq!(
                validate_path(p).map(|v| v.join("/")),
                Ok(p.to_string()),
                "{p:?}"
            );
        }
    }

    #[test]
    fn manifest_rules() {
        assert!(manifest(vec![dir("d"), file("d/a", 3), file("b", 0)])
            .validate()
            .is_ok());
        assert_eq!(
            manifest(vec![file("a", 1), file("a", 2)]).validate(),
            Err(ManifestError::Duplicate("a".into()))
        );
        assert!(matches!(
            manifest(vec![file("A.txt", 1), file("a.txt", 2)]).validate(),
            Err(ManifestError::CaseClash(..))
        ));
        assert!(matches!(
            manifest(vec![file("a", 1), file("a/b", 2)]).validate(),
            Err(ManifestError::FileAsParent(..))
        ));
        assert!(matches!(
            manifest(vec![file("../a", 1)]).validate(),
            Err(ManifestError::UnsafePath(..))
        ));
        assert_eq!(manifest(vec![]).validate(), Err(ManifestError::Empty));
        let mut m = manifest(vec![file("a", 1)]);
        m.block_size = 1000;
        assert_eq!(m.validate(), Err(ManifestError::BlockSize(1000)));
        m.block_size = 1 << 30;
        assert_eq!(m.validate(), Err(ManifestError::BlockSize(1 << 30)));
    }

    /// Found while writing the `manifest` fuzz target: two sizes whose sum overflows
    /// made `total_bytes` panic (debug) or wrap (release), and the receiver's
    /// free-space check used the wrapped total.
    #[test]
    fn sizes_whose_sum_overflows_are_refused() {
        let m = manifest(vec![file("a", u64::MAX), file("b", 1)]);
        assert_eq!(m.validate(), Err(ManifestError::TotalTooLarge));
        assert_eq!(m.total_bytes(), u64::MAX);
        assert!(manifest(vec![file("a", u64::MAX - 1), file("b", 1)])
            .validate()
            .is_ok());
    }

    #[test]
    fn block_counts() {
        assert_eq!(block_count(0, 1024 * 1024), 0);
        assert_eq!(block_count(1, 1024 * 1024), 1);
        assert_eq!(block_count(1 << 20, 1 << 20), 1);
        assert_eq!(block_count((1 << 20) + 1, 1 << 20), 2);
    }
}
