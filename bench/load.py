"""Load tests of the Parley server through the real client engine.

    .venv/bin/python bench/load.py idle    [--n 5000]
    .venv/bin/python bench/load.py direct  [--pairs 20 --window 32 --seconds 10 --procs 1]
    .venv/bin/python bench/load.py latency [--rate 10 --rate 100 --rate 1000]
    .venv/bin/python bench/load.py group   [--members 50 --rate 500]

Unless ``--url`` is given, each run starts its OWN ``parley serve`` on 127.0.0.1 with a fresh
temporary data dir, and stops it (by PID) at the end. Users are registered and devices logged
in through the HTTP API (Argon2id: slow on purpose; the setup time is reported). Clients are
``ClientEngine`` + ``Session`` with the in-memory LocalStore, spread over ``--procs`` worker
processes. Every figure is printed with the command line, the machine load, and the CPU
seconds of the server and of the load generator over the measured window.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadlib.accounts import Device, make_devices
from loadlib.peer import Peer
from loadlib.profile import summarize
from loadlib.server import ServerUnderTest, machine_cpu_s
from loadlib.stats import fmt_ms, machine, percentile
from loadlib.workers import (
    PeerSpec,
    WorkerResult,
    WorkerSpec,
    context,
    raise_nofile,
    worker_entry,
)

from parley.client.session import RequestError
from parley.protocol.ops import Conversation, DirectOpen, GroupCreate

IDLE_PORT_LIMIT = 20_000
"""Connections per 127.0.0.x source address (below the ~28k ephemeral ports of one address)."""


# --- setup -----------------------------------------------------------------------------------
async def _open_conversations(ws_url: str, pairs: list[tuple[Device, Device]]) -> list[bytes]:
    """DirectOpen for each (sender, recipient) from short-lived sessions. Where the server
    requires contacts first (``not_contact``), both ask each other (a mutual FriendRequest
    makes them contacts) and the open is retried."""

    async def online(d: Device) -> Peer:
        peer = Peer(ws_url, d.token)
        await peer.start()
        if not await peer.wait_online(30):
            await peer.stop()
            raise RuntimeError("setup session did not come online")
        return peer

    async def one(a: Device, b: Device) -> bytes:
        pa = await online(a)
        try:
            try:
                r = await pa.session.request(DirectOpen(user_id=b.user_id), 30)
            except RequestError as exc:
                if exc.code != "not_contact":
                    raise
                await _befriend(pa, await online(b), a, b)
                r = await pa.session.request(DirectOpen(user_id=b.user_id), 30)
            assert isinstance(r, Conversation)
            return r.info.conversation_id
        finally:
            await pa.stop()

    sem = asyncio.Semaphore(50)

    async def bounded(a: Device, b: Device) -> bytes:
        async with sem:
            return await one(a, b)

    return list(await asyncio.gather(*(bounded(a, b) for a, b in pairs)))


async def _befriend(pa: Peer, pb: Peer, a: Device, b: Device) -> None:
    from parley.protocol.social import FriendRequest  # only on servers with contacts

    try:
        await pa.session.request(FriendRequest(user_id=b.user_id), 30)
        await pb.session.request(FriendRequest(user_id=a.user_id), 30)
    finally:
        await pb.stop()


async def _create_group(ws_url: str, owner: Device, others: list[Device]) -> bytes:
    peer = Peer(ws_url, owner.token)
    await peer.start()
    try:
        if not await peer.wait_online(30):
            raise RuntimeError("setup session did not come online")
        r = await peer.session.request(GroupCreate(members=[d.user_id for d in others]), 30)
        assert isinstance(r, Conversation)
        return r.info.conversation_id
    finally:
        await peer.stop()


def _split(items: list[Any], parts: int) -> list[list[Any]]:
    parts = max(1, min(parts, len(items)))
    size = math.ceil(len(items) / parts)
    return [items[i : i + size] for i in range(0, len(items), size)]


# --- running workers -------------------------------------------------------------------------
class Outcome:
    def __init__(self) -> None:
        self.results: list[WorkerResult] = []
        self.server_cpu_window_s: float | None = None
        self.machine_cpu_window_s = 0.0
        self.window_s = 0.0
        self.rss_ready_kib: int | None = None
        self.rss_end_kib: int | None = None
        self.ready_s = 0.0
        self.server_alive = True

    def total(self, name: str) -> float:
        return float(sum(getattr(r, name) for r in self.results))

    @property
    def latencies(self) -> list[float]:
        return [x for r in self.results for x in r.latencies_ms]


def run_workers(
    server: ServerUnderTest,
    specs: list[WorkerSpec],
    recipients: int,
    *,
    window_start: float,
    window_s: float,
    ready_timeout: float = 600.0,
    profile: str | None = None,
    on_ready: Callable[[], None] | None = None,
) -> Outcome:
    """Start the worker processes, wait until all are connected, give them one start time,
    read the server's CPU over the measured window, collect results, then stop them."""
    ctx = context()
    ready_q, result_q = ctx.Queue(), ctx.Queue()
    go, done = ctx.Event(), ctx.Event()
    go_at = ctx.Value("d", 0.0)
    procs = [
        ctx.Process(
            target=worker_entry,
            args=(spec, recipients, ready_q, go, go_at, done, result_q),
            daemon=True,
        )
        for spec in specs
    ]
    out = Outcome()
    out.window_s = window_s
    t0 = time.monotonic()
    for p in procs:
        p.start()
    try:
        for _ in procs:
            ready_q.get(timeout=ready_timeout)
        out.ready_s = time.monotonic() - t0
        out.rss_ready_kib = server.rss_kib()
        if on_ready is not None:
            on_ready()
        go_at.value = time.monotonic() + 0.5
        go.set()
        w0 = go_at.value + window_start
        time.sleep(max(0.0, w0 - time.monotonic()))
        c0, m0 = server.cpu_s(), machine_cpu_s()
        spy = start_profiler(server, profile, window_s)
        time.sleep(max(0.0, w0 + window_s - time.monotonic()))
        c1, m1 = server.cpu_s(), machine_cpu_s()
        if spy is not None:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()  # our own py-spy, by its Popen handle
                spy.wait(5)
        out.machine_cpu_window_s = m1 - m0
        out.rss_end_kib = server.rss_kib()
        if c0 is not None and c1 is not None:
            out.server_cpu_window_s = c1 - c0
        out.results = [result_q.get(timeout=window_s + 300) for _ in procs]
        out.server_alive = server.alive()
    finally:
        done.set()
        for p in procs:
            p.join(90)
        for p in procs:
            if p.is_alive():
                p.terminate()  # our own worker, by its Process handle (PID)
                p.join(10)
    return out


def start_profiler(
    server: ServerUnderTest, out_path: str | None, seconds: float
) -> subprocess.Popen[bytes] | None:
    """py-spy (``pip install py-spy``) sampling our server over the window, collapsed stacks;
    ``--nonblocking`` so the server is not paused, ``--gil`` so only samples of the thread
    holding the GIL count (idle waits in the loop and the writer thread drop out)."""
    if out_path is None or server.pid is None:
        return None
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    cmd = [exe, "record", "--pid", str(server.pid), "--duration", str(max(1, int(seconds))),
           "--rate", "200", "--nonblocking", "--gil", "--format", "raw", "--output", out_path]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- reporting -------------------------------------------------------------------------------
def report(
    title: str,
    lines: list[str],
    out: Outcome,
    record: dict[str, Any],
    json_out: str | None,
    unit: tuple[str, float] | None = None,
) -> None:
    """Print and record the figures. ``unit`` = (name, count in the window): CPU per unit,
    the figure that survives a shared machine (a rate per dedicated core follows from it)."""
    cmd = " ".join(["python", *sys.argv])
    w = out.window_s or 1.0
    cpu_client = out.total("cpu_window_s")
    per_proc = [r.cpu_window_s / w for r in out.results]
    srv = out.server_cpu_window_s
    others = out.machine_cpu_window_s - (srv or 0.0) - cpu_client
    print(f"\n== {title}")
    print(f"command: {cmd}")
    print(f"machine: {machine()}")
    for line in lines:
        print(line)
    if srv is not None:
        print(f"server CPU over the {w:.1f} s window: {srv:.2f} s ({srv / w:.2f} cores)")
    print(
        f"client CPU over the window: {cpu_client:.2f} s in {len(out.results)} process(es) "
        f"({', '.join(f'{c:.2f}' for c in per_proc)} cores each); client CPU total "
        f"{out.total('cpu_total_s'):.1f} s"
    )
    print(
        f"whole machine busy over the window: {out.machine_cpu_window_s / w:.2f} of "
        f"{os.cpu_count()} cores, of which other processes {max(others, 0.0) / w:.2f}"
    )
    if unit is not None and unit[1] > 0:
        name, count = unit
        per_srv = (srv or 0.0) / count * 1e6
        per_cli = cpu_client / count * 1e6
        print(
            f"CPU per {name}: server {per_srv:.0f} us (a dedicated core would do "
            f"{1e6 / max(per_srv, 1e-9):,.0f}/s), load generator {per_cli:.0f} us"
        )
        record.update(server_us_per_unit=per_srv, client_us_per_unit=per_cli, unit=name)
    verdict = bottleneck(srv, w, per_proc, out.machine_cpu_window_s / w, others / w)
    print(f"bottleneck: {verdict}")
    errors = [r.error for r in out.results if r.error]
    if errors:
        print(f"worker errors: {errors}")
    if not out.server_alive:
        print("SERVER EXITED during the run")
    record.update(
        command=cmd,
        machine=machine(),
        date=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        server_cpu_s=srv,
        client_cpu_s=cpu_client,
        client_cores_each=per_proc,
        machine_busy_cores=out.machine_cpu_window_s / w,
        other_cores=others / w,
        window_s=w,
        bottleneck=verdict,
        errors=errors,
    )
    if json_out:
        with open(json_out, "a") as f:
            f.write(json.dumps(record) + "\n")


def bottleneck(
    server_cpu: float | None, window: float, client_cores: list[float], busy: float, other: float
) -> str:
    """A reading of the CPU figures, not a proof: the server is one event loop (one core)."""
    if server_cpu is None:
        return "unknown (external server: no server CPU figure)"
    s = server_cpu / window
    c = max(client_cores, default=0.0)
    ncpu = os.cpu_count() or 1
    ours = "server" if s >= sum(client_cores) else "client"
    if busy >= 0.9 * ncpu and other >= 0.3:
        return (
            f"the machine (all {ncpu} cores busy, {other:.2f} of them other work); of ours the "
            f"{ours} used more (server {s:.2f}, clients {sum(client_cores):.2f} cores)"
        )
    if s >= 0.85 and s >= c:
        return f"server (its one event loop used {s:.2f} cores)"
    if c >= 0.85:
        return f"client (a load process used {c:.2f} cores; add --procs or cores)"
    if busy >= 0.9 * ncpu:
        return f"CPU: both cores busy (server {s:.2f}, clients {sum(client_cores):.2f} cores)"
    return f"neither saturated (server {s:.2f}, busiest client {c:.2f} cores): offered load"


# --- CLI -------------------------------------------------------------------------------------
def common(f: Any) -> Any:
    opts = [
        click.option("--url", default=None, help="Use a running server instead of starting one."),
        click.option("--procs", type=int, default=1, show_default=True, help="Load processes."),
        click.option("--json-out", default=None, help="Append a JSON line of the figures here."),
        click.option(
            "--server-arg", multiple=True, help="Extra argument for `parley serve` (repeatable)."
        ),
        click.option(
            "--profile", default=None, help="py-spy the server over the window (collapsed stacks)."
        ),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _nonempty(path: str) -> bool:
    p = Path(path)
    return p.exists() and p.stat().st_size > 0


def start_server(
    url: str | None, server_args: tuple[str, ...], tracemalloc_out: str | None = None
) -> ServerUnderTest:
    server = ServerUnderTest(url, list(server_args), tracemalloc_out)
    server.start()
    print(f"server: {server.http_url} pid {server.pid or 'external'}", flush=True)
    return server


@click.group()
def main() -> None:
    """Parley load tests (see the module docstring and bench/README.md)."""


@main.command()
@click.option("--n", type=int, default=5000, show_default=True, help="Idle connections.")
@click.option("--per-user", type=int, default=100, show_default=True, help="Devices per user.")
@click.option("--hold", type=float, default=20.0, show_default=True, help="Seconds to hold.")
@click.option("--login-concurrency", type=int, default=8, show_default=True)
@click.option("--connect-concurrency", type=int, default=200, show_default=True)
@click.option(
    "--tracemalloc",
    "tracemalloc_out",
    default=None,
    help="Run the server under tracemalloc; write where the connections' memory went here "
    "(RSS figures of such a run are inflated by tracemalloc).",
)
@common
def idle(
    n: int,
    per_user: int,
    hold: float,
    login_concurrency: int,
    connect_concurrency: int,
    url: str | None,
    procs: int,
    json_out: str | None,
    server_arg: tuple[str, ...],
    profile: str | None,
    tracemalloc_out: str | None,
) -> None:
    """Hold N idle authenticated connections; server RSS per connection."""
    per_user = max(1, min(per_user, n))
    users = math.ceil(n / per_user)
    nofile = raise_nofile(n + 1024)
    if n + 256 > nofile * max(1, procs):
        raise click.UsageError(f"fd limit {nofile} per process is too low for {n}: use --procs")
    server = start_server(url, server_arg, tracemalloc_out)
    try:
        t0 = time.monotonic()
        grouped, times = asyncio.run(
            make_devices(
                server.http_url, users, per_user, concurrency=login_concurrency, progress=True
            )
        )
        devices = [d for g in grouped for d in g][:n]
        print(
            f"setup: {times.users} users, {len(devices)} logins in {time.monotonic() - t0:.1f} s",
            flush=True,
        )
        rss0 = server.rss_kib()
        if tracemalloc_out:
            Path(tracemalloc_out).unlink(missing_ok=True)
            server.signal_probe()  # baseline snapshot
        peers = [
            PeerSpec(
                d.token,
                None,
                f"127.0.0.{1 + i // IDLE_PORT_LIMIT}" if n > IDLE_PORT_LIMIT else None,
            )
            for i, d in enumerate(devices)
        ]
        specs = [
            WorkerSpec(
                "idle",
                server.ws_url,
                i,
                chunk,
                hold_s=hold,
                warmup_s=0,
                seconds=hold,
                connect_concurrency=connect_concurrency,
            )
            for i, chunk in enumerate(_split(peers, procs))
        ]
        out = run_workers(
            server,
            specs,
            0,
            window_start=0.0,
            window_s=hold,
            profile=profile,
            on_ready=server.signal_probe if tracemalloc_out else None,
        )
        if tracemalloc_out:
            # The snapshot runs inside the server's main thread: wait (bounded) for its report.
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not _nonempty(tracemalloc_out):
                time.sleep(0.5)
            print(f"tracemalloc: see {tracemalloc_out}")
        ready = int(out.total("online_at_ready"))
        end = int(out.total("online_at_end"))
        lines = [
            f"setup: register {times.register_s:.1f} s, {times.devices} logins {times.login_s:.1f} s "
            f"({times.devices / max(times.login_s, 1e-9):.1f}/s); connect {out.ready_s:.1f} s",
            f"connected: {ready}/{n} online at ready, {end}/{n} online after {hold:.0f} s hold, "
            f"drops {int(out.total('drops'))}",
        ]
        rec: dict[str, Any] = {
            "scenario": "idle",
            "n": n,
            "online_ready": ready,
            "online_end": end,
            "login_s": times.login_s,
            "connect_s": out.ready_s,
        }
        if rss0 is not None and out.rss_ready_kib is not None and out.rss_end_kib is not None:
            per = (out.rss_ready_kib - rss0) / max(ready, 1)
            per_end = (out.rss_end_kib - rss0) / max(end, 1)
            lines.append(
                f"server RSS: before {rss0 / 1024:.1f} MiB, all connected {out.rss_ready_kib / 1024:.1f} MiB, "
                f"after hold {out.rss_end_kib / 1024:.1f} MiB -> {per:.1f} KiB per connection "
                f"({per_end:.1f} KiB after the hold)"
            )
            rec.update(
                rss_before_kib=rss0,
                rss_ready_kib=out.rss_ready_kib,
                rss_end_kib=out.rss_end_kib,
                kib_per_conn=per,
                kib_per_conn_end=per_end,
            )
        report(f"idle: {n} connections", lines, out, rec, json_out)
    finally:
        server.stop()


def _pairs_setup(
    server: ServerUnderTest, pairs: int
) -> tuple[list[tuple[Device, Device]], list[bytes], float]:
    t0 = time.monotonic()
    grouped, _ = asyncio.run(make_devices(server.http_url, 2 * pairs, 1))
    devs = [g[0] for g in grouped]
    couples = [(devs[2 * i], devs[2 * i + 1]) for i in range(pairs)]
    convs = asyncio.run(_open_conversations(server.ws_url, couples))
    return couples, convs, time.monotonic() - t0


def _pair_specs(
    scenario: str,
    server: ServerUnderTest,
    couples: list[tuple[Device, Device]],
    convs: list[bytes],
    procs: int,
    **kw: Any,
) -> list[WorkerSpec]:
    chunks = _split(list(zip(couples, convs, strict=True)), procs)
    specs = []
    for i, chunk in enumerate(chunks):
        peers = [PeerSpec(a.token, cid) for (a, _), cid in chunk]
        peers += [PeerSpec(b.token, None) for (_, b), _ in chunk]
        extra = dict(kw)
        if "rate" in kw:
            extra["rate"] = kw["rate"] / len(chunks)
            extra["phase"] = i / len(chunks)
        specs.append(WorkerSpec(scenario, server.ws_url, i, peers, **extra))
    return specs


@main.command()
@click.option("--pairs", type=int, default=20, show_default=True)
@click.option(
    "--window", type=int, default=32, show_default=True, help="Sends in flight per sender."
)
@click.option("--seconds", type=float, default=10.0, show_default=True)
@click.option("--warmup", type=float, default=3.0, show_default=True)
@common
def direct(
    pairs: int,
    window: int,
    seconds: float,
    warmup: float,
    url: str | None,
    procs: int,
    json_out: str | None,
    server_arg: tuple[str, ...],
    profile: str | None,
) -> None:
    """Sustained 1:1 messages/s: senders pipeline up to --window sends each."""
    server = start_server(url, server_arg)
    try:
        couples, convs, setup_s = _pairs_setup(server, pairs)
        specs = _pair_specs(
            "direct", server, couples, convs, procs, window=window, warmup_s=warmup, seconds=seconds
        )
        out = run_workers(server, specs, 1, window_start=warmup, window_s=seconds, profile=profile)
        sent = out.total("acked_in_window") / seconds
        dlv = out.total("delivered_in_window") / seconds
        lat = out.latencies
        lines = [
            f"setup {setup_s:.1f} s; {pairs} pairs, window {window}, {seconds:.0f} s after {warmup:.0f} s warm-up",
            f"sent (acknowledged): {sent:.0f} msgs/s; delivered (pushes stored): {dlv:.0f} msgs/s",
            f"totals: acked {int(out.total('acked_total'))}, delivered {int(out.total('delivered_total'))}, "
            f"failed {int(out.total('failed'))}, drops {int(out.total('drops'))}",
            f"latency under this load: p50 {fmt_ms(percentile(lat, 50))} ms, "
            f"p99 {fmt_ms(percentile(lat, 99))} ms ({len(lat)} samples)",
        ]
        rec = {
            "scenario": "direct",
            "pairs": pairs,
            "window": window,
            "sent_per_s": sent,
            "delivered_per_s": dlv,
            "acked_total": out.total("acked_total"),
            "delivered_total": out.total("delivered_total"),
            "drops": out.total("drops"),
            "p50_ms": percentile(lat, 50),
            "p99_ms": percentile(lat, 99),
        }
        report(
            "direct: sustained 1:1 messages",
            lines,
            out,
            rec,
            json_out,
            ("message", out.total("acked_in_window")),
        )
    finally:
        server.stop()


@main.command()
@click.option("--rate", "rates", type=float, multiple=True, help="Offered msgs/s [10, 100, 1000].")
@click.option("--pairs", type=int, default=10, show_default=True)
@click.option("--seconds", type=float, default=15.0, show_default=True)
@click.option("--warmup", type=float, default=3.0, show_default=True)
@common
def latency(
    rates: tuple[float, ...],
    pairs: int,
    seconds: float,
    warmup: float,
    url: str | None,
    procs: int,
    json_out: str | None,
    server_arg: tuple[str, ...],
    profile: str | None,
) -> None:
    """End-to-end 1:1 latency at fixed offered rates (open loop, evenly staggered senders)."""
    server = start_server(url, server_arg)
    try:
        couples, convs, setup_s = _pairs_setup(server, pairs)
        for rate in rates or (10.0, 100.0, 1000.0):
            specs = _pair_specs(
                "schedule",
                server,
                couples,
                convs,
                procs,
                rate=rate,
                warmup_s=warmup,
                seconds=seconds,
            )
            out = run_workers(
                server,
                specs,
                1,
                window_start=warmup,
                window_s=seconds,
                profile=f"{profile}.{rate:g}" if profile else None,
            )
            lat = out.latencies
            p = {q: percentile(lat, q) for q in (50, 95, 99)}
            lines = [
                f"setup {setup_s:.1f} s; {pairs} pairs; offered {rate:g} msgs/s for {seconds:.0f} s after {warmup:.0f} s warm-up",
                f"latency send->push: p50 {fmt_ms(p[50])} ms, p95 {fmt_ms(p[95])} ms, p99 {fmt_ms(p[99])} ms, "
                f"max {fmt_ms(max(lat, default=None))} ms ({len(lat)} samples)",
                f"sent in window {int(out.total('sent_in_window'))}, delivered in window "
                f"{int(out.total('delivered_in_window'))}; worst schedule lag "
                f"{max((r.max_lag_ms for r in out.results), default=0):.1f} ms; drops {int(out.total('drops'))}",
            ]
            rec = {
                "scenario": "latency",
                "rate": rate,
                "pairs": pairs,
                "samples": len(lat),
                "p50_ms": p[50],
                "p95_ms": p[95],
                "p99_ms": p[99],
            }
            report(
                f"latency at {rate:g} msgs/s",
                lines,
                out,
                rec,
                json_out,
                ("message", out.total("sent_in_window")),
            )
    finally:
        server.stop()


@main.command()
@click.option("--members", type=int, default=50, show_default=True)
@click.option("--rate", type=float, default=500.0, show_default=True, help="Aggregate msgs/s.")
@click.option("--seconds", type=float, default=10.0, show_default=True)
@click.option("--warmup", type=float, default=3.0, show_default=True)
@common
def group(
    members: int,
    rate: float,
    seconds: float,
    warmup: float,
    url: str | None,
    procs: int,
    json_out: str | None,
    server_arg: tuple[str, ...],
    profile: str | None,
) -> None:
    """Group fan-out: members send at an aggregate rate; deliveries/s and fan-out latency."""
    server = start_server(url, server_arg)
    try:
        t0 = time.monotonic()
        grouped, _ = asyncio.run(make_devices(server.http_url, members, 1))
        devs = [g[0] for g in grouped]
        cid = asyncio.run(_create_group(server.ws_url, devs[0], devs[1:]))
        setup_s = time.monotonic() - t0
        chunks = _split([PeerSpec(d.token, cid) for d in devs], procs)
        specs = [
            WorkerSpec(
                "schedule",
                server.ws_url,
                i,
                chunk,
                rate=rate / len(chunks),
                phase=i / len(chunks),
                warmup_s=warmup,
                seconds=seconds,
            )
            for i, chunk in enumerate(chunks)
        ]
        out = run_workers(
            server, specs, members - 1, window_start=warmup, window_s=seconds, profile=profile
        )
        lat = out.latencies
        dlv = out.total("delivered_in_window") / seconds
        offered = rate * (members - 1)
        lines = [
            f"setup {setup_s:.1f} s; {members} members, offered {rate:g} msgs/s "
            f"(= {offered:.0f} deliveries/s) for {seconds:.0f} s after {warmup:.0f} s warm-up",
            f"deliveries: {dlv:.0f}/s ({dlv / offered * 100:.0f} % of offered); sends acked "
            f"{out.total('acked_in_window') / seconds:.0f}/s",
            f"fan-out latency send->each push: p50 {fmt_ms(percentile(lat, 50))} ms, "
            f"p99 {fmt_ms(percentile(lat, 99))} ms ({len(lat)} samples, same-process recipients)",
            f"totals: acked {int(out.total('acked_total'))}, delivered {int(out.total('delivered_total'))} "
            f"of {int(out.total('expected_deliveries'))} expected; drops {int(out.total('drops'))}; "
            f"worst schedule lag {max((r.max_lag_ms for r in out.results), default=0):.1f} ms",
        ]
        rec = {
            "scenario": "group",
            "members": members,
            "rate": rate,
            "deliveries_per_s": dlv,
            "p50_ms": percentile(lat, 50),
            "p99_ms": percentile(lat, 99),
            "drops": out.total("drops"),
        }
        report(
            f"group: {members} members",
            lines,
            out,
            rec,
            json_out,
            ("delivery", out.total("delivered_in_window")),
        )
    finally:
        server.stop()


@main.command("profile-summary")
@click.argument("path")
@click.option("--top", type=int, default=25, show_default=True)
def profile_summary(path: str, top: int) -> None:
    """Summarise a --profile file: self and inclusive shares of the server's samples."""
    print(summarize(path, top))


if __name__ == "__main__":
    main()
