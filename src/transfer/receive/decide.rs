//! Deciding on an offer: showing it, checking `--out` and what is already
//! there (nothing overwritten without --force, enough space, earlier
//! partial files re-verified), and asking the user.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use indicatif::HumanBytes;
use tokio_util::sync::CancellationToken;

use super::Ctx;
use crate::error::Interrupted;
use crate::files::{self, resume};
use crate::proto::{left_out_sentence, EntryKind, Held, LeftOut, Manifest};

/// Show the offer, check it fits and overwrites nothing, and ask if we may.
pub(super) async fn decide(
    manifest: &Manifest,
    left_out: &LeftOut,
    ctx: &mut Ctx,
    cancel: &CancellationToken,
) -> Result<Plan> {
    let files = manifest.file_count();
    let dirs = manifest.entries.len() - files;
    let folders = match dirs {
        0 => String::new(),
        1 => " in 1 folder".into(),
        n => format!(" in {n} folders"),
    };
    let mut lines = vec![format!(
        "offered: {files} file{}{folders}, {}",
        if files == 1 { "" } else { "s" },
        crate::transfer::progress::offer_size(manifest)
    )];
    for e in manifest
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .take(10)
    {
        let size = e
            .size
            .map_or("a stream".to_string(), |s| HumanBytes(s).to_string());
        lines.push(format!("  {} ({size})", e.path));
    }
    if files > 10 {
        lines.push(format!("  ... and {} more", files - 10));
    }
    if let Some(list) = left_out_sentence(left_out) {
        lines.push(format!(
            "the sender left out {list} (ferry sends regular files and folders)"
        ));
    }
    ctx.progress.say(&lines.join("\n"));

    let out = ctx.opts.out.clone();
    let force = ctx.opts.force;
    let m = manifest.clone();
    let plan = tokio::task::spawn_blocking(move || preflight(&out, &m, force)).await??;

    if ctx.opts.ask {
        let question = format!("Accept and save into {}? [Y/n] ", ctx.opts.out.display());
        // A thread of its own, so Ctrl-C need not wait for Enter: the
        // process exits with the read still blocked.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            eprint!("{question}");
            let mut line = String::new();
            let _ = tx.send(std::io::stdin().read_line(&mut line).map(|_| line));
        });
        let answer = tokio::select! {
            answer = rx => answer.map_err(|_| anyhow!("the question was not answered"))??,
            _ = cancel.cancelled() => {
                eprintln!();
                return Err(Interrupted.into());
            }
        };
        if matches!(answer.trim().to_lowercase().as_str(), "n" | "no") {
            return Err(Refused {
                message: "declined; nothing was written".into(),
                for_sender: "its user said no".into(),
            }
            .into());
        }
    }
    Ok(plan)
}

/// This receiver turns an offer down: `message` for its user, and the short
/// form its cancel carries to the sender ("x.bin already exists there").
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(super) struct Refused {
    pub(super) message: String,
    pub(super) for_sender: String,
}

/// Before connecting: `--out` is a folder, or can be made (it is created
/// only once an offer is accepted), and we can write there.
pub(super) fn check_out(out: &Path) -> Result<()> {
    // The folder itself, or the nearest existing one above it.
    let mut dir = out;
    loop {
        match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) if dir == out => bail!(
                "--out {} is a file, not a folder; give a folder (a missing one is created)",
                out.display()
            ),
            Ok(_) => bail!(
                "--out {}: {} is a file, so the folder can't be made there; give another --out",
                out.display(),
                dir.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                dir = match dir.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
            }
            Err(e) => bail!(
                "cannot use --out {}: {}",
                out.display(),
                files::io_reason(&e)
            ),
        }
    }
    // Permission bits don't tell root, a read-only mount or an immutable
    // folder apart: try it.
    let probe = dir.join(format!(
        ".ferry-probe-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(file) => {
            drop(file);
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => bail!(
            "cannot write into {} ({}); give a folder you can write to with --out",
            dir.display(),
            files::io_reason(&e)
        ),
    }
}

/// What the disk already holds for an offer.
#[derive(Default)]
pub(super) struct Plan {
    pub(super) held: Vec<(u32, Held)>,
    /// Files whose complete target already exists: they must match, block
    /// for block, or the transfer fails (never overwritten without --force).
    pub(super) locked: HashSet<u32>,
}

/// Before a byte is written: every path is safe under `out`, nothing would
/// be overwritten without --force, what is already here (an earlier run's
/// partial files, or complete files) is re-verified, and the rest fits on
/// the disk.
fn preflight(out: &Path, manifest: &Manifest, force: bool) -> Result<Plan> {
    let mut plan = Plan::default();
    let mut have_bytes = 0u64;
    for (i, e) in manifest.entries.iter().enumerate() {
        let target = files::safe_join(out, &e.path)?;
        let (EntryKind::File, Some(size)) = (e.kind, e.size) else {
            continue;
        };
        resume::drop_orphan_log(out, &e.path)?;
        let existing = target.symlink_metadata().ok();
        let held = match existing {
            Some(meta) if !force => {
                if !meta.is_file() || meta.len() != size {
                    return Err(Refused {
                        message: format!(
                            "{} already exists in {}; use --force to replace it, or --out DIR",
                            e.path,
                            out.display()
                        ),
                        for_sender: format!("{} already exists there", e.path),
                    }
                    .into());
                }
                plan.locked.insert(i as u32);
                resume::held_in_file(&target, size, manifest.block_size)?
            }
            _ => resume::held_in_part(out, &e.path, size, manifest.block_size)?,
        };
        have_bytes += held
            .blocks
            .iter()
            .map(|(b, _)| {
                (size - b * u64::from(manifest.block_size)).min(u64::from(manifest.block_size))
            })
            .sum::<u64>();
        if !held.blocks.is_empty() || plan.locked.contains(&(i as u32)) {
            plan.held.push((i as u32, held));
        }
    }
    let need = manifest.total_bytes().saturating_sub(have_bytes);
    let free = files::available_space(out)?;
    if need > free {
        return Err(Refused {
            message: format!(
                "not enough space in {}: the transfer needs {} more and {} is free; free some space or use --out DIR",
                out.display(),
                HumanBytes(need),
                HumanBytes(free)
            ),
            for_sender: format!("it has no room for {} (not enough space)", HumanBytes(need)),
        }
        .into());
    }
    Ok(plan)
}
