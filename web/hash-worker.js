// Hashes blocks off the main thread so the page stays responsive. A job is
// {id, offset, data: ArrayBuffer, root: bool}; the answer hands the buffer
// back (transferred, not copied) with the block's chaining value and, when
// asked, the BLAKE3 hash of the block alone (a one-block file's root).

import { hash, subtreeCv } from './blake3.js';

self.onmessage = (ev) => {
  const { id, offset, data, root } = ev.data;
  try {
    const bytes = new Uint8Array(data);
    const cv = subtreeCv(bytes, offset);
    const whole = root ? hash(bytes) : null;
    self.postMessage({ id, data, cv, root: whole }, [data]);
  } catch (e) {
    self.postMessage({ id, data, error: String(e?.message ?? e) }, [data]);
  }
};
