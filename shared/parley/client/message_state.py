"""What a UI shows for one message, the same word in every shell.

The CLI's ``MessageView`` and the browser's ``Row``/``Outgoing`` carry a ``MessageState``. It
is a ``StrEnum``: the persisted form (msgpack, sealed at rest) is the plain string, so rows
stored before the enum decode unchanged.
"""

from __future__ import annotations

from enum import StrEnum


class MessageState(StrEnum):
    DECRYPTED = "decrypted"  # stored and decrypted: the content is shown
    WAITING = "waiting"  # stored, its sender key is not here yet (a key request is out)
    FAILED = "failed"  # can never decrypt; for our own unsent one: refused for good
    SENDING = "sending"  # ours, not yet stored by the server
    WAITING_FOR_KEYS = "waiting_for_keys"  # ours, held: a recipient's keys are missing
    SYSTEM = "system"  # a membership change (no sender content)
    RECALLED = "recalled"  # the sender recalled it
