//! Reading a source file for sending, positionally, and catching a file that
//! changes while it is read.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::*;

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

    /// Where the file is read from on this machine.
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

pub(super) fn read_exact(
    file: &File,
    path: &Path,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>, FilesError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::files::test_util::*;

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
}
