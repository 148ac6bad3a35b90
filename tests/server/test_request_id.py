"""The request-id middleware: an HTTP response carries the id its logs were bound to (the
caller's own ``X-Request-ID`` when well-formed, a fresh one otherwise); WebSocket sessions pass
through unbound (a binding held for a socket's life costs memory per idle connection)."""

from __future__ import annotations

from typing import Any

import structlog

from parley_server.api.operations import request_id_middleware


def _app(seen: list[dict[str, Any]]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(structlog.contextvars.get_contextvars())
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    return app


async def _call(scope_type: str, headers: list[tuple[bytes, bytes]]) -> tuple[list[Any], Any]:
    seen: list[dict[str, Any]] = []
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {}

    mw = request_id_middleware(_app(seen))
    await mw({"type": scope_type, "headers": headers}, receive, send)
    return seen, sent


async def test_http_response_echoes_a_well_formed_incoming_id() -> None:
    seen, sent = await _call("http", [(b"x-request-id", b"abc123DEF")])
    assert seen == [{"request_id": "abc123DEF"}]
    assert (b"x-request-id", b"abc123DEF") in sent[0]["headers"]


async def test_http_without_or_with_a_bad_id_gets_a_fresh_one() -> None:
    for headers in ([], [(b"x-request-id", b"bad id\n with spaces")]):
        seen, sent = await _call("http", headers)
        rid = seen[0]["request_id"]
        assert rid and rid != "bad id\n with spaces"
        assert (b"x-request-id", rid.encode()) in sent[0]["headers"]


async def test_websocket_sessions_are_not_bound() -> None:
    seen, _ = await _call("websocket", [(b"x-request-id", b"abc123DEF")])
    assert seen == [{}]
