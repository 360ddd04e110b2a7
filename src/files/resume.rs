//! What a receiver keeps between runs so that a rerun moves only what is
//! missing: beside each `.NAME.ferry-part`, a `.NAME.ferry-state` log of the
//! blocks written there, each with its BLAKE3 chaining value.
//!
//! The log is append-only, one checksummed 48-byte record per block, so a
//! crash at any instant leaves it readable: a torn or damaged record is
//! skipped. The log is never trusted alone: before a block is offered as
//! held, its bytes are read back from the partial file and hashed again. That
//! is also why no fsync is needed per block: a record whose data never reached
//! the disk simply fails re-verification and the block is fetched again.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::files::{self, io_err, write_err, FilesError, PART_SUFFIX, STATE_SUFFIX};
use crate::proto::hash::{block_cv, single_block_root, Cv};
use crate::proto::manifest::block_count;
use crate::proto::Held;

const MAGIC: &[u8; 8] = b"FRYSTAT1";
const HEADER_LEN: usize = 16;
const RECORD_LEN: usize = 48;

/// The state log beside a partial file: the same hidden stem (see
/// [`files::hidden_stem`]), which already leaves room for this suffix.
pub fn state_path(part: &Path) -> PathBuf {
    let name = part
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(PART_SUFFIX).unwrap_or(&name);
    part.with_file_name(format!("{stem}{STATE_SUFFIX}"))
}

fn header(block_size: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&block_size.to_be_bytes());
    h
}

fn record(block: u64, cv: &Cv) -> [u8; RECORD_LEN] {
    let mut r = [0u8; RECORD_LEN];
    r[..8].copy_from_slice(&block.to_be_bytes());
    r[8..40].copy_from_slice(cv);
    let check = blake3::hash(&r[..40]);
    r[40..].copy_from_slice(&check.as_bytes()[..8]);
    r
}

/// Decode a state log: the blocks it lists (the last record for a block
/// wins). Anything unreadable yields fewer blocks, never an error.
pub fn parse(bytes: &[u8], block_size: u32) -> Vec<(u64, Cv)> {
    if bytes.len() < HEADER_LEN || bytes[..HEADER_LEN] != header(block_size) {
        return Vec::new();
    }
    let mut latest = std::collections::BTreeMap::new();
    for r in bytes[HEADER_LEN..].chunks_exact(RECORD_LEN) {
        if blake3::hash(&r[..40]).as_bytes()[..8] != r[40..] {
            continue;
        }
        let mut block = [0u8; 8];
        block.copy_from_slice(&r[..8]);
        let mut cv = [0u8; 32];
        cv.copy_from_slice(&r[8..40]);
        latest.insert(u64::from_be_bytes(block), cv);
    }
    latest.into_iter().collect()
}

/// Appends records for one partial file.
pub struct StateLog {
    file: File,
    path: PathBuf,
}

impl StateLog {
    /// Open the log beside `part`, starting it afresh if it is missing or
    /// was written for another block size.
    pub fn open(part: &Path, block_size: u32) -> Result<StateLog, FilesError> {
        let path = state_path(part);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| write_err("cannot create", &path, e))?;
        let mut head = [0u8; HEADER_LEN];
        let valid = file.read_exact_at(&mut head, 0).is_ok() && head == header(block_size);
        if !valid {
            file.set_len(0)
                .map_err(|e| write_err("cannot reset", &path, e))?;
            file.write_all(&header(block_size))
                .map_err(|e| write_err("cannot write", &path, e))?;
        } else {
            // Drop a torn tail so new records stay aligned.
            let len = file
                .metadata()
                .map_err(|e| io_err("cannot inspect", &path, e))?
                .len();
            let whole = HEADER_LEN as u64
                + (len - HEADER_LEN as u64) / RECORD_LEN as u64 * RECORD_LEN as u64;
            if whole != len {
                file.set_len(whole)
                    .map_err(|e| write_err("cannot repair", &path, e))?;
            }
        }
        Ok(StateLog { file, path })
    }

    /// Appends one record: `block` is written to the partial file and
    /// verified with chaining value `cv`.
    pub fn record(&mut self, block: u64, cv: &Cv) -> Result<(), FilesError> {
        self.file
            .write_all(&record(block, cv))
            .map_err(|e| write_err("cannot write", &self.path, e))
    }

    /// The file is complete and in place: the log is no longer needed.
    pub fn remove(self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Removes the state log of `rel` under `out` if its partial file is gone:
/// a receiver killed after placing the file but before removing the log
/// left it, and no run would otherwise ever clear it.
pub fn drop_orphan_log(out: &Path, rel: &str) -> Result<(), FilesError> {
    let part = files::part_path_for(out, rel)?;
    if part
        .symlink_metadata()
        .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    {
        let _ = fs::remove_file(state_path(&part));
    }
    Ok(())
}

/// Blocks of `rel` already in its partial file under `out`, each read back
/// and re-hashed; only those matching their logged CV are returned.
pub fn held_in_part(out: &Path, rel: &str, size: u64, block_size: u32) -> Result<Held, FilesError> {
    let part = files::part_path_for(out, rel)?;
    let mut log = Vec::new();
    match File::open(state_path(&part)) {
        Ok(mut f) => {
            f.read_to_end(&mut log)
                .map_err(|e| io_err("cannot read", &state_path(&part), e))?;
        }
        Err(_) => return Ok(Held::default()),
    }
    let listed = parse(&log, block_size);
    let Ok(data) = File::open(&part) else {
        return Ok(Held::default());
    };
    Ok(verify(
        &data,
        listed.into_iter().map(|(b, cv)| (b, Some(cv))),
        size,
        block_size,
    ))
}

/// Every block of an existing complete file (a rerun after success).
pub fn held_in_file(path: &Path, size: u64, block_size: u32) -> Result<Held, FilesError> {
    let file = File::open(path).map_err(|e| io_err("cannot read", path, e))?;
    Ok(verify(
        &file,
        (0..block_count(size, block_size)).map(|b| (b, None)),
        size,
        block_size,
    ))
}

/// Read each block back and keep those whose bytes hash to the expected CV
/// (any CV when `None`).
fn verify(
    file: &File,
    blocks: impl Iterator<Item = (u64, Option<Cv>)>,
    size: u64,
    block_size: u32,
) -> Held {
    let bs = u64::from(block_size);
    let n = block_count(size, block_size);
    let mut held = Held::default();
    let mut buf = vec![0u8; block_size as usize];
    for (block, want) in blocks {
        if block >= n {
            continue;
        }
        let offset = block * bs;
        let len = (size - offset).min(bs) as usize;
        if file.read_exact_at(&mut buf[..len], offset).is_err() {
            continue;
        }
        let cv = block_cv(offset, &buf[..len]);
        if want.is_some_and(|w| w != cv) {
            continue;
        }
        if n == 1 {
            held.single_root = Some(single_block_root(&buf[..len]));
        }
        held.blocks.push((block, cv));
    }
    held
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_round_trip_skips_torn_and_damaged_records() {
        let mut bytes = header(1 << 20).to_vec();
        bytes.extend_from_slice(&record(3, &[1; 32]));
        bytes.extend_from_slice(&record(5, &[2; 32]));
        let mut bad = record(7, &[3; 32]);
        bad[20] ^= 1;
        bytes.extend_from_slice(&bad);
        bytes.extend_from_slice(&record(3, &[9; 32])); // a later record wins
        bytes.extend_from_slice(&record(8, &[4; 32])[..30]); // torn
        assert_eq!(parse(&bytes, 1 << 20), vec![(3, [9; 32]), (5, [2; 32])]);
        assert!(parse(&bytes, 1 << 19).is_empty(), "another block size");
        assert!(parse(b"garbage", 1 << 20).is_empty());
        assert!(parse(&[], 1 << 20).is_empty());
    }

    #[test]
    fn held_blocks_are_reverified_against_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let bs = 16 * 1024u32;
        let data: Vec<u8> = (0..5 * bs as usize).map(|i| (i % 251) as u8).collect();
        let mut part = files::PartFile::open(dir.path(), "f.bin", false).unwrap();
        let mut log = StateLog::open(part.part_path(), bs).unwrap();
        for b in 0..3u64 {
            let chunk = &data[(b * bs as u64) as usize..((b + 1) * bs as u64) as usize];
            part.write_at(b * u64::from(bs), chunk).unwrap();
            log.record(b, &block_cv(b * u64::from(bs), chunk)).unwrap();
        }
        // Block 2 is corrupted on disk after it was logged.
        part.write_at(2 * u64::from(bs) + 7, &[0xff]).unwrap();
        let held = held_in_part(dir.path(), "f.bin", data.len() as u64, bs).unwrap();
        assert_eq!(
            held.blocks.iter().map(|b| b.0).collect::<Vec<_>>(),
            vec![0, 1]
        );
        // Reopening keeps the records.
        drop(log);
        let _log = StateLog::open(part.part_path(), bs).unwrap();
        assert_eq!(
            held_in_part(dir.path(), "f.bin", data.len() as u64, bs)
                .unwrap()
                .blocks
                .len(),
            2
        );
    }

    #[test]
    fn a_log_without_its_partial_file_is_removed_and_one_with_it_kept() {
        let dir = tempfile::tempdir().unwrap();
        let part = files::PartFile::open(dir.path(), "f.bin", false).unwrap();
        let log = StateLog::open(part.part_path(), 1 << 20).unwrap();
        let state = state_path(part.part_path());
        drop_orphan_log(dir.path(), "f.bin").unwrap();
        assert!(state.exists(), "the partial file is there: its log stays");
        // Placed (the part renamed to its real name), then killed before the
        // log was removed.
        fs::rename(part.part_path(), dir.path().join("f.bin")).unwrap();
        drop(log);
        drop_orphan_log(dir.path(), "f.bin").unwrap();
        assert!(!state.exists(), "the orphan log was left");
        assert!(dir.path().join("f.bin").exists());
    }
}
