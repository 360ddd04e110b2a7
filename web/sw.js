// The download helper: turns a stream handed over by the page into a file
// download, so a large file goes to disk as it arrives instead of being held
// in memory. Only URLs under download/ are answered here; everything else
// goes to the network as usual.

const pending = new Map();

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('message', (event) => {
  const msg = event.data;
  if (msg?.type !== 'download' || !(msg.stream instanceof ReadableStream)) return;
  pending.set(msg.id, msg);
  // Forget a download nobody fetched, so its stream does not linger.
  setTimeout(() => pending.delete(msg.id), 60_000);
  event.ports[0]?.postMessage('ready');
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  const scope = new URL(self.registration.scope);
  if (!url.pathname.startsWith(`${scope.pathname}download/`)) return;
  const id = url.pathname.slice(scope.pathname.length + 'download/'.length).split('/')[0];
  const msg = pending.get(id);
  pending.delete(id);
  if (!msg) {
    event.respondWith(new Response('This download has expired.', { status: 404 }));
    return;
  }
  const headers = {
    'Content-Type': 'application/octet-stream',
    'Content-Disposition': `attachment; filename*=UTF-8''${encodeURIComponent(msg.name)}`,
    'X-Content-Type-Options': 'nosniff',
  };
  if (Number.isSafeInteger(msg.size)) headers['Content-Length'] = String(msg.size);
  event.respondWith(new Response(msg.stream, { headers }));
});
