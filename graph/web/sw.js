// Keeps the pages' own files so that they open offline. Network first: online, every file is
// fetched as usual (and the copy renewed); offline, the copy answers. API responses are never
// kept here: the page keeps its last good data in localStorage.

const CACHE = "rollcall-page-v1";
// Every file of the pages (a test checks this list against graph/web/).
const FILES = [
  "/",
  "/teacher",
  "/web/app.css",
  "/web/icon.svg",
  "/web/js/api.js",
  "/web/js/chart.js",
  "/web/js/dom.js",
  "/web/js/format.js",
  "/web/js/live.js",
  "/web/js/main.js",
  "/web/js/page.js",
  "/web/js/password.js",
  "/web/js/queries.js",
  "/web/js/store.js",
  "/web/js/teacher.js",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(FILES))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (!FILES.includes(url.pathname)) return;
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(url.pathname, copy));
        }
        return response;
      })
      .catch(() => caches.match(url.pathname).then((found) => found ?? Response.error())),
  );
});
