"""``parley.client.tasks``: a cancellation is never lost, and stopping a task is bounded even
when the task swallows its cancellation (the cause of a ``close()`` that hung forever)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from parley.client.tasks import stop_task, wait_future


async def test_a_cancel_arriving_with_the_result_is_raised_not_swallowed() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()
    waiter = asyncio.ensure_future(wait_future(fut, 10))
    await asyncio.sleep(0)  # the waiter is now waiting on fut
    fut.set_result(1)  # the result and the cancellation arrive in the same iteration
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert fut.result() == 1  # the shared future itself is untouched


async def test_wait_future_times_out_without_cancelling_the_future() -> None:
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        await wait_future(fut, 0.01)
    assert not fut.done()


async def test_stop_task_recancels_a_task_that_swallowed_the_first_cancel() -> None:
    stuck = asyncio.Event()

    async def swallows_once() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # the bug: cancellation swallowed,
            await asyncio.sleep(3600)
        # ...then waiting on something else
        stuck.set()
        await asyncio.sleep(3600)

    task = asyncio.ensure_future(swallows_once())
    await asyncio.sleep(0)
    assert await asyncio.wait_for(stop_task(task, 5), 10)
    assert stuck.is_set() and task.cancelled()


async def test_stop_task_gives_up_on_a_task_that_never_ends_bounded() -> None:
    release = asyncio.Event()

    async def ignores_every_cancel() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    task = asyncio.ensure_future(ignores_every_cancel())
    await asyncio.sleep(0)
    assert not await asyncio.wait_for(stop_task(task, 0.3), 10)
    assert not task.done()
    release.set()
    task.cancel()
    await asyncio.wait({task}, timeout=10)
    assert task.done()
