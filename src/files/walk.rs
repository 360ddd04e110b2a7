//! Listing what to send: walking the paths given on the command line into
//! the sorted entries of an offer, and naming what was left out.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;

// ---------------------------------------------------------------- sending

/// What a source entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (a link to one, when followed).
    File,
    /// A folder, listed before everything in it.
    Dir,
}

/// One file or folder to send.
#[derive(Debug, Clone)]
pub struct SourceEntry {
    /// Protocol path: UTF-8, `/`-separated, starting with the source's own name.
    pub rel_path: String,
    /// File or folder.
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
    /// The stamp of the file `meta` describes.
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
    pub(super) fn change(&self, now: &Stamp) -> Option<&'static str> {
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
    /// What to offer, sorted component-wise: each folder right before
    /// its contents.
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
    /// A named pipe (FIFO).
    Fifo,
    /// A Unix domain socket.
    Socket,
    /// A block or character device.
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
pub(super) fn top_level_name(path: &Path) -> Result<String, FilesError> {
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

pub(super) fn push_entry(
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
pub(super) fn walk_dir(
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

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::files::test_util::*;

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
}
