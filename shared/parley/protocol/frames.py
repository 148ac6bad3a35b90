"""Top-level WebSocket frames (msgpack, tagged by ``t``).

Client → server: Hello (first, within HELLO_TIMEOUT_S), Request, Ping, Bye.
Server → client: Welcome, Reply, Error, EntryPush, EventPush, ToDevicePush, SignalPush, Pong,
Bye.
"""

from __future__ import annotations

import msgspec

from parley.protocol.errors import ErrorCode
from parley.protocol.limits import PROTOCOL_VERSION
from parley.protocol.ops import Op, Result
from parley.protocol.records import ConvEntry, ToDeviceItem, UserEvent
from parley.protocol.signals import Signal
from parley.protocol.types import DeviceId, RequestId, Timestamp, UserId


class Hello(msgspec.Struct, tag="hello", tag_field="t"):
    token: str
    v: int = PROTOCOL_VERSION
    client: str = ""  # free-form client name/version, for logs


class Limits(msgspec.Struct):
    max_frame: int
    max_envelope: int
    max_to_device: int
    history_page_max: int
    heartbeat_s: float


class Welcome(msgspec.Struct, tag="welcome", tag_field="t"):
    user_id: UserId
    device_id: DeviceId
    server_time: Timestamp
    limits: Limits
    v: int = PROTOCOL_VERSION


class Request(msgspec.Struct, tag="req", tag_field="t"):
    id: RequestId
    op: Op


class Reply(msgspec.Struct, tag="reply", tag_field="t"):
    id: RequestId
    result: Result


class Error(msgspec.Struct, tag="error", tag_field="t"):
    """The answer to a request that failed. ``id`` is None when the frame had no usable id."""

    id: RequestId | None
    code: ErrorCode
    message: str


class EntryPush(msgspec.Struct, tag="entry", tag_field="t"):
    """A new entry in a conversation the user is a member of."""

    entry: ConvEntry


class EventPush(msgspec.Struct, tag="event", tag_field="t"):
    event: UserEvent


class ToDevicePush(msgspec.Struct, tag="to_device", tag_field="t"):
    item: ToDeviceItem


class SignalPush(msgspec.Struct, tag="signal", tag_field="t"):
    """An ephemeral signal (typing, read receipt, presence): pushed, never stored."""

    signal: Signal


class Ping(msgspec.Struct, tag="ping", tag_field="t"):
    n: int = 0


class Pong(msgspec.Struct, tag="pong", tag_field="t"):
    n: int = 0


class Bye(msgspec.Struct, tag="bye", tag_field="t"):
    """Either side ends the session cleanly; the socket then closes with 1000."""

    reason: str = ""


ClientFrame = Hello | Request | Ping | Bye
ServerFrame = (
    Welcome | Reply | Error | EntryPush | EventPush | ToDevicePush | Pong | Bye | SignalPush
)
