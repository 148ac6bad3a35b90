"""Load-generator processes. Each worker owns a slice of the peers, connects them, reports
``ready``, waits for the parent's ``go`` (a shared monotonic start time, valid across
processes on Linux), runs its share of the scenario and reports its counts.

Every loop is bounded by time (deadlines derived from ``go_at``) and by count.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import resource
import time
from dataclasses import dataclass, field
from typing import Any

from loadlib.peer import Peer, envelope_number

_WORKER_SHIFT = 52


@dataclass(frozen=True)
class PeerSpec:
    token: str
    conversation_id: bytes | None = None  # where this peer sends; None: it only receives
    local_addr: str | None = None


@dataclass(frozen=True)
class WorkerSpec:
    scenario: str  # idle | direct | schedule (latency and group: open-loop sends)
    ws_url: str
    index: int  # this worker's number; the top bits of every message number
    peers: list[PeerSpec]
    window: int = 64  # direct: most sends in flight per sender
    rate: float = 0.0  # schedule: this worker's messages/s
    phase: float = 0.0  # schedule: offset of this worker's slots, in units of 1/rate
    warmup_s: float = 3.0
    seconds: float = 10.0
    drain_s: float = 5.0
    hold_s: float = 10.0  # idle
    connect_concurrency: int = 200
    connect_timeout_s: float = 300.0
    max_messages: int = 10_000_000


@dataclass
class WorkerResult:
    peers: int = 0
    online_at_ready: int = 0
    online_at_end: int = 0
    drops: int = 0
    connect_s: float = 0.0
    sent_in_window: int = 0
    acked_in_window: int = 0
    delivered_in_window: int = 0
    acked_total: int = 0
    delivered_total: int = 0
    expected_deliveries: int = 0
    failed: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    max_lag_ms: float = 0.0
    cpu_window_s: float = 0.0
    cpu_total_s: float = 0.0
    error: str = ""


def raise_nofile(want: int) -> int:
    """Raise the soft fd limit toward ``want`` (at most the hard limit); returns the new one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard == resource.RLIM_INFINITY else min(hard, max(soft, want))
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class _Run:
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.res = WorkerResult(peers=len(spec.peers))
        self.w0 = self.w1 = float("inf")
        self.sent_at: dict[int, float] = {}
        self.recipients = 1
        self.peers = [
            Peer(
                spec.ws_url,
                p.token,
                local_addr=p.local_addr,
                send_window=spec.window,
                on_delivery=self._delivered,
                on_sent=self._acked,
            )
            for p in spec.peers
        ]

    def _delivered(self, peer: Peer, env: bytes) -> None:
        t = time.monotonic()
        self.res.delivered_total += 1
        if self.w0 <= t < self.w1:
            self.res.delivered_in_window += 1
        number = envelope_number(env)
        if number >> _WORKER_SHIFT != self.spec.index:
            return  # sent by another process: its clock entry is not here
        sent = self.sent_at.get(number)
        if sent is not None and self.w0 <= sent < self.w1:
            self.res.latencies_ms.append((t - sent) * 1000.0)

    def _acked(self, peer: Peer) -> None:
        t = time.monotonic()
        self.res.acked_total += 1
        if self.w0 <= t < self.w1:
            self.res.acked_in_window += 1

    async def connect(self) -> None:
        spec = self.spec
        t0 = time.monotonic()
        deadline = t0 + spec.connect_timeout_s
        step = max(1, spec.connect_concurrency)
        for i in range(0, len(self.peers), step):
            batch = self.peers[i : i + step]
            for p in batch:
                await p.start()
            left = max(1.0, deadline - time.monotonic())
            await asyncio.gather(*(p.wait_online(left) for p in batch))
            if time.monotonic() > deadline:
                break
        self.res.connect_s = time.monotonic() - t0
        self.res.online_at_ready = sum(p.online for p in self.peers)

    async def run(self, go_at: float) -> None:
        spec = self.spec
        self.w0 = go_at + spec.warmup_s
        self.w1 = self.w0 + spec.seconds
        delay = go_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        drops0 = sum(p.drops for p in self.peers)
        if spec.scenario == "idle":
            self.w0, self.w1 = go_at, go_at + spec.hold_s
            cpu0 = time.process_time()
            await asyncio.sleep(max(0.0, self.w1 - time.monotonic()))
            self.res.cpu_window_s = time.process_time() - cpu0
        else:
            senders = [
                (p, s.conversation_id)
                for p, s in zip(self.peers, spec.peers, strict=True)
                if s.conversation_id is not None
            ]
            cpu_task = asyncio.ensure_future(self._cpu_in_window())
            if spec.scenario == "direct":
                await asyncio.gather(
                    *(self._closed_loop(p, c, i) for i, (p, c) in enumerate(senders))
                )
            else:
                await self._open_loop(senders, go_at)
            await cpu_task
            await self._drain()
        self.res.online_at_end = sum(p.online for p in self.peers)
        self.res.drops = sum(p.drops for p in self.peers) - drops0
        self.res.failed = sum(p.failed for p in self.peers)

    async def _cpu_in_window(self) -> None:
        await asyncio.sleep(max(0.0, self.w0 - time.monotonic()))
        c0 = time.process_time()
        await asyncio.sleep(max(0.0, self.w1 - time.monotonic()))
        self.res.cpu_window_s = time.process_time() - c0

    async def _closed_loop(self, peer: Peer, cid: bytes, index: int) -> None:
        """Keep ``window`` sends in flight until the window ends (bounded by count too)."""
        spec = self.spec
        n = (spec.index << _WORKER_SHIFT) | (index << 32)
        sent = 0
        while sent < spec.max_messages:
            t = time.monotonic()
            if t >= self.w1:
                break
            if peer.outbox_len() >= spec.window:
                peer.room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(peer.room.wait(), max(0.01, self.w1 - t))
                continue
            n += 1
            self.sent_at[n] = t
            await peer.send(cid, n)
            sent += 1
            if self.w0 <= t:
                self.res.sent_in_window += 1
            if sent % 64 == 0:
                await asyncio.sleep(0)  # let the receive side run
        self.res.expected_deliveries += sent * self.recipients

    async def _open_loop(self, senders: list[tuple[Peer, bytes]], go_at: float) -> None:
        """Message i at go_at + (i + phase)/rate from sender i mod len(senders): an open-loop,
        evenly staggered schedule that does not wait for replies."""
        spec = self.spec
        if spec.rate <= 0 or not senders:
            await asyncio.sleep(max(0.0, self.w1 - time.monotonic()))
            return
        interval = 1.0 / spec.rate
        base = spec.index << _WORKER_SHIFT
        i = 0
        while i < spec.max_messages:
            slot = go_at + (i + spec.phase) * interval
            if slot >= self.w1:
                break
            delay = slot - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            peer, cid = senders[i % len(senders)]
            t = time.monotonic()
            self.res.max_lag_ms = max(self.res.max_lag_ms, (t - slot) * 1000.0)
            self.sent_at[base | i] = t
            await peer.send(cid, base | i)
            if self.w0 <= t < self.w1:
                self.res.sent_in_window += 1
            i += 1
        self.res.expected_deliveries += i * self.recipients

    async def _drain(self) -> None:
        """After the window: wait (bounded) for outstanding acks and deliveries."""
        deadline = time.monotonic() + self.spec.drain_s
        while time.monotonic() < deadline:
            pending = sum(p.outbox_len() for p in self.peers)
            if pending == 0 and self.res.delivered_total >= self.res.expected_deliveries:
                break
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.peers), return_exceptions=True)


async def _wait_mp(evt: Any, timeout: float) -> bool:
    return bool(await asyncio.get_running_loop().run_in_executor(None, evt.wait, timeout))


async def _main(
    spec: WorkerSpec, recipients: int, ready_q: Any, go: Any, go_at: Any, done: Any, result_q: Any
) -> None:
    run = _Run(spec)
    run.recipients = recipients
    announced = False
    try:
        await run.connect()
        ready_q.put(("ready", run.res.online_at_ready, run.res.connect_s))
        announced = True
        if not await _wait_mp(go, spec.connect_timeout_s + 60):
            raise TimeoutError("no go from the parent")
        await run.run(go_at.value)
    except Exception as exc:  # report, do not hang the parent
        run.res.error = f"{type(exc).__name__}: {exc}"
        if not announced:
            ready_q.put(("ready", run.res.online_at_ready, run.res.connect_s))
    run.res.cpu_total_s = time.process_time()
    result_q.put(run.res)
    await _wait_mp(done, 120)
    await asyncio.wait_for(run.stop(), 60)


def worker_entry(
    spec: WorkerSpec, recipients: int, ready_q: Any, go: Any, go_at: Any, done: Any, result_q: Any
) -> None:
    """Process target: uvloop when present (the server uses it too), else asyncio."""
    raise_nofile(len(spec.peers) + 256)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(_main(spec, recipients, ready_q, go, go_at, done, result_q))
    else:
        uvloop.run(_main(spec, recipients, ready_q, go, go_at, done, result_q))


def context() -> Any:
    return mp.get_context("spawn")
