"""Helpers for the E2E integration tests: real E2EClients (real crypto, real sockets) on the
real server; every wait is bounded."""

from __future__ import annotations

from pathlib import Path

from parley_server.cpython_client.e2e_client import E2EClient, MessageView
from tests.support.accounts import Login, login
from tests.support.server import ServerProcess

T = 20.0


def make(server: ServerProcess, who: Login, tmp: Path, name: str, **kw: bool) -> E2EClient:
    return E2EClient(server.http_url, who.user_id, who.device_id, who.token, tmp / f"{name}.db",
                     **kw)  # fmt: skip


async def link(server: ServerProcess, first: E2EClient, username: str, tmp: Path,
               name: str, **kw: bool) -> E2EClient:  # fmt: skip
    """Log in a new device of ``first``'s user and link it (provisioning handed over
    in-process), then start it."""
    who = login(server.http_url, username, device=name)
    new = make(server, who, tmp, name, **kw)
    sealed = first.provision(new.begin_link())
    await new.finish_link(sealed)
    await new.start()
    await new.wait_online(T)
    return new


def has_texts(*want: str):  # type: ignore[no-untyped-def]
    def pred(msgs: list[MessageView]) -> bool:
        got = [m.content.body for m in msgs if m.state == "decrypted" and m.content is not None
               and hasattr(m.content, "body")]  # fmt: skip
        return all(w in got for w in want)

    return pred
