//! ferry across real NATs. Each test builds its own network namespaces (as
//! root, with iproute2 and iptables): two LANs, each behind its own NAT box,
//! joined by a "WAN" namespace that holds the public servers.
//!
//! ```text
//!   lan1 10.1.0.2 ── nat1 10.1.0.1 | 203.0.113.11 ──┐
//!                                                     WAN bridge: 203.0.113.1 ferry serve (+STUN)
//!   lan2 10.2.0.2 ── nat2 10.2.0.1 | 203.0.113.12 ──┘            203.0.113.2 coturn
//! ```
//!
//! A port-preserving NAT (plain MASQUERADE) lets STUN-discovered (`srflx`)
//! addresses connect; a symmetric one (`--random-fully`) leaves only a TURN
//! relay. The LANs have no route to each other, so host candidates fail.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;

const SERVER: &str = "203.0.113.1";
const TURN_HOST: &str = "203.0.113.2";
const TURN_SECRET: &str = "ferry-nat-test-secret";
const MIB: usize = 1 << 20;

#[derive(Clone, Copy, PartialEq)]
enum Nat {
    /// Endpoint-independent mapping: the port toward the peer is the one STUN saw.
    PortPreserving,
    /// A new random port for every destination: STUN's answer is useless.
    Symmetric,
}

/// The five namespaces of one test, deleted on drop with everything run in them.
struct Net {
    prefix: String,
    children: Vec<Child>,
}

impl Net {
    fn up(nat1: Nat, nat2: Nat) -> Net {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "the NAT tests build network namespaces and must run as root (sudo cargo test --release --test nat)"
        );
        static NEXT: AtomicU32 = AtomicU32::new(0);
        // Short: interface names are built from it and must fit in 15 bytes.
        let prefix = format!(
            "f{}{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let net = Net {
            prefix,
            children: Vec::new(),
        };
        let p = &net.prefix;
        for ns in ["wan", "nat1", "nat2", "lan1", "lan2"] {
            sh(&["ip", "netns", "add", &format!("{p}-{ns}")]);
            net.ip(ns, &["link", "set", "lo", "up"]);
        }
        net.ip("wan", &["link", "add", "br0", "type", "bridge"]);
        net.ip("wan", &["link", "set", "br0", "up"]);
        net.ip(
            "wan",
            &["addr", "add", &format!("{SERVER}/24"), "dev", "br0"],
        );
        net.ip(
            "wan",
            &["addr", "add", &format!("{TURN_HOST}/24"), "dev", "br0"],
        );
        for (i, mode) in [(1, nat1), (2, nat2)] {
            let (nat, lan) = (format!("nat{i}"), format!("lan{i}"));
            // nat_i <-> wan
            let (a, b) = (format!("{p}n{i}w"), format!("{p}w{i}n"));
            sh(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b]);
            sh(&["ip", "link", "set", &a, "netns", &format!("{p}-{nat}")]);
            sh(&["ip", "link", "set", &b, "netns", &format!("{p}-wan")]);
            net.ip("wan", &["link", "set", &b, "master", "br0", "up"]);
            net.ip(&nat, &["link", "set", &a, "name", "wan0", "up"]);
            net.ip(
                &nat,
                &["addr", "add", &format!("203.0.113.1{i}/24"), "dev", "wan0"],
            );
            // lan_i <-> nat_i
            let (a, b) = (format!("{p}l{i}n"), format!("{p}n{i}l"));
            sh(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b]);
            sh(&["ip", "link", "set", &a, "netns", &format!("{p}-{lan}")]);
            sh(&["ip", "link", "set", &b, "netns", &format!("{p}-{nat}")]);
            net.ip(&lan, &["link", "set", &a, "name", "eth0", "up"]);
            net.ip(&nat, &["link", "set", &b, "name", "lan0", "up"]);
            net.ip(
                &lan,
                &["addr", "add", &format!("10.{i}.0.2/24"), "dev", "eth0"],
            );
            net.ip(
                &nat,
                &["addr", "add", &format!("10.{i}.0.1/24"), "dev", "lan0"],
            );
            net.ip(
                &lan,
                &["route", "add", "default", "via", &format!("10.{i}.0.1")],
            );
            net.run(&nat, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
            let src = format!("10.{i}.0.0/24");
            let mut masq = vec!["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan0"];
            masq.extend(["-s", &src, "-j", "MASQUERADE"]);
            if mode == Nat::Symmetric {
                masq.push("--random-fully");
            }
            net.run(&nat, &masq);
            // LAN -> WAN open; WAN -> LAN only for established flows, like a home router.
            net.run(&nat, &["iptables", "-P", "FORWARD", "DROP"]);
            net.run(
                &nat,
                &[
                    "iptables", "-A", "FORWARD", "-i", "lan0", "-o", "wan0", "-j", "ACCEPT",
                ],
            );
            let established = [
                "-m",
                "conntrack",
                "--ctstate",
                "ESTABLISHED,RELATED",
                "-j",
                "ACCEPT",
            ];
            let mut fwd = vec!["iptables", "-A", "FORWARD", "-i", "wan0", "-o", "lan0"];
            fwd.extend(established);
            net.run(&nat, &fwd);
            // Unsolicited packets to the NAT box itself are dropped: an
            // accepted one would claim the port the LAN host's mapping needs,
            // and Linux would then pick another port, breaking hole punching.
            let mut input = vec!["iptables", "-A", "INPUT", "-i", "wan0"];
            input.extend(established);
            net.run(&nat, &input);
            net.run(
                &nat,
                &["iptables", "-A", "INPUT", "-i", "wan0", "-j", "DROP"],
            );
        }
        net
    }

    fn ns(&self, ns: &str) -> String {
        format!("{}-{ns}", self.prefix)
    }

    fn ip(&self, ns: &str, args: &[&str]) {
        let mut all = vec!["ip", "-n"];
        let name = self.ns(ns);
        all.push(&name);
        all.extend(args);
        sh(&all);
    }

    fn run(&self, ns: &str, args: &[&str]) {
        let name = self.ns(ns);
        let mut all = vec!["ip", "netns", "exec", &name];
        all.extend(args);
        sh(&all);
    }

    /// A command that runs `program` inside namespace `ns`.
    fn cmd(&self, ns: &str, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(ns), program]);
        // ferry's own default log level, as users have it, unless NAT_LOG asks for more.
        match std::env::var("NAT_LOG") {
            Ok(level) => cmd.env("RUST_LOG", level),
            Err(_) => cmd.env_remove("RUST_LOG"),
        };
        cmd.env_remove("RUST_BACKTRACE");
        cmd
    }

    /// `ferry serve` on the WAN with its STUN responder; extra args appended.
    fn serve(&mut self, extra: &[&str]) {
        let mut cmd = self.cmd("wan", BIN);
        cmd.args(["serve", "--listen", &format!("{SERVER}:8080")])
            .args(["--stun-listen", &format!("{SERVER}:3478")])
            .args(extra);
        self.spawn_waiting(cmd, "listening on", "ferry serve");
    }

    /// coturn on the WAN, checking credentials minted from TURN_SECRET.
    fn coturn(&mut self) {
        let mut cmd = self.cmd("wan", "turnserver");
        cmd.args([
            "-n",
            "--log-file=stdout",
            "--simple-log",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
        ])
        .args([
            "--listening-ip",
            TURN_HOST,
            "--relay-ip",
            TURN_HOST,
            "--listening-port",
            "3478",
        ])
        .args([
            "--use-auth-secret",
            "--static-auth-secret",
            TURN_SECRET,
            "--realm",
            "ferry.test",
        ])
        // Never relay to private peers (the LAN host candidates). The WAN namespace has no
        // route to 10.x, and a failed relay send makes coturn delete the allocation.
        .args([
            "--denied-peer-ip=10.0.0.0-10.255.255.255",
            "--denied-peer-ip=172.16.0.0-172.31.255.255",
            "--denied-peer-ip=192.168.0.0-192.168.255.255",
        ])
        // --verbose: coturn says when its UDP listener is open only at that level.
        .args(["--fingerprint", "--no-software-attribute", "--verbose"]);
        self.spawn_waiting(
            cmd,
            "UDP listener opened on",
            "coturn (apt-get install coturn)",
        );
    }

    /// Starts `cmd` and waits for `ready` in its output (both streams merged by a thread).
    fn spawn_waiting(&mut self, mut cmd: Command, ready: &str, what: &str) {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);
        let mut seen = String::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains(ready) => break,
                Ok(line) => seen.push_str(&(line + "\n")),
                Err(_) => {
                    let _ = child.kill();
                    panic!("{what} did not start:\n{seen}");
                }
            }
        }
        // Keep draining so a chatty server never blocks on a full pipe.
        std::thread::spawn(move || for _ in rx {});
        self.children.push(child);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in ["lan1", "lan2", "nat1", "nat2", "wan"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(ns)])
                .status();
        }
    }
}

/// Runs a 100 MiB transfer from lan1 to lan2 through `ferry serve` on the
/// WAN; returns both JSON summaries.
fn transfer(net: &Net, size: usize) -> (serde_json::Value, serde_json::Value) {
    let dir = tempdir();
    let src = dir.path().join("big.bin");
    write(&src, &random_bytes(size, 5));
    let out = dir.path().join("out");
    let server = format!("ws://{SERVER}:8080");
    let mut send = net.cmd("lan1", BIN);
    send.args(["send", path_str(&src), "--server", &server, "--json"]);
    let sender = spawn_sender(send, None);
    assert!(
        sender.ticket.starts_with("ferry"),
        "no ticket from ferry send"
    );
    let received = run(net.cmd("lan2", BIN).args([
        "receive",
        &sender.ticket,
        "--out",
        path_str(&out),
        "--yes",
        "--json",
    ]));
    // A sender whose receiver failed keeps waiting for it to come back.
    if !received.status.success() {
        let sent = sender.kill();
        panic!(
            "receive failed: {}\nsend said: {}",
            received.stderr, sent.stderr
        );
    }
    let sent = sender.wait();
    assert!(sent.status.success(), "send failed: {}", sent.stderr);
    assert_eq!(b3(&out.join("big.bin")), b3(&src), "the file differs");
    (sent.json(), received.json())
}

#[test]
fn stun_connects_through_port_preserving_nats() {
    let mut net = Net::up(Nat::PortPreserving, Nat::PortPreserving);
    net.serve(&[]);
    let (sent, received) = transfer(&net, 100 * MIB);
    // The LANs cannot reach each other: only STUN-discovered addresses work.
    assert_eq!(received["path"], "srflx", "{received}");
    assert_eq!(sent["path"], "srflx", "{sent}");
    assert_eq!(received["bytes"], 100 * MIB);
}

#[test]
fn turn_relays_through_symmetric_nats() {
    let mut net = Net::up(Nat::Symmetric, Nat::Symmetric);
    net.coturn();
    let turn = format!("turn:{TURN_HOST}:3478");
    net.serve(&["--turn-secret", TURN_SECRET, "--turn-url", &turn]);
    let (sent, received) = transfer(&net, 100 * MIB);
    assert_eq!(received["path"], "relay", "{received}");
    assert_eq!(sent["path"], "relay", "{sent}");
    assert_eq!(received["bytes"], 100 * MIB);
}

#[test]
fn symmetric_nats_without_turn_fail_clearly() {
    let mut net = Net::up(Nat::Symmetric, Nat::Symmetric);
    net.serve(&[]);
    let dir = tempdir();
    let src = dir.path().join("small.bin");
    write(&src, &random_bytes(4096, 6));
    let server = format!("ws://{SERVER}:8080");
    let mut send = net.cmd("lan1", BIN);
    send.args(["send", path_str(&src), "--server", &server]);
    let sender = spawn_sender(send, None);
    let started = Instant::now();
    let mut receive = net.cmd("lan2", BIN);
    receive.args([
        "receive",
        &sender.ticket,
        "--out",
        path_str(&dir.path().join("out")),
        "--yes",
    ]);
    let received = run(&mut receive);
    let took = started.elapsed();
    sender.kill();
    assert_eq!(received.status.code(), Some(1), "{}", received.stderr);
    let err = received.stderr.trim();
    assert!(err.contains("TURN"), "the error should name the fix: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    // Bounded: the receive's own --timeout (60 s) is the ceiling.
    assert!(
        took < Duration::from_secs(90),
        "gave up only after {took:?}"
    );
    assert!(!dir.path().join("out/small.bin").exists());
}

/// The page in headless Chromium behind one NAT, the CLI behind the other.
#[test]
fn browser_behind_a_nat_receives_from_the_cli_through_stun() {
    let mut net = Net::up(Nat::PortPreserving, Nat::PortPreserving);
    net.serve(&[]);
    let dir = tempdir();
    let src = dir.path().join("from-cli.bin");
    write(&src, &random_bytes(20 * MIB, 7));
    let server = format!("ws://{SERVER}:8080");
    let mut send = net.cmd("lan2", BIN);
    send.args(["send", path_str(&src), "--server", &server, "--json"]);
    let sender = spawn_sender(send, None);
    let link = format!("http://{SERVER}:8080/#{}", sender.ticket);
    let downloads = dir.path().join("downloads");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = run(net
        .cmd("lan1", "node")
        .env("FERRY_BIN", BIN)
        .arg(root.join("web/e2e/nat-receive.mjs"))
        .args([&link, path_str(&downloads)]));
    if !page.status.success() {
        let sent = sender.kill();
        panic!(
            "the page failed:\n{}\n{}\nsend said: {}",
            page.stdout, page.stderr, sent.stderr
        );
    }
    let sent = sender.wait();
    assert!(sent.status.success(), "send failed: {}", sent.stderr);
    let result: serde_json::Value =
        serde_json::from_str(page.stdout.trim()).expect("the page script prints JSON");
    assert_eq!(result["path"], "srflx", "{result}");
    assert_eq!(sent.json()["path"], "srflx");
    assert_eq!(
        b3(&downloads.join("from-cli.bin")),
        b3(&src),
        "the download differs"
    );
}

/// The relay benchmark for docs/BENCHMARKS.md (not run by `cargo test`):
///
/// ```sh
/// cargo test --release --test nat -- --ignored --nocapture relay_benchmark
/// ```
///
/// Moves FERRY_BENCH_MIB (default 1024) MiB, FERRY_BENCH_RUNS (default 3)
/// times each, over a direct srflx path (port-preserving NATs) and through
/// coturn (symmetric NATs), alternating, and prints the medians as a table.
#[test]
#[ignore]
fn relay_benchmark() {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (mib, runs) = (env("FERRY_BENCH_MIB", 1024), env("FERRY_BENCH_RUNS", 3));
    let mut direct = Vec::new();
    let mut relay = Vec::new();
    for _ in 0..runs {
        let mut net = Net::up(Nat::PortPreserving, Nat::PortPreserving);
        net.serve(&[]);
        let (_, r) = transfer(&net, mib * MIB);
        assert_eq!(r["path"], "srflx");
        direct.push(mib as f64 * MIB as f64 / r["seconds"].as_f64().unwrap_or(f64::NAN) / 1e6);
        drop(net);

        let mut net = Net::up(Nat::Symmetric, Nat::Symmetric);
        net.coturn();
        let turn = format!("turn:{TURN_HOST}:3478");
        net.serve(&["--turn-secret", TURN_SECRET, "--turn-url", &turn]);
        let (_, r) = transfer(&net, mib * MIB);
        assert_eq!(r["path"], "relay");
        relay.push(mib as f64 * MIB as f64 / r["seconds"].as_f64().unwrap_or(f64::NAN) / 1e6);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (d, r) = (median(&mut direct), median(&mut relay));
    println!("| path ({mib} MiB, median of {runs}) | MB/s | ratio |");
    println!("|---|---|---|");
    println!("| direct (srflx through two NATs) | {d:.1} | 1.00 |");
    println!("| relay (coturn, symmetric NATs) | {r:.1} | {:.2} |", r / d);
    println!("runs: direct {direct:.1?}, relay {relay:.1?}");
}
