"""Accounts, sessions, devices and user lookup over HTTP (JSON bodies of parley.protocol.http)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import Parameter
from msgspec import Meta

from parley.protocol.errors import ErrorCode
from parley.protocol.http import (
    DeviceList,
    LoginBody,
    LoginReply,
    RegisterBody,
    RegisterReply,
    UserInfo,
)
from parley_server.api.auth import provide_app, provide_session
from parley_server.service.accounts import normalize_username
from parley_server.service.context import Session
from parley_server.service.dispatch import Dispatcher
from parley_server.service.errors import ServiceError


class RegisterInput(msgspec.Struct):
    """RegisterBody before normalization: any case is accepted, stored lowercase."""

    username: Annotated[str, Meta(max_length=64, pattern=r"^\s*[A-Za-z0-9_.-]{3,32}\s*$")]
    """3-32 of ``a-z 0-9 _ . -`` once trimmed and lowercased (the schema says so too)."""
    password: Annotated[str, Meta(max_length=1024)]
    invite: Annotated[str, Meta(max_length=128)] | None = None
    """The code of a one-time invite (needed when registration is by invite)."""


def _register_body(data: RegisterInput) -> RegisterBody:
    try:
        return msgspec.convert(
            {"username": normalize_username(data.username), "password": data.password},
            RegisterBody,
        )
    except msgspec.ValidationError as exc:
        raise ServiceError(
            ErrorCode.INVALID,
            f"username must be 3-32 characters of a-z 0-9 _ . - ({exc})",
        ) from None


class AccountController(Controller):
    path = "/api/v1"
    dependencies = {"parley": Provide(provide_app, sync_to_thread=False)}
    tags = ["accounts"]

    @post("/accounts", status_code=201)
    async def register(
        self, data: RegisterInput, parley: Dispatcher, request: Request[object, object, State]
    ) -> RegisterReply:
        body = _register_body(data)
        client_ip = request.client.host if request.client else "unknown"
        return await parley.accounts.register(
            body.username, body.password, client_ip, invite=data.invite
        )

    @post("/sessions", status_code=201)
    async def login(
        self, data: LoginBody, parley: Dispatcher, request: Request[object, object, State]
    ) -> LoginReply:
        client_ip = request.client.host if request.client else "unknown"
        return await parley.accounts.login(
            normalize_username(data.username), data.password, data.device_name, client_ip
        )

    @delete(
        "/sessions/current",
        status_code=204,
        dependencies={"session": Provide(provide_session)},
    )
    async def logout(self, parley: Dispatcher, session: Session) -> None:
        await parley.accounts.revoke_device(session, session.device_id)

    @get("/devices", dependencies={"session": Provide(provide_session)})
    async def devices(self, parley: Dispatcher, session: Session) -> DeviceList:
        return await parley.accounts.list_devices(session)

    @delete(
        "/devices/{device_id:int}",
        status_code=204,
        dependencies={"session": Provide(provide_session)},
    )
    async def revoke(
        self,
        parley: Dispatcher,
        session: Session,
        device_id: Annotated[int, Parameter(ge=1, le=2**31 - 1)],
    ) -> None:
        await parley.accounts.revoke_device(session, device_id)

    @get("/users/{username:str}", dependencies={"session": Provide(provide_session)})
    async def user(self, parley: Dispatcher, session: Session, username: str) -> UserInfo:
        return await parley.accounts.lookup_user(session, username)
