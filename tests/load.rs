//! A bounded load test of the real `ferry serve` on loopback: 2,000 idle
//! WebSocket clients held open at once, then 200 pairings at the same time,
//! with the server's memory reported. Clients come from many 127.0.0.0/8
//! addresses, as real clients come from many addresses, so the server's
//! default per-address limits stay in force.

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use ferry::signal::{Position, ServerMessage};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const IDLE: usize = 2_000;
const PAIRS: usize = 200;
/// Well within the default per-address limits (64 open, bursts of 60
/// connections and 30 new rooms).
const PER_ADDRESS: usize = 20;

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(60), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// Client number `n` of a group gets its own source address in 127.G.x.y.
fn source(group: u8, n: usize) -> String {
    let host = n / PER_ADDRESS + 1;
    format!("127.{group}.{}.{}", host / 250, host % 250 + 1)
}

fn room(kind: u8, n: usize) -> String {
    format!("{kind:02x}{n:030x}")
}

async fn connect(from: &str, server: SocketAddr, room: &str) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(server).await.unwrap();
    let url = format!("ws://{server}/v1/rooms/{room}");
    tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .unwrap()
        .0
}

async fn next(ws: &mut Ws) -> ServerMessage {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("connection ended: {other:?}"),
        }
    }
}

async fn relay(ws: &mut Ws, data: &str) {
    let frame = serde_json::json!({"type": "relay", "data": data}).to_string();
    ws.send(Message::text(frame)).await.unwrap();
}

/// A waiting peer in a room of its own.
async fn idle_client(server: SocketAddr, n: usize) -> Ws {
    let mut ws = connect(&source(1, n), server, &room(1, n)).await;
    match next(&mut ws).await {
        ServerMessage::Welcome {
            position: Position::First,
            ..
        } => ws,
        other => panic!("idle client {n}: expected a welcome, got {other:?}"),
    }
}

/// Both peers of room `n` meet and exchange one sealed-looking message each way.
async fn pairing(server: SocketAddr, n: usize) {
    let from = source(2, n * 2);
    let room = room(2, n);
    let mut first = connect(&from, server, &room).await;
    assert!(matches!(
        next(&mut first).await,
        ServerMessage::Welcome {
            position: Position::First,
            ..
        }
    ));
    let mut second = connect(&from, server, &room).await;
    assert!(matches!(
        next(&mut second).await,
        ServerMessage::Welcome {
            position: Position::Second,
            ..
        }
    ));
    assert_eq!(next(&mut first).await, ServerMessage::PeerJoined);
    relay(&mut second, &format!("offer-{n}")).await;
    assert_eq!(
        next(&mut first).await,
        ServerMessage::Relay {
            data: format!("offer-{n}")
        }
    );
    relay(&mut first, &format!("answer-{n}")).await;
    assert_eq!(
        next(&mut second).await,
        ServerMessage::Relay {
            data: format!("answer-{n}")
        }
    );
    first.close(None).await.unwrap();
    assert_eq!(next(&mut second).await, ServerMessage::PeerLeft);
}

/// (VmRSS, VmHWM) of a process, in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_clients_and_two_hundred_pairings() {
    // Each client holds a socket here and the server one more.
    let need = (IDLE + 2 * PAIRS + 256) as u64;
    let have = ferry::server::raise_open_file_limit().unwrap_or(0);
    assert!(
        have >= need,
        "this test needs {need} open files; the limit is {have} (ulimit -Hn)"
    );
    let server = serve();
    let addr: SocketAddr = server.url.trim_start_matches("ws://").parse().unwrap();
    let pid = server.child.id();
    let (base, _) = memory_mib(pid);

    let t = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    // In waves, as a crowd arrives, not one SYN flood.
    for wave in 0..IDLE / 200 {
        let joins = (wave * 200..(wave + 1) * 200).map(|n| idle_client(addr, n));
        idle.extend(within("idle clients", futures::future::join_all(joins)).await);
    }
    let idle_secs = t.elapsed().as_secs_f64();
    let (idle_rss, _) = memory_mib(pid);

    let t = Instant::now();
    let pairs = (0..PAIRS).map(|n| tokio::spawn(pairing(addr, n)));
    for done in within("pairings", futures::future::join_all(pairs)).await {
        done.unwrap();
    }
    let pair_secs = t.elapsed().as_secs_f64();

    // The page is still served, and every idle client is still connected:
    // each answers a ping with the server's pong.
    let page = http_get(addr).await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let checks = idle.iter_mut().map(|ws| async move {
        ws.send(Message::Ping(b"alive?".to_vec().into()))
            .await
            .unwrap();
        loop {
            match ws.next().await {
                Some(Ok(Message::Pong(p))) if p.as_ref() == b"alive?" => return,
                Some(Ok(_)) => continue,
                other => panic!("an idle client was dropped: {other:?}"),
            }
        }
    });
    within("idle clients alive", futures::future::join_all(checks)).await;
    let (rss, peak) = memory_mib(pid);

    eprintln!(
        "load: {IDLE} idle clients in {idle_secs:.2} s, {PAIRS} pairings at once in {pair_secs:.2} s; \
         ferry serve RSS {base:.1} MiB at start, {idle_rss:.1} MiB with {IDLE} idle, \
         {rss:.1} MiB after the pairings, peak {peak:.1} MiB \
         ({:.1} KiB per idle client)",
        (idle_rss - base) * 1024.0 / IDLE as f64
    );
    // About 140 KiB a connection, 128 KiB of it tungstenite's eagerly
    // allocated read buffer, which warp 0.4 does not let us size.
    assert!(
        peak < 512.0,
        "ferry serve peaked at {peak:.1} MiB for {IDLE} idle clients"
    );
    for mut ws in idle {
        let _ = ws.close(None).await;
    }
}

/// `GET /` over a plain TCP connection.
async fn http_get(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    within("GET /", stream.read_to_string(&mut response))
        .await
        .unwrap();
    response
}
