#!/usr/bin/env node
// A Parley crypto peer running inside Pyodide on Node (libsodium.js backend).
// Protocol: one JSON request per stdin line -> one JSON response per stdout line
// (see peer.py). Python's own prints go to stderr so they never corrupt the pipe.
import readline from "node:readline";
import { boot, MOUNT } from "../pyodide/boot.mjs";

const pyodide = await boot({ roles: ["browser"], stdout: "stderr" });
const handle = pyodide.runPython(`
import sys
sys.path.insert(0, "${MOUNT}")
from tests.crosstalk.peer import Peer
Peer().handle
`);
const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (!line.trim()) continue;
  process.stdout.write(handle(line) + "\n");
}
handle.destroy();
