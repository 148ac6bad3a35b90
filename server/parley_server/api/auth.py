"""Bearer-token authentication as a Litestar dependency: handlers receive a ``Session``."""

from __future__ import annotations

from litestar import Request
from litestar.datastructures import State

from parley.protocol.errors import ErrorCode
from parley_server.service.context import Session
from parley_server.service.dispatch import Dispatcher
from parley_server.service.errors import ServiceError


def provide_app(state: State) -> Dispatcher:
    app: Dispatcher = state.parley
    return app


async def provide_session(request: Request[object, object, State]) -> Session:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ServiceError(ErrorCode.UNAUTHORIZED, "missing bearer token")
    app: Dispatcher = request.app.state.parley
    return await app.accounts.authenticate(token.strip())
