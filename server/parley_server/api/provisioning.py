"""Device-linking relay over HTTP: ``/api/v1/provisioning/...`` (parley.protocol.provisioning).

Two routes need no session (the new device has none yet): registering a prov_id and fetching
its sealed box; the link-token login is the third (it IS the authentication). The existing
device's two routes take its Bearer session; the link token is minted for that session's user.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import Parameter

from parley.protocol import provisioning as proto
from parley.protocol.errors import ErrorCode
from parley.protocol.http import ErrorBody
from parley_server.api.auth import provide_session
from parley_server.api.errors import STATUS_OF, error_response
from parley_server.service.context import Session
from parley_server.service.dispatch import Dispatcher
from parley_server.service.errors import ServiceError
from parley_server.service.provisioning import Provisioning

PROV_STATUS: dict[ErrorCode, int] = {ErrorCode.LINK_EXPIRED: 410, ErrorCode.LINK_USED: 409}

ProvIdPath = Annotated[str, Parameter(pattern="^[0-9a-f]{32}$")]


def make_provisioning(app: Dispatcher) -> Provisioning:
    return Provisioning(app.services, app.services.stores.provisioning)


def provide_provisioning(state: State) -> Provisioning:
    prov: Provisioning = state.provisioning
    return prov


def _service_error(_: Request[Any, Any, Any], exc: ServiceError) -> Response[ErrorBody]:
    headers = None
    if exc.retry_after is not None:
        headers = {"Retry-After": str(max(1, int(exc.retry_after + 0.999)))}
    status = PROV_STATUS.get(exc.code, STATUS_OF.get(exc.code, 400))
    return error_response(exc.code, exc.message, status, headers=headers)


def _ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


class ProvisioningController(Controller):
    path = "/api/v1/provisioning"
    dependencies = {"prov": Provide(provide_provisioning, sync_to_thread=False)}
    exception_handlers = {ServiceError: _service_error}
    tags = ["provisioning"]

    # --- new device ----------------------------------------------------------------------------
    @post("/", status_code=201)
    async def register(
        self,
        data: proto.RegisterProvisioningBody,
        prov: Provisioning,
        request: Request[Any, Any, Any],
    ) -> proto.ProvisioningReply:
        return await prov.register(data.prov_id, _ip(request))

    @get("/{prov_id:str}")
    async def fetch(self, prov: Provisioning, prov_id: ProvIdPath) -> proto.ProvisionMessageReply:
        return await prov.fetch(prov_id)

    @post("/session", status_code=201)
    async def login(
        self, data: proto.LinkLoginBody, prov: Provisioning, request: Request[Any, Any, Any]
    ) -> proto.LinkLoginReply:
        return await prov.login(data.link_token, data.device_name, _ip(request))

    # --- existing device -----------------------------------------------------------------------
    @post(
        "/{prov_id:str}/token", status_code=201, dependencies={"session": Provide(provide_session)}
    )
    async def token(
        self, prov: Provisioning, session: Session, prov_id: ProvIdPath
    ) -> proto.LinkTokenReply:
        return await prov.mint_token(session, prov_id)

    @put("/{prov_id:str}", status_code=204, dependencies={"session": Provide(provide_session)})
    async def answer(
        self,
        data: proto.PutProvisionBody,
        prov: Provisioning,
        session: Session,
        prov_id: ProvIdPath,
    ) -> None:
        await prov.answer(session, prov_id, data.sealed)
