// BLAKE3 for the ferry browser client: plain ES module, no dependencies.
//
// Written from the BLAKE3 specification (32-bit words, 7 rounds, 1024-byte
// chunks of 64-byte blocks, left-balanced binary tree). Only the default hash
// mode and 32-byte outputs are implemented, plus the subtree ("non-root
// chaining value") operations ferry uses to verify blocks of a file on their
// own: a block of `block_size` bytes starting at `i * block_size` is a
// complete subtree of the file's BLAKE3 tree, and the file's root hash (what
// `b3sum` prints) is the merge of the block chaining values.
//
// API (byte inputs are Uint8Array; other ArrayBuffer views and ArrayBuffers
// are accepted too; outputs are fresh Uint8Array(32)):
//   hash(data)                         BLAKE3-256 of data
//   new Hasher().update(data)...finalize()   incremental, same result
//   subtreeCv(data, offset)            non-root chaining value of `data` as the
//                                      subtree that starts at byte `offset`
//   mergeNonRoot(leftCv, rightCv)      chaining value of a parent node
//   mergeRoot(leftCv, rightCv)         root hash of a parent node
//   rootFromBlockCvs(cvs, singleBlockRoot)   file root from its block CVs
//   maxSubtreeLen(offset)              largest subtree allowed at `offset`
//   toHex(bytes), fromHex(str)
//
// Speed: the compression function keeps the state and message in local
// variables with all rounds unrolled; input is read as little-endian words
// through a Uint32Array view of the caller's buffer when it is 4-byte aligned
// (on little-endian hosts, i.e. every browser in practice) or copied in
// batches into an aligned scratch buffer otherwise. No allocation per block.

const IV = Uint32Array.of(
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
);

const CHUNK_START = 1;
const CHUNK_END = 2;
const PARENT = 4;
const ROOT = 8;

const BLOCK_LEN = 64;
const CHUNK_LEN = 1024;
const CHUNK_WORDS = CHUNK_LEN / 4;
export const OUT_LEN = 32;

// Chunk counters and byte offsets are JS numbers: exact up to 2^53.
const TWO32 = 4294967296;
// Deep enough for 2^53 bytes of input (2^43 chunks) plus the node in hand.
const MAX_DEPTH = 54;

const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/**
 * The compression function. Reads the 8-word chaining value `cv[cvOff..]` and
 * the 16-word block `m[mOff..]`, writes the 8-word output chaining value (the
 * first 32 bytes of the output) to `out[outOff..]`. `out` may alias `cv` or
 * `m`: everything is read before anything is written.
 */
function compress(cv, cvOff, m, mOff, ctrLo, ctrHi, blockLen, flags, out, outOff) {
  const m0 = m[mOff] | 0, m1 = m[mOff + 1] | 0, m2 = m[mOff + 2] | 0, m3 = m[mOff + 3] | 0;
  const m4 = m[mOff + 4] | 0, m5 = m[mOff + 5] | 0, m6 = m[mOff + 6] | 0, m7 = m[mOff + 7] | 0;
  const m8 = m[mOff + 8] | 0, m9 = m[mOff + 9] | 0, m10 = m[mOff + 10] | 0, m11 = m[mOff + 11] | 0;
  const m12 = m[mOff + 12] | 0, m13 = m[mOff + 13] | 0, m14 = m[mOff + 14] | 0, m15 = m[mOff + 15] | 0;
  let v0 = cv[cvOff] | 0, v1 = cv[cvOff + 1] | 0, v2 = cv[cvOff + 2] | 0, v3 = cv[cvOff + 3] | 0;
  let v4 = cv[cvOff + 4] | 0, v5 = cv[cvOff + 5] | 0, v6 = cv[cvOff + 6] | 0, v7 = cv[cvOff + 7] | 0;
  let v8 = 0x6a09e667, v9 = 0xbb67ae85 | 0, v10 = 0x3c6ef372, v11 = 0xa54ff53a | 0;
  let v12 = ctrLo | 0, v13 = ctrHi | 0, v14 = blockLen | 0, v15 = flags | 0;
  // Each line pair is one G function; within a round, four column G's then
  // four diagonal G's. Message words are named after the original block, so
  // the per-round message permutation is already applied in the names.
    // round 1
    v0 = (v0 + v4 | 0) + m0 | 0; v12 ^= v0; v12 = v12 >>> 16 | v12 << 16; v8 = v8 + v12 | 0; v4 ^= v8; v4 = v4 >>> 12 | v4 << 20;
    v0 = (v0 + v4 | 0) + m1 | 0; v12 ^= v0; v12 = v12 >>> 8 | v12 << 24; v8 = v8 + v12 | 0; v4 ^= v8; v4 = v4 >>> 7 | v4 << 25;
    v1 = (v1 + v5 | 0) + m2 | 0; v13 ^= v1; v13 = v13 >>> 16 | v13 << 16; v9 = v9 + v13 | 0; v5 ^= v9; v5 = v5 >>> 12 | v5 << 20;
    v1 = (v1 + v5 | 0) + m3 | 0; v13 ^= v1; v13 = v13 >>> 8 | v13 << 24; v9 = v9 + v13 | 0; v5 ^= v9; v5 = v5 >>> 7 | v5 << 25;
    v2 = (v2 + v6 | 0) + m4 | 0; v14 ^= v2; v14 = v14 >>> 16 | v14 << 16; v10 = v10 + v14 | 0; v6 ^= v10; v6 = v6 >>> 12 | v6 << 20;
    v2 = (v2 + v6 | 0) + m5 | 0; v14 ^= v2; v14 = v14 >>> 8 | v14 << 24; v10 = v10 + v14 | 0; v6 ^= v10; v6 = v6 >>> 7 | v6 << 25;
    v3 = (v3 + v7 | 0) + m6 | 0; v15 ^= v3; v15 = v15 >>> 16 | v15 << 16; v11 = v11 + v15 | 0; v7 ^= v11; v7 = v7 >>> 12 | v7 << 20;
    v3 = (v3 + v7 | 0) + m7 | 0; v15 ^= v3; v15 = v15 >>> 8 | v15 << 24; v11 = v11 + v15 | 0; v7 ^= v11; v7 = v7 >>> 7 | v7 << 25;
    v0 = (v0 + v5 | 0) + m8 | 0; v15 ^= v0; v15 = v15 >>> 16 | v15 << 16; v10 = v10 + v15 | 0; v5 ^= v10; v5 = v5 >>> 12 | v5 << 20;
    v0 = (v0 + v5 | 0) + m9 | 0; v15 ^= v0; v15 = v15 >>> 8 | v15 << 24; v10 = v10 + v15 | 0; v5 ^= v10; v5 = v5 >>> 7 | v5 << 25;
    v1 = (v1 + v6 | 0) + m10 | 0; v12 ^= v1; v12 = v12 >>> 16 | v12 << 16; v11 = v11 + v12 | 0; v6 ^= v11; v6 = v6 >>> 12 | v6 << 20;
    v1 = (v1 + v6 | 0) + m11 | 0; v12 ^= v1; v12 = v12 >>> 8 | v12 << 24; v11 = v11 + v12 | 0; v6 ^= v11; v6 = v6 >>> 7 | v6 << 25;
    v2 = (v2 + v7 | 0) + m12 | 0; v13 ^= v2; v13 = v13 >>> 16 | v13 << 16; v8 = v8 + v13 | 0; v7 ^= v8; v7 = v7 >>> 12 | v7 << 20;
    v2 = (v2 + v7 | 0) + m13 | 0; v13 ^= v2; v13 = v13 >>> 8 | v13 << 24; v8 = v8 + v13 | 0; v7 ^= v8; v7 = v7 >>> 7 | v7 << 25;
    v3 = (v3 + v4 | 0) + m14 | 0; v14 ^= v3; v14 = v14 >>> 16 | v14 << 16; v9 = v9 + v14 | 0; v4 ^= v9; v4 = v4 >>> 12 | v4 << 20;
    v3 = (v3 + v4 | 0) + m15 | 0; v14 ^= v3; v14 = v14 >>> 8 | v14 << 24; v9 = v9 + v14 | 0; v4 ^= v9; v4 = v4 >>> 7 | v4 << 25;
    // round 2
    v0 = (v0 + v4 | 0) + m2 | 0; v12 ^= v0; v12 = v12 >>> 16 | v12 << 16; v8 = v8 + v12 | 0; v4 ^= v8; v4 = v4 >>> 12 | v4 << 20;
    v0 = (v0 + v4 | 0) + m6 | 0; v12 ^= v0; v12 = v12 >>> 8 | v12 << 24; v8 = v8 + v12 | 0; v4 ^= v8; v4 = v4 >>> 7 | v4 << 25;
    v1 = (v1 + v5 | 0) + m3 | 0; v13 ^= v1; v13 = v13 >>> 16 | v13 << 16; v9 = v9 + v13 | 0; v5 ^= v9; v5 = v5 >>> 12 | v5 << 20;
    v1 = (v1 + v5 | 0) + m10 | 0; v13 ^= v1; v13 = v13 >>> 8 | v13 << 24; v9 = v9 + v13 | 0; v5 ^= v9; v5 = v5 >>> 7 | v5 << 25;
    v2 = (v2 + v6 | 0) + m7 | 0; v14 ^= v2; v14 = v14 >>> 16 | v14 << 16; v10 = v10 + v14 | 0; v6 ^= v10; v6 = v6 >>> 12 | v6 << 20;
    v2 = (v2 + v6 | 0) + m0 | 0; v14 ^= v2; v14 = v14 >>> 8 | v14 << 24; v10 = v10 + v14 | 0; v6 ^= v10; v6 = v6 >>> 7 | v6 << 25;
    v3 = (v3 + v7 | 0) + m4 | 0; v15 ^= v3; v15 = v15 >>> 16 | v15 << 16; v11 = v11 + v15 | 0; v7 ^= v11; v7 = v7 >>> 12 | v7 << 20;
    v3 = (v3 + v7 | 0) + m13 | 0; v15 ^= v3; v15 = v15 >>> 8 | v15 << 24; v11 = v11 + v15 | 0; v7 ^= v11; v7 = v7 >>> 7 | v7 << 25;
    v0 = (v0 + v5 | 0) + m1 | 0; v15 ^= v0; v15 = v15 >>> 16 | v15 << 16; v10 = v10 + v15 | 0; v5 ^= v10; v5 = v5 >>> 12 | v5 << 20;
    v0 = (v0 + v5 | 0) + m11 | 0; v15 ^= v0; v15 = v15 >>> 8 | v15 << 24; v10 = v10 + v15 | 0; v5 ^= v10; v5 = v5 >>> 7 | v5 << 25;
    v1 = (v1 + v6 | 0) + m12 | 0; v12 ^= v1; v12 = v12 >>> 16 | v12 << 16; v11 = v11 + v12 | 0; v6 ^= v11; v6 = v6 >>> 12 | v6 << 20;
    v1 = (v1 + v6 | 0) + m5 | 0; v12 ^= v1; v12 = v12 >>> 8 | v12 << 24; v11 = v11 + v12 | 0; v6 ^= v11; v6 = v6 >>> 7 | v6 << 25;
    v2 = (v2 + v7 | 0) + m9 | 0; v13 ^= v2; v13 = v13 >>> 16 | v13 << 16; v8 = v8 + v13 | 0; v7 ^= v8; v7 = v7 >>> 12 | v7 << 20;
    v2 = (v2 + v7 | 0) + m14 | 0; v13 ^= v2; v13 = v13 >>> 8 | v13 << 24; v8 = v8 + v13 | 0; v7 ^= v8; v7 = v7 >>> 7 | v7 << 25;
    v3 = (v3 + v4 | 0) + m15 | 0; v14 ^= v3; v14 = v14 >>> 16 | v14 << 16; v9 = v9 + v14 | 0; v4 ^= v9; v4 = v4 >>> 12 | v4 << 20;
    v3 = (v3 + v4 | 0) + m8 | 0; v14 ^= v3; v14 = v14 >>> 8 | v14 << 24; v9 = v9 + v14 | 0; v4 ^= v9; v4 = v4 >>> 7 | v4 << 25;
    // round 3
    v0 = (v0 + v4 | 0) + m3 | 0; v12 ^= v0; v12 = v12 >>> 16 | v12 << 16; v8 = v8 + v12 | 0; v4 ^= v8; v4 = v4 >>> 12 | v4 << 20;
    v0 = (v0 + v4 | 0) + m4 | 0; v12 ^= v0; v12 = v12 >>> 8 | v12 << 24; v8 = v8 + v12 | 0; v4 ^= v8; v4 = v4 >>> 7 | v4 << 25;
    v1 = (v1 + v5 | 0) + m10 | 0; v13 ^= v1; v13 = v13 >>> 16 | v13 << 16; v9 = v9 + v13 | 0; v5 ^= v9; v5 = v5 >>> 12 | v5 << 20;
    v1 = (v1 + v5 | 0) + m12 | 0; v13 ^= v1; v13 = v13 >>> 8 | v13 << 24; v9 = v9 + v13 | 0; v5 ^= v9; v5 = v5 >>> 7 | v5 << 25;
    v2 = (v2 + v6 | 0) + m13 | 0; v14 ^= v2; v14 = v14 >>> 16 | v14 << 16; v10 = v10 + v14 | 0; v6 ^= v10; v6 = v6 >>> 12 | v6 << 20;
    v2 = (v2 + v6 | 0) + m2 | 0; v14 ^= v2; v14 = v14 >>> 8 | v14 << 24; v10 = v10 + v14 | 0; v6 ^= v10; v6 = v6 >>> 7 | v6 << 25;
    v3 = (v3 + v7 | 0) + m7 | 0; v15 ^= v3; v15 = v15 >>> 16 | v15 << 16; v11 = v11 + v15 | 0; v7 ^= v11; v7 = v7 >>> 12 | v7 << 20;
    v3 = (v3 + v7 | 0) + m14 | 0; v15 ^= v3; v15 = v15 >>> 8 | v15 << 24; v11 = v11 + v15 | 0; v7 ^= v11; v7 = v7 >>> 7 | v7 << 25;
    v0 = (v0 + v5 | 0) + m6 | 0; v15 ^= v0; v15 = v15 >>> 16 | v15 << 16; v10 = v10 + v15 | 0; v5 ^= v10; v5 = v5 >>> 12 | v5 << 20;
    v0 = (v0 + v5 | 0) + m5 | 0; v15 ^= v0; v15 = v15 >>> 8 | v15 << 24; v10 = v10 + v15 | 0; v5 ^= v10; v5 = v5 >>> 7 | v5 << 25;
    v1 = (v1 + v6 | 0) + m9 | 0; v12 ^= v1; v12 = v12 >>> 16 | v12 << 16; v11 = v11 + v12 | 0; v6 ^= v11; v6 = v6 >>> 12 | v6 << 20;
    v1 = (v1 + v6 | 0) + m0 | 0; v12 ^= v1; v12 = v12 >>> 8 | v12 << 24; v11 = v11 + v12 | 0; v6 ^= v11; v6 = v6 >>> 7 | v6 << 25;
    v2 = (v2 + v7 | 0) + m11 | 0; v13 ^= v2; v13 = v13 >>> 16 | v13 << 16; v8 = v8 + v13 | 0; v7 ^= v8; v7 = v7 >>> 12 | v7 << 20;
    v2 = (v2 + v7 | 0) + m15 | 0; v13 ^= v2; v13 = v13 >>> 8 | v13 << 24; v8 = v8 + v13 | 0; v7 ^= v8; v7 = v7 >>> 7 | v7 << 25;
    v3 = (v3 + v4 | 0) + m8 | 0; v14 ^= v3; v14 = v14 >>> 16 | v14 << 16; v9 = v9 + v14 | 0; v4 ^= v9; v4 = v4 >>> 12 | v4 << 20;
    v3 = (v3 + v4 | 0) + m1 | 0; v14 ^= v3; v14 = v14 >>> 8 | v14 << 24; v9 = v9 + v14 | 0; v4 ^= v9; v4 = v4 >>> 7 | v4 << 25;
    // round 4
    v0 = (v0 + v4 | 0) + m10 | 0; v12 ^= v0; v12 = v12 >>> 16 | v12 << 16; v8 = v8 + v12 | 0; v4 ^= v8; v4 = v4 >>> 12 | v4 << 20;
    v0 = (v0 + v4 | 0) + m7 | 0; v12 ^= v0; v12 = v12 >>> 8 | v12 << 24; v8 = v8 + v12 | 0; v4 ^= v8; v4 = v4 >>> 7 | v4 << 25;
    v1 = (v1 + v5 | 0) + m12 | 0; v13 ^= v1; v13 = v13 >>> 16 | v13 << 16; v9 = v9 + v13 | 0; v5 ^= v9; v5 = v5 >>> 12 | v5 << 20;
    v1 = (v1 + v5 | 0) + m9 | 0; v13 ^= v1; v13 = v13 >>> 8 | v13 << 24; v9 = v9 + v13 | 0; v5 ^= v9; v5 = v5 >>> 7 | v5 << 25;
    v2 = (v2 + v6 | 0) + m14 | 0; v14 ^= v2; v14 = v14 >>> 16 | v14 << 16; v10 = v10 + v14 | 0; v6 ^= v10; v6 = v6 >>> 12 | v6 << 20;
    v2 = (v2 + v6 | 0) + m3 | 0; v14 ^= v2; v14 = v14 >>> 8 | v14 << 24; v10 = v10 + v14 | 0; v6 ^= v10; v6 = v6 >>> 7 | v6 << 25;
    v3 = (v3 + v7 | 0) + m13 | 0; v15 ^= v3; v15 = v15 >>> 16 | v15 << 16; v11 = v11 + v15 | 0; v7 ^= v11; v7 = v7 >>> 12 | v7 << 20;
    v3 = (v3 + v7 | 0) + m15 | 0; v15 ^= v3; v15 = v15 >>> 8 | v15 << 24; v11 = v11 + v15 | 0; v7 ^= v11; v7 = v7 >>> 7 | v7 << 25;
    v0 = (v0 + v5 | 0) + m4 | 0; v15 ^= v0; v15 = v15 >>> 16 | v15 << 16; v10 = v10 + v15 | 0; v5 ^= v10; v5 = v5 >>> 12 | v5 << 20;
    v0 = (v0 + v5 | 0) + m0 | 0; v15 ^= v0; v15 = v15 >>> 8 | v15 << 24; v10 = v10 + v15 | 0; v5 ^= v10; v5 = v5 >>> 7 | v5 << 25;
    v1 = (v1 + v6 | 0) + m11 | 0; v12 ^= v1; v12 = v12 >>> 16 | v12 << 16; v11 = v11 + v12 | 0; v6 ^= v11; v6 = v6 >>> 12 | v6 << 20;
    v1 = (v1 + v6 | 0) + m2 | 0; v12 ^= v1; v12 = v12 >>> 8 | v12 << 24; v11 = v11 + v12 | 0; v6 ^= v11; v6 = v6 >>> 7 | v6 << 25;
    v2 = (v2 + v7 | 0) + m5 | 0; v13 ^= v2; v13 = v13 >>> 16 | v13 << 16; v8 = v8 + v13 | 0; v7 ^= v8; v7 = v7 >>> 12 | v7 << 20;
    v2 = (v2 + v7 | 0) + m8 | 0; v13 ^= v2; v13 = v13 >>> 8 | v13 << 24; v8 = v8 + v13 | 0; v7 ^= v8; v7 = v7 >>> 7 | v7 << 25;
    v3 = (v3 + v4 | 0) + m1 | 0; v14 ^= v3; v14 = v14 >>> 16 | v14 << 16; v9 = v9 + v14 | 0; v4 ^= v9; v4 = v4 >>> 12 | v4 << 20;
    v3 = (v3 + v4 | 0) + m6 | 0; v14 ^= v3; v14 = v14 >>> 8 | v14 << 24; v9 = v9 + v14 | 0; v4 ^= v9; v4 = v4 >>> 7 | v4 << 25;
    // round 5
    v0 = (v0 + v4 | 0) + m12 | 0; v12 ^= v0; v12 = v12 >>> 16 | v12 << 16; v8 = v8 + v12 | 0; v4 ^= v8; v4 = v4 >>> 12 | v4 << 20;
    v0 = (v0 + v4 | 0) + m13 | 0; v12 ^= v0; v12 = v12 >>> 8 | v12 << 24; v8 = v8 + v12 | 0; v4 ^= v8; v4 = v4 >>> 7 | v4 << 25;
    v1 = (v1 + v5 | 0) + m9 | 0; v13 ^= v1; v13 = v13 >>> 16 | v13 << 16; v9 = v9 + v13 | 0; v5 ^= v9; v5 = v5 >>> 12 | v5 << 20;
    v1 = (v1 + v5 | 0) + m11 | 0; v13 ^= v1; v13 = v13 >>> 8 | v13 << 24; v9 = v9 + v13 | 0; v5 ^= v9; v5 = v5 >>> 7 | v5 << 25;
    v2 = (v2 + v6 | 0) + m15 | 0; v14 ^= v2; v14 = v14 >>> 16 | v14 << 16; v10 = v10 + v14 | 0; v6 ^= v10; v6 = v6 >>> 12 | v6 << 20;
    v2 = (v2 + v6 | 0) + m10 | 0; v14 ^= v2; v14 = v14 >>> 8 | v14 << 24; v10 = v10 + v14 | 0; v6 ^= v10; v6 = v6 >>> 7 | v6 << 25;
    v3 = (v3 + v7 | 0) + m14 | 0; v15 ^= v3; v15 = v15 >>> 16 | v15 << 16; v11 = v11 + v15 | 0; v7 ^= v11; v7 = v7 >>> 12 | v7 << 20;
    v3 = (v3 + v7 | 0) + m8 | 0; v15 ^= v3; v15 = v15 >>> 8 | v15 << 24; v11 = v11 + v15 | 0; v7 ^= v11; v7 = v7 >>> 7 | v7 << 25;
    v0 = (v0 + v5 | 0) + m7 | 0; v15 ^= v0; v15 = v15 >>> 16 | v15 << 16; v10 = v10 + v15 | 0; v5 ^= v10; v5 = v5 >>> 12 | v5 << 20;
    v0 = (v0 + v5 | 0) + m2 | 0; v15 ^= v0; v15 = v15 >>> 8 | v15 << 24; v10 = v10 + v15 | 0; v5 ^= v10; v5 = v5 >>> 7 | v5 << 25;
    v1 = (v1 + v6 | 0) + m5 | 0; v12 ^= v1; v12 = v12 >>> 16 | v12 << 16; v11 = v11 + v12 | 0; v6 ^= v11; v6 = v6 >>> 12 | v6 << 20;
    v1 = (v1 + v6 | 0) + m3 | 0; v12 ^= v1; v12 = v12 >>> 8 | v12 << 24; v11 = v11 + v12 | 0; v6 ^= v11; v6 = v6 >>> 7 | v6 << 25;
    v2 = (v2 + v7 | 0) + m0 | 0; v13 ^= v2; v13 = v13 >>> 16 | v13 << 16; v8 = v8 + v13 | 0; v7 ^= v8; v7 = v7 >>> 12 | v7 << 20;
    v2 = (v2 + v7 | 0) + m1 | 0; v13 ^= v2; v13 = v13 >>> 8 | v13 << 24; v8 = v8 + v13 | 0; v7 ^= v8; v7 = v7 >>> 7 | v7 << 25;
    v3 = (v3 + v4 | 0) + m6 | 0; v14 ^= v3; v14 = v14 >>> 16 | v14 << 16; v9 = v9 + v14 | 0; v4 ^= v9; v4 = v4 >>> 12 | v4 << 20;
    v3 = (v3 + v4 | 0) + m4 | 0; v14 ^= v3; v14 = v14 >>> 8 | v14 << 24; v9 = v9 + v14 | 0; v4 ^= v9; v4 = v4 >>> 7 | v4 << 25;
    // round 6
    v0 = (v0 + v4 | 0) + m9 | 0; v12 ^= v0; v12 = v12 >>> 16 | v12 << 16; v8 = v8 + v12 | 0; v4 ^= v8; v4 = v4 >>> 12 | v4 << 20;
    v0 = (v0 + v4 | 0) + m14 | 0; v12 ^= v0; v12 = v12 >>> 8 | v12 << 24; v8 = v8 + v12 | 0; v4 ^= v8; v4 = v4 >>> 7 | v4 << 25;
    v1 = (v1 + v5 | 0) + m11 | 0; v13 ^= v1; v13 = v13 >>> 16 | v13 << 16; v9 = v9 + v13 | 0; v5 ^= v9; v5 = v5 >>> 12 | v5 << 20;
    v1 = (v1 + v5 | 0) + m5 | 0; v13 ^= v1; v13 = v13 >>> 8 | v13 << 24; v9 = v9 + v13 | 0; v5 ^= v9; v5 = v5 >>> 7 | v5 << 25;
    v2 = (v2 + v6 | 0) + m8 | 0; v14 ^= v2; v14 = v14 >>> 16 | v14 << 16; v10 = v10 + v14 | 0; v6 ^= v10; v6 = v6 >>> 12 | v6 << 20;
    v2 = (v2 + v6 | 0) + m12 | 0; v14 ^= v2; v14 = v14 >>> 8 | v14 << 24; v10 = v10 + v14 | 0; v6 ^= v10; v6 = v6 >>> 7 | v6 << 25;
    v3 = (v3 + v7 | 0) + m15 | 0; v15 ^= v3; v15 = v15 >>> 16 | v15 << 16; v11 = v11 + v15 | 0; v7 ^= v11; v7 = v7 >>> 12 | v7 << 20;
    v3 = (v3 + v7 | 0) + m1 | 0; v15 ^= v3; v15 = v15 >>> 8 | v15 << 24; v11 = v11 + v15 | 0; v7 ^= v11; v7 = v7 >>> 7 | v7 << 25;
    v0 = (v0 + v5 | 0) + m13 | 0; v15 ^= v0; v15 = v15 >>> 16 | v15 << 16; v10 = v10 + v15 | 0; v5 ^= v10; v5 = v5 >>> 12 | v5 << 20;
    v0 = (v0 + v5 | 0) + m3 | 0; v15 ^= v0; v15 = v15 >>> 8 | v15 << 24; v10 = v10 + v15 | 0; v5 ^= v10; v5 = v5 >>> 7 | v5 << 25;
    v1 = (v1 + v6 | 0) + m0 | 0; v12 ^= v1; v12 = v12 >>> 16 | v12 << 16; v11 = v11 + v12 | 0; v6 ^= v11; v6 = v6 >>> 12 | v6 << 20;
    v1 = (v1 + v6 | 0) + m10 | 0; v12 ^= v1; v12 = v12 >>> 8 | v12 << 24; v11 = v11 + v12 | 0; v6 ^= v11; v6 = v6 >>> 7 | v6 << 25;
    v2 = (v2 + v7 | 0) + m2 | 0; v13 ^= v2; v13 = v13 >>> 16 | v13 << 16; v8 = v8 + v13 | 0; v7 ^= v8; v7 = v7 >>> 12 | v7 << 20;
    v2 = (v2 + v7 | 0) + m6 | 0; v13 ^= v2; v13 = v13 >>> 8 | v13 << 24; v8 = v8 + v13 | 0; v7 ^= v8; v7 = v7 >>> 7 | v7 << 25;
    v3 = (v3 + v4 | 0) + m4 | 0; v14 ^= v3; v14 = v14 >>> 16 | v14 << 16; v9 = v9 + v14 | 0; v4 ^= v9; v4 = v4 >>> 12 | v4 << 20;
    v3 = (v3 + v4 | 0) + m7 | 0; v14 ^= v3; v14 = v14 >>> 8 | v14 << 24; v9 = v9 + v14 | 0; v4 ^= v9; v4 = v4 >>> 7 | v4 << 25;
    // round 7
    v0 = (v0 + v4 | 0) + m11 | 0; v12 ^= v0; v12 = v12 >>> 16 | v12 << 16; v8 = v8 + v12 | 0; v4 ^= v8; v4 = v4 >>> 12 | v4 << 20;
    v0 = (v0 + v4 | 0) + m15 | 0; v12 ^= v0; v12 = v12 >>> 8 | v12 << 24; v8 = v8 + v12 | 0; v4 ^= v8; v4 = v4 >>> 7 | v4 << 25;
    v1 = (v1 + v5 | 0) + m5 | 0; v13 ^= v1; v13 = v13 >>> 16 | v13 << 16; v9 = v9 + v13 | 0; v5 ^= v9; v5 = v5 >>> 12 | v5 << 20;
    v1 = (v1 + v5 | 0) + m0 | 0; v13 ^= v1; v13 = v13 >>> 8 | v13 << 24; v9 = v9 + v13 | 0; v5 ^= v9; v5 = v5 >>> 7 | v5 << 25;
    v2 = (v2 + v6 | 0) + m1 | 0; v14 ^= v2; v14 = v14 >>> 16 | v14 << 16; v10 = v10 + v14 | 0; v6 ^= v10; v6 = v6 >>> 12 | v6 << 20;
    v2 = (v2 + v6 | 0) + m9 | 0; v14 ^= v2; v14 = v14 >>> 8 | v14 << 24; v10 = v10 + v14 | 0; v6 ^= v10; v6 = v6 >>> 7 | v6 << 25;
    v3 = (v3 + v7 | 0) + m8 | 0; v15 ^= v3; v15 = v15 >>> 16 | v15 << 16; v11 = v11 + v15 | 0; v7 ^= v11; v7 = v7 >>> 12 | v7 << 20;
    v3 = (v3 + v7 | 0) + m6 | 0; v15 ^= v3; v15 = v15 >>> 8 | v15 << 24; v11 = v11 + v15 | 0; v7 ^= v11; v7 = v7 >>> 7 | v7 << 25;
    v0 = (v0 + v5 | 0) + m14 | 0; v15 ^= v0; v15 = v15 >>> 16 | v15 << 16; v10 = v10 + v15 | 0; v5 ^= v10; v5 = v5 >>> 12 | v5 << 20;
    v0 = (v0 + v5 | 0) + m10 | 0; v15 ^= v0; v15 = v15 >>> 8 | v15 << 24; v10 = v10 + v15 | 0; v5 ^= v10; v5 = v5 >>> 7 | v5 << 25;
    v1 = (v1 + v6 | 0) + m2 | 0; v12 ^= v1; v12 = v12 >>> 16 | v12 << 16; v11 = v11 + v12 | 0; v6 ^= v11; v6 = v6 >>> 12 | v6 << 20;
    v1 = (v1 + v6 | 0) + m12 | 0; v12 ^= v1; v12 = v12 >>> 8 | v12 << 24; v11 = v11 + v12 | 0; v6 ^= v11; v6 = v6 >>> 7 | v6 << 25;
    v2 = (v2 + v7 | 0) + m3 | 0; v13 ^= v2; v13 = v13 >>> 16 | v13 << 16; v8 = v8 + v13 | 0; v7 ^= v8; v7 = v7 >>> 12 | v7 << 20;
    v2 = (v2 + v7 | 0) + m4 | 0; v13 ^= v2; v13 = v13 >>> 8 | v13 << 24; v8 = v8 + v13 | 0; v7 ^= v8; v7 = v7 >>> 7 | v7 << 25;
    v3 = (v3 + v4 | 0) + m7 | 0; v14 ^= v3; v14 = v14 >>> 16 | v14 << 16; v9 = v9 + v14 | 0; v4 ^= v9; v4 = v4 >>> 12 | v4 << 20;
    v3 = (v3 + v4 | 0) + m13 | 0; v14 ^= v3; v14 = v14 >>> 8 | v14 << 24; v9 = v9 + v14 | 0; v4 ^= v9; v4 = v4 >>> 7 | v4 << 25;
  out[outOff] = v0 ^ v8;
  out[outOff + 1] = v1 ^ v9;
  out[outOff + 2] = v2 ^ v10;
  out[outOff + 3] = v3 ^ v11;
  out[outOff + 4] = v4 ^ v12;
  out[outOff + 5] = v5 ^ v13;
  out[outOff + 6] = v6 ^ v14;
  out[outOff + 7] = v7 ^ v15;
}

// Aligned scratch space for input that cannot be viewed as words in place
// (unaligned, or a big-endian host) and for the zero-padded final chunk.
const SCRATCH_CHUNKS = 64;
const SCRATCH8 = new Uint8Array(SCRATCH_CHUNKS * CHUNK_LEN);
const SCRATCH32 = new Uint32Array(SCRATCH8.buffer);
// Work area for finalization, so that finalize() leaves a Hasher untouched.
const FINAL = new Uint32Array((MAX_DEPTH + 1) * 8);
// One 16-word parent block for the merge functions.
const PARENT_BLOCK = new Uint32Array(16);

/**
 * Copies `len` bytes of `data` from `pos` into SCRATCH32 as little-endian
 * words, zero-padding to the end of the last 64-byte block (at least one
 * block, for empty input), and returns SCRATCH32.
 */
function toWords(data, pos, len) {
  const padded = len === 0 ? BLOCK_LEN : (len + BLOCK_LEN - 1) & ~(BLOCK_LEN - 1);
  if (LITTLE_ENDIAN) {
    SCRATCH8.set(data.subarray(pos, pos + len));
    SCRATCH8.fill(0, len, padded);
  } else {
    for (let k = 0, b = pos, end = pos + len; k < padded >> 2; k++, b += 4) {
      SCRATCH32[k] = (b < end ? data[b] : 0) | (b + 1 < end ? data[b + 1] << 8 : 0)
        | (b + 2 < end ? data[b + 2] << 16 : 0) | (b + 3 < end ? data[b + 3] << 24 : 0);
    }
  }
  return SCRATCH32;
}

/**
 * Chaining value of one chunk, written to out[outOff..outOff + 8]. Its
 * `byteLen` bytes (1..1024, or 0 for the empty input) are the little-endian
 * words m[w..]; bytes of the last block past `byteLen` must be zero.
 * `lastFlags` is ROOT when this chunk is the whole input and the caller wants
 * the root, else 0.
 */
function chunkCv(m, w, byteLen, counter, lastFlags, out, outOff) {
  const ctrLo = counter >>> 0; // ToUint32 is counter mod 2^32
  const ctrHi = (counter / TWO32) >>> 0;
  out[outOff] = 0x6a09e667;
  out[outOff + 1] = 0xbb67ae85;
  out[outOff + 2] = 0x3c6ef372;
  out[outOff + 3] = 0xa54ff53a;
  out[outOff + 4] = 0x510e527f;
  out[outOff + 5] = 0x9b05688c;
  out[outOff + 6] = 0x1f83d9ab;
  out[outOff + 7] = 0x5be0cd19;
  const last = byteLen === 0 ? 0 : (byteLen - 1) >> 6;
  for (let j = 0; j < last; j++) {
    compress(out, outOff, m, w + 16 * j, ctrLo, ctrHi, BLOCK_LEN, j === 0 ? CHUNK_START : 0, out, outOff);
  }
  compress(out, outOff, m, w + 16 * last, ctrLo, ctrHi, byteLen - BLOCK_LEN * last,
    (last === 0 ? CHUNK_START : 0) | CHUNK_END | lastFlags, out, outOff);
}

/** Writes the 8 words `w[off..]` as 32 little-endian bytes into a new array. */
function wordsToBytes(w, off) {
  const out = new Uint8Array(OUT_LEN);
  for (let i = 0; i < 8; i++) {
    const x = w[off + i];
    out[4 * i] = x;
    out[4 * i + 1] = x >>> 8;
    out[4 * i + 2] = x >>> 16;
    out[4 * i + 3] = x >>> 24;
  }
  return out;
}

/** Reads 32 little-endian bytes as 8 words into w[off..]. */
function bytesToWords(b, w, off) {
  for (let i = 0; i < 8; i++) {
    w[off + i] = b[4 * i] | b[4 * i + 1] << 8 | b[4 * i + 2] << 16 | b[4 * i + 3] << 24;
  }
}

function asBytes(data, what) {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer
    || (typeof SharedArrayBuffer !== 'undefined' && data instanceof SharedArrayBuffer)) {
    return new Uint8Array(data);
  }
  throw new TypeError(`${what} must be a Uint8Array`);
}

function asCv(cv, what) {
  const b = asBytes(cv, what);
  if (b.length !== OUT_LEN) throw new RangeError(`${what} must be ${OUT_LEN} bytes, got ${b.length}`);
  return b;
}

/**
 * Incremental hashing of a subtree whose first chunk has chunk counter
 * `base` (0 for a whole input). The last chunk is always kept in `buf` until
 * finalization, since only then is it known whether it is the root.
 */
class Tree {
  constructor(base) {
    this.base = base;
    // Chaining values of completed subtrees, 8 words each, largest first;
    // slot `depth` is where the next chunk's CV is written.
    this.stack = new Uint32Array((MAX_DEPTH + 1) * 8);
    this.depth = 0;
    this.chunks = 0; // chunks whose CV is in the stack
    this.buf = new Uint8Array(CHUNK_LEN);
    this.bufLen = 0;
  }

  /** Accounts for the chunk CV just written to slot `depth`, merging the
   *  subtrees it completes (the left-balanced tree's shape). */
  push() {
    const s = this.stack;
    let d = ++this.depth;
    let n = ++this.chunks;
    while (n % 2 === 0) {
      d--;
      const off = (d - 1) * 8; // left CV at off, right CV right after it
      compress(IV, 0, s, off, 0, 0, BLOCK_LEN, PARENT, s, off);
      n /= 2;
    }
    this.depth = d;
  }

  /** Hashes `n` full chunks of `data` from `pos`, none of them the last. */
  fullChunks(data, pos, n) {
    const abs = data.byteOffset + pos;
    if (LITTLE_ENDIAN && (abs & 3) === 0) {
      const m = new Uint32Array(data.buffer, abs, n * CHUNK_WORDS);
      for (let i = 0, w = 0; i < n; i++, w += CHUNK_WORDS) {
        chunkCv(m, w, CHUNK_LEN, this.base + this.chunks, 0, this.stack, this.depth * 8);
        this.push();
      }
      return;
    }
    while (n > 0) {
      const k = n < SCRATCH_CHUNKS ? n : SCRATCH_CHUNKS;
      const m = toWords(data, pos, k * CHUNK_LEN);
      for (let i = 0, w = 0; i < k; i++, w += CHUNK_WORDS) {
        chunkCv(m, w, CHUNK_LEN, this.base + this.chunks, 0, this.stack, this.depth * 8);
        this.push();
      }
      pos += k * CHUNK_LEN;
      n -= k;
    }
  }

  update(data) {
    const len = data.length;
    let pos = 0;
    if (this.bufLen > 0) {
      const take = Math.min(CHUNK_LEN - this.bufLen, len);
      this.buf.set(data.subarray(0, take), this.bufLen);
      this.bufLen += take;
      pos = take;
      if (pos === len) return; // the buffered chunk may still be the last
      const m = toWords(this.buf, 0, CHUNK_LEN);
      chunkCv(m, 0, CHUNK_LEN, this.base + this.chunks, 0, this.stack, this.depth * 8);
      this.push();
      this.bufLen = 0;
    }
    const rest = len - pos;
    if (rest > CHUNK_LEN) {
      const n = Math.floor((rest - 1) / CHUNK_LEN); // keep at least one byte back
      this.fullChunks(data, pos, n);
      pos += n * CHUNK_LEN;
    }
    this.buf.set(data.subarray(pos), 0);
    this.bufLen = len - pos;
  }

  /** The root hash (root = true) or the non-root chaining value as words in
   *  FINAL[0..8]. Leaves the state as it was. */
  finalize(root) {
    const d = this.depth;
    const s = this.stack;
    for (let i = 0; i < d * 8; i++) FINAL[i] = s[i];
    const m = toWords(this.buf, 0, this.bufLen);
    chunkCv(m, 0, this.bufLen, this.base + this.chunks, root && d === 0 ? ROOT : 0, FINAL, d * 8);
    for (let k = d; k > 0; k--) {
      const off = (k - 1) * 8;
      compress(IV, 0, FINAL, off, 0, 0, BLOCK_LEN, PARENT | (root && k === 1 ? ROOT : 0), FINAL, off);
    }
    return wordsToBytes(FINAL, 0);
  }
}

/** Incremental BLAKE3-256: `update` any number of times, then `finalize`. */
export class Hasher {
  #tree = new Tree(0);

  /** Adds input; returns this for chaining. */
  update(data) {
    this.#tree.update(asBytes(data, 'data'));
    return this;
  }

  /** The 32-byte hash of all input so far. Does not change the state, so
   *  more input may follow. */
  finalize() {
    return this.#tree.finalize(true);
  }
}

/** BLAKE3-256 of `data`. */
export function hash(data) {
  const t = new Tree(0);
  t.update(asBytes(data, 'data'));
  return t.finalize(true);
}

/**
 * The largest number of bytes a subtree starting at byte `offset` may hold:
 * 1024 times the largest power of two dividing the chunk index, or Infinity
 * at offset 0. Throws RangeError unless `offset` is a non-negative multiple of
 * 1024 (a number or bigint no larger than 2^53 - 1).
 */
export function maxSubtreeLen(offset) {
  const off = checkOffset(offset);
  if (off === 0) return Infinity;
  let p = CHUNK_LEN;
  while (off % (2 * p) === 0) p *= 2;
  return p;
}

function checkOffset(offset) {
  let off = offset;
  if (typeof off === 'bigint') {
    if (off < 0n || off > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new RangeError(`offset ${offset} is out of range`);
    }
    off = Number(off);
  }
  if (typeof off !== 'number' || !Number.isSafeInteger(off) || off < 0) {
    throw new RangeError(`offset must be a non-negative safe integer, got ${offset}`);
  }
  if (off % CHUNK_LEN !== 0) {
    throw new RangeError(`offset ${off} is not a multiple of ${CHUNK_LEN}`);
  }
  return off;
}

/**
 * Non-root chaining value of `data` as the subtree of a larger input that
 * starts at byte `offset` (Rust: `Hasher::new().set_input_offset(offset)
 * .update(data).finalize_non_root()`). `offset` must be a multiple of 1024,
 * and `data` non-empty and no longer than `maxSubtreeLen(offset)`; anything
 * else throws RangeError.
 */
export function subtreeCv(data, offset) {
  const bytes = asBytes(data, 'data');
  const max = maxSubtreeLen(offset);
  if (bytes.length === 0) throw new RangeError('a subtree cannot be empty');
  if (bytes.length > max) {
    throw new RangeError(`${bytes.length} bytes is more than the ${max} a subtree at offset ${offset} can hold`);
  }
  const t = new Tree(Number(offset) / CHUNK_LEN);
  t.update(bytes);
  return t.finalize(false);
}

function merge(leftCv, rightCv, flags) {
  bytesToWords(asCv(leftCv, 'left CV'), PARENT_BLOCK, 0);
  bytesToWords(asCv(rightCv, 'right CV'), PARENT_BLOCK, 8);
  compress(IV, 0, PARENT_BLOCK, 0, 0, 0, BLOCK_LEN, flags, PARENT_BLOCK, 0);
  return wordsToBytes(PARENT_BLOCK, 0);
}

/** Chaining value of the parent of two subtrees, as a non-root node. */
export function mergeNonRoot(leftCv, rightCv) {
  return merge(leftCv, rightCv, PARENT);
}

/** Root hash of the parent of two subtrees: the hash of the whole input. */
export function mergeRoot(leftCv, rightCv) {
  return merge(leftCv, rightCv, PARENT | ROOT);
}

/** Blocks in the left subtree of n >= 2 blocks: the largest power of two below n. */
function leftLen(n) {
  let p = 1;
  while (p * 2 < n) p *= 2;
  return p;
}

function subtreeOfCvs(cvs, start, end) {
  if (end - start === 1) return cvs[start];
  const mid = start + leftLen(end - start);
  return mergeNonRoot(subtreeOfCvs(cvs, start, mid), subtreeOfCvs(cvs, mid, end));
}

/**
 * Root hash of a file from the chaining values of its blocks, in order: the
 * hash of empty input for no blocks, `singleBlockRoot` (which must be
 * `hash(block)`, since a lone block has no parent node) for one block, else
 * the left-balanced merge of the CVs whose top node is the root.
 */
export function rootFromBlockCvs(cvs, singleBlockRoot) {
  if (!Array.isArray(cvs)) throw new TypeError('cvs must be an array of 32-byte Uint8Arrays');
  const n = cvs.length;
  if (n === 0) return hash(new Uint8Array(0));
  const checked = cvs.map((cv, i) => asCv(cv, `block CV ${i}`));
  if (n === 1) {
    if (singleBlockRoot === undefined || singleBlockRoot === null) {
      throw new TypeError('one block: its root hash must be passed as singleBlockRoot');
    }
    return asCv(singleBlockRoot, 'singleBlockRoot').slice();
  }
  const mid = leftLen(n);
  return mergeRoot(subtreeOfCvs(checked, 0, mid), subtreeOfCvs(checked, mid, n));
}

const HEX = '0123456789abcdef';

/** Lowercase hex of a byte array. */
export function toHex(bytes) {
  const b = asBytes(bytes, 'bytes');
  let s = '';
  for (let i = 0; i < b.length; i++) s += HEX[b[i] >> 4] + HEX[b[i] & 15];
  return s;
}

/** Bytes of a hex string (either case); throws on odd length or a non-hex digit. */
export function fromHex(str) {
  if (typeof str !== 'string') throw new TypeError('hex must be a string');
  if (str.length % 2 !== 0) throw new RangeError('hex string has an odd length');
  const out = new Uint8Array(str.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = hexDigit(str.charCodeAt(2 * i));
    const lo = hexDigit(str.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) throw new RangeError(`not a hex digit at ${hi < 0 ? 2 * i : 2 * i + 1}`);
    out[i] = hi << 4 | lo;
  }
  return out;
}

function hexDigit(c) {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  if (c >= 97 && c <= 102) return c - 87; // a-f
  if (c >= 65 && c <= 70) return c - 55; // A-F
  return -1;
}
