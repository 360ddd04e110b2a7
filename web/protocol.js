// The ferry transfer protocol (docs/PROTOCOL.md §3-§5) without any I/O:
// constants, path and manifest rules, and the binary frame codec. Shared by
// the page's sender and receiver, and by the Node tests.

export const PROTOCOL_VERSION = 1;
export const SOFTWARE = 'ferry-web/1';
/** Largest message on a data channel (the SCTP limit peers advertise). */
export const MAX_MESSAGE = 65535;
/** Payload bytes of one block-data message. */
export const DATA_PAYLOAD = MAX_MESSAGE - 1;
export const DEFAULT_BLOCK_SIZE = 1 << 20;
export const MIN_BLOCK_SIZE = 16 * 1024;
export const MAX_BLOCK_SIZE = 16 << 20;
export const MAX_ENTRIES = 1_000_000;
/** Target size of one manifest part (JSON bytes). */
export const MANIFEST_PART = 48 * 1024;
/** A block failing verification more often than this fails the transfer. */
export const MAX_BAD_BLOCKS = 3;
/** Flow control (PROTOCOL §3): a data message costs its length plus this. */
export const MESSAGE_COST = 64;
/**
 * The window this page offers as a receiver and promises to obey as a sender,
 * in message cost: what a sender may have in flight before it hears a credit.
 * A page holds every message it is handed, so this bounds its memory; eight
 * 1 MiB blocks keep the hashing worker and the disk busy.
 */
export const WINDOW = 8 << 20;

const KIND_BLOCK = 1;
const KIND_DATA = 2;
const KIND_FILE_END = 3;
export const BLOCK_HEADER_LEN = 52;
export const FILE_END_LEN = 48;

/** The peer broke the protocol (or lied); the message is for people. */
export class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ProtocolError';
  }
}

const utf8 = new TextEncoder();

/**
 * Why `path` must not be written, or null when it is safe: the same rules as
 * the CLI (PROTOCOL §5.1), so a page never writes what ferry would refuse.
 */
export function unsafePathReason(path) {
  if (typeof path !== 'string' || path.length === 0) return 'the path is empty';
  if (utf8.encode(path).length > 4096) return 'the path is longer than 4096 bytes';
  if (path.startsWith('/')) return 'it is an absolute path';
  for (const part of path.split('/')) {
    if (part === '') return 'it has an empty part (two slashes in a row)';
    if (part === '.' || part === '..') return "it has a '.' or '..' part, which could reach outside the folder";
    if (utf8.encode(part).length > 255) return 'a name in it is longer than 255 bytes';
    if (part.includes('\\')) return 'it has a backslash, which Windows reads as a folder separator';
    // C0 and C1 controls: terminals may act on them when a name is printed.
    if (/[\u0000-\u001f\u007f-\u009f]/.test(part)) return 'its name has a control character';
    if (/^[A-Za-z]:/.test(part)) return 'it starts with a letter and a colon, which Windows reads as a drive';
  }
  return null;
}

/** Throws ProtocolError unless `manifest` ({block_size, entries}) is safe to receive. */
export function validateManifest(manifest) {
  const { block_size: bs, entries } = manifest;
  if (!Number.isInteger(bs) || bs < MIN_BLOCK_SIZE || bs > MAX_BLOCK_SIZE || (bs & (bs - 1)) !== 0) {
    throw new ProtocolError(`the offer's block size ${bs} is not a power of two between 16 KiB and 16 MiB`);
  }
  if (!Array.isArray(entries) || entries.length === 0) throw new ProtocolError('the offer is empty');
  if (entries.length > MAX_ENTRIES) {
    throw new ProtocolError(`the offer lists ${entries.length} entries; at most ${MAX_ENTRIES} are accepted`);
  }
  const kinds = new Map();
  const folded = new Map();
  for (const e of entries) {
    if (e === null || typeof e !== 'object') throw new ProtocolError('malformed manifest entry');
    const reason = unsafePathReason(e.path);
    if (reason) throw new ProtocolError(`refused in the offer: unsafe path ${JSON.stringify(e.path)}: ${reason}`);
    if (e.kind !== 'file' && e.kind !== 'dir') throw new ProtocolError(`unknown entry kind ${JSON.stringify(e.kind)}`);
    if (e.size !== null && e.size !== undefined && !(Number.isSafeInteger(e.size) && e.size >= 0)) {
      throw new ProtocolError(`bad size for ${JSON.stringify(e.path)}`);
    }
    if (e.kind === 'dir' && (e.size ?? 0) !== 0) throw new ProtocolError(`the offer's folder ${JSON.stringify(e.path)} has a size`);
    if (kinds.has(e.path)) throw new ProtocolError(`the offer lists ${JSON.stringify(e.path)} twice`);
    kinds.set(e.path, e.kind);
    const key = e.path.toLowerCase();
    if (folded.has(key)) {
      throw new ProtocolError(`the offer lists ${JSON.stringify(folded.get(key))} and ${JSON.stringify(e.path)}, which are the same name on case-insensitive file systems`);
    }
    folded.set(key, e.path);
  }
  for (const e of entries) {
    let end = e.path.indexOf('/');
    while (end !== -1) {
      const parent = e.path.slice(0, end);
      if (kinds.get(parent) === 'file') {
        throw new ProtocolError(`the offer puts ${JSON.stringify(e.path)} inside ${JSON.stringify(parent)}, which it also lists as a file`);
      }
      end = e.path.indexOf('/', end + 1);
    }
  }
}

/** Kinds a sender may say it left out (`left_out` of the last manifest part). */
const LEFT_OUT_KINDS = [
  ['symlink', 'symbolic link', 'symbolic links'],
  ['broken symlink', 'broken symbolic link', 'broken symbolic links'],
  ['folder already sent', 'link to a folder already sent', 'links to folders already sent'],
  ['fifo', 'FIFO', 'FIFOs'],
  ['socket', 'socket', 'sockets'],
  ['device', 'device file', 'device files'],
];

/**
 * "2 symbolic links and 1 FIFO", or null: in our words, never the peer's
 * (unknown kinds are summed as "other things"); malformed counts are ignored.
 */
export function leftOutSentence(leftOut) {
  if (leftOut === null || typeof leftOut !== 'object' || Array.isArray(leftOut)) return null;
  const count = (k) => (Number.isSafeInteger(leftOut[k]) && leftOut[k] > 0 ? leftOut[k] : 0);
  const parts = [];
  for (const [kind, one, many] of LEFT_OUT_KINDS) {
    const n = count(kind);
    if (n) parts.push(`${n} ${n === 1 ? one : many}`);
  }
  const known = new Set(LEFT_OUT_KINDS.map(([k]) => k));
  const other = Object.keys(leftOut).filter((k) => !known.has(k)).reduce((n, k) => n + count(k), 0);
  if (other) parts.push(`${other} other thing${other === 1 ? '' : 's'}`);
  if (parts.length === 0) return null;
  return parts.length === 1 ? parts[0] : `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}`;
}

/** The manifest as control messages of at most about MANIFEST_PART bytes each. */
export function manifestParts(blockSize, entries) {
  const parts = [];
  let current = [];
  let size = 0;
  for (const e of entries) {
    const len = utf8.encode(JSON.stringify(e)).length + 1;
    if (size + len > MANIFEST_PART && current.length > 0) {
      parts.push({ type: 'manifest', block_size: blockSize, entries: current, more: true });
      current = [];
      size = 0;
    }
    size += len;
    current.push(e);
  }
  parts.push({ type: 'manifest', block_size: blockSize, entries: current, more: false });
  return parts;
}

/** Blocks of a file of `size` bytes. */
export function blockCount(size, blockSize) {
  return Math.ceil(size / blockSize);
}

export function encodeBlockHeader(file, block, len, cv) {
  const out = new Uint8Array(BLOCK_HEADER_LEN);
  const v = new DataView(out.buffer);
  out[0] = KIND_BLOCK;
  v.setUint32(4, file);
  v.setBigUint64(8, BigInt(block));
  v.setUint32(16, len);
  out.set(cv, 20);
  return out;
}

export function encodeFileEnd(file, size, root) {
  const out = new Uint8Array(FILE_END_LEN);
  const v = new DataView(out.buffer);
  out[0] = KIND_FILE_END;
  v.setUint32(4, file);
  v.setBigUint64(8, BigInt(size));
  out.set(root, 16);
  return out;
}

/** A block-data message whose payload is `payload` (at most DATA_PAYLOAD bytes). */
export function encodeData(payload) {
  const out = new Uint8Array(payload.length + 1);
  out[0] = KIND_DATA;
  out.set(payload, 1);
  return out;
}

/**
 * Decode one binary message. Returns {kind: 'block', file, block, len, cv},
 * {kind: 'data', bytes} or {kind: 'end', file, size, root}; throws
 * ProtocolError on anything else. Numbers past 2^53 are refused (no file is
 * that large, and a hostile one must not wrap).
 */
export function decodeFrame(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw new ProtocolError('empty data message');
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const reservedZero = () => bytes[1] === 0 && bytes[2] === 0 && bytes[3] === 0;
  const u64 = (at) => {
    const n = v.getBigUint64(at);
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError('number out of range in a data message');
    return Number(n);
  };
  switch (bytes[0]) {
    case KIND_BLOCK:
      if (bytes.length !== BLOCK_HEADER_LEN || !reservedZero()) throw new ProtocolError('malformed block header');
      return { kind: 'block', file: v.getUint32(4), block: u64(8), len: v.getUint32(16), cv: bytes.slice(20, 52) };
    case KIND_DATA:
      if (bytes.length < 2) throw new ProtocolError('empty block data message');
      return { kind: 'data', bytes: bytes.subarray(1) };
    case KIND_FILE_END:
      if (bytes.length !== FILE_END_LEN || !reservedZero()) throw new ProtocolError('malformed file end');
      return { kind: 'end', file: v.getUint32(4), size: u64(8), root: bytes.slice(16, 48) };
    default:
      throw new ProtocolError(`unknown data message kind ${bytes[0]}`);
  }
}

/** Parse a control message (JSON text); throws ProtocolError when it is not one. */
export function decodeControl(text) {
  if (typeof text !== 'string') throw new ProtocolError('binary message on the control channel');
  if (text.length > MAX_MESSAGE) throw new ProtocolError('control message too large');
  let msg;
  try {
    msg = JSON.parse(text);
  } catch {
    throw new ProtocolError('malformed control message');
  }
  if (msg === null || typeof msg !== 'object' || typeof msg.type !== 'string') {
    throw new ProtocolError('malformed control message');
  }
  return msg;
}

export function hello(window = WINDOW) {
  return { type: 'hello', protocol: PROTOCOL_VERSION, software: SOFTWARE, window };
}

/** The `window` a peer's hello gives (0: none); ProtocolError unless it is a u32. */
export function peerWindow(msg) {
  const w = msg.window ?? 0;
  if (!Number.isInteger(w) || w < 0 || w > 0xffff_ffff) throw new ProtocolError('malformed window in hello');
  return w;
}

/** The error text for a peer's `cancel`: its reason is for humans, shown cut short and on one line. */
export function stoppedBy(who, reason) {
  let why = typeof reason === 'string' ? reason.replace(/\s+/g, ' ').trim().slice(0, 200) : '';
  // The CLI says "the receiver was interrupted": not "the receiver stopped the transfer: the receiver …".
  if (why.startsWith(`the ${who} `)) why = `it ${why.slice(who.length + 5)}`;
  return why ? `the ${who} stopped the transfer: ${why}` : `the ${who} stopped the transfer`;
}
