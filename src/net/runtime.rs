//! webrtc's runtime hook: the tokio runtime, with large UDP buffers on every
//! ICE socket and a short driver tick while the handshakes run. Also the
//! probe for the mDNS socket webrtc wants. No connection logic here.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime,
    TokioRuntime,
};

/// UDP socket buffer asked for: the kernel default (~212 KiB) drops packets at
/// speed; the kernel caps this at net.core.rmem_max.
const UDP_BUFFER: usize = 4 << 20;

/// The tokio runtime, but every ICE socket gets large buffers.
#[derive(Debug)]
pub(super) struct FerryRuntime {
    pub(super) tokio: TokioRuntime,
    /// True until the channels are open; see [`SETUP_TICK`].
    pub(super) setting_up: Arc<AtomicBool>,
    /// The largest datagram every socket of this connection receives whole.
    pub(super) whole_datagram: Arc<AtomicUsize>,
}

/// The largest UDP datagram a socket reporting `gro` segments receives
/// whole. webrtc's driver reads into a buffer of about `gro × 1500` bytes
/// (at most 64 segments), as `AsyncUdpSocket::max_gro_segments` documents,
/// or a single-datagram buffer without GRO; 1500 is the safe figure then.
fn whole_datagram(gro: usize) -> usize {
    if gro > 1 {
        gro.min(64) * 1500
    } else {
        1500
    }
}

/// How often the connection's driver wakes while the handshakes run.
///
/// webrtc 0.21's driver sends what the core produced while handling a read
/// (the DTLS and SCTP replies, the data-channel OPEN) only on its next wake-up,
/// which is the next timer, often 200 ms away. Each of three handshake steps
/// paid that wait (0.62 s to the first byte on loopback). Capping the driver's
/// sleep during setup makes it flush within a few milliseconds; after setup the
/// traffic itself keeps it awake, and the cap is lifted.
const SETUP_TICK: Duration = Duration::from_millis(2);

impl Runtime for FerryRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.tokio.spawn(future)
    }
    fn spawn_reactor(
        &self,
        size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.tokio.spawn_reactor(size, future)
    }
    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let sock = socket2::SockRef::from(&socket);
        // Best effort: a smaller buffer is slower, not broken.
        let _ = sock.set_recv_buffer_size(UDP_BUFFER);
        let _ = sock.set_send_buffer_size(UDP_BUFFER);
        tracing::debug!(
            local = ?socket.local_addr().ok(),
            recv_buffer = sock.recv_buffer_size().unwrap_or(0),
            send_buffer = sock.send_buffer_size().unwrap_or(0),
            "ICE socket buffers granted"
        );
        let wrapped = self.tokio.wrap_udp_socket(socket)?;
        let whole = whole_datagram(wrapped.max_gro_segments());
        self.whole_datagram.fetch_min(whole, Ordering::Relaxed);
        tracing::debug!(
            gro = wrapped.max_gro_segments(),
            whole,
            "ICE socket receive offload"
        );
        Ok(wrapped)
    }
    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.tokio.wrap_tcp_listener(listener)
    }
    fn connect_tcp<'a>(
        &'a self,
        remote: std::net::SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.tokio.connect_tcp(remote)
    }
    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<std::net::SocketAddr>>> + Send + 'a>> {
        self.tokio.resolve_host(host)
    }
    fn now(&self) -> Instant {
        self.tokio.now()
    }
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        if self.setting_up.load(Ordering::Relaxed) {
            return self.tokio.sleep(duration.min(SETUP_TICK));
        }
        self.tokio.sleep(duration)
    }
    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.tokio.interval(period)
    }
    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.tokio.block_on(future)
    }
    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.tokio.yield_now()
    }
    fn name(&self) -> &'static str {
        "ferry-tokio"
    }
}

/// Whether webrtc's mDNS socket can be opened here, tried by opening the very
/// socket webrtc opens (and closing it again).
///
/// In its default mode webrtc opens it for every connection, to resolve the
/// `.local` host candidates browsers hide their addresses behind, and fails to
/// build the connection when it can't. Joining 224.0.0.251 without naming an
/// interface fails with ENODEV wherever no route covers the group: a host whose
/// only interface is loopback (`unshare -n`, many containers), or one whose LAN
/// has no default route. (webrtc offers no way to name the interface.)
pub(super) fn mdns_socket_opens() -> io::Result<()> {
    rtc::mdns::MulticastSocket::new().into_std().map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_datagrams_follow_the_drivers_buffers() {
        assert_eq!(whole_datagram(1), 1500);
        assert_eq!(whole_datagram(64), 96_000);
        assert_eq!(whole_datagram(200), 96_000);
    }
}
