"""Browser UI: opening a chat with a long cached history, and the cached chat list on reload.

Signs up one user in headless Chromium against the real server (started here unless ``--url``),
writes ``--messages`` sealed rows (default 10,000) straight into that profile's IndexedDB
(through the app's own ``WebStore``, as if synced earlier), reloads, and measures:

* chats: navigation start → the cached chat list rendered (from IndexedDB, before the socket);
* open: ``ConversationView.open`` (seqs from IndexedDB, one screen of rows opened and rendered),
  ``window.parleyUi.openMs``; each run opens another chat first, then the long one again;
* rows in the DOM after opening, and after scrolling to the middle (virtualization check).

Target: a 10,000-message chat opens in <= 150 ms.

    .venv/bin/python scripts/build_web.py
    .venv/bin/python bench/web_ui.py [--messages 10000] [--runs 7] [--url http://127.0.0.1:8000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from browser_tests.conftest import CHROMIUM, CHROMIUM_FLAGS, settle  # noqa: E402
from browser_tests.ui import sign_up, wait_online  # noqa: E402
from tests.support.accounts import unique_name  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

TARGET_OPEN_MS = 150.0
FILL = """
import time
from parley_web import main
from parley_web.chats import Chat, Row, row_enc
m = main.ui.m
now = int(time.time() * 1000)
for k, n in ((b"\\x01" * 16, {n}), (b"\\x02" * 16, 3)):
    rows = [(s, row_enc.encode(Row(s, m.user_id if s % 3 else "peer", now - (n - s) * 1000,
             "decrypted", f"message number {{s}} " + "x" * (s % 80)))) for s in range(1, n + 1)]
    for i in range(0, n, 2000):
        await m.store.put_rows(k, rows[i:i + 2000])
    await m._save_chat(Chat(k, "direct", [m.user_id], last_text=f"message number {{n}}",
                            last_state="decrypted", last_ts=now, last_seq=n))
"""


def open_ms(page: Page, title_hint: str) -> float:
    page.evaluate("window.parleyUi.openMs = null")
    page.locator(".chat", has_text=title_hint).first.click()
    page.wait_for_function("() => window.parleyUi.openMs !== null", timeout=30_000)
    return float(page.evaluate("window.parleyUi.openMs"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--url")
    args = ap.parse_args()
    srv = None
    url = args.url
    if not url:
        srv = ServerProcess(Path(tempfile.mkdtemp()) / "data")
        srv.start()
        url = srv.http_url
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            ctx = browser.new_context(viewport={"width": 1280, "height": 800})
            page = sign_up(ctx, url, unique_name("bench"))
            t0 = time.perf_counter()
            settle(
                page,
                f"window.parleyBoot.pyodide.runPythonAsync({FILL.format(n=args.messages)!r})",
                300_000,
            )
            fill_s = time.perf_counter() - t0
            page.wait_for_function(
                "() => navigator.serviceWorker.controller !== null", timeout=60_000
            )
            page.reload()
            page.wait_for_selector(".chat", timeout=60_000)
            chats_ms = page.evaluate("performance.now()")  # upper bound: polled after render
            wait_online(page, 60_000)
            opens = []
            for _ in range(args.runs):
                open_ms(page, "message number 3")
                opens.append(open_ms(page, f"message number {args.messages}"))
            dom_rows = page.locator("#conv-rows .msg").count()
            # scrolling near the top pages older rows in (the view renders a window of bubbles)
            page.evaluate("document.getElementById('conv-scroll').scrollTop = 0")
            page.wait_for_function(
                f"() => document.querySelectorAll('#conv-rows .msg').length > {dom_rows}",
                timeout=10_000,
            )
            mid_rows = page.locator("#conv-rows .msg").count()
            browser.close()
    finally:
        if srv is not None:
            srv.stop()
    med = statistics.median(opens)
    print(f"filled {args.messages} sealed rows into IndexedDB in {fill_s:.1f} s")
    print(f"reload -> cached chat list rendered: <= {chats_ms:.0f} ms after navigation start")
    print(
        f"open a {args.messages}-message chat: median {med:.1f} ms [{min(opens):.1f}-{max(opens):.1f}]"
        f" over {len(opens)} runs (target <= {TARGET_OPEN_MS:.0f} ms: {'met' if med <= TARGET_OPEN_MS else 'NOT met'})"
    )
    print(f"rows in the DOM: {dom_rows} at the bottom, {mid_rows} after one scroll to the top")


if __name__ == "__main__":
    main()
