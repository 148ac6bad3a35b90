"""A tiny raw protocol client for integration tests: real WebSocket, real msgpack frames.

Deliberately not the client engine: tests use it to send exactly the bytes they want
(including malformed ones) and to see exactly what the server answers.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from parley.protocol.codec import decode_server, encode
from parley.protocol.frames import Error, Hello, Reply, Request, ServerFrame, Welcome
from parley.protocol.ops import Op

TIMEOUT = 5.0


def envelope_for(conversation_id: bytes, body_len: int = 32) -> bytes:
    """A validly *framed* IMv1 GroupMessage (the server only checks framing)."""
    return (
        b"\x01"
        + conversation_id
        + os.urandom(16)  # distribution id
        + os.urandom(8)  # chain id + iteration
        + os.urandom(max(16, body_len))  # ciphertext + tag
        + os.urandom(64)  # signature
    )


class Closed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed {code} {reason!r}")
        self.code = code
        self.reason = reason


class RawClient:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.pushes: list[ServerFrame] = []
        self._ids = itertools.count(1)
        self.welcome: Welcome | None = None

    @classmethod
    async def connect(cls, url: str) -> RawClient:
        ws = await connect(url, max_size=None, compression=None, open_timeout=TIMEOUT)
        return cls(ws)

    @classmethod
    async def login(cls, url: str, token: str) -> RawClient:
        client = await cls.connect(url)
        frame = await client.hello(token)
        assert isinstance(frame, Welcome), frame
        client.welcome = frame
        return client

    async def hello(self, token: str, v: int = 1) -> ServerFrame:
        await self.send(Hello(token=token, v=v, client="rawclient"))
        return await self.recv()

    async def send(self, frame: msgspec.Struct) -> None:
        await self.send_raw(encode(frame))

    async def send_raw(self, data: bytes | str) -> None:
        """Send one frame; a socket the server already closed raises ``Closed`` with its code,
        as a read would (the close can land between a test's last read and its next send)."""
        try:
            await self.ws.send(data)
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            raise Closed(rcvd.code if rcvd else None, rcvd.reason if rcvd else "") from None

    async def recv(self, timeout: float = TIMEOUT) -> ServerFrame:
        try:
            data = await asyncio.wait_for(self.ws.recv(), timeout)
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            raise Closed(rcvd.code if rcvd else None, rcvd.reason if rcvd else "") from None
        assert isinstance(data, bytes), "server sent a text frame"
        return decode_server(data)

    async def next_reply(self, rid: int | None, timeout: float = TIMEOUT) -> Reply | Error:
        """The Reply/Error carrying ``rid``; pushes seen meanwhile are kept in ``pushes``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.recv(max(0.01, deadline - loop.time()))
            if isinstance(frame, (Reply, Error)) and frame.id == rid:
                return frame
            self.pushes.append(frame)

    async def request(self, op: Op, timeout: float = TIMEOUT) -> Reply | Error:
        rid = next(self._ids)
        await self.send(Request(id=rid, op=op))
        return await self.next_reply(rid, timeout)

    async def call(self, op: Op) -> Any:
        """The result of a request that must succeed."""
        answer = await self.request(op)
        assert isinstance(answer, Reply), f"{type(op).__name__} failed: {answer}"
        return answer.result

    async def fail(self, op: Op) -> Error:
        """The Error of a request that must fail."""
        answer = await self.request(op)
        assert isinstance(answer, Error), f"{type(op).__name__} unexpectedly succeeded: {answer}"
        return answer

    async def next_push(self, kind: type[Any], timeout: float = TIMEOUT) -> Any:
        """The first (stashed or arriving) push of type ``kind``."""
        for i, frame in enumerate(self.pushes):
            if isinstance(frame, kind):
                return self.pushes.pop(i)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.recv(max(0.01, deadline - loop.time()))
            if isinstance(frame, kind):
                return frame
            self.pushes.append(frame)

    async def wait_closed(self, timeout: float = TIMEOUT) -> int | None:
        """Read until the server closes; returns its close code."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                self.pushes.append(await self.recv(max(0.01, deadline - loop.time())))
            except Closed as exc:
                return exc.code

    async def close(self) -> None:
        await self.ws.close()


async def still_serves(ws_url: str, token: str) -> None:
    """Assert that the server answers a fresh authenticated connection (after some abuse)."""
    from parley.protocol.ops import ConversationPage, ConvList

    client = await RawClient.login(ws_url, token)
    try:
        page = await client.call(ConvList())
        assert isinstance(page, ConversationPage)
    finally:
        await client.close()
