//! Moving a verified partial file to its target without overwriting a file
//! that appeared there meanwhile.

use std::fs::{self};
use std::io;
use std::path::Path;

use super::*;

/// Move `part` to `target` unless `target` exists. `link` fails atomically
/// if the name is taken, unlike a check followed by `rename`; that racy
/// fallback is used only where hard links are unsupported.
pub(super) fn place_no_clobber(part: &Path, target: &Path) -> Result<(), FilesError> {
    place_no_clobber_with(part, target, |a, b| fs::hard_link(a, b))
}

/// [`place_no_clobber`] with the linking step injectable, so the fallback
/// for file systems without hard links can be tested.
pub(super) fn place_no_clobber_with(
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

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::files::test_util::*;

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
}
