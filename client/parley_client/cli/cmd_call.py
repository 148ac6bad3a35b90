"""Calls from the command line (aiortc, the ``calls`` extra): place a call that plays a media
file, or answer every call as an echo bot. Signalling is pairwise E2E to-device; media go
peer to peer (or through the server's TURN relay)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

import click

from parley.client.call import CallState
from parley_client.cli import render
from parley_client.cli.command import ParleyCommand
from parley_client.cli.conversations import user_id_of
from parley_client.cli.errors import CliError
from parley_client.cli.http_api import AccountApi
from parley_client.cli.runtime import Ctx, connected, guard, run

_NO_AIORTC = "calls need aiortc: pip install 'parley[calls]'"


def _calls_module() -> Any:
    try:
        from parley_client import calls
    except ImportError:
        raise CliError(_NO_AIORTC) from None
    return calls


async def _until_stopped(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds if seconds > 0 else None)


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


@click.command(
    cls=ParleyCommand,
    epilog="""\b
Examples:
  parley call bob --play hello.wav
  parley call bob --video --play clip.mp4 --duration 30
  parley call --answer --echo          (an echo bot: answers and sends your media back)""",
)
@click.argument("user", required=False)
@click.option("--play", "play", metavar="FILE", help="Media file to send (else a 440 Hz tone).")
@click.option("--video", is_flag=True, help="Ask for a video call.")
@click.option("--duration", type=float, default=0, help="Hang up after this many seconds.")
@click.option("--answer", is_flag=True, help="Wait for calls and answer each one.")
@click.option("--echo", is_flag=True, help="With --answer: send the caller's media back.")
@click.option("--relay", is_flag=True, help="TURN relay candidates only (hides addresses).")
@click.pass_obj
@guard
def call(
    ctx: Ctx,
    user: str | None,
    play: str | None,
    video: bool,
    duration: float,
    answer: bool,
    echo: bool,
    relay: bool,
) -> None:
    """Call USER (a contact), or with --answer wait for calls. Ctrl-C hangs up."""
    if (user is None) == (not answer):
        raise CliError("give USER to call, or --answer to wait for calls")
    calls_mod = _calls_module()
    names = ctx.names()

    async def go() -> None:
        async with connected(ctx) as (client, _, meta):
            calls = calls_mod.Calls(client, play=play, echo=echo, auto_answer=answer,
                                    relay_only=relay, verbose=True)  # fmt: skip
            calls.start()
            stop = _stop_event()
            try:
                if answer:
                    render.ok("Waiting for calls (Ctrl-C to stop).")
                    await _until_stopped(stop, duration)
                    return
                assert user is not None
                api = AccountApi(meta.server, ctx.logged_in()[2].token)
                uid = await user_id_of(api, names, user)
                if uid == meta.user_id:
                    raise CliError("you cannot call yourself")
                await calls.driver.place(uid, video)
                ended = asyncio.ensure_future(calls.wait_state(CallState.ENDED, timeout=1e9))
                stopped = asyncio.ensure_future(_until_stopped(stop, duration))
                await asyncio.wait({ended, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not ended.done():
                    calls.driver.hangup()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(ended, 10)
                stopped.cancel()
                await calls.driver.idle()
            finally:
                await calls.close()

    run(go)
    names.save()


COMMANDS: list[click.Command] = [call]
