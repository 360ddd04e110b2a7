// The QR encoder, checked by decoding its output with an independent decoder (jsQR).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import jsQR from 'jsqr';
import { qrEncode, qrSvg, segment } from '../qr.js';

// Rasterise at 3 px per module with the 4-module quiet zone, as a camera would see it.
function decode({ size, modules }) {
  const scale = 3;
  const side = (size + 8) * scale;
  const rgba = new Uint8ClampedArray(side * side * 4).fill(255);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (!modules[y][x]) continue;
      for (let dy = 0; dy < scale; dy++) {
        for (let dx = 0; dx < scale; dx++) {
          const at = (((y + 4) * scale + dy) * side + (x + 4) * scale + dx) * 4;
          rgba.fill(0, at, at + 3);
        }
      }
    }
  }
  return jsQR(rgba, side, side, { inversionAttempts: 'dontInvert' });
}

const utf8 = new TextEncoder();

test('a ferry link decodes to itself in a small symbol', () => {
  const link =
    'http://192.168.1.23:41234/#FERRYAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQ';
  const symbol = qrEncode(link, { ecc: 'M' });
  const segments = segment(link);
  assert.equal(segments[0].mode, 'byte'); // "http" is lower case
  assert.deepEqual(segments.at(-1), { mode: 'alnum', data: link.slice(link.indexOf('#') + 1) });
  const got = decode(symbol);
  assert.ok(got, 'jsQR found no code');
  assert.equal(got.data, link);
  assert.equal(got.version, symbol.version);
  // 18 bytes + 124 alphanumeric characters fit version 7 at M; all-byte would need 9.
  assert.ok(symbol.version <= 7, `version ${symbol.version}`);
});

test('every version and error-correction level decodes', () => {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789/:#?';
  for (const ecc of ['L', 'M', 'Q', 'H']) {
    let seen = new Set();
    // Grow the text so each step lands in a new version, up to 40.
    for (let n = 1; n <= 2900 && seen.size < 40; n = Math.ceil(n * 1.09) + 1) {
      const text = Array.from({ length: n }, (_, i) => alphabet[(i * 7 + n) % alphabet.length]).join('');
      let symbol;
      try {
        symbol = qrEncode(text, { ecc });
      } catch {
        break; // beyond version 40 at this level
      }
      if (seen.has(symbol.version)) continue;
      seen.add(symbol.version);
      // jsQR 1.4.0 has a wrong alignment centre for version 23 (74 instead of
      // 78); the stronger levels correct the damage it causes, L cannot.
      if (symbol.version === 23 && ecc === 'L') continue;
      const got = decode(symbol);
      assert.ok(got, `no code found at version ${symbol.version}-${ecc}`);
      assert.equal(got.data, text, `version ${symbol.version}-${ecc}`);
      assert.equal(got.version, symbol.version);
    }
    assert.ok(seen.size >= 30, `only versions ${[...seen]} at ${ecc}`);
  }
});

test('UTF-8 bytes and mixed segments survive', () => {
  for (const text of ['', 'é', 'ferry → 你好 📦', 'HELLO WORLD 0123456789 $%*+-./: and lower case', 'x'.repeat(300)]) {
    const got = decode(qrEncode(text, { ecc: 'Q' }));
    assert.ok(got, JSON.stringify(text));
    assert.deepEqual(Uint8Array.from(got.binaryData), utf8.encode(text), JSON.stringify(text));
  }
});

test('too long a text is refused, and the SVG has the quiet zone', () => {
  assert.throws(() => qrEncode('x'.repeat(3000), { ecc: 'H' }), /too long/);
  assert.throws(() => qrEncode('x', { ecc: 'Z' }), /unknown/);
  const { size } = qrEncode('hello');
  const svg = qrSvg('hello');
  assert.match(svg, new RegExp(`viewBox="0 0 ${size + 8} ${size + 8}"`));
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.doesNotMatch(svg, /style=/); // the page's CSP forbids inline styles
});
