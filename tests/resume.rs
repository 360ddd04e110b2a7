//! Interrupted transfers, run again, move only what is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;

const MIB: u64 = 1 << 20;
const SIZE: u64 = 300 * MIB;

fn state_blocks(dir: &Path, name: &str) -> u64 {
    logged_blocks(&dir.join(format!(".{name}.ferry-state")))
}

/// Blocks recorded in a state log (16-byte header, 48-byte records).
fn logged_blocks(state: &Path) -> u64 {
    state
        .metadata()
        .map(|m| m.len().saturating_sub(16) / 48)
        .unwrap_or(0)
}

/// Wait until the receiver has logged `fraction` of the file's blocks.
fn wait_for_fraction(dir: &Path, name: &str, fraction: f64) {
    let want = ((SIZE / MIB) as f64 * fraction) as u64;
    for _ in 0..6000 {
        if state_blocks(dir, name) >= want {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the transfer never reached {fraction}");
}

fn spawn_receive(ticket: &str, out: &Path) -> Child {
    ferry()
        .args(["receive", ticket, "--out", path_str(out), "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn output(child: Child) -> Output {
    let out = child.wait_with_output().unwrap();
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn source(seed: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempdir();
    let file = dir.path().join("big.bin");
    write(&file, &random_bytes(SIZE as usize, seed));
    (dir, file)
}

/// A first run of a fresh source, with both sides killed at about 40%.
fn both_killed_at_40_percent(seed: u64) -> (tempfile::TempDir, PathBuf, tempfile::TempDir) {
    let (src, file) = source(seed);
    let dst = tempdir();
    let sender = send(&[path_str(&file)], None);
    let mut first = spawn_receive(&sender.ticket, dst.path());
    wait_for_fraction(dst.path(), "big.bin", 0.4);
    first.kill().unwrap();
    first.wait().unwrap();
    let _ = sender.kill();
    (src, file, dst)
}

/// The rerun moved at most what was missing plus one block.
fn assert_moved_only_the_rest(recv: &Output, held_blocks: u64) {
    assert!(recv.status.success(), "{}", recv.stderr);
    let json = recv.json();
    let moved = json["bytes_received"].as_u64().unwrap();
    let missing = SIZE - held_blocks * MIB;
    assert!(
        moved <= missing + MIB,
        "moved {moved} but only {missing} was missing"
    );
    assert!(
        held_blocks * MIB >= SIZE / 4,
        "the first run should have landed a good part"
    );
    assert!(recv.stderr.contains("resuming from"), "{}", recv.stderr);
}

#[test]
fn receiver_killed_resumes_with_the_same_ticket() {
    let (_src, file) = source(21);
    let dst = tempdir();
    let sender = send(&[path_str(&file), "--json"], None);
    let mut first = spawn_receive(&sender.ticket, dst.path());
    wait_for_fraction(dst.path(), "big.bin", 0.4);
    first.kill().unwrap();
    first.wait().unwrap();
    let held = state_blocks(dst.path(), "big.bin");
    assert!(!dst.path().join("big.bin").exists());
    // The sender is still there, waiting for the receiver to come back.
    let recv = receive(&sender.ticket, &["--out", path_str(dst.path()), "--json"]);
    let sent = sender.wait();
    assert_moved_only_the_rest(&recv, held);
    assert!(sent.status.success(), "{}", sent.stderr);
    assert_eq!(b3(&dst.path().join("big.bin")), b3(&file));
    assert!(!dst.path().join(".big.bin.ferry-part").exists());
    assert!(!dst.path().join(".big.bin.ferry-state").exists());
}

#[test]
fn sender_killed_resumes_from_a_new_ticket() {
    let (_src, file) = source(22);
    let dst = tempdir();
    let sender = send(&[path_str(&file)], None);
    let first = spawn_receive(&sender.ticket, dst.path());
    wait_for_fraction(dst.path(), "big.bin", 0.4);
    let _ = sender.kill();
    let first = output(first);
    assert_eq!(first.status.code(), Some(1));
    assert!(first.stderr.contains("again resumes"), "{}", first.stderr);
    let held = state_blocks(dst.path(), "big.bin");
    let sender = send(&[path_str(&file)], None);
    let recv = receive(&sender.ticket, &["--out", path_str(dst.path()), "--json"]);
    assert!(sender.wait().status.success());
    assert_moved_only_the_rest(&recv, held);
    assert_eq!(b3(&dst.path().join("big.bin")), b3(&file));
}

#[test]
fn connection_cut_then_rerun_with_the_same_ticket() {
    let (_src, file) = source(23);
    let dst = tempdir();
    let sender = send(&[path_str(&file)], None);
    let first = spawn_receive(&sender.ticket, dst.path());
    wait_for_fraction(dst.path(), "big.bin", 0.4);
    // Freeze the sender: to the receiver the path simply goes dead.
    let pid = sender.child.id() as libc::pid_t;
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let first = output(first);
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert_eq!(first.status.code(), Some(1));
    assert!(first.stderr.contains("lost the sender"), "{}", first.stderr);
    let held = state_blocks(dst.path(), "big.bin");
    let recv = receive(&sender.ticket, &["--out", path_str(dst.path()), "--json"]);
    let sent = sender.wait();
    assert_moved_only_the_rest(&recv, held);
    assert!(sent.status.success(), "{}", sent.stderr);
    assert_eq!(b3(&dst.path().join("big.bin")), b3(&file));
}

#[test]
fn corrupted_partial_block_is_detected_and_fetched_again() {
    let (_src, file, dst) = both_killed_at_40_percent(24);
    let held = state_blocks(dst.path(), "big.bin");
    // Flip bytes inside block 3 of the partial file.
    let part = dst.path().join(".big.bin.ferry-part");
    let mut data = std::fs::read(&part).unwrap();
    data[(3 * MIB + 100) as usize] ^= 0xff;
    std::fs::write(&part, &data).unwrap();
    let sender = send(&[path_str(&file)], None);
    let recv = receive(&sender.ticket, &["--out", path_str(dst.path()), "--json"]);
    assert!(sender.wait().status.success());
    assert!(recv.status.success(), "{}", recv.stderr);
    let moved = recv.json()["bytes_received"].as_u64().unwrap();
    let missing = SIZE - held * MIB;
    // The damaged block came again on top of what was missing.
    assert!(
        moved >= missing + MIB && moved <= missing + 2 * MIB,
        "moved {moved}, missing {missing}"
    );
    assert_eq!(b3(&dst.path().join("big.bin")), b3(&file));
}

#[test]
fn changed_source_blocks_are_fetched_again() {
    let (src, file, dst) = both_killed_at_40_percent(25);
    // The source changes in block 1 (same size) before the rerun.
    let mut data = std::fs::read(&file).unwrap();
    data[(MIB + 5) as usize] ^= 0x55;
    std::fs::write(&file, &data).unwrap();
    let sender = send(&[path_str(&file)], None);
    let recv = receive(&sender.ticket, &["--out", path_str(dst.path()), "--json"]);
    assert!(sender.wait().status.success());
    assert!(recv.status.success(), "{}", recv.stderr);
    assert_eq!(recv.json()["blake3"]["big.bin"], b3(&file).as_str());
    assert_same_tree(src.path(), dst.path());
}

#[test]
fn rerun_after_completion_moves_nothing_and_says_so() {
    let src = tempdir();
    let dst = tempdir();
    write(
        &src.path().join("d/a.bin"),
        &random_bytes(5 * MIB as usize + 3, 26),
    );
    write(&src.path().join("d/small.txt"), b"small");
    write(&src.path().join("d/empty"), b"");
    let dir = src.path().join("d");
    for run in 0..2 {
        let sender = send(&[path_str(&dir), "--json"], None);
        let recv = receive(&sender.ticket, &["--out", path_str(dst.path()), "--json"]);
        let sent = sender.wait();
        assert!(recv.status.success(), "run {run}: {}", recv.stderr);
        assert!(sent.status.success(), "run {run}: {}", sent.stderr);
        if run == 1 {
            assert_eq!(recv.json()["bytes_received"], 0);
            assert_eq!(sent.json()["bytes_sent"], 0);
            assert!(
                recv.stderr.contains("nothing needed to move"),
                "{}",
                recv.stderr
            );
        }
    }
    assert_same_tree(src.path(), dst.path());
}

/// The state log of a file whose name is at the 255-byte limit (multibyte
/// UTF-8, so the shortened hidden name is cut at a character boundary).
fn long_state_log(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(".ferry-state"))
}

#[test]
fn a_name_at_the_byte_limit_resumes() {
    let src = tempdir();
    let dst = tempdir();
    let name = "日".repeat(85); // 255 bytes
    let file = src.path().join(&name);
    let size = 64 * MIB;
    write(&file, &random_bytes(size as usize, 27));
    let sender = send(&[path_str(&file)], None);
    let mut first = spawn_receive(&sender.ticket, dst.path());
    let mut held = 0;
    for _ in 0..6000 {
        held = long_state_log(dst.path()).map_or(0, |p| logged_blocks(&p));
        if held >= 16 {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(held >= 16, "the first run never logged 16 blocks");
    let held = long_state_log(dst.path()).map_or(0, |p| logged_blocks(&p));
    let recv = receive(&sender.ticket, &["--out", path_str(dst.path()), "--json"]);
    let sent = sender.wait();
    assert!(recv.status.success(), "{}", recv.stderr);
    assert!(sent.status.success(), "{}", sent.stderr);
    let moved = recv.json()["bytes_received"].as_u64().unwrap();
    assert!(
        moved <= size - held * MIB + MIB,
        "moved {moved} though {held} blocks were held"
    );
    assert_eq!(b3(&dst.path().join(&name)), b3(&file));
    assert_eq!(tree(dst.path()), vec![name]);
}
