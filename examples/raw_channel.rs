//! Raw transport baseline: how fast one ferry data channel moves bytes with
//! no files, no hashing, no protocol — just messages sent from memory.
//!
//! Modes:
//!
//! * `raw_channel pair --bytes N` — runs the two peers as two processes
//!   (itself, as `send` and `recv` children) and relays their SDP lines.
//!   Prints one JSON line with the receiver's result and each side's CPU
//!   time and peak RSS.
//! * `raw_channel send --bytes N` — offerer and sender: prints its offer as
//!   one JSON line on stdout, reads the answer line on stdin, sends N bytes,
//!   then waits until the receiver closes the connection (or stdin ends).
//! * `raw_channel recv` — answerer and receiver: reads the offer line on
//!   stdin, prints its answer line, counts N bytes (N is learnt from the
//!   first control message), prints the result line and exits.
//! * `raw_channel inproc --bytes N` — both peers in one process.
//!
//! `seconds` runs from the moment the channels are open to the last byte.
//!
//! `--sctp-mtu N` (any mode) builds the connections with N-byte SCTP packets
//! instead of webrtc's 1191, as ferry's lanes between two processes on one
//! machine do (16000).
//!
//! Build: `cargo build --release --examples`; run
//! `target/release/examples/raw_channel pair --bytes 1073741824`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::BytesMut;
use ferry::net::{Drain, Incoming, Link, Transport, TransportConfig};
use serde_json::{json, Value};

/// Largest message that stays under the 65535-byte limit, as ferry uses.
const MESSAGE: usize = 65534;
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the sender waits for the receiver to finish after its last send.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

fn usage() -> ! {
    eprintln!(
        "usage: raw_channel (pair|send|inproc) --bytes N [--sctp-mtu N] | raw_channel recv [--sctp-mtu N]"
    );
    std::process::exit(2);
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or_else(|| usage());
    let bytes = flag::<u64>(&args, "--bytes")?;
    let sctp_mtu = flag::<u32>(&args, "--sctp-mtu")?;
    let config = TransportConfig {
        sctp_mtu,
        ..TransportConfig::default()
    };
    match (mode, bytes) {
        ("pair", Some(n)) => pair(n, sctp_mtu),
        ("send", Some(n)) => runtime()?.block_on(send_process(n, &config)),
        ("recv", None) => runtime()?.block_on(recv_process(&config)),
        ("inproc", Some(n)) => runtime()?.block_on(inproc(n, &config)),
        _ => usage(),
    }
}

/// The value after `name` in `args`, if `name` is there.
fn flag<T: std::str::FromStr>(args: &[String], name: &str) -> Result<Option<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let Some(i) = args.iter().position(|a| a == name) else {
        return Ok(None);
    };
    let value = args
        .get(i + 1)
        .ok_or_else(|| anyhow!("{name} needs a value"))?;
    Ok(Some(value.parse::<T>().with_context(|| name.to_string())?))
}

/// The same runtime the ferry binary uses: multi-threaded, one worker per core.
fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Runtime::new()?)
}

/// Spawn `send` and `recv` children, relay offer and answer, collect results.
fn pair(n: u64, sctp_mtu: Option<u32>) -> Result<()> {
    let exe = std::env::current_exe()?;
    let mtu_args: Vec<String> = sctp_mtu
        .map(|m| vec!["--sctp-mtu".into(), m.to_string()])
        .unwrap_or_default();
    let started = Instant::now();
    let mut sender = Command::new(&exe)
        .args(["send", "--bytes", &n.to_string()])
        .args(&mtu_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the send process")?;
    let mut receiver = Command::new(&exe)
        .arg("recv")
        .args(&mtu_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the recv process")?;
    let mut send_out = BufReader::new(sender.stdout.take().unwrap());
    let mut recv_out = BufReader::new(receiver.stdout.take().unwrap());
    let mut send_in = sender.stdin.take().unwrap();
    let mut recv_in = receiver.stdin.take().unwrap();

    let offer = read_line(&mut send_out, "the offer")?;
    recv_in.write_all(offer.as_bytes())?;
    drop(recv_in);
    let answer = read_line(&mut recv_out, "the answer")?;
    send_in.write_all(answer.as_bytes())?;
    send_in.flush()?;

    let result = read_line(&mut recv_out, "the receiver's result")?;
    if !receiver.wait()?.success() {
        bail!("the recv process failed");
    }
    // The receiver is done: closing the sender's stdin tells it to stop.
    drop(send_in);
    let send_result = read_line(&mut send_out, "the sender's result")?;
    if !sender.wait()?.success() {
        bail!("the send process failed");
    }
    let wall = started.elapsed().as_secs_f64();

    let mut out: Value = serde_json::from_str(&result)?;
    let send_usage: Value = serde_json::from_str(&send_result)?;
    let recv_usage = json!({"cpu_s": out["cpu_s"], "max_rss_mib": out["max_rss_mib"]});
    let obj = out.as_object_mut().unwrap();
    obj.remove("cpu_s");
    obj.remove("max_rss_mib");
    obj.insert("wall_seconds".into(), json!(wall));
    obj.insert("sender".into(), send_usage);
    obj.insert("receiver".into(), recv_usage);
    println!("{out}");
    Ok(())
}

fn read_line(from: &mut impl BufRead, what: &str) -> Result<String> {
    let mut line = String::new();
    if from.read_line(&mut line)? == 0 {
        bail!("the child process ended before sending {what}");
    }
    Ok(line)
}

/// Read one `{"sdp": ...}` line from stdin without blocking the runtime.
async fn read_sdp_line() -> Result<String> {
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await??;
    let v: Value = serde_json::from_str(&line).context("expected a JSON SDP line on stdin")?;
    v["sdp"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no \"sdp\" in the line on stdin"))
}

fn print_line(v: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

async fn send_process(n: u64, config: &TransportConfig) -> Result<()> {
    let mut t = Transport::new(config).await?;
    print_line(json!({ "sdp": t.create_offer().await? }));
    t.accept_answer(read_sdp_line().await?).await?;
    let mut link = t.open(OPEN_TIMEOUT).await?;
    // Tell the receiver how much to expect, then stream.
    link.send_control(&n.to_string()).await?;
    send_bytes(&link, n).await?;

    // Wait for the receiver to close the connection, or for stdin to end
    // (the `pair` parent closes it once the receiver has exited).
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin()
            .read_line(&mut sink)
            .map(|r| r > 0)
            .unwrap_or(false)
        {}
    });
    let peer_gone = async {
        loop {
            if let Incoming::Lost(_) = link.recv().await {
                break;
            }
        }
    };
    tokio::select! {
        _ = stdin_closed => {}
        _ = peer_gone => {}
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => bail!("the receiver never finished"),
    }
    print_line(usage_json());
    // Don't wait for the blocking stdin reader (or webrtc) to wind down.
    std::process::exit(0);
}

async fn recv_process(config: &TransportConfig) -> Result<()> {
    let mut t = Transport::new(config).await?;
    let answer = t.accept_offer(read_sdp_line().await?).await?;
    print_line(json!({ "sdp": answer }));
    let mut link = t.open(OPEN_TIMEOUT).await?;
    let opened = Instant::now();
    // The size comes on the control channel, which is not ordered with the
    // data channel: data may arrive first, and counts.
    let (got, seconds) = count_bytes(&mut link, None, opened).await?;
    let mut result = result_json(got, seconds);
    let usage = usage_json();
    result["cpu_s"] = usage["cpu_s"].clone();
    result["max_rss_mib"] = usage["max_rss_mib"].clone();
    print_line(result);
    link.close(Drain::Control).await;
    Ok(())
}

async fn inproc(n: u64, config: &TransportConfig) -> Result<()> {
    let config = config.clone();
    let mut offerer = Transport::new(&config).await?;
    let mut answerer = Transport::new(&config).await?;
    let offer = offerer.create_offer().await?;
    let answer = answerer.accept_offer(offer).await?;
    offerer.accept_answer(answer).await?;
    let (a, b) = tokio::join!(offerer.open(OPEN_TIMEOUT), answerer.open(OPEN_TIMEOUT));
    let (a, mut b) = (a?, b?);
    let opened = Instant::now();
    let sending = tokio::spawn(async move {
        send_bytes(&a, n).await?;
        anyhow::Ok(a)
    });
    let (got, seconds) = count_bytes(&mut b, Some(n), opened).await?;
    let a = sending.await??;
    let mut result = result_json(got, seconds);
    let usage = usage_json();
    result["cpu_s"] = usage["cpu_s"].clone();
    result["max_rss_mib"] = usage["max_rss_mib"].clone();
    print_line(result);
    a.close(Drain::Control).await;
    std::process::exit(0);
}

/// Send `n` bytes as MESSAGE-sized messages copied from one buffer.
async fn send_bytes(link: &Link, n: u64) -> Result<()> {
    let sender = link.data_sender();
    let buffer = BytesMut::zeroed(MESSAGE);
    let mut left = n;
    while left > 0 {
        let len = left.min(MESSAGE as u64) as usize;
        // `send` takes ownership, so each message is a copy of the buffer.
        sender.send(BytesMut::from(&buffer[..len])).await?;
        left -= len as u64;
    }
    Ok(())
}

/// Count data bytes until `n` have arrived (`None`: the sender tells `n` in
/// a control message); seconds are measured from `since`.
async fn count_bytes(link: &mut Link, mut n: Option<u64>, since: Instant) -> Result<(u64, f64)> {
    let mut got = 0u64;
    while n.is_none_or(|n| got < n) {
        match link.recv().await {
            Incoming::Data(_, m) => got += m.len() as u64,
            Incoming::Control(m) if n.is_none() => {
                n = Some(
                    std::str::from_utf8(&m)?
                        .trim()
                        .parse()
                        .context("the size message")?,
                )
            }
            Incoming::Control(_) => {}
            Incoming::Lost(reason) => bail!("connection lost after {got} bytes: {reason}"),
        }
    }
    Ok((got, since.elapsed().as_secs_f64()))
}

fn result_json(bytes: u64, seconds: f64) -> Value {
    json!({
        "bytes": bytes,
        "seconds": seconds,
        "mb_per_s": bytes as f64 / seconds / 1e6,
    })
}

/// This process's CPU time (user + system) and peak RSS so far.
fn usage_json() -> Value {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    json!({
        "cpu_s": secs(ru.ru_utime) + secs(ru.ru_stime),
        // ru_maxrss is in KiB on Linux.
        "max_rss_mib": ru.ru_maxrss as f64 / 1024.0,
    })
}
