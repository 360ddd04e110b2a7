//! End-to-end transfers between two real `ferry` processes on loopback.

mod common;

use std::path::Path;
use std::str::FromStr;

use common::*;

const MIB: usize = 1 << 20;

/// The tree the core issue asks for: nested folders, an empty folder, an
/// empty file, exactly one block, one block plus one byte, a large random
/// file, non-ASCII names.
fn make_tree(root: &Path, big: usize) {
    write(&root.join("tree/a/b/deep.txt"), b"deep in the tree\n");
    std::fs::create_dir_all(root.join("tree/empty-folder")).unwrap();
    write(&root.join("tree/empty.bin"), b"");
    write(&root.join("tree/one-block.bin"), &random_bytes(MIB, 1));
    write(
        &root.join("tree/block-plus-one.bin"),
        &random_bytes(MIB + 1, 2),
    );
    write(&root.join("tree/big.bin"), &random_bytes(big, 3));
    write(&root.join("tree/é/ü ñ.txt"), "grüße\n".as_bytes());
    write(&root.join("tree/日本語.txt"), "こんにちは\n".as_bytes());
}

fn check_json_hashes(json: &serde_json::Value, src_root: &Path) {
    assert_eq!(json["ok"], true);
    let hashes = json["blake3"].as_object().expect("blake3 map");
    assert_eq!(hashes.len(), 7, "{hashes:?}");
    for (rel, hex) in hashes {
        assert_eq!(hex.as_str().unwrap(), b3(&src_root.join(rel)), "{rel}");
    }
}

fn tree_transfer(server: Option<&str>) {
    let src = tempdir();
    let dst = tempdir();
    make_tree(src.path(), 200 * MIB);
    let tree = src.path().join("tree");
    let mut args = vec![path_str(&tree), "--json"];
    if let Some(url) = server {
        args.extend(["--server", url]);
    }
    let sender = send(&args, None);
    assert!(
        sender.ticket.starts_with("ferry"),
        "ticket: {:?}",
        sender.ticket
    );
    let recv = receive(
        &sender.ticket,
        &["--out", path_str(dst.path()), "--json", "--yes"],
    );
    let sent = sender.wait();
    assert!(recv.status.success(), "receive failed: {}", recv.stderr);
    assert!(sent.status.success(), "send failed: {}", sent.stderr);
    assert_same_tree(src.path(), dst.path());
    let rj = recv.json();
    check_json_hashes(&rj, src.path());
    check_json_hashes(&sent.json(), src.path());
    let total = (200 * MIB + 2 * MIB + 1 + 17 + "grüße\n".len() + "こんにちは\n".len()) as u64;
    assert_eq!(rj["bytes"], total);
    assert_eq!(rj["bytes_received"], total);
    assert_eq!(rj["files"], 7);
    assert_eq!(rj["path"], "direct");
}

#[test]
fn folder_tree_with_embedded_rendezvous() {
    tree_transfer(None);
}

#[test]
fn folder_tree_through_ferry_serve() {
    let server = serve();
    tree_transfer(Some(&server.url));
}

#[test]
fn stdin_to_a_named_file() {
    let dst = tempdir();
    let data = random_bytes(3 * MIB + 12345, 7);
    let sender = send(&["-", "--name", "from-stdin.bin"], Some(data.clone()));
    let recv = receive(&sender.ticket, &["--out", path_str(dst.path()), "--json"]);
    let sent = sender.wait();
    assert!(recv.status.success(), "{}", recv.stderr);
    assert!(sent.status.success(), "{}", sent.stderr);
    assert_eq!(
        std::fs::read(dst.path().join("from-stdin.bin")).unwrap(),
        data
    );
    assert_eq!(
        recv.json()["blake3"]["from-stdin.bin"],
        blake3::hash(&data).to_hex().as_str()
    );
}

#[test]
fn stdin_needs_a_name() {
    let out = ferry().args(["send", "-"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--name"));
}

#[test]
fn existing_file_is_kept_without_force_and_replaced_with_it() {
    let src = tempdir();
    let dst = tempdir();
    write(&src.path().join("note.txt"), b"new content");
    write(&dst.path().join("note.txt"), b"precious old content");
    let file = src.path().join("note.txt");

    let sender = send(&[path_str(&file)], None);
    let recv = receive(&sender.ticket, &["--out", path_str(dst.path())]);
    assert!(!recv.status.success());
    assert!(
        recv.stderr.contains("already exists") && recv.stderr.contains("--force"),
        "{}",
        recv.stderr
    );
    assert_eq!(
        std::fs::read(dst.path().join("note.txt")).unwrap(),
        b"precious old content"
    );

    // The advice can be followed: the same sender is still waiting.
    let recv = receive(&sender.ticket, &["--out", path_str(dst.path()), "--force"]);
    assert!(recv.status.success(), "{}", recv.stderr);
    let sent = sender.wait();
    assert!(sent.status.success(), "{}", sent.stderr);
    assert!(
        sent.stderr
            .contains("the receiver declined: note.txt already exists there"),
        "{}",
        sent.stderr
    );
    assert_eq!(
        std::fs::read(dst.path().join("note.txt")).unwrap(),
        b"new content"
    );
}

#[test]
fn sender_killed_mid_transfer() {
    let src = tempdir();
    let dst = tempdir();
    write(&src.path().join("big.bin"), &random_bytes(400 * MIB, 11));
    let file = src.path().join("big.bin");
    let sender = send(&[path_str(&file)], None);
    let ticket = sender.ticket.clone();
    let out_dir = dst.path().to_path_buf();
    let recv = std::thread::spawn(move || receive(&ticket, &["--out", path_str(&out_dir)]));
    // Kill once some data has landed in the partial file.
    let part = dst.path().join(".big.bin.ferry-part");
    for _ in 0..3000 {
        if part
            .metadata()
            .map(|m| m.len() > 20 * MIB as u64)
            .unwrap_or(false)
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = sender.kill();
    let recv = recv.join().unwrap();
    assert!(!recv.status.success());
    assert_eq!(recv.status.code(), Some(1));
    assert!(recv.stderr.contains("lost the sender"), "{}", recv.stderr);
    assert!(
        !dst.path().join("big.bin").exists(),
        "no complete-looking file"
    );
}

#[test]
fn bad_tickets_are_clear_errors() {
    for (ticket, needle) in [
        ("hello", "ferry"),
        ("ferryzzzz!", "ticket"),
        ("ferryaaaa", "ticket"),
    ] {
        let out = receive(ticket, &[]);
        assert_eq!(out.status.code(), Some(2), "{ticket}: {}", out.stderr);
        assert!(
            out.stderr.to_lowercase().contains(needle),
            "{ticket}: {}",
            out.stderr
        );
        assert_eq!(
            out.stderr.trim().lines().count(),
            1,
            "one line: {}",
            out.stderr
        );
    }
}

/// One changed character of a live sender's ticket is refused at once (exit 2,
/// one line) rather than waiting in a room nobody joins; the link `send`
/// prints, pasted with quotes and a line break, works.
#[test]
fn typo_in_ticket_is_refused_at_once_and_the_link_works() {
    let src = tempdir();
    let dst = tempdir();
    write(&src.path().join("note.txt"), b"typo check\n");
    let sender = send(&[path_str(&src.path().join("note.txt"))], None);
    let ticket = sender.ticket.clone();
    let mut chars: Vec<char> = ticket.chars().collect();
    let at = chars.len() / 2;
    chars[at] = if chars[at] == 'a' { 'b' } else { 'a' };
    let typo: String = chars.into_iter().collect();
    let out = receive(&typo, &["--out", path_str(dst.path())]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert_eq!(
        out.stderr.trim(),
        "error: this ticket has a typo: copy it again"
    );
    let mut swapped: Vec<char> = ticket.chars().collect();
    let i = (10..swapped.len() - 1)
        .find(|&i| swapped[i] != swapped[i + 1])
        .unwrap();
    swapped.swap(i, i + 1);
    let swapped: String = swapped.into_iter().collect();
    let out = receive(&swapped, &["--out", path_str(dst.path())]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("this ticket has a typo"),
        "{}",
        out.stderr
    );

    // The sender is still waiting; the link form (as the sender prints it,
    // quoted, with the newline of a paste) reaches it.
    let server = ferry::signal::Ticket::from_str(&ticket).unwrap().servers[0].clone();
    let link = format!("http://{}/#{ticket}", server.trim_start_matches("ws://"));
    let out = receive(
        &format!("'{link}'\n"),
        &["--out", path_str(dst.path()), "--yes"],
    );
    let sent = sender.wait();
    assert!(out.status.success(), "{}", out.stderr);
    assert!(sent.status.success(), "{}", sent.stderr);
    assert!(
        sent.stderr.contains(&link),
        "the sender prints {link}: {}",
        sent.stderr
    );
    assert_eq!(
        std::fs::read(dst.path().join("note.txt")).unwrap(),
        b"typo check\n"
    );

    // A version-1 ticket (no checksum) names its cause.
    let mut v1 = vec![1u8];
    v1.extend_from_slice(&[9; 32]);
    v1.extend_from_slice(&[1, 6]);
    v1.extend_from_slice(b"ws://x");
    let v1 = format!(
        "ferry{}",
        data_encoding::BASE32_NOPAD.encode(&v1).to_ascii_lowercase()
    );
    let out = receive(&v1, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("older ferry"), "{}", out.stderr);
}

#[test]
fn unreachable_server_is_a_clear_error() {
    let port = free_port(); // nothing listens there
    let src = tempdir();
    write(&src.path().join("x"), b"x");
    let out = ferry()
        .args([
            "send",
            path_str(&src.path().join("x")),
            "--server",
            &format!("ws://127.0.0.1:{port}"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rendezvous"), "{err}");
}

#[test]
fn nobody_comes_within_timeout() {
    let src = tempdir();
    write(&src.path().join("x"), b"x");
    let sender = send(&[path_str(&src.path().join("x")), "--timeout", "1"], None);
    let out = sender.wait();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.contains("--timeout"), "{}", out.stderr);
}

#[test]
fn a_folder_of_many_files_needs_a_manifest_in_parts() {
    let src = tempdir();
    let dst = tempdir();
    for i in 0..2000 {
        write(
            &src.path().join(format!(
                "many/a-file-with-a-fairly-long-name-number-{i}.txt"
            )),
            format!("{i}\n").as_bytes(),
        );
    }
    let sender = send(&[path_str(&src.path().join("many"))], None);
    let recv = receive(&sender.ticket, &["--out", path_str(dst.path()), "--json"]);
    assert!(recv.status.success(), "{}", recv.stderr);
    assert!(sender.wait().status.success());
    assert_eq!(recv.json()["files"], 2000);
    assert_same_tree(src.path(), dst.path());
}

/// Extra data connections (lanes): both sides agree on the smaller offer,
/// blocks spread over every lane, and a side that offers none still works.
#[test]
fn lanes_open_when_both_sides_offer_them_and_are_optional() {
    let dir = tempdir();
    // Large enough to outlast setting up the lanes (a few hundred ms).
    let size = 160 << 20;
    let src = dir.path().join("lanes.bin");
    write(&src, &random_bytes(size, 11));
    for (send_lanes, recv_lanes, opened) in [("3", "2", 2), ("0", "2", 0), ("2", "0", 0)] {
        let out = dir.path().join(format!("out-{send_lanes}-{recv_lanes}"));
        let mut send = ferry();
        send.env("FERRY_LANES", send_lanes)
            .args(["send", path_str(&src), "--json"]);
        let sender = spawn_sender(send, None);
        let received = run(ferry()
            .env("FERRY_LANES", recv_lanes)
            .env("RUST_LOG", "ferry=debug")
            .args(["receive", &sender.ticket, "--yes", "--json", "--out"])
            .arg(&out));
        let sent = sender.wait();
        assert!(received.status.success(), "{}", received.stderr);
        assert!(sent.status.success(), "{}", sent.stderr);
        assert_eq!(b3(&out.join("lanes.bin")), b3(&src));
        assert_eq!(
            received.stderr.matches("lane open").count(),
            opened,
            "lanes {send_lanes}/{recv_lanes}: {}",
            received.stderr
        );
        assert_eq!(received.json()["bytes_received"], size);
    }
}

/// Names of 243-255 bytes used to fail for files with a state log (more
/// than one block): the log's name was one byte over NAME_MAX.
#[test]
fn names_at_the_byte_limit_round_trip() {
    let src = tempdir();
    let dst = tempdir();
    let ascii = "a".repeat(255);
    let multibyte = "日".repeat(85); // 255 bytes, 3 per character
    let near = format!("{}é", "b".repeat(241)); // 243 bytes, the first that failed
    for (i, name) in [&ascii, &multibyte, &near].into_iter().enumerate() {
        write(
            &src.path().join("long").join(name),
            &random_bytes(3 * MIB + 7, 40 + i as u64),
        );
    }
    let dir = src.path().join("long");
    let sender = send(&[path_str(&dir), "--json"], None);
    let recv = receive(&sender.ticket, &["--out", path_str(dst.path()), "--json"]);
    let sent = sender.wait();
    assert!(recv.status.success(), "receive failed: {}", recv.stderr);
    assert!(sent.status.success(), "send failed: {}", sent.stderr);
    // Same names, same bytes, and no hidden part or state file left over.
    assert_same_tree(src.path(), dst.path());
}
