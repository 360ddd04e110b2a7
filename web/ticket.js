// Tickets (PROTOCOL §1): "ferry" + base32 of [version][secret:32][n]([len][url])*
// followed by the CRC-32 of those bytes, and what both peers derive from the secret: the room id the server sees and
// the key that seals signaling, which it never sees.

import { hkdfSha256, randomBytes } from './crypto.js';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
const VERSION = 2;
const OLD_VERSION = 1; // no checksum; refused with its own message
const MAX_SERVERS = 8;
const utf8 = new TextEncoder();

export class TicketError extends Error {
  constructor(message) {
    super(message);
    this.name = 'TicketError';
  }
}

function base32Encode(bytes) {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(acc >>> bits) & 31];
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(acc << (5 - bits)) & 31];
  return out;
}

/** Returns null for a character outside the alphabet or non-zero padding bits. */
function base32Decode(text) {
  const out = [];
  let acc = 0;
  let bits = 0;
  for (const c of text) {
    const v = ALPHABET.indexOf(c);
    if (v < 0) return null;
    acc = (acc << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >>> bits) & 0xff);
    }
    acc &= (1 << bits) - 1;
  }
  // Leftover bits must be zero and fewer than a byte's worth, as an encoder leaves them.
  if (bits >= 5 || acc !== 0) return null;
  return Uint8Array.from(out);
}

/** CRC-32 as in zlib and PNG (reflected 0xEDB88320); bitwise, a ticket is short. */
export function crc32(bytes) {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let i = 0; i < 8; i++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return (crc ^ 0xffffffff) >>> 0;
}

const crcBytes = (bytes) => {
  const c = crc32(bytes);
  return [c >>> 24, (c >>> 16) & 0xff, (c >>> 8) & 0xff, c & 0xff];
};

const TYPO = 'this ticket has a typo: copy it again';

/**
 * What a paste or link adds around a ticket, as the CLI strips it: whitespace
 * anywhere, quotes and angle brackets around it, and `http://host/#` before it.
 */
function stripPaste(input) {
  let text = String(input).replace(/^[\s"'`<>]+|[\s"'`<>]+$/g, '');
  const hash = text.lastIndexOf('#');
  if (hash >= 0 && text.slice(0, hash).includes('://')) text = text.slice(hash + 1);
  return text.replace(/\s+/g, '');
}

/**
 * Parse a ticket (surrounding whitespace, quotes, a link and upper case
 * accepted). The checksum is checked first, so any typo reads as one.
 */
export function parseTicket(input) {
  const text = stripPaste(input).toLowerCase();
  if (!text.startsWith('ferry')) throw new TicketError('this is not a ferry ticket (it should start with "ferry")');
  const raw = base32Decode(text.slice(5));
  if (!raw || raw.length <= 4) throw new TicketError(TYPO);
  const body = raw.subarray(0, raw.length - 4);
  const check = crcBytes(body);
  if (check.some((b, i) => b !== raw[body.length + i])) {
    let old = false;
    try {
      old = raw[0] === OLD_VERSION && parseBody(raw) !== null;
    } catch {
      // not a well-formed version-1 ticket either
    }
    if (old) throw new TicketError('this ticket comes from an older ferry (ticket version 1): update ferry on the sending side, then send again');
    throw new TicketError(TYPO);
  }
  if (body[0] !== VERSION) throw new TicketError(`ticket version ${body[0]} is not supported; update ferry`);
  const { secret, servers } = parseBody(body);
  return { secret, servers, text: 'ferry' + text.slice(5) };
}

/** The fields after the version byte, shared by versions 1 and 2. */
function parseBody(bytes) {
  let at = 1;
  const need = (n) => {
    if (at + n > bytes.length) throw new TicketError('the ticket is cut short; copy all of it');
    const slice = bytes.subarray(at, at + n);
    at += n;
    return slice;
  };
  const secret = need(32).slice();
  const count = need(1)[0];
  if (count === 0 || count > MAX_SERVERS) throw new TicketError(`the ticket names ${count} servers; 1 to ${MAX_SERVERS} are allowed`);
  const servers = [];
  for (let i = 0; i < count; i++) {
    const len = need(1)[0];
    let url;
    try {
      url = new TextDecoder('utf-8', { fatal: true }).decode(need(len));
    } catch (e) {
      if (e instanceof TicketError) throw e;
      throw new TicketError('the ticket has a server address that is not UTF-8');
    }
    if (!url.startsWith('ws://') && !url.startsWith('wss://')) {
      throw new TicketError(`the ticket's server ${JSON.stringify(url)} is not a ws:// or wss:// URL`);
    }
    servers.push(url);
  }
  if (at !== bytes.length) throw new TicketError('the ticket has trailing bytes');
  return { secret, servers };
}

/** A fresh ticket naming `servers`. */
export function makeTicket(servers) {
  if (servers.length === 0 || servers.length > MAX_SERVERS) throw new TicketError('a ticket needs 1 to 8 servers');
  const secret = randomBytes(32);
  const parts = [VERSION, ...secret, servers.length];
  for (const s of servers) {
    const b = utf8.encode(s);
    if (b.length > 255) throw new TicketError('server URL too long for a ticket');
    parts.push(b.length, ...b);
  }
  parts.push(...crcBytes(parts));
  return { secret, servers: [...servers], text: 'ferry' + base32Encode(Uint8Array.from(parts)) };
}

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

/** The room id (32 hex chars) and the 32-byte signaling key of a ticket secret. */
export async function deriveRoom(secret) {
  const none = new Uint8Array(0);
  const room = await hkdfSha256(secret, none, utf8.encode('ferry/1 room'), 32);
  const key = await hkdfSha256(secret, none, utf8.encode('ferry/1 signaling key'), 32);
  return { roomId: hex(room.subarray(0, 16)), key };
}

/**
 * The rendezvous URL for a page served by ferry: the page's own server,
 * ws:// or wss:// to match http:// or https://.
 */
export function serverOfPage(location) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}`;
}
