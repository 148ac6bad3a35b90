// Make a memory snapshot of a freshly started Pyodide interpreter (node scripts/make_snapshot.mjs
// <pyodide dir> <out file>), for scripts/build_web.py to ship as a hashed asset.
//
// A browser restores it instead of starting the interpreter: start-up is then about 0.3 s of
// main-thread work instead of one 1.9-3.8 s task (docs/browser.md, "Start-up"). It holds the bare
// interpreter only (no msgspec, no app: baking those in fails in this Pyodide), and must come from
// exactly the pyodide.asm.wasm that is shipped, or the browser refuses it ("build id mismatch")
// and boot.js starts afresh.
import { writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import path from "node:path";

const [dir, out] = process.argv.slice(2);
if (!dir || !out) {
  console.error("usage: node make_snapshot.mjs <pyodide dir> <out file>");
  process.exit(2);
}
const { loadPyodide } = await import(pathToFileURL(path.join(dir, "pyodide.mjs")).href);
const pyodide = await loadPyodide({ indexURL: dir + path.sep, _makeSnapshot: true });
const snapshot = pyodide.makeMemorySnapshot();
writeFileSync(out, snapshot);
console.log(`${snapshot.length} bytes`);
