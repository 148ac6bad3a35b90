// Boot the browser client: the shell is already on screen; start Pyodide, msgspec, libsodium
// and our Python package in parallel, then hand over to Python (parley_web/main.py).
// Every URL comes from the build's config block (content-hashed, served by the Parley server).
const config = JSON.parse(document.getElementById("parley-config").textContent);
const boot = (window.parleyBoot = { marks: { boot: performance.now() }, pending: null, handler: null, error: null });
const mark = (name) => { boot.marks[name] = performance.now(); };
const bar = document.getElementById("progress");
const fill = bar.querySelector(".progress-fill");
const status = document.getElementById("status");

const authMessage = document.getElementById("auth-message");
// Shell strings before Python (and its i18n) is there: English or Chinese from the saved choice
// or the browser's language.
const zh = (localStorage.getItem("parley.lang") || navigator.language || "").toLowerCase().startsWith("zh");
const SHELL = zh
  ? { waiting: "正在启动，完成后立即继续", retrying: "下载失败，正在重试", failed: "无法启动 Parley：部分文件未能下载。", retry: "重试" }
  : { waiting: "Starting, your request continues when ready", retrying: "A download failed, retrying", failed: "Parley could not start: some files did not download.", retry: "Retry" };

function progress(pct, text) {
  fill.style.width = `${pct}%`;
  bar.setAttribute("aria-valuenow", String(pct));
  status.textContent = text;
  if (boot.pending) authMessage.textContent = `${SHELL.waiting}… ${pct}%`;
}

// The form works before Python is ready: a submit is kept (with visible progress) and replayed
// once Python takes over.
document.getElementById("auth-form").addEventListener("submit", (event) => {
  if (boot.handler) return boot.handler(event);
  event.preventDefault();
  boot.pending = event.submitter ? event.submitter.value : "login";
  authMessage.classList.remove("error");
  authMessage.textContent = `${SHELL.waiting}… ${fill.style.width ? parseInt(fill.style.width, 10) : 0}%`;
});

// IndexedDB and WebCrypto helpers handed to Python as the module "parley_glue". They exist so
// Python never has to hand a callback to an IDBRequest: every request's events are bound here
// synchronously, and Python awaits plain Promises (docs/browser.md, "Pyodide runtime rules":
// issue all requests of a transaction before the first await).
const req = (r) => new Promise((resolve, reject) => {
  r.onsuccess = () => resolve(r.result);
  r.onerror = () => reject(r.error);
});
const glue = {
  openDb(name, version, stores) {
    return new Promise((resolve, reject) => {
      const r = indexedDB.open(name, version);
      r.onupgradeneeded = () => {
        for (const s of stores) if (!r.result.objectStoreNames.contains(s)) r.result.createObjectStore(s);
      };
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
      r.onblocked = () => reject(new Error(`IndexedDB ${name} is blocked by another tab`));
    });
  },
  deleteDb: (name) => req(indexedDB.deleteDatabase(name)),
  req,
  done(tx) {
    return new Promise((resolve, reject) => {
      tx.oncomplete = () => resolve(true);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error("transaction aborted"));
    });
  },
  key: (a, b) => [a, b],
  range: (a, lo, hi) => IDBKeyRange.bound([a, lo], [a, hi]),
  // insert-or-ignore: a duplicate key must not abort the whole transaction
  addIgnore(store, value, key) {
    const r = store.add(value, key);
    r.onerror = (e) => { e.preventDefault(); e.stopPropagation(); };
  },
  // the seqs of one conversation's rows, as a typed array (one FFI crossing for 10k keys)
  async seqs(db, name, a) {
    const keys = await req(db.transaction(name).objectStore(name).getAllKeys(IDBKeyRange.bound([a, 0], [a, Infinity])));
    return Float64Array.from(keys, (k) => k[1]);
  },
  // a non-extractable AES-GCM key: it can be stored in IndexedDB and used, never read out
  deviceKey: () => crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]),
  aesSeal: async (key, iv, data) => new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, data)),
  aesOpen: async (key, iv, data) => new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv }, key, data)),
  // One tab per profile: two would advance the same ratchets from the same stored state.
  // Resolves true once this page holds the lock (kept until the page goes away), false if
  // another tab has it.
  holdLock(name) {
    return new Promise((resolve) => {
      if (!navigator.locks) { resolve(true); return; }
      navigator.locks.request(name, { ifAvailable: true }, (lock) => {
        if (!lock) { resolve(false); return undefined; }
        resolve(true);
        return new Promise(() => {});
      }).catch(() => resolve(false));
    });
  },
};

// A failed download is retried with backoff (a busy server, a dropped connection); only after
// RETRIES attempts does start-up give up, and then the page offers a Retry button: never a dead end.
const RETRIES = 4;
const backoffMs = (attempt) => Math.min(8000, 500 * 2 ** attempt) * (0.75 + Math.random() / 2);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
boot.retries = 0;

async function withRetry(what, fn) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt + 1 >= RETRIES) throw err;
      boot.retries++;
      console.warn(`${what} failed (attempt ${attempt + 1}), retrying:`, err);
      status.textContent = `${SHELL.retrying}…`;
      await sleep(backoffMs(attempt));
    }
  }
}

// A module whose import failed stays failed under its URL: a retry imports it under a new one.
const retryUrl = (url, attempt) => (attempt ? `${url}${url.includes("?") ? "&" : "?"}retry=${attempt}` : url);

async function fetchBytes(url) {
  return withRetry(url, async () => {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return response.arrayBuffer();
  });
}

// A memory snapshot of the freshly started interpreter, made at build time from the very
// pyodide.asm.wasm we ship (scripts/make_snapshot.mjs) and served as a hashed immutable asset:
// restoring it is about 0.3 s of main-thread work, where starting the interpreter is one task of
// 1.9-3.8 s that freezes the page. Without it (a failed download, a damaged or foreign
// snapshot) Python starts afresh: slower, never broken.
async function readSnapshot() {
  if (!config.snapshot) return null;
  try {
    return new Uint8Array(await fetchBytes(config.snapshot));
  } catch (err) {
    console.warn("snapshot download failed, starting without it:", err);
    return null;
  }
}

async function start() {
  progress(5, "Loading Python runtime…");
  const sodium = withRetry("libsodium", (n) => import(retryUrl(config.sodium, n))).then(async (module) => {
    const S = module.default;
    await S.ready;
    mark("sodium");
    return S;
  });
  const appZip = fetchBytes(config.app);
  const snapshot = readSnapshot();
  const { loadPyodide } = await withRetry("pyodide", (n) => import(retryUrl(config.pyodideModule, n)));
  // Absolute URLs: Pyodide resolves packages against packageBaseUrl (else it falls back to a CDN).
  const base = new URL(config.pyodide, location.href).href;
  const options = { indexURL: base, packageBaseUrl: base };
  const saved = await snapshot;
  let pyodide = null;
  if (saved) {
    try {
      pyodide = await loadPyodide({ ...options, _loadSnapshot: saved });
    } catch (err) {  // a snapshot that does not fit this runtime must never brick the client
      console.warn("snapshot restore failed, starting fresh:", err);
    }
  }
  // loadPyodide fetches the wasm, the stdlib and the lock itself: a failure there is a fresh
  // start again, with backoff.
  boot.snapshot = pyodide ? "restored" : "none";
  if (!pyodide) pyodide = await withRetry("python runtime", () => loadPyodide(options));
  mark("pyodide");
  if (saved) {
    // A restored snapshot hands Python a recording proxy of the snapshot maker's globalThis as
    // `js`, whose DOM getters fail ("Illegal invocation"): give this session the real globals.
    // Every page restores the same snapshot, hence the same `random` state: reseed it.
    pyodide.registerJsModule("js", globalThis);
    pyodide.runPython("import sys, random; sys.modules.pop('js', None); random.seed()");
  }
  progress(70, "Loading packages…");
  // Each step below is CPU on the main thread; awaiting a promise that is already settled does
  // not give the thread back (it runs on as a microtask), so the steps yield between them
  // explicitly and none grows into a long task.
  await yieldToBrowser();
  // loadPackage only logs a failed download: the import in Python below is the real check.
  // ...so the package is loaded (and retried) until msgspec really imports.
  const msgspec = withRetry("msgspec", async () => {
    await pyodide.loadPackage("msgspec", { messageCallback: () => {}, checkIntegrity: true });
    await yieldToBrowser();
    pyodide.runPython("import msgspec");
  });
  pyodide.registerJsModule("sodium", await sodium);
  pyodide.registerJsModule("parley_glue", glue);
  const archive = await appZip;
  await yieldToBrowser();
  pyodide.unpackArchive(archive, "zip", { extractDir: "/home/pyodide/parley-app" });
  await msgspec;
  mark("packages");
  await yieldToBrowser();
  progress(90, "Starting…");
  pyodide.runPython(`import sys; sys.path.insert(0, "/home/pyodide/parley-app")`);
  await importInSlices(pyodide, config.modules || []);
  mark("imported");
  await pyodide.runPythonAsync("from parley_web import main\nawait main.start()");
  mark("ready");
  boot.pyodide = pyodide;
  registerServiceWorker();
}

// Importing the whole app at once is one main-thread task of 200-450 ms that ignores input.
// The build lists its modules dependencies-first (scripts/import_order.py): import them one at a
// time and give the browser the thread back whenever a slice has run SLICE_MS.
const SLICE_MS = 40;
const yieldToBrowser = () =>
  globalThis.scheduler && scheduler.yield ? scheduler.yield() : new Promise((resolve) => setTimeout(resolve, 0));

async function importInSlices(pyodide, modules) {
  // (a wrapper that returns None: a returned module would be a PyProxy to destroy)
  const importOne = pyodide.runPython("import importlib\ndef _import(name): importlib.import_module(name)\n_import");
  try {
    let slice = performance.now();
    for (const name of modules) {
      importOne(name);
      if (performance.now() - slice > SLICE_MS) {
        await yieldToBrowser();
        slice = performance.now();
      }
    }
  } finally {
    importOne.destroy();
  }
}

function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return;
  boot.sw = navigator.serviceWorker
    .register(config.sw)
    .then(() => navigator.serviceWorker.ready)
    .then(() => { mark("sw"); return true; })
    .catch((err) => { console.warn("service worker:", err); return false; });
}

// Every retry spent: say so and offer a Retry button (a fresh load of the page; the browser's
// HTTP cache and the service worker keep what did arrive).
function failed(err) {
  boot.error = String(err && err.stack ? err.stack : err);
  console.error("Parley failed to start:", err);
  document.body.dataset.python = "failed";
  progress(100, SHELL.failed);
  authMessage.textContent = SHELL.failed;
  authMessage.classList.add("error");
  const again = document.createElement("button");
  again.type = "button";
  again.id = "boot-retry";
  again.className = "small";
  again.textContent = SHELL.retry;
  again.addEventListener("click", () => location.reload());
  authMessage.append(" ", again);
}

start().catch(failed);
