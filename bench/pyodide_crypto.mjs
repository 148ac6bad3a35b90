#!/usr/bin/env node
// Crypto micro-benchmarks INSIDE Pyodide on Node (libsodium.js backend through the FFI):
// runs bench/crypto_bench.py's run(seconds) and prints its figures as JSON.
//
//   node bench/pyodide_crypto.mjs [seconds=2] [--module /path/to/crypto_bench.py]
//
// The CPython figures come from the same module run by CPython (see bench/crypto_bench.py).
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { boot, MOUNT, REPO } from "../tests/pyodide/boot.mjs";

const argv = process.argv.slice(2);
let modulePath = path.join(REPO, "bench", "crypto_bench.py");
const mi = argv.indexOf("--module");
if (mi >= 0) {
  modulePath = path.resolve(argv[mi + 1]);
  argv.splice(mi, 2);
}
const seconds = Number(argv[0] ?? "2");
if (!Number.isFinite(seconds) || seconds <= 0) {
  process.stderr.write("usage: node bench/pyodide_crypto.mjs [seconds] [--module file.py]\n");
  process.exit(2);
}
if (!existsSync(modulePath)) {
  process.stderr.write(`pyodide_crypto.mjs: ${modulePath} does not exist (yet)\n`);
  process.exit(2);
}

const t0 = performance.now();
const pyodide = await boot({ roles: ["browser"], stdout: "stderr" });
const bootS = (performance.now() - t0) / 1000;
// The module is copied into Pyodide's in-memory FS, so any path works (and bench/ stays clean).
pyodide.FS.mkdirTree("/tmp/parley_bench");
pyodide.FS.writeFile("/tmp/parley_bench/crypto_bench.py", readFileSync(modulePath));
pyodide.globals.set("SECONDS", seconds);
const out = await pyodide.runPythonAsync(`
import json, sys
sys.path[:0] = ["/tmp/parley_bench", "${MOUNT}"]
import crypto_bench
from parley.crypto import backend
figures = crypto_bench.run(SECONDS)
json.dumps({
    "runtime": f"Pyodide (Python {sys.version.split()[0]}, {sys.platform}) on Node ${process.version}",
    "backend": backend.NAME,
    "command": ${JSON.stringify(["node", "bench/pyodide_crypto.mjs", ...process.argv.slice(2)].join(" "))},
    "boot_seconds": round(${bootS}, 2),
    "figures": figures,
}, indent=2, default=str)
`);
process.stdout.write(out + "\n");
