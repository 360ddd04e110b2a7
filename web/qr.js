// QR Code (ISO/IEC 18004) encoder for the share link, drawn as SVG.
//
// Byte and alphanumeric segments, versions 1–40, all four error-correction
// levels, automatic mask choice. A ferry link is a short byte-mode prefix
// ("http://host:port/#") followed by the ticket, which the page writes in
// upper case so it fits the denser alphanumeric mode (11 bits per 2 chars
// instead of 16): that keeps the code small enough for a phone camera.

const ALNUM = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:';
const LEVELS = { L: 0, M: 1, Q: 2, H: 3 };
const FORMAT_BITS = [1, 0, 3, 2]; // L, M, Q, H as written in the format information

// ISO/IEC 18004 Table 9: error-correction codewords per block, and the
// number of blocks, for versions 1–40 (index 0 unused) at L, M, Q, H.
// prettier-ignore
const ECC_PER_BLOCK = [
  [-1, 7, 10, 15, 20, 26, 18, 20, 24, 30, 18, 20, 24, 26, 30, 22, 24, 28, 30, 28, 28, 28, 28, 30, 30, 26, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30],
  [-1, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26, 26, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28],
  [-1, 13, 22, 18, 26, 18, 24, 18, 22, 20, 24, 28, 26, 24, 20, 30, 24, 28, 28, 26, 30, 28, 30, 30, 30, 30, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30],
  [-1, 17, 28, 22, 16, 22, 28, 26, 26, 24, 28, 24, 28, 22, 24, 24, 30, 28, 28, 26, 28, 30, 24, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30],
];
// prettier-ignore
const BLOCKS = [
  [-1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 4, 6, 6, 6, 6, 7, 8, 8, 9, 9, 10, 12, 12, 12, 13, 14, 15, 16, 17, 18, 19, 19, 20, 21, 22, 24, 25],
  [-1, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16, 17, 17, 18, 20, 21, 23, 25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49],
  [-1, 1, 1, 2, 2, 4, 4, 6, 6, 8, 8, 8, 10, 12, 16, 12, 17, 16, 18, 21, 20, 23, 23, 25, 27, 29, 34, 34, 35, 38, 40, 43, 45, 48, 51, 53, 56, 59, 62, 65, 68],
  [-1, 1, 1, 2, 4, 4, 4, 5, 6, 8, 8, 11, 11, 16, 16, 18, 16, 19, 21, 25, 25, 25, 34, 30, 32, 35, 37, 40, 42, 45, 48, 51, 54, 57, 60, 63, 66, 70, 74, 77, 81],
];

/** Split text into segments: long runs of alphanumeric-mode characters, and bytes. */
export function segment(text) {
  const utf8 = new TextEncoder();
  const segments = [];
  // A run shorter than ~12 characters costs more in its own header than it saves.
  const re = /[0-9A-Z $%*+\-./:]{12,}/g;
  let at = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > at) segments.push({ mode: 'byte', data: utf8.encode(text.slice(at, m.index)) });
    segments.push({ mode: 'alnum', data: m[0] });
    at = m.index + m[0].length;
  }
  if (at < text.length || segments.length === 0) {
    segments.push({ mode: 'byte', data: utf8.encode(text.slice(at)) });
  }
  return segments;
}

function countBits(mode, version) {
  const i = version <= 9 ? 0 : version <= 26 ? 1 : 2;
  return mode === 'byte' ? [8, 16, 16][i] : [9, 11, 13][i];
}

function segmentBits(segments, version) {
  let bits = 0;
  for (const s of segments) {
    const n = s.data.length;
    if (n >= 2 ** countBits(s.mode, version)) return Infinity;
    bits += 4 + countBits(s.mode, version) + (s.mode === 'byte' ? 8 * n : 11 * Math.floor(n / 2) + 6 * (n % 2));
  }
  return bits;
}

class BitBuffer {
  bits = [];
  put(value, length) {
    for (let i = length - 1; i >= 0; i--) this.bits.push((value >>> i) & 1);
  }
}

// Reed–Solomon over GF(2^8) with the QR polynomial x^8+x^4+x^3+x^2+1.
const EXP = new Uint8Array(512);
const LOG = new Uint8Array(256);
for (let i = 0, x = 1; i < 255; i++) {
  EXP[i] = EXP[i + 255] = x;
  LOG[x] = i;
  x = (x << 1) ^ (x & 0x80 ? 0x11d : 0);
}
const gfMul = (a, b) => (a === 0 || b === 0 ? 0 : EXP[LOG[a] + LOG[b]]);

function rsGenerator(degree) {
  let g = [1]; // coefficients, highest power first: product of (x - α^i)
  for (let i = 0; i < degree; i++) {
    const next = new Array(g.length + 1).fill(0);
    g.forEach((c, j) => {
      next[j] ^= c;
      next[j + 1] ^= gfMul(c, EXP[i]);
    });
    g = next;
  }
  return g;
}

function rsRemainder(data, generator) {
  const rem = new Array(generator.length - 1).fill(0);
  for (const b of data) {
    const factor = b ^ rem.shift();
    rem.push(0);
    for (let i = 0; i < rem.length; i++) rem[i] ^= gfMul(generator[i + 1], factor);
  }
  return rem;
}

/** A QR symbol under construction: `size` × `size` modules, `dark(x, y)` true for dark. */
class Matrix {
  constructor(version) {
    this.version = version;
    this.size = 17 + 4 * version;
    this.modules = Array.from({ length: this.size }, () => new Array(this.size).fill(false));
    this.reserved = Array.from({ length: this.size }, () => new Array(this.size).fill(false));
    this.#drawFunctionPatterns();
  }

  set(x, y, dark) {
    this.modules[y][x] = dark;
    this.reserved[y][x] = true;
  }

  #drawFunctionPatterns() {
    const n = this.size;
    for (let i = 0; i < n; i++) {
      this.set(6, i, i % 2 === 0); // timing patterns
      this.set(i, 6, i % 2 === 0);
    }
    for (const [cx, cy] of [[3, 3], [n - 4, 3], [3, n - 4]]) {
      // Finder pattern plus its light separator, clipped at the edges.
      for (let dy = -4; dy <= 4; dy++) {
        for (let dx = -4; dx <= 4; dx++) {
          const x = cx + dx;
          const y = cy + dy;
          const d = Math.max(Math.abs(dx), Math.abs(dy));
          if (x >= 0 && x < n && y >= 0 && y < n) this.set(x, y, d !== 2 && d !== 4);
        }
      }
    }
    const centers = alignmentCenters(this.version);
    for (const cx of centers) {
      for (const cy of centers) {
        const onFinder = (cx === 6 && cy === 6) || (cx === 6 && cy === n - 7) || (cx === n - 7 && cy === 6);
        if (onFinder) continue;
        for (let dy = -2; dy <= 2; dy++) {
          for (let dx = -2; dx <= 2; dx++) this.set(cx + dx, cy + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1);
        }
      }
    }
    this.drawFormat(0, 0); // reserve the areas; the real bits come after masking
    if (this.version >= 7) {
      let rem = this.version;
      for (let i = 0; i < 12; i++) rem = (rem << 1) ^ ((rem >>> 11) * 0x1f25);
      const bits = (this.version << 12) | rem;
      for (let i = 0; i < 18; i++) {
        const dark = ((bits >>> i) & 1) === 1;
        const a = n - 11 + (i % 3);
        const b = Math.floor(i / 3);
        this.set(a, b, dark);
        this.set(b, a, dark);
      }
    }
  }

  drawFormat(level, mask) {
    const data = (FORMAT_BITS[level] << 3) | mask;
    let rem = data;
    for (let i = 0; i < 10; i++) rem = (rem << 1) ^ ((rem >>> 9) * 0x537);
    const bits = ((data << 10) | rem) ^ 0x5412;
    const bit = (i) => ((bits >>> i) & 1) === 1;
    const n = this.size;
    for (let i = 0; i <= 5; i++) this.set(8, i, bit(i));
    this.set(8, 7, bit(6));
    this.set(8, 8, bit(7));
    this.set(7, 8, bit(8));
    for (let i = 9; i < 15; i++) this.set(14 - i, 8, bit(i));
    for (let i = 0; i < 8; i++) this.set(n - 1 - i, 8, bit(i));
    for (let i = 8; i < 15; i++) this.set(8, n - 15 + i, bit(i));
    this.set(8, n - 8, true); // the dark module
  }

  /** Number of modules left for data and error correction. */
  dataModules() {
    return this.reserved.flat().filter((r) => !r).length;
  }

  placeCodewords(codewords) {
    const n = this.size;
    let i = 0;
    // Two-module-wide columns from the right, snaking up then down, skipping the timing column.
    for (let right = n - 1; right >= 1; right -= 2) {
      if (right === 6) right = 5;
      const upward = ((right + 1) & 2) === 0;
      for (let step = 0; step < n; step++) {
        const y = upward ? n - 1 - step : step;
        for (const x of [right, right - 1]) {
          if (this.reserved[y][x]) continue;
          if (i < codewords.length * 8) this.modules[y][x] = ((codewords[i >>> 3] >>> (7 - (i & 7))) & 1) === 1;
          i++; // remainder bits stay light
        }
      }
    }
  }

  applyMask(mask) {
    const test = MASKS[mask];
    for (let y = 0; y < this.size; y++) {
      for (let x = 0; x < this.size; x++) if (!this.reserved[y][x] && test(x, y)) this.modules[y][x] = !this.modules[y][x];
    }
  }

  penalty() {
    const n = this.size;
    const m = this.modules;
    let score = 0;
    const lines = [];
    for (let i = 0; i < n; i++) {
      lines.push(m[i]);
      lines.push(m.map((row) => row[i]));
    }
    const finderLike = [
      [true, false, true, true, true, false, true, false, false, false, false],
      [false, false, false, false, true, false, true, true, true, false, true],
    ];
    for (const line of lines) {
      let run = 1;
      for (let i = 1; i <= n; i++) {
        if (i < n && line[i] === line[i - 1]) run++;
        else {
          if (run >= 5) score += 3 + (run - 5);
          run = 1;
        }
      }
      for (let i = 0; i + 11 <= n; i++) {
        for (const p of finderLike) if (p.every((v, j) => line[i + j] === v)) score += 40;
      }
    }
    for (let y = 0; y + 1 < n; y++) {
      for (let x = 0; x + 1 < n; x++) {
        const c = m[y][x];
        if (c === m[y][x + 1] && c === m[y + 1][x] && c === m[y + 1][x + 1]) score += 3;
      }
    }
    const dark = m.flat().filter(Boolean).length;
    score += 10 * Math.floor(Math.abs((dark * 100) / (n * n) - 50) / 5);
    return score;
  }
}

const MASKS = [
  (x, y) => (x + y) % 2 === 0,
  (x, y) => y % 2 === 0,
  (x) => x % 3 === 0,
  (x, y) => (x + y) % 3 === 0,
  (x, y) => (Math.floor(x / 3) + Math.floor(y / 2)) % 2 === 0,
  (x, y) => ((x * y) % 2) + ((x * y) % 3) === 0,
  (x, y) => (((x * y) % 2) + ((x * y) % 3)) % 2 === 0,
  (x, y) => (((x + y) % 2) + ((x * y) % 3)) % 2 === 0,
];

// Alignment pattern centres: from 6 to size−7, evenly spaced by an even step (Annex E).
function alignmentCenters(version) {
  if (version === 1) return [];
  const count = Math.floor(version / 7) + 2;
  const last = 4 * version + 10;
  const step = version === 32 ? 26 : Math.ceil((last - 6) / (count - 1) / 2) * 2;
  const centers = [6];
  for (let i = count - 2; i >= 0; i--) centers.push(last - i * step);
  return centers;
}

function encodeData(segments, version, level, totalCodewords) {
  const blocks = BLOCKS[level][version];
  const eccPerBlock = ECC_PER_BLOCK[level][version];
  const dataCodewords = totalCodewords - blocks * eccPerBlock;
  const buf = new BitBuffer();
  for (const s of segments) {
    buf.put(s.mode === 'byte' ? 0b0100 : 0b0010, 4);
    buf.put(s.data.length, countBits(s.mode, version));
    if (s.mode === 'byte') {
      for (const b of s.data) buf.put(b, 8);
    } else {
      const v = (c) => ALNUM.indexOf(c);
      for (let i = 0; i + 1 < s.data.length; i += 2) buf.put(45 * v(s.data[i]) + v(s.data[i + 1]), 11);
      if (s.data.length % 2) buf.put(v(s.data[s.data.length - 1]), 6);
    }
  }
  const capacity = dataCodewords * 8;
  buf.put(0, Math.min(4, capacity - buf.bits.length)); // terminator
  buf.put(0, (8 - (buf.bits.length % 8)) % 8);
  const data = [];
  for (let i = 0; i < buf.bits.length; i += 8) data.push(buf.bits.slice(i, i + 8).reduce((a, b) => (a << 1) | b, 0));
  for (let pad = 0xec; data.length < dataCodewords; pad ^= 0xec ^ 0x11) data.push(pad);

  // Split into blocks (the last ones one codeword longer), add ECC, interleave.
  const shortBlocks = blocks - (totalCodewords % blocks);
  const shortLength = Math.floor(totalCodewords / blocks) - eccPerBlock;
  const generator = rsGenerator(eccPerBlock);
  const dataBlocks = [];
  const eccBlocks = [];
  for (let b = 0, at = 0; b < blocks; b++) {
    const length = shortLength + (b < shortBlocks ? 0 : 1);
    const block = data.slice(at, at + length);
    at += length;
    dataBlocks.push(block);
    eccBlocks.push(rsRemainder(block, generator));
  }
  const out = [];
  for (let i = 0; i <= shortLength; i++) for (const block of dataBlocks) if (i < block.length) out.push(block[i]);
  for (let i = 0; i < eccPerBlock; i++) for (const block of eccBlocks) out.push(block[i]);
  return out;
}

/**
 * Encode `text` as a QR symbol: the smallest version that holds it at the
 * error-correction level `ecc` ('L', 'M', 'Q' or 'H'). Returns
 * `{ version, size, modules }` with `modules[y][x]` true for dark.
 */
export function qrEncode(text, { ecc = 'M' } = {}) {
  const level = LEVELS[ecc];
  if (level === undefined) throw new RangeError(`unknown error-correction level ${ecc}`);
  const segments = segment(text);
  for (let version = 1; version <= 40; version++) {
    const symbol = new Matrix(version);
    const totalCodewords = Math.floor(symbol.dataModules() / 8);
    const dataCodewords = totalCodewords - BLOCKS[level][version] * ECC_PER_BLOCK[level][version];
    if (segmentBits(segments, version) > dataCodewords * 8) continue;
    symbol.placeCodewords(encodeData(segments, version, level, totalCodewords));
    let best = null;
    for (let mask = 0; mask < 8; mask++) {
      symbol.applyMask(mask);
      symbol.drawFormat(level, mask);
      const score = symbol.penalty();
      if (best === null || score < best.score) best = { score, mask };
      symbol.applyMask(mask); // masking is its own inverse
    }
    symbol.applyMask(best.mask);
    symbol.drawFormat(level, best.mask);
    return { version, size: symbol.size, modules: symbol.modules };
  }
  throw new RangeError('too long for a QR code');
}

/** The QR code of `text` as an SVG document string (with the 4-module quiet zone). */
export function qrSvg(text, options) {
  const { size, modules } = qrEncode(text, options);
  const quiet = 4;
  let path = '';
  modules.forEach((row, y) =>
    row.forEach((dark, x) => {
      if (dark) path += `M${x + quiet},${y + quiet}h1v1h-1z`;
    }),
  );
  const full = size + 2 * quiet;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${full} ${full}" shape-rendering="crispEdges" role="img" aria-label="QR code of the link">` +
    `<rect width="${full}" height="${full}" fill="#fff"/><path d="${path}" fill="#000"/></svg>`
  );
}
