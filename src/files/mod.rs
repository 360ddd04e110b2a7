//! File-system side of a transfer: listing what to send, reading it, and
//! writing what arrives without ever letting a peer's path escape `--out`.
//!
//! Everything here is blocking `std::fs` code; async callers run it on
//! `spawn_blocking` or a dedicated thread.
//!
//! Threat model for the receiving side: the peer is untrusted and chooses
//! every relative path; the local file system is trusted not to change
//! under us while we write (a local attacker racing us with symlinks is out
//! of scope, though `O_NOFOLLOW` and `O_EXCL`/`link` close the cheap gaps).

use std::io;
use std::path::{Path, PathBuf};

#[cfg(test)]
use crate::proto::manifest::MAX_PATH_BYTES;
use crate::proto::manifest::{validate_path, UnsafePath, MAX_COMPONENT_BYTES};

/// Suffix of the hidden file that holds data until its hash is verified.
pub const PART_SUFFIX: &str = ".ferry-part";

/// A peer-supplied (or about-to-be-sent) relative path that is not safe to use.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// The path itself breaks a rule of [`validate_path`].
    #[error("refusing {0}")]
    Unsafe(#[from] UnsafePath),
    /// The path under `--out`, or a folder on the way to it, is a symbolic
    /// link.
    #[error("refusing path {rel:?}: {} is a symbolic link, and ferry never writes through links", at.display())]
    Symlink {
        /// The relative path asked for.
        rel: String,
        /// The link found on the way, on this machine.
        at: PathBuf,
    },
    /// Something on the way that must be a folder exists and is not one.
    #[error("refusing path {rel:?}: {} exists and is not a folder", at.display())]
    NotADirectory {
        /// The relative path asked for.
        rel: String,
        /// What is in the way, on this machine.
        at: PathBuf,
    },
    /// A component could not be inspected.
    #[error("cannot inspect {}: {}", path.display(), io_reason(err))]
    Io {
        /// The component being inspected.
        path: PathBuf,
        /// What the system said.
        err: io::Error,
    },
}

impl PathError {
    /// Why the path is refused, without the path itself.
    pub fn reason(&self) -> String {
        match self {
            PathError::Unsafe(u) => u.reason.to_string(),
            other => other.to_string(),
        }
    }
}

/// Errors of this module; each renders as one actionable line.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A path under `--out` that may not be used.
    #[error(transparent)]
    Path(#[from] PathError),
    /// The target already exists, and `--force` was not given.
    #[error("{} already exists; use --force to overwrite it", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// The target is a folder; not even `--force` replaces one with a file.
    #[error("{} is a folder; refusing to replace it with a file", path.display())]
    IsDirectory {
        /// The folder in the way.
        path: PathBuf,
    },
    /// A write failed for want of space or quota (`ENOSPC`, `EDQUOT`).
    #[error("no space left on the disk holding {}; free some space and try again", path.display())]
    DiskFull {
        /// What was being written.
        path: PathBuf,
    },
    /// A source does not exist (or vanished during the walk).
    #[error("{} does not exist", path.display())]
    NotFound {
        /// The source, as given.
        path: PathBuf,
    },
    /// A source whose name cannot go into an offer (paths are UTF-8).
    #[error("{} has a name that is not valid UTF-8; rename it to send it", path.display())]
    NotUtf8 {
        /// The source.
        path: PathBuf,
    },
    /// A source with no last component to name it by (`/`).
    #[error("{} has no name to send it under; pass the folder by its own name instead", path.display())]
    NoFileName {
        /// The source, as given.
        path: PathBuf,
    },
    /// Two sources given on the command line would arrive under one name.
    #[error("two sources are both named {name}: {} and {}; send them separately or rename one", first.display(), second.display())]
    DuplicateName {
        /// The name they share.
        name: String,
        /// The source given first.
        first: PathBuf,
        /// The source given later.
        second: PathBuf,
    },
    /// A source whose offered path a receiver would refuse.
    #[error("cannot send {}: {}; rename it to send it", path.display(), why.reason())]
    Unsendable {
        /// The source on this machine.
        path: PathBuf,
        /// What is wrong with its offered path.
        why: PathError,
    },
    /// A source this process may not read.
    #[error("cannot read {}: {reason}; fix its permissions or leave it out", path.display())]
    Unreadable {
        /// The source.
        path: PathBuf,
        /// What the system said ([`io_reason`]).
        reason: String,
    },
    /// A source that differs from its [`Stamp`] at the offer.
    #[error("{} changed while it was being sent ({what}); send it again once nothing is writing to it", path.display())]
    Changed {
        /// The source.
        path: PathBuf,
        /// What changed, in words: "it grew".
        what: &'static str,
    },
    /// A file that ended before `offset + len`.
    #[error("{} is shorter than expected (changed since it was listed?): cannot read {len} bytes at offset {offset}", path.display())]
    ShortRead {
        /// The file being read.
        path: PathBuf,
        /// Where the read started, in bytes.
        offset: u64,
        /// Bytes asked for.
        len: usize,
    },
    /// A positional read or write (or a truncation) whose end does not fit
    /// in a file offset (`i64`).
    #[error("{}: offset {offset} + length {len} is out of range", path.display())]
    OutOfRange {
        /// The file.
        path: PathBuf,
        /// Where the range starts, in bytes.
        offset: u64,
        /// Its length in bytes.
        len: usize,
    },
    /// A source (or a partial file found in place) that is neither a
    /// regular file nor a folder.
    #[error("{} is not a regular file or folder; ferry only handles those", path.display())]
    NotRegularFile {
        /// What was found.
        path: PathBuf,
    },
    /// Any other I/O failure.
    // `err`, not `source`: the message already says it, and a chained
    // source would say it again.
    #[error("{action} {}: {}", path.display(), io_reason(err))]
    Io {
        /// What was being done, as the start of a sentence: "cannot create".
        action: &'static str,
        /// The file or folder it was done to.
        path: PathBuf,
        /// What the system said.
        err: io::Error,
    },
}

pub(crate) fn io_err(action: &'static str, path: &Path, source: io::Error) -> FilesError {
    FilesError::Io {
        action,
        path: path.to_path_buf(),
        err: source,
    }
}

/// An I/O error as words for a sentence: "permission denied", without the
/// "(os error 13)" tail.
pub fn io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    let text = text
        .find(" (os error")
        .map_or(text.as_str(), |i| &text[..i]);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// An error reading a source while walking or opening it: permission
/// problems say what to do.
fn read_err(action: &'static str, path: &Path, source: io::Error) -> FilesError {
    match source.kind() {
        io::ErrorKind::NotFound => FilesError::NotFound {
            path: path.to_path_buf(),
        },
        io::ErrorKind::PermissionDenied => FilesError::Unreadable {
            path: path.to_path_buf(),
            reason: io_reason(&source),
        },
        _ => io_err(action, path, source),
    }
}

/// Like [`io_err`], but a full disk (or quota) gets its own clear error.
pub(crate) fn write_err(action: &'static str, path: &Path, source: io::Error) -> FilesError {
    match source.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => FilesError::DiskFull {
            path: path.to_path_buf(),
        },
        _ => io_err(action, path, source),
    }
}

/// `offset + len` must fit in the signed range the kernel accepts for file
/// offsets; checking here avoids overflow inside the positional I/O loops.
fn check_range(path: &Path, offset: u64, len: usize) -> Result<(), FilesError> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= i64::MAX as u64 => Ok(()),
        _ => Err(FilesError::OutOfRange {
            path: path.to_path_buf(),
            offset,
            len,
        }),
    }
}

mod direct;
mod out;
mod part;
mod place;
mod read;
pub mod resume;
mod walk;

use direct::*;
pub use out::*;
pub use part::*;
use place::*;
pub use read::*;
pub use walk::*;

/// Helpers the submodules' tests share.
#[cfg(test)]
pub(crate) mod test_util {
    pub use std::fs::{self, OpenOptions, Permissions};
    pub use std::os::unix::ffi::OsStrExt;
    pub use std::os::unix::fs::{symlink, PermissionsExt};
    use std::path::{Component, Path};

    use super::{EntryKind, SourceEntry};

    pub fn escapes(path: &Path) -> bool {
        path.components()
            .any(|c| matches!(c, Component::ParentDir | Component::RootDir))
    }

    pub fn write(path: &Path, data: &[u8]) {
        if let Some(p) = path.parent() {
            fs::create_dir_all(p).unwrap();
        }
        fs::write(path, data).unwrap();
    }

    pub fn summary(entries: &[SourceEntry]) -> Vec<(String, EntryKind, u64)> {
        entries
            .iter()
            .map(|e| (e.rel_path.clone(), e.kind.clone(), e.size))
            .collect()
    }
}
