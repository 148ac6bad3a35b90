"""Browser client startup: time to shell visible, to Python ready, and bytes moved.

Runs headless Debian Chromium against the real server (started here on a loopback port unless
``--url`` is given) and prints medians over ``--runs`` loads for three scenarios:

* cold: a fresh browser context per run (empty HTTP cache, no service worker);
* warm-http: one context, service workers blocked: only the HTTP cache (immutable assets);
* warm-sw: one context with the service worker installed: assets come from its Cache Storage.

"long tasks" are main-thread tasks over 50 ms until ready (a PerformanceObserver registered
before any page script); "longest" is the longest of them: while it runs the page ignores input.
"shell" is the first contentful paint (the login form), "ready" the moment Python has run
``parley_web.main.start()``, both from navigation start; "bytes" sums ``transferSize`` of the document
and every resource (compressed bytes on the wire, 0 for cache hits).

    .venv/bin/python scripts/build_web.py   # the assets first
    .venv/bin/python bench/web_startup.py [--runs 5] [--url http://127.0.0.1:8000]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from browser_tests.conftest import CHROMIUM, CHROMIUM_FLAGS, is_local, settle  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

READY_TIMEOUT_MS = 120_000
TARGETS = {"shell": 0.5, "ready cold": 2.5, "ready warm": 1.0, "task": 0.2}

# Registered before the page's own scripts: every main-thread long task from navigation on.
OBSERVE_LONG_TASKS = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longTasks.push([e.startTime, e.duration]);
}).observe({ type: "longtask", buffered: true });
"""

MEASURE = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const fcp = performance.getEntriesByName("first-contentful-paint")[0];
  const resources = performance.getEntriesByType("resource");
  const bytes = resources.reduce((n, r) => n + r.transferSize, nav ? nav.transferSize : 0);
  const m = window.parleyBoot.marks;
  return {shell: fcp ? fcp.startTime : null, ready: m.ready, pyodide: m.pyodide,
          packages: m.packages, bytes, requests: resources.length + 1,
          error: window.parleyBoot.error,
          long: window.__longTasks.filter(([start]) => start <= m.ready).map(([, d]) => d)};
}"""


@dataclass
class Sample:
    shell_s: float
    ready_s: float
    pyodide_s: float
    packages_s: float
    bytes: int
    requests: int
    long_tasks: list[float]


def load(context: BrowserContext, url: str, foreign: list[str]) -> Sample:
    page = context.new_page()
    page.add_init_script(OBSERVE_LONG_TASKS)
    page.on("request", lambda r: None if is_local(r.url) else foreign.append(r.url))
    page.goto(url, timeout=READY_TIMEOUT_MS)
    page.wait_for_selector(
        "body[data-python=ready], body[data-python=failed]", timeout=READY_TIMEOUT_MS
    )
    page.wait_for_function("performance.getEntriesByName('first-contentful-paint').length > 0")
    m: dict[str, Any] = page.evaluate(MEASURE)
    if m["error"]:
        raise RuntimeError(f"boot failed: {m['error']}")
    page.close()
    return Sample(
        m["shell"] / 1000,
        m["ready"] / 1000,
        m["pyodide"] / 1000,
        m["packages"] / 1000,
        int(m["bytes"]),
        m["requests"],
        [d / 1000 for d in m["long"]],
    )


def new_context(browser: Browser, *, service_workers: bool) -> BrowserContext:
    ctx = browser.new_context(service_workers="allow" if service_workers else "block")
    ctx.set_default_timeout(READY_TIMEOUT_MS)
    return ctx


def run(url: str, runs: int) -> dict[str, list[Sample]]:
    results: dict[str, list[Sample]] = {"cold": [], "warm-http": [], "warm-sw": []}
    foreign: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            for _ in range(runs):
                ctx = new_context(browser, service_workers=False)
                results["cold"].append(load(ctx, url, foreign))
                ctx.close()
            ctx = new_context(browser, service_workers=False)
            load(ctx, url, foreign)  # fill the HTTP cache
            results["warm-http"] = [load(ctx, url, foreign) for _ in range(runs)]
            ctx.close()
            ctx = new_context(browser, service_workers=True)
            page = ctx.new_page()
            page.goto(url)
            page.wait_for_selector("body[data-python=ready]", timeout=READY_TIMEOUT_MS)
            page.wait_for_function("window.parleyBoot.sw !== undefined")
            if settle(page, "window.parleyBoot.sw", READY_TIMEOUT_MS) is not True:
                raise RuntimeError("service worker did not install")
            page.close()
            results["warm-sw"] = [load(ctx, url, foreign) for _ in range(runs)]
            ctx.close()
        finally:
            browser.close()
    if foreign:
        raise RuntimeError(f"requests left loopback: {foreign}")
    return results


def report(results: dict[str, list[Sample]]) -> None:
    def med(values: list[float]) -> str:
        return f"{statistics.median(values):6.2f} s [{min(values):.2f}-{max(values):.2f}]"

    head = f"{'scenario':10} {'shell (FCP)':24} {'pyodide loaded':24} {'python ready':24}"
    print(f"{head} {'longest task':24} long tasks  bytes")
    print(f"{'':10} {'':24} {'+ msgspec, app.zip':24}")
    for name, samples in results.items():
        shell = med([s.shell_s for s in samples])
        pyo = med([s.pyodide_s for s in samples])
        pkgs = med([s.packages_s for s in samples])
        ready = med([s.ready_s for s in samples])
        kb = statistics.median([s.bytes for s in samples]) / 1e6
        reqs = int(statistics.median([s.requests for s in samples]))
        longest = med([max(s.long_tasks, default=0.0) for s in samples])
        count = statistics.median([len(s.long_tasks) for s in samples])
        print(
            f"{name:10} {shell:24} {pyo:24} {ready:24} {longest:24} {count:10.0f}"
            f"  {kb:.2f} MB in {reqs} requests"
        )
        print(f"{'':10} {'':24} {pkgs:24}")
    print(
        f"targets: shell <= {TARGETS['shell']} s, ready <= {TARGETS['ready cold']} s cold /"
        f" <= {TARGETS['ready warm']} s warm; no main-thread task > {TARGETS['task']} s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--url", help="an already running server (default: start one)")
    args = parser.parse_args(argv)
    print("command:", shlex.join([sys.executable, *sys.argv]))
    if args.url:
        results = run(args.url.rstrip("/") + "/", args.runs)
    else:
        with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
            srv = ServerProcess(Path(tmp) / "data")
            srv.start()
            try:
                results = run(srv.http_url + "/", args.runs)
            finally:
                srv.stop()
    print(f"median of {args.runs} runs, headless {CHROMIUM} ({' '.join(CHROMIUM_FLAGS)})")
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
