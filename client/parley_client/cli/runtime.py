"""What every command shares: the options (server, profile), running a coroutine with errors
turned into one line, and a connected, sealed E2E client for the logged-in profile."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click
import httpx
import msgspec

from parley_client.cli.errors import INTERRUPTED, CliError, NetworkError, from_server
from parley_client.cli.http_api import AccountApi
from parley_client.cli.names import Names
from parley_client.cli.profile import Profile, ProfileMeta, Secrets, default_dir

if TYPE_CHECKING:
    from parley_client.e2e_client import E2EClient

T = TypeVar("T")
P = ParamSpec("P")
DEFAULT_SERVER = "http://127.0.0.1:8080"
CONNECT_TIMEOUT_S = 15.0
DRAIN_TIMEOUT_S = 5.0
SETTLE_TIMEOUT_S = 5.0
TEARDOWN_S = 2.0
DEBUG_ENV = "PARLEY_DEBUG"


@dataclass
class Ctx:
    """The group-level options, reachable from every command as ``ctx.obj``."""

    server: str = DEFAULT_SERVER
    profile_dir: str = ""
    _profile: Profile | None = None
    _unlocked: tuple[Profile, ProfileMeta, Secrets] | None = None
    _names: Names | None = None

    def profile(self) -> Profile:
        """The profile object of this run (one per run: it holds the profile lock)."""
        if self._profile is None:
            self._profile = Profile(self.profile_dir or default_dir())
        return self._profile

    def logged_in(self) -> tuple[Profile, ProfileMeta, Secrets]:
        """Unlock the profile once per run (passphrase) and check it is for this server."""
        if self._unlocked is not None:
            return self._unlocked
        profile = self.profile()
        if profile.exists():
            profile.lock()
        meta = profile.unlock()
        if meta.server.rstrip("/") != self.server.rstrip("/") and self.server_given():
            raise CliError(
                f"this profile is logged in to {meta.server}, not {self.server}: "
                "use another --profile or log in again"
            )
        self.server = meta.server
        self._unlocked = (profile, meta, profile.secrets())
        return self._unlocked

    def release(self) -> None:
        """End of the command: let the next parley process have the profile."""
        if self._profile is not None:
            self._profile.release()

    def adopt(self, profile: Profile, meta: ProfileMeta, secrets: Secrets) -> None:
        """A profile just created by ``login`` (no second passphrase prompt)."""
        self._unlocked = (profile, meta, secrets)

    def names(self) -> Names:
        if self._names is None:
            profile, meta, _ = self.logged_in()
            self._names = Names(profile, (meta.user_id, meta.username))
        return self._names

    def server_given(self) -> bool:
        src = click.get_current_context().get_parameter_source("server")
        return src not in (None, click.core.ParameterSource.DEFAULT)


def fail(err: CliError) -> None:
    click.echo(f"parley: error: {err.message}", err=True)
    sys.exit(err.code)


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run one command's coroutine; network and client failures come out as CliError.

    Unlike ``asyncio.run``, the teardown is bounded: tasks still alive when the command is done
    get ``TEARDOWN_S`` to finish after a cancel, then the loop is dropped. (A background task
    that swallows its cancellation would otherwise keep a finished command alive forever.)"""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_guarded(coro_fn))
    finally:
        _teardown(loop)


def _teardown(loop: asyncio.AbstractEventLoop) -> None:
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.wait(pending, timeout=TEARDOWN_S))
    with contextlib.suppress(Exception):
        loop.run_until_complete(loop.shutdown_asyncgens())
    # tasks that ignored the cancel are abandoned: no "destroyed but pending" noise on stderr
    loop.set_exception_handler(lambda _loop, _context: None)
    loop.close()


def _release(args: tuple[object, ...]) -> None:
    for a in args:
        if isinstance(a, Ctx):
            a.release()


def _call(fn: Callable[P, None], *args: P.args, **kwargs: P.kwargs) -> None:
    try:
        fn(*args, **kwargs)
    except CliError as err:
        fail(err)
    except KeyboardInterrupt:
        click.echo("parley: interrupted", err=True)
        sys.exit(INTERRUPTED)
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        unexpected = f"unexpected failure ({type(exc).__name__}); set {DEBUG_ENV}=1 for details"
        fail(map_client_error(exc) or CliError(unexpected))


def guard(fn: Callable[P, None]) -> Callable[P, None]:
    """Wrap a command callback: every failure becomes ONE line on stderr and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            _call(fn, *args, **kwargs)
        finally:
            _release(args)  # also on sys.exit: the next command may use the profile

    return wrapper


async def _guarded(coro_fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return await coro_fn()
    except (httpx.TimeoutException, TimeoutError):
        raise NetworkError("the server did not answer in time") from None
    except (httpx.TransportError, ConnectionError):
        raise NetworkError("cannot reach the server") from None
    except CliError:
        raise
    except Exception as exc:
        mapped = map_client_error(exc)
        if mapped is None:
            raise
        raise mapped from None


def map_client_error(exc: BaseException) -> CliError | None:
    """Errors of the client stack (session requests, key directory, crypto) as sentences."""
    from parley.client.session import RequestError
    from parley.crypto.errors import CryptoError, SendingBlocked

    if isinstance(exc, SendingBlocked):
        return CliError(
            "the safety number of someone in this chat changed: check it with "
            "'parley verify USER' before sending"
        )
    if isinstance(exc, RequestError):
        if exc.code == "stopped":
            return CliError("the connection to the server was closed")
        return from_server(exc.code, exc.message)
    if isinstance(exc, CryptoError):
        return CliError(f"encryption failure: {type(exc).__name__}")
    if type(exc).__name__ == "LinkError":
        return from_server(str(getattr(exc, "code", "internal")), str(getattr(exc, "message", "")))
    status = getattr(exc, "status", None)
    if type(exc).__name__ == "KeyDirectoryError" and isinstance(status, int):
        text = str(exc).split(": ", 1)[-1]
        try:
            body = msgspec.json.decode(text)
            code = str(body.get("code", "")) if isinstance(body, dict) else ""
        except msgspec.DecodeError:
            code = ""
        if code == "account_key_changed":
            return CliError(
                "this account's encryption keys live on another device: log this profile out "
                "and link it instead ('parley link' here, 'parley link-accept' there)"
            )
        return from_server(code or "internal", "", what="key")
    return None


@contextlib.asynccontextmanager
async def connected(
    ctx: Ctx, on_ready: Callable[[Any], Awaitable[None]] | None = None
) -> AsyncIterator[tuple[E2EClient, Profile, ProfileMeta]]:
    """The logged-in device, E2E layer started and online; closed (state sealed) on exit.
    ``on_ready`` runs on the client before it connects."""
    from parley_client.cli.secure_client import (
        keep_account,
        needs_rejoin,
        open_secure,
        rejoin,
    )

    profile, meta, secrets = ctx.logged_in()
    client = open_secure(profile, secrets)
    try:
        if on_ready is not None:
            await on_ready(client)
        if needs_rejoin(client) and not client.st.contacts.get(meta.user_id):
            await rejoin(client, profile, secrets)
        await client.start()
        keep_account(client, profile)
        try:
            await client.wait_online(CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise NetworkError(f"cannot reach the server at {meta.server}") from None
        except Exception:
            stop = client.client.session.stop_reason
            if stop is not None and stop.code in ("unauthorized", "device_revoked"):
                raise from_server(stop.code) from None
            raise
        await client.flush()  # messages queued by an earlier run (e.g. keys were missing)
        yield client, profile, meta
        await _drain(client, DRAIN_TIMEOUT_S)
        await settle(client, SETTLE_TIMEOUT_S)
    finally:
        await client.close()  # bounded by itself (E2EClient.close)


async def _undecrypted(client: E2EClient) -> dict[bytes, list[int]]:
    """Stored message entries the E2E layer has not handled yet (no view), per chat."""
    from parley.protocol.records import Message

    store = client.client.store
    out: dict[bytes, list[int]] = {}
    for cid in store.conversation_ids():
        have = {m.seq for m in await client.messages(cid) if m.seq}
        missing: list[int] = []
        after = 0
        while page := await store.entries(cid, after=after, limit=1000):
            missing += [e.seq for e in page if isinstance(e.body, Message) and e.seq not in have]
            after = page[-1].seq
        if missing:
            out[cid] = missing
    return out


async def settle(client: E2EClient, timeout: float) -> None:
    """Wait (bounded) until every stored message went through the E2E layer, so closing does
    not cut decryption off."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await _undecrypted(client) and loop.time() < deadline:
        await asyncio.sleep(0.05)


async def _drain(client: E2EClient, timeout: float) -> None:
    """Give messages handed to the outbox a bounded chance to be acknowledged before we close
    (what stays is persisted and resent, deduplicated, by the next run)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while client.client.outbox_size() and loop.time() < deadline:
        await asyncio.sleep(0.02)


async def api(ctx: Ctx) -> tuple[AccountApi, Profile, ProfileMeta]:
    profile, meta, secrets = ctx.logged_in()
    return AccountApi(meta.server, secrets.token), profile, meta


def jsonable(value: Any) -> Any:
    return msgspec.to_builtins(value)
