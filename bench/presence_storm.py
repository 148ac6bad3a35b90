"""Presence storm: N clients, each with K contacts, all drop and reconnect at once.

Starts its own ``parley serve`` on 127.0.0.1 (fresh data dir, default settings except cheaper
Argon2id so that setting up 1,000 accounts takes seconds; setup is not measured), registers N
users, makes each the contact of its K ring neighbours (friend request + accept), connects
everyone, takes a presence snapshot, then:

1. **storm**: closes all N sockets at once, reconnects all N at once and listens for
   ``--window`` seconds; run twice: each client sending a ``presence_get`` snapshot right after
   its Hello (as the client engine's shells do), and push-only (no snapshot);
2. **flap**: one user disconnects and reconnects ``--flaps`` times within 10 s (ending
   disconnected) while the others listen.

Reported per phase: server CPU seconds (utime+stime of the server PID from /proc, all its
threads), presence frames received by the clients (counted on the client side) and sent by the
server (its ``presence_flush`` counter in the log), and what an uncoalesced server would have
sent (one frame per state change per watching contact). Every loop is bounded in count and
time; only the server started here is signalled, by PID.

    .venv/bin/python bench/presence_storm.py [--n 1000] [--contacts 10] [--window 15]
                                             [--flaps 100] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadlib.accounts import Device, make_devices
from loadlib.server import ServerUnderTest, proc_cpu_s
from loadlib.workers import raise_nofile

from parley.protocol.codec import decode_server, encode
from parley.protocol.frames import Error, Hello, Reply, Request, SignalPush
from parley.protocol.ops import Op
from parley.protocol.signals import PresenceSignal
from parley.protocol.social import FriendAccept, FriendRequest, PresenceGet

TIMEOUT = 30.0


@dataclass
class Peer:
    """One device over a raw WebSocket: request/reply plus counting presence pushes."""

    device: Device
    ws: ClientConnection | None = None
    frames: int = 0  # PresenceSignal frames received while counting
    updates: int = 0
    _next: int = 0
    _waiting: dict[int, asyncio.Future[Reply | Error]] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None

    async def open(self, url: str) -> None:
        self.ws = await connect(url, max_size=None, compression=None, open_timeout=TIMEOUT)
        await self.ws.send(encode(Hello(token=self.device.token, client="presence-storm")))
        await asyncio.wait_for(self.ws.recv(), TIMEOUT)  # Welcome
        self._reader = asyncio.create_task(self._read(self.ws))

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for data in ws:
                frame = decode_server(data if isinstance(data, bytes) else data.encode())
                if isinstance(frame, (Reply, Error)) and frame.id in self._waiting:
                    self._waiting.pop(frame.id).set_result(frame)
                elif isinstance(frame, SignalPush) and isinstance(frame.signal, PresenceSignal):
                    self.frames += 1
                    self.updates += len(frame.signal.users)
        except Exception:
            return

    async def call(self, op: Op) -> Reply:
        assert self.ws is not None
        self._next += 1
        fut: asyncio.Future[Reply | Error] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = fut
        await self.ws.send(encode(Request(id=self._next, op=op)))
        answer = await asyncio.wait_for(fut, TIMEOUT)
        if not isinstance(answer, Reply):
            raise RuntimeError(f"{type(op).__name__}: {answer.code} {answer.message}")
        return answer

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.wait_for(asyncio.gather(self._reader, return_exceptions=True), TIMEOUT)
        self.ws = self._reader = None


def server_frames(log: str) -> int:
    """The server's own count of presence frames sent (last ``presence_flush`` line)."""
    found = re.findall(r"presence_flush.*?frames_total=(\d+)", log)
    return int(found[-1]) if found else 0


async def bounded_all(coros: list, limit: int) -> list:  # type: ignore[type-arg]
    sem = asyncio.Semaphore(limit)

    async def one(c):  # type: ignore[no-untyped-def]
        async with sem:
            return await c

    return await asyncio.wait_for(asyncio.gather(*(one(c) for c in coros)), 600)


async def run(args: argparse.Namespace) -> dict[str, object]:
    raise_nofile(4 * args.n + 256)
    srv = ServerUnderTest(None, [])
    srv.env.update({"PARLEY_ARGON2_OPSLIMIT": "1", "PARLEY_ARGON2_MEMLIMIT": str(8 * 1024 * 1024)})
    srv.start()
    assert srv.pid is not None
    try:
        t0 = time.monotonic()
        grouped, _ = await make_devices(srv.http_url, args.n, 1, concurrency=16)
        peers = [Peer(g[0]) for g in grouped]
        await bounded_all([p.open(srv.ws_url) for p in peers], 200)
        half = args.contacts // 2
        n = len(peers)
        pairs = [(i, (i + d) % n) for i in range(n) for d in range(1, half + 1)]
        await bounded_all(
            [peers[i].call(FriendRequest(user_id=peers[j].device.user_id)) for i, j in pairs], 200
        )
        await bounded_all(
            [peers[j].call(FriendAccept(user_id=peers[i].device.user_id)) for i, j in pairs], 200
        )
        await bounded_all([p.call(PresenceGet()) for p in peers], 200)
        await asyncio.sleep(2.0)  # let contact-change presence settle
        setup_s = time.monotonic() - t0
        watchers = 2 * half

        # --- storm: everyone drops and comes back at once ----------------------------------
        async def storm(snapshot: bool) -> dict[str, object]:
            await bounded_all([p.close() for p in peers], n)
            await asyncio.sleep(2.0)  # the server notices the drops (offline to nobody online)
            for p in peers:
                p.frames = p.updates = 0
            cpu0, sent0 = proc_cpu_s(srv.pid), server_frames(srv.log_tail(10**7))
            r0 = time.monotonic()
            await bounded_all([p.open(srv.ws_url) for p in peers], n)
            reconnect_s = time.monotonic() - r0
            if snapshot:
                await bounded_all([p.call(PresenceGet()) for p in peers], n)
            await asyncio.sleep(args.window)
            return {
                "snapshot_on_connect": snapshot,
                "reconnect_wall_s": round(reconnect_s, 2),
                "server_cpu_s": round(proc_cpu_s(srv.pid) - cpu0, 2),
                "frames_received_clients": sum(p.frames for p in peers),
                "updates_received_clients": sum(p.updates for p in peers),
                "frames_sent_server": server_frames(srv.log_tail(10**7)) - sent0,
                "max_frames_one_client": max(p.frames for p in peers),
                "uncoalesced_frames": 2 * n * watchers,  # offline + online, per watcher
            }

        storms = [await storm(snapshot=True), await storm(snapshot=False)]

        # --- flap: one user drops and reconnects many times within 10 s -----------------------
        flapper = peers[0]
        for p in peers:
            p.frames = p.updates = 0
        cpu0, sent0 = proc_cpu_s(srv.pid), server_frames(srv.log_tail(10**7))
        f0 = time.monotonic()
        flaps = 0
        while flaps < args.flaps and time.monotonic() - f0 < 10.0:
            await flapper.close()
            await flapper.open(srv.ws_url)
            flaps += 1
        await flapper.close()  # it ends offline: the watchers must learn that
        flap_s = time.monotonic() - f0
        await asyncio.sleep(args.window)
        watching = [peers[(0 + d) % n] for d in range(1, half + 1)]
        watching += [peers[(0 - d) % n] for d in range(1, half + 1)]
        flap = {
            "flaps": flaps,
            "flap_wall_s": round(flap_s, 2),
            "server_cpu_s": round(proc_cpu_s(srv.pid) - cpu0, 2),
            "frames_per_watcher": sorted({p.frames for p in watching}),
            "frames_received_clients": sum(p.frames for p in peers),
            "frames_sent_server": server_frames(srv.log_tail(10**7)) - sent0,
            "uncoalesced_frames_per_watcher": 2 * flaps + 1,
        }
        await bounded_all([p.close() for p in peers[1:]], n)
        return {
            "clients": n,
            "contacts_each": watchers,
            "setup_s": round(setup_s, 1),
            "window_s": args.window,
            "storm": storms,
            "flap": flap,
        }
    finally:
        srv.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="clients (users), at most 5000")
    ap.add_argument("--contacts", type=int, default=10, help="contacts per user (even)")
    ap.add_argument("--window", type=float, default=15.0, help="seconds to listen per phase")
    ap.add_argument("--flaps", type=int, default=100, help="reconnects of the flapping user")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()
    args.n = max(2 * args.contacts + 1, min(args.n, 5000))
    args.window = min(args.window, 60.0)
    args.flaps = min(args.flaps, 1000)
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
