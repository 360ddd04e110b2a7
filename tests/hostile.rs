//! A lying peer, a tampering server, interruptions and a full disk, against
//! the real `ferry` binary.

mod common;

use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use ferry::net::{Incoming, Link};
use ferry::proto::hash::block_cv;
use ferry::proto::wire;
use ferry::proto::{Control, Entry, EntryKind, Manifest};
use ferry::signal::SignalClient;
use ferry::signal::Ticket;
use tokio_util::sync::CancellationToken;

/// Run a rendezvous in this process and return its URL.
async fn rendezvous(cancel: &CancellationToken) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = cancel.clone().cancelled_owned();
    tokio::spawn(ferry::server::rendezvous::run(
        listener,
        Default::default(),
        stop,
    ));
    format!("ws://{addr}")
}

/// Block size of every lying offer.
const BS: u32 = 1 << 20;

/// Generous bounds that only keep a broken build from hanging the suite.
const WAIT: Duration = Duration::from_secs(60);

/// A peer connection as the liars here build it: no lanes, no extra ICE.
fn one_connection() -> ferry::net::TransportConfig {
    ferry::net::TransportConfig {
        driver_threads: 1,
        ..Default::default()
    }
}

fn file_entry(path: &str, size: Option<u64>) -> Entry {
    Entry {
        path: path.into(),
        kind: EntryKind::File,
        size,
        mode: 0o644,
    }
}

fn dir_entry(path: &str) -> Entry {
    Entry {
        path: path.into(),
        kind: EntryKind::Dir,
        size: None,
        mode: 0o755,
    }
}

fn liar_hello() -> Control {
    Control::Hello {
        protocol: 1,
        software: "liar/1".into(),
        lanes: 0,
        max_datagram: 0,
        window: 0,
    }
}

/// The next control message from the peer, skipping its hello and any
/// data; `None` once the peer went away or sent something undecodable.
async fn next_control(link: &mut Link) -> Option<Control> {
    tokio::time::timeout(WAIT, async {
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
    .expect("the peer neither answered nor went away")
}

/// A sender that speaks the protocol but lies, driven by hand against the
/// real `ferry receive`.
struct LyingSender {
    link: Link,
    receiver: tokio::task::JoinHandle<Output>,
    cancel: CancellationToken,
    _signal: SignalClient,
}

impl LyingSender {
    /// Start `ferry receive --out OUT --yes EXTRA...` and connect to it.
    async fn start(out: &Path, extra: &[&str]) -> LyingSender {
        let cancel = CancellationToken::new();
        let ticket = Ticket::generate(vec![rendezvous(&cancel).await]);
        let ticket_text = ticket.to_string();
        let mut args = vec![
            "--out".to_string(),
            path_str(out).to_string(),
            "--yes".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let receiver = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            receive(&ticket_text, &args)
        });
        let mut signal = SignalClient::connect(&ticket).await.unwrap();
        let link =
            ferry::transfer::session::connect(&mut signal, &one_connection(), Some(WAIT), &cancel)
                .await
                .unwrap();
        link.send_control(&liar_hello().encode()).await.unwrap();
        LyingSender {
            link,
            receiver,
            cancel,
            _signal: signal,
        }
    }

    async fn control(&self, msg: &Control) {
        self.link.send_control(&msg.encode()).await.unwrap();
    }

    async fn offer(&self, entries: Vec<Entry>) {
        let manifest = Manifest {
            block_size: BS,
            entries,
        };
        for part in wire::manifest_parts(&manifest, &Default::default()) {
            self.control(&part).await;
        }
    }

    /// Offer `entries` and expect them accepted.
    async fn offer_accepted(&mut self, entries: Vec<Entry>) {
        self.offer(entries).await;
        let verdict = self.next_control().await;
        assert!(
            matches!(verdict, Some(Control::Accept { .. })),
            "not accepted: {verdict:?}"
        );
    }

    async fn next_control(&mut self) -> Option<Control> {
        next_control(&mut self.link).await
    }

    /// One raw message on the data channel; false if the receiver is gone.
    async fn data(&self, msg: &[u8]) -> bool {
        self.link
            .data_sender()
            .send(BytesMut::from(msg))
            .await
            .is_ok()
    }

    /// A block header announcing `len` bytes with chaining value `cv`,
    /// followed by `bytes` (which may disagree with both).
    async fn block_with(&self, file: u32, block: u64, len: u32, cv: &[u8; 32], bytes: &[u8]) {
        self.data(&wire::encode_block_header(file, block, len, cv))
            .await;
        for chunk in bytes.chunks(wire::DATA_PAYLOAD) {
            let mut msg = vec![wire::DATA_PREFIX];
            msg.extend_from_slice(chunk);
            self.data(&msg).await;
        }
    }

    /// An honest block: `bytes` at block index `block`, with their real CV.
    async fn block(&self, file: u32, block: u64, bytes: &[u8]) {
        let cv = block_cv(block * u64::from(BS), bytes);
        self.block_with(file, block, bytes.len() as u32, &cv, bytes)
            .await;
    }

    /// Wait for `ferry receive` to exit; the link stays open until it has.
    async fn finish(self) -> Output {
        let output = tokio::time::timeout(WAIT, self.receiver)
            .await
            .expect("ferry receive did not stop")
            .unwrap();
        self.cancel.cancel();
        output
    }
}

/// Offer `entries` to a real receiver saving into `BASE/out`; returns the
/// receiver's answer to the offer and how it ended.
async fn offer_hostile(
    entries: Vec<Entry>,
    extra: &[&str],
    base: &Path,
) -> (Option<Control>, Output) {
    let out = base.join("out");
    let _ = std::fs::create_dir(&out);
    let mut liar = LyingSender::start(&out, extra).await;
    liar.offer(entries).await;
    let verdict = liar.next_control().await;
    (verdict, liar.finish().await)
}

/// A sender that speaks the protocol but offers `path`.
async fn offer_hostile_path(path: &str) -> (Output, tempfile::TempDir) {
    let base = tempdir();
    let (verdict, output) = offer_hostile(vec![file_entry(path, Some(5))], &[], base.path()).await;
    // The receiver must answer with a cancel (or just go away), never accept.
    assert!(
        !matches!(verdict, Some(Control::Accept { .. })),
        "the receiver accepted {path:?}"
    );
    (output, base)
}

/// `what` failed the way a hostile peer must: exit 1, `why` on stderr, no panic.
fn assert_failed_cleanly(what: &str, why: &str, output: &Output) {
    assert_eq!(output.status.code(), Some(1), "{what}: {}", output.stderr);
    assert!(output.stderr.contains(why), "{what}: {}", output.stderr);
    assert!(
        !output.stderr.contains("panicked"),
        "{what}: {}",
        output.stderr
    );
}

/// The same, and the receiver told the peer `why` in its cancel.
fn assert_refused(what: &str, why: &str, verdict: &Option<Control>, output: &Output) {
    assert!(
        matches!(verdict, Some(Control::Cancel { reason }) if reason.contains(why)),
        "{what}: {verdict:?}"
    );
    assert_failed_cleanly(what, why, output);
}

/// Nothing lies outside `out`, and nothing inside looks complete: only
/// hidden partial files and their state logs may be left (for resuming).
fn assert_nothing_complete(base: &Path) {
    for rel in tree(base) {
        assert!(
            rel.starts_with("out/") || rel == "out/",
            "{rel} written outside --out"
        );
        let name = rel.rsplit('/').next().unwrap_or_default();
        assert!(
            rel.ends_with('/') || name.ends_with(".ferry-part") || name.ends_with(".ferry-state"),
            "{rel} looks complete"
        );
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_duplicate_and_case_clashing_offers_are_refused() {
    let long_name = "n".repeat(256);
    let long_path = format!("{}x", "abc/".repeat(1100));
    let cases: Vec<(Vec<Entry>, &str)> = vec![
        (
            vec![file_entry(&long_name, Some(5))],
            "longer than 255 bytes",
        ),
        (
            vec![file_entry(&long_path, Some(5))],
            "longer than 4096 bytes",
        ),
        (
            vec![file_entry("a.txt", Some(5)), file_entry("a.txt", Some(7))],
            "lists \"a.txt\" twice",
        ),
        (
            vec![file_entry("A.txt", Some(5)), file_entry("a.txt", Some(5))],
            "case-insensitive",
        ),
        (
            vec![dir_entry("Docs"), dir_entry("docs")],
            "case-insensitive",
        ),
        (
            vec![file_entry("a", Some(5)), file_entry("a/b", Some(5))],
            "which it also lists as a file",
        ),
    ];
    for (entries, why) in cases {
        let base = tempdir();
        let first = entries[0].path.chars().take(40).collect::<String>();
        let (verdict, output) = offer_hostile(entries, &[], base.path()).await;
        assert_refused(&format!("{first:?}"), why, &verdict, &output);
        assert_eq!(tree(base.path()), vec!["out/".to_string()], "{first:?}");
    }
}

/// The real `ferry send` against a receiver driven by hand, which accepts
/// and then misbehaves.
struct LyingReceiver {
    link: Link,
    sender: Sender,
    cancel: CancellationToken,
    _signal: SignalClient,
}

impl LyingReceiver {
    /// Start `ferry send PATHS... --timeout 2`, connect to it and read its
    /// offer. The sender outlives the liar: it waits for the next receiver
    /// and gives up only after the --timeout with nobody.
    async fn start(paths: &[&Path]) -> LyingReceiver {
        let mut args: Vec<String> = paths.iter().map(|p| path_str(p).to_string()).collect();
        args.extend(["--timeout".to_string(), "2".to_string()]);
        let sender = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            send(&args, None)
        })
        .await
        .unwrap();
        let ticket: Ticket = sender.ticket.parse().unwrap();
        let cancel = CancellationToken::new();
        let mut signal = SignalClient::connect(&ticket).await.unwrap();
        let mut link =
            ferry::transfer::session::connect(&mut signal, &one_connection(), Some(WAIT), &cancel)
                .await
                .unwrap();
        link.send_control(&liar_hello().encode()).await.unwrap();
        loop {
            match next_control(&mut link).await {
                Some(Control::Manifest { more: true, .. }) => continue,
                Some(Control::Manifest { more: false, .. }) => break,
                other => panic!("expected the offer, got {other:?}"),
            }
        }
        LyingReceiver {
            link,
            sender,
            cancel,
            _signal: signal,
        }
    }

    /// Send one control message as text; false once the sender is gone.
    async fn text(&self, text: &str) -> bool {
        self.link.send_control(text).await.is_ok()
    }

    async fn accept(&self) {
        assert!(self.text(&Control::Accept { have: vec![] }.encode()).await);
    }

    /// Leave, and wait for `ferry send` to give up waiting for the next
    /// receiver (its --timeout).
    async fn finish(self) -> Output {
        let LyingReceiver {
            link,
            sender,
            cancel,
            _signal,
        } = self;
        let mut link = link;
        // Leave only once the sender has judged what it got (its cancel, or
        // the channel closing): leaving first would race it, and it might
        // see the departure before the lie.
        while let Some(msg) = next_control(&mut link).await {
            if matches!(msg, Control::Cancel { .. }) {
                break;
            }
        }
        drop(link);
        _signal.close().await;
        let output = tokio::time::timeout(WAIT, tokio::task::spawn_blocking(move || sender.wait()))
            .await
            .expect("ferry send did not stop")
            .unwrap();
        cancel.cancel();
        output
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_below_out_are_never_written_through() {
    // --out holds `link -> elsewhere`, and the offer puts a file below it.
    for entries in [
        vec![file_entry("link/x", Some(5))],
        vec![dir_entry("link"), file_entry("link/x", Some(5))],
    ] {
        let base = tempdir();
        let out = base.path().join("out");
        let elsewhere = base.path().join("elsewhere");
        std::fs::create_dir(&out).unwrap();
        std::fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, out.join("link")).unwrap();
        let (verdict, output) = offer_hostile(entries, &[], base.path()).await;
        assert!(
            matches!(&verdict, Some(Control::Cancel { reason }) if reason.contains("symbolic link")),
            "{verdict:?}"
        );
        assert_eq!(output.status.code(), Some(1), "{}", output.stderr);
        assert!(output.stderr.contains("symbolic link"), "{}", output.stderr);
        assert!(tree(&elsewhere).is_empty(), "written through the link");
    }

    // --out holds `x -> elsewhere/victim`: even --force does not replace through it.
    let base = tempdir();
    let out = base.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let victim = base.path().join("victim");
    write(&victim, b"precious");
    std::os::unix::fs::symlink(&victim, out.join("x")).unwrap();
    let (verdict, output) =
        offer_hostile(vec![file_entry("x", Some(5))], &["--force"], base.path()).await;
    assert!(
        matches!(&verdict, Some(Control::Cancel { reason }) if reason.contains("symbolic link")),
        "{verdict:?}"
    );
    assert_eq!(output.status.code(), Some(1), "{}", output.stderr);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");

    // The offer is fine, but the partial file's name is a planted link: the
    // first write is refused, and the link's target is untouched.
    let base = tempdir();
    let out = base.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let victim = base.path().join("victim");
    write(&victim, b"precious");
    std::os::unix::fs::symlink(&victim, out.join(".x.ferry-part")).unwrap();
    let mut liar = LyingSender::start(&out, &[]).await;
    liar.offer_accepted(vec![file_entry("x", Some(5))]).await;
    liar.block(0, 0, b"hello").await;
    liar.data(&wire::encode_file_end(
        0,
        5,
        blake3::hash(b"hello").as_bytes(),
    ))
    .await;
    let verdict = liar.next_control().await;
    let output = liar.finish().await;
    assert!(
        matches!(&verdict, Some(Control::Cancel { reason }) if reason.contains("symbolic link")),
        "{verdict:?}"
    );
    assert_eq!(output.status.code(), Some(1), "{}", output.stderr);
    assert!(output.stderr.contains("symbolic link"), "{}", output.stderr);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(!out.join("x").exists());
}

/// An honest block header for `bytes` as block 0 of file 0.
fn header(file: u32, block: u64, bytes: &[u8]) -> Vec<u8> {
    let cv = block_cv(block * u64::from(BS), bytes);
    wire::encode_block_header(file, block, bytes.len() as u32, &cv)
}

fn data_msg(bytes: &[u8]) -> Vec<u8> {
    let mut msg = vec![wire::DATA_PREFIX];
    msg.extend_from_slice(bytes);
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lies_in_the_data_stream_are_refused_and_nothing_is_placed() {
    let hello = b"hello";
    let root = *blake3::hash(hello).as_bytes();
    let good = || vec![header(0, 0, hello), data_msg(hello)];
    let with = |mut msgs: Vec<Vec<u8>>, more: Vec<Vec<u8>>| {
        msgs.extend(more);
        msgs
    };
    // The offer is `x` (5 bytes), then folder `d`; each case is what the
    // liar sends after the accept, and what the receiver must say.
    let cases: Vec<(&str, Vec<Vec<u8>>, &str)> = vec![
        (
            "longer block than declared",
            vec![header(0, 0, b"hello, world")],
            "wrong length 12",
        ),
        (
            "more data than the header",
            vec![header(0, 0, hello), data_msg(b"hello, world")],
            "more block data than the header announced",
        ),
        (
            "file end beyond the declared size",
            with(good(), vec![wire::encode_file_end(0, 10, &root)]),
            "ended at 10 bytes, not the size offered",
        ),
        (
            "block past the end",
            vec![header(0, 1, hello)],
            "past the end of file 0",
        ),
        (
            "offset overflowing",
            vec![wire::encode_block_header(0, u64::MAX, 5, &[0; 32])],
            "out of range",
        ),
        (
            "unknown file index",
            vec![header(7, 0, hello)],
            "unknown file 7",
        ),
        (
            "a folder's index",
            vec![header(1, 0, hello)],
            "unknown file 1",
        ),
        (
            "a header inside a block",
            vec![header(0, 0, hello), data_msg(b"he"), header(0, 0, hello)],
            "started before the previous one ended",
        ),
        (
            "a root that does not match",
            with(good(), vec![wire::encode_file_end(0, 5, &[7; 32])]),
            "does not match its BLAKE3 hash",
        ),
        (
            "an unknown frame kind",
            vec![vec![9, 0, 0, 0]],
            "unknown data message kind 9",
        ),
    ];
    for (what, msgs, why) in cases {
        let base = tempdir();
        let out = base.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let mut liar = LyingSender::start(&out, &[]).await;
        liar.offer_accepted(vec![file_entry("x", Some(5)), dir_entry("d")])
            .await;
        for msg in &msgs {
            liar.data(msg).await;
        }
        let verdict = liar.next_control().await;
        let output = liar.finish().await;
        assert_refused(what, why, &verdict, &output);
        assert!(!out.join("x").exists(), "{what}: a complete-looking file");
        assert_nothing_complete(base.path());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_that_never_verifies_fails_after_bounded_retries() {
    let base = tempdir();
    let out = base.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let mut liar = LyingSender::start(&out, &[]).await;
    liar.offer_accepted(vec![file_entry("x", Some(5))]).await;
    let mut resends = 0;
    // The liar answers every resend with the same bad block, forever.
    let reason = loop {
        liar.block_with(0, 0, 5, &[0; 32], b"hello").await;
        match liar.next_control().await {
            Some(Control::Resend { file: 0, block: 0 }) => resends += 1,
            Some(Control::Cancel { reason }) => break reason,
            other => panic!("after {resends} resends: {other:?}"),
        }
        assert!(resends <= 100, "the receiver asks again and again");
    };
    let output = liar.finish().await;
    assert_eq!(resends, ferry::proto::receiver::MAX_BAD_BLOCKS);
    assert!(
        reason.contains("failed verification repeatedly"),
        "{reason}"
    );
    assert_eq!(output.status.code(), Some(1), "{}", output.stderr);
    assert!(
        output.stderr.contains("failed verification repeatedly"),
        "{}",
        output.stderr
    );
    // No byte of the bad block was written.
    assert_eq!(tree(base.path()), vec!["out/".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_block_far_ahead_is_refused_not_allocated_for() {
    let base = tempdir();
    let out = base.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let mut liar = LyingSender::start(&out, &[]).await;
    // A stream of unknown length: no declared size bounds its block indexes.
    liar.offer_accepted(vec![file_entry("s", None)]).await;
    liar.block(0, 1 << 36, b"hello").await;
    let verdict = liar.next_control().await;
    let output = liar.finish().await;
    assert!(
        matches!(&verdict, Some(Control::Cancel { reason }) if reason.contains("ahead")),
        "{verdict:?}: {}",
        output.stderr
    );
    assert_eq!(output.status.code(), Some(1), "{}", output.stderr);
    assert!(output.stderr.contains("ahead"), "{}", output.stderr);
    assert_nothing_complete(base.path());
    assert!(!out.join("s").exists());
}

/// A control message one byte over the limit: the largest that the
/// transport still carries (larger ones it refuses to send, or drops).
fn oversized_control() -> String {
    let mut text = r#"{"type":"cancel","reason":""}"#.to_string();
    let pad = "x".repeat(wire::MAX_CONTROL_MESSAGE + 1 - text.len());
    text.insert_str(text.len() - 2, &pad);
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_floods_at_the_receiver_fail_clearly() {
    let cases: Vec<(&str, String, usize, &str)> = vec![
        (
            "unknown messages",
            r#"{"type":"bogus","n":1}"#.into(),
            5000,
            "malformed control message",
        ),
        (
            "repeated hellos",
            liar_hello().encode(),
            5000,
            "unexpected hello",
        ),
        (
            "resends, which only a sender may be asked for",
            Control::Resend { file: 0, block: 0 }.encode(),
            5000,
            "unexpected resend",
        ),
        (
            "an oversized message",
            oversized_control(),
            1,
            "larger than",
        ),
    ];
    for (what, text, count, why) in cases {
        let base = tempdir();
        let out = base.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let mut liar = LyingSender::start(&out, &[]).await;
        liar.offer_accepted(vec![file_entry("x", Some(5))]).await;
        for _ in 0..count {
            // The receiver hangs up at the first: later sends may fail.
            if liar.link.send_control(&text).await.is_err() {
                break;
            }
        }
        let verdict = liar.next_control().await;
        let output = liar.finish().await;
        assert_refused(what, why, &verdict, &output);
        assert_eq!(tree(base.path()), vec!["out/".to_string()], "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_floods_at_the_sender_fail_clearly() {
    let src = tempdir();
    let file = src.path().join("f.bin");
    let content = random_bytes(3 << 20, 11);
    write(&file, &content);
    let cases: Vec<(&str, String, usize, &str)> = vec![
        (
            "resends of one block",
            Control::Resend { file: 0, block: 0 }.encode(),
            10_000,
            "failed verification repeatedly",
        ),
        (
            "resends of a block that does not exist",
            Control::Resend { file: 0, block: 99 }.encode(),
            10_000,
            "resend of unknown block 99",
        ),
        (
            "unknown messages",
            r#"{"type":"bogus"}"#.into(),
            10_000,
            "malformed control message",
        ),
        (
            "lane answers never asked for",
            Control::Lane {
                lane: 5,
                sdp: "v=0".into(),
            }
            .encode(),
            10_000,
            "an answer for lane 5, which was never offered",
        ),
        (
            "an oversized message",
            oversized_control(),
            1,
            "larger than",
        ),
    ];
    for (what, text, count, why) in cases {
        let liar = LyingReceiver::start(&[&file]).await;
        liar.accept().await;
        for _ in 0..count {
            if !liar.text(&text).await {
                break;
            }
        }
        let output = liar.finish().await;
        assert_failed_cleanly(what, why, &output);
        // It said what happened once and then waited for another receiver.
        assert!(
            output.stderr.contains("waiting for the next receiver")
                && output.stderr.contains("--timeout"),
            "{what}: {}",
            output.stderr
        );
    }
}

/// A field of /proc/PID/status or /proc/PID/io, as a number (kB for the
/// former, bytes for the latter).
fn proc_field(pid: u32, file: &str, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Bound on `ferry send`'s resident memory while its receiver stalls.
const SEND_RSS_BOUND_KB: u64 = 128 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_stops_reading_leaves_the_sender_bounded() {
    let src = tempdir();
    let file = src.path().join("big.bin");
    // 1 GiB, sparse: far more than the memory bound, at no disk cost.
    std::fs::File::create(&file)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let mut liar = LyingReceiver::start(&[&file]).await;
    let pid = liar.sender.child.id();
    liar.accept().await;
    // From here on the liar reads nothing: the link's queues fill and the
    // transport stops acknowledging.
    let mut peak = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        peak = peak.max(proc_field(pid, "status", "VmRSS"));
    }
    let hwm = proc_field(pid, "status", "VmHWM");
    let read = proc_field(pid, "io", "rchar");
    let running = liar.sender.child.try_wait().unwrap().is_none();
    eprintln!("ferry send while stalled: peak VmRSS {peak} kB, VmHWM {hwm} kB, read {read} bytes");
    let output = liar.sender.kill();
    assert!(running, "ferry send stopped: {}", output.stderr);
    assert!(hwm > 0, "could not read /proc/{pid}/status");
    assert!(
        hwm < SEND_RSS_BOUND_KB,
        "ferry send grew to {hwm} kB against a stalled receiver"
    );
    // The sender stopped reading its source too, long before the end.
    assert!(
        read < 256 << 20,
        "ferry send read {read} bytes of a stalled transfer"
    );
    liar.cancel.cancel();
}

/// Flips one character of the sealed payload in a client frame.
fn tamper(text: &str) -> String {
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(text) else {
        return text.to_owned();
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
    value.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_signaling_is_detected_and_the_connection_refused() {
    let cancel = CancellationToken::new();
    let real = rendezvous(&cancel).await;
    // A man in the middle that flips one character of every sealed payload.
    let flip: common::mitm::Rule = Box::new(|_, _, text| vec![tamper(text)]);
    let proxy = common::mitm::mitm(real, flip, Default::default());
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

/// Ctrl-C also stops the built-in rendezvous, whose "shutting down" error
/// used to race the interrupt and win about one time in four.
#[test]
fn ctrl_c_on_a_waiting_sender_always_exits_130() {
    let src = tempdir();
    write(&src.path().join("f"), b"waiting");
    for _ in 0..8 {
        let sender = send(&[path_str(&src.path().join("f"))], None);
        interrupt(sender.child.id());
        let sent = sender.wait();
        assert_eq!(sent.status.code(), Some(130), "{}", sent.stderr);
        assert!(sent.stderr.contains("interrupted"), "{}", sent.stderr);
        assert!(!sent.stderr.contains("shutting"), "{}", sent.stderr);
    }
}

#[test]
fn ctrl_c_on_the_receiver_stops_both_with_130() {
    let src = tempdir();
    let dst = tempdir();
    write(&src.path().join("big.bin"), &random_bytes(400 << 20, 6));
    let sender = send(
        &[path_str(&src.path().join("big.bin")), "--timeout", "2"],
        None,
    );
    let recv = spawn_receive(&sender.ticket, dst.path());
    wait_for_part(&dst.path().join(".big.bin.ferry-part"));
    interrupt(recv.id());
    let recv = recv.wait_with_output().unwrap();
    let sent = sender.wait();
    let recv_err = String::from_utf8_lossy(&recv.stderr);
    assert_eq!(recv.status.code(), Some(130), "{recv_err}");
    // The sender was told, kept the ticket open, and gave up only after
    // its --timeout with nobody else.
    assert_eq!(sent.status.code(), Some(1), "{}", sent.stderr);
    assert!(
        sent.stderr
            .contains("the receiver was interrupted; waiting for the next receiver"),
        "{}",
        sent.stderr
    );
    assert!(sent.stderr.contains("--timeout"), "{}", sent.stderr);
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
    assert_eq!(recv.status.code(), Some(1));
    assert!(recv.stderr.contains("not enough space"), "{}", recv.stderr);
    assert!(tree(disk.0.path()).is_empty());
    // The same sender then serves a receiver with room.
    let roomy = tempdir();
    let recv = receive(&sender.ticket, &["--out", path_str(roomy.path())]);
    let sent = sender.wait();
    assert!(recv.status.success(), "{}", recv.stderr);
    assert!(sent.status.success(), "{}", sent.stderr);
    assert!(
        sent.stderr
            .contains("the receiver declined: it has no room for 8.00 MiB"),
        "{}",
        sent.stderr
    );
    assert_same_tree(src.path(), roomy.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_one_tib_offer_on_a_small_disk_is_refused() {
    let disk = SmallDisk::new("4m");
    let entries = vec![file_entry("huge.bin", Some(1 << 40))];
    let (verdict, output) = offer_hostile(entries, &[], disk.0.path()).await;
    assert!(
        matches!(&verdict, Some(Control::Cancel { reason }) if reason.contains("not enough space")),
        "{verdict:?}"
    );
    assert_eq!(output.status.code(), Some(1), "{}", output.stderr);
    assert!(
        output.stderr.contains("not enough space"),
        "{}",
        output.stderr
    );
    assert_eq!(tree(disk.0.path()), vec!["out/".to_string()]);
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
