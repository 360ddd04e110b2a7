// The receiving side of a transfer (PROTOCOL §3-§6), independent of the
// page: it reads control and data messages, verifies every block against
// its BLAKE3 chaining value before anything is written, checks each file's
// root, and hands bytes in file order to a sink (sink.js). When the sender
// obeys flow control, it credits what it has consumed, so the page holds at
// most a window of data however slowly it hashes and writes.

import { hash, rootFromBlockCvs, toHex } from './blake3.js';
import {
  BLOCK_HEADER_LEN,
  MAX_BAD_BLOCKS,
  MESSAGE_COST,
  PROTOCOL_VERSION,
  WINDOW,
  ProtocolError,
  blockCount,
  decodeControl,
  decodeFrame,
  hello,
  leftOutSentence,
  peerWindow,
  stoppedBy,
  validateManifest,
} from './protocol.js';

/** Verified blocks waiting for an earlier one (a re-sent block) before they can be written. */
const MAX_PENDING_BYTES = 256 << 20;

const sameBytes = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Events (`onEvent`): {type: 'offer', manifest}, {type: 'progress', received,
 * verified, total}, {type: 'file', path, size, root}, {type: 'done'},
 * {type: 'failed', error, byPeer}.
 */
export class Receiver {
  /** `window`: the flow-control window offered (tests make it small). */
  constructor({ sendControl, hasher, onEvent, window = WINDOW }) {
    this.sendControl = sendControl;
    this.hasher = hasher;
    this.onEvent = onEvent;
    this.phase = 'hello';
    this.parts = null;
    this.manifest = null;
    this.files = [];
    this.current = null;
    this.bad = new Map();
    this.chain = Promise.resolve();
    this.pending = new Map();
    this.pendingBytes = 0;
    this.cursor = 0; // index into this.order: the file being written
    this.order = [];
    this.stats = { received: 0, verified: 0, total: 0 };
    // {consumed, told}: message cost consumed, and last credited, when both hellos gave a window.
    this.flow = null;
    this.window = window;
  }

  start() {
    this.sendControl(hello(this.window));
  }

  handleControl(text) {
    if (this.phase === 'done') return;
    try {
      const msg = decodeControl(text);
      if (msg.type === 'cancel') {
        return this.#fail(new Error(stoppedBy('sender', msg.reason)), true);
      }
      if (msg.type === 'hello' && this.phase === 'hello') {
        if (msg.protocol !== PROTOCOL_VERSION) {
          throw new ProtocolError(`the sender speaks protocol ${msg.protocol}, this page ${PROTOCOL_VERSION}; update one of them`);
        }
        // Credit flows only when both hellos gave a window (PROTOCOL §3).
        if (peerWindow(msg) > 0 && this.window > 0) this.flow = { consumed: 0, told: 0 };
        this.phase = 'manifest';
        return undefined;
      }
      if (msg.type === 'manifest' && this.phase === 'manifest') return this.#manifestPart(msg);
      throw new ProtocolError(`unexpected ${msg.type} message while waiting for the ${this.phase}`);
    } catch (e) {
      return this.#fail(e);
    }
  }

  #manifestPart(msg) {
    if (!Array.isArray(msg.entries)) throw new ProtocolError('malformed manifest');
    if (!this.parts) this.parts = { block_size: msg.block_size, entries: [] };
    if (this.parts.block_size !== msg.block_size) throw new ProtocolError('manifest parts disagree on the block size');
    for (const e of msg.entries) this.parts.entries.push(e);
    if (this.parts.entries.length > 1_000_000) throw new ProtocolError('the offer lists too many entries');
    if (msg.more === true) return;
    const manifest = this.parts;
    this.parts = null;
    validateManifest(manifest);
    manifest.leftOut = leftOutSentence(msg.left_out);
    this.manifest = manifest;
    this.stats.total = manifest.entries.reduce((n, e) => n + (e.size ?? 0), 0);
    this.phase = 'decision';
    this.onEvent({ type: 'offer', manifest });
  }

  /** The person said yes: start receiving into `sink`. */
  async accept(sink) {
    if (this.phase !== 'decision') return;
    this.sink = sink;
    this.phase = 'receiving';
    this.files = this.manifest.entries.map((e, index) =>
      e.kind === 'file' ? { index, entry: e, cvs: [], singleRoot: null, end: null, nextBlock: 0, writer: null } : null,
    );
    this.order = this.files.filter(Boolean);
    try {
      await sink.begin(this.manifest);
    } catch (e) {
      return this.#fail(e);
    }
    this.sendControl({ type: 'accept', have: [] });
    this.chain = this.chain.then(() => this.#pump());
    this.chain.catch((e) => this.#fail(e));
    return undefined;
  }

  decline(reason = 'declined by the receiver') {
    this.#fail(new Error(reason));
  }

  /** Stop from outside (the person cancelled, the connection broke). */
  cancel(reason, byPeer = false) {
    this.#fail(new Error(reason), byPeer);
  }

  handleData(bytes) {
    if (this.phase !== 'receiving') {
      if (this.phase !== 'done') this.#fail(new ProtocolError('data before the transfer was accepted'));
      return;
    }
    try {
      const frame = decodeFrame(bytes);
      if (frame.kind === 'block') this.#startBlock(frame);
      else if (frame.kind === 'data') this.#blockData(frame.bytes, bytes.length + MESSAGE_COST);
      else this.#fileEnd(frame, bytes.length + MESSAGE_COST);
    } catch (e) {
      this.#fail(e);
    }
  }

  #file(index) {
    const f = this.files[index];
    if (!f) throw new ProtocolError(`data for unknown file ${index}`);
    return f;
  }

  #startBlock({ file: index, block, len, cv }) {
    if (this.current) throw new ProtocolError('a block started before the previous one ended');
    const f = this.#file(index);
    const bs = this.manifest.block_size;
    const offset = block * bs;
    if (!Number.isSafeInteger(offset)) throw new ProtocolError('block offset out of range');
    const size = f.end ? f.end.size : f.entry.size;
    let expected;
    if (size !== null && size !== undefined) {
      if (offset >= size) throw new ProtocolError(`block ${block} is past the end of ${f.entry.path}`);
      expected = Math.min(size - offset, bs);
    } else {
      expected = len >= 1 && len <= bs ? len : 0;
    }
    if (len !== expected || len === 0) throw new ProtocolError(`block ${block} of ${f.entry.path} has the wrong length ${len}`);
    if (block < f.nextBlock || this.pending.has(`${index}:${block}`)) {
      throw new ProtocolError(`block ${block} of ${f.entry.path} sent again though it was verified`);
    }
    // `cost`: of this block's messages, credited once the block is consumed.
    this.current = { f, block, offset, len, cv, buf: new Uint8Array(len), got: 0, cost: BLOCK_HEADER_LEN + MESSAGE_COST };
  }

  #blockData(bytes, cost) {
    const c = this.current;
    if (!c) throw new ProtocolError('block data without a block header');
    if (bytes.length > c.len - c.got) throw new ProtocolError('more block data than the header announced');
    c.buf.set(bytes, c.got);
    c.got += bytes.length;
    c.cost += cost;
    this.stats.received += bytes.length;
    if (c.got < c.len) return;
    this.current = null;
    // Hashing starts now (in a worker); results are handled in arrival order.
    const hashed = this.hasher.hashBlock(c.buf, c.offset, c.block === 0);
    c.buf = null;
    this.#then(async () => this.#verified(c, await hashed));
  }

  #fileEnd({ file: index, size, root }, cost) {
    if (this.current) throw new ProtocolError('file end inside a block');
    const f = this.#file(index);
    if (f.end) throw new ProtocolError(`second file end for ${f.entry.path}`);
    if (f.entry.size !== null && f.entry.size !== undefined && f.entry.size !== size) {
      throw new ProtocolError(`${f.entry.path} ended at ${size} bytes, not the size offered`);
    }
    f.end = { size, root };
    this.#then(async () => {
      await this.#pump();
      this.#consumed(cost);
    });
  }

  #then(step) {
    this.chain = this.chain.then(() => (this.phase === 'receiving' ? step() : undefined));
    this.chain.catch((e) => this.#fail(e));
  }

  async #verified(c, { data, cv, root }) {
    const { f, block } = c;
    if (!sameBytes(cv, c.cv)) {
      const key = `${f.index}:${block}`;
      const count = (this.bad.get(key) ?? 0) + 1;
      this.bad.set(key, count);
      if (count > MAX_BAD_BLOCKS) {
        throw new ProtocolError(`block ${block} of ${f.entry.path} failed verification ${count} times; the sender's data is corrupt`);
      }
      this.sendControl({ type: 'resend', file: f.index, block });
      this.#consumed(c.cost);
      return;
    }
    f.cvs[block] = cv;
    if (block === 0) f.singleRoot = root;
    this.pending.set(`${f.index}:${block}`, data);
    this.pendingBytes += data.length;
    if (this.pendingBytes > MAX_PENDING_BYTES) throw new ProtocolError('the sender sent too much out of order');
    this.stats.verified += data.length;
    await this.#pump();
    // Written, or held until a re-sent block lets it be (bounded above).
    this.#consumed(c.cost);
  }

  /** Flow control: credit each eighth of the window as it is consumed (PROTOCOL §3). */
  #consumed(cost) {
    if (!this.flow || this.phase !== 'receiving') return;
    this.flow.consumed += cost;
    if (this.flow.consumed - this.flow.told < this.window / 8) return;
    this.flow.told = this.flow.consumed;
    this.sendControl({ type: 'credit', consumed: this.flow.consumed });
  }

  /** Write what can be written in order, and finish files that are complete. */
  async #pump() {
    while (this.cursor < this.order.length && this.phase === 'receiving') {
      const f = this.order[this.cursor];
      const key = `${f.index}:${f.nextBlock}`;
      const data = this.pending.get(key);
      if (data) {
        this.pending.delete(key);
        this.pendingBytes -= data.length;
        f.writer ??= await this.sink.openFile(f.entry);
        await f.writer.write(data);
        f.nextBlock += 1;
        // The transfer may have failed while the write was pending.
        if (this.phase !== 'receiving') return;
        this.onEvent({ type: 'progress', ...this.stats });
        continue;
      }
      if (!f.end || f.nextBlock < blockCount(f.end.size, this.manifest.block_size)) return;
      await this.#finishFile(f);
      this.cursor += 1;
    }
    if (this.cursor === this.order.length && this.phase === 'receiving') {
      await this.sink.finish();
      this.phase = 'done';
      this.sendControl({ type: 'done' });
      this.onEvent({ type: 'done' });
    }
  }

  async #finishFile(f) {
    const n = f.cvs.length;
    const root = n === 0 ? hash(new Uint8Array(0)) : rootFromBlockCvs(f.cvs, f.singleRoot);
    f.writer ??= await this.sink.openFile(f.entry);
    if (!sameBytes(root, f.end.root)) {
      throw new ProtocolError(`${f.entry.path} does not match the hash the sender announced; it was not saved`);
    }
    await f.writer.close(f.end.size);
    f.writer = null;
    this.onEvent({ type: 'file', path: f.entry.path, size: f.end.size, root: toHex(root) });
  }

  #fail(error, byPeer = false) {
    if (this.phase === 'done') return;
    this.phase = 'done';
    if (!byPeer) {
      try {
        this.sendControl({ type: 'cancel', reason: error.message });
      } catch {
        /* the channel is gone */
      }
    }
    for (const f of this.order) {
      if (f.writer) f.writer.abort(error.message);
    }
    this.sink?.abort(error.message);
    this.onEvent({ type: 'failed', error, byPeer });
  }
}

