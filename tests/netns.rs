//! ferry on a machine whose only network interface is loopback, as in a
//! container or under `unshare -n`. Each test makes its own network namespace
//! (as root, with iproute2) holding nothing but `lo`, and runs the real
//! `ferry` processes inside it.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;

const MIB: usize = 1 << 20;

/// A network namespace with only `lo` (up or down), deleted on drop.
struct LoopbackOnly {
    name: String,
}

impl LoopbackOnly {
    fn new(lo_up: bool) -> LoopbackOnly {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "the netns tests build network namespaces and must run as root (sudo cargo test --release --test netns)"
        );
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "ferry-lo-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        sh(&["ip", "netns", "add", &name]);
        let ns = LoopbackOnly { name };
        if lo_up {
            sh(&["ip", "-n", &ns.name, "link", "set", "lo", "up"]);
        }
        ns
    }

    /// No IPv6 at all, not even `::1`.
    fn without_ipv6(self) -> LoopbackOnly {
        for conf in ["all", "default", "lo"] {
            let key = format!("net.ipv6.conf.{conf}.disable_ipv6=1");
            sh(&["ip", "netns", "exec", &self.name, "sysctl", "-qw", &key]);
        }
        self
    }

    /// `ferry ARGS` inside the namespace, at ferry's default log level.
    fn ferry(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, BIN]).args(args);
        cmd.env("RUST_LOG", "warn").env_remove("RUST_BACKTRACE");
        cmd
    }
}

impl Drop for LoopbackOnly {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Sends `size` bytes from one ferry to another, both inside `ns` (through
/// `server`'s rendezvous if given), and checks the file arrived whole.
fn transfer_inside(ns: &LoopbackOnly, size: usize, server: Option<&str>) -> Output {
    let dir = tempdir();
    let src = dir.path().join("payload.bin");
    let data = random_bytes(size, 16);
    write(&src, &data);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let mut send_args = vec!["send", path_str(&src)];
    let mut recv_extra = vec![];
    if let Some(url) = server {
        send_args.extend(["--server", url]);
        recv_extra.extend(["--server", url]);
    }
    let sender = spawn_sender(ns.ferry(&send_args), None);
    assert!(
        sender.ticket.starts_with("ferry"),
        "no ticket from ferry send: {}",
        sender.kill().stderr
    );
    let mut receive = ns.ferry(&["receive", &sender.ticket, "--yes", "--json"]);
    receive.args(["--out", path_str(&out)]).args(&recv_extra);
    let received = run(&mut receive);
    let sent = sender.after(&received);
    assert!(
        received.status.success(),
        "ferry receive failed in a loopback-only namespace:\n{}\nsender:\n{}",
        received.stderr,
        sent.stderr
    );
    assert!(sent.status.success(), "ferry send failed:\n{}", sent.stderr);
    let got = std::fs::read(out.join("payload.bin")).unwrap();
    assert!(got == data, "the received file differs from the sent one");
    assert_eq!(received.json()["path"], "direct");
    sent
}

/// Both ends on a host with nothing but loopback: the peer connection is
/// built (webrtc's mDNS socket can't join its group there), the ticket offers
/// 127.0.0.1 and says that only this machine can use it, and the file arrives
/// byte for byte.
#[test]
fn transfer_on_a_loopback_only_host() {
    let ns = LoopbackOnly::new(true);
    let sent = transfer_inside(&ns, 4 * MIB, None);
    assert!(
        sent.stderr
            .contains("Only this machine can use this ticket"),
        "the sender did not say the ticket is for this machine only:\n{}",
        sent.stderr
    );
    assert!(
        !sent.stderr.contains("On the other machine"),
        "{}",
        sent.stderr
    );
}

/// The same without IPv6 (no `::1`), through a `ferry serve` in the namespace.
#[test]
fn transfer_through_serve_on_a_loopback_only_host_without_ipv6() {
    let ns = LoopbackOnly::new(true).without_ipv6();
    // The namespace is this test's own: any port is free in it.
    let port = 8080;
    let listen = format!("127.0.0.1:{port}");
    let child = ns
        .ferry(&[
            "serve",
            "--listen",
            &listen,
            "--stun-listen",
            "127.0.0.1:3478",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ferry serve");
    let _serve = Killed(child);
    wait_in(&ns, port);
    transfer_inside(&ns, MIB, Some(&format!("ws://{listen}")));
}

/// A child process killed when dropped (a failed assertion included).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something listens on 127.0.0.1:`port` inside `ns`.
fn wait_in(ns: &LoopbackOnly, port: u16) {
    let probe = format!("exec 3<>/dev/tcp/127.0.0.1/{port}");
    for _ in 0..500 {
        let ok = Command::new("ip")
            .args(["netns", "exec", &ns.name, "bash", "-c", &probe])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on port {port} in {}", ns.name);
}

/// With `lo` down nothing can reach the built-in rendezvous, not even this
/// machine: `ferry send` says so in one line and exits 1, before printing a
/// ticket nobody could use.
#[test]
fn send_with_loopback_down_fails_clearly() {
    let ns = LoopbackOnly::new(false);
    let dir = tempdir();
    let src = dir.path().join("a.txt");
    write(&src, b"hello");
    let out = run(&mut ns.ferry(&["send", path_str(&src)]));
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "printed a ticket: {}", out.stdout);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "not one line: {}", out.stderr);
    assert!(
        lines[0].starts_with("error: no network interface is up")
            && lines[0].contains("ip link set lo up"),
        "{}",
        out.stderr
    );
}

/// A path that stops carrying data for 35 s while small packets (ICE checks,
/// SACKs) still pass, as when a Wi-Fi link or a middlebox stalls big packets:
/// once it carries data again the transfer resumes on its own and completes.
/// SCTP's retransmission timer backs off through such a gap; stock rtc-sctp
/// gave up retransmitting after its sixth expiry in a row and the transfer
/// hung for ever (vendor/rtc-sctp/FERRY-PATCH.md).
#[test]
fn a_transfer_resumes_after_the_path_stops_carrying_data_for_35_seconds() {
    let ns = LoopbackOnly::new(true);
    let dir = tempdir();
    let src = dir.path().join("big.bin");
    write(&src, &random_bytes(256 * MIB, 35));
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let sender = spawn_sender(ns.ferry(&["send", path_str(&src)]), None);
    let mut receiver = ns
        .ferry(&["receive", &sender.ticket, "--yes", "--json"])
        .args(["--out", path_str(&out)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferry receive");
    // Mid-transfer: at least 16 MiB has landed.
    while bytes_under(&out) < 16 * MIB as u64 {
        if receiver.try_wait().expect("wait for ferry").is_some() {
            let sent = sender.kill();
            panic!(
                "ferry receive ended before the path stalled:\n{}\nsender:\n{}",
                finish(receiver).stderr,
                sent.stderr
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let rule = [
        "INPUT",
        "-p",
        "udp",
        "-m",
        "length",
        "--length",
        "300:65535",
        "-j",
        "DROP",
    ];
    let iptables = |op: &str| {
        let mut args = vec!["ip", "netns", "exec", &ns.name, "iptables", op];
        args.extend(rule);
        sh(&args);
    };
    iptables("-A");
    std::thread::sleep(Duration::from_secs(35));
    let stalled_at = bytes_under(&out);
    iptables("-D");
    // Not a speed check: a guard so that a transfer that never resumes fails
    // the test instead of hanging it.
    let received = finish_within(receiver, Duration::from_secs(120));
    let sent = sender.after(&received);
    assert!(
        received.status.success(),
        "the transfer did not resume after the path came back ({stalled_at} bytes had landed):\n{}\nsender:\n{}",
        received.stderr,
        sent.stderr
    );
    assert!(
        stalled_at < 256 * MIB as u64,
        "the transfer finished before the path stalled"
    );
    assert_eq!(b3(&out.join("big.bin")), b3(&src), "the file differs");
}

/// Bytes in all files under `dir`, partial ones included.
fn bytes_under(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => bytes_under(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Waits for `child` (piped output) for at most `limit`, killing it after.
fn finish_within(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().expect("wait for ferry").is_none() && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    finish(child)
}
