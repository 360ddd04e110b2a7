#!/usr/bin/env node
// Browser throughput: CLI -> browser, browser -> CLI and browser -> browser
// (the reference: Chromium's own data channel limit on this machine), plus a
// raw RTCDataChannel between two peer connections in one page, for 1 GiB.
//
//   node scripts/bench-browser.mjs [MiB] [runs]     (defaults: 1024, 3)
//   node scripts/bench-browser.mjs --lan-blob [MiB]  (default: 2048)
//
// --lan-blob: one CLI -> Chromium receive over the machine's LAN address
// (plain http, so no service worker: the page gathers the download as a
// Blob), sampling the resident memory of the whole Chromium process tree.
//
// Needs `cargo build --release`, Chromium and `npm ci` in web/. Prints one
// Markdown table of medians (MB/s = 10^6 bytes/s, from the click or the
// receiver's start to the receiver's "done") and the peak memory of
// Chromium's renderer processes (the tabs) seen during each transfer.

import { readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';

import { browser, ferry, lanIp, loadPlaywright, randomFile, serve, tempDir, waitState } from '../web/e2e/harness.mjs';

const MiB = 1 << 20;
const lanBlob = process.argv[2] === '--lan-blob';
const args = lanBlob ? process.argv.slice(3) : process.argv.slice(2);
const size = Number(args[0] ?? (lanBlob ? 2048 : 1024)) * MiB;
const runs = Number(args[1] ?? 3);
const pw = await loadPlaywright();
const src = tempDir('bench');
const file = path.join(src, 'bench.bin');
randomFile(file, size);

/** Peak resident memory of Chromium renderer processes while `fn` runs. */
async function withRendererPeak(fn) {
  let peak = 0;
  const sample = () => {
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (!cmd.includes('chromium') || !cmd.includes('--type=renderer')) continue;
        const rss = Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)?.[1] ?? 0) * 1024;
        peak = Math.max(peak, rss);
      } catch {
        /* the process ended */
      }
    }
  };
  const timer = setInterval(sample, 200);
  try {
    const seconds = await fn();
    return { seconds, peak };
  } finally {
    clearInterval(timer);
  }
}

async function cliToBrowser() {
  const b = await browser(pw);
  const sender = ferry(['send', file]);
  try {
    const ticket = (await sender.line(/^(ferry\S+)/m, 'a ticket'))[1];
    const page = await b.context.newPage();
    // The sender's built-in server, by loopback address: a secure context, so the download streams.
    await page.goto(`${await senderHttp(sender)}/#${ticket}`);
    await page.waitForSelector('#save-download:visible', { timeout: 60_000 });
    const download = page.waitForEvent('download', { timeout: 600_000 });
    return await withRendererPeak(async () => {
      const t0 = performance.now();
      await page.click('#save-download');
      await waitState(page, 'done', 600_000);
      const seconds = (performance.now() - t0) / 1000;
      await (await download).delete();
      return seconds;
    });
  } finally {
    sender.kill();
    await b.close();
  }
}

/** The sender's built-in rendezvous as http://127.0.0.1:PORT (from the link it prints). */
async function senderHttp(sender) {
  const link = (await sender.line(/http:\/\/[\d.]+:(\d+)\//, 'a browser link', 30_000))[1];
  return `http://127.0.0.1:${link}`;
}

async function browserToCli() {
  const server = await serve();
  const b = await browser(pw);
  const out = tempDir('bench-out');
  try {
    const page = await b.context.newPage();
    await page.goto(server.lan);
    await page.setInputFiles('#files-input', [file]);
    await page.waitForFunction(() => document.getElementById('ticket').value.startsWith('ferry'));
    const ticket = await page.inputValue('#ticket');
    return await withRendererPeak(async () => {
      const t0 = performance.now();
      const receiver = ferry(['receive', ticket, '--out', out, '--yes', '-q']);
      const result = await receiver.exited;
      if (result.code !== 0) throw new Error(`receiver failed: ${result.stderr}`);
      return (performance.now() - t0) / 1000;
    });
  } finally {
    await b.close();
    server.proc.kill();
    rmSync(out, { recursive: true, force: true });
  }
}

async function browserToBrowser() {
  const server = await serve();
  const b = await browser(pw);
  try {
    const sender = await b.context.newPage();
    await sender.goto(server.local);
    await sender.setInputFiles('#files-input', [file]);
    await sender.waitForFunction(() => document.getElementById('link').value.includes('#ferry'));
    const receiver = await b.context.newPage();
    await receiver.goto(await sender.inputValue('#link'));
    await receiver.waitForSelector('#save-download:visible', { timeout: 60_000 });
    const download = receiver.waitForEvent('download', { timeout: 600_000 });
    return await withRendererPeak(async () => {
      const t0 = performance.now();
      await receiver.click('#save-download');
      await waitState(receiver, 'done', 600_000);
      const seconds = (performance.now() - t0) / 1000;
      await (await download).delete();
      return seconds;
    });
  } finally {
    await b.close();
    server.proc.kill();
  }
}

/** Two RTCPeerConnections in one page, 64 KiB messages from memory: Chromium's own ceiling. */
async function rawChannel() {
  const server = await serve();
  const b = await browser(pw);
  try {
    const page = await b.context.newPage();
    await page.goto(server.local);
    const seconds = await page.evaluate(async (total) => {
      const a = new RTCPeerConnection();
      const c = new RTCPeerConnection();
      a.onicecandidate = (e) => e.candidate && c.addIceCandidate(e.candidate);
      c.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
      const ch = a.createDataChannel('d', { ordered: true });
      const got = new Promise((res) => {
        c.ondatachannel = (e) => res(e.channel);
      });
      await a.setLocalDescription(await a.createOffer());
      await c.setRemoteDescription(a.localDescription);
      await c.setLocalDescription(await c.createAnswer());
      await a.setRemoteDescription(c.localDescription);
      const rc = await got;
      rc.binaryType = 'arraybuffer';
      await new Promise((r) => (ch.readyState === 'open' ? r() : (ch.onopen = r)));
      let received = 0;
      const done = new Promise((res) => {
        rc.onmessage = (e) => {
          received += e.data.byteLength;
          if (received >= total) res();
        };
      });
      const t0 = performance.now();
      const buf = new Uint8Array(65535);
      ch.bufferedAmountLowThreshold = 1 << 20;
      for (let sent = 0; sent < total; sent += buf.length) {
        ch.send(buf);
        if (ch.bufferedAmount > 4 << 20) await new Promise((r) => (ch.onbufferedamountlow = r));
      }
      await done;
      return (performance.now() - t0) / 1000;
    }, size);
    return { seconds, peak: 0 };
  } finally {
    await b.close();
    server.proc.kill();
  }
}

/** Resident memory (bytes) of each process of the Chromium whose profile is `dir`, by role. */
function chromiumRss(dir) {
  const procs = new Map();
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      procs.set(pid, {
        ppid: status.match(/PPid:\s+(\d+)/)[1],
        rss: Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? 0) * 1024,
        cmd: readFileSync(`/proc/${pid}/cmdline`, 'utf8'),
      });
    } catch {
      /* the process ended */
    }
  }
  // The browser process names its profile; every other Chromium process descends from it.
  const tree = new Set([...procs].filter(([, p]) => p.cmd.includes(dir) && !p.cmd.includes('--type=')).map(([pid]) => pid));
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, p] of procs) {
      if (!tree.has(pid) && tree.has(p.ppid)) {
        tree.add(pid);
        grew = true;
      }
    }
  }
  const out = { total: 0, browser: 0, renderer: 0, other: 0 };
  for (const pid of tree) {
    const p = procs.get(pid);
    out.total += p.rss;
    if (!p.cmd.includes('--type=')) out.browser += p.rss;
    else if (p.cmd.includes('--type=renderer')) out.renderer = Math.max(out.renderer, p.rss);
    else out.other += p.rss;
  }
  return out;
}

/** CLI -> Chromium over the LAN address (no service worker: a Blob download); peak memory of the browser. */
async function lanBlobReceive() {
  const b = await browser(pw);
  const sender = ferry(['send', file]);
  try {
    const [, link] = await sender.line(/(http:\/\/\S+\/#ferry\S+)/, 'a browser link');
    if (!link.startsWith(`http://${lanIp()}:`)) throw new Error(`not a LAN link: ${link}`);
    const page = await b.context.newPage();
    await page.goto(link);
    await page.waitForSelector('#save-download:visible', { timeout: 60_000 });
    if (await page.evaluate(() => window.isSecureContext)) throw new Error('the page is a secure context');
    const before = chromiumRss(b.dir);
    const peak = { total: 0, browser: 0, renderer: 0, other: 0 };
    const timer = setInterval(() => {
      const now = chromiumRss(b.dir);
      for (const k of Object.keys(peak)) peak[k] = Math.max(peak[k], now[k]);
    }, 200);
    const download = page.waitForEvent('download', { timeout: 1_800_000 });
    const t0 = performance.now();
    await page.click('#save-download');
    await waitState(page, 'done', 1_800_000);
    const seconds = (performance.now() - t0) / 1000;
    const dl = await download;
    clearInterval(timer);
    const after = chromiumRss(b.dir);
    const out = tempDir('bench-blob');
    const saved = path.join(out, 'got.bin');
    await dl.saveAs(saved);
    const ok = statSync(saved).size === size;
    rmSync(out, { recursive: true, force: true });
    const mib = (n) => `${(n / MiB).toFixed(0)} MiB`;
    console.log(`\n${size / MiB} MiB, CLI -> Chromium over ${lanIp()} (plain http, Blob download), ${new Date().toISOString().slice(0, 10)}\n`);
    console.log(`${(size / seconds / 1e6).toFixed(1)} MB/s; download complete and of the right size: ${ok}\n`);
    console.log('| Chromium RSS | before | peak during | after |');
    console.log('|---|---:|---:|---:|');
    console.log(`| browser process | ${mib(before.browser)} | ${mib(peak.browser)} | ${mib(after.browser)} |`);
    console.log(`| largest renderer (the tab) | ${mib(before.renderer)} | ${mib(peak.renderer)} | ${mib(after.renderer)} |`);
    console.log(`| other (GPU, network, ...) | ${mib(before.other)} | ${mib(peak.other)} | ${mib(after.other)} |`);
    console.log(`| whole tree | ${mib(before.total)} | ${mib(peak.total)} | ${mib(after.total)} |`);
  } finally {
    sender.kill();
    await b.close();
  }
}

if (lanBlob) {
  await lanBlobReceive();
  rmSync(src, { recursive: true, force: true });
  process.exit(0);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [
  ['Chromium raw data channel (one page, from memory)', rawChannel],
  ['Chromium -> Chromium (ferry page, through ferry serve)', browserToBrowser],
  ['CLI -> Chromium (streamed download)', cliToBrowser],
  ['Chromium -> CLI (verified, on disk)', browserToCli],
];
const results = [];
for (const [name, fn] of rows) {
  const rates = [];
  const peaks = [];
  for (let i = 0; i < runs; i++) {
    const { seconds, peak } = await fn();
    rates.push(size / seconds / 1e6);
    peaks.push(peak);
    process.stderr.write(`${name}: run ${i + 1}: ${(size / seconds / 1e6).toFixed(1)} MB/s\n`);
  }
  results.push({ name, rate: median(rates), peak: Math.max(...peaks) });
}
const reference = results[1].rate;
console.log(`\n${size / MiB} MiB, median of ${runs} runs, ${new Date().toISOString().slice(0, 10)}\n`);
console.log('| transfer | MB/s | vs Chromium -> Chromium | peak tab RSS |');
console.log('|---|---|---|---|');
for (const r of results) {
  const peak = r.peak ? `${(r.peak / MiB).toFixed(0)} MiB` : '-';
  console.log(`| ${r.name} | ${r.rate.toFixed(1)} | ${(r.rate / reference).toFixed(2)} | ${peak} |`);
}
rmSync(src, { recursive: true, force: true });
