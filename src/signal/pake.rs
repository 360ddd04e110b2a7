//! CPace (draft-irtf-cfrg-cpace) on ristretto255 with SHA-512, plus the
//! draft's recommended key confirmation: turns a short code both people
//! know into a signaling key that the rendezvous server cannot learn or
//! guess offline. An active attacker gets one guess per run, and a wrong
//! guess shows as a failed tag on both sides.
//!
//! Sans-IO: [`Pake::start`] makes our message, [`Pake::finish`] takes the
//! peer's and yields the tags and the session's key. The curve arithmetic
//! and hashes come from curve25519-dalek, sha2, hmac and hkdf; this module
//! only composes them as the draft prescribes (docs/PROTOCOL.md, "PAKE").

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use data_encoding::{BASE64URL_NOPAD, HEXLOWER};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::TryRngCore;
use sha2::{Digest, Sha256, Sha512};

const DSI: &[u8] = b"CPaceRistretto255";
const DSI_ISK: &[u8] = b"CPaceRistretto255_ISK";
/// The channel identifier: binds the run to ferry's use of CPace.
pub const CI: &[u8] = b"ferry/1 code";
/// SHA-512's input block size, which the generator string pads to.
const S_IN_BYTES: usize = 128;
const KEY_INFO: &[u8] = b"ferry/1 code signaling key";
const ROOM_INFO: &[u8] = b"ferry/1 code room";

/// Relay-data prefix of a CPace message.
pub const CPACE_PREFIX: &str = "cpace:";
/// Relay-data prefix of a key-confirmation tag.
pub const CONFIRM_PREFIX: &str = "confirm:";

/// Which end of the exchange we are: A is the peer at position `first` in
/// the room (the sender), B the one that joined by the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The peer that was in the room first (the sender).
    A,
    /// The peer that joined by the code.
    B,
}

/// Why the exchange cannot go on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PakeError {
    /// The peer's message is not a valid group element, or gives the identity.
    #[error("the peer's key exchange message is invalid")]
    InvalidPoint,
    /// The peer's tag does not match: the two codes differ.
    #[error("wrong code")]
    WrongCode,
}

/// Our half of a run, waiting for the peer's message.
pub struct Pake {
    side: Side,
    y: Scalar,
    /// Our public share, encoded.
    message: [u8; 32],
}

/// What a completed exchange yields; the tags still have to be swapped.
pub struct Shared {
    side: Side,
    isk: [u8; 64],
    ya: [u8; 32],
    yb: [u8; 32],
}

impl Pake {
    /// Starts a run with a fresh random scalar.
    pub fn start(password: &[u8], side: Side) -> Pake {
        loop {
            let mut bytes = [0u8; 32];
            if rand::rngs::OsRng.try_fill_bytes(&mut bytes).is_err() {
                rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
            }
            if let Some(pake) = Pake::with_scalar(password, side, bytes) {
                return pake;
            }
        }
    }

    /// Starts a run with the given scalar bytes (the draft's `sample_scalar`:
    /// the top four bits are cleared). `None` if they make the zero scalar.
    pub fn with_scalar(password: &[u8], side: Side, mut bytes: [u8; 32]) -> Option<Pake> {
        bytes[31] &= 0x0f;
        let y = Scalar::from_bytes_mod_order(bytes);
        if y == Scalar::ZERO {
            return None;
        }
        let message = (generator(password, CI, b"") * y).compress().to_bytes();
        Some(Pake { side, y, message })
    }

    /// Our public share, to send as `cpace:` + base64url.
    pub fn message(&self) -> [u8; 32] {
        self.message
    }

    /// Combines the peer's share with ours (`scalar_mult_vfy`, then ISK).
    pub fn finish(self, peer: &[u8]) -> Result<Shared, PakeError> {
        let point = CompressedRistretto::from_slice(peer)
            .ok()
            .and_then(|c| c.decompress())
            .ok_or(PakeError::InvalidPoint)?;
        let k = (point * self.y).compress();
        if k == CompressedRistretto::default() {
            return Err(PakeError::InvalidPoint);
        }
        let mut peer_bytes = [0u8; 32];
        peer_bytes.copy_from_slice(peer);
        let (ya, yb) = match self.side {
            Side::A => (self.message, peer_bytes),
            Side::B => (peer_bytes, self.message),
        };
        let mut h = Sha512::new();
        h.update(lv_cat(&[DSI_ISK, b"", k.as_bytes()]));
        h.update(transcript_ir(&ya, &yb));
        Ok(Shared {
            side: self.side,
            isk: h.finalize().into(),
            ya,
            yb,
        })
    }
}

impl Shared {
    /// The intermediate session key of the draft.
    pub fn isk(&self) -> &[u8; 64] {
        &self.isk
    }

    /// Our confirmation tag, to send as `confirm:` + base64url.
    pub fn tag(&self) -> [u8; 64] {
        let share = match self.side {
            Side::A => &self.ya,
            Side::B => &self.yb,
        };
        self.mac(share).finalize().into_bytes().into()
    }

    /// Checks the peer's tag in constant time; a mismatch means the codes differ.
    pub fn check_peer_tag(&self, tag: &[u8]) -> Result<(), PakeError> {
        let share = match self.side {
            Side::A => &self.yb,
            Side::B => &self.ya,
        };
        self.mac(share)
            .verify_slice(tag)
            .map_err(|_| PakeError::WrongCode)
    }

    /// The signaling key and room id (for the sealing AAD) of this session.
    /// Only to be used once the peer's tag checked out.
    pub fn session_keys(&self) -> ([u8; 32], String) {
        let hk = Hkdf::<Sha256>::new(None, &self.isk);
        let mut key = [0u8; 32];
        let mut room = [0u8; 16];
        // Infallible: both lengths are far below HKDF's limit.
        let _ = hk.expand(KEY_INFO, &mut key);
        let _ = hk.expand(ROOM_INFO, &mut room);
        (key, HEXLOWER.encode(&room))
    }

    fn mac(&self, share: &[u8; 32]) -> Hmac<Sha512> {
        let mac_key = Sha512::new()
            .chain_update(b"CPaceMac")
            .chain_update(self.isk)
            .finalize();
        // Infallible: HMAC takes keys of any length.
        let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(&mac_key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(&lv_cat(&[share, b""]));
        mac
    }
}

/// `cpace:` + base64url of a share, as relayed.
pub fn encode_cpace(share: &[u8; 32]) -> String {
    format!("{CPACE_PREFIX}{}", BASE64URL_NOPAD.encode(share))
}

/// `confirm:` + base64url of a tag, as relayed.
pub fn encode_confirm(tag: &[u8; 64]) -> String {
    format!("{CONFIRM_PREFIX}{}", BASE64URL_NOPAD.encode(tag))
}

/// A PAKE message relayed by the peer.
#[derive(Debug, PartialEq, Eq)]
pub enum PakeMessage {
    /// `cpace:`: the peer's public share (32 bytes).
    Share(Vec<u8>),
    /// `confirm:`: the peer's key-confirmation tag (64 bytes).
    Confirm(Vec<u8>),
}

/// Recognises a PAKE message among relay data; `None` for anything else
/// (sealed messages never contain `:`), `Some(Err)` for a PAKE message
/// that does not decode.
pub fn decode(data: &str) -> Option<Result<PakeMessage, PakeError>> {
    let bytes = |body: &str, len: usize| match BASE64URL_NOPAD.decode(body.as_bytes()) {
        Ok(bytes) if bytes.len() == len => Ok(bytes),
        _ => Err(PakeError::InvalidPoint),
    };
    if let Some(body) = data.strip_prefix(CPACE_PREFIX) {
        Some(bytes(body, 32).map(PakeMessage::Share))
    } else {
        data.strip_prefix(CONFIRM_PREFIX)
            .map(|body| bytes(body, 64).map(PakeMessage::Confirm))
    }
}

/// `prepend_len`: the LEB128 length, then the bytes.
fn prepend_len(out: &mut Vec<u8>, data: &[u8]) {
    let mut len = data.len();
    loop {
        let low = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(low);
            break;
        }
        out.push(low | 0x80);
    }
    out.extend_from_slice(data);
}

fn lv_cat(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        prepend_len(&mut out, part);
    }
    out
}

fn transcript_ir(ya: &[u8], yb: &[u8]) -> Vec<u8> {
    let mut out = lv_cat(&[ya, b""]);
    out.extend(lv_cat(&[yb, b""]));
    out
}

fn generator_string(prs: &[u8], ci: &[u8], sid: &[u8]) -> Vec<u8> {
    let mut dsi_len = Vec::new();
    prepend_len(&mut dsi_len, DSI);
    let mut prs_len = Vec::new();
    prepend_len(&mut prs_len, prs);
    let zpad = S_IN_BYTES.saturating_sub(1 + prs_len.len() + dsi_len.len());
    lv_cat(&[DSI, prs, &vec![0u8; zpad], ci, sid])
}

fn generator(prs: &[u8], ci: &[u8], sid: &[u8]) -> RistrettoPoint {
    let hash: [u8; 64] = Sha512::digest(generator_string(prs, ci, sid)).into();
    RistrettoPoint::from_uniform_bytes(&hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        HEXLOWER.decode(s.as_bytes()).unwrap()
    }

    fn arr<const N: usize>(s: &str) -> [u8; N] {
        hex(s).try_into().unwrap()
    }

    // draft-irtf-cfrg-cpace, appendix "Test vector for CPace using group
    // ristretto255 and hash SHA-512".
    const D_CI: &str = "0b415f696e69746961746f720b425f726573706f6e646572";
    const D_SID: &str = "7e4b4791d6a8ef019b936c79fb7f2c57";
    const D_YA: &str = "da3d23700a9e5699258aef94dc060dfda5ebb61f02a5ea77fad53f4ff0976d08";
    const D_YB: &str = "d2316b454718c35362d83d69df6320f38578ed5984651435e2949762d900b80d";

    #[test]
    fn string_utilities_match_the_draft() {
        assert_eq!(
            lv_cat(&[b"1234", b"5", b"", b"678"]),
            hex("043132333401350003363738")
        );
        let mut out = Vec::new();
        prepend_len(&mut out, &(0..128u8).collect::<Vec<_>>());
        assert_eq!(&out[..2], &[0x80, 0x01]);
        assert_eq!(
            lv_cat(&[b"123", b"PartyA"])
                .into_iter()
                .chain(lv_cat(&[b"234", b"PartyB"]))
                .collect::<Vec<_>>(),
            hex("03313233065061727479410332333406506172747942")
        );
    }

    #[test]
    fn generator_matches_the_draft() {
        let s = generator_string(b"Password", &hex(D_CI), &hex(D_SID));
        assert_eq!(s.len(), 170);
        assert_eq!(
            HEXLOWER.encode(&Sha512::digest(&s)),
            "da6d3ddc8802fca9058755ffd3ebde08a9c2c74945901a258482a288b6663af06bf645c93cd1c51512307199c80e84908916d983b34af77205f90851a657ee27"
        );
        assert_eq!(
            HEXLOWER.encode(
                generator(b"Password", &hex(D_CI), &hex(D_SID))
                    .compress()
                    .as_bytes()
            ),
            "222b6b195fe84b1652badb6f6a3ae3d24341e7306967f0b8115b40d5698c7e56"
        );
    }

    #[test]
    fn shares_secret_and_isk_match_the_draft() {
        let g = generator(b"Password", &hex(D_CI), &hex(D_SID));
        let ya = Scalar::from_bytes_mod_order(arr(D_YA));
        let yb = Scalar::from_bytes_mod_order(arr(D_YB));
        let big_ya = (g * ya).compress();
        let big_yb = (g * yb).compress();
        assert_eq!(
            HEXLOWER.encode(big_ya.as_bytes()),
            "d6bac480f2c386c394efc7c47adb9925dcd2630b64f240c50f8d0eec482b9157"
        );
        assert_eq!(
            HEXLOWER.encode(big_yb.as_bytes()),
            "3ea7e0b19560d7c0b0f5734f63b955286dfa8232b5ebe63324e2d9e7433f7258"
        );
        let k = (big_yb.decompress().unwrap() * ya).compress();
        assert_eq!(k, (big_ya.decompress().unwrap() * yb).compress());
        assert_eq!(
            HEXLOWER.encode(k.as_bytes()),
            "80b69a8a76457ab6a4d7f887a4bf6b55a2f80ac19c333f917a05fc9887c8b40f"
        );
        let mut transcript = lv_cat(&[big_ya.as_bytes(), b"ADa"]);
        transcript.extend(lv_cat(&[big_yb.as_bytes(), b"ADb"]));
        let mut h = Sha512::new();
        h.update(lv_cat(&[DSI_ISK, &hex(D_SID), k.as_bytes()]));
        h.update(&transcript);
        assert_eq!(
            HEXLOWER.encode(&h.finalize()),
            "b69effbf61b51d56401c0f65601abe428de8206feaaf0e32198896dcae7b35cd2b38950a39dfd5d4a79164614c2984f7daa460b588c1e80c3fa2068af7900447"
        );
    }

    #[test]
    fn invalid_points_are_refused() {
        let pake = || Pake::with_scalar(b"1-acid-acorn-acre", Side::A, [7; 32]).unwrap();
        // From the draft: not a valid encoding, and the identity.
        let bad = hex("2b3c6b8c4f3800e7aef6864025b4ed79bd599117e427c41bd47d93d654b4a51c");
        assert!(matches!(pake().finish(&bad), Err(PakeError::InvalidPoint)));
        assert!(matches!(
            pake().finish(&[0; 32]),
            Err(PakeError::InvalidPoint)
        ));
        assert!(matches!(
            pake().finish(&[1; 5]),
            Err(PakeError::InvalidPoint)
        ));
    }

    #[test]
    fn same_code_agrees_and_a_wrong_code_fails_both_tags() {
        let run = |code_a: &[u8], code_b: &[u8]| {
            let a = Pake::start(code_a, Side::A);
            let b = Pake::start(code_b, Side::B);
            let (ma, mb) = (a.message(), b.message());
            (a.finish(&mb).unwrap(), b.finish(&ma).unwrap())
        };
        let (a, b) = run(b"7-acid-zinc-plaza", b"7-acid-zinc-plaza");
        assert_eq!(a.check_peer_tag(&b.tag()), Ok(()));
        assert_eq!(b.check_peer_tag(&a.tag()), Ok(()));
        assert_eq!(a.session_keys(), b.session_keys());
        assert_ne!(a.tag(), b.tag());

        let (a, b) = run(b"7-acid-zinc-plaza", b"7-acid-zinc-plaze");
        assert_eq!(a.check_peer_tag(&b.tag()), Err(PakeError::WrongCode));
        assert_eq!(b.check_peer_tag(&a.tag()), Err(PakeError::WrongCode));
        assert_ne!(a.session_keys(), b.session_keys());
    }

    #[test]
    fn relay_messages_round_trip() {
        let share = [9u8; 32];
        let tag = [3u8; 64];
        assert_eq!(
            decode(&encode_cpace(&share)),
            Some(Ok(PakeMessage::Share(share.to_vec())))
        );
        assert_eq!(
            decode(&encode_confirm(&tag)),
            Some(Ok(PakeMessage::Confirm(tag.to_vec())))
        );
        assert_eq!(decode("AAECAwQF"), None);
        assert_eq!(decode("cpace:AAAA"), Some(Err(PakeError::InvalidPoint)));
        assert_eq!(decode("confirm:!!"), Some(Err(PakeError::InvalidPoint)));
    }

    /// ferry's own vector (web/test/pake-ferry.json), which the page's tests
    /// check too: both implementations agree on every value. Regenerate with
    /// FERRY_WRITE_VECTORS=1 after a deliberate change of the exchange.
    #[test]
    fn ferry_vector_file_matches() {
        let code = "7-acid-zinc-plaza";
        let ya = [0x11u8; 32];
        let yb = [0x22u8; 32];
        let a = Pake::with_scalar(code.as_bytes(), Side::A, ya).unwrap();
        let b = Pake::with_scalar(code.as_bytes(), Side::B, yb).unwrap();
        let (ma, mb) = (a.message(), b.message());
        let (sa, sb) = (a.finish(&mb).unwrap(), b.finish(&ma).unwrap());
        assert_eq!(sa.isk(), sb.isk());
        let (key, room_id) = sa.session_keys();
        let h = |b: &[u8]| HEXLOWER.encode(b);
        let want = serde_json::json!({
            "code": code,
            "ya": h(&ya),
            "yb": h(&yb),
            "Ya": h(&ma),
            "Yb": h(&mb),
            "isk": h(sa.isk()),
            "ta": h(&sa.tag()),
            "tb": h(&sb.tag()),
            "key": h(&key),
            "room_id": room_id,
        });
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/web/test/pake-ferry.json");
        if std::env::var_os("FERRY_WRITE_VECTORS").is_some() {
            std::fs::write(path, serde_json::to_string_pretty(&want).unwrap() + "\n").unwrap();
        }
        let have: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(have, want);
    }

    proptest::proptest! {
        #[test]
        fn peer_input_never_panics(data in "\\PC{0,120}", bytes in proptest::collection::vec(0u8.., 0..40)) {
            let _ = decode(&data);
            let _ = decode(&format!("cpace:{data}"));
            let pake = Pake::with_scalar(b"1-acid-acorn-acre", Side::B, [5; 32]).unwrap();
            if let Ok(shared) = pake.finish(&bytes) {
                proptest::prop_assert!(shared.check_peer_tag(&bytes).is_err());
            }
        }
    }
}
