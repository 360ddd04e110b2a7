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

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bytes::Bytes;

#[cfg(test)]
use crate::proto::manifest::MAX_PATH_BYTES;
use crate::proto::manifest::{validate_path, UnsafePath, MAX_COMPONENT_BYTES};

/// Suffix of the hidden file that holds data until its hash is verified.
pub const PART_SUFFIX: &str = ".ferry-part";

/// A peer-supplied (or about-to-be-sent) relative path that is not safe to use.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("refusing {0}")]
    Unsafe(#[from] UnsafePath),
    #[error("refusing path {rel:?}: {} is a symbolic link, and ferry never writes through links", at.display())]
    Symlink { rel: String, at: PathBuf },
    #[error("refusing path {rel:?}: {} exists and is not a folder", at.display())]
    NotADirectory { rel: String, at: PathBuf },
    #[error("cannot inspect {}: {}", path.display(), io_reason(err))]
    Io { path: PathBuf, err: io::Error },
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
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("{} already exists; use --force to overwrite it", path.display())]
    Exists { path: PathBuf },
    #[error("{} is a folder; refusing to replace it with a file", path.display())]
    IsDirectory { path: PathBuf },
    #[error("no space left on the disk holding {}; free some space and try again", path.display())]
    DiskFull { path: PathBuf },
    #[error("{} does not exist", path.display())]
    NotFound { path: PathBuf },
    #[error("{} has a name that is not valid UTF-8; rename it to send it", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("{} has no name to send it under; pass the folder by its own name instead", path.display())]
    NoFileName { path: PathBuf },
    #[error("two sources are both named {name}: {} and {}; send them separately or rename one", first.display(), second.display())]
    DuplicateName {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("cannot send {}: {}; rename it to send it", path.display(), why.reason())]
    Unsendable { path: PathBuf, why: PathError },
    #[error("cannot read {}: {reason}; fix its permissions or leave it out", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{} changed while it was being sent ({what}); send it again once nothing is writing to it", path.display())]
    Changed { path: PathBuf, what: &'static str },
    #[error("{} is shorter than expected (changed since it was listed?): cannot read {len} bytes at offset {offset}", path.display())]
    ShortRead {
        path: PathBuf,
        offset: u64,
        len: usize,
    },
    #[error("{}: offset {offset} + length {len} is out of range", path.display())]
    OutOfRange {
        path: PathBuf,
        offset: u64,
        len: usize,
    },
    #[error("{} is not a regular file or folder; ferry only handles those", path.display())]
    NotRegularFile { path: PathBuf },
    // `err`, not `source`: the message already says it, and a chained
    // source would say it again.
    #[error("{action} {}: {}", path.display(), io_reason(err))]
    Io {
        action: &'static str,
        path: PathBuf,
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

// ---------------------------------------------------------------- sending

/// What a source entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
}

/// One file or folder to send.
#[derive(Debug, Clone)]
pub struct SourceEntry {
    /// Protocol path: UTF-8, `/`-separated, starting with the source's own name.
    pub rel_path: String,
    pub kind: EntryKind,
    /// Bytes for files; 0 for folders.
    pub size: u64,
    /// Unix permission bits (`& 0o777`).
    pub mode: u32,
    /// Where to read it from on this machine.
    pub abs_path: PathBuf,
    /// What the file looked like when it was offered.
    pub stamp: Stamp,
}

/// A file's identity and last change, as tar and rsync compare them: if any
/// of these differ from the offer, the bytes read may mix two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    pub fn of(meta: &fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// How `now` differs from this stamp, in words; `None` if it doesn't.
    fn change(&self, now: &Stamp) -> Option<&'static str> {
        if (self.dev, self.ino) != (now.dev, now.ino) {
            Some("it was replaced by another file")
        } else if now.len > self.len {
            Some("it grew")
        } else if now.len < self.len {
            Some("it shrank")
        } else if (self.mtime, self.ctime) != (now.mtime, now.ctime) {
            Some("it was written to")
        } else {
            None
        }
    }
}

/// What a walk found: the entries to offer, and what it left out.
#[derive(Debug, Default)]
pub struct Walk {
    pub entries: Vec<SourceEntry>,
    /// Paths (as they would have been offered) left out, and why.
    pub skipped: Vec<(String, Skip)>,
}

/// Why a walk left something out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Skip {
    /// A symbolic link, not followed (`--follow-symlinks` follows them).
    Symlink,
    /// A followed link that points nowhere.
    BrokenSymlink,
    /// A followed link to a folder that is already being sent (a loop).
    FolderAgain,
    Fifo,
    Socket,
    Device,
}

impl Skip {
    /// Its name in `--json` and in the offer's `left_out`: the protocol's
    /// list of kinds, which is in the same order as this enum.
    pub fn as_str(self) -> &'static str {
        crate::proto::wire::LEFT_OUT_KINDS[self as usize].0
    }
}

impl Walk {
    /// One sentence about what was left out, or `None`: "left out 3
    /// symbolic links and 1 FIFO; ferry sends regular files and folders
    /// (--follow-symlinks sends what links point to)".
    pub fn skipped_sentence(&self) -> Option<String> {
        let left = self.left_out();
        let list = crate::proto::left_out_sentence(&left)?;
        let hint = if left.contains_key(Skip::Symlink.as_str()) {
            "; ferry sends regular files and folders (--follow-symlinks sends what links point to)"
        } else {
            "; ferry sends regular files and folders"
        };
        Some(format!("left out {list}{hint}"))
    }

    /// What was left out, counted by kind, for the offer.
    pub fn left_out(&self) -> crate::proto::LeftOut {
        let mut counts = crate::proto::LeftOut::new();
        for (_, why) in &self.skipped {
            *counts.entry(why.as_str().to_string()).or_default() += 1;
        }
        counts
    }
}

/// Walk the given paths into a sorted list of entries (parents before children).
///
/// A file becomes one entry named by its file name; a folder becomes an
/// entry for itself plus everything below it, prefixed by its own name.
/// Special files inside folders are left out, and so are symbolic links
/// unless `follow`; a symlink given directly as a path is always followed,
/// since the user named it.
pub fn walk_sources(paths: &[PathBuf], follow: bool) -> Result<Walk, FilesError> {
    let mut walk = Walk::default();
    let mut tops: HashMap<String, PathBuf> = HashMap::new();
    for path in paths {
        let name = top_level_name(path)?;
        if let Some(first) = tops.get(&name) {
            return Err(FilesError::DuplicateName {
                name,
                first: first.clone(),
                second: path.clone(),
            });
        }
        tops.insert(name.clone(), path.clone());
        let abs = std::path::absolute(path).map_err(|e| io_err("cannot resolve", path, e))?;
        // metadata (not symlink_metadata): an explicitly named link is followed.
        let meta = fs::metadata(&abs).map_err(|e| read_err("cannot read", path, e))?;
        if meta.is_dir() {
            walk_dir(name, abs, meta, follow, &mut walk)?;
        } else if meta.is_file() {
            push_entry(&mut walk.entries, name, EntryKind::File, &meta, abs)?;
        } else {
            return Err(FilesError::NotRegularFile { path: path.clone() });
        }
    }
    // Component-wise order keeps each folder's contents right after it.
    walk.entries
        .sort_by(|a, b| a.rel_path.split('/').cmp(b.rel_path.split('/')));
    walk.skipped.sort();
    Ok(walk)
}

/// The name a top-level source is sent under. `.` and `..` resolve to the
/// real folder name; `/` has none.
fn top_level_name(path: &Path) -> Result<String, FilesError> {
    let resolved;
    let name = match path.file_name() {
        Some(n) => n,
        None => {
            resolved = fs::canonicalize(path).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => FilesError::NotFound {
                    path: path.to_path_buf(),
                },
                _ => io_err("cannot resolve", path, e),
            })?;
            resolved.file_name().ok_or_else(|| FilesError::NoFileName {
                path: path.to_path_buf(),
            })?
        }
    };
    name.to_str()
        .map(str::to_owned)
        .ok_or_else(|| FilesError::NotUtf8 {
            path: path.to_path_buf(),
        })
}

fn push_entry(
    entries: &mut Vec<SourceEntry>,
    rel_path: String,
    kind: EntryKind,
    meta: &fs::Metadata,
    abs_path: PathBuf,
) -> Result<(), FilesError> {
    // Refuse here what the receiver would refuse, so the sender fails
    // before the transfer rather than halfway through it.
    if let Err(source) = validate_rel_path(&rel_path) {
        return Err(FilesError::Unsendable {
            path: abs_path,
            why: source,
        });
    }
    let size = if kind == EntryKind::File {
        meta.len()
    } else {
        0
    };
    if kind == EntryKind::File {
        // Offer only what can be read: a file refused halfway through the
        // transfer would leave the receiver with part of a folder.
        File::open(&abs_path).map_err(|e| read_err("cannot open", &abs_path, e))?;
    }
    entries.push(SourceEntry {
        rel_path,
        kind,
        size,
        mode: meta.permissions().mode() & 0o777,
        stamp: Stamp::of(meta),
        abs_path,
    });
    Ok(())
}

/// Iterative (explicit stack) so a very deep tree cannot overflow the stack.
fn walk_dir(
    rel: String,
    abs: PathBuf,
    meta: fs::Metadata,
    follow: bool,
    walk: &mut Walk,
) -> Result<(), FilesError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    // Folders entered so far, so that a followed link can't loop.
    let mut seen = std::collections::HashSet::from([(meta.dev(), meta.ino())]);
    push_entry(
        &mut walk.entries,
        rel.clone(),
        EntryKind::Dir,
        &meta,
        abs.clone(),
    )?;
    let mut stack = vec![(rel, abs)];
    while let Some((dir_rel, dir_abs)) = stack.pop() {
        let read =
            fs::read_dir(&dir_abs).map_err(|e| read_err("cannot read folder", &dir_abs, e))?;
        for item in read {
            let item = item.map_err(|e| read_err("cannot read folder", &dir_abs, e))?;
            let child_abs = item.path();
            let name = item
                .file_name()
                .into_string()
                .map_err(|_| FilesError::NotUtf8 {
                    path: child_abs.clone(),
                })?;
            let child_rel = format!("{dir_rel}/{name}");
            // DirEntry::file_type does not follow symlinks.
            let ft = item
                .file_type()
                .map_err(|e| read_err("cannot read", &child_abs, e))?;
            let child_meta = if ft.is_symlink() {
                if !follow {
                    walk.skipped.push((child_rel, Skip::Symlink));
                    continue;
                }
                match fs::metadata(&child_abs) {
                    Ok(m) => m,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        walk.skipped.push((child_rel, Skip::BrokenSymlink));
                        continue;
                    }
                    Err(e) => return Err(read_err("cannot read", &child_abs, e)),
                }
            } else {
                fs::symlink_metadata(&child_abs)
                    .map_err(|e| read_err("cannot read", &child_abs, e))?
            };
            let kind = child_meta.file_type();
            if kind.is_dir() {
                if !seen.insert((child_meta.dev(), child_meta.ino())) {
                    walk.skipped.push((child_rel, Skip::FolderAgain));
                    continue;
                }
                push_entry(
                    &mut walk.entries,
                    child_rel.clone(),
                    EntryKind::Dir,
                    &child_meta,
                    child_abs.clone(),
                )?;
                stack.push((child_rel, child_abs));
            } else if kind.is_file() {
                push_entry(
                    &mut walk.entries,
                    child_rel,
                    EntryKind::File,
                    &child_meta,
                    child_abs,
                )?;
            } else {
                let why = if kind.is_fifo() {
                    Skip::Fifo
                } else if kind.is_socket() {
                    Skip::Socket
                } else {
                    Skip::Device
                };
                walk.skipped.push((child_rel, why));
            }
        }
    }
    Ok(())
}

/// A file opened for sending, read positionally so several blocks can be
/// read concurrently from one handle. Every read is followed by a look at the
/// file's [`Stamp`]: the last read of a file ends after every other, so a
/// change at any moment before it is caught, and the receiver never gets a
/// file that mixes two versions.
#[derive(Debug)]
pub struct SourceFile {
    file: File,
    path: PathBuf,
    offered: Stamp,
}

impl SourceFile {
    /// Opens `path`, which must still be the file offered as `offered`.
    pub fn open(path: &Path, offered: Stamp) -> Result<Self, FilesError> {
        let file = File::open(path).map_err(|e| read_err("cannot open", path, e))?;
        let source = SourceFile {
            file,
            path: path.to_path_buf(),
            offered,
        };
        source.unchanged()?;
        Ok(source)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read exactly `len` bytes at `offset`, and check that the file is
    /// still the one offered.
    pub fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, FilesError> {
        let data = read_exact(&self.file, &self.path, offset, len);
        self.unchanged()?;
        data.map(Bytes::from)
    }

    fn unchanged(&self) -> Result<(), FilesError> {
        let meta = self
            .file
            .metadata()
            .map_err(|e| io_err("cannot read", &self.path, e))?;
        match self.offered.change(&Stamp::of(&meta)) {
            Some(what) => Err(FilesError::Changed {
                path: self.path.clone(),
                what,
            }),
            None => Ok(()),
        }
    }
}

fn read_exact(file: &File, path: &Path, offset: u64, len: usize) -> Result<Vec<u8>, FilesError> {
    check_range(path, offset, len)?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            FilesError::ShortRead {
                path: path.to_path_buf(),
                offset,
                len,
            }
        } else {
            io_err("cannot read", path, e)
        }
    })?;
    Ok(buf)
}

// -------------------------------------------------------------- receiving

/// Check a peer-supplied relative path (no I/O) and return its components.
pub fn validate_rel_path(rel: &str) -> Result<Vec<&str>, PathError> {
    Ok(validate_path(rel)?)
}

/// Join `rel` under `out`, refusing if any existing component below `out`
/// is a symlink, or an existing intermediate component is not a folder.
/// Creates nothing.
pub fn safe_join(out: &Path, rel: &str) -> Result<PathBuf, PathError> {
    let parts = validate_rel_path(rel)?;
    let last = parts.len() - 1;
    let mut cur = out.to_path_buf();
    let mut exists = true;
    for (i, part) in parts.iter().enumerate() {
        cur.push(part);
        if !exists {
            // Below a missing folder nothing can exist either.
            continue;
        }
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(PathError::Symlink {
                    rel: rel.to_owned(),
                    at: cur,
                })
            }
            Ok(m) if i < last && !m.is_dir() => {
                return Err(PathError::NotADirectory {
                    rel: rel.to_owned(),
                    at: cur,
                })
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => exists = false,
            Err(err) => return Err(PathError::Io { path: cur, err }),
        }
    }
    Ok(cur)
}

/// `out` is the user's own choice, so it may be created plainly (and may
/// itself be a symlink); only what lies below it is guarded.
fn ensure_out(out: &Path) -> Result<(), FilesError> {
    fs::create_dir_all(out).map_err(|e| write_err("cannot create folder", out, e))
}

/// Create the folder `rel` (and its parents) under `out`, one component at a
/// time, never following a symlink. An existing folder is fine.
pub fn create_dir_safe(out: &Path, rel: &str) -> Result<PathBuf, FilesError> {
    let parts = validate_rel_path(rel)?;
    ensure_out(out)?;
    let mut cur = out.to_path_buf();
    for part in parts {
        cur.push(part);
        match fs::create_dir(&cur) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(write_err("cannot create folder", &cur, e)),
        }
        // Re-check whatever is there now, created by us or not.
        let m = fs::symlink_metadata(&cur).map_err(|err| PathError::Io {
            path: cur.clone(),
            err,
        })?;
        if m.file_type().is_symlink() {
            return Err(PathError::Symlink {
                rel: rel.to_owned(),
                at: cur,
            }
            .into());
        }
        if !m.is_dir() {
            return Err(PathError::NotADirectory {
                rel: rel.to_owned(),
                at: cur,
            }
            .into());
        }
    }
    Ok(cur)
}

/// Create the parent folder of `rel` safely and return it with the final
/// component's name.
fn prepare_parent<'a>(out: &Path, rel: &'a str) -> Result<(PathBuf, &'a str), FilesError> {
    let parts = validate_rel_path(rel)?;
    let (name, _) = parts
        .split_last()
        .ok_or_else(|| UnsafePath {
            path: rel.to_owned(),
            reason: "empty path",
        })
        .map_err(PathError::from)?;
    let name = *name;
    let parent = match rel.rfind('/') {
        Some(i) => create_dir_safe(out, &rel[..i])?,
        None => {
            ensure_out(out)?;
            out.to_path_buf()
        }
    };
    Ok((parent, name))
}

/// Refuse early (before any data moves) a target that cannot be replaced.
fn check_target(target: &Path, force: bool) -> Result<(), FilesError> {
    match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => Err(FilesError::IsDirectory {
            path: target.to_path_buf(),
        }),
        Ok(_) if !force => Err(FilesError::Exists {
            path: target.to_path_buf(),
        }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("cannot inspect", target, e)),
    }
}

/// Where the partial file for `rel` under `out` is (or would be), checked
/// for safety like [`safe_join`]; creates nothing.
pub fn part_path_for(out: &Path, rel: &str) -> Result<PathBuf, FilesError> {
    let target = safe_join(out, rel)?;
    let name = validate_rel_path(rel)?
        .last()
        .copied()
        .unwrap_or_default()
        .to_owned();
    Ok(target.with_file_name(part_file_name(&name)))
}

/// Name of the partial file for `name`.
fn part_file_name(name: &str) -> String {
    format!("{}{PART_SUFFIX}", hidden_stem(name))
}

/// Suffix of the state log kept beside a partial file (see `resume`).
pub const STATE_SUFFIX: &str = ".ferry-state";

/// The hidden name, without suffix, shared by the partial file of `name`
/// and its state log (`.NAME`). Both names stay within NAME_MAX: a long
/// name is shortened, cut at a character boundary, and made unique again
/// with a hash of the full name, which is deterministic so a later run
/// finds the same files. The budget is that of the longer suffix, so the
/// two names never disagree on whether to shorten.
pub fn hidden_stem(name: &str) -> String {
    let suffix = PART_SUFFIX.len().max(STATE_SUFFIX.len());
    if 1 + name.len() + suffix <= MAX_COMPONENT_BYTES {
        return format!(".{name}");
    }
    let hash = blake3::hash(name.as_bytes()).to_hex();
    let digest = hash.as_str().get(..16).unwrap_or_default();
    // '.' + kept prefix + '~' + 16 hex digits + suffix.
    let mut keep = MAX_COMPONENT_BYTES - 2 - digest.len() - suffix;
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    format!(".{}~{digest}", &name[..keep])
}

/// Make a folder's entries durable (after moving files into it).
pub fn sync_dir(dir: &Path) {
    fsync_dir(dir)
}

fn fsync_dir(dir: &Path) {
    // The rename is already done; a failed directory fsync only weakens
    // crash durability, so it is reported rather than failing the file.
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot fsync folder");
    }
}

fn set_mode(file: &File, path: &Path, mode: u32) -> Result<(), FilesError> {
    let mode = mode & 0o777;
    if mode == 0 {
        return Ok(());
    }
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(|e| io_err("cannot set permissions of", path, e))
}

/// A file being received: data lands in a hidden `.<name>.ferry-part` beside
/// the target and is moved into place only by [`PartFile::finish`], after the
/// caller has verified the whole-file hash.
///
/// Aligned writes of full blocks go through a second descriptor opened with
/// `O_DIRECT`, straight from the block buffer to the device. ferry flushes
/// every file before placing it anyway, so the page cache would only add a
/// copy: on the 2-core test machine that copy was the receiver's largest cost
/// (686 MB/s buffered against 1.8 GB/s direct for `dd` of 1 MiB blocks).
#[derive(Debug)]
pub struct PartFile {
    file: File,
    direct: Direct,
    /// Bytes written through the direct descriptor (for tests and the debug log).
    direct_bytes: u64,
    target: PathBuf,
    part: PathBuf,
}

/// The `O_DIRECT` descriptor of a [`PartFile`], opened on the first write
/// that can use it (small files never need one).
#[derive(Debug)]
enum Direct {
    Untried,
    Open(File),
    /// Not a local disk file system, or it refused `O_DIRECT`: buffered only.
    Off,
}

/// Offsets, lengths and buffer addresses of direct writes are multiples of
/// this (the largest logical block size in common use).
const DIRECT_ALIGN: usize = crate::proto::receiver::BLOCK_ALIGN;

/// Smaller writes stay buffered: a direct write waits for the device, and
/// small files are better flushed together in one batch (the copy they save
/// is small). ferry's 1 MiB blocks are well above this.
const DIRECT_MIN: usize = 256 * 1024;

/// Whether `file` is on a local disk file system that does `O_DIRECT` well.
/// Network and FUSE mounts accept it too, but there every direct write
/// waits for the server, with no write-behind; tmpfs has no device.
fn takes_direct_writes(file: &File) -> bool {
    // SAFETY: all-zero bytes are a valid `statfs`, which fstatfs fills in.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is open (`file` holds it) and `st` is writable.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
        return false;
    }
    // The magic numbers are 32-bit; libc's types for them vary by target.
    let magic = st.f_type as u32;
    [
        libc::EXT4_SUPER_MAGIC as u32, // also ext2 and ext3
        libc::XFS_SUPER_MAGIC as u32,
        libc::BTRFS_SUPER_MAGIC as u32,
        libc::F2FS_SUPER_MAGIC as u32,
    ]
    .contains(&magic)
}

/// The file `file` has open, opened again with `O_DIRECT`. Through
/// `/proc/self/fd`, so it is that very inode whatever happened to its path
/// since (the dev/inode check guards against an unusual /proc).
fn open_direct(file: &File) -> Option<File> {
    use std::os::unix::fs::MetadataExt;
    if !takes_direct_writes(file) {
        return None;
    }
    let direct = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .ok()?;
    let (a, b) = (file.metadata().ok()?, direct.metadata().ok()?);
    (a.dev() == b.dev() && a.ino() == b.ino()).then_some(direct)
}

impl PartFile {
    /// Open (creating parents safely) the partial file for `rel` under `out`.
    /// An existing partial file is kept as is, not truncated, so received
    /// blocks survive for resuming; call [`PartFile::set_len`] to size it.
    pub fn open(out: &Path, rel: &str, force: bool) -> Result<PartFile, FilesError> {
        let (parent, name) = prepare_parent(out, rel)?;
        let target = safe_join(out, rel)?;
        check_target(&target, force)?;
        let part = parent.join(part_file_name(name));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&part)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => FilesError::Path(PathError::Symlink {
                    rel: rel.to_owned(),
                    at: part.clone(),
                }),
                _ => write_err("cannot create", &part, e),
            })?;
        let meta = file
            .metadata()
            .map_err(|e| io_err("cannot inspect", &part, e))?;
        if !meta.is_file() {
            return Err(FilesError::NotRegularFile { path: part });
        }
        Ok(PartFile {
            file,
            direct: Direct::Untried,
            direct_bytes: 0,
            target,
            part,
        })
    }

    /// Where the file goes once finished.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The hidden partial file the data is written to.
    pub fn part_path(&self) -> &Path {
        &self.part
    }

    /// Current length of the partial file (for a resumed transfer).
    pub fn current_len(&self) -> Result<u64, FilesError> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| io_err("cannot inspect", &self.part, e))
    }

    /// Set the file's final length. This also closes the direct
    /// descriptor (a later write would open it again): files waiting to be
    /// placed in a batch then hold one descriptor each, not two.
    pub fn set_len(&mut self, len: u64) -> Result<(), FilesError> {
        check_range(&self.part, len, 0)?;
        if let Direct::Open(_) = self.direct {
            self.direct = Direct::Untried;
        }
        self.file
            .set_len(len)
            .map_err(|e| write_err("cannot resize", &self.part, e))
    }

    /// Positional write; a full disk is [`FilesError::DiskFull`]. The
    /// aligned part of `data` goes direct when it can, the rest buffered.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), FilesError> {
        check_range(&self.part, offset, data.len())?;
        let direct_len = data.len() / DIRECT_ALIGN * DIRECT_ALIGN;
        let aligned = offset.is_multiple_of(DIRECT_ALIGN as u64)
            && (data.as_ptr() as usize).is_multiple_of(DIRECT_ALIGN)
            && direct_len >= DIRECT_MIN;
        let mut done = 0;
        if aligned && matches!(self.direct, Direct::Untried) {
            self.direct = open_direct(&self.file).map_or(Direct::Off, Direct::Open);
        }
        if let (Direct::Open(direct), true) = (&self.direct, aligned) {
            match direct.write_all_at(&data[..direct_len], offset) {
                Ok(()) => {
                    done = direct_len;
                    self.direct_bytes += direct_len as u64;
                }
                // The file system opened it but will not do it (or not with
                // this alignment): stay buffered for this file.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP)) => {
                    self.direct = Direct::Off
                }
                Err(e) => return Err(write_err("cannot write", &self.part, e)),
            }
        }
        self.file
            .write_all_at(&data[done..], offset + done as u64)
            .map_err(|e| write_err("cannot write", &self.part, e))
    }

    /// Read back `len` bytes at `offset`, e.g. to re-verify blocks on resume.
    pub fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, FilesError> {
        read_exact(&self.file, &self.part, offset, len)
    }

    /// Flush the data, apply `mode & 0o777` (0 keeps the default) and move
    /// the file into place. Without `force` an existing target is never
    /// replaced, atomically: on [`FilesError::Exists`] the target is untouched
    /// and the partial file stays. With `force` the target is replaced.
    pub fn finish(self, mode: u32, force: bool) -> Result<PathBuf, FilesError> {
        self.sync()?;
        let target = self.place(mode, force)?;
        if let Some(dir) = target.parent() {
            fsync_dir(dir);
        }
        Ok(target)
    }

    /// Flush this file's data to disk.
    pub fn sync(&self) -> Result<(), FilesError> {
        self.file
            .sync_all()
            .map_err(|e| write_err("cannot flush", &self.part, e))
    }

    /// Flush everything written to the file system holding this file (one
    /// call for many finished files, instead of one fsync each).
    pub fn sync_filesystem(&self) -> Result<(), FilesError> {
        // SAFETY: syncfs only reads the descriptor, which `self.file` keeps open.
        if unsafe { libc::syncfs(self.file.as_raw_fd()) } == 0 {
            Ok(())
        } else {
            Err(write_err(
                "cannot flush",
                &self.part,
                io::Error::last_os_error(),
            ))
        }
    }

    /// [`PartFile::finish`] without its flushes: the data must already be
    /// durable ([`PartFile::sync`] or [`PartFile::sync_filesystem`]), and the
    /// caller makes the folder durable ([`sync_dir`]) after moving files in.
    pub fn place(self, mode: u32, force: bool) -> Result<PathBuf, FilesError> {
        tracing::debug!(part = %self.part.display(), direct_bytes = self.direct_bytes, "placing");
        let PartFile {
            file, target, part, ..
        } = self;
        set_mode(&file, &part, mode)?;
        drop(file);
        if force {
            fs::rename(&part, &target).map_err(|e| io_err("cannot move into place", &target, e))?;
        } else {
            place_no_clobber(&part, &target)?;
        }
        Ok(target)
    }
}

/// Move `part` to `target` unless `target` exists. `link` fails atomically
/// if the name is taken, unlike a check followed by `rename`; that racy
/// fallback is used only where hard links are unsupported.
fn place_no_clobber(part: &Path, target: &Path) -> Result<(), FilesError> {
    place_no_clobber_with(part, target, |a, b| fs::hard_link(a, b))
}

/// [`place_no_clobber`] with the linking step injectable, so the fallback
/// for file systems without hard links can be tested.
fn place_no_clobber_with(
    part: &Path,
    target: &Path,
    link: impl FnOnce(&Path, &Path) -> io::Result<()>,
) -> Result<(), FilesError> {
    match link(part, target) {
        Ok(()) => {
            if let Err(e) = fs::remove_file(part) {
                // The data is already in place; a leftover link is harmless.
                tracing::warn!(path = %part.display(), error = %e, "cannot remove partial file");
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(FilesError::Exists {
            path: target.to_path_buf(),
        }),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EPERM) | Some(libc::EXDEV) | Some(libc::ENOTSUP) | Some(libc::EMLINK)
            ) =>
        {
            check_target(target, false)?;
            fs::rename(part, target).map_err(|e| io_err("cannot move into place", target, e))
        }
        Err(e) => Err(io_err("cannot move into place", target, e)),
    }
}

/// Free bytes on the file system that holds (or will hold) `dir`; a folder
/// that does not exist yet is measured at its nearest existing ancestor.
pub fn available_space(dir: &Path) -> Result<u64, FilesError> {
    let mut probe = dir;
    while !probe.as_os_str().is_empty() && fs::symlink_metadata(probe).is_err() {
        match probe.parent() {
            Some(p) => probe = p,
            None => break,
        }
    }
    let probe = if probe.as_os_str().is_empty() {
        Path::new(".")
    } else {
        probe
    };
    fs4::available_space(probe).map_err(|e| io_err("cannot measure free space on", dir, e))
}

/// Create an empty file for `rel`, honouring `force` and `mode` like
/// [`PartFile::finish`]. It goes through a (zero-length) partial file too:
/// truncating an existing target in place would also empty any other hard
/// link to it, and `link`/`rename` give the same no-clobber guarantees.
pub fn create_empty_file(
    out: &Path,
    rel: &str,
    mode: u32,
    force: bool,
) -> Result<PathBuf, FilesError> {
    let mut part = PartFile::open(out, rel, force)?;
    part.set_len(0)?;
    part.finish(mode, force)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::symlink;
    use std::path::Component;

    fn escapes(path: &Path) -> bool {
        path.components()
            .any(|c| matches!(c, Component::ParentDir | Component::RootDir))
    }

    fn write(path: &Path, data: &[u8]) {
        if let Some(p) = path.parent() {
            fs::create_dir_all(p).unwrap();
        }
        fs::write(path, data).unwrap();
    }

    fn summary(entries: &[SourceEntry]) -> Vec<(String, EntryKind, u64)> {
        entries
            .iter()
            .map(|e| (e.rel_path.clone(), e.kind.clone(), e.size))
            .collect()
    }

    #[test]
    fn walk_nested_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let photos = tmp.path().join("photos");
        write(&photos.join("a.jpg"), b"aaaa");
        write(&photos.join("2024/b.jpg"), b"bb");
        write(&photos.join("empty.txt"), b"");
        write(&photos.join("é/ü.txt"), "ü".as_bytes());
        write(&photos.join("日本.txt"), b"x");
        fs::create_dir_all(photos.join("empty-dir")).unwrap();
        fs::set_permissions(photos.join("a.jpg"), Permissions::from_mode(0o640)).unwrap();
        symlink(photos.join("a.jpg"), photos.join("link.jpg")).unwrap();
        symlink(tmp.path(), photos.join("linkdir")).unwrap();
        let single = tmp.path().join("single.bin");
        write(&single, b"12345");

        let walk = walk_sources(&[photos.clone(), single.clone()], false).unwrap();
        assert_eq!(
            walk.skipped,
            vec![
                ("photos/link.jpg".to_owned(), Skip::Symlink),
                ("photos/linkdir".to_owned(), Skip::Symlink)
            ]
        );
        assert_eq!(
            walk.skipped_sentence().unwrap(),
            "left out 2 symbolic links; ferry sends regular files and folders (--follow-symlinks sends what links point to)"
        );
        let entries = walk.entries;
        let got = summary(&entries);
        let want: Vec<(String, EntryKind, u64)> = [
            ("photos", EntryKind::Dir, 0),
            ("photos/2024", EntryKind::Dir, 0),
            ("photos/2024/b.jpg", EntryKind::File, 2),
            ("photos/a.jpg", EntryKind::File, 4),
            ("photos/empty-dir", EntryKind::Dir, 0),
            ("photos/empty.txt", EntryKind::File, 0),
            ("photos/é", EntryKind::Dir, 0),
            ("photos/é/ü.txt", EntryKind::File, 2),
            ("photos/日本.txt", EntryKind::File, 1),
            ("single.bin", EntryKind::File, 5),
        ]
        .into_iter()
        .map(|(p, k, s)| (p.to_owned(), k, s))
        .collect();
        assert_eq!(got, want);

        let a = entries
            .iter()
            .find(|e| e.rel_path == "photos/a.jpg")
            .unwrap();
        assert_eq!(a.mode, 0o640);
        assert_eq!(a.abs_path, photos.join("a.jpg"));
        assert!(a.abs_path.is_absolute());
        // Every entry's parent appears before it.
        for (i, e) in entries.iter().enumerate() {
            if let Some((parent, _)) = e.rel_path.rsplit_once('/') {
                assert!(
                    entries[..i].iter().any(|p| p.rel_path == parent),
                    "{}",
                    e.rel_path
                );
            }
        }
    }

    #[test]
    fn skip_kinds_are_the_protocols_left_out_kinds_in_order() {
        let all = [
            Skip::Symlink,
            Skip::BrokenSymlink,
            Skip::FolderAgain,
            Skip::Fifo,
            Skip::Socket,
            Skip::Device,
        ];
        assert_eq!(all.len(), crate::proto::wire::LEFT_OUT_KINDS.len());
        assert_eq!(
            all.map(Skip::as_str),
            [
                "symlink",
                "broken symlink",
                "folder already sent",
                "fifo",
                "socket",
                "device"
            ]
        );
    }

    #[test]
    fn following_links_sends_their_targets_once_and_names_what_it_left_out() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("top");
        write(&top.join("sub/f.txt"), b"abc");
        write(&tmp.path().join("outside.txt"), b"12345");
        symlink(tmp.path().join("outside.txt"), top.join("o.txt")).unwrap();
        symlink(&top, top.join("sub/up")).unwrap(); // a loop
        symlink(tmp.path().join("gone"), top.join("dangling")).unwrap();
        let fifo = std::ffi::CString::new(top.join("pipe").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let walk = walk_sources(std::slice::from_ref(&top), true).unwrap();
        assert_eq!(
            summary(&walk.entries),
            vec![
                ("top".to_owned(), EntryKind::Dir, 0),
                ("top/o.txt".to_owned(), EntryKind::File, 5),
                ("top/sub".to_owned(), EntryKind::Dir, 0),
                ("top/sub/f.txt".to_owned(), EntryKind::File, 3),
            ]
        );
        assert_eq!(
            walk.skipped,
            vec![
                ("top/dangling".to_owned(), Skip::BrokenSymlink),
                ("top/pipe".to_owned(), Skip::Fifo),
                ("top/sub/up".to_owned(), Skip::FolderAgain),
            ]
        );
        assert_eq!(
            walk.skipped_sentence().unwrap(),
            "left out 1 broken symbolic link, 1 link to a folder already sent and 1 FIFO; ferry sends regular files and folders"
        );
    }

    #[test]
    fn walk_follows_a_symlink_named_on_the_command_line() {
        let tmp = tempfile::tempdir().unwrap();
        write(&tmp.path().join("real/f.txt"), b"abc");
        symlink(tmp.path().join("real"), tmp.path().join("alias")).unwrap();
        let entries = walk_sources(&[tmp.path().join("alias")], false)
            .unwrap()
            .entries;
        assert_eq!(
            summary(&entries),
            vec![
                ("alias".to_owned(), EntryKind::Dir, 0),
                ("alias/f.txt".to_owned(), EntryKind::File, 3)
            ]
        );
    }

    #[test]
    fn walk_rejects_duplicate_top_level_names() {
        let tmp = tempfile::tempdir().unwrap();
        write(&tmp.path().join("x/photos/a"), b"1");
        write(&tmp.path().join("y/photos"), b"2");
        let err = walk_sources(
            &[tmp.path().join("x/photos"), tmp.path().join("y/photos")],
            false,
        )
        .unwrap_err();
        assert!(matches!(err, FilesError::DuplicateName { ref name, .. } if name == "photos"));
        assert!(err
            .to_string()
            .starts_with("two sources are both named photos: "));
    }

    #[test]
    fn walk_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope");
        assert!(matches!(
            walk_sources(&[missing], false).unwrap_err(),
            FilesError::NotFound { .. }
        ));
        assert!(matches!(
            walk_sources(&[PathBuf::from("/")], false).unwrap_err(),
            FilesError::NoFileName { .. }
        ));
        // `..` resolves to the real folder name rather than failing.
        let sub = tmp.path().join("dir/sub");
        fs::create_dir_all(&sub).unwrap();
        let entries = walk_sources(&[sub.join("..")], false).unwrap().entries;
        assert_eq!(entries[0].rel_path, "dir");

        let bad = tmp.path().join("bad");
        fs::create_dir(&bad).unwrap();
        write(
            &bad.join(std::ffi::OsStr::from_bytes(b"not-utf8-\xff")),
            b"",
        );
        assert!(matches!(
            walk_sources(&[bad], false).unwrap_err(),
            FilesError::NotUtf8 { .. }
        ));

        let bs = tmp.path().join("bs");
        write(&bs.join("a\\b"), b"");
        assert!(matches!(
            walk_sources(&[bs], false).unwrap_err(),
            FilesError::Unsendable { .. }
        ));
    }

    #[test]
    fn validate_rejects_hostile_paths() {
        let long_component = "a".repeat(300);
        let long_path = vec!["abcd"; 1000].join("/");
        assert!(long_path.len() > MAX_PATH_BYTES);
        let hostile: Vec<&str> = vec![
            "",
            ".",
            "..",
            "../x",
            "a/../../x",
            "a/./b",
            "/etc/passwd",
            "C:\\x",
            "C:x",
            "c:",
            "a/D:x",
            "a\\b",
            "a/\0b",
            "a/b\n",
            "a/\x7f",
            "a/\u{9b}x",
            "a//b",
            "a/",
            &long_component,
            &long_path,
        ];
        for p in hostile {
            let err = validate_rel_path(p).expect_err(p);
            if !p.is_empty() {
                let shown = format!("{p:?}");
                assert!(
                    err.to_string().contains(&shown),
                    "{err} should name {shown}"
                );
            }
        }
    }

    #[test]
    fn validate_accepts_good_paths() {
        assert_eq!(validate_rel_path("a").unwrap(), vec!["a"]);
        assert_eq!(
            validate_rel_path("photos/2024/b.jpg").unwrap(),
            vec!["photos", "2024", "b.jpg"]
        );
        assert_eq!(validate_rel_path("é/ü.txt").unwrap(), vec!["é", "ü.txt"]);
        assert_eq!(validate_rel_path("日本.txt").unwrap(), vec!["日本.txt"]);
        assert_eq!(validate_rel_path(".hidden/..x/x..").unwrap().len(), 3);
        assert_eq!(validate_rel_path("notes:2024").unwrap(), vec!["notes:2024"]);
        let max = "b".repeat(MAX_COMPONENT_BYTES);
        assert_eq!(validate_rel_path(&max).unwrap(), vec![max.as_str()]);
    }

    #[test]
    fn safe_join_refuses_planted_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir_all(&out).unwrap();
        fs::create_dir_all(&elsewhere).unwrap();
        symlink(&elsewhere, out.join("a")).unwrap();

        assert!(matches!(
            safe_join(&out, "a/b.txt").unwrap_err(),
            PathError::Symlink { .. }
        ));
        assert!(matches!(
            safe_join(&out, "a").unwrap_err(),
            PathError::Symlink { .. }
        ));
        assert!(matches!(
            create_dir_safe(&out, "a/c").unwrap_err(),
            FilesError::Path(PathError::Symlink { .. })
        ));
        assert!(matches!(
            PartFile::open(&out, "a/b.txt", true).unwrap_err(),
            FilesError::Path(PathError::Symlink { .. })
        ));
        assert!(matches!(
            create_empty_file(&out, "a/e.txt", 0o644, true).unwrap_err(),
            FilesError::Path(PathError::Symlink { .. })
        ));
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);

        // A file where a folder is needed is refused too.
        write(&out.join("f"), b"");
        assert!(matches!(
            safe_join(&out, "f/x").unwrap_err(),
            PathError::NotADirectory { .. }
        ));
        // Fine paths join, and nothing gets created.
        let p = safe_join(&out, "new/dir/x.txt").unwrap();
        assert_eq!(p, out.join("new/dir/x.txt"));
        assert!(!out.join("new").exists());
        assert!(!escapes(p.strip_prefix(&out).unwrap()));
    }

    #[test]
    fn create_dir_safe_creates_nested_and_accepts_existing() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let d = create_dir_safe(&out, "x/y/z").unwrap();
        assert_eq!(d, out.join("x/y/z"));
        assert!(d.is_dir());
        assert_eq!(create_dir_safe(&out, "x/y").unwrap(), out.join("x/y"));
        assert!(create_dir_safe(&out, "x/../../z").is_err());
        assert!(!tmp.path().join("z").exists());
    }

    #[test]
    fn part_file_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        let mut pf = PartFile::open(out, "dir/é.bin", false).unwrap();
        assert_eq!(pf.target(), out.join("dir/é.bin"));
        assert_eq!(pf.part_path(), out.join("dir/.é.bin.ferry-part"));
        assert!(!pf.target().exists());
        pf.set_len(8).unwrap();
        // Blocks may land out of order.
        pf.write_at(4, b"5678").unwrap();
        pf.write_at(0, b"1234").unwrap();
        assert_eq!(pf.read_at(2, 4).unwrap(), b"3456");
        assert!(matches!(
            pf.read_at(6, 4).unwrap_err(),
            FilesError::ShortRead { .. }
        ));
        assert!(matches!(
            pf.write_at(u64::MAX, b"x").unwrap_err(),
            FilesError::OutOfRange { .. }
        ));
        let part = pf.part_path().to_path_buf();
        let target = pf.finish(0o640, false).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"12345678");
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert!(!part.exists());
    }

    #[test]
    fn part_file_writes_aligned_blocks_direct_and_the_rest_buffered() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let mut part = PartFile::open(&out, "f.bin", false).unwrap();
        let local = takes_direct_writes(&File::open(tmp.path()).unwrap());
        assert!(
            matches!(part.direct, Direct::Untried),
            "opened only when needed"
        );
        const MIB: usize = 1 << 20;
        let pattern = |len: usize, seed: u8| -> Vec<u8> {
            (0..len)
                .map(|i| (i as u8).wrapping_mul(31) ^ seed)
                .collect()
        };
        let mut expect = vec![0u8; 3 * MIB + 5 + 7];
        // An aligned block (direct), an aligned block with a 5-byte tail
        // (direct, then buffered), an aligned but small write and an
        // unaligned one (both buffered).
        let mut writes = vec![(0usize, pattern(MIB, 1)), (2 * MIB, pattern(MIB + 5, 2))];
        writes.push((MIB, pattern(64 * 1024, 5)));
        writes.push((MIB + 64 * 1024 + 3, pattern(100, 3)));
        for (offset, bytes) in &writes {
            let mut buf = crate::proto::receiver::aligned_buffer(bytes.len());
            buf.extend_from_slice(bytes);
            part.write_at(*offset as u64, &buf).unwrap();
            expect[*offset..offset + bytes.len()].copy_from_slice(bytes);
        }
        let odd = pattern(7, 4);
        part.write_at(3 * MIB as u64 + 5, &odd).unwrap();
        expect[3 * MIB + 5..].copy_from_slice(&odd);
        if local {
            assert!(matches!(part.direct, Direct::Open(_)));
            assert_eq!(
                part.direct_bytes,
                2 * MIB as u64,
                "both aligned MiBs went direct"
            );
        }
        // Read back through the buffered descriptor, as resuming does: the
        // page cache does not hide what went direct.
        assert_eq!(part.read_at(0, expect.len()).unwrap(), expect);
        part.set_len(expect.len() as u64).unwrap();
        assert!(!matches!(part.direct, Direct::Open(_)), "closed once sized");
        let target = part.finish(0o644, false).unwrap();
        assert_eq!(fs::read(target).unwrap(), expect);
    }

    #[test]
    fn tmpfs_is_written_buffered() {
        // /dev/shm is tmpfs on Linux: no device, so no direct descriptor.
        let tmp = tempfile::tempdir_in("/dev/shm").expect("/dev/shm, a tmpfs on Linux");
        let mut part = PartFile::open(tmp.path(), "f.bin", false).unwrap();
        let mut buf = crate::proto::receiver::aligned_buffer(1 << 20);
        buf.extend_from_slice(&vec![7u8; 1 << 20]);
        part.write_at(0, &buf).unwrap();
        assert!(matches!(part.direct, Direct::Off));
        assert_eq!(part.direct_bytes, 0);
        assert_eq!(part.read_at(0, 1 << 20).unwrap(), vec![7u8; 1 << 20]);
    }

    #[test]
    fn part_file_open_keeps_existing_partial_data() {
        let tmp = tempfile::tempdir().unwrap();
        let mut pf = PartFile::open(tmp.path(), "f", false).unwrap();
        pf.write_at(0, b"kept").unwrap();
        drop(pf);
        let pf = PartFile::open(tmp.path(), "f", false).unwrap();
        assert_eq!(pf.current_len().unwrap(), 4);
        assert_eq!(pf.read_at(0, 4).unwrap(), b"kept");
    }

    #[test]
    fn finish_without_force_keeps_existing_target() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        let mut pf = PartFile::open(out, "f.txt", false).unwrap();
        pf.write_at(0, b"new").unwrap();
        // Target appears while receiving: finish must still refuse it.
        write(&out.join("f.txt"), b"old");
        let part = pf.part_path().to_path_buf();
        let err = pf.finish(0o644, false).unwrap_err();
        assert!(matches!(err, FilesError::Exists { .. }));
        assert!(err
            .to_string()
            .ends_with("already exists; use --force to overwrite it"));
        assert_eq!(fs::read(out.join("f.txt")).unwrap(), b"old");
        assert_eq!(fs::read(&part).unwrap(), b"new");

        // And open itself refuses an existing target without force.
        assert!(matches!(
            PartFile::open(out, "f.txt", false).unwrap_err(),
            FilesError::Exists { .. }
        ));
    }

    #[test]
    fn finish_with_force_replaces_target() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        write(&out.join("f.txt"), b"old contents");
        let mut pf = PartFile::open(out, "f.txt", true).unwrap();
        pf.set_len(3).unwrap();
        pf.write_at(0, b"new").unwrap();
        let part = pf.part_path().to_path_buf();
        pf.finish(0, true).unwrap();
        assert_eq!(fs::read(out.join("f.txt")).unwrap(), b"new");
        assert!(!part.exists());
    }

    #[test]
    fn no_hard_link_fallback_still_refuses_existing_target() {
        let tmp = tempfile::tempdir().unwrap();
        let unsupported = |_: &Path, _: &Path| Err(io::Error::from_raw_os_error(libc::EPERM));
        let part = tmp.path().join(".t.ferry-part");
        let target = tmp.path().join("t");
        write(&part, b"new");
        write(&target, b"old");
        assert!(matches!(
            place_no_clobber_with(&part, &target, unsupported).unwrap_err(),
            FilesError::Exists { .. }
        ));
        assert_eq!(fs::read(&target).unwrap(), b"old");
        fs::remove_file(&target).unwrap();
        place_no_clobber_with(&part, &target, unsupported).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert!(!part.exists());
        // Any other link failure is reported, not papered over.
        write(&part, b"x");
        let broken = |_: &Path, _: &Path| Err(io::Error::from_raw_os_error(libc::EIO));
        assert!(matches!(
            place_no_clobber_with(&part, &tmp.path().join("u"), broken).unwrap_err(),
            FilesError::Io { .. }
        ));
    }

    #[test]
    fn part_file_refuses_directory_target() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("d")).unwrap();
        assert!(matches!(
            PartFile::open(tmp.path(), "d", true).unwrap_err(),
            FilesError::IsDirectory { .. }
        ));
    }

    #[test]
    fn planted_symlink_at_part_name_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        fs::create_dir(&out).unwrap();
        let victim = tmp.path().join("victim");
        write(&victim, b"precious");
        symlink(&victim, out.join(".x.ferry-part")).unwrap();
        let err = PartFile::open(&out, "x", true).unwrap_err();
        assert!(
            matches!(err, FilesError::Path(PathError::Symlink { .. })),
            "{err}"
        );
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert!(!out.join("x").exists());
    }

    #[test]
    fn long_names_get_a_short_enough_part_name() {
        let tmp = tempfile::tempdir().unwrap();
        let name = "ü".repeat(127); // 254 bytes
        let other = format!("{}x", "ü".repeat(126));
        let a = part_file_name(&name);
        assert!(a.len() <= MAX_COMPONENT_BYTES && a.ends_with(PART_SUFFIX));
        assert_ne!(a, part_file_name(&other));
        let mut pf = PartFile::open(tmp.path(), &name, false).unwrap();
        pf.write_at(0, b"ok").unwrap();
        let target = pf.finish(0o600, false).unwrap();
        assert_eq!(fs::read(target).unwrap(), b"ok");
    }

    #[test]
    fn part_and_state_names_fit_for_every_legal_length() {
        let mut names: Vec<String> = (1..=MAX_COMPONENT_BYTES).map(|n| "a".repeat(n)).collect();
        // Multibyte names at and just under the byte limit, cut mid-character.
        names.push("日".repeat(85)); // 255 bytes
        names.push(format!("{}é", "日".repeat(84))); // 254
        names.push(format!("x{}", "日".repeat(84))); // 253
        names.push("é".repeat(127)); // 254
        for name in &names {
            let part = part_file_name(name);
            let state = crate::resume::state_path(Path::new(&part));
            let state = state.to_str().unwrap();
            assert!(part.len() <= MAX_COMPONENT_BYTES, "{} bytes", part.len());
            assert!(state.len() <= MAX_COMPONENT_BYTES, "{} bytes", state.len());
            assert_eq!(
                part.strip_suffix(PART_SUFFIX),
                state.strip_suffix(STATE_SUFFIX)
            );
        }
        // Long names differing only at the end still get different files.
        let a = format!("{}1", "z".repeat(254));
        let b = format!("{}2", "z".repeat(254));
        assert_ne!(part_file_name(&a), part_file_name(&b));
    }

    #[test]
    fn source_file_reads_and_detects_short_file() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("s.bin");
        write(&p, b"0123456789");
        let stamp = Stamp::of(&fs::metadata(&p).unwrap());
        let sf = SourceFile::open(&p, stamp).unwrap();
        assert_eq!(&sf.read_at(3, 4).unwrap()[..], b"3456");
        let err = sf.read_at(8, 4).unwrap_err();
        assert!(matches!(err, FilesError::ShortRead { .. }));
        assert!(err.to_string().contains("s.bin"));
        assert!(matches!(
            SourceFile::open(&tmp.path().join("gone"), stamp).unwrap_err(),
            FilesError::NotFound { .. }
        ));
    }

    #[test]
    fn a_source_that_changes_after_the_offer_is_caught_at_the_next_read() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("s.bin");
        write(&p, b"0123456789");
        let stamp = Stamp::of(&fs::metadata(&p).unwrap());
        let sf = SourceFile::open(&p, stamp).unwrap();
        // Same length, other bytes, an hour later: only the times tell.
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(b"X", 0).unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        f.set_modified(later).unwrap();
        let err = sf.read_at(0, 4).unwrap_err();
        assert!(
            matches!(
                err,
                FilesError::Changed {
                    what: "it was written to",
                    ..
                }
            ),
            "{err}"
        );
        // Grown: caught when opened, too.
        f.write_all_at(b"more", 10).unwrap();
        let err = SourceFile::open(&p, stamp).unwrap_err();
        assert!(
            matches!(
                err,
                FilesError::Changed {
                    what: "it grew",
                    ..
                }
            ),
            "{err}"
        );
        // Replaced by a new file under the same name.
        let q = tmp.path().join("new.bin");
        write(&q, b"0123456789");
        fs::rename(&q, &p).unwrap();
        let err = SourceFile::open(&p, stamp).unwrap_err();
        assert!(
            matches!(
                err,
                FilesError::Changed {
                    what: "it was replaced by another file",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn empty_file_creation() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        let p = create_empty_file(out, "d/e.txt", 0o600, false).unwrap();
        assert_eq!(p, out.join("d/e.txt"));
        assert_eq!(fs::metadata(&p).unwrap().len(), 0);
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );

        write(&p, b"data");
        assert!(matches!(
            create_empty_file(out, "d/e.txt", 0o644, false).unwrap_err(),
            FilesError::Exists { .. }
        ));
        assert_eq!(fs::read(&p).unwrap(), b"data");
        // A hard link elsewhere to the replaced file keeps its data.
        let other = out.join("other-link");
        fs::hard_link(&p, &other).unwrap();
        create_empty_file(out, "d/e.txt", 0o644, true).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().len(), 0);
        assert_eq!(fs::read(&other).unwrap(), b"data");
        assert!(!out.join("d/.e.txt.ferry-part").exists());
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }

    #[test]
    fn free_space_is_measurable_even_before_out_exists() {
        let tmp = tempfile::tempdir().unwrap();
        let here = available_space(tmp.path()).unwrap();
        assert!(here > 0);
        let later = available_space(&tmp.path().join("not/yet")).unwrap();
        assert!(later > 0);
    }
}
