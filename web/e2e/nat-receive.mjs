// Used by tests/nat.rs: run inside a network namespace behind a NAT, open a
// `ferry send` link in headless Chromium (with mDNS-hidden host addresses, as
// users have), download what it offers into DIR, and print
// {"path": <connection path the page shows>, "files": [...]} as JSON.
//
//   node web/e2e/nat-receive.mjs LINK DIR
//
// Not a test file itself (node --test runs only *.test.mjs).

import { mkdirSync } from 'node:fs';
import path from 'node:path';

import { browser, loadPlaywright, screenshot, waitState } from './harness.mjs';

const [link, dir] = process.argv.slice(2);
if (!link || !dir) {
  console.error('usage: node web/e2e/nat-receive.mjs LINK DIR');
  process.exit(2);
}
const pw = await loadPlaywright();
const b = await browser(pw, { mdns: true });
try {
  const page = await b.context.newPage();
  await page.goto(link);
  await page.waitForSelector('#save-download:visible', { timeout: 60_000 });
  const download = page.waitForEvent('download', { timeout: 300_000 });
  // A failure below must be the one reported, not this wait's "browser closed".
  download.catch(() => {});
  await page.click('#save-download');
  try {
    await waitState(page, 'done');
  } catch (e) {
    await screenshot(page, 'nat-receive-failed');
    throw e;
  }
  await screenshot(page, 'nat-receive-done');
  const dl = await download;
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, dl.suggestedFilename());
  await dl.saveAs(file);
  const pathKind = await page.evaluate(() => document.getElementById('main').dataset.path ?? 'unknown');
  console.log(JSON.stringify({ path: pathKind, files: [path.basename(file)] }));
} finally {
  await b.close();
}
