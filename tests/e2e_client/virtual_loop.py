"""An asyncio loop on virtual time, for driver tests that must also run inside Pyodide.

Pyodide's browser loop cannot ``run_until_complete``, so async tests are skipped there (see
``tests/conftest.py``); a test that calls ``run(coro)`` instead runs in both runtimes. Nothing
here does I/O: when no callback is ready the clock jumps to the next timer, so hours of key
maintenance and request backoff pass in no real time, and the same run always does the same
thing. A run with nothing ready and nothing scheduled is a deadlock, and one whose clock never
moves is busy forever: both raise.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Deadlock(RuntimeError):
    pass


BUSY_LIMIT = 200_000
"""Loop iterations in a row without the clock moving: something spins (a timer re-armed with
no delay, forever); the run raises instead of hanging."""


class _Clock:
    """The loop's selector: ``select(timeout)`` advances the clock instead of waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.still = 0

    def select(self, timeout: float | None) -> list[Any]:
        if timeout is None:
            raise Deadlock("nothing ready and no timer: the test would wait forever")
        self.still = 0 if timeout > 0 else self.still + 1
        if self.still > BUSY_LIMIT:
            raise Deadlock("busy: the clock has not moved for a long time")
        self.now += timeout
        return []

    def close(self) -> None:
        pass


class VirtualTimeLoop(asyncio.BaseEventLoop):
    def __init__(self) -> None:
        super().__init__()
        self._clock = _Clock()
        self._selector = self._clock

    def time(self) -> float:
        return self._clock.now

    def _process_events(self, event_list: list[Any]) -> None:
        pass

    def _write_to_self(self) -> None:
        pass


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh virtual-time loop (then cancel what is left)."""
    loop = VirtualTimeLoop()
    # Pyodide runs pytest inside a task of its browser loop: step out of it for the run (the
    # running loop and the current task are per thread), and back in afterwards
    outer = asyncio.events._get_running_loop()
    outer_task = asyncio.current_task(outer) if outer is not None else None
    if outer is not None and outer_task is not None:
        asyncio.tasks._leave_task(outer, outer_task)
    asyncio.events._set_running_loop(None)
    try:
        return loop.run_until_complete(coro)
    finally:
        try:
            rest = asyncio.all_tasks(loop)
            for t in rest:
                t.cancel()
            if rest:
                with contextlib.suppress(Deadlock):  # a busy loop stays busy: just stop
                    loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
            loop.close()
        finally:
            asyncio.events._set_running_loop(outer)
            if outer is not None and outer_task is not None:
                asyncio.tasks._enter_task(outer, outer_task)
