// The page's signaling crypto: the pure-JS fallback against the specs'
// vectors and against WebCrypto, and the whole seal against PROTOCOL.md §2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import {
  aesGcmOpen,
  aesGcmSeal,
  base64urlDecode,
  base64urlEncode,
  hkdfSha256,
  pure,
} from '../crypto.js';

const hex = (s) => Uint8Array.from(s.match(/../g) ?? [], (b) => parseInt(b, 16));
const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
const utf8 = (s) => new TextEncoder().encode(s);

test('SHA-256 matches the FIPS 180-4 examples', () => {
  assert.equal(toHex(pure.sha256(utf8('abc'))), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.equal(toHex(pure.sha256(utf8(''))), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(
    toHex(pure.sha256(utf8('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'))),
    '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
  );
  assert.equal(
    toHex(pure.sha256(new Uint8Array(1_000_000).fill(0x61))),
    'cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0',
  );
});

test('SHA-256 agrees with WebCrypto at every length around the padding boundaries', async () => {
  for (let n = 0; n < 200; n++) {
    const data = webcrypto.getRandomValues(new Uint8Array(n));
    const want = new Uint8Array(await webcrypto.subtle.digest('SHA-256', data));
    assert.deepEqual(pure.sha256(data), want, `length ${n}`);
  }
});

test('HMAC-SHA256 matches RFC 4231', () => {
  assert.equal(
    toHex(pure.hmacSha256(new Uint8Array(20).fill(0x0b), utf8('Hi There'))),
    'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7',
  );
  assert.equal(
    toHex(pure.hmacSha256(utf8('Jefe'), utf8('what do ya want for nothing?'))),
    '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
  );
  // A key longer than the block is hashed first (test case 6).
  assert.equal(
    toHex(pure.hmacSha256(new Uint8Array(131).fill(0xaa), utf8('Test Using Larger Than Block-Size Key - Hash Key First'))),
    '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
  );
});

test('HKDF-SHA256 matches RFC 5869 test cases 1 and 3', () => {
  const ikm = new Uint8Array(22).fill(0x0b);
  assert.equal(
    toHex(pure.hkdfSha256(ikm, hex('000102030405060708090a0b0c'), hex('f0f1f2f3f4f5f6f7f8f9'), 42)),
    '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
  );
  assert.equal(
    toHex(pure.hkdfSha256(ikm, new Uint8Array(0), new Uint8Array(0), 42)),
    '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
  );
});

test('AES-256 matches the FIPS 197 appendix C.3 example', () => {
  const key = hex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
  const out = pure.aesEncryptBlock(key, hex('00112233445566778899aabbccddeeff'));
  assert.equal(toHex(out), '8ea2b7ca516745bfeafc49904b496089');
});

test('AES-256-GCM matches the GCM specification test cases 13 to 16', () => {
  const zeroKey = new Uint8Array(32);
  const nonce0 = new Uint8Array(12);
  assert.equal(toHex(pure.aesGcmSeal(zeroKey, nonce0, new Uint8Array(0), new Uint8Array(0))), '530f8afbc74536b9a963b4f1c4cb738b');
  assert.equal(
    toHex(pure.aesGcmSeal(zeroKey, nonce0, new Uint8Array(16), new Uint8Array(0))),
    'cea7403d4d606b6e074ec5d3baf39d18' + 'd0d1c8a799996bf0265b98b5d48ab919',
  );
  const key = hex('feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308');
  const nonce = hex('cafebabefacedbaddecaf888');
  const pt = hex(
    'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39',
  );
  const aad = hex('feedfacedeadbeeffeedfacedeadbeefabaddad2');
  const sealed = pure.aesGcmSeal(key, nonce, pt, aad);
  assert.equal(
    toHex(sealed),
    '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662' +
      '76fc6ece0f4e1768cddf8853bb2d551b',
  );
  assert.deepEqual(pure.aesGcmOpen(key, nonce, sealed, aad), pt);
});

test('AES-256-GCM agrees with WebCrypto both ways and refuses any tampering', async () => {
  for (const n of [0, 1, 15, 16, 17, 31, 32, 33, 100, 1500]) {
    const key = webcrypto.getRandomValues(new Uint8Array(32));
    const nonce = webcrypto.getRandomValues(new Uint8Array(12));
    const pt = webcrypto.getRandomValues(new Uint8Array(n));
    const aad = utf8(`ferry/1|room|offerer|${n}`);
    const k = await webcrypto.subtle.importKey('raw', key, 'AES-GCM', false, ['encrypt']);
    const want = new Uint8Array(await webcrypto.subtle.encrypt({ name: 'AES-GCM', iv: nonce, additionalData: aad }, k, pt));
    const sealed = pure.aesGcmSeal(key, nonce, pt, aad);
    assert.deepEqual(sealed, want, `length ${n}`);
    assert.deepEqual(pure.aesGcmOpen(key, nonce, sealed, aad), pt);
    for (const at of [0, Math.floor(sealed.length / 2), sealed.length - 1]) {
      const bad = sealed.slice();
      bad[at] ^= 1;
      assert.equal(pure.aesGcmOpen(key, nonce, bad, aad), null, `flipped byte ${at} of ${n}`);
    }
    assert.equal(pure.aesGcmOpen(key, nonce, sealed, utf8('other aad')), null);
  }
  assert.equal(pure.aesGcmOpen(new Uint8Array(32), new Uint8Array(12), new Uint8Array(15), new Uint8Array(0)), null);
});

test('the PROTOCOL.md §2 test vector, with WebCrypto and without', async () => {
  const secret = Uint8Array.from({ length: 32 }, (_, i) => i);
  const room = toHex((await hkdfSha256(secret, new Uint8Array(0), utf8('ferry/1 room'), 32)).subarray(0, 16));
  assert.equal(room, '2b0723a884ddb28ba9761423a3ff7b55');
  const key = await hkdfSha256(secret, new Uint8Array(0), utf8('ferry/1 signaling key'), 32);
  assert.equal(toHex(key), '67d9c75de320f1a8cf7942c81d01751e34e4692e5a835b65ec36297b6896e0b1');
  assert.deepEqual(pure.hkdfSha256(secret, new Uint8Array(0), utf8('ferry/1 signaling key'), 32), key);
  const aad = utf8(`ferry/1|${room}|offerer`);
  const nonce = hex('000102030405060708090a0b');
  const pt = utf8('{"type":"bye","reason":"test"}');
  const want = 'AAECAwQFBgcICQoLp3qWqoQIilx5HohAZ3q654g1sJxal2GNmvHJffDYfy6e6JDvNA7aOlE_rSJUeA';
  for (const seal of [aesGcmSeal, pure.aesGcmSeal]) {
    const ct = await seal(key, nonce, pt, aad);
    const wire = new Uint8Array(12 + ct.length);
    wire.set(nonce);
    wire.set(ct, 12);
    assert.equal(base64urlEncode(wire), want);
  }
  const wire = base64urlDecode(want);
  assert.deepEqual(await aesGcmOpen(key, wire.subarray(0, 12), wire.subarray(12), aad), pt);
  assert.deepEqual(pure.aesGcmOpen(key, wire.subarray(0, 12), wire.subarray(12), aad), pt);
  // The other role's aad must not open it: a reflected message is caught.
  assert.equal(await aesGcmOpen(key, wire.subarray(0, 12), wire.subarray(12), utf8(`ferry/1|${room}|answerer`)), null);
});

test('base64url round-trips and refuses what is not unpadded base64url', () => {
  for (let n = 0; n < 40; n++) {
    const bytes = webcrypto.getRandomValues(new Uint8Array(n));
    const text = base64urlEncode(bytes);
    assert.match(text, /^[A-Za-z0-9_-]*$/);
    assert.deepEqual(base64urlDecode(text), bytes);
  }
  for (const bad of ['a', 'ab=', 'a+b/', 'ab cd', 'abc\n', 'abcde', null, 42]) assert.equal(base64urlDecode(bad), null, String(bad));
});
