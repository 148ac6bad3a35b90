"""Store benchmark: append throughput and ack latency, history reads, conversation_states.

    .venv/bin/python bench/store_bench.py [--engine sqlite] [--appends 20000] [--uvloop]

Every loop is bounded both in count and in time (``--max-seconds`` per phase). The data lives
in a temporary directory that is removed afterwards. Also measures what a read would cost if
it hopped to a thread instead of running on the event loop (the SQLite engine's choice).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from parley_server.store.base import Store
from parley_server.store.sqlite import SqliteStore

NOW = 1_800_000_000_000


def make_engine(name: str, data_dir: Path) -> Store:
    if name == "sqlite":
        return SqliteStore(data_dir / "bench.db")
    raise SystemExit(f"unknown engine {name!r}")


def pct(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]


async def timed_loop(
    fn: Callable[[], Awaitable[object]], count: int, max_s: float
) -> tuple[int, float, list[float]]:
    """Run ``fn`` up to ``count`` times or ``max_s`` seconds; (done, elapsed s, latencies ms)."""
    lat: list[float] = []
    start = time.perf_counter()
    deadline = start + max_s
    for _ in range(count):
        t0 = time.perf_counter()
        await fn()
        lat.append((time.perf_counter() - t0) * 1000)
        if t0 > deadline:
            break
    return len(lat), time.perf_counter() - start, lat


async def bench_appends(store: Store, owner: str, total: int, producers: int, max_s: float) -> None:
    conv = os.urandom(16)
    await store.create_group(owner, [], b"", conv, NOW)
    per = total // producers
    deadline = time.perf_counter() + max_s
    latencies: list[float] = []

    async def produce(p: int) -> None:
        for i in range(per):
            t0 = time.perf_counter()
            await store.append_message(conv, owner, 1 + p % 4, f"{p}-{i}", b"\0" * 200, NOW)
            latencies.append((time.perf_counter() - t0) * 1000)
            if t0 > deadline:
                return

    writer = getattr(store, "_writer", None)
    batches0 = getattr(writer, "batches", 0)
    start = time.perf_counter()
    await asyncio.gather(*(produce(p) for p in range(producers)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    line = (
        f"append ({producers} producers, 200 B envelopes): {len(latencies) / elapsed:,.0f}/s"
        f"  ({len(latencies)} in {elapsed:.2f} s)  ack p50 {pct(latencies, 0.5):.2f} ms"
        f"  p99 {pct(latencies, 0.99):.2f} ms"
    )
    if writer is not None:
        line += f"  avg group-commit batch {len(latencies) / (writer.batches - batches0):.1f}"
    print(line)


async def bench_history(store: Store, owner: str, entries: int, count: int, max_s: float) -> None:
    conv = os.urandom(16)
    await store.create_group(owner, [], b"", conv, NOW)
    await asyncio.gather(
        *(store.append_message(conv, owner, 1, f"h{i}", b"\0" * 200, NOW) for i in range(entries))
    )
    rnd = random.Random(1)

    async def one() -> object:
        return await store.history(conv, rnd.randrange(0, entries - 100), None, 100)

    done, elapsed, lat = await timed_loop(one, count, max_s)
    lat.sort()
    print(
        f"history(after, limit 100) over {entries:,} entries: {done / elapsed:,.0f} queries/s"
        f"  p50 {pct(lat, 0.5):.3f} ms  p99 {pct(lat, 0.99):.3f} ms"
    )

    async def latest() -> object:
        return await store.history(conv, None, None, 100)

    done, elapsed, lat = await timed_loop(latest, count, max_s)
    print(f"history(latest 100): {done / elapsed:,.0f} queries/s")


async def bench_states(store: Store, convs: int, count: int, max_s: float) -> None:
    owner = (await store.create_user("states-user", b"x", NOW)).user_id
    other = (await store.create_user("states-peer", b"x", NOW)).user_id
    await asyncio.gather(
        *(store.create_group(owner, [other], b"", os.urandom(16), NOW) for _ in range(convs))
    )
    n = len(await store.conversation_states(owner))
    done, _elapsed, lat = await timed_loop(lambda: store.conversation_states(owner), count, max_s)
    print(
        f"conversation_states, user in {n:,} conversations: median {statistics.median(lat):.2f} ms"
        f"  p99 {pct(sorted(lat), 0.99):.2f} ms  ({done} calls)"
    )
    some = os.urandom(16)
    await store.create_group(owner, [other], b"", some, NOW)
    _done, _elapsed, lat = await timed_loop(lambda: store.member_role(some, other), count, max_s)
    print(f"member_role (hot path): median {statistics.median(lat) * 1000:.1f} µs")


async def bench_thread_hop(count: int) -> None:
    """What running each read in a thread would add on top of the read itself."""
    _done, _elapsed, lat = await timed_loop(lambda: asyncio.to_thread(int), count, 10.0)
    print(
        f"thread hop alone (asyncio.to_thread of a no-op): median {statistics.median(lat) * 1000:.1f} µs"
    )


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        store = make_engine(args.engine, Path(tmp))
        await store.open()
        try:
            owner = (await store.create_user("bench-owner", b"x", NOW)).user_id
            await bench_appends(store, owner, args.appends, args.producers, args.max_seconds)
            await bench_history(store, owner, args.history_entries, args.queries, args.max_seconds)
            await bench_states(store, args.conversations, args.states_calls, args.max_seconds)
            await bench_thread_hop(args.queries)
        finally:
            await store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--engine", default="sqlite")
    ap.add_argument("--appends", type=int, default=20_000)
    ap.add_argument("--producers", type=int, default=64)
    ap.add_argument("--history-entries", type=int, default=5_000)
    ap.add_argument("--queries", type=int, default=5_000)
    ap.add_argument("--conversations", type=int, default=1_000)
    ap.add_argument("--states-calls", type=int, default=200)
    ap.add_argument("--max-seconds", type=float, default=20.0, help="time bound per phase")
    ap.add_argument("--uvloop", action="store_true")
    args = ap.parse_args()
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print(
        f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
        f"engine {args.engine}, loop {'uvloop' if args.uvloop else 'asyncio'}, "
        f"{os.cpu_count()} cpus"
    )
    if args.uvloop:
        import uvloop

        uvloop.run(run(args))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
