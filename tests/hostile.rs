//! A lying peer, a tampering server, interruptions and a full disk, against
//! the real `ferry` binary.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use ferry::proto::{Control, Entry, EntryKind, Manifest};
use ferry::ticket::Ticket;
use ferry::transport::Incoming;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Run a rendezvous in this process and return its URL.
async fn rendezvous(cancel: &CancellationToken) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = cancel.clone().cancelled_owned();
    tokio::spawn(ferry::rendezvous::run(listener, Default::default(), stop));
    format!("ws://{addr}")
}

/// A sender that speaks the protocol but offers `path`.
async fn offer_hostile_path(path: &str) -> (Output, tempfile::TempDir) {
    let cancel = CancellationToken::new();
    let ticket = Ticket::generate(vec![rendezvous(&cancel).await]);
    let base = tempdir();
    let out = base.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let ticket_text = ticket.to_string();
    let out_arg = out.clone();
    let receiver = tokio::task::spawn_blocking(move || {
        receive(&ticket_text, &["--out", path_str(&out_arg), "--yes"])
    });
    let mut signal = ferry::signal::SignalClient::connect(&ticket).await.unwrap();
    let wait = Some(Duration::from_secs(30));
    let mut link = ferry::session::connect(&mut signal, vec![], wait, &cancel)
        .await
        .unwrap();
    let hello = Control::Hello {
        protocol: 1,
        software: "liar/1".into(),
        lanes: 0,
    };
    link.send_control(&hello.encode()).await.unwrap();
    let manifest = Manifest {
        block_size: 1 << 20,
        entries: vec![Entry {
            path: path.into(),
            kind: EntryKind::File,
            size: Some(5),
            mode: 0o644,
        }],
    };
    let part = Control::Manifest {
        block_size: manifest.block_size,
        entries: manifest.entries,
        more: false,
    };
    link.send_control(&part.encode()).await.unwrap();
    // The receiver must answer with a cancel (or just go away), never accept.
    let verdict = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match link.recv().await {
                Incoming::Control(bytes) => match Control::decode(&bytes) {
                    Ok(Control::Hello { .. }) => continue,
                    Ok(other) => break Some(other),
                    Err(_) => break None,
                },
                Incoming::Data(..) => continue,
                Incoming::Lost(_) => break None,
            }
        }
    })
    .await
    .unwrap();
    assert!(
        !matches!(verdict, Some(Control::Accept { .. })),
        "the receiver accepted {path:?}"
    );
    let output = receiver.await.unwrap();
    cancel.cancel();
    (output, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_manifest_paths_are_refused_and_nothing_is_written() {
    for path in [
        "../escape",
        "/tmp/ferry-absolute-escape",
        "a/../../escape",
        "C:\\escape",
        "x\0y",
    ] {
        let (output, base) = offer_hostile_path(path).await;
        assert_eq!(output.status.code(), Some(1), "{path:?}: {}", output.stderr);
        assert!(
            output.stderr.contains("unsafe path"),
            "{path:?}: {}",
            output.stderr
        );
        // Nothing at all was created, inside or outside --out.
        assert_eq!(tree(base.path()), vec!["out/".to_string()], "{path:?}");
        assert!(!std::path::Path::new("/tmp/ferry-absolute-escape").exists());
    }
}

/// A man in the middle between the peers and a real rendezvous that flips one
/// character of every sealed payload it relays.
// The handshake callback's error type is tungstenite's, not ours.
#[allow(clippy::result_large_err)]
async fn tampering_proxy(upstream: String, cancel: CancellationToken) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let accepted =
                tokio::select! { c = listener.accept() => c, _ = cancel.cancelled() => return };
            let Ok((tcp, _)) = accepted else { return };
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let mut path = String::new();
                let callback =
                    |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                        path = req.uri().path().to_string();
                        Ok(resp)
                    };
                let Ok(client) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                    return;
                };
                let Ok((server, _)) =
                    tokio_tungstenite::connect_async(format!("{upstream}{path}")).await
                else {
                    return;
                };
                let (mut c_tx, mut c_rx) = client.split();
                let (mut s_tx, mut s_rx) = server.split();
                let up = async {
                    while let Some(Ok(msg)) = c_rx.next().await {
                        if s_tx.send(tamper(msg)).await.is_err() {
                            break;
                        }
                    }
                };
                let down = async {
                    while let Some(Ok(msg)) = s_rx.next().await {
                        if c_tx.send(msg).await.is_err() {
                            break;
                        }
                    }
                };
                tokio::select! { _ = up => {}, _ = down => {} }
            });
        }
    });
    format!("ws://{addr}")
}

fn tamper(msg: Message) -> Message {
    let Message::Text(text) = msg else { return msg };
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Message::Text(text);
    };
    if let Some(data) = value
        .get_mut("data")
        .and_then(|d| d.as_str().map(str::to_owned))
    {
        let mut chars: Vec<char> = data.chars().collect();
        let mid = chars.len() / 2;
        chars[mid] = if chars[mid] == 'A' { 'B' } else { 'A' };
        value["data"] = serde_json::Value::String(chars.into_iter().collect());
    }
    Message::Text(value.to_string().into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_signaling_is_detected_and_the_connection_refused() {
    let cancel = CancellationToken::new();
    let real = rendezvous(&cancel).await;
    let proxy = tampering_proxy(real, cancel.clone()).await;
    let src = tempdir();
    let dst = tempdir();
    write(&src.path().join("secret.txt"), b"never delivered");
    let file = src.path().join("secret.txt");
    let proxy_arg = proxy.clone();
    let (sent, recv) = tokio::task::spawn_blocking(move || {
        let sender = send(
            &[path_str(&file), "--server", &proxy_arg, "--timeout", "30"],
            None,
        );
        let recv = receive(
            &sender.ticket,
            &["--out", path_str(dst.path()), "--timeout", "30"],
        );
        let sent = sender.wait();
        assert!(tree(dst.path()).is_empty(), "nothing may be written");
        (sent, recv)
    })
    .await
    .unwrap();
    cancel.cancel();
    assert_eq!(sent.status.code(), Some(1), "{}", sent.stderr);
    assert_eq!(recv.status.code(), Some(1), "{}", recv.stderr);
    // Whoever opened the first tampered message names the cause.
    let both = format!("{}\n{}", sent.stderr, recv.stderr);
    assert!(both.contains("failed authentication"), "{both}");
}

fn interrupt(pid: u32) {
    // SAFETY: sending a signal to a child process we own.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGINT);
    }
}

#[test]
fn ctrl_c_on_the_sender_stops_both_with_130() {
    let src = tempdir();
    let dst = tempdir();
    write(&src.path().join("big.bin"), &random_bytes(400 << 20, 5));
    let sender = send(&[path_str(&src.path().join("big.bin"))], None);
    let ticket = sender.ticket.clone();
    let out = dst.path().to_path_buf();
    let recv = std::thread::spawn(move || receive(&ticket, &["--out", path_str(&out)]));
    wait_for_part(&dst.path().join(".big.bin.ferry-part"));
    interrupt(sender.child.id());
    let sent = sender.wait();
    let recv = recv.join().unwrap();
    assert_eq!(sent.status.code(), Some(130), "{}", sent.stderr);
    assert!(sent.stderr.contains("interrupted"), "{}", sent.stderr);
    assert_eq!(recv.status.code(), Some(1), "{}", recv.stderr);
    assert!(
        recv.stderr.contains("the sender was interrupted"),
        "{}",
        recv.stderr
    );
    assert!(!dst.path().join("big.bin").exists());
}

#[test]
fn ctrl_c_on_the_receiver_stops_both_with_130() {
    let src = tempdir();
    let dst = tempdir();
    write(&src.path().join("big.bin"), &random_bytes(400 << 20, 6));
    let sender = send(&[path_str(&src.path().join("big.bin"))], None);
    let recv = ferry()
        .args(["receive", &sender.ticket, "--out", path_str(dst.path())])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_part(&dst.path().join(".big.bin.ferry-part"));
    interrupt(recv.id());
    let recv = recv.wait_with_output().unwrap();
    let sent = sender.wait();
    let recv_err = String::from_utf8_lossy(&recv.stderr);
    assert_eq!(recv.status.code(), Some(130), "{recv_err}");
    assert_eq!(sent.status.code(), Some(1), "{}", sent.stderr);
    assert!(
        sent.stderr.contains("the receiver was interrupted"),
        "{}",
        sent.stderr
    );
    assert!(!dst.path().join("big.bin").exists());
}

fn wait_for_part(part: &std::path::Path) {
    for _ in 0..4000 {
        if part.metadata().map(|m| m.len() > 8 << 20).unwrap_or(false) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no data arrived in {}", part.display());
}

/// A small tmpfs as the receiving disk. Needs root (CI runs as root).
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn new(size: &str) -> SmallDisk {
        let dir = tempdir();
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                path_str(dir.path()),
            ])
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a small tmpfs failed: this test needs root (sudo) to simulate a full disk"
        );
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[test]
fn a_transfer_larger_than_the_disk_is_refused_before_writing() {
    let disk = SmallDisk::new("4m");
    let src = tempdir();
    write(&src.path().join("big.bin"), &random_bytes(8 << 20, 8));
    let sender = send(&[path_str(&src.path().join("big.bin"))], None);
    let recv = receive(&sender.ticket, &["--out", path_str(disk.0.path())]);
    let sent = sender.wait();
    assert_eq!(recv.status.code(), Some(1));
    assert!(recv.stderr.contains("not enough space"), "{}", recv.stderr);
    assert!(!sent.status.success());
    assert!(tree(disk.0.path()).is_empty());
}

#[test]
fn a_disk_filling_up_mid_stream_is_a_clear_error() {
    let disk = SmallDisk::new("4m");
    // A stream of unknown length can't be checked up front.
    let sender = send(
        &["-", "--name", "stream.bin"],
        Some(random_bytes(8 << 20, 9)),
    );
    let recv = receive(&sender.ticket, &["--out", path_str(disk.0.path())]);
    let sent = sender.wait();
    assert_eq!(recv.status.code(), Some(1), "{}", recv.stderr);
    assert!(
        recv.stderr.contains("disk") || recv.stderr.contains("space"),
        "{}",
        recv.stderr
    );
    assert_eq!(
        recv.stderr
            .lines()
            .filter(|l| l.starts_with("error"))
            .count(),
        1,
        "{}",
        recv.stderr
    );
    assert!(!sent.status.success());
    assert!(
        !disk.0.path().join("stream.bin").exists(),
        "no complete-looking file"
    );
}
