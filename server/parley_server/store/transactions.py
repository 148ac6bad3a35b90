"""Named write transactions: every write of every engine runs under a name (like Synapse's
``runInteraction("add_tag", ...)``), so logs and metrics can say which write was slow or failed.

Engines call ``observe`` once per finished transaction; a metrics exporter (or a test) registers
an observer with ``add_observer``. Observers run in the event loop, must be cheap and must not
raise (a failing observer is logged and skipped). With the log level at debug every transaction
is also logged as ``store_txn``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

T = TypeVar("T")

Observer = Callable[[str, str, float, bool], None]
"""``(engine, name, seconds, ok)``: one call per finished write transaction."""

_observers: list[Observer] = []
log = structlog.get_logger("parley.store")
_std = logging.getLogger("parley.store")


def add_observer(observer: Observer) -> None:
    """Call ``observer`` after every named write transaction of every engine."""
    _observers.append(observer)


def remove_observer(observer: Observer) -> None:
    if observer in _observers:
        _observers.remove(observer)


def observe(engine: str, name: str, seconds: float, ok: bool) -> None:
    for observer in _observers:
        try:
            observer(engine, name, seconds, ok)
        except Exception:
            _std.exception("store transaction observer failed")
    if _debug():
        log.debug("store_txn", engine=engine, txn=name, ms=round(seconds * 1000, 3), ok=ok)


_debug_on: bool | None = None


def _debug() -> bool:
    """Whether the configured structlog level lets debug lines through (unconfigured: no);
    decided once, at the first transaction after logging was configured."""
    global _debug_on
    if _debug_on is None:
        if not structlog.is_configured():
            return False
        probe = structlog.get_logger("parley.store").bind()
        _debug_on = bool(getattr(probe, "is_enabled_for", lambda _lvl: False)(logging.DEBUG))
    return _debug_on


async def timed(engine: str, name: str, run: Awaitable[T]) -> T:
    """Await ``run`` (one write transaction) and report it under ``name``."""
    t0 = time.perf_counter()
    ok = False
    try:
        result = await run
        ok = True
        return result
    finally:
        observe(engine, name, time.perf_counter() - t0, ok)


__all__ = ["Observer", "add_observer", "observe", "remove_observer", "timed"]
