// A streaming ZIP writer (stored, no compression) so a browser without the
// File System Access API can save a folder as one download, written as the
// bytes arrive. Sizes and CRCs follow each file in a data descriptor (the
// sizes of streams are not known up front); ZIP64 fields are used whenever a
// size or offset needs them, so multi-GiB transfers work.

const CRC_TABLE = (() => {
  const t = new Uint32Array(256 * 8);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  // Slicing-by-8 tables: eight bytes per step keeps CRC off the critical path.
  for (let n = 0; n < 256; n++) {
    let c = t[n];
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff] ^ (c >>> 8);
      t[k * 256 + n] = c;
    }
  }
  return t;
})();

/** CRC-32 (IEEE) of `bytes`, continuing from `crc`. */
export function crc32(bytes, crc = 0) {
  let c = ~crc >>> 0;
  let i = 0;
  const n = bytes.length;
  const t = CRC_TABLE;
  for (; i + 8 <= n; i += 8) {
    const a = (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24)) ^ c;
    c =
      t[1792 + (a & 0xff)] ^
      t[1536 + ((a >>> 8) & 0xff)] ^
      t[1280 + ((a >>> 16) & 0xff)] ^
      t[1024 + (a >>> 24)] ^
      t[768 + bytes[i + 4]] ^
      t[512 + bytes[i + 5]] ^
      t[256 + bytes[i + 6]] ^
      t[bytes[i + 7]];
  }
  for (; i < n; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

const MAX32 = 0xffffffff;
const utf8 = new TextEncoder();

class Out {
  constructor(n) {
    this.bytes = new Uint8Array(n);
    this.view = new DataView(this.bytes.buffer);
    this.at = 0;
  }
  u16(v) {
    this.view.setUint16(this.at, v, true);
    this.at += 2;
    return this;
  }
  u32(v) {
    this.view.setUint32(this.at, v >>> 0, true);
    this.at += 4;
    return this;
  }
  u64(v) {
    this.view.setBigUint64(this.at, BigInt(v), true);
    this.at += 8;
    return this;
  }
  raw(b) {
    this.bytes.set(b, this.at);
    this.at += b.length;
    return this;
  }
}

function dosTime(d) {
  const time = (d.getHours() << 11) | (d.getMinutes() << 5) | (d.getSeconds() >> 1);
  const date = (Math.max(d.getFullYear() - 1980, 0) << 9) | ((d.getMonth() + 1) << 5) | d.getDate();
  return { time, date };
}

/**
 * `new ZipWriter(write)` where `write(Uint8Array)` may return a promise
 * (awaited: that is the back-pressure). Call `addDir(path)`, or
 * `startFile(path, sizeHint)` then `data(bytes)`... `endFile()`, and finally
 * `finish()`.
 */
export class ZipWriter {
  constructor(write, now = new Date()) {
    this.write = write;
    this.offset = 0;
    this.entries = [];
    this.current = null;
    this.stamp = dosTime(now);
  }

  async #emit(bytes) {
    this.offset += bytes.length;
    await this.write(bytes);
  }

  async #local(name, flags, zip64) {
    const extra = zip64 ? 20 : 0;
    const o = new Out(30 + name.length + extra);
    o.u32(0x04034b50).u16(zip64 ? 45 : 20).u16(flags).u16(0).u16(this.stamp.time).u16(this.stamp.date);
    o.u32(0).u32(zip64 ? MAX32 : 0).u32(zip64 ? MAX32 : 0).u16(name.length).u16(extra).raw(name);
    if (zip64) o.u16(1).u16(16).u64(0).u64(0);
    await this.#emit(o.bytes);
  }

  async addDir(path) {
    const name = utf8.encode(path.endsWith('/') ? path : `${path}/`);
    const entry = { name, offset: this.offset, crc: 0, size: 0, dir: true, zip64: false, flags: 0x0800 };
    await this.#local(name, entry.flags, false);
    this.entries.push(entry);
  }

  /** `sizeHint` is the expected size, or null when unknown (then ZIP64 is used). */
  async startFile(path, sizeHint) {
    const name = utf8.encode(path);
    const zip64 = sizeHint === null || sizeHint === undefined || sizeHint >= MAX32 || this.offset >= MAX32;
    this.current = { name, offset: this.offset, crc: 0, size: 0, dir: false, zip64, flags: 0x0808 };
    await this.#local(name, this.current.flags, zip64);
  }

  async data(bytes) {
    this.current.crc = crc32(bytes, this.current.crc);
    this.current.size += bytes.length;
    await this.#emit(bytes);
  }

  async endFile() {
    const e = this.current;
    this.current = null;
    if (!e.zip64 && e.size >= MAX32) throw new Error('file grew past its announced size');
    const o = new Out(e.zip64 ? 24 : 16);
    o.u32(0x08074b50).u32(e.crc);
    if (e.zip64) o.u64(e.size).u64(e.size);
    else o.u32(e.size).u32(e.size);
    await this.#emit(o.bytes);
    this.entries.push(e);
  }

  async finish() {
    const cdStart = this.offset;
    for (const e of this.entries) {
      const bigSize = e.size >= MAX32 || e.zip64;
      const bigOffset = e.offset >= MAX32;
      const extraLen = (bigSize ? 16 : 0) + (bigOffset ? 8 : 0);
      const o = new Out(46 + e.name.length + (extraLen ? 4 + extraLen : 0));
      const mode = e.dir ? 0o40755 : 0o100644;
      o.u32(0x02014b50).u16((3 << 8) | 45).u16(bigSize || bigOffset ? 45 : 20).u16(e.flags).u16(0);
      o.u16(this.stamp.time).u16(this.stamp.date).u32(e.crc);
      o.u32(bigSize ? MAX32 : e.size).u32(bigSize ? MAX32 : e.size);
      o.u16(e.name.length).u16(extraLen ? 4 + extraLen : 0).u16(0).u16(0).u16(0);
      o.u32(((mode << 16) | (e.dir ? 0x10 : 0)) >>> 0).u32(bigOffset ? MAX32 : e.offset).raw(e.name);
      if (extraLen) {
        o.u16(1).u16(extraLen);
        if (bigSize) o.u64(e.size).u64(e.size);
        if (bigOffset) o.u64(e.offset);
      }
      await this.#emit(o.bytes);
    }
    const cdSize = this.offset - cdStart;
    const count = this.entries.length;
    const needs64 = count >= 0xffff || cdStart >= MAX32 || cdSize >= MAX32;
    if (needs64) {
      const recordAt = this.offset;
      const o = new Out(56 + 20);
      o.u32(0x06064b50).u64(44).u16((3 << 8) | 45).u16(45).u32(0).u32(0);
      o.u64(count).u64(count).u64(cdSize).u64(cdStart);
      o.u32(0x07064b50).u32(0).u64(recordAt).u32(1);
      await this.#emit(o.bytes);
    }
    const o = new Out(22);
    o.u32(0x06054b50).u16(0).u16(0);
    o.u16(needs64 ? 0xffff : count).u16(needs64 ? 0xffff : count);
    o.u32(needs64 ? MAX32 : cdSize).u32(needs64 ? MAX32 : cdStart).u16(0);
    await this.#emit(o.bytes);
  }
}
