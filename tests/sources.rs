//! What the sender offers must be what it sends: files it cannot read are
//! refused before any ticket exists, and a file that changes while it is
//! being sent fails the transfer on both sides instead of arriving torn.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::*;

const MIB: usize = 1 << 20;

/// Blocks the receiver has verified and logged for `name` in `dir`.
fn logged_blocks(dir: &std::path::Path, name: &str) -> u64 {
    std::fs::metadata(dir.join(format!(".{name}.ferry-state")))
        .map(|m| m.len().saturating_sub(16) / 48)
        .unwrap_or(0)
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory preconditions.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

/// Stops the receiver once it has verified a few blocks of big.bin, lets
/// `change` alter the source, and returns both sides' outputs.
fn change_mid_transfer(
    change: impl FnOnce(&std::path::Path),
) -> (Output, Output, tempfile::TempDir) {
    let src = tempdir();
    let file = src.path().join("big.bin");
    // Far larger than what the sender can read ahead of the receiver (its
    // read window plus the receiver's flow-control window), so reads remain
    // after the change.
    write(&file, &random_bytes(96 * MIB, 31));
    let sender = send(&[path_str(&file)], None);
    let dst = tempdir();
    let recv = spawn_receive(&sender.ticket, dst.path());
    let mut waited = 0;
    while logged_blocks(dst.path(), "big.bin") < 2 {
        std::thread::sleep(Duration::from_millis(5));
        waited += 1;
        assert!(waited < 12_000, "the receiver never started writing");
    }
    // Both stopped: the receiver so that reads remain, the sender so that
    // none of them sees the change half done (an append moves the times
    // before the size).
    signal(recv.id(), libc::SIGSTOP);
    signal(sender.child.id(), libc::SIGSTOP);
    change(&file);
    signal(sender.child.id(), libc::SIGCONT);
    signal(recv.id(), libc::SIGCONT);
    let recv = finish(recv);
    (sender.wait(), recv, dst)
}

/// Something done to the source file while it is being sent.
type Change = dyn Fn(&std::path::Path);

#[test]
fn a_file_changed_while_it_is_sent_fails_on_both_sides_and_is_not_placed() {
    let rewrite = |f: &std::path::Path| {
        // 10 MiB overwritten in place: same size, same name, other bytes.
        let mut file = std::fs::OpenOptions::new().write(true).open(f).unwrap();
        file.seek(SeekFrom::Start(20 * MIB as u64)).unwrap();
        file.write_all(&random_bytes(10 * MIB, 32)).unwrap();
    };
    let grow = |f: &std::path::Path| {
        let mut file = std::fs::OpenOptions::new().append(true).open(f).unwrap();
        file.write_all(&random_bytes(MIB, 33)).unwrap();
    };
    let shrink = |f: &std::path::Path| {
        let file = std::fs::OpenOptions::new().write(true).open(f).unwrap();
        file.set_len(50 * MIB as u64).unwrap();
    };
    let cases: [(&str, &Change); 3] = [
        ("it was written to", &rewrite),
        ("it grew", &grow),
        ("it shrank", &shrink),
    ];
    for (what, change) in cases {
        let (sent, recv, dst) = change_mid_transfer(change);
        let said = format!("big.bin changed while it was being sent ({what})");
        // The sender's own failure: it stops rather than wait for another receiver.
        assert_eq!(sent.status.code(), Some(1), "{what}: {}", sent.stderr);
        assert!(sent.stderr.contains(&said), "{what}: {}", sent.stderr);
        assert!(
            !sent.stderr.contains("waiting for the next receiver"),
            "{}",
            sent.stderr
        );
        // The receiver is told why, and presents nothing as complete.
        assert_eq!(recv.status.code(), Some(1), "{what}: {}", recv.stderr);
        assert!(recv.stderr.contains(&said), "{what}: {}", recv.stderr);
        let left = tree(dst.path());
        assert!(!left.iter().any(|p| p == "big.bin"), "{what}: {left:?}");
    }
}

/// Runs `ferry ARGS` as the unprivileged `nobody`, for whom root's 0600
/// files are unreadable.
fn ferry_as_nobody(args: &[&str]) -> Output {
    run(Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", BIN])
        .args(args)
        .env("RUST_LOG", "warn"))
}

#[test]
fn unreadable_files_and_folders_are_refused_before_a_ticket() {
    let src = tempdir();
    std::fs::set_permissions(src.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let docs = src.path().join("docs");
    write(&docs.join("ok.txt"), b"readable");
    write(&docs.join("secret.txt"), b"root only");
    for (path, mode) in [
        (&docs, 0o755),
        (&docs.join("ok.txt"), 0o644),
        (&docs.join("secret.txt"), 0o600),
    ] {
        std::fs::set_permissions(path, PermissionsExt::from_mode(mode)).unwrap();
    }
    let out = ferry_as_nobody(&["send", path_str(&docs)]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert_eq!(
        out.stdout, "",
        "a ticket was printed for an offer that can't be sent"
    );
    let want = format!(
        "error: cannot read {}: permission denied; fix its permissions or leave it out\n",
        docs.join("secret.txt").display()
    );
    assert_eq!(out.stderr, want);

    // A folder it can't list, given directly or found inside another.
    std::fs::remove_file(docs.join("secret.txt")).unwrap();
    let private = docs.join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, PermissionsExt::from_mode(0o700)).unwrap();
    for given in [&docs, &private] {
        let out = ferry_as_nobody(&["send", path_str(given)]);
        assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
        assert_eq!(out.stdout, "");
        let want = format!(
            "error: cannot read {}: permission denied; fix its permissions or leave it out\n",
            private.display()
        );
        assert_eq!(out.stderr, want);
    }
}

/// A folder with one link and one FIFO inside, and the file the link names.
fn folder_with_a_link_and_a_fifo() -> (tempfile::TempDir, std::path::PathBuf) {
    let src = tempdir();
    let docs = src.path().join("docs");
    write(&docs.join("a.txt"), b"plain");
    write(&src.path().join("elsewhere.txt"), b"linked");
    std::os::unix::fs::symlink(src.path().join("elsewhere.txt"), docs.join("link.txt")).unwrap();
    let fifo = std::ffi::CString::new(path_str(&docs.join("pipe"))).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    (src, docs)
}

#[test]
fn what_a_folder_walk_leaves_out_is_one_plain_sentence_and_in_the_json() {
    let (_src, docs) = folder_with_a_link_and_a_fifo();
    let sender = send(&[path_str(&docs), "--json"], None);
    let dst = tempdir();
    let recv = receive(&sender.ticket, &["--out", path_str(dst.path())]);
    assert!(recv.status.success(), "{}", recv.stderr);
    // The receiver is told, in its own words (not the sender's).
    assert!(
        recv.stderr.contains(
            "\nthe sender left out 1 symbolic link and 1 FIFO (ferry sends regular files and folders)\n"
        ),
        "{}",
        recv.stderr
    );
    let sent = sender.wait();
    assert!(sent.status.success(), "{}", sent.stderr);
    // First, before the ticket's instructions; plain text into a file.
    assert_eq!(
        sent.stderr.lines().next().unwrap(),
        "left out 1 symbolic link and 1 FIFO; ferry sends regular files and folders (--follow-symlinks sends what links point to)"
    );
    assert!(!sent.stderr.contains('\x1b'), "{}", sent.stderr);
    assert!(!sent.stderr.contains("WARN"), "{}", sent.stderr);
    let json = sent.json();
    assert_eq!(
        json["skipped"],
        serde_json::json!([
            {"path": "docs/link.txt", "why": "symlink"},
            {"path": "docs/pipe", "why": "fifo"}
        ])
    );
    assert_eq!(tree(dst.path()), vec!["docs/", "docs/a.txt"]);

    // -q: not a word but errors.
    // (Without the tests' RUST_LOG, which would override it.)
    let mut quiet = ferry();
    quiet
        .env_remove("RUST_LOG")
        .args(["send", path_str(&docs), "-q"]);
    let sender = spawn_sender(quiet, None);
    let out = tempdir();
    let recv = run(ferry().env_remove("RUST_LOG").args([
        "receive",
        &sender.ticket,
        "--out",
        path_str(out.path()),
        "-q",
    ]));
    assert!(recv.status.success(), "{}", recv.stderr);
    let sent = sender.wait();
    assert!(sent.status.success());
    assert_eq!(sent.stderr, "");
    assert_eq!(recv.stderr, "");

    // --follow-symlinks sends what the link points to.
    let sender = send(&[path_str(&docs), "--follow-symlinks"], None);
    let dst = tempdir();
    let recv = receive(&sender.ticket, &["--out", path_str(dst.path())]);
    assert!(recv.status.success(), "{}", recv.stderr);
    let sent = sender.wait();
    assert!(
        sent.stderr
            .starts_with("left out 1 FIFO; ferry sends regular files and folders\n"),
        "{}",
        sent.stderr
    );
    assert_eq!(
        std::fs::read(dst.path().join("docs/link.txt")).unwrap(),
        b"linked"
    );
}
