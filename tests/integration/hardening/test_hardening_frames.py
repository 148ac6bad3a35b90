"""Hostile frames on /ws: every one gets a documented error or close code, is logged without a
traceback, and the socket (or at least the server) keeps serving."""

from __future__ import annotations

import pytest

from parley.protocol.frames import Error
from parley.protocol.ops import ConversationPage, ConvList
from tests.support.accounts import Login, new_user
from tests.support.rawclient import RawClient, still_serves
from tests.support.server import ServerProcess

DEEP_REQUEST = bytes.fromhex("83a174a3726571a2696401a26f70") + b"\x91" * 1000 + b"\xc0"
"""``{t: "req", id: 1, op: [[[...nil...]]]}`` nested 1,000 levels deep."""
DEEP_HELLO = bytes.fromhex("82a174a568656c6c6fa5746f6b656e") + b"\x91" * 1000 + b"\xc0"


@pytest.fixture
def user(server: ServerProcess) -> Login:
    return new_user(server.http_url, "deep")[0]


async def test_deep_nesting_after_hello_is_bad_frame_and_socket_stays_usable(
    server: ServerProcess, user: Login
) -> None:
    mark = len(server.log())
    client = await RawClient.login(server.ws_url, user.token)
    for depth in (1000, 20_000):
        data = bytes.fromhex("83a174a3726571a2696401a26f70") + b"\x91" * depth + b"\xc0"
        await client.send_raw(data)
        err = await client.recv()
        assert isinstance(err, Error) and err.code == "bad_frame", err
        assert "deep" in err.message
    assert isinstance(await client.call(ConvList()), ConversationPage)
    await client.close()
    logged = server.log()[mark:]
    assert "frame nests too deeply" in logged and "Traceback" not in logged


async def test_deep_nesting_as_first_frame_closes_4000(server: ServerProcess, user: Login) -> None:
    mark = len(server.log())
    client = await RawClient.connect(server.ws_url)
    await client.send_raw(DEEP_HELLO)
    assert await client.wait_closed() == 4000
    logged = server.log()[mark:]
    assert "ws_bad_hello" in logged and "Traceback" not in logged
    await still_serves(server.ws_url, user.token)
