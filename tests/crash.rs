//! Crash safety: a receiver killed at random moments never leaves a file in
//! place that fails its hash, and a rerun always completes the transfer.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;

#[test]
fn twenty_random_kills_never_leave_a_bad_file_and_a_rerun_completes() {
    let src = tempdir();
    // Several files, so kills land before, inside and after file boundaries.
    for (i, size) in [0usize, 3, 1 << 20, (5 << 20) + 7, 24 << 20, 40 << 20]
        .iter()
        .enumerate()
    {
        write(
            &src.path().join(format!("set/f{i}.bin")),
            &random_bytes(*size, 100 + i as u64),
        );
    }
    let set = src.path().join("set");
    let expected: Vec<(String, String)> = tree(&set)
        .into_iter()
        .filter(|r| !r.ends_with('/'))
        .map(|r| (r.clone(), b3(&set.join(&r))))
        .collect();
    // Kills land anywhere: while meeting the sender, re-verifying what is on
    // disk, receiving, finishing files. Connecting takes tens of milliseconds
    // and 70 MiB moves in about half a second, so a receiver sometimes
    // finishes before its kill; then the check below runs and a new cycle
    // starts from an empty folder, until 20 receivers have been killed.
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut kills = 0;
    while kills < 20 {
        let dst = tempdir();
        let mut sender = send(&[path_str(&set)], None);
        while kills < 20 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let delay = Duration::from_millis(10 + seed % 400);
            let mut child = ferry()
                .args(["receive", &sender.ticket, "--out", path_str(dst.path())])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(delay);
            let _ = child.kill();
            let _ = child.wait();
            kills += 1;
            // Whatever is in place under its real name must be complete and right.
            for (rel, hash) in &expected {
                let placed = dst.path().join("set").join(rel);
                if placed.exists() {
                    assert_eq!(
                        &b3(&placed),
                        hash,
                        "kill {kills}: {rel} is in place but wrong"
                    );
                }
            }
            if sender.child.try_wait().unwrap().is_some() {
                break; // that receiver finished before its kill
            }
        }
        // A rerun completes the transfer, unless a killed receiver already did.
        if sender.child.try_wait().unwrap().is_none() {
            let done = receive(&sender.ticket, &["--out", path_str(dst.path()), "--json"]);
            let sent = sender.wait();
            assert!(
                done.status.success(),
                "receiver: {}\nsender: {}",
                done.stderr,
                sent.stderr
            );
            assert!(sent.status.success(), "{}", sent.stderr);
        } else {
            let sent = sender.wait();
            assert!(sent.status.success(), "{}", sent.stderr);
        }
        assert_same_tree(&set, &dst.path().join("set"));
        // Nothing partial is left behind.
        assert!(
            tree(dst.path()).iter().all(|p| !p.contains(".ferry-")),
            "{:?}",
            tree(dst.path())
        );
    }
}
