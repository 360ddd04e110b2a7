//! The sender outlives anything a receiver does: refusals, declines,
//! interruptions, receivers that fail to connect. Real `ferry` processes.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ferry::signal::Ticket;
use ferry::signal::{SignalClient, SignalMessage};

/// CPU time (user + system) of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let num = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    num(11) + num(12)
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as u64
    } else {
        100
    }
}

/// A receiver that joins the room and gives up at once, again and again:
/// every attempt of the sender fails without waiting for anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_keeps_failing_costs_the_waiting_sender_no_cpu() {
    let src = tempdir();
    write(&src.path().join("x.bin"), b"payload");
    let file = src.path().join("x.bin");
    let mut sender = tokio::task::spawn_blocking(move || send(&[path_str(&file)], None))
        .await
        .unwrap();
    let pid = sender.child.id();
    let ticket: Ticket = sender.ticket.parse().unwrap();
    // Let the sender settle before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_ticks(pid);
    let start = Instant::now();
    let hold = Duration::from_secs(10);
    let mut byes = 0u32;
    while start.elapsed() < hold {
        let Ok(mut signal) = SignalClient::connect(&ticket).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        // The rendezvous relays a bounded number of messages per connection.
        for _ in 0..400 {
            if start.elapsed() >= hold {
                break;
            }
            let bye = SignalMessage::Bye {
                reason: "this receiver cannot connect".into(),
            };
            if signal.send(&bye).await.is_err() {
                break;
            }
            byes += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        signal.close().await;
    }
    let used = cpu_ticks(pid) - before;
    let elapsed = start.elapsed().as_secs_f64();
    let running = sender.child.try_wait().ok().flatten().is_none();
    let out = sender.kill();
    let share = used as f64 / clock_ticks_per_second() as f64 / elapsed;
    let lines = out.stderr.lines().count();
    eprintln!(
        "sender used {used} ticks in {elapsed:.1} s ({:.1}% of a core) against {byes} failures; {lines} lines of stderr",
        share * 100.0
    );
    assert!(running, "ferry send stopped: {}", out.stderr);
    assert!(
        share < 0.05,
        "a waiting sender used {:.1}% of a core: {}",
        share * 100.0,
        out.stderr.lines().take(20).collect::<Vec<_>>().join("\n")
    );
    // Repeated identical failures are said once (with a count), not per attempt.
    assert!(
        lines < 30,
        "ferry send printed {lines} lines: {}",
        out.stderr.lines().take(40).collect::<Vec<_>>().join("\n")
    );
}

/// Runs the shell command `line` under a pseudo-terminal (script(1)); its
/// stdin and the terminal's output are piped to the test.
fn in_a_terminal(line: &str) -> std::process::Child {
    std::process::Command::new("script")
        .args(["-qfec", line, "/dev/null"])
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run script(1) from util-linux")
}

/// `ferry receive TICKET ARGS` on a terminal (through `script`), answering
/// its prompt with `keys` once it appears. Returns its exit code and output.
fn receive_at_a_terminal(ticket: &str, args: &[&str], keys: &[u8]) -> (Option<i32>, String) {
    receive_at_a_terminal_after(ticket, args, keys, Duration::ZERO)
}

/// The same, with the user taking `think` to answer.
fn receive_at_a_terminal_after(
    ticket: &str,
    args: &[&str],
    keys: &[u8],
    think: Duration,
) -> (Option<i32>, String) {
    use std::io::{Read, Write};
    let mut line = format!("{BIN} receive {ticket}");
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    let mut child = in_a_terminal(&line);
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    // Until the prompt: the keys must not arrive before it is asked.
    while !String::from_utf8_lossy(&seen).contains("[Y/n]") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "no prompt: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    std::thread::sleep(think);
    stdin.write_all(keys).unwrap();
    stdout.read_to_end(&mut seen).unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    (status.code(), String::from_utf8_lossy(&seen).into_owned())
}

/// Every way a receiver can refuse leaves the same `ferry send` waiting, so
/// the advice each one prints can be followed with the same ticket.
#[test]
fn the_sender_outlives_every_refusal_and_the_advice_works() {
    let src = tempdir();
    let file = src.path().join("note.txt");
    write(&file, b"new content");
    let sender = send(&[path_str(&file)], None);

    // --out is a file: refused before connecting.
    let dst = tempdir();
    let not_a_dir = dst.path().join("plain");
    write(&not_a_dir, b"x");
    let recv = receive(&sender.ticket, &["--out", path_str(&not_a_dir)]);
    assert_eq!(recv.status.code(), Some(1), "{}", recv.stderr);
    assert!(
        recv.stderr.contains("is a file, not a folder"),
        "{}",
        recv.stderr
    );
    assert!(!recv.stderr.contains("connected"), "{}", recv.stderr);

    // A folder this user can't write: refused before connecting.
    let locked = tempdir();
    std::fs::set_permissions(
        locked.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let recv = run(std::process::Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            BIN,
            "receive",
        ])
        .arg(&sender.ticket)
        .args(["--out", path_str(locked.path())])
        .env("RUST_LOG", "warn"));
    assert_eq!(recv.status.code(), Some(1), "{}", recv.stderr);
    assert!(
        recv.stderr.contains("cannot write into") && recv.stderr.contains("permission denied"),
        "{}",
        recv.stderr
    );
    assert!(tree(locked.path()).is_empty(), "{:?}", tree(locked.path()));

    // The user answers no at the prompt.
    let out = tempdir();
    let (code, text) =
        receive_at_a_terminal(&sender.ticket, &["--out", path_str(out.path())], b"n\r");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("declined; nothing was written"), "{text}");
    // Ctrl-C at the prompt: 130 at once, without waiting for Enter.
    let (code, text) =
        receive_at_a_terminal(&sender.ticket, &["--out", path_str(out.path())], b"\x03");
    assert_eq!(code, Some(130), "{text}");
    assert!(tree(out.path()).is_empty(), "{:?}", tree(out.path()));

    // The target exists: refused, and the advice (--force) works.
    write(&out.path().join("note.txt"), b"precious old content");
    let recv = receive(&sender.ticket, &["--out", path_str(out.path())]);
    assert_eq!(recv.status.code(), Some(1), "{}", recv.stderr);
    assert!(recv.stderr.contains("use --force"), "{}", recv.stderr);
    assert_eq!(
        std::fs::read(out.path().join("note.txt")).unwrap(),
        b"precious old content"
    );
    let recv = receive(&sender.ticket, &["--out", path_str(out.path()), "--force"]);
    assert!(recv.status.success(), "{}", recv.stderr);
    assert_eq!(
        std::fs::read(out.path().join("note.txt")).unwrap(),
        b"new content"
    );

    let sent = sender.wait();
    assert!(sent.status.success(), "{}", sent.stderr);
    // Each refusal that reached the sender was said, in order, as one line.
    let said: Vec<&str> = sent
        .stderr
        .lines()
        .filter(|l| l.contains("waiting for the next receiver"))
        .collect();
    assert_eq!(said.len(), 3, "{}", sent.stderr);
    assert!(
        said[0].starts_with("the receiver declined: its user said no"),
        "{}",
        sent.stderr
    );
    assert!(
        said[1].starts_with("the receiver was interrupted"),
        "{}",
        sent.stderr
    );
    assert!(
        said[2].starts_with("the receiver declined: note.txt already exists there"),
        "{}",
        sent.stderr
    );
}

/// Time at the prompt is not transfer time: the sender says what it offers
/// and that it waits for the answer, and its rate and time start from the
/// first payload byte.
#[test]
fn time_at_the_prompt_is_not_counted_as_transfer_time() {
    let src = tempdir();
    let file = src.path().join("big.iso");
    write(&file, &random_bytes(8 << 20, 21));
    let sender = send(&[path_str(&file), "--json"], None);
    let out = tempdir();
    let pause = Duration::from_secs(3);
    let (code, text) = receive_at_a_terminal_after(
        &sender.ticket,
        &["--out", path_str(out.path())],
        b"y\r",
        pause,
    );
    assert_eq!(code, Some(0), "{text}");
    let sent = sender.wait();
    assert!(sent.status.success(), "{}", sent.stderr);
    assert!(
        sent.stderr
            .contains("offering big.iso (8.00 MiB); waiting for the receiver to accept"),
        "{}",
        sent.stderr
    );
    let seconds = sent.json()["seconds"].as_f64().unwrap();
    assert!(
        seconds > 0.0 && seconds < pause.as_secs_f64(),
        "the sender counted {seconds} s, including the {pause:?} at the prompt"
    );
    assert_same_tree(src.path(), out.path());
}

/// A stream from standard input has no size: the sender's bar (on a
/// terminal) counts bytes and a rate, with no total and no ETA, and the
/// receiver is told it is a stream.
#[test]
fn a_stream_shows_a_count_and_a_rate_but_no_total() {
    use std::io::{BufRead, BufReader, Read};
    // Ten MiB, a tenth of a second apart, so the bar is drawn several times.
    let line = format!(
        "for i in 1 2 3 4 5 6 7 8 9 10; do head -c 1048576 /dev/zero; sleep 0.1; done | {BIN} send - --name s.bin"
    );
    let mut child = in_a_terminal(&line);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let ticket = loop {
        let mut l = String::new();
        assert!(stdout.read_line(&mut l).unwrap() > 0, "no ticket: {seen}");
        seen.push_str(&l);
        if let Some(t) = l.trim().strip_prefix("ferry receive ") {
            break t.to_string();
        }
    };
    let out = tempdir();
    let recv = receive(&ticket, &["--out", path_str(out.path())]);
    assert!(recv.status.success(), "{}", recv.stderr);
    assert!(
        recv.stderr
            .contains("offered: 1 file, a stream of unknown length\n  s.bin (a stream)"),
        "{}",
        recv.stderr
    );
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    seen.push_str(&String::from_utf8_lossy(&rest));
    assert!(
        seen.contains("offering s.bin (a stream of unknown length)"),
        "{seen}"
    );
    // The bar was drawn (its prefix and a rate), without a total or ETA.
    let frames: Vec<&str> = seen
        .split(['\r', '\n'])
        .filter(|l| l.contains("sending direct"))
        .collect();
    assert!(!frames.is_empty(), "no bar was drawn: {seen:?}");
    for f in &frames {
        assert!(f.contains("/s"), "{f:?}");
        assert!(!f.contains("ETA") && !f.contains("/0 B"), "{f:?}");
    }
    assert_eq!(
        std::fs::metadata(out.path().join("s.bin")).unwrap().len(),
        10 << 20
    );
}
