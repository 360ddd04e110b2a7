//! Per-client limits of the rendezvous server: concurrent connections, the
//! rate of new connections and the rate of new rooms, for each client address.
//!
//! Pure bookkeeping with the time passed in, owned by the server's registry
//! task (no locks), so it is tested without sockets or sleeping.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// A sustained rate with a burst allowance: a token bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Tokens available at once (and the bucket's size).
    pub burst: u32,
    /// Tokens added per minute.
    pub per_minute: u32,
}

/// What one client (an IPv4 address, or an IPv6 /64) may do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClientLimits {
    /// WebSocket connections open at once.
    pub max_connections: usize,
    /// New WebSocket connections.
    pub connect_rate: Rate,
    /// Joins that create a room (the first peer of a transfer).
    pub room_rate: Rate,
}

impl Default for ClientLimits {
    /// Far above what people do (a transfer takes one connection per side and
    /// one room), far below what a script flooding the server needs.
    fn default() -> ClientLimits {
        ClientLimits {
            max_connections: 64,
            connect_rate: Rate {
                burst: 60,
                per_minute: 120,
            },
            room_rate: Rate {
                burst: 30,
                per_minute: 30,
            },
        }
    }
}

/// Why a client was turned away; the text is for people.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The client has [`ClientLimits::max_connections`] open already (the limit).
    #[error("too many connections from your address (at most {0} at once)")]
    TooManyConnections(usize),
    /// The client is over [`ClientLimits::connect_rate`]; seconds until it
    /// may connect again.
    #[error("too many new connections from your address; try again in {0} s")]
    ConnectingTooFast(u64),
    /// The client is over [`ClientLimits::room_rate`]; seconds until it may
    /// create a room again.
    #[error("too many new transfers from your address; try again in {0} s")]
    CreatingRoomsTooFast(u64),
}

/// The address limits are counted by: IPv6 clients usually own a whole /64,
/// so counting single addresses would limit nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// The key of a client at `ip`: an IPv4 address as is (IPv4-mapped IPv6
    /// included), an IPv6 address as its /64.
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    ClientKey(IpAddr::V6(bits.into()))
                }
            },
        }
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(rate.burst),
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        let added = elapsed * f64::from(rate.per_minute) / 60.0;
        self.tokens = (self.tokens + added).min(f64::from(rate.burst));
        self.at = now;
    }

    /// Takes a token, or says how many whole seconds until one is there.
    fn take(&mut self, rate: Rate, now: Instant) -> Result<(), u64> {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if rate.per_minute == 0 {
            return Err(u64::MAX);
        }
        let wait = (1.0 - self.tokens) * 60.0 / f64::from(rate.per_minute);
        Err(wait.ceil() as u64)
    }

    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        let mut copy = *self;
        copy.refill(rate, now);
        copy.tokens >= f64::from(rate.burst)
    }
}

struct ClientState {
    connections: usize,
    connects: Bucket,
    rooms: Bucket,
}

/// The limits' state for every client seen recently.
pub struct Tracker {
    limits: ClientLimits,
    clients: HashMap<ClientKey, ClientState>,
}

impl Tracker {
    /// A tracker enforcing `limits`, with no client seen yet.
    pub fn new(limits: ClientLimits) -> Tracker {
        Tracker {
            limits,
            clients: HashMap::new(),
        }
    }

    fn state(&mut self, client: ClientKey, now: Instant) -> &mut ClientState {
        let limits = self.limits;
        self.clients.entry(client).or_insert_with(|| ClientState {
            connections: 0,
            connects: Bucket::full(limits.connect_rate, now),
            rooms: Bucket::full(limits.room_rate, now),
        })
    }

    /// A new connection from `client`: counted if admitted, and then must be
    /// given back with [`Tracker::disconnect`].
    pub fn connect(&mut self, client: ClientKey, now: Instant) -> Result<(), Refusal> {
        let limits = self.limits;
        let state = self.state(client, now);
        if state.connections >= limits.max_connections {
            return Err(Refusal::TooManyConnections(limits.max_connections));
        }
        state
            .connects
            .take(limits.connect_rate, now)
            .map_err(Refusal::ConnectingTooFast)?;
        state.connections += 1;
        Ok(())
    }

    /// A connection admitted by [`Tracker::connect`] closed.
    pub fn disconnect(&mut self, client: ClientKey) {
        if let Some(state) = self.clients.get_mut(&client) {
            state.connections = state.connections.saturating_sub(1);
        }
    }

    /// `client` (already connected) is about to create a room.
    pub fn create_room(&mut self, client: ClientKey, now: Instant) -> Result<(), Refusal> {
        let rate = self.limits.room_rate;
        self.state(client, now)
            .rooms
            .take(rate, now)
            .map_err(Refusal::CreatingRoomsTooFast)
    }

    /// Forgets clients with no connection whose buckets are full again, so
    /// the table holds only recent clients.
    pub fn sweep(&mut self, now: Instant) {
        let limits = self.limits;
        self.clients.retain(|_, s| {
            s.connections > 0
                || !s.connects.is_full(limits.connect_rate, now)
                || !s.rooms.is_full(limits.room_rate, now)
        });
    }

    /// Clients currently tracked.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether no client is tracked.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(s: &str) -> ClientKey {
        ClientKey::of(s.parse().unwrap())
    }

    fn limits(max: usize, connect: (u32, u32), room: (u32, u32)) -> ClientLimits {
        ClientLimits {
            max_connections: max,
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

    #[test]
    fn ipv6_clients_are_counted_per_64_and_mapped_v4_as_v4() {
        assert_eq!(key("2001:db8::1"), key("2001:db8::ffff:1"));
        assert_ne!(key("2001:db8::1"), key("2001:db8:0:1::1"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_eq!(key("2001:db8::1").to_string(), "2001:db8::/64");
        assert_eq!(key("192.0.2.7").to_string(), "192.0.2.7");
    }

    #[test]
    fn concurrent_connections_are_capped_per_client() {
        let now = Instant::now();
        let mut t = Tracker::new(limits(2, (100, 100), (100, 100)));
        let a = key("192.0.2.1");
        t.connect(a, now).unwrap();
        t.connect(a, now).unwrap();
        assert_eq!(t.connect(a, now), Err(Refusal::TooManyConnections(2)));
        // Another client is unaffected.
        t.connect(key("192.0.2.2"), now).unwrap();
        t.disconnect(a);
        t.connect(a, now).unwrap();
    }

    #[test]
    fn connection_rate_refills_with_time() {
        let t0 = Instant::now();
        let mut t = Tracker::new(limits(100, (3, 60), (100, 100)));
        let a = key("192.0.2.1");
        for _ in 0..3 {
            t.connect(a, t0).unwrap();
            t.disconnect(a);
        }
        assert_eq!(t.connect(a, t0), Err(Refusal::ConnectingTooFast(1)));
        // One token a second at 60 a minute.
        t.connect(a, t0 + Duration::from_millis(1000)).unwrap();
        assert!(t.connect(a, t0 + Duration::from_millis(1500)).is_err());
        // Never more than the burst, however long the pause.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            t.connect(a, later).unwrap();
            t.disconnect(a);
        }
        assert!(t.connect(a, later).is_err());
    }

    #[test]
    fn room_creation_has_its_own_rate() {
        let t0 = Instant::now();
        let mut t = Tracker::new(limits(100, (100, 100), (2, 6)));
        let a = key("192.0.2.1");
        t.create_room(a, t0).unwrap();
        t.create_room(a, t0).unwrap();
        assert_eq!(t.create_room(a, t0), Err(Refusal::CreatingRoomsTooFast(10)));
        t.create_room(a, t0 + Duration::from_secs(10)).unwrap();
        // Connections are still fine.
        t.connect(a, t0).unwrap();
    }

    #[test]
    fn sweep_forgets_only_idle_refilled_clients() {
        let t0 = Instant::now();
        let mut t = Tracker::new(limits(10, (2, 60), (2, 60)));
        let busy = key("192.0.2.1");
        let gone = key("192.0.2.2");
        t.connect(busy, t0).unwrap();
        t.connect(gone, t0).unwrap();
        t.disconnect(gone);
        t.sweep(t0);
        assert_eq!(t.len(), 2, "the gone client's bucket is not full yet");
        t.sweep(t0 + Duration::from_secs(2));
        assert_eq!(t.len(), 1, "only the connected client remains");
        t.disconnect(busy);
        t.sweep(t0 + Duration::from_secs(4));
        assert!(t.is_empty());
    }
}
