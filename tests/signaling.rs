//! The rendezvous server and the signaling client together, in process.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use data_encoding::BASE64URL_NOPAD;
use ferry::server::limits::{ClientLimits, Rate};
use ferry::server::rendezvous::{self, Config};
use ferry::signal::Ticket;
use ferry::signal::{
    associated_data, seal, Position, Role, ServerMessage, SignalClient, SignalError, SignalMessage,
};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type RawWs = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Bounds every wait so a bug fails the test instead of hanging it.
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(10), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    async fn start(config: Config) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(rendezvous::run(listener, config, async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn ticket(&self) -> Ticket {
        Ticket::generate(vec![format!("ws://{}", self.addr)])
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        within("server shutdown", task).await.unwrap().unwrap();
    }
}

fn offer() -> SignalMessage {
    SignalMessage::Description {
        sdp_type: "offer".into(),
        sdp: "v=0\r\na=fingerprint:sha-256 AB:CD\r\n".into(),
        session: None,
    }
}

fn answer() -> SignalMessage {
    SignalMessage::Description {
        sdp_type: "answer".into(),
        sdp: "v=0\r\na=fingerprint:sha-256 EF:01\r\n".into(),
        session: None,
    }
}

fn candidate(n: u16) -> SignalMessage {
    SignalMessage::Candidate {
        candidate: format!("candidate:{n} 1 udp 2130706431 192.0.2.2 {n} typ host"),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
    }
}

async fn pair(ticket: &Ticket) -> (SignalClient, SignalClient) {
    let mut first = within("first connect", SignalClient::connect(ticket))
        .await
        .unwrap();
    assert_eq!(first.position(), Position::First);
    let mut second = within("second connect", SignalClient::connect(ticket))
        .await
        .unwrap();
    assert_eq!(second.position(), Position::Second);
    within("second wait", second.wait_for_peer()).await.unwrap();
    within("first wait (peer_joined)", first.wait_for_peer())
        .await
        .unwrap();
    (first, second)
}

async fn raw_connect(addr: SocketAddr, room: &str) -> RawWs {
    let url = format!("ws://{addr}/v1/rooms/{room}");
    within("raw connect", tokio_tungstenite::connect_async(url))
        .await
        .unwrap()
        .0
}

/// Next JSON message from the server, or None once the connection closes.
async fn raw_next(ws: &mut RawWs) -> Option<ServerMessage> {
    loop {
        match within("raw read", ws.next()).await {
            Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

async fn raw_relay(ws: &mut RawWs, data: &str) {
    let frame = serde_json::json!({"type": "relay", "data": data}).to_string();
    ws.send(Message::text(frame)).await.unwrap();
}

/// A raw client joining `ticket`'s room as the second peer (the offerer).
async fn raw_offerer(server: &Server, ticket: &Ticket) -> RawWs {
    let mut raw = raw_connect(server.addr, &ticket.room_id()).await;
    assert!(matches!(
        raw_next(&mut raw).await,
        Some(ServerMessage::Welcome {
            position: Position::Second,
            ..
        })
    ));
    raw
}

fn expect_error_code(msg: Option<ServerMessage>, want: &str) {
    match msg {
        Some(ServerMessage::Error { code, .. }) => assert_eq!(code, want),
        other => panic!("expected error {want}, got {other:?}"),
    }
}

#[tokio::test]
async fn two_peers_pair_and_exchange_both_ways() {
    let server = Server::start(Config::default()).await;
    let ticket = server.ticket();
    let (mut answerer, mut offerer) = pair(&ticket).await;
    assert!(answerer.ice_servers().is_empty());

    offerer.send(&offer()).await.unwrap();
    for n in 1..=5 {
        offerer.send(&candidate(n)).await.unwrap();
    }
    assert_eq!(
        within("recv offer", answerer.recv()).await.unwrap(),
        offer()
    );
    for n in 1..=5 {
        assert_eq!(
            within("recv candidate", answerer.recv()).await.unwrap(),
            candidate(n)
        );
    }
    answerer.send(&answer()).await.unwrap();
    answerer.send(&candidate(9)).await.unwrap();
    assert_eq!(
        within("recv answer", offerer.recv()).await.unwrap(),
        answer()
    );
    assert_eq!(
        within("recv candidate", offerer.recv()).await.unwrap(),
        candidate(9)
    );

    answerer.close().await;
    offerer.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn ice_servers_from_config_reach_clients() {
    let ice = ferry::signal::IceServer {
        urls: vec!["stun:192.0.2.2:3478".into()],
        username: Some("u".into()),
        credential: Some("c".into()),
    };
    let server = Server::start(Config {
        ice_servers: vec![ice.clone()],
        ..Config::default()
    })
    .await;
    let client = SignalClient::connect(&server.ticket()).await.unwrap();
    assert_eq!(client.ice_servers(), &[ice]);
    client.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn third_peer_gets_room_full() {
    let server = Server::start(Config::default()).await;
    let ticket = server.ticket();
    let (a, b) = pair(&ticket).await;
    let third = within("third connect", SignalClient::connect(&ticket)).await;
    assert!(matches!(third, Err(SignalError::RoomFull)), "{third:?}");
    // Other rooms are unaffected.
    let other = server.ticket();
    let (c, d) = pair(&other).await;
    for client in [a, b, c, d] {
        client.close().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn leaving_peer_yields_peer_left_and_frees_the_slot() {
    let server = Server::start(Config::default()).await;
    let ticket = server.ticket();
    let (mut a, b) = pair(&ticket).await;
    b.close().await;
    let got = within("recv after leave", a.recv()).await;
    assert!(matches!(got, Err(SignalError::PeerLeft)), "{got:?}");

    // A newcomer takes the free slot and the stayer answers again.
    let mut c = within("rejoin", SignalClient::connect(&ticket))
        .await
        .unwrap();
    assert_eq!(c.position(), Position::Second);
    within("peer_joined again", a.wait_for_peer())
        .await
        .unwrap();
    assert_eq!(a.position(), Position::First);
    c.send(&offer()).await.unwrap();
    assert_eq!(within("recv", a.recv()).await.unwrap(), offer());
    a.send(&answer()).await.unwrap();
    assert_eq!(within("recv", c.recv()).await.unwrap(), answer());

    a.close().await;
    c.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn wrong_ticket_secret_is_tampered() {
    let server = Server::start(Config::default()).await;
    let ticket = server.ticket();
    let wrong = Ticket {
        servers: ticket.servers.clone(),
        secret: [0x42; 32],
    };
    assert_ne!(wrong.signaling_key(), ticket.signaling_key());
    let mut a = SignalClient::connect(&ticket).await.unwrap();
    // Force the wrong ticket into the right room, as a malicious server could.
    let mut raw = raw_offerer(&server, &ticket).await;
    within("peer_joined", a.wait_for_peer()).await.unwrap();

    let aad = associated_data(&ticket.room_id(), Role::Offerer);
    raw_relay(&mut raw, &seal(&wrong.signaling_key(), &aad, &offer())).await;
    let got = within("recv wrong key", a.recv()).await;
    assert!(matches!(got, Err(SignalError::Tampered)), "{got:?}");

    // Control: the same path with the right key works, and the client survived.
    raw_relay(&mut raw, &seal(&ticket.signaling_key(), &aad, &offer())).await;
    assert_eq!(within("recv right key", a.recv()).await.unwrap(), offer());
    a.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn flipped_byte_is_tampered() {
    let server = Server::start(Config::default()).await;
    let ticket = server.ticket();
    let mut a = SignalClient::connect(&ticket).await.unwrap();
    let mut raw = raw_offerer(&server, &ticket).await;
    within("peer_joined", a.wait_for_peer()).await.unwrap();

    let aad = associated_data(&ticket.room_id(), Role::Offerer);
    let sealed = seal(&ticket.signaling_key(), &aad, &offer());
    let mut bytes = BASE64URL_NOPAD.decode(sealed.as_bytes()).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    raw_relay(&mut raw, &BASE64URL_NOPAD.encode(&bytes)).await;
    let got = within("recv flipped", a.recv()).await;
    assert!(matches!(got, Err(SignalError::Tampered)), "{got:?}");

    raw_relay(&mut raw, &sealed).await;
    assert_eq!(within("recv intact", a.recv()).await.unwrap(), offer());
    a.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn reflected_message_is_tampered() {
    let server = Server::start(Config::default()).await;
    let ticket = server.ticket();
    let mut a = SignalClient::connect(&ticket).await.unwrap();
    let mut raw = raw_offerer(&server, &ticket).await;
    within("peer_joined", a.wait_for_peer()).await.unwrap();

    // The raw peer plays a malicious relay: it sends A's own message back.
    a.send(&answer()).await.unwrap();
    let own = match raw_next(&mut raw).await {
        Some(ServerMessage::Relay { data }) => data,
        other => panic!("expected a relay, got {other:?}"),
    };
    raw_relay(&mut raw, &own).await;
    let got = within("recv reflected", a.recv()).await;
    assert!(matches!(got, Err(SignalError::Tampered)), "{got:?}");

    // Control: sealed with the offerer's role, the same content is accepted.
    let aad = associated_data(&ticket.room_id(), Role::Offerer);
    raw_relay(&mut raw, &seal(&ticket.signaling_key(), &aad, &answer())).await;
    assert_eq!(within("recv", a.recv()).await.unwrap(), answer());
    a.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn garbage_frames_close_only_the_offender() {
    let server = Server::start(Config::default()).await;
    let good = server.ticket();
    let (mut a, mut b) = pair(&good).await;

    let bad_frames = [
        (Message::text("this is not json"), "bad_request"),
        (
            Message::text(r#"{"type":"welcome","position":"first"}"#),
            "bad_request",
        ),
        (Message::binary(vec![0u8, 1, 2, 3]), "bad_request"),
        (
            Message::text(
                serde_json::json!({"type": "relay", "data": "x".repeat(70 * 1024)}).to_string(),
            ),
            "too_large",
        ),
    ];
    for (frame, code) in bad_frames {
        let room = server.ticket().room_id();
        let mut raw = raw_connect(server.addr, &room).await;
        assert!(matches!(
            raw_next(&mut raw).await,
            Some(ServerMessage::Welcome { .. })
        ));
        raw.send(frame).await.unwrap();
        expect_error_code(raw_next(&mut raw).await, code);
        assert!(raw_next(&mut raw).await.is_none(), "connection must close");
    }

    // A frame far beyond the limit is cut off too.
    let mut raw = raw_connect(server.addr, &server.ticket().room_id()).await;
    raw_next(&mut raw).await;
    let _ = raw.send(Message::binary(vec![7u8; 1024 * 1024])).await;
    while raw_next(&mut raw).await.is_some() {}

    // The established pair and new rooms keep working.
    b.send(&offer()).await.unwrap();
    assert_eq!(within("recv", a.recv()).await.unwrap(), offer());
    a.send(&answer()).await.unwrap();
    assert_eq!(within("recv", b.recv()).await.unwrap(), answer());
    let (c, d) = pair(&server.ticket()).await;
    for client in [a, b, c, d] {
        client.close().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_room_ids_are_refused() {
    let server = Server::start(Config::default()).await;
    for room in [
        "short",
        "0123456789ABCDEF0123456789ABCDEF",
        "0123456789abcdef0123456789abcdef0",
    ] {
        let mut raw = raw_connect(server.addr, room).await;
        expect_error_code(raw_next(&mut raw).await, "bad_request");
        assert!(raw_next(&mut raw).await.is_none());
    }
    server.shutdown().await;
}

#[tokio::test]
async fn rooms_expire_after_their_ttl() {
    let server = Server::start(Config {
        room_ttl: Duration::from_millis(200),
        ..Config::default()
    })
    .await;
    let ticket = server.ticket();
    let (mut a, _b) = pair(&ticket).await;
    match within("expiry", a.recv()).await {
        Err(SignalError::Server(msg)) => assert!(msg.starts_with("room_expired"), "{msg}"),
        other => panic!("expected room_expired, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn unreachable_servers_are_reported_and_skipped() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("ws://{}", l.local_addr().unwrap())
    };
    let only_dead = Ticket::generate(vec![dead.clone()]);
    match within("connect dead", SignalClient::connect(&only_dead)).await {
        Err(e @ SignalError::Unreachable { .. }) => {
            let SignalError::Unreachable { tried, .. } = &e else {
                unreachable!()
            };
            assert_eq!(tried, &vec![dead.clone()]);
            assert!(e.to_string().contains("--server"), "{e}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }

    // A dead first URL falls through to a live second one.
    let server = Server::start(Config::default()).await;
    let mixed = Ticket::generate(vec![dead, format!("ws://{}", server.addr)]);
    let client = within("connect mixed", SignalClient::connect(&mixed))
        .await
        .unwrap();
    assert_eq!(client.position(), Position::First);
    client.close().await;
    server.shutdown().await;
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    within("http read", stream.read_to_string(&mut response))
        .await
        .unwrap();
    response
}

#[tokio::test]
async fn get_root_serves_the_page_and_others_404() {
    let server = Server::start(Config::default()).await;
    let page = http_get(server.addr, "/").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page
        .to_ascii_lowercase()
        .contains("content-type: text/html"));
    assert!(page.ends_with(include_str!("../web/index.html")));

    let missing = http_get(server.addr, "/nope").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    let no_upgrade = http_get(server.addr, "/v1/rooms/0123456789abcdef0123456789abcdef").await;
    assert!(no_upgrade.starts_with("HTTP/1.1 426"), "{no_upgrade}");
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_open_rooms() {
    let server = Server::start(Config::default()).await;
    let ticket = server.ticket();
    let (mut a, _b) = pair(&ticket).await;
    let addr = server.addr;
    server.shutdown().await;
    let got = within("recv after shutdown", a.recv()).await;
    assert!(
        matches!(&got, Err(SignalError::Server(m)) if m.starts_with("shutting_down"))
            || matches!(got, Err(SignalError::Closed)),
        "{got:?}"
    );
    // The listener is gone.
    assert!(TcpStream::connect(addr).await.is_err());
}

/// A raw client whose TCP connection comes from `source` (any 127.0.0.0/8
/// address works on loopback), so tests can act as several client addresses.
async fn raw_connect_from(source: &str, addr: SocketAddr, room: &str) -> RawWs {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let stream = within("tcp connect", socket.connect(addr)).await.unwrap();
    let url = format!("ws://{addr}/v1/rooms/{room}");
    within(
        "ws handshake",
        tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)),
    )
    .await
    .unwrap()
    .0
}

fn limits(max_connections: usize, connect: (u32, u32), room: (u32, u32)) -> ClientLimits {
    ClientLimits {
        max_connections,
        connect_rate: Rate {
            burst: connect.0,
            per_minute: connect.1,
        },
        room_rate: Rate {
            burst: room.0,
            per_minute: room.1,
        },
    }
}

fn room(n: u8) -> String {
    format!("{n:02x}").repeat(16)
}

async fn expect_welcome(ws: &mut RawWs) -> Position {
    match raw_next(ws).await {
        Some(ServerMessage::Welcome { position, .. }) => position,
        other => panic!("expected a welcome, got {other:?}"),
    }
}

async fn expect_refusal(ws: &mut RawWs, says: &str) {
    match raw_next(ws).await {
        Some(ServerMessage::Error { code, message }) => {
            assert_eq!(code, "rate_limited", "{message}");
            assert!(message.contains(says), "{message}");
        }
        other => panic!("expected rate_limited, got {other:?}"),
    }
    assert!(raw_next(ws).await.is_none(), "the connection must close");
}

#[tokio::test]
async fn one_address_over_its_connection_cap_is_refused_and_others_are_served() {
    let server = Server::start(Config {
        per_client: limits(2, (100, 100), (100, 100)),
        ..Config::default()
    })
    .await;
    let mut a1 = raw_connect_from("127.0.0.2", server.addr, &room(1)).await;
    let mut a2 = raw_connect_from("127.0.0.2", server.addr, &room(2)).await;
    expect_welcome(&mut a1).await;
    expect_welcome(&mut a2).await;
    let mut a3 = raw_connect_from("127.0.0.2", server.addr, &room(3)).await;
    expect_refusal(&mut a3, "too many connections from your address").await;

    // Another address pairs and relays as usual, and the page is served.
    let mut b1 = raw_connect_from("127.0.0.3", server.addr, &room(4)).await;
    let mut b2 = raw_connect_from("127.0.0.3", server.addr, &room(4)).await;
    assert_eq!(expect_welcome(&mut b1).await, Position::First);
    assert_eq!(expect_welcome(&mut b2).await, Position::Second);
    assert_eq!(raw_next(&mut b1).await, Some(ServerMessage::PeerJoined));
    raw_relay(&mut b2, "hello").await;
    assert_eq!(
        raw_next(&mut b1).await,
        Some(ServerMessage::Relay {
            data: "hello".into()
        })
    );
    assert!(http_get(server.addr, "/").await.starts_with("HTTP/1.1 200"));

    // A closed connection gives its slot back.
    a1.close(None).await.unwrap();
    while raw_next(&mut a1).await.is_some() {}
    let mut again = None;
    for _ in 0..100 {
        let mut a4 = raw_connect_from("127.0.0.2", server.addr, &room(5)).await;
        match raw_next(&mut a4).await {
            Some(ServerMessage::Welcome { .. }) => {
                again = Some(a4);
                break;
            }
            // The server may not have seen the close yet.
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(again.is_some(), "the slot was never given back");
    server.shutdown().await;
}

#[tokio::test]
async fn connection_and_room_creation_rates_are_limited_per_address() {
    let server = Server::start(Config {
        per_client: limits(100, (4, 1), (2, 1)),
        ..Config::default()
    })
    .await;
    // Two new rooms, then a third is refused; joining an existing one is not
    // creating one, so it is still allowed.
    let mut r1 = raw_connect_from("127.0.0.4", server.addr, &room(1)).await;
    let mut r2 = raw_connect_from("127.0.0.4", server.addr, &room(2)).await;
    expect_welcome(&mut r1).await;
    expect_welcome(&mut r2).await;
    let mut r3 = raw_connect_from("127.0.0.4", server.addr, &room(3)).await;
    expect_refusal(&mut r3, "too many new transfers from your address").await;
    let mut join = raw_connect_from("127.0.0.4", server.addr, &room(1)).await;
    assert_eq!(expect_welcome(&mut join).await, Position::Second);
    // That was the fourth connection of a burst of four.
    let mut fifth = raw_connect_from("127.0.0.4", server.addr, &room(1)).await;
    expect_refusal(&mut fifth, "too many new connections from your address").await;

    // Another address is unaffected.
    let mut other = raw_connect_from("127.0.0.5", server.addr, &room(6)).await;
    expect_welcome(&mut other).await;

    // The client library reports the refusal as the server's error.
    let mut refused = None;
    for _ in 0..3 {
        // 127.0.0.1 has its own fresh limits: use them up with new rooms.
        match SignalClient::connect(&server.ticket()).await {
            Ok(client) => client.close().await,
            Err(e) => refused = Some(e),
        }
    }
    let refused = refused.expect("the third room from 127.0.0.1 must be refused");
    assert!(refused.to_string().contains("rate_limited"), "{refused}");
    server.shutdown().await;
}

#[tokio::test]
async fn silent_connections_are_closed_and_busy_clients_stay() {
    let server = Server::start(Config {
        ping_interval: Duration::from_millis(100),
        ..Config::default()
    })
    .await;
    // A raw client that never reads never answers the server's pings.
    let mut silent = raw_connect(server.addr, &room(7)).await;
    expect_welcome(&mut silent).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    expect_error_code(raw_next(&mut silent).await, "idle_timeout");
    assert!(raw_next(&mut silent).await.is_none());

    // The signaling client answers pings from its own task, so a peer busy
    // elsewhere (asking its user, say) for many ping intervals keeps its place.
    let (mut a, mut b) = pair(&server.ticket()).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    b.send(&offer()).await.unwrap();
    assert_eq!(within("recv", a.recv()).await.unwrap(), offer());
    a.close().await;
    b.close().await;
    server.shutdown().await;
}
