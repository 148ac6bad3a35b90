#!/usr/bin/env node
// Run pytest INSIDE Pyodide on Node 20, against the pinned local runtime (see boot.mjs).
//
//   node tests/pyodide/run.mjs [pytest args...]
//
// Default args: the shared-package test dirs that must pass in both runtimes
// (tests/crypto tests/backend tests/protocol tests/sync, those that exist).
// Exit code = pytest's. "No tests collected" (5) stays a failure unless
// PARLEY_PYODIDE_ALLOW_EMPTY=1.
import { existsSync } from "node:fs";
import path from "node:path";
import { boot, MOUNT, REPO, toMountPath } from "./boot.mjs";

const DEFAULT_DIRS = [
  "tests/crypto",
  "tests/backend",
  "tests/protocol",
  "tests/sync",
  "tests/client",
  "tests/e2e_client",
  "tests/calls",
];

const t0 = performance.now();
let args = process.argv.slice(2).map(toMountPath);
// Paths are recognised as arguments that exist inside the repo (so `-k aead` still gets the
// default dirs).
if (!args.some((a) => a === MOUNT || a.startsWith(`${MOUNT}/`))) {
  const dirs = DEFAULT_DIRS.filter((d) => existsSync(path.join(REPO, d)));
  if (dirs.length === 0) {
    process.stderr.write("run.mjs: none of the default test dirs exist\n");
    process.exit(5);
  }
  args = [...args, ...dirs];
}
// The mounted tree is the real repo: no pytest cache writes there.
args = ["-p", "no:cacheprovider", ...args];

const pyodide = await boot({
  roles: ["browser", "test"],
  env: { HYPOTHESIS_STORAGE_DIRECTORY: "/tmp/hypothesis", PARLEY_RUNTIME: "pyodide-node" },
});
const bootSeconds = ((performance.now() - t0) / 1000).toFixed(1);

// A tiny plugin in Pyodide's in-memory FS: hypothesis keeps no example database (the mounted
// tree is the real repo) and has no deadline (wasm is slower, start-up jitter is large).
pyodide.FS.mkdirTree("/tmp/parley_plugins");
pyodide.FS.writeFile("/tmp/parley_plugins/parley_pyodide_plugin.py", `
def pytest_configure(config):
    try:
        import hypothesis
    except ImportError:
        return
    hypothesis.settings.register_profile(
        "parley-pyodide", database=None, deadline=None, print_blob=False
    )
    hypothesis.settings.load_profile("parley-pyodide")
`);
args = ["-p", "parley_pyodide_plugin", ...args];

pyodide.globals.set("PYTEST_ARGS", pyodide.toPy(args));
const code = await pyodide.runPythonAsync(`
import sys
sys.path.insert(0, "/tmp/parley_plugins")
import pytest
print(f"pyodide {sys.version.split()[0]} on {sys.platform}; pytest {' '.join(PYTEST_ARGS)}",
      flush=True)
int(pytest.main(list(PYTEST_ARGS)))
`);
process.stderr.write(
  `run.mjs: boot ${bootSeconds}s, total ${((performance.now() - t0) / 1000).toFixed(1)}s, ` +
  `pytest exit ${code}\n`,
);
let exitCode = code;
if (code === 5 && process.env.PARLEY_PYODIDE_ALLOW_EMPTY === "1") exitCode = 0;
process.exit(exitCode);
