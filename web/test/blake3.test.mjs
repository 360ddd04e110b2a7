// Tests for web/blake3.js against vectors from the Rust `blake3` crate
// (web/test/blake3-vectors.json, made by examples/blake3_vectors.rs).
// Run: node --test web/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as blake3 from '../blake3.js';

const vectors = JSON.parse(readFileSync(new URL('./blake3-vectors.json', import.meta.url), 'utf8'));

/** Byte i is i % 251, like the official BLAKE3 test vectors. */
function input(len) {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = i % 251;
  return b;
}

/** The same bytes at an odd byte offset of a larger buffer (unaligned path). */
function unaligned(bytes) {
  const big = new Uint8Array(bytes.length + 3);
  big.set(bytes, 1);
  return big.subarray(1, 1 + bytes.length);
}

const hex = blake3.toHex;

const official = JSON.parse(readFileSync(new URL('./blake3-official.json', import.meta.url), 'utf8'));

test('hash matches the official BLAKE3 test vectors', () => {
  assert.equal(official.cases.length, 35);
  for (const { input_len: len, hash } of official.cases) {
    assert.equal(hex(blake3.hash(input(len))), hash, `len ${len}`);
    assert.equal(hex(new blake3.Hasher().update(unaligned(input(len))).finalize()), hash, `len ${len}, unaligned`);
  }
});

test('hash matches the Rust crate for all vector lengths', () => {
  assert.equal(vectors.hashes.length, 22);
  for (const { len, hash } of vectors.hashes) {
    assert.equal(hex(blake3.hash(input(len))), hash, `len ${len}`);
    assert.equal(hex(blake3.hash(unaligned(input(len)))), hash, `len ${len}, unaligned`);
  }
});

test('hash of empty input is the known constant', () => {
  assert.equal(hex(blake3.hash(new Uint8Array(0))),
    'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
});

test('incremental Hasher with odd update sizes equals one-shot hash', () => {
  const sizes = [1, 7, 63, 64, 65, 511, 1023, 1024, 1025, 3000, 4096, 10007];
  for (const { len, hash } of vectors.hashes) {
    const data = input(len);
    for (let s = 0; s < sizes.length; s++) {
      const h = new blake3.Hasher();
      let pos = 0;
      for (let k = s; pos < len; k++) {
        const n = Math.min(sizes[k % sizes.length], len - pos);
        // Alternate aligned and unaligned pieces.
        const piece = data.subarray(pos, pos + n);
        h.update(k % 2 ? unaligned(piece) : piece);
        pos += n;
      }
      assert.equal(hex(h.finalize()), hash, `len ${len}, sizes from ${sizes[s]}`);
    }
  }
});

test('Hasher: empty updates, chaining, finalize leaves the state usable', () => {
  const data = input(102400);
  const want = vectors.hashes.find((v) => v.len === 102400).hash;
  const h = new blake3.Hasher();
  h.update(new Uint8Array(0)).update(data.subarray(0, 50000)).update(new Uint8Array(0));
  const mid = hex(h.finalize());
  assert.equal(mid, hex(blake3.hash(data.subarray(0, 50000))));
  assert.equal(hex(h.finalize()), mid, 'finalize twice');
  h.update(data.subarray(50000));
  assert.equal(hex(h.finalize()), want);
  assert.equal(hex(new blake3.Hasher().finalize()), hex(blake3.hash(new Uint8Array(0))));
});

test('larger input: one-shot, incremental and block tree agree', () => {
  const data = input(3 * 1024 * 1024 + 1234);
  const whole = hex(blake3.hash(data));
  const h = new blake3.Hasher();
  for (let pos = 0; pos < data.length; pos += 99991) h.update(data.subarray(pos, pos + 99991));
  assert.equal(hex(h.finalize()), whole);
  const bs = 1 << 20;
  const cvs = [];
  for (let off = 0; off < data.length; off += bs) cvs.push(blake3.subtreeCv(data.subarray(off, off + bs), off));
  assert.equal(hex(blake3.rootFromBlockCvs(cvs)), whole);
});

for (const file of vectors.files) {
  test(`block CVs and root match the Rust crate: ${file.name}`, () => {
    const data = input(file.len);
    const bs = file.block_size;
    const n = Math.ceil(file.len / bs);
    assert.equal(file.block_cvs.length, n);
    const cvs = [];
    for (let i = 0; i < n; i++) {
      const block = data.subarray(i * bs, (i + 1) * bs);
      const cv = blake3.subtreeCv(block, i * bs);
      assert.equal(hex(cv), file.block_cvs[i], `block ${i}`);
      assert.equal(hex(blake3.subtreeCv(unaligned(block), i * bs)), file.block_cvs[i], `block ${i}, unaligned`);
      assert.equal(hex(blake3.subtreeCv(block, BigInt(i * bs))), file.block_cvs[i], `block ${i}, bigint offset`);
      cvs.push(cv);
    }
    const single = n === 1 ? blake3.hash(data) : undefined;
    assert.equal(hex(blake3.rootFromBlockCvs(cvs, single)), file.root);
    assert.equal(hex(blake3.hash(data)), file.root);
    // The Rust CVs, parsed from hex, give the same root.
    assert.equal(hex(blake3.rootFromBlockCvs(file.block_cvs.map(blake3.fromHex), single)), file.root);
  });
}

test('subtreeCv matches the Rust crate at various offsets, past 4 TiB too', () => {
  assert.ok(vectors.subtrees.length >= 8);
  for (const { offset, len, cv } of vectors.subtrees) {
    assert.equal(hex(blake3.subtreeCv(input(len), offset)), cv, `offset ${offset}, len ${len}`);
    assert.equal(hex(blake3.subtreeCv(unaligned(input(len)), BigInt(offset))), cv, `offset ${offset}, len ${len}, unaligned`);
  }
});

test('random lengths, splits and block sizes agree with one-shot hash', () => {
  let seed = 12345;
  const rand = (n) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const data = input(300000);
  for (let t = 0; t < 40; t++) {
    const len = t < 20 ? rand(5000) : rand(300000);
    const d = data.subarray(0, len);
    const want = hex(blake3.hash(d));
    const h = new blake3.Hasher();
    for (let pos = 0; pos < len;) {
      const n = Math.min(1 + rand(3000), len - pos);
      h.update(d.subarray(pos, pos + n));
      pos += n;
    }
    assert.equal(hex(h.finalize()), want, `len ${len}`);
    const bs = 16384 << rand(3);
    const cvs = [];
    for (let off = 0; off < len; off += bs) cvs.push(blake3.subtreeCv(d.subarray(off, off + bs), off));
    assert.equal(hex(blake3.rootFromBlockCvs(cvs, cvs.length === 1 ? blake3.hash(d) : undefined)), want,
      `len ${len}, block ${bs}`);
  }
});

test('rootFromBlockCvs: 0 blocks is the empty hash; 1 block needs its root', () => {
  assert.equal(hex(blake3.rootFromBlockCvs([])), hex(blake3.hash(new Uint8Array(0))));
  const data = input(5000);
  const cv = blake3.subtreeCv(data, 0);
  assert.equal(hex(blake3.rootFromBlockCvs([cv], blake3.hash(data))), hex(blake3.hash(data)));
  assert.throws(() => blake3.rootFromBlockCvs([cv]), TypeError);
  assert.throws(() => blake3.rootFromBlockCvs([cv, new Uint8Array(31)]), RangeError);
});

test('merges: two chunks by hand equal the hash', () => {
  const data = input(2048);
  const l = blake3.subtreeCv(data.subarray(0, 1024), 0);
  const r = blake3.subtreeCv(data.subarray(1024), 1024);
  assert.equal(hex(blake3.mergeRoot(l, r)), hex(blake3.hash(data)));
  assert.equal(hex(blake3.mergeNonRoot(l, r)), hex(blake3.subtreeCv(data, 0)));
  assert.notEqual(hex(blake3.mergeNonRoot(l, r)), hex(blake3.mergeRoot(l, r)));
  assert.throws(() => blake3.mergeRoot(l, new Uint8Array(33)), RangeError);
});

test('subtreeCv: a multi-chunk subtree is built from chunk CVs with the right counters', () => {
  // 4 chunks at chunk index 4 (offset 4096) of an 8-chunk input.
  const data = input(8192);
  const part = data.subarray(4096);
  const c = (i) => blake3.subtreeCv(data.subarray(1024 * i, 1024 * (i + 1)), 1024 * i);
  const byHand = blake3.mergeNonRoot(blake3.mergeNonRoot(c(4), c(5)), blake3.mergeNonRoot(c(6), c(7)));
  assert.equal(hex(blake3.subtreeCv(part, 4096)), hex(byHand));
  // 3 chunks: left-balanced, left subtree of 2 chunks.
  const three = blake3.mergeNonRoot(blake3.mergeNonRoot(c(4), c(5)), c(6));
  assert.equal(hex(blake3.subtreeCv(data.subarray(4096, 7168), 4096)), hex(three));
  // Same bytes at a different offset give a different CV (the counter counts).
  assert.notEqual(hex(blake3.subtreeCv(part, 16384)), hex(byHand));
});

test('subtreeCv: chunk counters above 2^32 (offsets beyond 4 TiB)', () => {
  // A one-chunk subtree at chunk index 2^32 + 5 and the same at 5 differ.
  const block = input(1024);
  const far = blake3.subtreeCv(block, (2 ** 32 + 5) * 1024);
  const near = blake3.subtreeCv(block, 5 * 1024);
  assert.notEqual(hex(far), hex(near));
  assert.equal(hex(blake3.subtreeCv(block, BigInt(2 ** 32 + 5) * 1024n)), hex(far));
});

test('invalid offsets and lengths throw RangeError', () => {
  const b = input(2048);
  for (const off of [1, 512, 1023, 1025, -1024, 1.5, NaN, Infinity, 2 ** 53, -1n, 2n ** 64n]) {
    assert.throws(() => blake3.subtreeCv(b, off), RangeError, `offset ${off}`);
  }
  assert.throws(() => blake3.subtreeCv(b, '1024'), RangeError);
  assert.throws(() => blake3.subtreeCv(b, undefined), RangeError);
  // Too long for the offset: at chunk 1 only 1 chunk fits, at chunk 2 two.
  assert.throws(() => blake3.subtreeCv(input(1025), 1024), RangeError);
  assert.throws(() => blake3.subtreeCv(input(2049), 2048), RangeError);
  assert.throws(() => blake3.subtreeCv(input(16385), 16384 * 3), RangeError);
  blake3.subtreeCv(input(2048), 2048);
  blake3.subtreeCv(input(16384), 16384 * 3);
  blake3.subtreeCv(input(10 * 1024 * 1024), 0);
  // Empty data.
  assert.throws(() => blake3.subtreeCv(new Uint8Array(0), 0), RangeError);
  assert.throws(() => blake3.subtreeCv(new Uint8Array(0), 4096), RangeError);
  // Not bytes.
  assert.throws(() => blake3.subtreeCv('abc', 0), TypeError);
  assert.throws(() => blake3.hash([1, 2, 3]), TypeError);
});

test('maxSubtreeLen', () => {
  assert.equal(blake3.maxSubtreeLen(0), Infinity);
  assert.equal(blake3.maxSubtreeLen(1024), 1024);
  assert.equal(blake3.maxSubtreeLen(3 * 1024), 1024);
  assert.equal(blake3.maxSubtreeLen(4096), 4096);
  assert.equal(blake3.maxSubtreeLen(5 * (1 << 20)), 1 << 20);
  assert.equal(blake3.maxSubtreeLen(2 ** 52), 2 ** 52);
});

test('toHex / fromHex', () => {
  const b = Uint8Array.of(0, 1, 0x7f, 0x80, 0xab, 0xff);
  assert.equal(blake3.toHex(b), '00017f80abff');
  assert.deepEqual(blake3.fromHex('00017f80abff'), b);
  assert.deepEqual(blake3.fromHex('00017F80ABFF'), b);
  assert.deepEqual(blake3.fromHex(''), new Uint8Array(0));
  assert.throws(() => blake3.fromHex('abc'), RangeError);
  assert.throws(() => blake3.fromHex('zz'), RangeError);
  assert.throws(() => blake3.fromHex('0g'), RangeError);
});

test('other views and ArrayBuffers are accepted as input', () => {
  const data = input(5121);
  const want = hex(blake3.hash(data));
  assert.equal(hex(blake3.hash(data.buffer)), want);
  assert.equal(hex(blake3.hash(new DataView(data.buffer))), want);
});
