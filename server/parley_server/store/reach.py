"""The reach domain: who may put something in whose queue (to-device), and how much is queued.

To-device items go only between users who are contacts or share a current conversation (or
between one user's own devices): that is all key distribution, key requests and call
signalling need, and it stops strangers from filling anyone's queues.
"""

from __future__ import annotations

import abc


class ReachStore(abc.ABC):
    @abc.abstractmethod
    async def may_reach(self, sender: str, recipients: list[str]) -> set[str]:
        """The recipients ``sender`` may queue to-device items for: itself, its contacts, and
        users it shares a current conversation with."""

    @abc.abstractmethod
    async def queued_from(self, sender: str, recipient: str) -> int:
        """Undelivered to-device items ``sender`` has queued for ``recipient`` (all devices)."""
