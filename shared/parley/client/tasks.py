"""Waiting on futures and stopping tasks without losing a cancellation, and always bounded.

Why not ``asyncio.wait_for``: on Python 3.11 (our CPython floor) it swallows a cancellation
that arrives in the same loop iteration as the awaited future's result (CPython gh-86296,
fixed in 3.12): the caller gets the result and carries on as if never cancelled. A background
worker hit by that race keeps running after ``cancel()``; whoever awaits it to shut down hangs.
``asyncio.wait`` has no such race: a cancellation of the waiter is always raised.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, TypeVar

T = TypeVar("T")

RECANCEL_S = 0.1
"""``stop_task`` cancels again this often while the task is still running."""


async def wait_future(fut: asyncio.Future[T], timeout: float) -> T:
    """``fut``'s result within ``timeout`` seconds (TimeoutError otherwise). A cancellation of
    the caller is raised even if ``fut`` completes at the same moment; ``fut`` itself is never
    cancelled here (shared futures stay usable)."""
    done, _ = await asyncio.wait({fut}, timeout=timeout)
    if not done:
        raise TimeoutError
    return fut.result()


async def stop_task(task: asyncio.Future[Any], timeout: float) -> bool:
    """Cancel ``task`` and wait for it to end, at most ``timeout`` seconds; it is cancelled
    again every ``RECANCEL_S`` (a task that swallowed one cancellation usually honours the
    next). True when it ended; False: it is left behind. Its outcome is consumed; a
    cancellation of the caller propagates."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not task.done():
        left = deadline - loop.time()
        if left <= 0:
            return False
        task.cancel()
        await asyncio.wait({task}, timeout=min(left, RECANCEL_S))
    if not task.cancelled():
        with contextlib.suppress(Exception):
            task.exception()  # retrieved: no "exception was never retrieved" noise
    return True
