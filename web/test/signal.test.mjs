// The page's signaling client against a rendezvous that relays, tampers
// and replays, with two Signal objects joined in memory (the server's side
// of the WebSocket is a few lines here; the real server is tested in Rust).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Signal, REPLAYED, TAMPERED } from '../signal.js';
import { deriveRoom } from '../ticket.js';

/** A socket the test plays the server on: `frames` holds what the page sent. */
function socket() {
  return { frames: [], onmessage: null, send(f) { this.frames.push(f); }, close() { this.closed = true; } };
}

async function room() {
  const { roomId, key } = await deriveRoom(new Uint8Array(32).fill(7));
  const offererWs = socket();
  const answererWs = socket();
  const offerer = new Signal(offererWs, roomId, key, { position: 'second' });
  const answerer = new Signal(answererWs, roomId, key, { position: 'first' });
  const events = [];
  answerer.listen((e) => events.push(e));
  const deliver = async (data) => {
    answererWs.onmessage({ data: JSON.stringify({ type: 'relay', data }) });
    await answerer.chain;
  };
  await offerer.send({ type: 'description', sdp_type: 'offer', sdp: 'v=0', session: 'ab' });
  const sealed = JSON.parse(offererWs.frames[0]).data;
  return { deliver, events, sealed, answererWs };
}

test('a relayed message opens once; the same message again is a replay and ends signaling', async () => {
  const { deliver, events, sealed, answererWs } = await room();
  await deliver(sealed);
  assert.equal(events[0].type, 'message');
  assert.equal(events[0].message.sdp_type, 'offer');
  await deliver(sealed);
  assert.equal(events[1].type, 'closed');
  assert.equal(events[1].error.message, REPLAYED);
  assert.equal(events[1].error.code, 'replayed');
  assert.ok(answererWs.closed);
});

test('an altered message is tampering and ends signaling', async () => {
  const { deliver, events, sealed } = await room();
  const flipped = (sealed[20] === 'A' ? 'B' : 'A');
  await deliver(sealed.slice(0, 20) + flipped + sealed.slice(21));
  assert.equal(events[0].type, 'closed');
  assert.equal(events[0].error.message, TAMPERED);
});
