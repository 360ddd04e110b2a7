//! Which addresses of this machine a peer can use to reach a local server.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// URLs (`scheme://ip:port`) for a server bound to `bound`: for a wildcard
/// bind, every non-loopback IPv4 interface first (LAN peers and browsers),
/// then loopback (a peer on this machine).
pub fn reachable_urls(scheme: &str, bound: SocketAddr) -> Vec<String> {
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
        ips.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    } else {
        ips.push(bound.ip());
    }
    ips.into_iter()
        .map(|ip| format!("{scheme}://{}", SocketAddr::new(ip, port)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_lists_loopback_last_and_specific_is_kept() {
        let urls = reachable_urls("ws", "0.0.0.0:4000".parse().unwrap());
        assert_eq!(urls.last().map(String::as_str), Some("ws://127.0.0.1:4000"));
        assert_eq!(
            reachable_urls("ws", "10.1.2.3:5".parse().unwrap()),
            vec!["ws://10.1.2.3:5".to_string()]
        );
    }
}
