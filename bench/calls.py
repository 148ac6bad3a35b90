"""Call set-up through a real TURN relay: time from "call" to the callee ringing, from accept to
connected with media flowing both ways, and the server's CPU per call set-up.

Starts its own coturn (``tests/support/coturn.py``) and ``parley serve`` (with TURN credentials)
on loopback, two CPython devices (``parley_client.calls``, aiortc, relay candidates only) that
are contacts, then places ``--n`` calls one after the other (alice calls, bob answers as soon as
it rings, both hang up after media flowed). Measured on one clock in one process:

* ``ring``: ``place()`` called -> the callee's device rings (invite encrypted, through the
  server's to-device queue, decrypted, contact checked);
* ``connect``: ``accept()`` -> both sides ``connected`` and both have received audio (accept,
  offer, answer, ICE through TURN, DTLS, first RTP);
* server CPU: utime+stime of the server PID over the calls (place to hang-up; TURN credential
  requests and to-device routing included), divided by the number of calls.

With ``--browser``, the same with two headless Chromium pages (fake camera and microphone,
relay only) driven like a user: ``ring`` runs from the click on the call button to the callee's
ringtone starting, ``connect`` from the click on "accept" to inbound audio bytes on both pages
(getStats, polled every 20 ms); the times are the pages' own ``Date.now()`` marks. Needs the web
assets (``scripts/build_web.py``) and Debian's Chromium.

Figures are printed, never asserted. Only processes started here are signalled, by PID.

    .venv/bin/python bench/calls.py [--n 10] [--browser]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from loadlib.server import proc_cpu_s  # noqa: E402

from parley.client.call import CallState  # noqa: E402
from parley_client.calls import Calls  # noqa: E402
from parley_client.e2e_client import E2EClient  # noqa: E402
from tests.integration.social_support import befriend, connect  # noqa: E402
from tests.support.accounts import new_user  # noqa: E402
from tests.support.coturn import Coturn  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402


class Timed(Calls):
    """Records when the device starts ringing, and answers at once."""

    def __init__(self, e2e: E2EClient) -> None:
        super().__init__(e2e, relay_only=True)
        self.rang_at: float | None = None
        self.accepted_at: float | None = None

    def ring(self, on: bool, peer: str, video: bool) -> None:
        super().ring(on, peer, video)
        if on:
            self.rang_at = time.perf_counter()
            self.accepted_at = time.perf_counter()
            self.driver.accept(False)


async def _until(pred, timeout: float) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.002)


async def run(n: int, tmp: Path) -> dict[str, object]:
    turn = Coturn(tmp)
    turn.start()
    env = {
        "PARLEY_TURN_URI": turn.uri,
        "PARLEY_TURN_SECRET": turn.secret,
        "PARLEY_TURN_LIMIT": "100000",
        "PARLEY_LOG_LEVEL": "warning",
    }
    srv = ServerProcess(tmp / "data", env=env)
    srv.start()
    clients: list[E2EClient] = []
    calls: list[Calls] = []
    try:
        (a,) = new_user(srv.http_url, "bcalla")
        (b,) = new_user(srv.http_url, "bcallb")
        ra, rb = await connect(srv, a), await connect(srv, b)
        await befriend(ra, rb, a.user_id, b.user_id)
        await ra.close()
        await rb.close()
        for who, name in ((a, "a"), (b, "b")):
            e2e = E2EClient(srv.http_url, who.user_id, who.device_id, who.token, tmp / f"{name}.db")
            await e2e.start()
            await e2e.wait_online(30)
            clients.append(e2e)
        alice = Calls(clients[0], relay_only=True)
        bob = Timed(clients[1])
        calls += [alice, bob]
        for k in calls:
            k.start()
        rings: list[float] = []
        connects: list[float] = []
        assert srv.proc is not None
        cpu0 = proc_cpu_s(srv.proc.pid)
        for _ in range(n):
            bob.rang_at = None
            t0 = time.perf_counter()
            await alice.driver.place(b.user_id, video=False)
            await _until(lambda: bob.rang_at is not None, 60)
            assert bob.rang_at is not None and bob.accepted_at is not None
            rings.append(bob.rang_at - t0)

            def flowing() -> bool:
                ca, cb = alice.driver.m.current, bob.driver.m.current
                return (
                    ca is not None and cb is not None
                    and ca.state == CallState.CONNECTED and cb.state == CallState.CONNECTED
                    and alice.peers[-1].received["audio"] > 0
                    and bob.peers[-1].received["audio"] > 0
                )  # fmt: skip

            await _until(flowing, 60)
            connects.append(time.perf_counter() - bob.accepted_at)
            alice.driver.hangup()
            await bob.wait_state(CallState.ENDED, timeout=30)
            await alice.driver.idle()
            await bob.driver.idle()
            alice.driver.dismiss()
            bob.driver.dismiss()
        cpu = proc_cpu_s(srv.proc.pid) - cpu0
        return {"n": n, "ring_s": rings, "connect_s": connects, "server_cpu_s": cpu}
    finally:
        for k in calls:
            await k.close()
        for c in clients:
            await c.close()
        srv.stop()
        turn.stop()


def run_browser(n: int, tmp: Path) -> dict[str, object]:
    import json
    import subprocess

    from playwright.sync_api import Page, expect, sync_playwright

    from browser_tests.conftest import CHROMIUM, CHROMIUM_FLAGS
    from browser_tests.ui import become_contacts, open_direct, sign_up
    from tests.support.accounts import unique_name

    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_web.py")], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    turn = Coturn(tmp)
    turn.start()
    env = {"PARLEY_TURN_URI": turn.uri, "PARLEY_TURN_SECRET": turn.secret,
           "PARLEY_TURN_LIMIT": "100000", "PARLEY_LOG_LEVEL": "warning"}  # fmt: skip
    srv = ServerProcess(tmp / "data", env=env)
    srv.start()
    flags = [
        *CHROMIUM_FLAGS,
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        "--allow-loopback-in-peer-connection",
        "--autoplay-policy=no-user-gesture-required",
    ]
    relay = "try { localStorage.setItem('parley.call_relay', '1') } catch (e) {}"

    def marks(p: Page) -> dict[str, float]:
        out: dict[str, float] = json.loads(p.evaluate("JSON.stringify(parleyUi.callMarks)"))
        return out

    def audio_in(p: Page) -> int:
        return int(json.loads(p.evaluate("() => window.parleyUi.callStats()"))["audio"])

    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=flags)
            pages = []
            for _ in range(2):
                ctx = browser.new_context()
                ctx.add_init_script(relay)
                pages.append(ctx)
            an, bn = unique_name("bca"), unique_name("bcb")
            a = sign_up(pages[0], srv.http_url, an)
            b = sign_up(pages[1], srv.http_url, bn)
            become_contacts(a, b, bn, an)
            open_direct(a, bn)
            open_direct(b, an)
            rings: list[float] = []
            connects: list[float] = []
            assert srv.proc is not None
            cpu0 = proc_cpu_s(srv.proc.pid)
            for _ in range(n):
                a.click("#call-voice")
                expect(b.locator("#call-banner")).to_be_visible(timeout=60_000)
                b.click("#call-accept-voice")
                deadline = time.monotonic() + 60
                while not (audio_in(a) > 0 and audio_in(b) > 0):
                    assert time.monotonic() < deadline, "no media"
                    a.wait_for_timeout(20)
                flowing = float(a.evaluate("Date.now()"))
                ma, mb = marks(a), marks(b)
                rings.append((mb["ring"] - ma["clicked"]) / 1000)
                connects.append((flowing - mb["accept"]) / 1000)
                a.click("#call-hangup")
                for p in (a, b):
                    p.wait_for_selector("body[data-call-state=ended]", state="attached")
            cpu = proc_cpu_s(srv.proc.pid) - cpu0
            browser.close()
        return {"n": n, "ring_s": rings, "connect_s": connects, "server_cpu_s": cpu}
    finally:
        srv.stop()
        turn.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10, help="calls to place, one after the other")
    ap.add_argument("--browser", action="store_true", help="two Chromium pages, not aiortc")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="parley-bench-calls-") as d:
        out = run_browser(args.n, Path(d)) if args.browser else asyncio.run(run(args.n, Path(d)))
    rings = [x * 1000 for x in out["ring_s"]]  # type: ignore[attr-defined]
    conns = [x * 1000 for x in out["connect_s"]]  # type: ignore[attr-defined]
    cpu = float(out["server_cpu_s"])  # type: ignore[arg-type]
    flag = " --browser" if args.browser else ""
    who = "headless Chromium pages" if args.browser else "CPython aiortc devices"
    print(f"command: .venv/bin/python bench/calls.py --n {args.n}{flag}")
    print(f"calls: {args.n}, {who}, relay-only through coturn on loopback")
    print(f"call -> callee ringing:        median {statistics.median(rings):7.1f} ms "
          f"(min {min(rings):.1f}, max {max(rings):.1f})")  # fmt: skip
    print(f"accept -> connected + media:   median {statistics.median(conns):7.1f} ms "
          f"(min {min(conns):.1f}, max {max(conns):.1f})")  # fmt: skip
    print(f"server CPU per call set-up:    {cpu / args.n * 1000:7.1f} ms "
          f"({cpu:.2f} s for {args.n} calls, place to hang-up)")  # fmt: skip


if __name__ == "__main__":
    main()
