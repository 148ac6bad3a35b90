"""The virtual-time loop the driver tests run on (CPython and Pyodide)."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e_client.virtual_loop import Deadlock, run


def test_timers_fire_in_order_without_waiting() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        seen: list[str] = []
        loop.call_later(3600, seen.append, "hour")
        loop.call_later(1, seen.append, "second")
        await asyncio.sleep(7 * 24 * 3600)
        assert loop.time() >= 7 * 24 * 3600
        return seen

    assert run(main()) == ["second", "hour"]


def test_a_wait_on_nothing_is_a_deadlock() -> None:
    async def main() -> None:
        await asyncio.Event().wait()

    with pytest.raises(Deadlock):
        run(main())


def test_a_loop_that_never_lets_time_pass_is_busy() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()

        def again() -> None:
            loop.call_later(0, again)

        again()
        await asyncio.sleep(1)

    with pytest.raises(Deadlock, match="busy"):
        run(main())
