"""Prometheus metrics of one server process, and the hook points engines report through.

Served on a port of their own (``--metrics-port`` / ``PARLEY_METRICS_PORT``; off by default), so
the public listener never exposes them. Labels are low-cardinality by rule: an op name, an
engine, an error or close code; never a user, device or conversation id.

Engines report their round-trips with ``backend_roundtrip("redis", "append")`` (a context
manager) or ``observe_backend(...)``: one histogram, ``parley_backend_roundtrip_seconds``, labelled
by backend (``redis``, ``s3``) and a short op name chosen by the engine (a fixed set per engine).
Store engines time their calls with ``observe_store(engine, op, seconds)``.

Process CPU and memory come from prometheus-client's own ``ProcessCollector`` (``process_*``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip

CONNECTIONS = Gauge("parley_connections", "Authenticated WebSocket connections open now.")
CONNECTIONS_OPENED = Counter("parley_connections_opened_total", "WebSocket sessions accepted.")
CLOSES = Counter("parley_ws_closes_total", "WebSocket sessions ended, by close code.", ["code"])
MESSAGES = Counter("parley_messages_total", "Conversation messages appended (not duplicates).")
DELIVERIES = Counter(
    "parley_deliveries_total", "Frames pushed to connected devices by the fan-out (per socket)."
)
REQUESTS = Counter("parley_requests_total", "WebSocket requests handled, by op.", ["op"])
ERRORS = Counter(
    "parley_errors_total", "Error replies, by transport (ws/http) and code.", ["transport", "code"]
)
RATE_LIMITED = Counter(
    "parley_rate_limit_refusals_total", "Requests refused with rate_limited, by transport.",
    ["transport"],
)  # fmt: skip
STORE_SECONDS = Histogram(
    "parley_store_seconds",
    "Store call latency (a write: submit to durable; commit: one group-commit transaction).",
    ["engine", "op"],
    buckets=_LATENCY_BUCKETS,
)
BACKEND_SECONDS = Histogram(
    "parley_backend_roundtrip_seconds",
    "Round-trips of external engines (Redis, S3), by backend and op.",
    ["backend", "op"],
    buckets=_LATENCY_BUCKETS,
)
BACKEND_ERRORS = Counter(
    "parley_backend_errors_total", "Failed round-trips of external engines.", ["backend", "op"]
)
SEND_QUEUE_FRAMES = Gauge(
    "parley_send_queue_frames", "Frames waiting in connections' send queues (sum, max).", ["agg"]
)
STORE_QUEUE = Gauge("parley_store_queue_jobs", "Write jobs waiting for the store's writer.")
DRAINING = Gauge("parley_draining", "1 while the server drains for shutdown.")
ADMIN_CLOSES = Counter(
    "parley_admin_closes_total", "Sockets closed because an operator disabled or deleted a user."
)


def observe_store(engine: str, op: str, seconds: float) -> None:
    STORE_SECONDS.labels(engine, op).observe(seconds)


def observe_backend(backend: str, op: str, seconds: float, ok: bool = True) -> None:
    BACKEND_SECONDS.labels(backend, op).observe(seconds)
    if not ok:
        BACKEND_ERRORS.labels(backend, op).inc()


@contextlib.contextmanager
def backend_roundtrip(backend: str, op: str) -> Iterator[None]:
    """Time one round-trip to Redis/S3; an exception counts as an error and propagates."""
    t0 = time.perf_counter()
    ok = False
    try:
        yield
        ok = True
    finally:
        observe_backend(backend, op, time.perf_counter() - t0, ok)


def observe_store_transactions() -> Callable[[], None]:
    """Feed every named store transaction into ``parley_store_seconds``; returns the undo."""
    from parley_server.store import transactions

    def observer(engine: str, name: str, seconds: float, ok: bool) -> None:
        STORE_SECONDS.labels(engine, name).observe(seconds)
        if not ok:
            BACKEND_ERRORS.labels(engine, name).inc()

    transactions.add_observer(observer)
    return lambda: transactions.remove_observer(observer)


def count_error(transport: str, code: str) -> None:
    ERRORS.labels(transport, code).inc()
    if code == "rate_limited":
        RATE_LIMITED.labels(transport).inc()


def watch_send_queues(backlogs: Callable[[], Iterator[int]]) -> None:
    """Sample the connections' send queue lengths at scrape time (no per-frame cost)."""

    def total() -> float:
        return float(sum(backlogs()))

    def peak() -> float:
        return float(max(backlogs(), default=0))

    SEND_QUEUE_FRAMES.labels("sum").set_function(total)
    SEND_QUEUE_FRAMES.labels("max").set_function(peak)


def watch_store_queue(depth: Callable[[], int]) -> None:
    STORE_QUEUE.set_function(lambda: float(depth()))


def serve_metrics(port: int, host: str) -> None:
    """Expose ``/metrics`` on its own port, from a daemon thread."""
    start_http_server(port, addr=host, registry=REGISTRY)


__all__ = [
    "backend_roundtrip",
    "count_error",
    "observe_backend",
    "observe_store",
    "serve_metrics",
    "watch_send_queues",
    "watch_store_queue",
]
