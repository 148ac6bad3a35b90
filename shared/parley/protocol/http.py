"""HTTP request and response bodies (JSON) of the account API."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from parley.protocol.errors import ErrorCode
from parley.protocol.types import DeviceId, Timestamp, UserId

Username = Annotated[str, Meta(min_length=3, max_length=32, pattern=r"^[a-z0-9_.-]+$")]
Password = Annotated[str, Meta(max_length=1024)]
DeviceName = Annotated[str, Meta(max_length=64)]


class RegisterBody(msgspec.Struct, omit_defaults=True):
    username: Username
    password: Password
    invite: Annotated[str, Meta(max_length=128)] | None = None
    """A one-time invite code, when the server's registration is by invite."""


class RegisterReply(msgspec.Struct):
    user_id: UserId
    username: str


class LoginBody(msgspec.Struct):
    username: Annotated[str, Meta(max_length=64)]
    password: Password
    device_name: DeviceName = ""


class LoginReply(msgspec.Struct):
    user_id: UserId
    device_id: DeviceId
    token: str  # opaque; present it as ``Authorization: Bearer`` or in the WebSocket Hello


class DeviceInfo(msgspec.Struct):
    device_id: DeviceId
    name: str
    created: Timestamp
    last_seen: Timestamp
    current: bool = False


class DeviceList(msgspec.Struct):
    devices: list[DeviceInfo]


class UserInfo(msgspec.Struct):
    user_id: UserId
    username: str


class ErrorBody(msgspec.Struct):
    code: ErrorCode
    message: str
