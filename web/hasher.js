// Block hashing for the page: a small pool of module workers (hash-worker.js)
// with an in-thread fallback, and the same interface in Node for the tests.

import { hash, subtreeCv } from './blake3.js';

/**
 * `hashBlock(data: Uint8Array (its own whole ArrayBuffer), offset, wantRoot)`
 * resolves to {data, cv, root}; `data` is the same bytes, possibly a new view
 * (the buffer travelled to a worker and back).
 */
export class Hasher {
  constructor(workers = defaultWorkers()) {
    this.pool = [];
    this.next = 0;
    this.jobs = new Map();
    this.seq = 0;
    if (typeof Worker === 'undefined') return;
    for (let i = 0; i < workers; i++) {
      try {
        const w = new Worker(new URL('./hash-worker.js', import.meta.url), { type: 'module' });
        w.onmessage = (ev) => this.#done(ev.data);
        w.onerror = () => this.#broken();
        this.pool.push(w);
      } catch {
        break; // no module workers here: hash in this thread
      }
    }
  }

  hashBlock(data, offset, wantRoot) {
    if (this.pool.length === 0) {
      return Promise.resolve({ data, cv: subtreeCv(data, offset), root: wantRoot ? hash(data) : null });
    }
    const id = ++this.seq;
    const worker = this.pool[this.next++ % this.pool.length];
    return new Promise((resolve, reject) => {
      this.jobs.set(id, { resolve, reject });
      const buf = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data.buffer : data.slice().buffer;
      worker.postMessage({ id, offset, data: buf, root: wantRoot }, [buf]);
    });
  }

  #done({ id, data, cv, root, error }) {
    const job = this.jobs.get(id);
    if (!job) return;
    this.jobs.delete(id);
    if (error) job.reject(new Error(`hashing failed: ${error}`));
    else job.resolve({ data: new Uint8Array(data), cv, root });
  }

  #broken() {
    for (const job of this.jobs.values()) job.reject(new Error('the hashing worker stopped'));
    this.jobs.clear();
    this.close();
  }

  close() {
    for (const w of this.pool) w.terminate();
    this.pool = [];
  }
}

function defaultWorkers() {
  const cores = globalThis.navigator?.hardwareConcurrency ?? 2;
  return Math.max(1, Math.min(4, cores - 1));
}
