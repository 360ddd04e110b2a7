// The page: wires the DOM to the transfer modules. The ticket lives only in
// the URL fragment and in memory; nothing here sends it anywhere but into
// the key derivation.

import { Hasher } from './hasher.js';
import { PeerLost, connect } from './peer.js';
import { qrSvg } from './qr.js';
import { Receiver } from './receiver.js';
import { Sender, buildOffer } from './sender.js';
import { joinRoom } from './signal.js';
import { DownloadSink, FolderSink, canPickFolder, registerDownloads } from './sink.js';
import { deriveRoom, makeTicket, parseTicket, serverOfPage } from './ticket.js';

const $ = (id) => document.getElementById(id);
const main = $('main');

// ---------------------------------------------------------------- display

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u += 1;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

function formatDuration(s) {
  if (!Number.isFinite(s)) return '';
  if (s < 60) return `${Math.ceil(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

const PATHS = {
  direct: 'connected directly',
  srflx: 'connected directly through the routers (NAT)',
  relay: 'connected through a relay (TURN): slower than a direct path',
  unknown: 'connected',
};

/** STUN/TURN servers typed into "Network settings", added to those the server hands out. */
const NETWORK_KEY = 'ferry.network';
const networkFields = ['stun-url', 'turn-url', 'turn-user'];

function loadNetworkSettings() {
  try {
    const saved = JSON.parse(localStorage.getItem(NETWORK_KEY) ?? '{}');
    for (const id of networkFields) if (typeof saved[id] === 'string') $(id).value = saved[id];
    if (networkFields.some((id) => $(id).value)) $('network').open = true;
  } catch {
    /* no storage (private mode) or junk in it: start empty */
  }
}

/** The typed servers as RTCIceServer objects; throws with a readable message if malformed. */
function userIceServers() {
  const value = (id) => $(id).value.trim();
  const saved = Object.fromEntries(networkFields.map((id) => [id, value(id)]));
  try {
    localStorage.setItem(NETWORK_KEY, JSON.stringify(saved));
  } catch {
    /* not remembered, still used */
  }
  const servers = [];
  if (value('stun-url')) {
    if (!/^stuns?:[^\s]+$/.test(value('stun-url'))) throw new Error('The STUN server must look like stun:host:port.');
    servers.push({ urls: [value('stun-url')] });
  }
  if (value('turn-url')) {
    if (!/^turns?:[^\s]+$/.test(value('turn-url'))) throw new Error('The TURN relay must look like turn:host:port.');
    servers.push({ urls: [value('turn-url')], username: value('turn-user'), credential: $('turn-pass').value });
  }
  return servers;
}

function setState(state, text) {
  main.dataset.state = state;
  $('status').textContent = text.charAt(0).toUpperCase() + text.slice(1);
}

function showTransfer() {
  $('start').hidden = true;
  $('transfer').hidden = false;
}

function finished(ok) {
  $('cancel').hidden = true;
  $('again').hidden = false;
  Meter.current?.stop();
  if (ok) return;
  $('offer-actions').hidden = true;
  // The link no longer leads anywhere, and a rate or time left would be stale.
  $('share').hidden = true;
  if (Meter.current) $('progress-text').textContent = `Stopped at ${Meter.current.shown()}.`;
}

/** Progress with a rate over the last few seconds, so it reacts to changes. */
class Meter {
  /** The transfer's meter; `finished` stops it so no late redraw overwrites the outcome. */
  static current = null;

  constructor(total, start = 0) {
    Meter.current?.stop();
    Meter.current = this;
    this.total = total;
    this.done = start;
    this.stopped = false;
    this.samples = [[performance.now(), start]];
    this.last = 0;
    this.update(start); // show the bar at once, before the first block
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.trailing);
  }

  shown() {
    return `${formatBytes(this.done)} of ${formatBytes(this.total)}`;
  }

  update(done) {
    if (this.stopped) return;
    const now = performance.now();
    clearTimeout(this.trailing);
    if (now - this.last < 200 && done < this.total) {
      // At most five redraws a second, but the latest value always shows:
      // a transfer that slows down must not leave the bar behind.
      this.trailing = setTimeout(() => this.update(done), 200 - (now - this.last));
      return;
    }
    this.last = now;
    this.done = done;
    this.samples.push([now, done]);
    while (this.samples.length > 2 && now - this.samples[0][0] > 3000) this.samples.shift();
    const [t0, d0] = this.samples[0];
    const rate = now > t0 ? ((done - d0) * 1000) / (now - t0) : 0;
    $('progress-box').hidden = false;
    $('progress').value = this.total ? done / this.total : 1;
    const eta = rate > 0 ? formatDuration((this.total - done) / rate) : '';
    $('progress-text').textContent =
      this.shown() +
      (rate > 0 ? ` · ${formatBytes(rate)}/s` : '') +
      (eta && done < this.total ? ` · ${eta} left` : '');
  }
}

function listFiles(ul, entries) {
  ul.replaceChildren();
  const files = entries.filter((e) => e.kind === 'file');
  for (const e of files.slice(0, 500)) {
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.textContent = e.path;
    const size = document.createElement('span');
    size.className = 'size';
    size.textContent = e.size === null || e.size === undefined ? 'stream' : formatBytes(e.size);
    li.append(name, size);
    ul.append(li);
  }
  if (files.length > 500) {
    const li = document.createElement('li');
    li.textContent = `… and ${files.length - 500} more`;
    ul.append(li);
  }
}

function addResult(path, size, root) {
  const ul = $('results');
  ul.hidden = false;
  const li = document.createElement('li');
  li.dataset.path = path;
  li.dataset.blake3 = root;
  const name = document.createElement('span');
  name.textContent = `${path} (${formatBytes(size)})`;
  const hash = document.createElement('span');
  hash.className = 'hash';
  hash.title = `BLAKE3 ${root}`;
  hash.textContent = `✓ ${root.slice(0, 16)}…`;
  li.append(name, hash);
  ul.append(li);
}

function summary(entries) {
  const files = entries.filter((e) => e.kind === 'file');
  const total = files.reduce((n, e) => n + (e.size ?? 0), 0);
  return `${files.length} file${files.length === 1 ? '' : 's'}, ${formatBytes(total)}`;
}

function failure(ev, cancelled) {
  if (cancelled) return 'Cancelled. The other side was told.';
  return ev.byPeer ? ev.error.message : `Failed: ${explain(ev.error)}`;
}

function explain(error) {
  if (error?.name === 'AbortError') return 'Cancelled.';
  return error?.message ?? String(error);
}

// ------------------------------------------------------------ cancellation

/**
 * One way to stop: the Cancel button, closing the tab, or the peer leaving.
 * `leaving` is a page that closes or reloads: a receiving page then only lets
 * go, so that the sender keeps waiting for the link to be opened again (a
 * `cancel` would tell it to stop); a sending page still cancels, since its
 * files go with it.
 */
let stopCurrent = () => {};
$('cancel').addEventListener('click', () => stopCurrent('cancelled by the user'));
window.addEventListener('pagehide', () => stopCurrent('the other side closed the page', { leaving: true }));

function copyButton(button, input) {
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(input.value);
    } catch {
      input.select();
      document.execCommand('copy'); // plain http: pages have no clipboard API
    }
    button.textContent = 'Copied';
    setTimeout(() => {
      button.textContent = 'Copy';
    }, 1500);
  });
}
copyButton($('copy-link'), $('link'));
copyButton($('copy-ticket'), $('ticket'));

// ------------------------------------------------------------------ receive

async function receive(ticketText) {
  showTransfer();
  $('transfer-title').textContent = 'Receive';
  let ticket;
  try {
    ticket = parseTicket(ticketText);
  } catch (e) {
    setState('failed', `${e.message}.`); // e.g. "This ticket has a typo: copy it again."
    return finished(false);
  }
  let iceServers;
  try {
    iceServers = userIceServers();
  } catch (e) {
    setState('failed', e.message);
    return finished(false);
  }
  const abort = new AbortController();
  let link = null;
  let receiver = null;
  let signal = null;
  // Before the connection: abort the connect. After: the core tells the
  // peer, and its 'failed' event closes everything below.
  stopCurrent = (reason, { leaving = false } = {}) => {
    abort.abort();
    // Leaving: the sink is discarded, and the peer learns from the closed
    // connection that the page is gone, not that the person said stop.
    receiver?.cancel(reason, leaving);
  };
  const hasher = new Hasher();
  try {
    setState('connecting', 'Connecting to the rendezvous…');
    const { roomId, key } = await deriveRoom(ticket.secret);
    signal = await joinRoom(ticket.servers, roomId, key);
    link = await connect(signal, {
      iceServers,
      abort: abort.signal,
      onState: (s) =>
        setState(s, s === 'waiting' ? 'Waiting for the sender…' : 'Connecting to the sender…'),
    });
  } catch (e) {
    if (!abort.signal.aborted) setState('failed', explain(e));
    else setState('failed', 'Cancelled.');
    signal?.close();
    hasher.close();
    return finished(false);
  }
  const path = await link.path();
  main.dataset.path = path;
  setState('connected', `${PATHS[path]}. Waiting for the offer…`);

  let meter = null;
  receiver = new Receiver({
    sendControl: (m) => link.sendControl(m),
    hasher,
    onEvent: (ev) => {
      switch (ev.type) {
        case 'offer':
          setState(
            'offer',
            `${PATHS[path]}. The sender offers ${summary(ev.manifest.entries)}.` +
              (ev.manifest.leftOut ? ` It left out ${ev.manifest.leftOut}.` : ''),
          );
          offer(ev.manifest, receiver);
          break;
        case 'progress':
          meter ??= new Meter(ev.total);
          meter.update(ev.verified);
          break;
        case 'file':
          addResult(ev.path, ev.size, ev.root);
          break;
        case 'done':
          meter?.update(meter.total);
          setState('done', `Received and verified (BLAKE3): ${summary(receiver.manifest.entries)}.`);
          finish(true);
          break;
        case 'failed':
          setState('failed', failure(ev, abort.signal.aborted));
          finish(false);
          break;
        default:
      }
    },
  });
  const finish = async (ok) => {
    finished(ok);
    hasher.close();
    await link.drain(2000);
    link.close();
    signal.close();
  };
  link.attach({
    onControl: (text) => receiver.handleControl(text),
    onData: (bytes) => receiver.handleData(bytes),
    onLost: (why) => receiver.cancel(why, true),
  });
  receiver.start();
}

function offer(manifest, receiver) {
  $('offer').hidden = false;
  $('offer-summary').textContent = summary(manifest.entries);
  listFiles($('offer-list'), manifest.entries);
  const folder = canPickFolder();
  $('save-folder').hidden = !folder;
  $('replace-label').hidden = !folder;
  const start = (sink) => {
    $('offer-actions').hidden = true;
    setState('transferring', `${PATHS[main.dataset.path] ?? PATHS.unknown}. Receiving…`);
    receiver.accept(sink);
  };
  $('save-folder').onclick = async () => {
    let dir;
    try {
      dir = await showDirectoryPicker({ id: 'ferry', mode: 'readwrite' });
    } catch {
      return; // the person closed the picker: still their choice to make
    }
    start(new FolderSink(dir, { replace: $('replace').checked }));
  };
  $('save-download').onclick = () =>
    start(
      new DownloadSink({
        onSaved: ({ name, url }) => {
          const li = document.createElement('li');
          const a = document.createElement('a');
          a.href = url;
          a.download = name;
          a.textContent = `Save ${name} again`;
          li.append(a);
          $('results').append(li);
        },
      }),
    );
  $('save-download').focus();
}

// --------------------------------------------------------------------- send

async function send(items) {
  let offerData;
  let iceServers;
  try {
    offerData = buildOffer(items);
    iceServers = userIceServers();
  } catch (e) {
    alertStart(e.message);
    return;
  }
  showTransfer();
  $('transfer-title').textContent = 'Send';
  const { manifest, files } = offerData;
  $('offer').hidden = false;
  $('offer-actions').hidden = true;
  $('offer-summary').textContent = `Offering ${summary(manifest.entries)}.`;
  listFiles($('offer-list'), manifest.entries);

  const ticket = makeTicket([serverOfPage(location)]);
  const url = `${location.origin}${location.pathname}#${ticket.text}`;
  $('share').hidden = false;
  $('link').value = url;
  $('ticket').value = ticket.text;
  try {
    // Upper case lets the ticket use the QR code's denser alphanumeric mode.
    const qrText = `${location.origin}${location.pathname}#${ticket.text.toUpperCase()}`;
    $('qr').replaceChildren(new DOMParser().parseFromString(qrSvg(qrText, { ecc: 'M' }), 'image/svg+xml').documentElement);
  } catch {
    $('qr').hidden = true; // the link and ticket still work
  }
  if (['localhost', '127.0.0.1', '[::1]'].includes(location.hostname)) {
    $('share-warning').hidden = false;
    $('share-warning').textContent =
      'This page was opened as localhost, so the link works only on this device. Open it by its network address to send to another device.';
  }

  const abort = new AbortController();
  let link = null;
  let sender = null;
  let signal = null;
  stopCurrent = (reason) => {
    abort.abort();
    sender?.cancel(reason);
  };
  const hasher = new Hasher();
  try {
    setState('connecting', 'Connecting to the rendezvous…');
    const { roomId, key } = await deriveRoom(ticket.secret);
    signal = await joinRoom(ticket.servers, roomId, key);
  } catch (e) {
    setState('failed', explain(e));
    hasher.close();
    return finished(false);
  }
  // A receiver that fails to connect or goes away may come back with the same ticket.
  for (;;) {
    try {
      link = await connect(signal, {
        iceServers,
        abort: abort.signal,
        onState: (s) => setState(s, s === 'waiting' ? 'Waiting for the receiver to open the link…' : 'Connecting to the receiver…'),
      });
    } catch (e) {
      if (e instanceof PeerLost && !abort.signal.aborted) {
        setState('waiting', `${e.message}. Waiting for the receiver to try again…`);
        continue;
      }
      setState('failed', abort.signal.aborted ? 'Cancelled.' : explain(e));
      signal.close();
      hasher.close();
      return finished(false);
    }
    const outcome = await runSender(link, manifest, files, hasher);
    if (outcome === 'retry') {
      link.close();
      continue;
    }
    await link.drain(2000);
    link.close();
    signal.close();
    hasher.close();
    return finished(outcome === 'done');
  }

  function runSender(link, manifest, files, hasher) {
    let meter = null;
    return new Promise((resolve) => {
      sender = new Sender({
        manifest,
        files,
        link,
        hasher,
        onEvent: (ev) => {
          switch (ev.type) {
            case 'accepted':
              $('share').hidden = true;
              link.path().then((p) => {
                main.dataset.path = p;
                setState('transferring', `${PATHS[p]}. Sending…`);
              });
              break;
            case 'progress':
              meter ??= new Meter(ev.total);
              meter.update(ev.sent);
              break;
            case 'done':
              meter?.update(meter.total);
              setState('done', `Sent: the receiver verified ${summary(manifest.entries)}.`);
              resolve('done');
              break;
            case 'failed':
              if (ev.byPeer === 'lost' && !abort.signal.aborted) {
                // The receiver may come back with the same ticket and resume.
                setState('waiting', `${ev.error.message}. Waiting for the receiver to try again…`);
                resolve('retry');
                return;
              }
              setState('failed', failure(ev, abort.signal.aborted));
              resolve('failed');
              break;
            default:
          }
        },
      });
      setState('connected', 'Connected. Waiting for the receiver to accept…');
      link.attach({
        onControl: (text) => sender.handleControl(text),
        onData: (bytes) => sender.handleData(bytes),
        onLost: (why) => sender.cancel(why, 'lost'),
      });
      sender.start();
    });
  }
}

function alertStart(message) {
  let p = $('start-error');
  if (!p) {
    p = document.createElement('p');
    p.id = 'start-error';
    p.className = 'error warning';
    p.setAttribute('role', 'alert');
    $('start').prepend(p);
  }
  p.textContent = message;
}

// ------------------------------------------------------------ file picking

function itemsFromInput(input) {
  return Array.from(input.files, (file) => ({ path: file.webkitRelativePath || file.name, file }));
}

/** Walk dropped folders (FileSystemEntry API; every current browser has it). */
async function itemsFromDrop(dataTransfer) {
  const entries = Array.from(dataTransfer.items ?? [], (it) => it.webkitGetAsEntry?.()).filter(Boolean);
  if (entries.length === 0) return Array.from(dataTransfer.files, (file) => ({ path: file.name, file }));
  const items = [];
  const walk = async (entry, prefix) => {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isFile) {
      const file = await new Promise((res, rej) => entry.file(res, rej));
      items.push({ path, file });
      return;
    }
    const reader = entry.createReader();
    let any = false;
    for (;;) {
      const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
      if (batch.length === 0) break;
      any = true;
      for (const child of batch) await walk(child, path);
    }
    if (!any) items.push({ path, dir: true });
  };
  for (const entry of entries) await walk(entry, '');
  return items;
}

$('pick-files').addEventListener('click', () => $('files-input').click());
$('pick-folder').addEventListener('click', () => $('folder-input').click());
for (const id of ['files-input', 'folder-input']) {
  $(id).addEventListener('change', (ev) => {
    const items = itemsFromInput(ev.target);
    if (items.length) send(items);
  });
}
const drop = $('drop');
drop.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' || ev.key === ' ') {
    ev.preventDefault();
    $('files-input').click();
  }
});
drop.addEventListener('dragover', (ev) => {
  ev.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', async (ev) => {
  ev.preventDefault();
  drop.classList.remove('over');
  try {
    const items = await itemsFromDrop(ev.dataTransfer);
    if (items.length) send(items);
  } catch (e) {
    alertStart(`Could not read what was dropped: ${e.message}`);
  }
});
$('ticket-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = $('ticket-input').value.trim();
  // The fragment keeps the ticket off the network, and a reload resumes the view.
  history.replaceState(null, '', `#${text}`);
  receive(text);
});

// ------------------------------------------------------------------- start

registerDownloads();
loadNetworkSettings();
if (location.hash.length > 1) receive(decodeURIComponent(location.hash.slice(1)));
