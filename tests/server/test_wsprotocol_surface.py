"""The private surface of uvicorn and websockets that ``gateway/wsprotocol.py`` relies on.

``LeanWebSocketProtocol`` and ``LeanHttpToolsProtocol`` subclass uvicorn's protocols and replace
parts of their state (the receive queue, the ``writable`` event, the handshake objects, the
HTTP parser) and walk the frames of websockets' parser generator. Nothing of that is public API,
which is why pyproject.toml pins uvicorn 0.54.x and websockets 17.x. These tests name every
piece the subclasses touch, so an upgrade that moves one fails here (with the versions in the
message) instead of silently costing memory per socket or breaking sockets at run time. If one
fails after an upgrade: re-read the new uvicorn/websockets source for that piece, adapt
wsprotocol.py, re-measure ``bench/load.py idle``, then widen the pin.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import inspect
import textwrap
import weakref
from collections.abc import Callable
from typing import Any

import uvicorn
import websockets
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import Protocol
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

from parley_server.gateway import wsprotocol
from parley_server.gateway.wsprotocol import (
    SCOPE_KEY,
    LeanHttpToolsProtocol,
    LeanWebSocketProtocol,
)

VERSIONS = f"uvicorn {uvicorn.__version__}, websockets {websockets.__version__}"
UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def _class_ast(cls: type) -> ast.ClassDef:
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    node = tree.body[0]
    assert isinstance(node, ast.ClassDef)
    return node


def _methods(cls: type) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    return {
        n.name: n
        for n in _class_ast(cls).body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def _self_attr(node: ast.AST, name: str) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == name
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


def _uses_of(cls: type, attr: str) -> set[str]:
    """Every ``self.<attr>.<name>`` that ``cls``'s own source touches."""
    return {
        n.attr
        for n in ast.walk(_class_ast(cls))
        if isinstance(n, ast.Attribute) and _self_attr(n.value, attr)
    }


def _methods_loading(cls: type, attr: str) -> set[str]:
    """Methods of ``cls`` that read ``self.<attr>`` (assignments do not count)."""
    return {
        name
        for name, fn in _methods(cls).items()
        for n in ast.walk(fn)
        if isinstance(n, ast.Attribute) and _self_attr(n, attr) and isinstance(n.ctx, ast.Load)
    }


def _public_api(cls: type) -> set[str]:
    return {n for n, v in vars(cls).items() if callable(v) and not n.startswith("__")}


def _signature(cls: type, name: str) -> list[str]:
    return list(inspect.signature(getattr(cls, name)).parameters)


# --- uvicorn's WebSocket protocol --------------------------------------------------------------


def test_uvicorn_touches_only_what_the_queue_and_writable_stand_ins_implement() -> None:
    """``queue`` (an asyncio.Queue upstream) and ``writable`` (an asyncio.Event) are replaced
    by ``_Inbox`` and ``_Writable``; uvicorn must call nothing else on them."""
    assert _uses_of(WebSocketsSansIOProtocol, "queue") <= _public_api(wsprotocol._Inbox), VERSIONS
    assert _uses_of(WebSocketsSansIOProtocol, "writable") <= _public_api(wsprotocol._Writable), (
        VERSIONS
    )
    assert {"put_nowait", "get", "empty"} <= _uses_of(WebSocketsSansIOProtocol, "queue")
    assert {"set", "clear", "wait"} <= _uses_of(WebSocketsSansIOProtocol, "writable")


def test_uvicorn_ws_protocol_state_the_subclass_reads_and_writes() -> None:
    loop = asyncio.new_event_loop()
    try:
        proto = WebSocketsSansIOProtocol(
            config=Config(app=_never_called, lifespan="off"),
            server_state=ServerState(),
            app_state={},
            _loop=loop,
        )
    finally:
        loop.close()
    assert isinstance(proto.queue, asyncio.Queue), VERSIONS
    assert isinstance(proto.writable, asyncio.Event), VERSIONS
    assert isinstance(proto.conn, ServerProtocol), VERSIONS
    for name in ("handshake_complete", "close_sent", "disconnected", "initial_response"):
        assert hasattr(proto, name), f"{name} ({VERSIONS})"
    assert proto.initial_response is None
    assert _signature(WebSocketsSansIOProtocol, "__init__") == [
        "self",
        "config",
        "server_state",
        "app_state",
        "_loop",
    ], VERSIONS
    assert _signature(WebSocketsSansIOProtocol, "handle_connect") == ["self", "event"], VERSIONS
    assert _signature(WebSocketsSansIOProtocol, "send") == ["self", "message"], VERSIONS
    assert _signature(WebSocketsSansIOProtocol, "connection_lost") == ["self", "exc"], VERSIONS
    assert inspect.iscoroutinefunction(WebSocketsSansIOProtocol.send), VERSIONS


def test_uvicorn_reads_the_handshake_only_before_accept() -> None:
    """``_forget_handshake`` sets ``request``/``response`` to None after the accept: uvicorn
    must never read ``request`` and read ``response`` only in ``handle_connect`` and in the
    branch of ``send`` that runs before the handshake completed."""
    assert _methods_loading(WebSocketsSansIOProtocol, "request") == set(), VERSIONS
    assert _methods_loading(WebSocketsSansIOProtocol, "response") <= {"handle_connect", "send"}
    send = _methods(WebSocketsSansIOProtocol)["send"]
    guarded: set[int] = set()
    for node in ast.walk(send):
        if isinstance(node, ast.If) and ast.unparse(node.test).startswith(
            "not self.handshake_complete"
        ):
            guarded.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    reads = [n for n in ast.walk(send) if _self_attr(n, "response")]
    assert reads and all(id(n) in guarded for n in reads), VERSIONS
    # handle_connect stores the scope the endpoint finds us through (SCOPE_KEY)
    connect = ast.unparse(_methods(WebSocketsSansIOProtocol)["handle_connect"])
    assert "self.scope" in connect and "extensions" in connect, VERSIONS


# --- uvicorn's HTTP protocol -------------------------------------------------------------------


def test_uvicorn_http_protocol_surface() -> None:
    methods = _methods(HttpToolsProtocol)
    for name, params in {
        "connection_made": ["self", "transport"],
        "connection_lost": ["self", "exc"],
        "handle_websocket_upgrade": ["self"],
        "on_message_begin": ["self"],
        "on_message_complete": ["self"],
    }.items():
        assert name in methods, f"HttpToolsProtocol.{name} ({VERSIONS})"
        assert _signature(HttpToolsProtocol, name) == params, f"{name} ({VERSIONS})"
    init = ast.unparse(methods["__init__"])
    for attr in ("self.parser = ", "self.loop = ", "self.ws_protocol_class = "):
        assert attr in init, f"{attr!r} ({VERSIONS})"
    assert "self.client = " in ast.unparse(methods["connection_made"]), VERSIONS
    # the upgrade hands the transport to the WebSocket protocol; nothing reads the HTTP parser
    # after it (data_received calls it last, in the HttpParserUpgrade branch)
    upgrade = ast.unparse(methods["handle_websocket_upgrade"])
    assert "self.transport.set_protocol(protocol)" in upgrade, VERSIONS
    received = methods["data_received"]
    for handler in (n for n in ast.walk(received) if isinstance(n, ast.ExceptHandler)):
        if "HttpParserUpgrade" in ast.unparse(handler.type or ast.Constant(None)):
            body = ast.unparse(handler)
            assert "self.handle_websocket_upgrade()" in body, VERSIONS
            assert body.rstrip().count("self.parser") == 0, VERSIONS
            break
    else:
        raise AssertionError(f"no HttpParserUpgrade branch in data_received ({VERSIONS})")


# --- websockets' parser generator --------------------------------------------------------------


def _handshake(conn: ServerProtocol) -> weakref.ref[Request]:
    conn.receive_data(UPGRADE)
    [request] = conn.events_received()
    assert isinstance(request, Request)
    conn.send_response(conn.accept(request))
    assert conn.data_to_send()[0].startswith(b"HTTP/1.1 101")
    return weakref.ref(request)


def _client_frame(data: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return bytes([0x82, 0x80 | len(data)]) + mask + masked


def test_websockets_parser_is_a_generator_idle_in_at_eof_after_the_handshake() -> None:
    conn = ServerProtocol()
    request = _handshake(conn)
    assert inspect.isgenerator(conn.parser), VERSIONS
    assert isinstance(conn.reader, StreamReader) and conn.reader.buffer == b"", VERSIONS
    assert inspect.isgeneratorfunction(Protocol.parse), VERSIONS
    assert inspect.isgeneratorfunction(StreamReader.at_eof), VERSIONS
    assert wsprotocol._at_frame_start(conn), f"parser frames changed ({VERSIONS})"
    # the handshake generator's frame is what keeps the Request alive ...
    gc.collect()
    assert request() is not None, VERSIONS
    # ... and the bare frame parser that replaces it lets it go and parses frames alike
    parser = Protocol.parse(conn)
    next(parser)
    conn.parser = parser
    gc.collect()
    assert request() is None, VERSIONS
    conn.receive_data(_client_frame(b"hello"))
    [frame] = conn.events_received()
    assert isinstance(frame, Frame) and frame.opcode is Opcode.BINARY and frame.data == b"hello"
    assert wsprotocol._at_frame_start(conn)
    conn.send_binary(b"x")
    assert b"".join(conn.data_to_send()) == b"\x82\x01x"


def test_at_frame_start_is_false_inside_a_frame() -> None:
    conn = ServerProtocol()
    _handshake(conn)
    conn.receive_data(_client_frame(b"hello")[:3])
    assert not wsprotocol._at_frame_start(conn)


# --- the whole seam at protocol level (no socket) ---------------------------------------------


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out: list[bytes] = []
        self.closing = False
        self.protocol: asyncio.BaseProtocol | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.out.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol


async def _never_called(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("not used")


async def _until(pred: Callable[[], bool]) -> None:
    for _ in range(10_000):  # yields to the loop; no wall-clock bound needed
        if pred():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


async def test_lean_protocols_upgrade_forget_the_handshake_and_send_directly() -> None:
    received: list[Any] = []
    release = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        received.append(await receive())
        await send({"type": "websocket.accept"})
        received.append(await receive())
        await release.wait()

    config = Config(
        app=app,
        http=LeanHttpToolsProtocol,
        ws=LeanWebSocketProtocol,
        ws_per_message_deflate=False,
        lifespan="off",
    )
    config.load()
    assert config.ws_protocol_class is LeanWebSocketProtocol
    state = ServerState()
    http = LeanHttpToolsProtocol(config, state, {}, _loop=asyncio.get_running_loop())
    transport = _Transport()
    transport.set_protocol(http)
    http.connection_made(transport)
    http.data_received(UPGRADE)

    ws = transport.get_protocol()
    assert isinstance(ws, LeanWebSocketProtocol)
    assert http.parser is None  # the HTTP protocol let go of its parser
    await _until(lambda: ws.handshake_complete and ws.request is None)
    assert received == [{"type": "websocket.connect"}]
    assert transport.out[0].startswith(b"HTTP/1.1 101")
    assert ws.response is None
    assert isinstance(ws.queue, wsprotocol._Inbox)
    assert isinstance(ws.writable, wsprotocol._Writable)
    assert ws.scope["extensions"][SCOPE_KEY]() is ws
    gen: Any = ws.conn.parser
    assert gen.gi_code is Protocol.parse.__code__  # the handshake parser was replaced

    ws.data_received(_client_frame(b"ping"))
    await _until(lambda: len(received) == 2)
    assert received[1] == {"type": "websocket.receive", "bytes": b"ping"}
    assert ws.send_now(b"pong")
    assert transport.out[-1] == b"\x82\x04pong"
    ws.pause_writing()
    assert not ws.send_now(b"later")  # not writable: the caller queues it
    ws.resume_writing()

    release.set()
    ws.connection_lost(None)
    assert not ws.send_now(b"gone")
    await _until(lambda: not state.tasks)
