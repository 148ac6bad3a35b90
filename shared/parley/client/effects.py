"""What the engine asks of its shell (commands) and tells its UI (notifications).

``ClientEngine.take_effects()`` returns these in order. Commands must be carried out in that
order (the session driver does): store effects in particular, because each carries the cursor to
write in the same transaction, computed on the assumption that the previous ones are stored.
After a store command the shell reports back (``entries_stored`` / ``events_stored`` /
``to_device_stored``); only then do cursors move and the matching notification appear.
Notifications need no action; the session driver hands them to its listeners.
"""

from __future__ import annotations

from dataclasses import dataclass

from parley.client.model import ConnectionState, OutboxItem
from parley.protocol.errors import ErrorCode
from parley.protocol.ops import Result
from parley.protocol.records import ConvEntry, ToDeviceItem, UserEvent
from parley.protocol.signals import Signal
from parley.protocol.types import ConversationKind

# --- commands ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendFrame:
    """Send these bytes as one binary WebSocket message."""

    data: bytes


@dataclass(frozen=True)
class CloseConnection:
    """Close the transport; then report ``disconnected``."""

    code: int
    reason: str


@dataclass(frozen=True)
class Reconnect:
    """Open a new transport after ``delay`` seconds (then call ``connecting``/``connected``)."""

    delay: float
    attempt: int


@dataclass(frozen=True)
class Stop:
    """Give up: do not reconnect. ``code`` says why (e.g. ``unauthorized``)."""

    code: str
    reason: str


@dataclass(frozen=True)
class StoreEntries:
    """Store ``entries`` (ascending, contiguous; insert-or-ignore by (conversation, seq)) and,
    in the same transaction, set the conversation cursor to ``max(old, cursor)`` unless None.
    Then call ``entries_stored(conversation_id, entries[0].seq, entries[-1].seq)``."""

    conversation_id: bytes
    entries: tuple[ConvEntry, ...]
    cursor: int | None


@dataclass(frozen=True)
class StoreEvents:
    """Store user events and the events cursor in one transaction; then ``events_stored``."""

    events: tuple[UserEvent, ...]
    cursor: int


@dataclass(frozen=True)
class StoreToDevice:
    """Store to-device items and the to-device cursor in one transaction; then
    ``to_device_stored``. The engine acknowledges them to the server only after that."""

    items: tuple[ToDeviceItem, ...]
    cursor: int


@dataclass(frozen=True)
class OutboxPut:
    item: OutboxItem


@dataclass(frozen=True)
class OutboxDelete:
    client_msg_id: str


# --- notifications -------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionChanged:
    state: ConnectionState
    detail: str = ""


@dataclass(frozen=True)
class EntriesStored:
    """New timeline entries are in the local store (render them); ``cursor`` is the new one."""

    conversation_id: bytes
    first: int
    last: int
    cursor: int


@dataclass(frozen=True)
class MessageSent:
    client_msg_id: str
    conversation_id: bytes
    seq: int
    ts: int
    duplicate: bool  # a retry matched the original send: still a success


@dataclass(frozen=True)
class MessageFailed:
    """The server refused the message for good; it left the outbox."""

    client_msg_id: str
    conversation_id: bytes
    code: str
    message: str


@dataclass(frozen=True)
class ConversationAdded:
    conversation_id: bytes
    kind: ConversationKind
    by: str


@dataclass(frozen=True)
class ConversationRemoved:
    conversation_id: bytes
    action: str
    by: str


@dataclass(frozen=True)
class ConversationChanged:
    conversation_id: bytes
    seq: int


@dataclass(frozen=True)
class ConversationUpdated:
    """Sync says the conversation has entries up to ``last_seq`` (for unread badges)."""

    conversation_id: bytes
    last_seq: int
    last_ts: int


@dataclass(frozen=True)
class ToDeviceStored:
    """To-device items are stored (and will be acknowledged): hand them to the crypto layer."""

    items: tuple[ToDeviceItem, ...]


@dataclass(frozen=True)
class EventsStored:
    events: tuple[UserEvent, ...]


@dataclass(frozen=True)
class ReplyReceived:
    """The reply to a request made with ``ClientEngine.request``."""

    request_id: int
    result: Result


@dataclass(frozen=True)
class RequestFailed:
    request_id: int
    code: str  # an ErrorCode value, or "unavailable" when the connection dropped
    message: str


@dataclass(frozen=True)
class ProtocolError:
    """An Error frame without a usable id, or a frame we could not decode."""

    code: str
    message: str


Command = (
    SendFrame
    | CloseConnection
    | Reconnect
    | Stop
    | StoreEntries
    | StoreEvents
    | StoreToDevice
    | OutboxPut
    | OutboxDelete
)


@dataclass(frozen=True)
class SignalReceived:
    """An ephemeral signal (typing, read receipt, presence): nothing to store; feed it to
    ``parley.client.social`` (it is never replayed after a reconnect)."""

    signal: Signal


Notification = (
    ConnectionChanged
    | EntriesStored
    | MessageSent
    | MessageFailed
    | ConversationAdded
    | ConversationRemoved
    | ConversationChanged
    | ConversationUpdated
    | ToDeviceStored
    | EventsStored
    | ReplyReceived
    | RequestFailed
    | ProtocolError
    | SignalReceived
)
Effect = Command | Notification

UNAVAILABLE = ErrorCode.UNAVAILABLE.value
