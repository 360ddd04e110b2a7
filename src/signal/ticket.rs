//! The ticket: everything a receiver needs to find and authenticate the sender.
//!
//! Text form: `ferry` followed by lowercase RFC 4648 base32 (no padding) of
//!
//! ```text
//! [version u8 = 2][secret: 32 bytes][server count u8][per server: len u8, UTF-8 bytes][CRC-32 u32]
//! ```
//!
//! The trailing CRC-32 catches typos before anyone waits on a wrong room. A
//! CRC rather than a truncated hash: it is guaranteed to catch every change
//! within 32 consecutive bits, so every single changed character (5 bits)
//! and every swap of two characters up to five apart, where a 32-bit hash
//! only catches them with probability 1 - 2^-32. The ticket needs no
//! protection against forgery here: whoever can edit it can replace it.
//!
//! The room id and the signaling key are derived from the secret with
//! HKDF-SHA256 rather than BLAKE3 so that a browser can derive the same values
//! with WebCrypto alone.

use std::fmt;
use std::str::FromStr;

use data_encoding::{BASE32_NOPAD, HEXLOWER};
use hkdf::Hkdf;
use rand::TryRngCore;
use sha2::Sha256;

/// Version of the ticket format. Version 1 had no checksum; the wire
/// protocol behind both is the same.
pub const TICKET_VERSION: u8 = 2;
/// The first ticket format, refused with its own message.
const OLD_VERSION: u8 = 1;
/// Bytes of the trailing CRC-32.
const CHECK_LEN: usize = 4;

/// Text prefix of every ticket.
const PREFIX: &str = "ferry";
/// Most rendezvous servers a ticket may list; keeps tickets short enough to paste.
pub const MAX_SERVERS: usize = 8;
/// A server URL's length must fit in the one-byte length field.
pub const MAX_SERVER_LEN: usize = 255;

const ROOM_INFO: &[u8] = b"ferry/1 room";
const SIGNALING_KEY_INFO: &[u8] = b"ferry/1 signaling key";

/// A parsed ferry ticket. Its `Debug` leaves the secret out (logs show the
/// room id instead); only `Display` writes the whole ticket.
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Rendezvous server URLs (`ws://` or `wss://`), tried in order.
    pub servers: Vec<String>,
    /// The 256-bit shared secret; never leaves the two peers.
    pub secret: [u8; 32],
}

/// Why a ticket string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TicketError {
    /// The text does not start with `ferry` (in any case).
    #[error("not a ferry ticket: it must start with `ferry` (copy the whole line that `ferry send` printed)")]
    MissingPrefix,
    /// Bad base32, an impossible length or a checksum that does not match.
    #[error("this ticket has a typo: copy it again")]
    Typo,
    /// The checksum matched, but the bytes end inside a field.
    #[error("the ticket is incomplete: copy it again, all of it")]
    Truncated,
    /// The checksum matched, but bytes follow the last server.
    #[error("the ticket has extra bytes at the end: copy it again, exactly as printed")]
    TrailingBytes,
    /// A whole ticket of format version 1, which had no checksum.
    #[error("this ticket comes from an older ferry (ticket version 1): update ferry on the sending side, then send again")]
    OldVersion,
    /// A checked ticket of a format version other than [`TICKET_VERSION`].
    #[error("this ticket is of format version {0}; this ferry reads version {TICKET_VERSION}: upgrade the older ferry so both sides match")]
    UnsupportedVersion(u8),
    /// A server count of zero.
    #[error("the ticket lists no rendezvous server: create a new one with `ferry send`")]
    NoServers,
    /// More than [`MAX_SERVERS`] servers; how many.
    #[error("the ticket lists {0} rendezvous servers, more than the {MAX_SERVERS} allowed: create a new one with `ferry send`")]
    TooManyServers(usize),
    /// A server URL whose bytes are not UTF-8.
    #[error("a rendezvous server in the ticket is not valid UTF-8: copy the ticket again")]
    ServerNotUtf8,
    /// A server that is not `ws://` or `wss://` with a host, or is longer
    /// than [`MAX_SERVER_LEN`] bytes.
    #[error("rendezvous server `{0}` is not a ws:// or wss:// URL (of at most {MAX_SERVER_LEN} bytes): check --server")]
    BadServer(String),
}

impl Ticket {
    /// A new ticket with a fresh secret from the operating system's RNG.
    ///
    /// `servers` should satisfy [`Ticket::validate`]; a server that cannot be
    /// encoded would make `Display` produce a ticket that `FromStr` refuses.
    pub fn generate(servers: Vec<String>) -> Ticket {
        let mut secret = [0u8; 32];
        if rand::rngs::OsRng.try_fill_bytes(&mut secret).is_err() {
            // ThreadRng is a CSPRNG seeded from the OS too; reaching here means
            // the OS source failed once, not that randomness is unavailable.
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
        }
        Ticket { servers, secret }
    }

    /// Builds a ticket, checking that it can be written and read back.
    pub fn new(servers: Vec<String>, secret: [u8; 32]) -> Result<Ticket, TicketError> {
        let ticket = Ticket { servers, secret };
        ticket.validate()?;
        Ok(ticket)
    }

    /// Checks the rules `FromStr` enforces: 1 to 8 servers, each a ws:// or
    /// wss:// URL of at most 255 bytes.
    pub fn validate(&self) -> Result<(), TicketError> {
        if self.servers.is_empty() {
            return Err(TicketError::NoServers);
        }
        if self.servers.len() > MAX_SERVERS {
            return Err(TicketError::TooManyServers(self.servers.len()));
        }
        for server in &self.servers {
            check_server(server)?;
        }
        Ok(())
    }

    /// The rendezvous room: 32 lowercase hex characters, derived from the secret
    /// so the server learns nothing that helps it open the sealed messages.
    pub fn room_id(&self) -> String {
        let mut okm = [0u8; 16];
        hkdf_expand(&self.secret, ROOM_INFO, &mut okm);
        HEXLOWER.encode(&okm)
    }

    /// The AES-256-GCM key that seals signaling messages.
    pub fn signaling_key(&self) -> [u8; 32] {
        let mut okm = [0u8; 32];
        hkdf_expand(&self.secret, SIGNALING_KEY_INFO, &mut okm);
        okm
    }

    fn to_payload(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(34 + self.servers.iter().map(|s| s.len() + 1).sum::<usize>());
        out.push(TICKET_VERSION);
        out.extend_from_slice(&self.secret);
        // Length fields are one byte; clamping keeps Display infallible, and
        // `validate` is where an over-long list or URL is reported.
        let servers: Vec<&String> = self.servers.iter().take(u8::MAX as usize).collect();
        out.push(servers.len() as u8);
        for server in servers {
            let bytes = &server.as_bytes()[..server.len().min(MAX_SERVER_LEN)];
            out.push(bytes.len() as u8);
            out.extend_from_slice(bytes);
        }
        let check = crc32(&out);
        out.extend_from_slice(&check.to_be_bytes());
        out
    }

    /// Checks the CRC first, so a typo anywhere (the version byte included)
    /// reads as a typo; a version-1 ticket has none and gets its own message.
    fn from_payload(payload: &[u8]) -> Result<Ticket, TicketError> {
        let checked = payload
            .len()
            .checked_sub(CHECK_LEN)
            .map(|body| payload.split_at(body))
            .filter(|(body, check)| !body.is_empty() && crc32(body).to_be_bytes() == **check);
        let Some((body, _)) = checked else {
            if payload.first() == Some(&OLD_VERSION) && Ticket::from_body(payload).is_ok() {
                return Err(TicketError::OldVersion);
            }
            return Err(TicketError::Typo);
        };
        match body[0] {
            TICKET_VERSION => Ticket::from_body(body),
            version => Err(TicketError::UnsupportedVersion(version)),
        }
    }

    /// The fields after the version byte, which versions 1 and 2 share.
    fn from_body(body: &[u8]) -> Result<Ticket, TicketError> {
        let mut reader = Reader(body);
        reader.byte()?;
        let mut secret = [0u8; 32];
        secret.copy_from_slice(reader.take(32)?);
        let count = reader.byte()? as usize;
        if count == 0 {
            return Err(TicketError::NoServers);
        }
        if count > MAX_SERVERS {
            return Err(TicketError::TooManyServers(count));
        }
        let mut servers = Vec::with_capacity(count);
        for _ in 0..count {
            let len = reader.byte()? as usize;
            let raw = reader.take(len)?;
            let server = std::str::from_utf8(raw).map_err(|_| TicketError::ServerNotUtf8)?;
            check_server(server)?;
            servers.push(server.to_owned());
        }
        if !reader.0.is_empty() {
            return Err(TicketError::TrailingBytes);
        }
        Ok(Ticket { servers, secret })
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("servers", &self.servers)
            .field("room_id", &self.room_id())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let encoded = BASE32_NOPAD.encode(&self.to_payload()).to_ascii_lowercase();
        write!(f, "{PREFIX}{encoded}")
    }
}

impl FromStr for Ticket {
    type Err = TicketError;

    fn from_str(s: &str) -> Result<Ticket, TicketError> {
        let s = &strip_paste(s);
        // Accept `FERRY...` too: QR codes in alphanumeric mode are uppercase.
        let body = match s.get(..PREFIX.len()) {
            Some(head) if head.eq_ignore_ascii_case(PREFIX) => &s[PREFIX.len()..],
            _ => return Err(TicketError::MissingPrefix),
        };
        let upper = body.to_ascii_uppercase();
        // A wrong character, non-zero padding bits or a length that no byte
        // count encodes to: all typos to the person pasting.
        let payload = BASE32_NOPAD
            .decode(upper.as_bytes())
            .map_err(|_| TicketError::Typo)?;
        Ticket::from_payload(&payload)
    }
}

/// What a paste or a link adds around a ticket: whitespace (line breaks of a
/// wrapped terminal included), quotes, angle brackets, and the
/// `http://host:port/#` of the link `ferry send` prints.
fn strip_paste(input: &str) -> String {
    let quotes: &[char] = &['"', '\'', '`', '<', '>'];
    let mut text = input.trim_matches(|c: char| c.is_whitespace() || quotes.contains(&c));
    if let Some((head, fragment)) = text.rsplit_once('#') {
        if head.contains("://") {
            text = fragment;
        }
    }
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// CRC-32 as in zlib, PNG and Ethernet (reflected polynomial 0xEDB88320,
/// initial value and final XOR 0xFFFFFFFF), from `crc32fast`.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

fn check_server(server: &str) -> Result<(), TicketError> {
    let rest = server
        .strip_prefix("ws://")
        .or_else(|| server.strip_prefix("wss://"));
    match rest {
        Some(host) if !host.is_empty() && server.len() <= MAX_SERVER_LEN => Ok(()),
        _ => Err(TicketError::BadServer(server.to_owned())),
    }
}

fn hkdf_expand(secret: &[u8; 32], info: &[u8], okm: &mut [u8]) {
    let hk = Hkdf::<Sha256>::new(None, secret);
    // Only fails when asking for more than 255 * 32 bytes; callers ask for <= 32.
    if hk.expand(info, okm).is_err() {
        unreachable!("HKDF output length is fixed and small");
    }
}

/// Bounds-checked cursor over the payload.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TicketError> {
        if self.0.len() < n {
            return Err(TicketError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, TicketError> {
        Ok(self.take(1)?[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngCore};

    fn sample() -> Ticket {
        Ticket {
            servers: vec![
                "ws://192.0.2.2:40123".to_owned(),
                "wss://ferry.example.org/".to_owned(),
            ],
            secret: std::array::from_fn(|i| i as u8),
        }
    }

    /// Text of `payload` with its CRC appended, as an encoder would write it.
    fn encode_payload(payload: &[u8]) -> String {
        let mut p = payload.to_vec();
        p.extend_from_slice(&crc32(payload).to_be_bytes());
        encode_raw(&p)
    }

    fn encode_raw(bytes: &[u8]) -> String {
        format!("ferry{}", BASE32_NOPAD.encode(bytes).to_ascii_lowercase())
    }

    fn payload_with_servers(version: u8, servers: &[&[u8]]) -> Vec<u8> {
        let mut p = vec![version];
        p.extend_from_slice(&[7u8; 32]);
        p.push(servers.len() as u8);
        for s in servers {
            p.push(s.len() as u8);
            p.extend_from_slice(s);
        }
        p
    }

    #[test]
    fn crc32_known_answers() {
        // The standard check value of CRC-32/ISO-HDLC, and the empty input.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let t = Ticket {
            servers: vec!["ws://x".into()],
            secret: [0xab; 32],
        };
        let shown = format!("{t:?} {t:#?}");
        assert!(shown.contains("ws://x") && shown.contains(&t.room_id()));
        let text = t.to_string();
        let secret_forms = [
            HEXLOWER.encode(&t.secret),
            format!("{:?}", t.secret),
            text[5..].to_string(),
        ];
        for form in secret_forms {
            assert!(!shown.contains(&form), "{shown} shows {form}");
        }
    }

    #[test]
    fn known_ticket_text() {
        // Pinned so web/test/ticket.test.mjs and any other implementation
        // can check their encoder against the same bytes (checked with Python's
        // zlib.crc32 and base64.b32encode).
        let t = Ticket {
            servers: vec!["ws://x".into()],
            secret: std::array::from_fn(|i| i as u8),
        };
        assert_eq!(
            t.to_string(),
            "ferryaiaacaqdaqcqmbyibefawdanbyhraeiscmkbkfqxdamrugy4dupb6aigo5ztulzppbgurvjh"
        );
    }

    #[test]
    fn round_trip() {
        let t = sample();
        let text = t.to_string();
        assert!(text.starts_with("ferry"));
        assert!(text[5..]
            .chars()
            .all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)));
        assert_eq!(text.parse::<Ticket>(), Ok(t.clone()));
        // Surrounding whitespace and upper case are accepted.
        assert_eq!(format!("  {}\n", text).parse::<Ticket>(), Ok(t.clone()));
        assert_eq!(text.to_ascii_uppercase().parse::<Ticket>(), Ok(t));
    }

    #[test]
    fn accepts_what_a_paste_adds() {
        let t = sample();
        let text = t.to_string();
        let (a, b) = text.split_at(30);
        for pasted in [
            format!("\"{text}\""),
            format!("'{text}'\r\n"),
            format!("`{text}`"),
            format!("<{text}>"),
            format!("http://192.0.2.2:40123/#{text}"),
            format!(
                "  'https://ferry.example.org/#{}'\n",
                text.to_ascii_uppercase()
            ),
            format!("{a}\n{b}"),
        ] {
            assert_eq!(pasted.parse::<Ticket>(), Ok(t.clone()), "{pasted:?}");
        }
        // A `#` without a URL before it is not a link: the text stays as it is.
        assert_eq!(
            format!("x#{text}").parse::<Ticket>(),
            Err(TicketError::MissingPrefix)
        );
    }

    #[test]
    fn every_single_typo_is_caught() {
        let text = sample().to_string();
        let chars: Vec<char> = text.chars().collect();
        let alphabet: Vec<char> = "abcdefghijklmnopqrstuvwxyz234567".chars().collect();
        // After the prefix: each character changed to every other one, each
        // dropped, each doubled, and each pair of neighbours swapped.
        for i in 5..chars.len() {
            for &c in &alphabet {
                if c == chars[i] {
                    continue;
                }
                let mut typo = chars.clone();
                typo[i] = c;
                let typo: String = typo.into_iter().collect();
                assert_eq!(typo.parse::<Ticket>(), Err(TicketError::Typo), "{typo}");
            }
            let mut dropped = chars.clone();
            dropped.remove(i);
            let dropped: String = dropped.into_iter().collect();
            assert_eq!(
                dropped.parse::<Ticket>(),
                Err(TicketError::Typo),
                "{dropped}"
            );
            let mut doubled = chars.clone();
            doubled.insert(i, chars[i]);
            let doubled: String = doubled.into_iter().collect();
            assert_eq!(
                doubled.parse::<Ticket>(),
                Err(TicketError::Typo),
                "{doubled}"
            );
            if i + 1 < chars.len() && chars[i] != chars[i + 1] {
                let mut swapped = chars.clone();
                swapped.swap(i, i + 1);
                let swapped: String = swapped.into_iter().collect();
                assert_eq!(
                    swapped.parse::<Ticket>(),
                    Err(TicketError::Typo),
                    "{swapped}"
                );
            }
        }
        // A character outside the alphabet is a typo too.
        let bad = format!("{}1{}", &text[..10], &text[11..]);
        assert_eq!(bad.parse::<Ticket>(), Err(TicketError::Typo));
        assert_eq!("ferry!!!!!!!!".parse::<Ticket>(), Err(TicketError::Typo));
        assert_eq!(
            TicketError::Typo.to_string(),
            "this ticket has a typo: copy it again"
        );
    }

    #[test]
    fn generate_uses_fresh_secrets() {
        let a = Ticket::generate(vec!["ws://a".into()]);
        let b = Ticket::generate(vec!["ws://a".into()]);
        assert_ne!(a.secret, b.secret);
        assert_ne!(a.secret, [0u8; 32]);
        assert_eq!(a.to_string().parse::<Ticket>(), Ok(a));
    }

    #[test]
    fn known_answers() {
        // Pinned from an independent HKDF (Python hmac); the browser must derive the same.
        let t = Ticket {
            servers: vec!["ws://x".into()],
            secret: std::array::from_fn(|i| i as u8),
        };
        assert_eq!(t.room_id(), "2b0723a884ddb28ba9761423a3ff7b55");
        assert_eq!(
            HEXLOWER.encode(&t.signaling_key()),
            "67d9c75de320f1a8cf7942c81d01751e34e4692e5a835b65ec36297b6896e0b1"
        );
        assert_eq!(t.room_id().len(), 32);
    }

    #[test]
    fn refuses_missing_prefix() {
        let text = sample().to_string();
        assert_eq!(text[5..].parse::<Ticket>(), Err(TicketError::MissingPrefix));
        assert_eq!("".parse::<Ticket>(), Err(TicketError::MissingPrefix));
        assert_eq!("fer".parse::<Ticket>(), Err(TicketError::MissingPrefix));
    }

    #[test]
    fn refuses_truncated() {
        let payload = sample().to_payload();
        let body = &payload[..payload.len() - CHECK_LEN];
        // Cut short behind a valid checksum: the structure is incomplete.
        for cut in 1..body.len() {
            assert_eq!(
                encode_payload(&body[..cut]).parse::<Ticket>(),
                Err(TicketError::Truncated),
                "cut at {cut}"
            );
        }
        // Cut short as a copy would be: the checksum no longer matches.
        let text = sample().to_string();
        for cut in 5..text.len() {
            assert_eq!(text[..cut].parse::<Ticket>(), Err(TicketError::Typo));
        }
    }

    #[test]
    fn refuses_trailing_bytes() {
        let mut body = payload_with_servers(TICKET_VERSION, &[b"ws://a"]);
        body.push(0);
        assert_eq!(
            encode_payload(&body).parse::<Ticket>(),
            Err(TicketError::TrailingBytes)
        );
    }

    #[test]
    fn refuses_version_1_tickets_by_name() {
        // A version-1 ticket: the same fields, no checksum.
        let v1 = encode_raw(&payload_with_servers(1, &[b"ws://192.0.2.2:40123"]));
        let err = v1.parse::<Ticket>().unwrap_err();
        assert_eq!(err, TicketError::OldVersion);
        assert!(err.to_string().contains("older ferry"));
    }

    #[test]
    fn refuses_other_versions() {
        let p = payload_with_servers(3, &[b"ws://a"]);
        let err = encode_payload(&p).parse::<Ticket>().unwrap_err();
        assert_eq!(err, TicketError::UnsupportedVersion(3));
        let msg = err.to_string();
        assert!(msg.contains("version 3") && msg.contains("version 2") && msg.contains("upgrade"));
    }

    #[test]
    fn refuses_server_count_out_of_range() {
        let p = payload_with_servers(2, &[]);
        assert_eq!(
            encode_payload(&p).parse::<Ticket>(),
            Err(TicketError::NoServers)
        );
        let nine: Vec<&[u8]> = vec![b"ws://a"; 9];
        let p = payload_with_servers(2, &nine);
        assert_eq!(
            encode_payload(&p).parse::<Ticket>(),
            Err(TicketError::TooManyServers(9))
        );
        let eight: Vec<&[u8]> = vec![b"ws://a"; 8];
        let p = payload_with_servers(2, &eight);
        assert!(encode_payload(&p).parse::<Ticket>().is_ok());
    }

    #[test]
    fn refuses_bad_servers() {
        let p = payload_with_servers(2, &[b"ws://\xff\xfe"]);
        assert_eq!(
            encode_payload(&p).parse::<Ticket>(),
            Err(TicketError::ServerNotUtf8)
        );
        for bad in [&b"http://a"[..], b"ws://", b"", b"wss:/a", b"WS://a"] {
            let p = payload_with_servers(2, &[b"ws://ok", bad]);
            assert!(
                matches!(
                    encode_payload(&p).parse::<Ticket>(),
                    Err(TicketError::BadServer(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn validate_matches_parser() {
        assert!(Ticket::new(vec![], [0; 32]).is_err());
        assert!(Ticket::new(vec!["ws://a".into(); 9], [0; 32]).is_err());
        assert!(Ticket::new(vec![format!("ws://{}", "a".repeat(251))], [0; 32]).is_err());
        assert!(Ticket::new(vec![format!("ws://{}", "a".repeat(250))], [0; 32]).is_ok());
        assert!(Ticket::new(vec!["tcp://a".into()], [0; 32]).is_err());
    }

    #[test]
    fn never_panics_on_random_input() {
        let mut rng = rand::rng();
        let alphabet = b"abcdefghijklmnopqrstuvwxyz234567ABCXYZ019 =!#:/\"'\xc3";
        for _ in 0..3000 {
            let len = rng.random_range(0..120);
            let body: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let body = String::from_utf8_lossy(&body);
            let _ = format!("ferry{body}").parse::<Ticket>();
            let _ = body.parse::<Ticket>();
        }
        // Random payloads behind a valid version byte and checksum reach the
        // deeper checks.
        for _ in 0..3000 {
            let mut payload = vec![0u8; rng.random_range(0..80)];
            rng.fill_bytes(&mut payload);
            if let Some(first) = payload.first_mut() {
                *first = TICKET_VERSION;
            }
            let _ = encode_payload(&payload).parse::<Ticket>();
            let _ = encode_raw(&payload).parse::<Ticket>();
        }
    }
}
