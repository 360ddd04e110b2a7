//! Helpers for tests that run the real `ferry` binary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

pub mod mitm;

pub const BIN: &str = env!("CARGO_BIN_EXE_ferry");

/// Runs a system command (`ip`, `iptables`, `sysctl`) that must succeed, for
/// the tests that build network namespaces.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (install iproute2 and iptables)",
                args[0]
            )
        });
    assert!(
        out.status.success(),
        "{} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn ferry() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("RUST_LOG", "warn").env_remove("RUST_BACKTRACE");
    cmd
}

/// A running `ferry send`, with its ticket read from the first stdout line.
pub struct Sender {
    pub child: Child,
    pub ticket: String,
    stdout: Option<thread::JoinHandle<String>>,
    stderr: Option<thread::JoinHandle<String>>,
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> serde_json::Value {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| {
                panic!(
                    "no JSON line in stdout: {:?}\nstderr: {}",
                    self.stdout, self.stderr
                )
            });
        serde_json::from_str(line).expect("summary is JSON")
    }
}

/// Start `ferry send ARGS`; returns once the ticket is printed.
pub fn send(args: &[&str], stdin: Option<Vec<u8>>) -> Sender {
    let mut cmd = ferry();
    cmd.arg("send").args(args);
    spawn_sender(cmd, stdin)
}

/// Start a prepared `ferry send` command (e.g. inside a network namespace);
/// returns once the ticket is printed.
pub fn spawn_sender(mut cmd: Command, stdin: Option<Vec<u8>>) -> Sender {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("spawn ferry send");
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let stderr = thread::spawn(move || read_all(stderr));
    let (tx, rx) = mpsc::channel();
    let stdout = thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut first = String::new();
        let _ = reader.read_line(&mut first);
        let _ = tx.send(first.trim().to_string());
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        rest
    });
    let ticket = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
    Sender {
        child,
        ticket,
        stdout: Some(stdout),
        stderr: Some(stderr),
    }
}

impl Sender {
    pub fn wait(mut self) -> Output {
        let status = self.child.wait().expect("wait for ferry send");
        Output {
            status,
            stdout: self
                .stdout
                .take()
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default(),
            stderr: self
                .stderr
                .take()
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default(),
        }
    }

    pub fn kill(mut self) -> Output {
        let _ = self.child.kill();
        self.wait()
    }

    /// The sender's output once `received` has ended: it exits after a
    /// receiver succeeds, and after a failure waits for the next one, so it
    /// is stopped then.
    pub fn after(self, received: &Output) -> Output {
        if received.status.success() {
            self.wait()
        } else {
            self.kill()
        }
    }
}

fn read_all(mut r: impl Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}

/// Run `ferry receive TICKET ARGS` to completion.
pub fn receive(ticket: &str, args: &[&str]) -> Output {
    run(ferry().arg("receive").arg(ticket).args(args))
}

/// Start `ferry receive TICKET --out OUT` in the background (stdin closed,
/// output kept), for tests that signal it while it runs; see [`finish`].
pub fn spawn_receive(ticket: &str, out: &Path) -> Child {
    ferry()
        .args(["receive", ticket, "--out", path_str(out)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferry receive")
}

/// Wait for a child started with piped output.
pub fn finish(child: Child) -> Output {
    let out = child.wait_with_output().expect("wait for ferry");
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// Run a prepared command to completion, stdin closed.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// Deterministic pseudo-random bytes (xorshift), fast enough for hundreds of MiB.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn write(path: &Path, data: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, data).unwrap();
}

/// Every file and folder below `root`, as sorted relative paths (folders end in `/`).
pub fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
            if p.is_dir() {
                out.push(format!("{rel}/"));
                walk(root, &p, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

/// Assert two trees hold the same paths and bytes.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let (ta, tb) = (tree(a), tree(b));
    assert_eq!(ta, tb, "trees differ");
    for rel in ta.iter().filter(|r| !r.ends_with('/')) {
        let (x, y) = (
            std::fs::read(a.join(rel)).unwrap(),
            std::fs::read(b.join(rel)).unwrap(),
        );
        assert!(x == y, "{rel} differs");
    }
}

pub fn b3(path: &Path) -> String {
    blake3::hash(&std::fs::read(path).unwrap())
        .to_hex()
        .to_string()
}

/// A `ferry serve` on a free loopback port, killed on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve() -> Server {
    let port = free_port();
    let child = ferry()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--stun-listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ferry serve");
    wait_for_port(port);
    Server {
        child,
        url: format!("ws://127.0.0.1:{port}"),
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for_port(port: u16) {
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on port {port}");
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn pathbuf(p: &Path, rel: &str) -> PathBuf {
    p.join(rel)
}
