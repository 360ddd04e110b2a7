//! The STUN binding responder of `ferry serve` (RFC 8489): peers behind NATs
//! ask it which public address and port their packets come from, and offer
//! that (`srflx`) address to each other. Only Binding requests are answered;
//! everything else is dropped without a reply.

use std::net::SocketAddr;

use rtc_stun::message::{Message, BINDING_REQUEST, BINDING_SUCCESS};
use rtc_stun::textattrs::TextAttribute;
use rtc_stun::xoraddr::XorMappedAddress;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

const SOFTWARE: &str = concat!("ferry ", env!("CARGO_PKG_VERSION"));

/// The reply to one datagram from `from`: a Binding success response carrying
/// `from` as XOR-MAPPED-ADDRESS, or `None` for anything but a well-formed
/// Binding request (so the responder never answers junk, and cannot be used to
/// reflect arbitrary traffic).
pub fn binding_response(packet: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    if !rtc_stun::message::is_stun_message(packet) {
        return None;
    }
    let mut request = Message::new();
    request.unmarshal_binary(packet).ok()?;
    if request.typ != BINDING_REQUEST {
        return None;
    }
    let mut response = Message::new();
    response
        .build(&[
            Box::new(request), // copies the transaction id
            Box::new(BINDING_SUCCESS),
            Box::new(XorMappedAddress {
                ip: from.ip(),
                port: from.port(),
            }),
            Box::new(TextAttribute::new(
                rtc_stun::attributes::ATTR_SOFTWARE,
                SOFTWARE.to_owned(),
            )),
            Box::new(rtc_stun::fingerprint::FINGERPRINT),
        ])
        .ok()?;
    response.marshal_binary().ok()
}

/// Answers Binding requests on `socket` until `cancel` fires.
pub async fn serve(socket: UdpSocket, cancel: CancellationToken) {
    // A STUN request is small; anything that fills this buffer is not one.
    let mut buf = vec![0u8; 2048];
    loop {
        let (len, from) = tokio::select! {
            _ = cancel.cancelled() => return,
            got = socket.recv_from(&mut buf) => match got {
                Ok(got) => got,
                Err(e) => {
                    // ICMP errors from earlier replies surface here on some
                    // systems; they concern one peer, not the socket.
                    tracing::debug!(error = %e, "STUN receive failed");
                    continue;
                }
            },
        };
        if let Some(reply) = binding_response(&buf[..len], from) {
            if let Err(e) = socket.send_to(&reply, from).await {
                tracing::debug!(error = %e, %from, "STUN reply failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc_stun::message::Getter as _;

    fn request() -> Vec<u8> {
        let mut m = Message::new();
        m.build(&[
            Box::new(rtc_stun::message::TransactionId::new()),
            Box::new(BINDING_REQUEST),
            Box::new(rtc_stun::fingerprint::FINGERPRINT),
        ])
        .unwrap();
        m.marshal_binary().unwrap()
    }

    #[test]
    fn answers_a_binding_request_with_the_sender_address() {
        let req = request();
        let from: SocketAddr = "203.0.113.7:40123".parse().unwrap();
        let reply = binding_response(&req, from).expect("a reply");
        let mut m = Message::new();
        m.unmarshal_binary(&reply).unwrap();
        assert_eq!(m.typ, BINDING_SUCCESS);
        assert_eq!(m.transaction_id.0, req[8..20]);
        let mut addr = XorMappedAddress::default();
        addr.get_from(&m).unwrap();
        assert_eq!(SocketAddr::new(addr.ip, addr.port), from);
        rtc_stun::fingerprint::FINGERPRINT.check(&m).unwrap();

        let v6: SocketAddr = "[2001:db8::1]:5".parse().unwrap();
        let mut m = Message::new();
        m.unmarshal_binary(&binding_response(&req, v6).unwrap())
            .unwrap();
        let mut addr = XorMappedAddress::default();
        addr.get_from(&m).unwrap();
        assert_eq!(SocketAddr::new(addr.ip, addr.port), v6);
    }

    #[test]
    fn ignores_everything_else() {
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(binding_response(b"", from).is_none());
        assert!(binding_response(&[0u8; 20], from).is_none());
        assert!(binding_response(b"GET / HTTP/1.1\r\n\r\n", from).is_none());
        let mut req = request();
        // A truncated request, and a response instead of a request.
        assert!(binding_response(&req[..req.len() - 3], from).is_none());
        req[0] = 0x01;
        req[1] = 0x01;
        assert!(binding_response(&req, from).is_none());
        // Random garbage behind a valid-looking header never panics.
        for seed in 0..2000u32 {
            let mut junk = request();
            let at = 20 + (seed as usize % 12);
            if at < junk.len() {
                junk[at] ^= (seed >> 4) as u8 | 1;
            }
            let _ = binding_response(&junk, from);
        }
    }
}
