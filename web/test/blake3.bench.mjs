// Throughput of web/blake3.js (not a test): node web/test/blake3.bench.mjs [MiB]
// `node --test web/test/` runs every file in a test directory; this one only
// measures, so it does nothing there.
import * as blake3 from '../blake3.js';

if (process.env.NODE_TEST_CONTEXT) process.exit(0);

const mib = Number(process.argv[2] ?? 64);
const data = new Uint8Array(mib * 1024 * 1024);
for (let i = 0; i < data.length; i++) data[i] = (i * 31) % 251;
const blockSize = 1 << 20;

function time(label, fn) {
  fn(); // warm up
  let best = Infinity;
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, performance.now() - t0);
  }
  console.log(`${label}: ${(mib / (best / 1000)).toFixed(1)} MB/s (MiB/s, best of 3 on ${mib} MiB)`);
}

time('hash(64 MiB)', () => blake3.hash(data));
time('subtreeCv per 1 MiB block', () => {
  for (let off = 0; off < data.length; off += blockSize) {
    blake3.subtreeCv(data.subarray(off, off + blockSize), off);
  }
});
const odd = new Uint8Array(data.length + 1);
odd.set(data, 1);
time('hash, unaligned input', () => blake3.hash(odd.subarray(1)));
