// The WebRTC side of a session: one RTCPeerConnection with the `control` and
// `data` channels, negotiated over the sealed signaling exactly as the CLI
// does (PROTOCOL §2 "How ferry uses it": the peer that joined second offers,
// ICE is not trickled, the session id pairs an answer with its offer).

import { SignalError } from './signal.js';

const GATHER_LIMIT_MS = 5000;
const OPEN_LIMIT_MS = 30000;

/** The peer went away or could not be reached; the same ticket may work again. */
export class PeerLost extends Error {
  constructor(message) {
    super(message);
    this.name = 'PeerLost';
  }
}

function waitForGathering(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, GATHER_LIMIT_MS);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === 'complete') done();
    }
    pc.addEventListener('icegatheringstatechange', check);
  });
}

function channelOpen(ch) {
  if (ch.readyState === 'open') return Promise.resolve(ch);
  return new Promise((resolve, reject) => {
    ch.addEventListener('open', () => resolve(ch), { once: true });
    ch.addEventListener('close', () => reject(new PeerLost('the data channel closed while opening')), { once: true });
  });
}

function sessionId() {
  const b = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * Connect to the peer in `signal`'s room. Waits for the peer to join when we
 * are alone. `onState` gets 'waiting' and 'connecting'. Resolves to a Link.
 * `abort` (an AbortSignal) cancels.
 */
export async function connect(signal, { iceServers = [], onState = () => {}, abort } = {}) {
  const servers = [...iceServers, ...signal.iceServers];
  // Events from the rendezvous, raced against the WebRTC ones below.
  const inbox = [];
  const waiters = [];
  const stopListening = signal.listen((ev) => {
    const waiter = waiters.shift();
    if (waiter) waiter(ev);
    else inbox.push(ev);
  });
  const next = () => (inbox.length ? Promise.resolve(inbox.shift()) : new Promise((r) => waiters.push(r)));
  const nextSignal = async (accept) => {
    for (;;) {
      const ev = await next();
      if (ev.type === 'closed') throw ev.error;
      if (ev.type === 'peer_left') throw new PeerLost('the other side left before the connection was made');
      if (ev.type === 'message' && ev.message.type === 'bye') {
        throw new PeerLost(`the other side gave up: ${ev.message.reason ?? 'no reason given'}`);
      }
      const got = accept(ev);
      if (got) return got;
    }
  };
  const aborted = new Promise((_, reject) => {
    if (!abort) return;
    const fail = () => reject(new DOMException('cancelled', 'AbortError'));
    if (abort.aborted) fail();
    else abort.addEventListener('abort', fail, { once: true });
  });
  aborted.catch(() => {});
  const race = (p) => Promise.race([p, aborted]);

  try {
    return await negotiate(signal, servers, { onState, race, nextSignal });
  } finally {
    // What the Link must still see (a peer_left, a bye) goes back to the queue.
    stopListening(inbox.filter((ev) => ev.type !== 'message' || ev.message.type === 'bye'));
  }
}

async function negotiate(signal, servers, { onState, race, nextSignal }) {
  if (!signal.peerPresent) {
    onState('waiting');
    await race(nextSignal((ev) => ev.type === 'peer_joined' && ev));
  }
  onState('connecting');
  const pc = new RTCPeerConnection({ iceServers: servers });
  try {
    let control;
    let data;
    if (signal.role === 'offerer') {
      control = pc.createDataChannel('control', { ordered: true });
      data = pc.createDataChannel('data', { ordered: true });
      const session = sessionId();
      await pc.setLocalDescription(await pc.createOffer());
      await race(waitForGathering(pc));
      await signal.send({ type: 'description', sdp_type: 'offer', sdp: pc.localDescription.sdp, session });
      const answer = await race(
        nextSignal((ev) => {
          const m = ev.message;
          // An answer for an earlier offer (a peer that came and went) is ignored.
          return ev.type === 'message' && m.type === 'description' && m.sdp_type === 'answer' && m.session === session && m;
        }),
      );
      await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    } else {
      const channels = new Map();
      const gotBoth = new Promise((resolve) => {
        pc.ondatachannel = (ev) => {
          channels.set(ev.channel.label, ev.channel);
          if (channels.has('control') && channels.has('data')) resolve();
        };
      });
      const offer = await race(
        nextSignal((ev) => ev.type === 'message' && ev.message.type === 'description' && ev.message.sdp_type === 'offer' && ev.message),
      );
      if (typeof offer.sdp !== 'string') throw new SignalError('the peer sent a malformed offer');
      await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      await race(waitForGathering(pc));
      await signal.send({ type: 'description', sdp_type: 'answer', sdp: pc.localDescription.sdp, session: offer.session ?? '' });
      await race(withTimeout(Promise.race([gotBoth, failedPc(pc)]), OPEN_LIMIT_MS));
      control = channels.get('control');
      data = channels.get('data');
    }
    await race(
      withTimeout(
        Promise.race([Promise.all([channelOpen(control), channelOpen(data)]), failedPc(pc), nextSignal(() => false)]),
        OPEN_LIMIT_MS,
      ),
    );
    return new Link(pc, control, data, signal);
  } catch (e) {
    pc.close();
    throw e;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withTimeout(p, ms) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new PeerLost('could not reach the other side directly; a TURN relay may be needed on one of the networks')),
      ms,
    );
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function failedPc(pc) {
  return new Promise((_, reject) => {
    const check = () => {
      if (pc.connectionState === 'failed') {
        reject(new PeerLost('no network path to the other side (ICE failed); a TURN relay is needed between these networks'));
      }
    };
    pc.addEventListener('connectionstatechange', check);
    check();
  });
}

/**
 * An open connection: `control` carries JSON text, `data` binary frames.
 * What arrives before `attach` is kept, so nothing is lost while the page
 * sets up.
 */
export class Link {
  constructor(pc, control, data, signal) {
    this.pc = pc;
    this.control = control;
    this.data = data;
    this.signal = signal;
    this.lost = false;
    this.early = [];
    this.handlers = null;
    const deliver = (kind, value) => {
      if (this.handlers) this.handlers[kind](value);
      else this.early.push([kind, value]);
    };
    data.binaryType = 'arraybuffer';
    control.onmessage = (ev) => deliver('onControl', ev.data);
    data.onmessage = (ev) => deliver('onData', new Uint8Array(ev.data));
    const lose = (why) => {
      if (this.lost) return;
      this.lost = true;
      deliver('onLost', why);
    };
    control.onclose = () => lose('the other side closed the connection');
    data.onclose = () => lose('the other side closed the connection');
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'failed' || pc.connectionState === 'closed') lose('the connection to the other side was lost');
    });
    // The rendezvous tells us at once when the peer's process is gone.
    signal.listen((ev) => {
      // Messages already in flight get a moment to arrive (as the CLI does).
      if (ev.type === 'peer_left') setTimeout(() => lose('the other side went away'), 500);
      if (ev.type === 'message' && ev.message.type === 'bye') lose(`the other side gave up: ${ev.message.reason ?? ''}`);
    });
  }

  /** Start delivering: `onControl(text)`, `onData(Uint8Array)`, `onLost(reason)`. */
  attach(handlers) {
    this.handlers = handlers;
    for (const [kind, value] of this.early.splice(0)) handlers[kind](value);
  }

  sendControl(msg) {
    this.control.send(JSON.stringify(msg));
  }

  /** Queue a binary message; resolves once the channel's buffer has room again. */
  sendData(bytes, lowWater = 1 << 20) {
    this.data.send(bytes);
    if (this.data.bufferedAmount <= 4 * lowWater) return undefined;
    this.data.bufferedAmountLowThreshold = lowWater;
    return new Promise((resolve) => {
      const done = () => {
        this.data.removeEventListener('bufferedamountlow', done);
        this.data.removeEventListener('close', done);
        resolve();
      };
      this.data.addEventListener('bufferedamountlow', done);
      this.data.addEventListener('close', done);
    });
  }

  /**
   * Resolves once everything queued on both channels has left and the peer
   * had a moment to act on it (or closed the connection, or `limitMs` passed):
   * closing at once could lose a last `done` or `cancel`.
   */
  async drain(limitMs = 3000) {
    const start = Date.now();
    const queued = () => [this.control, this.data].some((ch) => ch.readyState === 'open' && ch.bufferedAmount > 0);
    while (queued() && Date.now() - start < limitMs) await sleep(20);
    while (!this.lost && Date.now() - start < limitMs) await sleep(50);
  }

  /** 'direct', 'srflx' (through a NAT, found by STUN) or 'relay' (through TURN). */
  async path() {
    try {
      const stats = await this.pc.getStats();
      let pair = null;
      stats.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
      });
      if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
      if (!pair) return 'unknown';
      const types = [stats.get(pair.localCandidateId)?.candidateType, stats.get(pair.remoteCandidateId)?.candidateType];
      if (types.includes('relay')) return 'relay';
      if (types.includes('srflx')) return 'srflx';
      return 'direct';
    } catch {
      return 'unknown';
    }
  }

  close() {
    try {
      this.control.close();
      this.data.close();
    } catch {
      /* already closed */
    }
    this.pc.close();
  }
}
