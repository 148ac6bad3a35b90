"""The HTTP account API the CLI needs (register, login, logout, devices, user lookup), with
every failure turned into a one-line ``CliError``."""

from __future__ import annotations

from typing import TypeVar

import httpx
import msgspec

from parley.protocol.http import (
    DeviceInfo,
    DeviceList,
    ErrorBody,
    LoginBody,
    LoginReply,
    RegisterBody,
    RegisterReply,
    UserInfo,
)
from parley_client.cli.errors import CliError, NetworkError, from_server

T = TypeVar("T")
TIMEOUT_S = 10.0


class AccountApi:
    def __init__(self, server: str, token: str | None = None) -> None:
        self.server = server.rstrip("/")
        self.token = token

    async def register(self, username: str, password: str) -> RegisterReply:
        body = RegisterBody(username=username, password=password)
        return await self._call("POST", "/accounts", body, RegisterReply, what="username")

    async def login(self, username: str, password: str, device_name: str) -> LoginReply:
        body = LoginBody(username=username, password=password, device_name=device_name)
        return await self._call("POST", "/sessions", body, LoginReply)

    async def logout(self) -> None:
        await self._call("DELETE", "/sessions/current", None, None)

    async def devices(self) -> list[DeviceInfo]:
        reply = await self._call("GET", "/devices", None, DeviceList)
        return reply.devices

    async def revoke(self, device_id: int) -> None:
        await self._call("DELETE", f"/devices/{device_id}", None, None, what=f"device {device_id}")

    async def user(self, username: str) -> UserInfo:
        return await self._call(
            "GET", f"/users/{username}", None, UserInfo, what=f"user '{username}'"
        )

    async def _call(
        self, method: str, path: str, body: msgspec.Struct | None, reply: type[T] | None,
        *, what: str = "",
    ) -> T:  # fmt: skip
        headers = {"content-type": "application/json"}
        if self.token is not None:
            headers["authorization"] = f"Bearer {self.token}"
        content = None if body is None else msgspec.json.encode(body)
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT_S) as http:
                r = await http.request(
                    method, self.server + "/api/v1" + path, content=content, headers=headers
                )
        except httpx.TimeoutException:
            raise NetworkError(f"the server at {self.server} did not answer in time") from None
        except (httpx.TransportError, OSError):
            raise NetworkError(f"cannot reach the server at {self.server}") from None
        if r.status_code >= 400:
            raise _error(r, what)
        if reply is None:
            return None  # type: ignore[return-value]
        try:
            return msgspec.json.decode(r.content, type=reply)
        except msgspec.DecodeError:
            raise NetworkError(f"{self.server} did not answer like a Parley server") from None


def _error(r: httpx.Response, what: str) -> CliError:
    try:
        err = msgspec.json.decode(r.content, type=ErrorBody)
    except msgspec.DecodeError:
        if r.status_code == 404:
            return NetworkError("that URL does not look like a Parley server (404)")
        return NetworkError(f"the server answered HTTP {r.status_code}")
    code = err.code.value
    if code == "rate_limited":
        wait = r.headers.get("retry-after")
        if wait:
            return CliError(f"too many attempts: try again in {wait} s")
    if code == "invalid" and what == "username":
        return CliError("invalid username: use 3-32 characters from a-z, 0-9, '_', '.' and '-'")
    return from_server(code, err.message, what=what)
