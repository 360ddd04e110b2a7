// The page's sender and receiver talking to each other in memory (no
// WebRTC): the same protocol paths the browser runs, checked byte for byte.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { hash, toHex } from '../blake3.js';
import { Hasher } from '../hasher.js';
import {
  MESSAGE_COST,
  PROTOCOL_VERSION,
  WINDOW,
  decodeFrame,
  encodeBlockHeader,
  encodeData,
  encodeFileEnd,
  leftOutSentence,
  stoppedBy,
  validateManifest,
} from '../protocol.js';
import { Receiver } from '../receiver.js';
import { Sender, buildOffer } from '../sender.js';

function bytes(n, seed) {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Collects what a receiver saves, and whether it was finished or aborted. */
class MemorySink {
  constructor() {
    this.files = new Map();
    this.finished = false;
    this.aborted = null;
  }
  async begin(manifest) {
    this.manifest = manifest;
  }
  async openFile(entry) {
    const chunks = [];
    return {
      write: async (b) => {
        chunks.push(b.slice());
      },
      close: async () => {
        this.files.set(entry.path, Buffer.concat(chunks));
      },
      abort: () => {},
    };
  }
  async finish() {
    this.finished = true;
  }
  abort(reason) {
    this.aborted = reason;
  }
}

/**
 * Run a transfer. `tamper(frame bytes) -> bytes|null` may change data
 * messages on their way (null drops them); `control(msg)` sees (and may
 * change) every control message, both ways, and `data(bytes)` every data
 * message the receiver gets; the receiver offers `window` and takes
 * `hashDelay` ms longer to hash each block (as a busy worker would).
 */
function run(items, { tamper = (b) => b, control = (m) => m, data = () => {}, sink = new MemorySink(), window, hashDelay = 0 } = {}) {
  const { manifest, files } = buildOffer(items);
  const hasher = new Hasher(0);
  const events = { sender: [], receiver: [] };
  return new Promise((resolve) => {
    let ends = 0;
    const end = () => {
      if (++ends === 2) resolve({ events, sink });
    };
    const slowHasher = {
      hashBlock: (...args) => new Promise((r) => setTimeout(r, hashDelay)).then(() => hasher.hashBlock(...args)),
    };
    const receiver = new Receiver({
      window,
      sendControl: (m) => queueMicrotask(() => sender.handleControl(JSON.stringify(control(m)))),
      hasher: hashDelay ? slowHasher : hasher,
      onEvent: (ev) => {
        events.receiver.push(ev);
        if (ev.type === 'offer') receiver.accept(sink);
        if (ev.type === 'done' || ev.type === 'failed') end();
      },
    });
    const sender = new Sender({
      manifest,
      files,
      hasher,
      link: {
        sendControl: (m) => queueMicrotask(() => receiver.handleControl(JSON.stringify(control(m)))),
        sendData: (b) => {
          const out = tamper(b.slice());
          if (out) {
            data(out);
            receiver.handleData(out);
          }
          return new Promise((r) => setImmediate(r));
        },
      },
      onEvent: (ev) => {
        events.sender.push(ev);
        if (ev.type === 'done' || ev.type === 'failed') end();
      },
    });
    receiver.start();
    sender.start();
  });
}

const MiB = 1 << 20;

test('a folder with empty, exact-block, multi-block and UTF-8 files arrives intact', async () => {
  const data = {
    'photos/a.bin': bytes(2.5 * MiB, 1),
    'photos/empty': new Uint8Array(0),
    'photos/deep/exact': bytes(MiB, 2),
    'résumé ✓.txt': bytes(1000, 3),
  };
  const items = Object.entries(data).map(([path, b]) => ({ path, file: new Blob([b]) }));
  items.push({ path: 'photos/nothing-here', dir: true });
  const { events, sink } = await run(items);
  assert.equal(events.receiver.at(-1).type, 'done', String(events.receiver.at(-1).error?.stack));
  assert.equal(events.sender.at(-1).type, 'done');
  assert.ok(sink.finished);
  for (const [path, b] of Object.entries(data)) {
    assert.deepEqual(new Uint8Array(sink.files.get(path)), b, path);
    const reported = events.receiver.find((e) => e.type === 'file' && e.path === path);
    assert.equal(reported.root, toHex(hash(b)), `root of ${path} equals BLAKE3 of the data`);
  }
  const offered = events.receiver.find((e) => e.type === 'offer').manifest.entries.map((e) => e.path);
  assert.ok(offered.includes('photos/nothing-here') && offered.includes('photos/deep'));
});

test('a block corrupted once is asked for again and the file still arrives', async () => {
  const b = bytes(3 * MiB + 5, 4);
  let corrupted = 0;
  const { events, sink } = await run([{ path: 'f', file: new Blob([b]) }], {
    tamper: (m) => {
      if (m[0] === 2 && corrupted === 0) {
        corrupted += 1;
        m[100] ^= 1;
      }
      return m;
    },
  });
  assert.equal(corrupted, 1);
  assert.equal(events.receiver.at(-1).type, 'done');
  assert.deepEqual(new Uint8Array(sink.files.get('f')), b);
});

test('a block that is always corrupt fails the transfer after bounded retries, and nothing is saved', async () => {
  const b = bytes(2 * MiB, 5);
  let headers = 0;
  const { events, sink } = await run([{ path: 'f', file: new Blob([b]) }], {
    tamper: (m) => {
      if (m[0] === 1) headers += 1;
      if (m[0] === 2 && m.length > 10) m[5] ^= 0xff;
      return m;
    },
  });
  const last = events.receiver.at(-1);
  assert.equal(last.type, 'failed');
  assert.match(last.error.message, /failed verification/);
  assert.ok(headers <= 2 + 4 * 2, `bounded: ${headers} block headers`);
  assert.equal(sink.files.size, 0, 'no file was closed');
  assert.ok(sink.aborted);
  assert.equal(events.sender.at(-1).type, 'failed');
});

test('a wrong root hash in the file end leaves the file unsaved', async () => {
  const b = bytes(MiB + 1, 6);
  const { events, sink } = await run([{ path: 'f', file: new Blob([b]) }], {
    tamper: (m) => {
      if (m[0] === 3) m[20] ^= 1;
      return m;
    },
  });
  assert.equal(events.receiver.at(-1).type, 'failed');
  assert.match(events.receiver.at(-1).error.message, /does not match/);
  assert.equal(sink.files.size, 0);
});

test('more data than a block header announced is a protocol error', async () => {
  let once = false;
  const { events } = await run([{ path: 'f', file: new Blob([bytes(MiB, 7)]) }], {
    tamper: (m) => {
      if (m[0] === 1 && !once) {
        once = true;
        new DataView(m.buffer).setUint32(16, 10); // claims 10 bytes
      }
      return m;
    },
  });
  assert.equal(events.receiver.at(-1).type, 'failed');
});

/** A sink that takes `ms` per write: a disk slower than the wire. */
function slowSink(ms) {
  const sink = new MemorySink();
  const open = sink.openFile.bind(sink);
  sink.openFile = async (entry) => {
    const w = await open(entry);
    const write = w.write;
    w.write = async (b) => {
      await new Promise((r) => setTimeout(r, ms));
      return write(b);
    };
    return w;
  };
  return sink;
}

test('with flow control the sender stays within the window of a slow receiver and everything arrives', async () => {
  const b = bytes(24 * MiB + 3, 8);
  let sent = 0;
  let credited = 0;
  let most = 0;
  const credits = [];
  const { events, sink } = await run([{ path: 'f', file: new Blob([b]) }], {
    sink: slowSink(40),
    data: (m) => {
      sent += m.length + MESSAGE_COST;
      most = Math.max(most, sent - credited);
    },
    control: (m) => {
      if (m.type === 'credit') {
        assert.ok(m.consumed > credited && m.consumed <= sent, `credit ${m.consumed} within (${credited}, ${sent}]`);
        credited = m.consumed;
        credits.push(m.consumed);
      }
      return m;
    },
  });
  assert.equal(events.receiver.at(-1).type, 'done', String(events.receiver.at(-1).error?.stack));
  assert.deepEqual(new Uint8Array(sink.files.get('f')), b);
  // The sender checks before each block, so it overshoots by at most one block's messages.
  const block = 52 + MESSAGE_COST + MiB + 17 * (1 + MESSAGE_COST);
  assert.ok(most <= WINDOW + block, `at most ${most} uncredited, window ${WINDOW}`);
  assert.ok(most >= WINDOW / 2, `the slow sink let the sender fill its window (${most})`);
  assert.ok(credits.length >= Math.floor(sent / (WINDOW / 8)) - 1, `${credits.length} credits for ${sent}`);
});

test('refused and held blocks are credited, so a resend cannot stall', { timeout: 60_000 }, async () => {
  // Block 0 arrives corrupt once and is refused. With a one-byte window
  // nothing else moves until it is credited; with room for two blocks and a
  // slow hasher, the blocks after it are held until it comes again, and its
  // resend needs the window they fill.
  for (const [window, hashDelay] of [
    [1, 0],
    [2 * MiB, 20],
  ]) {
    const b = bytes(6 * MiB, 11);
    let corrupted = 0;
    const { events, sink } = await run([{ path: 'f', file: new Blob([b]) }], {
      window,
      hashDelay,
      tamper: (m) => {
        if (m[0] === 2 && corrupted === 0) {
          corrupted += 1;
          m[9] ^= 1;
        }
        return m;
      },
    });
    assert.equal(corrupted, 1);
    assert.equal(events.receiver.at(-1).type, 'done', String(events.receiver.at(-1).error?.stack));
    assert.deepEqual(new Uint8Array(sink.files.get('f')), b);
  }
});

test('a one-byte window moves a folder of many files, empty ones too (file ends are credited)', { timeout: 60_000 }, async () => {
  const data = {};
  for (let i = 0; i < 40; i++) data[`d/f${i}`] = bytes(i % 4 === 0 ? 0 : 1000 * i, 20 + i);
  data['d/big'] = bytes(2 * MiB + 1, 99);
  const items = Object.entries(data).map(([path, b]) => ({ path, file: new Blob([b]) }));
  const { events, sink } = await run(items, { window: 1 });
  assert.equal(events.receiver.at(-1).type, 'done', String(events.receiver.at(-1).error?.stack));
  for (const [path, b] of Object.entries(data)) assert.deepEqual(new Uint8Array(sink.files.get(path)), b, path);
});

test('without a window in both hellos nobody credits and the transfer still completes', async () => {
  const b = bytes(12 * MiB, 9);
  const seen = [];
  const { events, sink } = await run([{ path: 'f', file: new Blob([b]) }], {
    sink: slowSink(1),
    control: (m) => {
      seen.push(m.type);
      if (m.type === 'hello') delete m.window; // as from a peer that predates flow control
      return m;
    },
  });
  assert.equal(events.receiver.at(-1).type, 'done');
  assert.deepEqual(new Uint8Array(sink.files.get('f')), b);
  assert.ok(!seen.includes('credit'), `control messages: ${seen}`);
});

/** A page sender alone, fed the receiver's control messages by hand. */
function loneSender(size) {
  const { manifest, files } = buildOffer([{ path: 'f', file: new Blob([bytes(size, 10)]) }]);
  const events = [];
  const data = [];
  const sender = new Sender({
    manifest,
    files,
    hasher: new Hasher(0),
    link: { sendControl: () => {}, sendData: (b) => void data.push(b) },
    onEvent: (ev) => events.push(ev),
  });
  sender.start();
  const say = (m) => sender.handleControl(JSON.stringify(m));
  return { sender, events, data, say };
}

/** Resolves once `cond()` holds (polled; the test runner's timeout bounds it). */
async function until(cond) {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
}
const headers = (data) => data.filter((m) => m[0] === 1).length;

test('a sender waits at the window for credit and refuses a lying credit', async () => {
  const { events, data, say } = loneSender(4 * MiB);
  say({ type: 'hello', protocol: PROTOCOL_VERSION, window: 1 });
  say({ type: 'accept', have: [] });
  // A window of one byte: one whole block goes (header and 17 data messages),
  // then nothing until credit, however long the sender has to read ahead.
  await until(() => data.length >= 18);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(headers(data), 1);
  assert.equal(data.length, 18);
  const cost = data.reduce((n, m) => n + m.length + MESSAGE_COST, 0);
  say({ type: 'credit', consumed: cost });
  await until(() => headers(data) === 2);
  say({ type: 'credit', consumed: cost - 1 });
  assert.equal(events.at(-1).type, 'failed');
  assert.match(events.at(-1).error.message, /credited/);
});

test('a receiver that cancels while the sender waits for room stops it cleanly', async () => {
  const { events, data, say } = loneSender(4 * MiB);
  say({ type: 'hello', protocol: PROTOCOL_VERSION, window: 1 });
  say({ type: 'accept', have: [] });
  await until(() => data.length >= 18);
  say({ type: 'cancel', reason: 'out of space' });
  assert.equal(events.at(-1).type, 'failed');
  assert.equal(events.at(-1).byPeer, true);
  assert.match(events.at(-1).error.message, /the receiver stopped the transfer: out of space/);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(data.length, 18, 'nothing more was sent');
});

test('a credit beyond what was sent, or without a window, is a protocol error', async () => {
  const beyond = loneSender(MiB);
  beyond.say({ type: 'hello', protocol: PROTOCOL_VERSION, window: WINDOW });
  beyond.say({ type: 'accept', have: [] });
  beyond.say({ type: 'credit', consumed: 10 * MiB });
  assert.match(beyond.events.at(-1).error.message, /credited/);

  const none = loneSender(MiB);
  none.say({ type: 'hello', protocol: PROTOCOL_VERSION });
  none.say({ type: 'accept', have: [] });
  none.say({ type: 'credit', consumed: 0 });
  assert.match(none.events.at(-1).error.message, /unexpected credit/);

  const malformed = loneSender(MiB);
  malformed.say({ type: 'hello', protocol: PROTOCOL_VERSION, window: -1 });
  assert.match(malformed.events.at(-1).error.message, /malformed window/);
});

test('hostile manifests are refused before anything is written', () => {
  const bad = ['../x', '/etc/passwd', 'a/../../b', 'C:\\x', 'a\u0000b', 'x/./y', '', 'a//b', 'c:x', 'a\u009bb'];
  for (const path of bad) {
    assert.throws(
      () => validateManifest({ block_size: MiB, entries: [{ path, kind: 'file', size: 1, mode: 0 }] }),
      /refused|unsafe/,
      path,
    );
  }
  const entries = (paths) => paths.map((path) => ({ path, kind: 'file', size: 1, mode: 0 }));
  assert.throws(() => validateManifest({ block_size: MiB, entries: entries(['a', 'a']) }), /twice/);
  assert.throws(() => validateManifest({ block_size: MiB, entries: entries(['A', 'a']) }), /case/);
  assert.throws(() => validateManifest({ block_size: MiB, entries: entries(['a', 'a/b']) }), /inside/);
  assert.throws(() => validateManifest({ block_size: 1000, entries: entries(['a']) }), /block size/);
  assert.throws(() => validateManifest({ block_size: MiB, entries: [] }), /empty/);
  assert.throws(() => validateManifest({ block_size: MiB, entries: entries(['x'.repeat(256)]) }), /255/);
});

test('data frames round-trip and malformed ones are refused', () => {
  const cv = bytes(32, 8);
  assert.deepEqual(decodeFrame(encodeBlockHeader(7, 2 ** 40, 65536, cv)), { kind: 'block', file: 7, block: 2 ** 40, len: 65536, cv });
  assert.deepEqual(decodeFrame(encodeFileEnd(3, 123456789, cv)), { kind: 'end', file: 3, size: 123456789, root: cv });
  assert.deepEqual(decodeFrame(encodeData(Uint8Array.of(9, 8))).bytes, Uint8Array.of(9, 8));
  for (const bad of [new Uint8Array(0), Uint8Array.of(2), Uint8Array.of(4, 0), encodeBlockHeader(1, 1, 1, cv).subarray(0, 51)]) {
    assert.throws(() => decodeFrame(bad));
  }
  const huge = encodeFileEnd(0, 0, cv);
  new DataView(huge.buffer).setBigUint64(8, 2n ** 63n);
  assert.throws(() => decodeFrame(huge), /out of range/);
});

test("a peer's cancel reason is shown on one line, without naming the peer twice", () => {
  assert.equal(stoppedBy('receiver', 'the receiver was interrupted'), 'the receiver stopped the transfer: it was interrupted');
  assert.equal(stoppedBy('sender', 'cancelled by\n the user'), 'the sender stopped the transfer: cancelled by the user');
  assert.equal(stoppedBy('sender', 'the receiver was interrupted'), 'the sender stopped the transfer: the receiver was interrupted');
  assert.equal(stoppedBy('sender', 42), 'the sender stopped the transfer');
  assert.equal(stoppedBy('sender', 'x'.repeat(500)).length, 'the sender stopped the transfer: '.length + 200);
});

test('what a sender left out is said in our words, never the peer\'s', () => {
  assert.equal(leftOutSentence({ symlink: 3, fifo: 1, '\u001b[31mrm -rf': 5, socket: 0 }), '3 symbolic links, 1 FIFO and 5 other things');
  assert.equal(leftOutSentence({ symlink: 1 }), '1 symbolic link');
  for (const junk of [undefined, null, [], 'x', { symlink: -1 }, { fifo: 1.5 }]) assert.equal(leftOutSentence(junk), null);
});
