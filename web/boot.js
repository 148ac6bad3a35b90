// Boot the browser client: the shell is already on screen; start Pyodide, msgspec, libsodium
// and our Python package in parallel, then hand over to Python (app/main.py).
// Every URL comes from the build's config block (content-hashed, served by the Parley server).
const config = JSON.parse(document.getElementById("parley-config").textContent);
const boot = (window.parleyBoot = { marks: { boot: performance.now() }, pending: null, handler: null, error: null });
const mark = (name) => { boot.marks[name] = performance.now(); };
const bar = document.getElementById("progress");
const fill = bar.querySelector(".progress-fill");
const status = document.getElementById("status");

function progress(pct, text) {
  fill.style.width = `${pct}%`;
  bar.setAttribute("aria-valuenow", String(pct));
  status.textContent = text;
}

// The form works before Python is ready: a submit is kept and replayed once Python takes over.
document.getElementById("auth-form").addEventListener("submit", (event) => {
  if (boot.handler) return boot.handler(event);
  event.preventDefault();
  boot.pending = event.submitter ? event.submitter.value : "login";
  document.getElementById("auth-message").textContent = "Starting Python, one moment…";
});

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.arrayBuffer();
}

async function start() {
  progress(5, "Loading Python runtime…");
  const sodium = import(config.sodium).then(async (module) => {
    const S = module.default;
    await S.ready;
    mark("sodium");
    return S;
  });
  const appZip = fetchBytes(config.app);
  const { loadPyodide } = await import(config.pyodideModule);
  // Absolute URLs: Pyodide resolves packages against packageBaseUrl (else it falls back to a CDN).
  const base = new URL(config.pyodide, location.href).href;
  const pyodide = await loadPyodide({ indexURL: base, packageBaseUrl: base });
  mark("pyodide");
  progress(70, "Loading packages…");
  // loadPackage only logs a failed download: the import in Python below is the real check.
  const msgspec = pyodide.loadPackage("msgspec", { messageCallback: () => {}, checkIntegrity: true });
  pyodide.registerJsModule("sodium", await sodium);
  pyodide.unpackArchive(await appZip, "zip", { extractDir: "/home/pyodide/parley-app" });
  await msgspec;
  mark("packages");
  progress(90, "Starting…");
  await pyodide.runPythonAsync(`
import sys
sys.path.insert(0, "/home/pyodide/parley-app")
import msgspec
from app import main
await main.start()
`);
  mark("ready");
  boot.pyodide = pyodide;
  registerServiceWorker();
}

function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return;
  boot.sw = navigator.serviceWorker
    .register(config.sw)
    .then(() => navigator.serviceWorker.ready)
    .then(() => { mark("sw"); return true; })
    .catch((err) => { console.warn("service worker:", err); return false; });
}

start().catch((err) => {
  boot.error = String(err && err.stack ? err.stack : err);
  console.error("Parley failed to start:", err);
  document.body.dataset.python = "failed";
  progress(100, "Failed to start: see the console");
});
