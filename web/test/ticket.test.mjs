// The page's ticket parser: the same bytes as the CLI's (pinned in
// src/signal/ticket.rs), the same paste clean-up, and every typo refused at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32, makeTicket, parseTicket } from '../ticket.js';

// src/signal/ticket.rs `known_ticket_text`: secret 0..31, one server ws://x.
const KNOWN = 'ferryaiaacaqdaqcqmbyibefawdanbyhraeiscmkbkfqxdamrugy4dupb6aigo5ztulzppbgurvjh';
const TYPO = { name: 'TicketError', message: 'this ticket has a typo: copy it again' };
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

test('crc32 gives the standard check value', () => {
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

test('parses the ticket the CLI encodes, and encodes the same way', () => {
  const t = parseTicket(KNOWN);
  assert.deepEqual(Array.from(t.secret), Array.from({ length: 32 }, (_, i) => i));
  assert.deepEqual(t.servers, ['ws://x']);
  const made = makeTicket(['ws://192.0.2.2:8080', 'wss://ferry.example.org']);
  const back = parseTicket(made.text);
  assert.deepEqual(back.servers, made.servers);
  assert.deepEqual(Array.from(back.secret), Array.from(made.secret));
});

test('accepts what a paste or a link adds around the ticket', () => {
  for (const pasted of [
    `  ${KNOWN}\n`,
    `"${KNOWN}"`,
    `'${KNOWN}'\r\n`,
    `<${KNOWN}>`,
    KNOWN.toUpperCase(),
    `http://192.0.2.2:40123/#${KNOWN}`,
    `https://ferry.example.org/#${KNOWN.toUpperCase()}`,
    `${KNOWN.slice(0, 30)}\n${KNOWN.slice(30)}`,
  ]) {
    assert.deepEqual(parseTicket(pasted).servers, ['ws://x'], JSON.stringify(pasted));
  }
});

test('every changed, dropped, doubled or swapped character is a typo', () => {
  const chars = [...KNOWN];
  const refused = (text) => assert.throws(() => parseTicket(text), TYPO, text);
  for (let i = 5; i < chars.length; i++) {
    for (const c of ALPHABET) {
      if (c === chars[i]) continue;
      const t = [...chars];
      t[i] = c;
      refused(t.join(''));
    }
    refused(chars.slice(0, i).concat(chars.slice(i + 1)).join(''));
    refused(chars.slice(0, i).concat([chars[i]], chars.slice(i)).join(''));
    if (i + 1 < chars.length && chars[i] !== chars[i + 1]) {
      const t = [...chars];
      [t[i], t[i + 1]] = [t[i + 1], t[i]];
      refused(t.join(''));
    }
  }
  refused('ferrynotaticket');
  refused('ferry!!!!');
  refused(KNOWN.slice(0, 40));
});

test('a version-1 ticket (no checksum) is named as coming from an older ferry', () => {
  // Version 1: the same fields without the CRC, as ferry printed them before.
  const body = [1, ...Array(32).fill(7), 1, 6, ...new TextEncoder().encode('ws://x')];
  let bits = '';
  for (const b of body) bits += b.toString(2).padStart(8, '0');
  while (bits.length % 5) bits += '0';
  let text = 'ferry';
  for (let i = 0; i < bits.length; i += 5) text += ALPHABET[parseInt(bits.slice(i, i + 5), 2)];
  assert.throws(() => parseTicket(text), /older ferry/);
});

test('not a ticket at all', () => {
  assert.throws(() => parseTicket('hello'), /not a ferry ticket/);
  assert.throws(() => parseTicket(''), /not a ferry ticket/);
});
