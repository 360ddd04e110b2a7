// The rendezvous client (PROTOCOL §2): join a room on the first server that
// answers, then exchange sealed messages with the other peer. The server only
// ever sees the room id and opaque sealed strings.

import { aesGcmOpen, aesGcmSeal, base64urlDecode, base64urlEncode, randomBytes } from './crypto.js';

const CONNECT_TIMEOUT_MS = 3000;
const utf8 = new TextEncoder();

/** Why signaling failed; `code` is the server's error code when it sent one. */
export class SignalError extends Error {
  constructor(message, code = null) {
    super(message);
    this.name = 'SignalError';
    this.code = code;
  }
}

const SERVER_ERRORS = {
  room_full: 'someone else is already using this ticket (the room is full)',
  room_expired: 'this ticket has expired; ask for a new one',
  server_busy: 'the rendezvous server is too busy; try again shortly',
  shutting_down: 'the rendezvous server is shutting down',
  too_large: 'the rendezvous server refused a message as too large',
  too_many_messages: 'the rendezvous server refused further messages',
  bad_request: 'the rendezvous server refused a malformed message',
  idle_timeout: 'the rendezvous server heard nothing from this page for too long',
};

export const TAMPERED =
  'a signaling message failed authentication: the rendezvous server tampered with it, or the ticket is wrong';

export const REPLAYED =
  'a signaling message arrived a second time: the rendezvous server is replaying old messages; use another server';

/**
 * A place in a room. Its events (see `listen`) are {type: 'peer_joined'},
 * {type: 'peer_left'}, {type: 'message', message} (an opened signaling
 * message) and, last, {type: 'closed', error}.
 */
export class Signal {
  constructor(ws, roomId, key, welcome) {
    this.ws = ws;
    this.roomId = roomId;
    this.key = key;
    this.position = welcome.position;
    this.iceServers = Array.isArray(welcome.ice_servers) ? welcome.ice_servers : [];
    this.peerPresent = this.position === 'second';
    this.queue = [];
    this.listener = null;
    this.closed = false;
    // Every authentic sealed message opened so far: nonces are fresh, so one
    // seen twice was replayed by the server (docs/PROTOCOL.md).
    this.opened = new Set();
    // Frames are handled one after another: opening is asynchronous, and an
    // answer must not overtake the peer_left that came before it.
    this.chain = Promise.resolve();
    ws.onmessage = (ev) => {
      this.chain = this.chain.then(() => this.#onFrame(ev.data));
    };
    ws.onclose = () => this.#end(null);
    ws.onerror = () => this.#end(new SignalError('lost the connection to the rendezvous server'));
  }

  /** The WebRTC role: the peer that joined second makes the offer. */
  get role() {
    return this.position === 'second' ? 'offerer' : 'answerer';
  }

  get otherRole() {
    return this.position === 'second' ? 'answerer' : 'offerer';
  }

  #aad(from) {
    return utf8.encode(`ferry/1|${this.roomId}|${from}`);
  }

  async #onFrame(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return; // not ours to act on; the server speaks JSON
    }
    switch (msg?.type) {
      case 'peer_joined':
        this.peerPresent = true;
        return this.#push({ type: 'peer_joined' });
      case 'peer_left':
        this.peerPresent = false;
        return this.#push({ type: 'peer_left' });
      case 'relay': {
        const opened = await this.#open(msg.data);
        if (opened === null) return this.#end(new SignalError(TAMPERED, 'tampered'));
        if (this.opened.has(msg.data)) return this.#end(new SignalError(REPLAYED, 'replayed'));
        this.opened.add(msg.data);
        return this.#push({ type: 'message', message: opened });
      }
      case 'error':
        return this.#end(new SignalError(SERVER_ERRORS[msg.code] ?? `the rendezvous server refused: ${msg.message}`, msg.code));
      default:
        return undefined; // newer servers may say more
    }
  }

  async #open(sealed) {
    const bytes = typeof sealed === 'string' ? base64urlDecode(sealed) : null;
    if (!bytes || bytes.length < 28) return null;
    const plain = await aesGcmOpen(this.key, bytes.subarray(0, 12), bytes.subarray(12), this.#aad(this.otherRole));
    if (!plain) return null;
    try {
      const msg = JSON.parse(new TextDecoder().decode(plain));
      return msg && typeof msg === 'object' ? msg : null;
    } catch {
      return null;
    }
  }

  /** Seal and send a signaling message to the other peer. */
  async send(message) {
    if (this.closed) throw new SignalError('the rendezvous connection is closed');
    const nonce = randomBytes(12);
    const sealed = await aesGcmSeal(this.key, nonce, utf8.encode(JSON.stringify(message)), this.#aad(this.role));
    const out = new Uint8Array(12 + sealed.length);
    out.set(nonce);
    out.set(sealed, 12);
    this.ws.send(JSON.stringify({ type: 'relay', data: base64urlEncode(out) }));
  }

  #push(event) {
    if (this.listener) this.listener(event);
    else this.queue.push(event);
  }

  #end(error) {
    if (this.closed) return;
    this.closed = true;
    this.closeError = error ?? new SignalError('the rendezvous server closed the connection');
    try {
      this.ws.close();
    } catch {
      /* already closing */
    }
    this.#push({ type: 'closed', error: this.closeError });
  }

  /**
   * Deliver events to `fn` (one listener at a time), starting with any that
   * arrived while nobody listened. Returns a function that stops listening
   * and puts `leftovers` back in front of the queue for the next listener.
   */
  listen(fn) {
    this.listener = fn;
    while (this.queue.length && this.listener === fn) fn(this.queue.shift());
    return (leftovers = []) => {
      if (this.listener === fn) this.listener = null;
      this.queue.unshift(...leftovers);
    };
  }

  close() {
    this.#end(null);
  }
}

/** Open one WebSocket and wait for `welcome`, within CONNECT_TIMEOUT_MS. */
function joinOne(server, roomId) {
  return new Promise((resolve, reject) => {
    let ws;
    try {
      ws = new WebSocket(`${server.replace(/\/+$/, '')}/v1/rooms/${roomId}`);
    } catch (e) {
      reject(new SignalError(`bad rendezvous address ${server}: ${e.message}`));
      return;
    }
    const timer = setTimeout(() => {
      ws.close();
      reject(new SignalError(`no answer from ${server}`));
    }, CONNECT_TIMEOUT_MS);
    ws.onmessage = (ev) => {
      clearTimeout(timer);
      let msg = null;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        /* handled below */
      }
      if (msg?.type === 'welcome' && (msg.position === 'first' || msg.position === 'second')) {
        ws.onmessage = null;
        ws.onclose = null;
        ws.onerror = null;
        resolve({ ws, welcome: msg });
      } else if (msg?.type === 'error') {
        ws.close();
        reject(new SignalError(SERVER_ERRORS[msg.code] ?? `the rendezvous server refused: ${msg.message}`, msg.code));
      } else {
        ws.close();
        reject(new SignalError(`${server} is not a ferry rendezvous server`));
      }
    };
    ws.onerror = () => {
      clearTimeout(timer);
      reject(new SignalError(`cannot reach the rendezvous server ${server}`));
    };
    ws.onclose = ws.onerror;
  });
}

/**
 * Join the room on the ticket's servers, in order, one at a time (two URLs
 * may reach the same server, and joining twice would fill the room).
 */
export async function joinRoom(servers, roomId, key) {
  let last = new SignalError('the ticket names no rendezvous server');
  for (const server of servers) {
    try {
      const { ws, welcome } = await joinOne(server, roomId);
      return new Signal(ws, roomId, key, welcome);
    } catch (e) {
      last = e;
      // A refusal by a server that answered is final: another URL is likely the same server.
      if (e.code) throw e;
    }
  }
  throw last;
}
