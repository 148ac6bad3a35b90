"""Chat commands: chats, send, history, watch. Messages only ever go through the E2E layer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from parley.client import effects as fx
from parley.client.message_state import MessageState
from parley.client.session import RequestError
from parley.protocol.records import Message, ReadPosition
from parley_client.cli import render
from parley_client.cli.cmd_files import send_file
from parley_client.cli.command import ParleyCommand
from parley_client.cli.conversations import (
    all_conversations,
    as_dict,
    chat_id,
    info,
    learn_contacts,
    message_seqs,
    resolve,
    title,
)
from parley_client.cli.errors import INTERRUPTED, CliError
from parley_client.cli.http_api import AccountApi
from parley_client.cli.runtime import Ctx, connected, guard, map_client_error, run

SEND_TIMEOUT_S = 20.0
CATCH_UP_TIMEOUT_S = 10.0
SHUTDOWN_GRACE_S = 20.0

target_arg = click.argument("target", metavar="USER|CHAT-ID")


def _account(ctx: Ctx) -> AccountApi:
    _, meta, secrets = ctx.logged_in()
    return AccountApi(meta.server, secrets.token)


@click.command(cls=ParleyCommand, epilog="Example:\n\n  parley chats")
@click.pass_obj
@guard
def chats(ctx: Ctx) -> None:
    """List your chats with unread counts and last activity."""

    async def go() -> list[dict[str, Any]]:
        names = ctx.names()
        rows: list[dict[str, Any]] = []
        async with connected(ctx) as (client, _, meta):
            await learn_contacts(client, names)
            convs = await all_conversations(client)
            store = client.client.store
            read: dict[bytes, int] = {}
            for ev in await store.events():  # type: ignore[attr-defined]
                if isinstance(ev.body, ReadPosition):
                    cid = ev.body.conversation_id
                    read[cid] = max(read.get(cid, 0), ev.body.seq)
            for conv in convs:
                cid = conv.conversation_id
                last = await store.entries(cid, limit=1)
                last_ts = last[-1].ts if last else conv.created_ts
                unread = 0
                after = read.get(cid, 0)
                while page := await store.entries(cid, after=after, limit=1000):
                    unread += sum(
                        1 for e in page if isinstance(e.body, Message) and e.sender != meta.user_id
                    )
                    after = page[-1].seq
                rows.append(
                    {"chat": chat_id(cid), "with": title(conv, meta.user_id, names),
                     "unread": unread, "last_ts": last_ts}
                )  # fmt: skip
        names.save()
        rows.sort(key=lambda r: int(r["last_ts"]), reverse=True)
        return rows

    render.chats(run(go))


def _text_unless_file(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """TEXT is required, except with --file (then it is the optional caption)."""
    if value is None and ctx.params.get("file") is None:
        raise click.MissingParameter(ctx=ctx, param=param, param_hint="'TEXT'")
    return value


@click.command(
    cls=ParleyCommand,
    epilog="""\b
Examples:
  parley send bob "see you at 6"
  parley send 3f2a...c9 "hello group"
  echo "build finished" | parley send bob -
  parley send bob --file report.pdf "the Q3 report\"""",
)
@target_arg
@click.argument("text", required=False, default=None, callback=_text_unless_file)
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, is_eager=True,
              help="Send this file (encrypted); TEXT becomes its caption.")  # fmt: skip
@click.pass_obj
@guard
def send(ctx: Ctx, target: str, text: str | None, file: Path | None) -> None:
    """Send an end-to-end encrypted message (TEXT '-' reads stdin) or file (--file)."""
    if file is not None:
        cid, seq = send_file(ctx, target, file, "" if text in (None, "-") else text)
        render.ok(f"Sent {file.name} (chat {chat_id(cid)}, seq {seq}).")
        return
    assert text is not None  # _text_unless_file
    if text == "-":
        text = sys.stdin.read().rstrip("\n")
    if not text.strip():
        raise CliError("refusing to send an empty message")

    async def go() -> tuple[bytes, int]:
        names = ctx.names()
        async with connected(ctx) as (client, _, _):
            cid = await resolve(client, _account(ctx), names, target)
            names.save()
            local_id = await client.send_text(cid, text)
            if client.pending_state(local_id) is MessageState.WAITING_FOR_KEYS:
                # nothing left the device: it could not be encrypted for every recipient
                raise CliError(
                    "queued but not sent: a recipient has no encryption keys yet (they must "
                    "log in once); it is encrypted and sent by your next parley command"
                )
            seq = await client.wait_sent(local_id, SEND_TIMEOUT_S)
            return cid, seq

    cid, seq = run(go)
    render.ok(f"Sent (chat {chat_id(cid)}, seq {seq}).")


@click.command(
    cls=ParleyCommand,
    epilog="""\b
Examples:
  parley history bob
  parley history bob --limit 5 --json""",
)
@target_arg
@click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(1, 10000), help="Last N messages."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
@guard
def history(ctx: Ctx, target: str, limit: int, as_json: bool) -> None:
    """Show the latest messages of a chat, decrypted."""

    async def go() -> list[dict[str, Any]]:
        names = ctx.names()
        async with connected(ctx) as (client, _, _):
            await learn_contacts(client, names)
            cid = await resolve(client, _account(ctx), names, target)
            conv = await info(client, cid)
            await _catch_up(client, cid, conv.last_seq)
            views = await client.messages(cid)
            await _mark_read(client, cid, conv.last_seq)
        names.save()
        return [as_dict(cid, m, names) for m in views][-limit:]

    rows = run(go)
    for row in rows:
        render.json_line(row) if as_json else render.message_line(row)
    if not rows and not as_json:
        render.info("No messages yet.")


async def _mark_read(client: Any, cid: bytes, seq: int) -> None:
    """Tell the server (and our other devices) we have read the chat up to ``seq``; a server
    without read positions is fine."""
    try:
        from parley.protocol.social import ReadMark
    except ImportError:
        return
    with contextlib.suppress(RequestError):
        await client.client.request(ReadMark(conversation_id=cid, seq=seq), 15)


async def _catch_up(client: Any, cid: bytes, last_seq: int) -> None:
    """Wait (bounded) until the chat is stored up to ``last_seq``, every stored message has
    been through the E2E layer (decrypted, waiting for its key, or failed) and so has every
    stored to-device item (a key in one resolves a message shown as waiting)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CATCH_UP_TIMEOUT_S
    while loop.time() < deadline:
        if client.client.cursor(cid) >= last_seq:
            want = set(await message_seqs(client, cid))
            have = {m.seq for m in await client.messages(cid) if m.seq}
            # keys stored but not processed yet would turn "waiting" ones into decrypted
            if want <= have and not await client.to_device_pending():
                return
        await asyncio.sleep(0.05)
    render.warn("some messages are still on their way; showing what has arrived")


@click.command(
    cls=ParleyCommand,
    epilog="""\b
Prints every message this profile has not seen yet, then new ones as they
arrive, until Ctrl-C or SIGTERM (exit 0). With --json each line is an object:
  {"conversation_id", "seq", "ts", "sender", "sender_name", "sender_device",
   "type": "text"|"attachment"|"waiting"|"undecryptable"|..., "text", "id"}
With --send-stdin, each stdin line {"to": USER|CHAT-ID, "text": ..., "ref": any}
is sent (encrypted) by this same process and answered with a line
  {"type": "sent", "conversation_id", "seq", "ref"} or {"type": "error", "error", "ref"}
(a profile is used by one process at a time, so a bot replies this way).
Examples:
  parley watch
  parley watch --json | my-bot
  coproc parley watch --json --send-stdin""",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (for bots).")
@click.option("--send-stdin", is_flag=True, help="Also send JSON lines read from stdin.")
@click.pass_obj
@guard
def watch(ctx: Ctx, as_json: bool, send_stdin: bool) -> None:
    """Print new messages as they arrive, decrypted, one line each."""

    async def go() -> None:
        names = ctx.names()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _on_signal, stop)
        async with connected(ctx, on_ready=_baseline) as (client, _, _):
            await learn_contacts(client, names)
            baseline: dict[bytes, int] = getattr(client, "cli_baseline", {})
            changed = asyncio.Event()
            dirty: set[bytes] = set(client.client.engine.conversations)

            def listen(n: fx.Notification) -> None:
                if isinstance(n, fx.EntriesStored):
                    dirty.add(n.conversation_id)
                    changed.set()

            client.client.session.add_listener(listen)
            done: dict[bytes, set[int]] = {}
            if not as_json:
                render.info("Watching for messages (Ctrl-C to stop)...")
            sender = None
            if send_stdin:
                sender = asyncio.ensure_future(
                    _send_lines(client, _account(ctx), names, _stdin_lines(loop), done, as_json)
                )
            while not stop.is_set():
                for cid in list(dirty):
                    await _emit_new(client, cid, baseline.get(cid, 0), done, names, as_json)
                if client.client.session.stopped:
                    raise CliError("the server closed the session")
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(stop, changed), 0.5)
            if sender is not None:
                sender.cancel()
        names.save()

    run(go)


def _stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """Lines of stdin, read by a daemon thread (a blocked read never holds up the exit);
    None at end of input."""
    q: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(q.put_nowait, line)
        loop.call_soon_threadsafe(q.put_nowait, None)

    threading.Thread(target=read, name="parley-stdin", daemon=True).start()
    return q


async def _send_lines(
    client: Any, api: AccountApi, names: Any, lines: asyncio.Queue[str | None],
    done: dict[bytes, set[int]], as_json: bool,
) -> None:  # fmt: skip
    """``watch --send-stdin``: send each {"to", "text", "ref"} line through the E2E layer."""
    while (line := await lines.get()) is not None:
        if not line.strip():
            continue
        ref: Any = None
        try:
            try:
                req = json.loads(line)
                to, text, ref = str(req["to"]), str(req["text"]), req.get("ref")
            except (ValueError, KeyError, TypeError, AttributeError):
                raise CliError('expected a JSON object {"to": ..., "text": ...}') from None
            if not text.strip():
                raise CliError("refusing to send an empty message")
            cid = await resolve(client, api, names, to)
            local_id = await client.send_text(cid, text)
            if client.pending_state(local_id) is MessageState.WAITING_FOR_KEYS:
                raise CliError("queued but not sent: a recipient has no encryption keys yet")
            seq = await client.wait_sent(local_id, SEND_TIMEOUT_S)
            done.setdefault(cid, set()).add(seq)  # not echoed as a new message
            ack: dict[str, Any] = {"type": "sent", "conversation_id": chat_id(cid), "seq": seq}
        except Exception as exc:
            err = exc if isinstance(exc, CliError) else map_client_error(exc)
            ack = {"type": "error", "error": err.message if err else type(exc).__name__}
        ack["ref"] = ref
        if as_json:
            render.json_line(ack)
        else:
            render.info(f"{ack['type']}: {ack.get('error') or ack.get('seq')}")


def _on_signal(stop: asyncio.Event) -> None:
    """First Ctrl-C/SIGTERM: stop cleanly (exit 0). A second one, or a shutdown that takes
    longer than SHUTDOWN_GRACE_S, ends the process at once (state is sealed at every change,
    so nothing is lost)."""
    if stop.is_set():
        os._exit(INTERRUPTED)
    stop.set()
    timer = threading.Timer(SHUTDOWN_GRACE_S, _force_exit)
    timer.daemon = True
    timer.start()


def _force_exit() -> None:
    sys.stderr.write("parley: error: shutdown took too long; exiting\n")
    sys.stderr.flush()
    os._exit(1)


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def _baseline(client: Any) -> None:
    """Before connecting: what this profile had already stored (older messages are not new)."""
    cursors = await client.client.store.load_cursors()
    client.cli_baseline = dict(cursors.conversations)


async def _emit_new(
    client: Any, cid: bytes, base: int, done: dict[bytes, set[int]], names: Any, as_json: bool
) -> None:
    seen = done.setdefault(cid, set())
    for m in await client.messages(cid):
        if m.seq <= base or m.seq in seen or m.state is MessageState.WAITING:
            continue  # a message waiting for its key is printed once it decrypts
        seen.add(m.seq)
        row = as_dict(cid, m, names)
        render.json_line(row) if as_json else render.message_line(row)


COMMANDS = [chats, send, history, watch]
