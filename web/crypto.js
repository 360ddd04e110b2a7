// Signaling crypto for the page: HKDF-SHA256 and AES-256-GCM (docs/PROTOCOL.md §1–§2).
//
// WebCrypto (`crypto.subtle`) exists only in secure contexts: https pages and
// http://localhost. The link `ferry send` prints is plain http://LAN-ADDRESS,
// where `crypto.subtle` is undefined, so the same primitives are written here
// in plain JavaScript too, from their specifications: FIPS 180-4 (SHA-256),
// RFC 2104 (HMAC), RFC 5869 (HKDF), FIPS 197 (AES) and NIST SP 800-38D (GCM).
// WebCrypto is used whenever it exists. Only signaling uses these (a few
// messages of a few KiB per transfer), so the fallback favours clarity over speed.

const subtle = globalThis.crypto?.subtle;

/** `n` cryptographically random bytes (available in every context). */
export function randomBytes(n) {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

/** HKDF-SHA256 (RFC 5869) of `length` bytes. */
export async function hkdfSha256(ikm, salt, info, length) {
  if (!subtle) return pure.hkdfSha256(ikm, salt, info, length);
  const key = await subtle.importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
  const bits = await subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt, info }, key, length * 8);
  return new Uint8Array(bits);
}

/** AES-256-GCM encryption: returns ciphertext || 16-byte tag. */
export async function aesGcmSeal(key, nonce, plaintext, aad) {
  if (!subtle) return pure.aesGcmSeal(key, nonce, plaintext, aad);
  const k = await subtle.importKey('raw', key, 'AES-GCM', false, ['encrypt']);
  const params = { name: 'AES-GCM', iv: nonce, additionalData: aad, tagLength: 128 };
  return new Uint8Array(await subtle.encrypt(params, k, plaintext));
}

/** AES-256-GCM decryption of ciphertext || tag; null if it does not authenticate. */
export async function aesGcmOpen(key, nonce, sealed, aad) {
  if (!subtle) return pure.aesGcmOpen(key, nonce, sealed, aad);
  const k = await subtle.importKey('raw', key, 'AES-GCM', false, ['decrypt']);
  const params = { name: 'AES-GCM', iv: nonce, additionalData: aad, tagLength: 128 };
  try {
    return new Uint8Array(await subtle.decrypt(params, k, sealed));
  } catch {
    return null;
  }
}

/** RFC 4648 §5 base64url without padding. */
export function base64urlEncode(bytes) {
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Inverse of base64urlEncode; null for anything that is not unpadded base64url. */
export function base64urlDecode(text) {
  if (typeof text !== 'string' || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return null;
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

// ---------------------------------------------------------------------------
// The plain-JavaScript implementations. Exported for the tests, which check
// them against the specifications' vectors and against WebCrypto.

const rotr = (x, n) => (x >>> n) | (x << (32 - n));

// FIPS 180-4 §4.2.2: the first 32 bits of the fractional parts of the cube
// roots of the first 64 primes; §5.3.3: of the square roots of the first 8.
const K = new Uint32Array(64);
const H0 = new Uint32Array(8);
{
  const primes = [];
  for (let n = 2; primes.length < 64; n++) if (primes.every((p) => n % p !== 0)) primes.push(n);
  const frac32 = (x) => Math.floor((x - Math.floor(x)) * 2 ** 32);
  primes.forEach((p, i) => {
    K[i] = frac32(Math.cbrt(p));
    if (i < 8) H0[i] = frac32(Math.sqrt(p));
  });
}

function sha256(data) {
  const h = H0.slice();
  const padded = new Uint8Array(Math.ceil((data.length + 9) / 64) * 64);
  padded.set(data);
  padded[data.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(data.length / 2 ** 29));
  view.setUint32(padded.length - 4, (data.length * 8) % 2 ** 32);
  const w = new Uint32Array(64);
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + 4 * i);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1; // the Uint32Array reduces mod 2^32
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    [a, b, c, d, e, f, g, hh].forEach((x, i) => (h[i] += x));
  }
  const out = new Uint8Array(32);
  const outView = new DataView(out.buffer);
  h.forEach((x, i) => outView.setUint32(4 * i, x));
  return out;
}

function hmacSha256(key, data) {
  const k = new Uint8Array(64);
  k.set(key.length > 64 ? sha256(key) : key);
  const inner = new Uint8Array(64 + data.length);
  const outer = new Uint8Array(64 + 32);
  for (let i = 0; i < 64; i++) {
    inner[i] = k[i] ^ 0x36;
    outer[i] = k[i] ^ 0x5c;
  }
  inner.set(data, 64);
  outer.set(sha256(inner), 64);
  return sha256(outer);
}

function hkdf(ikm, salt, info, length) {
  if (length > 255 * 32) throw new RangeError('HKDF output too long');
  const prk = hmacSha256(salt, ikm); // an empty salt is the same HMAC key as 32 zero bytes
  const out = new Uint8Array(length);
  let t = new Uint8Array(0);
  for (let i = 1, done = 0; done < length; i++) {
    const input = new Uint8Array(t.length + info.length + 1);
    input.set(t);
    input.set(info, t.length);
    input[input.length - 1] = i;
    t = hmacSha256(prk, input);
    out.set(t.subarray(0, length - done), done);
    done += t.length;
  }
  return out;
}

// AES (FIPS 197). The S-box is computed rather than typed in: the
// multiplicative inverse in GF(2^8) followed by the affine transform.
const xtime = (b) => ((b << 1) ^ (b & 0x80 ? 0x1b : 0)) & 0xff;
const SBOX = new Uint8Array(256);
{
  const exp = new Uint8Array(256);
  const log = new Uint8Array(256);
  for (let i = 0, x = 1; i < 255; i++) {
    exp[i] = x;
    log[x] = i;
    x ^= xtime(x); // multiply by the generator 3
  }
  const rotl8 = (b, n) => ((b << n) | (b >>> (8 - n))) & 0xff;
  for (let x = 0; x < 256; x++) {
    const inv = x === 0 ? 0 : exp[(255 - log[x]) % 255];
    SBOX[x] = inv ^ rotl8(inv, 1) ^ rotl8(inv, 2) ^ rotl8(inv, 3) ^ rotl8(inv, 4) ^ 0x63;
  }
}

function expandKey(key) {
  if (key.length !== 32) throw new RangeError('AES-256 needs a 32-byte key');
  const rk = new Uint8Array(240); // 15 round keys
  rk.set(key);
  for (let i = 8, rcon = 1; i < 60; i++) {
    let t = Array.from(rk.subarray(4 * i - 4, 4 * i));
    if (i % 8 === 0) {
      t = [SBOX[t[1]] ^ rcon, SBOX[t[2]], SBOX[t[3]], SBOX[t[0]]];
      rcon = xtime(rcon);
    } else if (i % 8 === 4) {
      t = t.map((b) => SBOX[b]);
    }
    for (let j = 0; j < 4; j++) rk[4 * i + j] = rk[4 * i - 32 + j] ^ t[j];
  }
  return rk;
}

function encryptBlock(rk, input) {
  const s = Uint8Array.from(input);
  for (let i = 0; i < 16; i++) s[i] ^= rk[i];
  for (let round = 1; round <= 14; round++) {
    const t = s.map((b) => SBOX[b]);
    // ShiftRows: row r (byte r of each 4-byte column) rotates left by r columns.
    for (let c = 0; c < 4; c++) for (let r = 0; r < 4; r++) s[r + 4 * c] = t[r + 4 * ((c + r) % 4)];
    if (round < 14) {
      for (let c = 0; c < 16; c += 4) {
        const [a0, a1, a2, a3] = s.subarray(c, c + 4);
        const all = a0 ^ a1 ^ a2 ^ a3;
        s[c] = a0 ^ all ^ xtime(a0 ^ a1);
        s[c + 1] = a1 ^ all ^ xtime(a1 ^ a2);
        s[c + 2] = a2 ^ all ^ xtime(a2 ^ a3);
        s[c + 3] = a3 ^ all ^ xtime(a3 ^ a0);
      }
    }
    for (let i = 0; i < 16; i++) s[i] ^= rk[16 * round + i];
  }
  return s;
}

// GCM (SP 800-38D). Blocks in GHASH are four big-endian 32-bit words.
function words(block) {
  const v = new DataView(block.buffer, block.byteOffset, 16);
  return [v.getUint32(0), v.getUint32(4), v.getUint32(8), v.getUint32(12)];
}

// Multiplication in GF(2^128) with GCM's bit order (Algorithm 1).
function gfMul(x, y) {
  let [z0, z1, z2, z3] = [0, 0, 0, 0];
  let [v0, v1, v2, v3] = y;
  for (let i = 0; i < 128; i++) {
    if ((x[i >>> 5] >>> (31 - (i & 31))) & 1) {
      z0 ^= v0;
      z1 ^= v1;
      z2 ^= v2;
      z3 ^= v3;
    }
    const lsb = v3 & 1;
    v3 = (v3 >>> 1) | (v2 << 31);
    v2 = (v2 >>> 1) | (v1 << 31);
    v1 = (v1 >>> 1) | (v0 << 31);
    v0 = (v0 >>> 1) ^ (lsb ? 0xe1000000 : 0);
  }
  return [z0, z1, z2, z3];
}

function ghash(h, aad, ciphertext) {
  const hw = words(h);
  let y = [0, 0, 0, 0];
  const absorb = (data) => {
    for (let off = 0; off < data.length; off += 16) {
      const block = new Uint8Array(16);
      block.set(data.subarray(off, off + 16));
      y = gfMul(
        words(block).map((w, i) => w ^ y[i]),
        hw,
      );
    }
  };
  absorb(aad);
  absorb(ciphertext);
  const lengths = new Uint8Array(16);
  const view = new DataView(lengths.buffer);
  view.setUint32(0, Math.floor(aad.length / 2 ** 29));
  view.setUint32(4, (aad.length * 8) % 2 ** 32);
  view.setUint32(8, Math.floor(ciphertext.length / 2 ** 29));
  view.setUint32(12, (ciphertext.length * 8) % 2 ** 32);
  absorb(lengths);
  const out = new Uint8Array(16);
  const outView = new DataView(out.buffer);
  y.forEach((w, i) => outView.setUint32(4 * i, w));
  return out;
}

// The counter blocks start at J0 + 1; J0 itself masks the tag.
function gcmCore(key, nonce, input) {
  if (nonce.length !== 12) throw new RangeError('GCM nonce must be 12 bytes');
  const rk = expandKey(key);
  const h = encryptBlock(rk, new Uint8Array(16));
  const counter = new Uint8Array(16);
  counter.set(nonce);
  const view = new DataView(counter.buffer);
  view.setUint32(12, 1);
  const tagMask = encryptBlock(rk, counter);
  const output = new Uint8Array(input.length);
  for (let off = 0; off < input.length; off += 16) {
    view.setUint32(12, (view.getUint32(12) + 1) % 2 ** 32);
    const stream = encryptBlock(rk, counter);
    for (let i = off; i < Math.min(off + 16, input.length); i++) output[i] = input[i] ^ stream[i - off];
  }
  return { h, tagMask, output };
}

function gcmSeal(key, nonce, plaintext, aad) {
  const { h, tagMask, output } = gcmCore(key, nonce, plaintext);
  const tag = ghash(h, aad, output).map((b, i) => b ^ tagMask[i]);
  const sealed = new Uint8Array(output.length + 16);
  sealed.set(output);
  sealed.set(tag, output.length);
  return sealed;
}

function gcmOpen(key, nonce, sealed, aad) {
  if (sealed.length < 16) return null;
  const ciphertext = sealed.subarray(0, sealed.length - 16);
  const { h, tagMask, output } = gcmCore(key, nonce, ciphertext);
  const expected = ghash(h, aad, ciphertext);
  let diff = 0; // compare every byte: no early exit on the first mismatch
  for (let i = 0; i < 16; i++) diff |= expected[i] ^ tagMask[i] ^ sealed[ciphertext.length + i];
  return diff === 0 ? output : null;
}

export const pure = {
  sha256,
  hmacSha256,
  hkdfSha256: hkdf,
  aesEncryptBlock: (key, block) => encryptBlock(expandKey(key), block),
  aesGcmSeal: gcmSeal,
  aesGcmOpen: gcmOpen,
};
