//! What a `ferry send` offers and where its bytes come from: the walk of
//! the paths into a manifest, each entry's source, the reads and their
//! hashes, and standard input on a thread of its own.

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::cli::SendArgs;
use crate::error::UsageError;
use crate::files;
use crate::proto::hash::{block_cv, single_block_root, Cv};
use crate::proto::manifest::{validate_path, DEFAULT_BLOCK_SIZE};
use crate::proto::{Entry, EntryKind, Manifest, ProtoError, ReadRequest};

/// Where each offered file's bytes come from.
pub(super) enum Source {
    /// A file, and what it looked like when offered.
    Path(PathBuf, files::Stamp),
    Stdin,
    Dir,
}

pub(super) struct ReadDone {
    pub(super) req: ReadRequest,
    pub(super) result: Result<(Bytes, Option<Cv>, Option<blake3::Hash>), files::FilesError>,
}

/// What this command offers, for every attempt.
#[derive(Clone, Copy)]
pub(super) struct Offer<'a> {
    pub(super) sources: &'a [Source],
    pub(super) stdin: Option<&'a StdinReader>,
    pub(super) names: &'a [String],
}

impl Offer<'_> {
    /// "offering big.iso (100 MiB); waiting for the receiver to accept".
    pub(super) fn describe(&self, manifest: &Manifest) -> String {
        let files = manifest.file_count();
        let size = crate::transfer::progress::offer_size(manifest);
        let what = match files {
            1 => manifest
                .entries
                .iter()
                .zip(self.names)
                .find(|(e, _)| e.kind == EntryKind::File)
                .map_or_else(String::new, |(_, name)| name.clone()),
            n => format!("{n} files"),
        };
        format!("offering {what} ({size}); waiting for the receiver to accept")
    }
}

pub(super) async fn build_offer(args: &SendArgs) -> Result<(Manifest, Vec<Source>, files::Walk)> {
    let stdin_count = args.paths.iter().filter(|p| p.as_os_str() == "-").count();
    if stdin_count > 1 {
        return Err(UsageError("`-` (standard input) can be given only once".into()).into());
    }
    let mut entries = Vec::new();
    let mut sources = Vec::new();
    let mut walk = files::Walk::default();
    if stdin_count == 1 {
        let name = args.name.clone().ok_or_else(|| {
            UsageError("sending `-` (standard input) needs --name NAME for the receiver".into())
        })?;
        validate_path(&name).map_err(|e| UsageError(format!("--name: {e}")))?;
        entries.push(Entry {
            path: name,
            kind: EntryKind::File,
            size: None,
            mode: 0o644,
        });
        sources.push(Source::Stdin);
    }
    let paths: Vec<PathBuf> = args
        .paths
        .iter()
        .filter(|p| p.as_os_str() != "-")
        .cloned()
        .collect();
    if !paths.is_empty() {
        let follow = args.follow_symlinks;
        walk = tokio::task::spawn_blocking(move || files::walk_sources(&paths, follow)).await??;
        for e in std::mem::take(&mut walk.entries) {
            let kind = match e.kind {
                files::EntryKind::File => EntryKind::File,
                files::EntryKind::Dir => EntryKind::Dir,
            };
            entries.push(Entry {
                path: e.rel_path,
                kind,
                size: (kind == EntryKind::File).then_some(e.size),
                mode: e.mode,
            });
            sources.push(if kind == EntryKind::File {
                Source::Path(e.abs_path, e.stamp)
            } else {
                Source::Dir
            });
        }
    }
    let manifest = Manifest {
        block_size: DEFAULT_BLOCK_SIZE,
        entries,
    };
    manifest
        .validate()
        .map_err(|e| UsageError(format!("cannot offer these paths: {e}")))?;
    Ok((manifest, sources, walk))
}

pub(super) fn hash(req: &ReadRequest, data: Bytes) -> (Bytes, Option<Cv>, Option<blake3::Hash>) {
    let cv = (!data.is_empty()).then(|| block_cv(req.offset, &data));
    let root = (req.block == 0).then(|| single_block_root(&data));
    (data, cv, root)
}

/// A failed read as the protocol's error: a changed source is named by its
/// offered path (the receiver is told that, not where it lives here).
pub(super) fn read_error(name: &str, e: files::FilesError) -> ProtoError {
    match e {
        files::FilesError::Changed { what, .. } => ProtoError::SourceChanged {
            path: name.to_string(),
            what: what.to_string(),
        },
        other => ProtoError::Local(other.to_string()),
    }
}

/// Standard input, read block by block on a thread of its own (reads of a
/// pipe block and can't be positioned). It lives as long as the command, so
/// an offer declined before any read can be made again.
pub(super) struct StdinReader {
    requests: std::sync::mpsc::Sender<(ReadRequest, mpsc::UnboundedSender<ReadDone>)>,
    /// Whether any byte was taken from standard input.
    consumed: Arc<AtomicBool>,
}

impl StdinReader {
    pub(super) fn new() -> StdinReader {
        let (requests, rx) =
            std::sync::mpsc::channel::<(ReadRequest, mpsc::UnboundedSender<ReadDone>)>();
        let consumed = Arc::new(AtomicBool::new(false));
        let count = consumed.clone();
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            while let Ok((req, done)) = rx.recv() {
                let mut buf = BytesMut::zeroed(req.len as usize);
                let mut filled = 0;
                let result = loop {
                    if filled == buf.len() {
                        break Ok(());
                    }
                    match stdin.read(&mut buf[filled..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            filled += n;
                            count.store(true, Ordering::Relaxed);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                buf.truncate(filled);
                let result =
                    result
                        .map(|()| hash(&req, buf.freeze()))
                        .map_err(|e| files::FilesError::Io {
                            action: "reading",
                            path: "standard input".into(),
                            err: e,
                        });
                // An attempt that ended no longer listens; the next one may.
                let _ = done.send(ReadDone { req, result });
            }
        });
        StdinReader { requests, consumed }
    }

    pub(super) fn read(&self, req: ReadRequest, done: mpsc::UnboundedSender<ReadDone>) {
        let _ = self.requests.send((req, done));
    }

    /// Whether any of standard input was read: it can't be offered again.
    pub(super) fn consumed(&self) -> bool {
        self.consumed.load(Ordering::Relaxed)
    }
}
