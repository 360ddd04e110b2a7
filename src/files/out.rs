//! Paths under `--out`: checking a peer's relative path, joining it without
//! following symlinks, creating folders safely, the hidden names of partial
//! files and state logs, and free space.

use std::fs::{self, File, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;

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
pub(super) fn ensure_out(out: &Path) -> Result<(), FilesError> {
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
pub(super) fn prepare_parent<'a>(
    out: &Path,
    rel: &'a str,
) -> Result<(PathBuf, &'a str), FilesError> {
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
pub(super) fn check_target(target: &Path, force: bool) -> Result<(), FilesError> {
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
pub(super) fn part_file_name(name: &str) -> String {
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

pub(super) fn fsync_dir(dir: &Path) {
    // The rename is already done; a failed directory fsync only weakens
    // crash durability, so it is reported rather than failing the file.
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot fsync folder");
    }
}

pub(super) fn set_mode(file: &File, path: &Path, mode: u32) -> Result<(), FilesError> {
    let mode = mode & 0o777;
    if mode == 0 {
        return Ok(());
    }
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(|e| io_err("cannot set permissions of", path, e))
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

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::files::test_util::*;

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
            let state = crate::files::resume::state_path(Path::new(&part));
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
    fn free_space_is_measurable_even_before_out_exists() {
        let tmp = tempfile::tempdir().unwrap();
        let here = available_space(tmp.path()).unwrap();
        assert!(here > 0);
        let later = available_space(&tmp.path().join("not/yet")).unwrap();
        assert!(later > 0);
    }
}
