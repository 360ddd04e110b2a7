//! The rendezvous server: pairs two peers per room and relays their sealed
//! signaling messages, and serves the web page.
//!
//! One registry task owns all rooms; each WebSocket connection is its own task
//! and talks to the registry over channels. Relays then go straight from one
//! connection task to the other over the channel the registry handed out, so
//! nothing is shared behind a lock.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use warp::http::StatusCode;
use warp::ws::{Message, WebSocket};
use warp::Filter;

use crate::server::limits::{ClientKey, ClientLimits, Refusal, Tracker};
use crate::server::turn::TurnRest;
use crate::signal::{codes, ClientMessage, IceServer, Position, ServerMessage};

/// Relays one connection may send in its lifetime. Signaling needs a few
/// dozen; the cap bounds what a peer can queue for one that is not reading.
pub const MAX_RELAYS_PER_CONNECTION: usize = 512;

/// How long a closing connection waits for the client's close reply, so the
/// final error frame is not lost to a TCP reset.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Server limits and what it tells clients.
#[derive(Clone, Debug)]
pub struct Config {
    /// Largest client frame accepted; bigger ones get `too_large` and a close.
    pub max_message_bytes: usize,
    /// Longest a room may live, counted from its creation.
    pub room_ttl: Duration,
    /// Rooms that may exist at once; beyond it joins get `server_busy`.
    pub max_rooms: usize,
    /// What one client address may do; beyond it, `rate_limited`.
    pub per_client: ClientLimits,
    /// The server pings every connection this often; one that sends nothing
    /// at all (not even the pong) for three intervals is closed as dead.
    pub ping_interval: Duration,
    /// Sent to every client in `welcome`.
    pub ice_servers: Vec<IceServer>,
    /// The UDP port of this server's own STUN responder, if it runs one:
    /// clients are told `stun:HOST:PORT`, HOST being the host they reached
    /// this server by (their `Host` header).
    pub stun_port: Option<u16>,
    /// Mints TURN credentials for each client, if a TURN secret is set.
    pub turn: Option<TurnRest>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_message_bytes: 64 * 1024,
            room_ttl: Duration::from_secs(24 * 60 * 60),
            max_rooms: 10_000,
            per_client: ClientLimits::default(),
            ping_interval: Duration::from_secs(20),
            ice_servers: Vec::new(),
            stun_port: None,
            turn: None,
        }
    }
}

/// Serves until `shutdown` resolves, then closes every WebSocket and returns.
///
/// Takes an already-bound listener (warp's own bind panics on failure), so
/// tests and `ferry send` can embed the server on port 0.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (registry_tx, registry_rx) = mpsc::channel(1024);
    // Every connection task holds a clone; recv() yields None once all are gone.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);

    let registry = tokio::spawn(registry_task(registry_rx, stop_rx.clone(), config.clone()));

    let ctx = ConnCtx {
        registry: registry_tx,
        stop: stop_rx,
        max_message_bytes: config.max_message_bytes,
        ping_interval: config.ping_interval,
        ice_servers: config.ice_servers,
        stun_port: config.stun_port,
        turn: config.turn,
        _alive: alive_tx,
    };
    tracing::info!(%addr, "rendezvous server listening");
    warp::serve(routes(ctx))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;

    // warp's graceful shutdown does not cover upgraded connections: stop them.
    let _ = stop_tx.send(true);
    if tokio::time::timeout(Duration::from_secs(5), alive_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!("some rendezvous connections did not close within 5s");
    }
    if let Err(e) = registry.await {
        tracing::warn!(error = %e, "rendezvous registry task failed");
    }
    tracing::info!(%addr, "rendezvous server stopped");
    Ok(())
}

/// What each connection task needs; cloned per connection.
#[derive(Clone)]
struct ConnCtx {
    registry: mpsc::Sender<RegistryCmd>,
    stop: watch::Receiver<bool>,
    max_message_bytes: usize,
    ping_interval: Duration,
    ice_servers: Vec<IceServer>,
    stun_port: Option<u16>,
    turn: Option<TurnRest>,
    _alive: mpsc::Sender<()>,
}

impl ConnCtx {
    /// What `welcome` offers a client that reached us as `host`: the
    /// configured servers, our own STUN responder, fresh TURN credentials.
    fn ice_servers_for(&self, host: Option<&str>) -> Vec<IceServer> {
        let mut out = self.ice_servers.clone();
        if let (Some(port), Some(host)) = (self.stun_port, host.and_then(host_name)) {
            out.push(IceServer {
                urls: vec![format!("stun:{host}:{port}")],
                ..Default::default()
            });
        }
        if let Some(turn) = &self.turn {
            out.push(turn.credentials(std::time::SystemTime::now(), "ferry"));
        }
        out
    }
}

/// The host part of a `Host` header (`name`, `name:port`, `[v6]:port`),
/// or `None` if it is not a plain host name or address.
fn host_name(header: &str) -> Option<&str> {
    let host = match header.strip_prefix('[') {
        Some(rest) => &header[..rest.find(']')? + 2],
        None => header.rsplit_once(':').map_or(header, |(h, _)| h),
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || "-._:[]".contains(c);
    (!host.is_empty() && host.chars().all(plain)).then_some(host)
}

fn routes(
    ctx: ConnCtx,
) -> impl Filter<Extract = (impl warp::Reply,), Error = Infallible> + Clone + Send + Sync + 'static
{
    let rooms = warp::path!("v1" / "rooms" / String)
        .and(warp::ws())
        .and(warp::header::optional::<String>("host"))
        .and(warp::addr::remote())
        .and(warp::any().map(move || ctx.clone()))
        .map(
            |room: String,
             ws: warp::ws::Ws,
             host: Option<String>,
             remote: Option<std::net::SocketAddr>,
             ctx: ConnCtx| {
                let ice_servers = ctx.ice_servers_for(host.as_deref());
                // Always known for TCP listeners; the unspecified address
                // keeps any other case under one shared limit.
                let ip = remote.map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |a| a.ip());
                let client = ClientKey::of(ip);
                // Let frames a little over the limit through so the client gets a
                // clear `too_large` rather than a dropped connection.
                let hard_cap = ctx.max_message_bytes.saturating_mul(2).max(4096);
                ws.max_message_size(hard_cap)
                    .max_frame_size(hard_cap)
                    .on_upgrade(move |socket| connection(socket, room, client, ice_servers, ctx))
            },
        );

    let not_upgraded =
        warp::path!("v1" / "rooms" / String)
            .and(warp::get())
            .map(|_room: String| {
                warp::reply::with_status(
                    "this is a WebSocket endpoint\n",
                    StatusCode::UPGRADE_REQUIRED,
                )
            });

    rooms
        .or(not_upgraded)
        .or(crate::server::web::files())
        .recover(|_rejection: warp::Rejection| async {
            Ok::<_, Infallible>(warp::reply::with_status(
                "not found\n",
                StatusCode::NOT_FOUND,
            ))
        })
}

/// A room id as derived from a ticket: 32 lowercase hex characters.
pub fn is_valid_room_id(room: &str) -> bool {
    room.len() == 32 && room.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

// ---------------------------------------------------------------------------
// Registry

/// Events delivered to a connection task.
#[derive(Debug)]
enum PeerEvent {
    /// A second peer arrived; here is its inbox.
    Joined(mpsc::UnboundedSender<PeerEvent>),
    /// A sealed message from the peer, forwarded verbatim.
    Relay(String),
    Left,
    Expired,
}

enum RegistryCmd {
    /// A new connection from `client`; it must send `Disconnect` when it
    /// ends if the reply was `Ok`.
    Connect {
        client: ClientKey,
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    Disconnect {
        client: ClientKey,
    },
    Join {
        room: String,
        client: ClientKey,
        inbox: mpsc::UnboundedSender<PeerEvent>,
        reply: oneshot::Sender<JoinReply>,
    },
    Leave {
        room: String,
        id: u64,
    },
}

enum JoinReply {
    First {
        id: u64,
    },
    Second {
        id: u64,
        peer: mpsc::UnboundedSender<PeerEvent>,
    },
    Full,
    Busy,
    Refused(Refusal),
}

struct Member {
    id: u64,
    inbox: mpsc::UnboundedSender<PeerEvent>,
}

struct Room {
    created: Instant,
    members: Vec<Member>,
}

async fn registry_task(
    mut commands: mpsc::Receiver<RegistryCmd>,
    mut stop: watch::Receiver<bool>,
    config: Config,
) {
    let Config {
        room_ttl,
        max_rooms,
        per_client,
        ..
    } = config;
    let mut rooms: HashMap<String, Room> = HashMap::new();
    let mut clients = Tracker::new(per_client);
    let mut next_id: u64 = 0;
    let period = (room_ttl / 4).clamp(Duration::from_millis(10), Duration::from_secs(60));
    let mut sweep = tokio::time::interval(period);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(RegistryCmd::Connect { client, reply }) => {
                    let answer = clients.connect(client, Instant::now());
                    if let Err(why) = &answer {
                        tracing::info!(%client, %why, "refused a connection");
                    }
                    if reply.send(answer.clone()).is_err() && answer.is_ok() {
                        // The connection is gone already and will not disconnect.
                        clients.disconnect(client);
                    }
                }
                Some(RegistryCmd::Disconnect { client }) => clients.disconnect(client),
                Some(RegistryCmd::Join { room, client, inbox, reply }) => {
                    next_id += 1;
                    let creating = !rooms.contains_key(&room);
                    let answer = match creating.then(|| clients.create_room(client, Instant::now())) {
                        Some(Err(why)) => {
                            tracing::info!(%client, %why, "refused a new room");
                            JoinReply::Refused(why)
                        }
                        _ => join_room(&mut rooms, &room, next_id, inbox, max_rooms),
                    };
                    // The connection may have gone meanwhile; its Leave follows.
                    let _ = reply.send(answer);
                }
                Some(RegistryCmd::Leave { room, id }) => leave_room(&mut rooms, &room, id),
                None => break,
            },
            _ = sweep.tick() => {
                clients.sweep(Instant::now());
                rooms.retain(|room_id, room| {
                    if room.created.elapsed() < room_ttl {
                        return true;
                    }
                    tracing::info!(room = %room_id, "room expired");
                    for m in &room.members {
                        let _ = m.inbox.send(PeerEvent::Expired);
                    }
                    false
                });
            }
            _ = stop.changed() => break,
        }
    }
}

fn join_room(
    rooms: &mut HashMap<String, Room>,
    room_id: &str,
    id: u64,
    inbox: mpsc::UnboundedSender<PeerEvent>,
    max_rooms: usize,
) -> JoinReply {
    if !rooms.contains_key(room_id) && rooms.len() >= max_rooms {
        tracing::warn!(room = %room_id, "refusing room: server at max_rooms");
        return JoinReply::Busy;
    }
    let room = rooms.entry(room_id.to_owned()).or_insert_with(|| Room {
        created: Instant::now(),
        members: Vec::new(),
    });
    // A member whose task is gone without a Leave must not hold a slot.
    room.members.retain(|m| !m.inbox.is_closed());
    match room.members.as_slice() {
        [] => {
            room.members.push(Member { id, inbox });
            tracing::info!(room = %room_id, "first peer joined");
            JoinReply::First { id }
        }
        [first] => {
            let peer = first.inbox.clone();
            // Sent before the reply, so the waiting peer learns of the newcomer
            // before any relay from it can reach its inbox.
            let _ = peer.send(PeerEvent::Joined(inbox.clone()));
            room.members.push(Member { id, inbox });
            tracing::info!(room = %room_id, "second peer joined");
            JoinReply::Second { id, peer }
        }
        _ => {
            tracing::info!(room = %room_id, "refused a third peer");
            JoinReply::Full
        }
    }
}

fn leave_room(rooms: &mut HashMap<String, Room>, room_id: &str, id: u64) {
    let Some(room) = rooms.get_mut(room_id) else {
        return;
    };
    let before = room.members.len();
    room.members.retain(|m| m.id != id);
    if room.members.len() == before {
        return; // A stale leave, e.g. after expiry; the room is someone else's now.
    }
    tracing::info!(room = %room_id, "peer left");
    for m in &room.members {
        let _ = m.inbox.send(PeerEvent::Left);
    }
    if room.members.is_empty() {
        rooms.remove(room_id);
    }
}

// ---------------------------------------------------------------------------
// Connections

/// Why a connection's session ended.
enum End {
    /// The client closed or the socket failed; nothing more to say.
    Gone,
    /// Tell the client why, then close.
    Error(&'static str, String),
}

async fn connection(
    ws: WebSocket,
    room: String,
    client: ClientKey,
    ice_servers: Vec<IceServer>,
    ctx: ConnCtx,
) {
    let (reply_tx, reply_rx) = oneshot::channel();
    let admitted = match ctx
        .registry
        .send(RegistryCmd::Connect {
            client,
            reply: reply_tx,
        })
        .await
    {
        Ok(()) => reply_rx.await.ok(),
        Err(_) => None,
    };
    match admitted {
        Some(Ok(())) => {
            in_room(ws, room, client, ice_servers, &ctx).await;
            let _ = ctx.registry.send(RegistryCmd::Disconnect { client }).await;
        }
        Some(Err(why)) => finish(ws, End::Error(codes::RATE_LIMITED, why.to_string())).await,
        None => {
            let msg = "the server is shutting down".to_owned();
            finish(ws, End::Error(codes::SHUTTING_DOWN, msg)).await;
        }
    }
}

/// An admitted connection: join the room, then relay until either side ends.
async fn in_room(
    mut ws: WebSocket,
    room: String,
    client: ClientKey,
    ice_servers: Vec<IceServer>,
    ctx: &ConnCtx,
) {
    if !is_valid_room_id(&room) {
        tracing::debug!("refused a malformed room id");
        let msg = "the room id must be 32 lowercase hex characters".to_owned();
        finish(ws, End::Error(codes::BAD_REQUEST, msg)).await;
        return;
    }

    let (inbox_tx, mut inbox) = mpsc::unbounded_channel();
    let (reply_tx, reply_rx) = oneshot::channel();
    let cmd = RegistryCmd::Join {
        room: room.clone(),
        client,
        inbox: inbox_tx,
        reply: reply_tx,
    };
    let joined = match ctx.registry.send(cmd).await {
        Ok(()) => reply_rx.await.ok(),
        Err(_) => None,
    };
    let (id, position, peer) = match joined {
        Some(JoinReply::First { id }) => (id, Position::First, None),
        Some(JoinReply::Second { id, peer }) => (id, Position::Second, Some(peer)),
        Some(JoinReply::Full) => {
            let msg = "this room already has two peers".to_owned();
            finish(ws, End::Error(codes::ROOM_FULL, msg)).await;
            return;
        }
        Some(JoinReply::Busy) => {
            let msg = "the server has too many rooms open; try again later".to_owned();
            finish(ws, End::Error(codes::SERVER_BUSY, msg)).await;
            return;
        }
        Some(JoinReply::Refused(why)) => {
            finish(ws, End::Error(codes::RATE_LIMITED, why.to_string())).await;
            return;
        }
        None => {
            let msg = "the server is shutting down".to_owned();
            finish(ws, End::Error(codes::SHUTTING_DOWN, msg)).await;
            return;
        }
    };

    let welcome = ServerMessage::Welcome {
        position,
        ice_servers,
    };
    let end = if send_json(&mut ws, &welcome).await {
        session(&mut ws, &mut inbox, peer, ctx).await
    } else {
        End::Gone
    };
    // Leave before the close handshake so the peer hears of it at once.
    let _ = ctx.registry.send(RegistryCmd::Leave { room, id }).await;
    finish(ws, end).await;
}

async fn session(
    ws: &mut WebSocket,
    inbox: &mut mpsc::UnboundedReceiver<PeerEvent>,
    mut peer: Option<mpsc::UnboundedSender<PeerEvent>>,
    ctx: &ConnCtx,
) -> End {
    let mut stop = ctx.stop.clone();
    let mut relays = 0usize;
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + ctx.ping_interval,
        ctx.ping_interval,
    );
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            // Stop first: at shutdown the peer's own exit also queues a
            // `Left`, and this client must hear `shutting_down`, not `peer_left`.
            biased;
            _ = stop.changed() => {
                return End::Error(codes::SHUTTING_DOWN, "the server is shutting down".to_owned());
            }
            frame = ws.next() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "websocket read failed");
                        return End::Gone;
                    }
                    None => return End::Gone,
                };
                last_heard = tokio::time::Instant::now();
                if frame.is_close() {
                    return End::Gone;
                }
                if frame.is_ping() || frame.is_pong() {
                    continue;
                }
                if frame.as_bytes().len() > ctx.max_message_bytes {
                    let msg = format!("messages are limited to {} bytes", ctx.max_message_bytes);
                    return End::Error(codes::TOO_LARGE, msg);
                }
                let data = match parse_client_frame(&frame) {
                    Ok(data) => data,
                    Err(msg) => return End::Error(codes::BAD_REQUEST, msg),
                };
                relays += 1;
                if relays > MAX_RELAYS_PER_CONNECTION {
                    let msg = format!("at most {MAX_RELAYS_PER_CONNECTION} messages per connection");
                    return End::Error(codes::TOO_MANY_MESSAGES, msg);
                }
                match &peer {
                    // A failed send means the peer just left; its Left event follows.
                    Some(p) => { let _ = p.send(PeerEvent::Relay(data)); }
                    // Documented: relays while alone in the room are dropped.
                    None => tracing::debug!("dropped a relay sent with no peer present"),
                }
            }
            _ = ping.tick() => {
                // Browsers and tungstenite answer pings by themselves; silence
                // means the client or the path to it is gone.
                if last_heard.elapsed() >= ctx.ping_interval * 3 {
                    let msg = format!("nothing heard from this client for {} s", last_heard.elapsed().as_secs());
                    return End::Error(codes::IDLE_TIMEOUT, msg);
                }
                if ws.send(Message::ping(Vec::new())).await.is_err() {
                    return End::Gone;
                }
            }
            event = inbox.recv() => {
                let out = match event {
                    Some(PeerEvent::Joined(p)) => {
                        peer = Some(p);
                        ServerMessage::PeerJoined
                    }
                    Some(PeerEvent::Relay(data)) => ServerMessage::Relay { data },
                    Some(PeerEvent::Left) => {
                        peer = None;
                        ServerMessage::PeerLeft
                    }
                    Some(PeerEvent::Expired) => {
                        let msg = "the room reached its maximum lifetime".to_owned();
                        return End::Error(codes::ROOM_EXPIRED, msg);
                    }
                    // The registry is gone: the server is stopping.
                    None => return End::Error(codes::SHUTTING_DOWN, "the server is shutting down".to_owned()),
                };
                if !send_json(ws, &out).await {
                    return End::Gone;
                }
            }
        }
    }
}

/// The sealed payload of a client frame, or why the frame is refused.
fn parse_client_frame(frame: &Message) -> Result<String, String> {
    let text = frame
        .to_str()
        .map_err(|_| "only JSON text frames are accepted".to_owned())?;
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(ClientMessage::Relay { data }) => Ok(data),
        Err(_) => Err(r#"expected {"type":"relay","data":"..."}"#.to_owned()),
    }
}

async fn send_json(ws: &mut WebSocket, msg: &ServerMessage) -> bool {
    let text = match serde_json::to_string(msg) {
        Ok(text) => text,
        Err(_) => return false,
    };
    ws.send(Message::text(text)).await.is_ok()
}

/// Sends the error (if any) and a close frame, then waits briefly for the
/// client's close reply.
async fn finish(mut ws: WebSocket, end: End) {
    let close = match end {
        End::Gone => Message::close(),
        End::Error(code, message) => {
            tracing::debug!(code, %message, "closing connection with an error");
            let error = ServerMessage::Error {
                code: code.to_owned(),
                message,
            };
            if !send_json(&mut ws, &error).await {
                return;
            }
            // 1008: policy violation; 1001: going away.
            let status = if code == codes::SHUTTING_DOWN {
                1001u16
            } else {
                1008
            };
            Message::close_with(status, code)
        }
    };
    if ws.send(close).await.is_err() {
        return;
    }
    let drain = async { while let Some(Ok(_)) = ws.next().await {} };
    let _ = tokio::time::timeout(CLOSE_GRACE, drain).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbox() -> (
        mpsc::UnboundedSender<PeerEvent>,
        mpsc::UnboundedReceiver<PeerEvent>,
    ) {
        mpsc::unbounded_channel()
    }

    const ROOM: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn host_names_from_host_headers() {
        assert_eq!(host_name("example.org"), Some("example.org"));
        assert_eq!(host_name("example.org:8080"), Some("example.org"));
        assert_eq!(host_name("203.0.113.1:8080"), Some("203.0.113.1"));
        assert_eq!(host_name("[2001:db8::1]:8080"), Some("[2001:db8::1]"));
        assert_eq!(host_name("[2001:db8::1"), None);
        assert_eq!(host_name(""), None);
        assert_eq!(host_name("evil.org/x?y:1"), None);
        assert_eq!(host_name("a b:1"), None);
    }

    #[test]
    fn room_ids() {
        assert!(is_valid_room_id(ROOM));
        assert!(!is_valid_room_id(&ROOM.to_uppercase()));
        assert!(!is_valid_room_id(&ROOM[1..]));
        assert!(!is_valid_room_id(&format!("{ROOM}0")));
        assert!(!is_valid_room_id("0123456789abcdef0123456789abcdeg"));
        assert!(!is_valid_room_id(""));
    }

    #[test]
    fn two_per_room_and_leave_frees_a_slot() {
        let mut rooms = HashMap::new();
        let (a_tx, mut a_rx) = inbox();
        let (b_tx, mut b_rx) = inbox();
        let (c_tx, _c_rx) = inbox();
        assert!(matches!(
            join_room(&mut rooms, ROOM, 1, a_tx, 10),
            JoinReply::First { id: 1 }
        ));
        let JoinReply::Second { peer, .. } = join_room(&mut rooms, ROOM, 2, b_tx, 10) else {
            panic!("second join must pair");
        };
        // The peer handle given to B reaches A.
        peer.send(PeerEvent::Relay("x".into())).unwrap();
        assert!(matches!(a_rx.try_recv(), Ok(PeerEvent::Joined(_))));
        assert!(matches!(a_rx.try_recv(), Ok(PeerEvent::Relay(d)) if d == "x"));
        assert!(matches!(
            join_room(&mut rooms, ROOM, 3, c_tx.clone(), 10),
            JoinReply::Full
        ));
        leave_room(&mut rooms, ROOM, 1);
        assert!(matches!(b_rx.try_recv(), Ok(PeerEvent::Left)));
        // A stale leave of an unknown id changes nothing.
        leave_room(&mut rooms, ROOM, 1);
        assert!(b_rx.try_recv().is_err());
        assert!(matches!(
            join_room(&mut rooms, ROOM, 4, c_tx, 10),
            JoinReply::Second { .. }
        ));
        assert!(matches!(b_rx.try_recv(), Ok(PeerEvent::Joined(_))));
        leave_room(&mut rooms, ROOM, 2);
        leave_room(&mut rooms, ROOM, 4);
        assert!(rooms.is_empty());
    }

    #[test]
    fn dead_members_do_not_hold_slots() {
        let mut rooms = HashMap::new();
        let (a_tx, a_rx) = inbox();
        let (b_tx, _b_rx) = inbox();
        join_room(&mut rooms, ROOM, 1, a_tx, 10);
        drop(a_rx);
        assert!(matches!(
            join_room(&mut rooms, ROOM, 2, b_tx, 10),
            JoinReply::First { .. }
        ));
    }

    #[test]
    fn max_rooms_is_enforced() {
        let mut rooms = HashMap::new();
        let (a_tx, _a) = inbox();
        let (b_tx, _b) = inbox();
        let (c_tx, _c) = inbox();
        join_room(&mut rooms, ROOM, 1, a_tx, 1);
        let other = "f".repeat(32);
        assert!(matches!(
            join_room(&mut rooms, &other, 2, b_tx, 1),
            JoinReply::Busy
        ));
        // Joining an existing room is still fine.
        assert!(matches!(
            join_room(&mut rooms, ROOM, 3, c_tx, 1),
            JoinReply::Second { .. }
        ));
    }

    #[test]
    fn client_frames() {
        let ok = Message::text(r#"{"type":"relay","data":"abc"}"#);
        assert_eq!(parse_client_frame(&ok), Ok("abc".to_owned()));
        for bad in [
            Message::text("garbage"),
            Message::text(r#"{"type":"welcome","position":"first"}"#),
            Message::text(r#"{"type":"relay"}"#),
            Message::binary(vec![1, 2, 3]),
        ] {
            assert!(parse_client_frame(&bad).is_err());
        }
    }
}
