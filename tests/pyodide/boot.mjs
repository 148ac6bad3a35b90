// Boot Pyodide on Node with Parley's pinned, local-only runtime (no network, no CDN).
//
// Shared by tests/pyodide/run.mjs (pytest inside Pyodide), tests/crosstalk/peer.mjs (a
// Pyodide peer for the CPython<->Pyodide conversation test) and bench/pyodide_crypto.mjs.
//
//   * Pyodide core from web/node_modules/pyodide (loadPyodide({indexURL}): local files only);
//   * wheels only by absolute path from web/.wheels/, checked against web/wheels.lock (sha256);
//   * libsodium-wrappers-sumo from web/node_modules, `await ready`, registered as the JS module
//     "sodium" (what parley.crypto._sodiumjs imports), exactly as the web shell does;
//   * the repo's shared/, tests/ and bench/ mounted with NODEFS under /repo; shared on sys.path.

import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const MOUNT = "/repo";
const WEB = path.join(REPO, "web");
const WHEELS = path.join(WEB, ".wheels");

// An uncaught Python error would make Node print the whole (minified, one-line) Pyodide
// source next to it: print the Python traceback (the error's message) only.
process.on("uncaughtException", (e) => {
  process.stderr.write(`${e?.stack && !e?.type ? e.stack : (e?.message ?? e)}\n`);
  process.exit(2);
});

function fail(msg) {
  process.stderr.write(`boot.mjs: ${msg}\n`);
  process.exit(2);
}

// Lines of web/wheels.lock: role requirement sha256 file
function lockedWheels(roles) {
  const out = [];
  for (const line of readFileSync(path.join(WEB, "wheels.lock"), "utf8").split("\n")) {
    if (!line.trim() || line.startsWith("#")) continue;
    const [role, , digest, file] = line.trim().split(/\s+/);
    if (!roles.includes(role)) continue;
    const p = path.join(WHEELS, file);
    if (!existsSync(p)) {
      fail(`missing ${p}: run \`.venv/bin/python scripts/fetch_wheels.py\``);
    }
    const got = createHash("sha256").update(readFileSync(p)).digest("hex");
    if (got !== digest) fail(`${p}: sha256 ${got} does not match wheels.lock (${digest})`);
    out.push(p);
  }
  return out;
}

/**
 * Start Pyodide. Options:
 *   roles:  wheel roles from wheels.lock to load (default ["browser"]; add "test" for pytest)
 *   stdout: "stdout" | "stderr" (where Python's stdout goes; a pipe protocol needs "stderr")
 *   env:    extra environment variables for Python
 */
export async function boot({ roles = ["browser"], stdout = "stdout", env = {} } = {}) {
  const pyodideDir = path.join(WEB, "node_modules", "pyodide");
  const sodiumPath = path.join(
    WEB, "node_modules", "libsodium-wrappers-sumo", "dist", "modules-sumo-esm",
    "libsodium-wrappers.mjs",
  );
  if (!existsSync(pyodideDir) || !existsSync(sodiumPath)) {
    fail("web/node_modules is incomplete: run `npm ci --prefix web`");
  }
  const wheels = lockedWheels(roles);

  const { loadPyodide } = await import(pathToFileURL(path.join(pyodideDir, "pyodide.mjs")).href);
  const sodiumMod = await import(pathToFileURL(sodiumPath).href);
  const sodium = sodiumMod.default ?? sodiumMod;

  const [pyodide] = await Promise.all([
    loadPyodide({
      indexURL: pyodideDir + path.sep,
      env: { HOME: "/home/pyodide", PYTHONDONTWRITEBYTECODE: "1", ...env },
    }),
    sodium.ready,
  ]);
  const out = stdout === "stderr" ? process.stderr : process.stdout;
  const writer = (stream) => ({
    write: (buf) => {
      stream.write(buf);
      return buf.length;
    },
  });
  pyodide.setStdout(writer(out));
  pyodide.setStderr(writer(process.stderr));

  // loadPackage takes absolute paths in Node: no lock lookup, no CDN. It only logs failures,
  // so every wheel is imported afterwards by the callers (msgspec below).
  await pyodide.loadPackage(wheels, {
    messageCallback: () => {},
    errorCallback: (m) => process.stderr.write(`loadPackage: ${m}\n`),
  });

  pyodide.registerJsModule("sodium", sodium);

  const FS = pyodide.FS;
  for (const dir of ["shared", "tests", "bench"]) {
    const host = path.join(REPO, dir);
    if (!existsSync(host)) continue;
    const target = `${MOUNT}/${dir}`;
    FS.mkdirTree(target);
    FS.mount(FS.filesystems.NODEFS, { root: host }, target);
  }
  pyodide.runPython(`
import os, sys
sys.dont_write_bytecode = True
sys.path.insert(0, "${MOUNT}/shared")
os.chdir("${MOUNT}")
import msgspec  # fails loudly if the wheel did not load
`);
  return pyodide;
}

/** Map a pytest path argument (relative to the caller's cwd or absolute, optionally with a
 * ``::node`` suffix) that lies inside the repo to its mount point; keep others as given. */
export function toMountPath(arg) {
  if (arg.startsWith("-")) return arg;
  const [p, ...rest] = arg.split("::");
  const abs = path.resolve(process.cwd(), p);
  if (!existsSync(abs) || !(abs === REPO || abs.startsWith(REPO + path.sep))) return arg;
  const mounted = MOUNT + abs.slice(REPO.length).split(path.sep).join("/");
  return [mounted, ...rest].join("::");
}
