// The QR code `ferry send` draws on a terminal: run it under a pseudo-terminal
// (python3's pty module), turn the printed block characters back into pixels
// and decode them with jsQR, as a phone camera would read the screen.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';

import jsQR from 'jsqr';

import { ferryBin, randomFile, tempDir } from './harness.mjs';

/** Top and bottom halves of each character cell that the terminal inks. */
const CELLS = { ' ': [0, 0], '▀': [1, 0], '▄': [0, 1], '█': [1, 1] };
const ART = /^[ ▀▄█]+$/;

/** Decode a block-character QR code; `null` if jsQR finds none. */
function decodeArt(rows) {
  const scale = 6;
  const pad = 4;
  const cols = Math.max(...rows.map((r) => [...r].length));
  const width = (cols + 2 * pad) * scale;
  const height = (rows.length * 2 + 2 * pad) * scale;
  const rgba = new Uint8ClampedArray(width * height * 4).fill(255);
  rows.forEach((row, y) => {
    [...row].forEach((ch, x) => {
      CELLS[ch].forEach((inked, half) => {
        if (!inked) return;
        for (let dy = 0; dy < scale; dy++) {
          for (let dx = 0; dx < scale; dx++) {
            const px = (x + pad) * scale + dx;
            const py = ((y * 2 + half) + pad) * scale + dy;
            rgba.fill(0, (py * width + px) * 4, (py * width + px) * 4 + 3);
          }
        }
      });
    });
  });
  // A terminal may show the code dark-on-light or light-on-dark: try both.
  return jsQR(rgba, width, height, { inversionAttempts: 'attemptBoth' });
}

test('on a terminal, ferry send prints a QR code that decodes to exactly the printed browser link', async () => {
  const dir = tempDir('tty-qr');
  const file = path.join(dir, 'hello.txt');
  randomFile(file, 1000);
  // Python's pty module gives ferry a pseudo-terminal as its controlling
  // terminal and copies what ferry writes to it, as a terminal would show it.
  const relay = [
    'import os, pty, sys',
    'pid, fd = pty.fork()',
    'if pid == 0:',
    '    os.execv(sys.argv[1], sys.argv[1:])',
    'while True:',
    '    try:',
    '        data = os.read(fd, 65536)',
    '    except OSError:',
    '        break',
    '    if not data:',
    '        break',
    '    os.write(1, data)',
  ].join('\n');
  const child = spawn('python3', ['-c', relay, ferryBin, 'send', file], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let shown = '';
  // Decoded as a stream: a block character may be split across two reads.
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    shown += d;
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  try {
    let link = null;
    let art = [];
    for (const start = Date.now(); Date.now() - start < 30_000; ) {
      // eslint-disable-next-line no-control-regex
      const lines = shown.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replaceAll('\r', '').split('\n');
      const at = lines.findIndex((l) => /http:\/\/\S+\/#ferry\S+/.test(l));
      if (at >= 0) {
        link = lines[at].match(/http:\/\/\S+\/#ferry\S+/)[0];
        const after = lines.slice(at + 1);
        const first = after.findIndex((l) => l.length > 0 && ART.test(l));
        art = first < 0 ? [] : after.slice(first);
        const end = art.findIndex((l) => !ART.test(l));
        // Complete once the row after the last one has begun (the code is as tall as half its width).
        if (end >= 0) {
          art = art.slice(0, end);
          if (art.length >= Math.ceil([...art[0]].length / 2)) break;
        }
      }
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(link, `ferry send printed no browser link:\n${shown}`);
    assert.ok(art.length > 10, `ferry send printed no QR code under a terminal:\n${shown}`);
    const code = decodeArt(art);
    assert.ok(code, `jsQR found no QR code in:\n${art.join('\n')}`);
    assert.equal(code.data, link);
  } finally {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    await exited;
  }
});

test('without a terminal, ferry send prints the link but no QR code', async () => {
  const dir = tempDir('no-tty-qr');
  const file = path.join(dir, 'hello.txt');
  randomFile(file, 1000);
  const child = spawn(ferryBin, ['send', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  let shown = '';
  child.stdout.on('data', (d) => {
    shown += d;
  });
  child.stderr.on('data', (d) => {
    shown += d;
  });
  try {
    for (const start = Date.now(); Date.now() - start < 30_000 && !/#ferry\S+\n\n/.test(shown); ) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(shown, /http:\/\/\S+\/#ferry\S+/);
    assert.doesNotMatch(shown, /[▀▄█]/);
  } finally {
    child.kill('SIGKILL');
  }
});
