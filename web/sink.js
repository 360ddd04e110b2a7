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
//                 gathered as a disk-backed Blob otherwise (plain http:// on
//                 a LAN address, where service workers are not allowed).
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
  const flush = () => {
    if (chunk.length) parts.push(new Blob(chunk));
    chunk = [];
    chunkBytes = 0;
  };
  return {
    write(bytes) {
      chunk.push(bytes);
      chunkBytes += bytes.length;
      if (chunkBytes >= BLOB_PART) flush();
    },
    async close() {
      flush();
      const url = URL.createObjectURL(new Blob(parts, { type: 'application/octet-stream' }));
      parts.length = 0;
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
    },
  };
}

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
