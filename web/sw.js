// Parley service worker: offline start. Hashed assets are immutable, so cache-first; the shell
// (/) is network-first with the cached copy as the offline fallback. Filled in by the build.
const VERSION = "{{version}}";
const PRECACHE = {{precache}};
const CACHE = `parley-assets-${VERSION}`;

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE)
      .then((cache) => cache.addAll(["/", ...PRECACHE]))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(
        // older builds' assets, and the per-device snapshots that builds before the shipped
        // snapshot kept (31 MB each)
        keys.filter((k) => (k.startsWith("parley-assets-") && k !== CACHE) || k.startsWith("parley-snapshot-"))
          .map((k) => caches.delete(k)),
      ))
      .then(() => self.clients.claim()),
  );
});

async function cacheFirst(request) {
  const cached = await caches.match(request, { ignoreVary: true });
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) {
    const copy = response.clone();
    caches.open(CACHE).then((cache) => cache.put(request, copy));
  }
  return response;
}

async function networkFirst(request) {
  try {
    const response = await fetch(request);
    if (response.ok) {
      const copy = response.clone();
      caches.open(CACHE).then((cache) => cache.put("/", copy));
    }
    return response;
  } catch (err) {
    const cached = await caches.match("/", { ignoreVary: true });
    if (cached) return cached;
    throw err;
  }
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/assets/")) {
    event.respondWith(cacheFirst(event.request));
  } else if (url.pathname === "/" || event.request.mode === "navigate" && url.pathname === "/index.html") {
    event.respondWith(networkFirst(event.request));
  }
});
