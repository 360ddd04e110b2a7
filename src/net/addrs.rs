//! Which addresses of this machine a peer can use to reach a local server.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

/// No address of this machine can be reached, not even from itself.
#[derive(Debug, thiserror::Error)]
#[error(
    "no network interface is up, not even loopback: bring one up (for loopback, as root: ip link set lo up) and try again"
)]
pub struct NoNetwork;

/// URLs (`scheme://ip:port`) for a server bound to `bound`: for a wildcard
/// bind, every non-loopback IPv4 interface first (LAN peers and browsers),
/// then loopback (a peer on this machine). Addresses this machine has no
/// route to (loopback while `lo` is down) are left out; if that leaves none,
/// nobody could connect and it is an error.
pub fn reachable_urls(scheme: &str, bound: SocketAddr) -> Result<Vec<String>, NoNetwork> {
    let port = bound.port();
    let mut ips: Vec<IpAddr> = Vec::new();
    if bound.ip().is_unspecified() {
        if let Ok(ifaces) = if_addrs::get_if_addrs() {
            for iface in ifaces {
                let ip = iface.ip();
                if let IpAddr::V4(v4) = ip {
                    if !v4.is_loopback() && !v4.is_link_local() && !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
            }
        }
        if ips.is_empty() {
            // Containers and `unshare -n` often have nothing else.
            tracing::debug!("no network interface but loopback: the ticket offers 127.0.0.1 only");
        }
        ips.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    } else {
        ips.push(bound.ip());
    }
    ips.retain(|&ip| routable(SocketAddr::new(ip, port)));
    if ips.is_empty() {
        return Err(NoNetwork);
    }
    Ok(ips
        .into_iter()
        .map(|ip| format!("{scheme}://{}", SocketAddr::new(ip, port)))
        .collect())
}

/// Whether this machine has a route to `addr`. A UDP `connect` only looks the
/// route up; nothing is sent. A listening socket's own address can still be
/// unroutable: binding 127.0.0.1 works while `lo` is down.
fn routable(addr: SocketAddr) -> bool {
    let any: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    UdpSocket::bind(any).and_then(|s| s.connect(addr)).is_ok()
}

/// Whether every one of `urls` (`scheme://ip:port`) names a loopback
/// address, so that only a peer on this machine can use them.
pub fn loopback_only(urls: &[String]) -> bool {
    !urls.is_empty()
        && urls.iter().all(|url| {
            let addr = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
            let host = addr.split('/').next().unwrap_or(addr);
            host.parse::<SocketAddr>()
                .is_ok_and(|a| a.ip().is_loopback())
                || host.starts_with("localhost:")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_lists_loopback_last_and_specific_is_kept() {
        let urls = reachable_urls("ws", "0.0.0.0:4000".parse().unwrap()).unwrap();
        assert_eq!(urls.last().map(String::as_str), Some("ws://127.0.0.1:4000"));
        assert_eq!(
            reachable_urls("ws", "127.0.0.1:5".parse().unwrap()).unwrap(),
            vec!["ws://127.0.0.1:5".to_string()]
        );
    }

    #[test]
    fn loopback_only_urls() {
        let urls = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(loopback_only(&urls(&["ws://127.0.0.1:4000"])));
        assert!(loopback_only(&urls(&[
            "ws://[::1]:4000/x",
            "ws://localhost:1"
        ])));
        assert!(!loopback_only(&urls(&[
            "ws://10.1.2.3:5",
            "ws://127.0.0.1:5"
        ])));
        assert!(!loopback_only(&urls(&["ws://example.org:80"])));
        assert!(!loopback_only(&[]));
    }
}
