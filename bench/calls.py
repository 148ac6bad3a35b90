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

Figures are printed, never asserted. Only processes started here are signalled, by PID.

    .venv/bin/python bench/calls.py [--n 10]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10, help="calls to place, one after the other")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="parley-bench-calls-") as d:
        out = asyncio.run(run(args.n, Path(d)))
    rings = [x * 1000 for x in out["ring_s"]]  # type: ignore[attr-defined]
    conns = [x * 1000 for x in out["connect_s"]]  # type: ignore[attr-defined]
    cpu = float(out["server_cpu_s"])  # type: ignore[arg-type]
    print(f"command: .venv/bin/python bench/calls.py --n {args.n}")
    print(f"calls: {args.n}, CPython aiortc devices, relay-only through coturn on loopback")
    print(f"call -> callee ringing:        median {statistics.median(rings):7.1f} ms "
          f"(min {min(rings):.1f}, max {max(rings):.1f})")  # fmt: skip
    print(f"accept -> connected + media:   median {statistics.median(conns):7.1f} ms "
          f"(min {min(conns):.1f}, max {max(conns):.1f})")  # fmt: skip
    print(f"server CPU per call set-up:    {cpu / args.n * 1000:7.1f} ms "
          f"({cpu:.2f} s for {args.n} calls, place to hang-up)")  # fmt: skip


if __name__ == "__main__":
    main()
