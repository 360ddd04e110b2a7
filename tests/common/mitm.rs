//! A WebSocket man in the middle for tests of a hostile or curious
//! rendezvous: it records, drops, replays or alters what clients send.

use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// What the proxy does with a text frame a client sends to the room at
/// `path`: `conn` counts the connections to that room from 0 (0 is the
/// sender, who creates the room). Returns the frames to pass on.
pub type Rule = Box<dyn Fn(&str, usize, &str) -> Vec<String> + Send + Sync>;

/// Everything the clients sent towards the server, as the server would see it.
#[derive(Default)]
pub struct Seen {
    pub requests: Vec<String>,
    pub frames: Vec<String>,
}

/// A WebSocket man in the middle in front of `upstream` (ws://host:port),
/// on its own thread and runtime. Returns its ws:// URL.
// The handshake callback's error type is tungstenite's, not ours.
#[allow(clippy::result_large_err)]
pub fn mitm(upstream: String, rule: Rule, seen: Arc<Mutex<Seen>>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let rule = Arc::new(rule);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let rooms = Arc::new(Mutex::new(std::collections::HashMap::<String, usize>::new()));
            while let Ok((tcp, _)) = listener.accept().await {
                let (upstream, rule, seen, rooms) =
                    (upstream.clone(), rule.clone(), seen.clone(), rooms.clone());
                tokio::spawn(async move {
                    let mut path = String::new();
                    let record = |req: &Request, resp: Response| {
                        path = req.uri().path().to_string();
                        let mut text = format!("{} {}\n", req.method(), req.uri());
                        for (name, value) in req.headers() {
                            text +=
                                &format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes()));
                        }
                        seen.lock().unwrap().requests.push(text);
                        Ok(resp)
                    };
                    let Ok(client) = tokio_tungstenite::accept_hdr_async(tcp, record).await else {
                        return;
                    };
                    let conn = {
                        let mut rooms = rooms.lock().unwrap();
                        let n = rooms.entry(path.clone()).or_default();
                        *n += 1;
                        *n - 1
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
                            let out = match &msg {
                                Message::Text(text) => {
                                    seen.lock().unwrap().frames.push(text.to_string());
                                    rule(&path, conn, text.as_str())
                                        .into_iter()
                                        .map(Message::text)
                                        .collect()
                                }
                                _ => vec![msg],
                            };
                            for msg in out {
                                if s_tx.send(msg).await.is_err() {
                                    return;
                                }
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
    });
    format!("ws://{addr}")
}

pub fn forward_all() -> Rule {
    Box::new(|_, _, text| vec![text.to_owned()])
}
