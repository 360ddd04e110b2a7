// Where received files go. The receiver hands a sink verified bytes in file
// order; a sink never shows a file as saved before its root hash matched.
//
//   FolderSink    File System Access API (Chromium desktop, secure pages):
//                 files are written into a folder the person picks; each
//                 file's writes land in a swap file that becomes the file
//                 only on close, so an aborted transfer leaves nothing.
//   DownloadSink  one download: the file itself, or a streamed ZIP of a
//                 folder or several files. Streamed through the service
//                 worker (sw.js) where the page is a secure context, or
//                 gathered as a Blob of parts kept on disk through IndexedDB
//                 otherwise (plain http:// on a LAN address, where service
//                 workers are not allowed).
//
// Interface used by receiver.js: begin(manifest), openFile(entry) ->
// {write(bytes), close(size), abort(reason)}, finish(), abort(reason).

import { ZipWriter } from './zip.js';

/** Gather bytes into Blobs of this size: big enough to be few, small enough that the page keeps little. */
const BLOB_PART = 8 << 20;

export function canPickFolder() {
  return typeof globalThis.showDirectoryPicker === 'function' && globalThis.isSecureContext;
}

export function canStreamDownloads() {
  return Boolean(globalThis.isSecureContext && navigator.serviceWorker && globalThis.TransformStream);
}

/** Walk to (and create) the folder that holds `path`. */
async function parentDir(root, path) {
  const parts = path.split('/');
  let dir = root;
  for (const p of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(p, { create: true });
  return { dir, name: parts[parts.length - 1] };
}

export class FolderSink {
  constructor(root, { replace = false } = {}) {
    this.root = root;
    this.replace = replace;
    this.open = new Set();
  }

  async begin(manifest) {
    if (!this.replace) {
      for (const e of manifest.entries) {
        if (e.kind !== 'file') continue;
        if (await exists(this.root, e.path)) {
          throw new Error(`${e.path} already exists in the chosen folder; pick another folder or tick "Replace existing files"`);
        }
      }
    }
    for (const e of manifest.entries) {
      if (e.kind === 'dir') await parentDir(this.root, `${e.path}/x`);
    }
  }

  async openFile(entry) {
    const { dir, name } = await parentDir(this.root, entry.path);
    const handle = await dir.getFileHandle(name, { create: true });
    const writable = await handle.createWritable({ keepExistingData: false });
    this.open.add(writable);
    return {
      write: (bytes) => writable.write(bytes),
      close: async () => {
        this.open.delete(writable);
        await writable.close();
      },
      abort: (reason) => {
        this.open.delete(writable);
        writable.abort(reason).catch(() => {});
      },
    };
  }

  async finish() {}

  abort(reason) {
    for (const w of this.open) w.abort(reason).catch(() => {});
    this.open.clear();
  }
}

async function exists(root, path) {
  try {
    const parts = path.split('/');
    let dir = root;
    for (const p of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(p);
    await dir.getFileHandle(parts[parts.length - 1]);
    return true;
  } catch {
    return false;
  }
}

/** The download's name: the single file, the one top folder, or a generic one. */
export function downloadName(manifest) {
  const files = manifest.entries.filter((e) => e.kind === 'file');
  if (manifest.entries.length === 1 && files.length === 1) return { name: baseName(files[0].path), zip: false };
  const tops = new Set(manifest.entries.map((e) => e.path.split('/')[0]));
  const name = tops.size === 1 ? `${[...tops][0]}.zip` : `ferry-${files.length}-files.zip`;
  return { name, zip: true };
}

const baseName = (path) => path.slice(path.lastIndexOf('/') + 1);

export class DownloadSink {
  /** `onSaved({name, url})` is told when a Blob download is ready (to offer it again). */
  constructor({ onSaved = () => {} } = {}) {
    this.onSaved = onSaved;
    this.out = null;
    this.zip = null;
  }

  async begin(manifest) {
    const { name, zip } = downloadName(manifest);
    const size = zip ? null : manifest.entries[0].size;
    this.out = canStreamDownloads() ? await streamOutput(name, size) : blobOutput(name, this.onSaved);
    if (zip) {
      this.zip = new ZipWriter((bytes) => this.out.write(bytes));
      for (const e of manifest.entries) if (e.kind === 'dir') await this.zip.addDir(e.path);
    }
  }

  async openFile(entry) {
    if (this.zip) await this.zip.startFile(entry.path, entry.size ?? null);
    return {
      write: (bytes) => (this.zip ? this.zip.data(bytes) : this.out.write(bytes)),
      close: async () => {
        if (this.zip) await this.zip.endFile();
      },
      abort: () => {},
    };
  }

  async finish() {
    if (this.zip) await this.zip.finish();
    await this.out.close();
  }

  abort(reason) {
    this.out?.abort(reason);
  }
}

function blobOutput(name, onSaved) {
  const parts = [];
  let chunk = [];
  let chunkBytes = 0;
  let disk = DiskParts.open();
  const flush = async () => {
    if (!chunk.length) return;
    const part = new Blob(chunk);
    chunk = [];
    chunkBytes = 0;
    // Its place is taken now, so that parts stay in order whatever finishes first.
    const index = parts.push(part) - 1;
    const kept = await (await disk)?.keep(part, index);
    if (kept && parts[index] === part) parts[index] = kept;
  };
  return {
    async write(bytes) {
      chunk.push(bytes);
      chunkBytes += bytes.length;
      if (chunkBytes >= BLOB_PART) await flush();
    },
    async close() {
      await flush();
      const url = URL.createObjectURL(new Blob(parts, { type: 'application/octet-stream' }));
      parts.length = 0;
      // The download's Blob keeps its files alive; the database itself can go.
      (await disk)?.remove();
      const a = document.createElement('a');
      a.href = url;
      a.download = name;
      a.hidden = true;
      document.body.append(a);
      a.click();
      a.remove();
      onSaved({ name, url });
    },
    abort() {
      parts.length = 0;
      chunk = [];
      disk.then((d) => d?.remove());
      disk = Promise.resolve(null);
    },
  };
}

/**
 * Where a Blob download's parts wait, on disk. Chromium keeps Blobs in the
 * browser process's memory (up to 2 GiB on 64-bit desktops) before it pages
 * them to disk, so a big download gathered as plain Blobs would sit in memory.
 * A Blob stored in IndexedDB is written to a file, and the Blob read back
 * refers to that file: each part goes through it. Where IndexedDB fails
 * (private windows, no quota), parts simply stay in memory as before.
 */
class DiskParts {
  static PREFIX = 'ferry-download-';

  /** A fresh database, or null without IndexedDB (or when it does not answer). */
  static async open() {
    try {
      return await within(
        (async () => {
          await DiskParts.sweep();
          const name = `${DiskParts.PREFIX}${Date.now()}-${Math.random().toString(36).slice(2)}`;
          const open = indexedDB.open(name, 1);
          open.onupgradeneeded = () => open.result.createObjectStore('parts');
          return new DiskParts(name, await done(open));
        })(),
      );
    } catch {
      return null;
    }
  }

  /** Databases left by a tab that closed mid-download (one still open elsewhere is not deleted). */
  static async sweep() {
    const all = (await indexedDB.databases?.()) ?? [];
    for (const { name } of all) if (name?.startsWith(DiskParts.PREFIX)) indexedDB.deleteDatabase(name);
  }

  constructor(name, db) {
    this.name = name;
    this.db = db;
    this.failed = false;
  }

  /** The part as a Blob backed by IndexedDB's file; null if it could not be stored. */
  async keep(part, index) {
    if (this.failed) return null;
    try {
      const write = this.db.transaction('parts', 'readwrite');
      write.objectStore('parts').put(part, index);
      await within(committed(write));
      const read = this.db.transaction('parts', 'readonly');
      const stored = await within(done(read.objectStore('parts').get(index)));
      if (!(stored instanceof Blob) || stored.size !== part.size) throw new Error('IndexedDB returned something else');
      return stored;
    } catch {
      this.failed = true;
      return null;
    }
  }

  remove() {
    this.db.close();
    indexedDB.deleteDatabase(this.name);
  }
}

/**
 * `promise`, or a rejection once IndexedDB has not answered for 15 s. It
 * can stall (another tab holding a database, a disk that does not keep up),
 * and a download must then go on with its parts in memory, not wait forever.
 */
function within(promise, ms = 15_000) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('IndexedDB did not answer')), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

const done = (request) =>
  new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });

const committed = (tx) =>
  new Promise((resolve, reject) => {
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('aborted'));
  });

let registration = null;

/** Register the download service worker early (secure pages only); harmless to call twice. */
export async function registerDownloads() {
  if (!canStreamDownloads()) return null;
  registration ??= navigator.serviceWorker.register('sw.js', { scope: './' }).catch(() => null);
  return registration;
}

async function streamOutput(name, size) {
  const reg = await registerDownloads();
  await navigator.serviceWorker.ready;
  const worker = reg?.active;
  if (!worker) throw new Error('the download helper (service worker) is not running; reload the page');
  const id = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
  const { readable, writable } = new TransformStream({}, new ByteLengthQueuingStrategy({ highWaterMark: 16 << 20 }));
  const ack = new MessageChannel();
  const acked = new Promise((resolve) => {
    ack.port1.onmessage = resolve;
  });
  worker.postMessage({ type: 'download', id, name, size, stream: readable }, [readable, ack.port2]);
  await acked;
  const frame = document.createElement('iframe');
  frame.hidden = true;
  frame.src = `download/${id}/${encodeURIComponent(name)}`;
  document.body.append(frame);
  // A service worker is stopped when idle; a long download keeps it busy.
  const keepAlive = setInterval(() => worker.postMessage({ type: 'ping' }), 10_000);
  const writer = writable.getWriter();
  const done = () => {
    clearInterval(keepAlive);
    setTimeout(() => frame.remove(), 60_000);
  };
  return {
    async write(bytes) {
      await writer.ready;
      writer.write(bytes).catch(() => {});
    },
    async close() {
      await writer.close();
      done();
    },
    abort(reason) {
      writer.abort(reason).catch(() => {});
      done();
    },
  };
}
