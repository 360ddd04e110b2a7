// What the browser tests share: the ferry binary, headless Chromium through
// playwright-core, test files, and checks that read real bytes from disk.

import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync, closeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Hasher as Blake3 } from '../blake3.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '../..');
export const ferryBin = process.env.FERRY_BIN ?? path.join(repo, 'target/release/ferry');
export const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const shots = process.env.FERRY_SCREENSHOTS ?? path.join(repo, 'target/screenshots');

/** Fail loudly (never skip) when something the tests need is missing. */
export async function loadPlaywright() {
  if (!existsSync(ferryBin)) throw new Error(`${ferryBin} is missing: run cargo build --release first`);
  if (!existsSync(chromiumPath)) {
    throw new Error(`Chromium not found at ${chromiumPath}: install it with "apt-get install chromium" (or set CHROMIUM)`);
  }
  try {
    return await import('playwright-core');
  } catch {
    throw new Error('playwright-core is missing: run "npm ci" in web/');
  }
}

/**
 * A headless Chromium. `mdns: true` keeps Chromium's default of hiding host
 * addresses behind random .local names, as every user's browser does.
 */
export async function browser(pw, { mdns = false } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'ferry-chromium-'));
  const args = [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ];
  if (!mdns) args.push('--disable-features=WebRtcHideLocalIpsWithMdns');
  const context = await pw.chromium.launchPersistentContext(dir, {
    executablePath: chromiumPath,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 900, height: 900 },
    args,
  });
  return {
    context,
    dir,
    async close() {
      await context.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function tempDir(name) {
  return mkdtempSync(path.join(tmpdir(), `ferry-e2e-${name}-`));
}

/** Write `size` random bytes to `file` (in 8 MiB pieces). */
export function randomFile(file, size) {
  mkdirSync(path.dirname(file), { recursive: true });
  const fd = openSync(file, 'w');
  const buf = Buffer.alloc(8 << 20);
  for (let left = size; left > 0; left -= buf.length) {
    const n = Math.min(left, buf.length);
    randomFillSync(buf, 0, n);
    writeSync(fd, buf, 0, n);
  }
  closeSync(fd);
}

/** BLAKE3 of a file, as b3sum prints it. */
export async function b3(file) {
  const h = new Blake3();
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) h.update(chunk);
  return Buffer.from(h.finalize()).toString('hex');
}

/** True when two files have the same bytes (compared by hash and size). */
export async function sameFile(a, b) {
  return (await b3(a)) === (await b3(b));
}

/** A running ferry process; `lines` collects stdout and stderr lines. */
export function ferry(args, opts = {}) {
  const child = spawn(ferryBin, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  const out = { stdout: '', stderr: '' };
  // Decoded as streams: a UTF-8 character may be split across two reads.
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    out.stdout += d;
  });
  child.stderr.on('data', (d) => {
    out.stderr += d;
  });
  const exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve({ code, sig, ...out })));
  return {
    child,
    out,
    exited,
    /** Resolves to the first stdout line that matches. */
    async line(re, what, ms = 30_000) {
      const start = Date.now();
      while (Date.now() - start < ms) {
        const m = out.stdout.match(re) ?? out.stderr.match(re);
        if (m) return m;
        if (child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`ferry did not print ${what}; stdout:\n${out.stdout}\nstderr:\n${out.stderr}`);
    },
    kill() {
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

/** `ferry serve` on a free port of every interface; resolves to its http://LAN-IP:port. */
export async function serve() {
  const port = 20000 + Math.floor(Math.random() * 20000);
  // Its STUN responder on a free port: the page then also gathers srflx candidates.
  const proc = ferry(['serve', '--listen', `0.0.0.0:${port}`, '--stun-listen', '0.0.0.0:0']);
  await proc.line(/listening on/, 'its address');
  return { proc, port, lan: `http://${lanIp()}:${port}`, local: `http://127.0.0.1:${port}` };
}

/** This machine's first non-loopback IPv4 address (Chromium gathers no loopback candidates). */
export function lanIp() {
  const r = spawnSync('ip', ['-4', '-o', 'addr', 'show', 'scope', 'global']);
  const m = String(r.stdout).match(/inet (\d+\.\d+\.\d+\.\d+)/);
  if (!m) throw new Error('the browser tests need a non-loopback IPv4 interface (Chromium gathers no loopback candidates)');
  return m[1];
}

/** Extract a ZIP with Python's zipfile (an independent reader), testing every CRC. */
export function unzip(zipFile, dest) {
  const code = 'import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nbad = z.testzip()\nassert bad is None, bad\nz.extractall(sys.argv[2])';
  const r = spawnSync('python3', ['-c', code, zipFile, dest]);
  if (r.status !== 0) throw new Error(`the ZIP did not extract: ${r.stderr}`);
}

export async function screenshot(page, name) {
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

/**
 * Sample the page's JavaScript heap every 20 ms from now on; the returned
 * function gives the largest sample. Chromium only (`performance.memory`).
 */
export async function watchHeap(page) {
  await page.evaluate(() => {
    window.peakHeap = performance.memory.usedJSHeapSize;
    setInterval(() => {
      window.peakHeap = Math.max(window.peakHeap, performance.memory.usedJSHeapSize);
    }, 20);
  });
  return () => page.evaluate(() => window.peakHeap);
}

/**
 * Wait until the page's progress bar passes `above` (0..1); on timeout, the
 * error says what the page showed, so a stalled transfer can be told apart
 * from one that never started.
 */
export async function waitProgress(page, above = 0, ms = 120_000) {
  try {
    await page.waitForFunction((min) => document.getElementById('progress').value > min, above, { timeout: ms });
  } catch (e) {
    throw new Error(`${e.message} (the page showed ${await shown(page)})`);
  }
}

/** What the page shows of its transfer, for error messages. */
async function shown(page) {
  const view = await page
    .evaluate(() => ({
      state: document.getElementById('main').dataset.state,
      status: document.getElementById('status').textContent,
      progress: document.getElementById('progress-text').textContent,
    }))
    .catch(() => null);
  return JSON.stringify(view);
}

/** Wait until the page's transfer reaches `state` (or fails, which throws with the page's message). */
export async function waitState(page, state, ms = 120_000) {
  const handle = await page
    .waitForFunction(
      (want) => {
        const s = document.getElementById('main').dataset.state;
        return s === want || s === 'failed' ? s : null;
      },
      state,
      { timeout: ms, polling: 100 },
    )
    .catch(async (e) => {
      throw new Error(`${e.message} waiting for ${state} (the page showed ${await shown(page)})`);
    });
  const got = await handle.jsonValue();
  if (got !== state) {
    const status = await page.textContent('#status');
    throw new Error(`the page failed instead of reaching "${state}": ${status}`);
  }
}

/**
 * A rendezvous in the middle: forwards HTTP and WebSocket traffic to a real
 * `ferry serve`, and passes each text frame the server sends to a client
 * through `filter(text)`, which returns the text to deliver instead
 * (possibly later: frames to one client stay in order). Hand-rolled on
 * node's http 'upgrade' event so that the tests need no WebSocket package.
 */
export async function rendezvousProxy(port, filter = (text) => text) {
  const server = http.createServer((req, res) => {
    const up = http.request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  const sockets = new Set();
  server.on('upgrade', (req, client, head) => {
    const up = net.connect(port, '127.0.0.1');
    sockets.add(client).add(up);
    // No permessage-deflate: the frames must stay readable (and editable) here.
    let request = `${req.method} ${req.url} HTTP/1.1\r\n`;
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      if (req.rawHeaders[i].toLowerCase() === 'sec-websocket-extensions') continue;
      request += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
    }
    up.write(`${request}\r\n`);
    up.write(head);
    client.pipe(up);
    let buf = Buffer.alloc(0);
    let headerDone = false;
    let chain = Promise.resolve();
    up.on('data', (data) => {
      buf = Buffer.concat([buf, data]);
      if (!headerDone) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        client.write(buf.subarray(0, end + 4));
        buf = buf.subarray(end + 4);
        headerDone = true;
      }
      for (;;) {
        const frame = nextFrame(buf);
        if (!frame) return;
        buf = buf.subarray(frame.length);
        const { raw, text } = frame;
        chain = chain.then(async () => {
          const out = text === null ? raw : textFrame(await filter(text));
          if (!client.destroyed) client.write(out);
        });
      }
    });
    const close = () => {
      client.destroy();
      up.destroy();
    };
    up.on('close', close).on('error', close);
    client.on('close', close).on('error', close);
  });
  await new Promise((resolve) => server.listen(0, '0.0.0.0', resolve));
  const proxyPort = server.address().port;
  return {
    port: proxyPort,
    lan: `http://${lanIp()}:${proxyPort}`,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/** One whole frame from the server (unmasked) at the start of `buf`, or null if more bytes are needed. */
function nextFrame(buf) {
  if (buf.length < 2) return null;
  let len = buf[1] & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    off = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    len = Number(buf.readBigUInt64BE(2));
    off = 10;
  }
  if (buf[1] & 0x80) off += 4;
  if (buf.length < off + len) return null;
  const raw = Buffer.from(buf.subarray(0, off + len));
  // Only whole, unmasked text frames (FIN and opcode 1) go through the filter.
  const text = buf[0] === 0x81 && !(buf[1] & 0x80) ? raw.subarray(off).toString('utf8') : null;
  return { raw, text, length: off + len };
}

function textFrame(text) {
  const payload = Buffer.from(text, 'utf8');
  let header;
  if (payload.length < 126) header = Buffer.from([0x81, payload.length]);
  else if (payload.length < 65536) {
    header = Buffer.from([0x81, 126, 0, 0]);
    header.writeUInt16BE(payload.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x81;
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  return Buffer.concat([header, payload]);
}
