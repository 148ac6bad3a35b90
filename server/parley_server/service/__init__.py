"""The authorization and business layer between the transports (HTTP, WebSocket) and the Store.

Every entry point takes the caller's ``Session`` (user and device from the authenticated
token) and never trusts an identity from a path or body.
"""

from parley_server.service.context import Services, Session, now_ms
from parley_server.service.errors import ServiceError

__all__ = ["ServiceError", "Services", "Session", "now_ms"]
