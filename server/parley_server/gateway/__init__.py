"""The WebSocket gateway: Hello handshake, request/reply loop, pushes, bounded send queues."""

from parley_server.gateway.endpoint import make_ws_handler
from parley_server.gateway.hub import Hub

__all__ = ["Hub", "make_ws_handler"]
