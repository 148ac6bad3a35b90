"""Helpers for the social-layer integration tests: users who are (or are not) contacts."""

from __future__ import annotations

from typing import Any

from parley.protocol.frames import EventPush
from parley.protocol.ops import Conversation, DirectOpen, Ok
from parley.protocol.social import FriendAccept, FriendRequest, FriendRequested
from tests.support.accounts import Login, new_user
from tests.support.rawclient import RawClient
from tests.support.server import ServerProcess


async def connect(server: ServerProcess, who: Login) -> RawClient:
    return await RawClient.login(server.ws_url, who.token)


def users(server: ServerProcess, *prefixes: str) -> list[Login]:
    return [new_user(server.http_url, p)[0] for p in prefixes]


async def befriend(a: RawClient, b: RawClient, a_id: str, b_id: str) -> None:
    """a asks, b accepts: they are contacts."""
    sent: FriendRequested = await a.call(FriendRequest(user_id=b_id, note="hi"))
    assert sent.contact is False
    assert isinstance(await b.call(FriendAccept(user_id=a_id)), Ok)


async def direct(a: RawClient, b_id: str) -> bytes:
    conv: Conversation = await a.call(DirectOpen(user_id=b_id))
    return conv.info.conversation_id


async def next_event(client: RawClient, kind: type[Any]) -> Any:
    """The body of the next pushed user event of type ``kind`` (others are skipped)."""
    for _ in range(50):
        push: EventPush = await client.next_push(EventPush)
        if isinstance(push.event.body, kind):
            return push.event.body
    raise AssertionError(f"no {kind.__name__} event")
