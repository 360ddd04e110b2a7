// CPace (draft-irtf-cfrg-cpace) on ristretto255 with SHA-512, turning a short
// code into the signaling key and room id; see "PAKE" in the protocol spec.
// All primitives come from the vendored, audited noble libraries; this file
// only does the draft's byte layout and ferry's key confirmation.
import { ristretto255, ristretto255_hasher } from './vendor/noble-curves/ed25519.js';
import { bytesToNumberLE, equalBytes } from './vendor/noble-curves/utils.js';
import { sha256, sha512 } from './vendor/noble-hashes/sha2.js';
import { hmac } from './vendor/noble-hashes/hmac.js';
import { hkdf } from './vendor/noble-hashes/hkdf.js';
import { bytesToHex, concatBytes } from './vendor/noble-hashes/utils.js';

const Point = ristretto255.Point;
const utf8 = (s) => new TextEncoder().encode(s);
const bytes = (x) => (typeof x === 'string' ? utf8(x) : x);

const DSI = utf8('CPaceRistretto255');
const DSI_ISK = utf8('CPaceRistretto255_ISK');
const CI = utf8('ferry/1 code');
const SID = new Uint8Array(0);
const AD = new Uint8Array(0);
// SHA-512's input block size: the zero padding fills the first block so the
// password ends it (the draft's reason: hash state after one block).
const H_BLOCK = 128;

function leb128(n) {
  const out = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Uint8Array.from(out);
}

/** The draft's prepend_len: LEB128 length, then the bytes. */
export function prependLen(x) {
  x = bytes(x);
  return concatBytes(leb128(x.length), x);
}

/** The draft's lv_cat: prepend_len of each part, concatenated. Strings are UTF-8. */
export function lvCat(...parts) {
  return concatBytes(...parts.map(prependLen));
}

/** The draft's generator_string(DSI, PRS, CI, sid, 128). */
export function generatorString(prs, ci, sid) {
  prs = bytes(prs);
  const zpad = Math.max(0, H_BLOCK - 1 - prependLen(prs).length - prependLen(DSI).length);
  return lvCat(DSI, prs, new Uint8Array(zpad), bytes(ci), bytes(sid));
}

/** g = RFC 9496 element derivation ("one-way map") of SHA-512(generator_string). */
export function calculateGenerator(prs, ci, sid) {
  return ristretto255_hasher.deriveToCurve(sha512(generatorString(prs, ci, sid)));
}

/**
 * A scalar from 32 bytes, per the spec: top 4 bits of the last byte cleared
 * (so it is below the group order without reduction), little-endian, not 0.
 */
export function scalarFromBytes(b) {
  if (!(b instanceof Uint8Array) || b.length !== 32) throw new Error('A CPace scalar must be 32 bytes.');
  const c = Uint8Array.from(b);
  c[31] &= 0x0f;
  const y = bytesToNumberLE(c);
  if (y === 0n) throw new Error('A CPace scalar must not be zero.');
  return y;
}

function randomScalar() {
  for (;;) {
    const b = crypto.getRandomValues(new Uint8Array(32));
    b[31] &= 0x0f;
    // Zero has probability 2^-252; retry rather than fail.
    if (b.some((x) => x !== 0)) return scalarFromBytes(b);
  }
}

/** The draft's scalar_mult_vfy: y * decode(Y), refusing bad encodings and the identity. */
export function scalarMultVfy(y, peerY) {
  let P;
  try {
    P = Point.fromBytes(bytes(peerY));
  } catch {
    throw new Error('The peer sent an invalid CPace point.');
  }
  // Decoding the identity is legal, but then K would be the identity: abort.
  if (P.is0()) throw new Error('The peer sent the identity point, so no key can be agreed.');
  const K = P.multiply(y);
  if (K.is0()) throw new Error('The shared CPace point is the identity, so no key can be agreed.');
  return K.toBytes();
}

/** ISK = SHA-512(lv_cat(DSI_ISK, sid, K) || transcript_ir(Ya, ADa, Yb, ADb)). */
export function isk(K, Ya, Yb, sid = SID, ADa = AD, ADb = AD) {
  return sha512(concatBytes(lvCat(DSI_ISK, sid, K), lvCat(Ya, ADa), lvCat(Yb, ADb)));
}

/** The confirmation tags and derived keys of ferry's spec, from ISK and both messages. */
export function confirm(ISK, Ya, Yb) {
  const macKey = sha512(concatBytes(utf8('CPaceMac'), SID, ISK));
  const ta = hmac(sha512, macKey, lvCat(Ya, AD));
  const tb = hmac(sha512, macKey, lvCat(Yb, AD));
  const salt = new Uint8Array(0);
  const key = hkdf(sha256, ISK, salt, utf8('ferry/1 code signaling key'), 32);
  const roomId = bytesToHex(hkdf(sha256, ISK, salt, utf8('ferry/1 code room'), 16));
  return { ta, tb, key, roomId };
}

/**
 * Starts one side of the exchange. `role` is "a" (position first, the sender)
 * or "b" (position second, who typed the code). `scalarBytes` is for tests;
 * without it the scalar is random.
 */
export function start(codeCanonical, role, scalarBytes) {
  if (role !== 'a' && role !== 'b') throw new Error('The CPace role must be "a" or "b".');
  const g = calculateGenerator(codeCanonical, CI, SID);
  const y = scalarBytes === undefined ? randomScalar() : scalarFromBytes(scalarBytes);
  const message = g.multiply(y).toBytes();
  return {
    message,
    finish(peerY) {
      if (!(peerY instanceof Uint8Array) || peerY.length !== 32) {
        throw new Error('The peer sent an invalid CPace point.');
      }
      const K = scalarMultVfy(y, peerY);
      const [Ya, Yb] = role === 'a' ? [message, peerY] : [peerY, message];
      const ISK = isk(K, Ya, Yb);
      const { ta, tb, key, roomId } = confirm(ISK, Ya, Yb);
      const [myTag, peerTag] = role === 'a' ? [ta, tb] : [tb, ta];
      return {
        isk: ISK,
        myTag,
        // noble's equalBytes has no early exit, so the compare is constant-time.
        checkPeerTag: (tag) => tag instanceof Uint8Array && equalBytes(tag, peerTag),
        key,
        roomId,
      };
    },
  };
}

function b64url(b) {
  let s = '';
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function unb64url(s, len) {
  // Exact length and alphabet, so only the canonical no-pad encoding passes.
  if (s.length !== Math.ceil((len * 4) / 3) || !/^[A-Za-z0-9_-]*$/.test(s)) return null;
  let bin;
  try {
    bin = atob(s.replace(/-/g, '+').replace(/_/g, '/'));
  } catch {
    return null;
  }
  if (bin.length !== len) return null;
  const out = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return b64url(out) === s ? out : null;
}

/** "cpace:" + base64url_nopad(Y), a rendezvous relay string. */
export function encodeCpace(Y) {
  if (!(Y instanceof Uint8Array) || Y.length !== 32) throw new Error('A CPace message is 32 bytes.');
  return 'cpace:' + b64url(Y);
}

/** "confirm:" + base64url_nopad(T). */
export function encodeConfirm(T) {
  if (!(T instanceof Uint8Array) || T.length !== 64) throw new Error('A confirmation tag is 64 bytes.');
  return 'confirm:' + b64url(T);
}

/** {kind, bytes} for a cpace:/confirm: relay string, or null for anything else. */
export function decodePakeMessage(str) {
  if (typeof str !== 'string') return null;
  for (const [kind, len] of [['cpace', 32], ['confirm', 64]]) {
    const prefix = kind + ':';
    if (str.startsWith(prefix)) {
      const b = unb64url(str.slice(prefix.length), len);
      return b ? { kind, bytes: b } : null;
    }
  }
  return null;
}
