"""The ``Broker`` interface: route already-encoded frames to the connections of users/devices.

Node-agnostic on purpose: callers name users and devices, never connections or nodes, so a
cross-node engine (``redis.py``; ``local.py`` is the embedded default) can route to
whichever node holds a device's sockets. Frames are encoded once by
the caller and the same bytes go to every recipient.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import Protocol


class Subscriber(Protocol):
    """A live connection as the broker sees it. Both methods must not block."""

    def deliver(self, frame: bytes) -> None:
        """Queue ``frame`` for sending (the connection handles overflow itself)."""

    def close(self, code: int, reason: str = "") -> None:
        """Ask the connection to close with ``code``."""


class Broker(abc.ABC):
    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect to whatever the engine needs."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release the engine's resources."""

    @abc.abstractmethod
    async def subscribe(self, user_id: str, device_id: int, sub: Subscriber) -> None: ...

    @abc.abstractmethod
    async def unsubscribe(self, user_id: str, device_id: int, sub: Subscriber) -> None: ...

    @abc.abstractmethod
    async def publish_to_users(
        self, user_ids: Iterable[str], frame: bytes, exclude: Subscriber | None = None
    ) -> None:
        """Deliver ``frame`` to every connected device of these users, except ``exclude``."""

    @abc.abstractmethod
    async def publish_to_device(self, user_id: str, device_id: int, frame: bytes) -> None: ...

    async def online(self, user_ids: Iterable[str]) -> set[str]:
        """Those of ``user_ids`` with a live connection on any node."""
        return set()

    @abc.abstractmethod
    async def close_device(self, user_id: str, device_id: int, code: int, reason: str) -> None:
        """Close every connection of that device (e.g. it was revoked)."""
