// The sending side of a transfer (PROTOCOL §3-§6), independent of the page:
// offers a list of files (Blob-like objects with a path), then reads, hashes
// and sends their blocks in order, with the next blocks read and hashed while
// the current one is on the wire. When the receiver offers a window, no
// block starts while a window's worth of messages is uncredited.

import { fromHex, hash, rootFromBlockCvs } from './blake3.js';
import {
  DATA_PAYLOAD,
  DEFAULT_BLOCK_SIZE,
  MAX_BAD_BLOCKS,
  MESSAGE_COST,
  PROTOCOL_VERSION,
  ProtocolError,
  blockCount,
  decodeControl,
  encodeBlockHeader,
  encodeData,
  encodeFileEnd,
  hello,
  peerWindow,
  stoppedBy,
  manifestParts,
  unsafePathReason,
  validateManifest,
} from './protocol.js';

/** Blocks read and hashed ahead of the one being sent. */
const READ_AHEAD = 4;

/**
 * Build the manifest entries for `items`: [{path, file}] where `file` is a
 * Blob with `size`. Folders named by the paths are listed too, so empty ones
 * can be offered as [{path, dir: true}]. Throws on a path ferry would refuse.
 */
export function buildOffer(items) {
  const entries = [];
  const files = [];
  const dirs = new Set();
  const addDir = (path) => {
    if (dirs.has(path)) return;
    const cut = path.lastIndexOf('/');
    if (cut > 0) addDir(path.slice(0, cut));
    dirs.add(path);
    entries.push({ path, kind: 'dir', size: null, mode: 0o755 });
  };
  for (const item of items) {
    const reason = unsafePathReason(item.path);
    if (reason) throw new Error(`cannot send ${JSON.stringify(item.path)}: ${reason}`);
    const cut = item.path.lastIndexOf('/');
    if (cut > 0) addDir(item.path.slice(0, cut));
    if (item.dir) {
      addDir(item.path);
      continue;
    }
    files[entries.length] = item.file;
    entries.push({ path: item.path, kind: 'file', size: item.file.size, mode: 0o644 });
  }
  const manifest = { block_size: DEFAULT_BLOCK_SIZE, entries };
  validateManifest(manifest);
  return { manifest, files };
}

/**
 * Events: {type: 'accepted'}, {type: 'progress', sent, total},
 * {type: 'done'}, {type: 'failed', error, byPeer}.
 * `link` provides sendControl(obj) and sendData(bytes) -> Promise|undefined.
 */
export class Sender {
  constructor({ manifest, files, link, hasher, onEvent }) {
    this.manifest = manifest;
    this.files = files;
    this.link = link;
    this.hasher = hasher;
    this.onEvent = onEvent;
    this.phase = 'hello';
    this.skip = new Map(); // file index -> Map(block -> cv) the receiver holds
    this.resends = [];
    this.resendCount = new Map();
    this.ended = false;
    // {window, sent, credited} in message cost, when the receiver offered a window.
    this.flow = null;
    this.stats = { sent: 0, total: manifest.entries.reduce((n, e) => n + (e.size ?? 0), 0) };
  }

  start() {
    this.link.sendControl(hello());
    for (const part of manifestParts(this.manifest.block_size, this.manifest.entries)) this.link.sendControl(part);
  }

  handleControl(text) {
    if (this.phase === 'done') return;
    try {
      const msg = decodeControl(text);
      switch (msg.type) {
        case 'hello':
          if (this.phase !== 'hello') break;
          if (msg.protocol !== PROTOCOL_VERSION) {
            throw new ProtocolError(`the receiver speaks protocol ${msg.protocol}, this page ${PROTOCOL_VERSION}; update one of them`);
          }
          const offered = peerWindow(msg); // ours is always offered
          if (offered > 0) this.flow = { window: offered, sent: 0, credited: 0 };
          this.phase = 'offered';
          return;
        case 'accept':
          if (this.phase !== 'offered') break;
          this.#claims(msg.have);
          this.phase = 'sending';
          this.onEvent({ type: 'accepted' });
          this.#run().catch((e) => this.#fail(e));
          return;
        case 'credit':
          if (!this.flow || this.phase === 'hello') break;
          this.#credit(msg.consumed);
          return;
        case 'resend':
          if (this.phase !== 'sending') break;
          this.#resend(msg.file, msg.block);
          return;
        case 'done':
          if (this.phase !== 'sending') break;
          if (!this.ended) throw new ProtocolError('the receiver said done before the transfer ended');
          this.phase = 'done';
          this.#wake?.();
          this.#roomy?.();
          this.onEvent({ type: 'done' });
          return;
        case 'cancel':
          this.#fail(new Error(stoppedBy('receiver', msg.reason)), true);
          return;
        default:
          break;
      }
      throw new ProtocolError(`unexpected ${msg.type} message from the receiver`);
    } catch (e) {
      this.#fail(e);
    }
  }

  handleData() {
    this.#fail(new ProtocolError('the receiver sent data'));
  }

  cancel(reason, byPeer = false) {
    this.#fail(new Error(reason), byPeer);
  }

  #claims(have) {
    if (!Array.isArray(have)) throw new ProtocolError('malformed accept');
    for (const h of have) {
      const file = this.files[h?.file];
      if (!file || !Array.isArray(h.blocks)) throw new ProtocolError('accept names an unknown file');
      const n = blockCount(file.size, this.manifest.block_size);
      const blocks = this.skip.get(h.file) ?? new Map();
      for (const b of h.blocks) {
        const cv = typeof b?.cv === 'string' && b.cv.length === 64 ? safeHex(b.cv) : null;
        if (!Number.isSafeInteger(b?.block) || b.block < 0 || b.block >= n || !cv) {
          throw new ProtocolError('accept claims a block that does not exist');
        }
        blocks.set(b.block, cv);
      }
      this.skip.set(h.file, blocks);
    }
  }

  #resend(index, block) {
    const file = this.files[index];
    if (!file || !Number.isSafeInteger(block) || block < 0 || block >= blockCount(file.size, this.manifest.block_size)) {
      throw new ProtocolError('the receiver asked for a block that does not exist');
    }
    const key = `${index}:${block}`;
    const count = (this.resendCount.get(key) ?? 0) + 1;
    this.resendCount.set(key, count);
    if (count > MAX_BAD_BLOCKS + 1) throw new ProtocolError('the receiver keeps asking for the same block');
    this.resends.push({ index, block });
    this.#wake?.();
  }

  #credit(consumed) {
    const f = this.flow;
    if (!Number.isSafeInteger(consumed) || consumed < f.credited || consumed > f.sent) {
      throw new ProtocolError(`the receiver credited ${consumed} of ${f.sent}, after ${f.credited}`);
    }
    f.credited = consumed;
    this.#roomy?.();
  }

  /** Wait until the receiver's window has room for another block (or the transfer ends). */
  async #room() {
    const f = this.flow;
    while (f && this.phase === 'sending' && f.sent - f.credited >= f.window) {
      await new Promise((resolve) => {
        this.#roomy = resolve;
      });
      this.#roomy = null;
    }
  }

  #send(bytes) {
    if (this.flow) this.flow.sent += bytes.length + MESSAGE_COST;
    return this.link.sendData(bytes);
  }

  #wake = null;
  #roomy = null;

  /** Read and hash one block: {data, cv, root}. */
  async #read(index, block) {
    const file = this.files[index];
    const bs = this.manifest.block_size;
    const start = block * bs;
    const end = Math.min(file.size, start + bs);
    const data = new Uint8Array(await file.slice(start, end).arrayBuffer());
    if (data.length !== end - start) throw new Error(`${this.manifest.entries[index].path} changed while being sent`);
    return this.hasher.hashBlock(data, start, block === 0);
  }

  async #sendBlock(index, block, { data, cv }) {
    await this.#room();
    if (this.phase !== 'sending') return;
    await this.#send(encodeBlockHeader(index, block, data.length, cv));
    for (let at = 0; at < data.length; at += DATA_PAYLOAD) {
      if (this.phase !== 'sending') return;
      const wait = this.#send(encodeData(data.subarray(at, at + DATA_PAYLOAD)));
      if (wait) await wait;
    }
    // A cancel may have come while the last piece waited for room.
    if (this.phase !== 'sending') return;
    this.stats.sent += data.length;
    this.onEvent({ type: 'progress', ...this.stats });
  }

  async #run() {
    for (const [i, file] of this.files.entries()) {
      if (!file) continue;
      const n = blockCount(file.size, this.manifest.block_size);
      const held = this.skip.get(i) ?? new Map();
      const cvs = new Array(n);
      let singleRoot = null;
      // Every block is read and hashed: held ones to check the receiver's copy
      // (and the root), the rest to send.
      const ahead = [];
      let next = 0;
      const fill = () => {
        while (ahead.length < READ_AHEAD && next < n) ahead.push({ block: next, job: this.#read(i, next++) });
      };
      fill();
      while (ahead.length) {
        const { block, job } = ahead.shift();
        const hashed = await job;
        fill();
        if (this.phase !== 'sending') return;
        cvs[block] = hashed.cv;
        if (block === 0) singleRoot = hashed.root;
        const claim = held.get(block);
        if (!claim || !equal(claim, hashed.cv)) await this.#sendBlock(i, block, hashed);
        await this.#sendResends();
      }
      const root = n === 0 ? hash(new Uint8Array(0)) : rootFromBlockCvs(cvs, singleRoot);
      // Before the last file end leaves: the receiver's `done` may overtake
      // the wait for buffer room below.
      await this.#room();
      if (this.phase !== 'sending') return;
      if (i === this.files.length - 1) this.ended = true;
      await this.#send(encodeFileEnd(i, file.size, root));
    }
    this.ended = true;
    // Resends may still come until the receiver says done.
    while (this.phase === 'sending') {
      await this.#sendResends();
      await new Promise((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = null;
    }
  }

  async #sendResends() {
    while (this.resends.length && this.phase === 'sending') {
      const { index, block } = this.resends.shift();
      await this.#sendBlock(index, block, await this.#read(index, block));
    }
  }

  #fail(error, byPeer = false) {
    if (this.phase === 'done') return;
    this.phase = 'done';
    if (!byPeer) {
      try {
        this.link.sendControl({ type: 'cancel', reason: error.message });
      } catch {
        /* the channel is gone */
      }
    }
    this.#wake?.();
    this.#roomy?.();
    this.onEvent({ type: 'failed', error, byPeer });
  }
}

function safeHex(text) {
  try {
    return /^[0-9a-f]{64}$/.test(text) ? fromHex(text) : null;
  } catch {
    return null;
  }
}

const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
