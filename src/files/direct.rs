//! `O_DIRECT` writes for partial files: when a file system takes them and how
//! the second descriptor is opened.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

/// The `O_DIRECT` descriptor of a [`PartFile`], opened on the first write
/// that can use it (small files never need one).
#[derive(Debug)]
pub(super) enum Direct {
    Untried,
    Open(File),
    /// Not a local disk file system, or it refused `O_DIRECT`: buffered only.
    Off,
}

/// Offsets, lengths and buffer addresses of direct writes are multiples of
/// this (the largest logical block size in common use).
pub(super) const DIRECT_ALIGN: usize = crate::proto::receiver::BLOCK_ALIGN;

/// Smaller writes stay buffered: a direct write waits for the device, and
/// small files are better flushed together in one batch (the copy they save
/// is small). ferry's 1 MiB blocks are well above this.
pub(super) const DIRECT_MIN: usize = 256 * 1024;

/// Whether `file` is on a local disk file system that does `O_DIRECT` well.
/// Network and FUSE mounts accept it too, but there every direct write
/// waits for the server, with no write-behind; tmpfs has no device.
pub(super) fn takes_direct_writes(file: &File) -> bool {
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
pub(super) fn open_direct(file: &File) -> Option<File> {
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
