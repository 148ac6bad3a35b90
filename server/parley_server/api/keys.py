"""Key directory over HTTP: ``/api/v1/keys/...`` (JSON bodies of parley.protocol.keys).

Every route needs a Bearer session. Uploads always concern the session's own device and
user: no route takes a device id, and a user id in a path only names whose public keys to
read.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import Parameter

from parley.protocol import keys as proto
from parley.protocol.errors import ErrorCode
from parley.protocol.http import ErrorBody
from parley_server.api.auth import provide_session
from parley_server.api.errors import STATUS_OF, error_response
from parley_server.service.context import Session
from parley_server.service.dispatch import Dispatcher
from parley_server.service.errors import ServiceError
from parley_server.service.keys import Keys

KEY_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_SIGNATURE: 400,
    ErrorCode.TOO_MANY_DEVICES: 400,
    ErrorCode.UNKNOWN_DEVICE: 400,
    ErrorCode.IDENTITY_KEY_CHANGED: 409,
    ErrorCode.ACCOUNT_KEY_CHANGED: 409,
    ErrorCode.DEVLIST_ROLLBACK: 409,
    ErrorCode.BACKUP_VERSION_MISMATCH: 409,
}
"""HTTP status of the key-directory codes; every other code keeps its status of api/errors."""

UserIdPath = Annotated[str, Parameter(min_length=1, max_length=64)]


def make_keys(app: Dispatcher) -> Keys:
    return Keys(app.services, app.services.stores.keys)


def provide_keys(state: State) -> Keys:
    keys: Keys = state.key_service
    return keys


def _service_error(_: Request[Any, Any, Any], exc: ServiceError) -> Response[ErrorBody]:
    headers = None
    if exc.retry_after is not None:
        headers = {"Retry-After": str(max(1, int(exc.retry_after + 0.999)))}
    status = KEY_STATUS.get(exc.code, STATUS_OF.get(exc.code, 400))
    return error_response(exc.code, exc.message, status, headers=headers)


class KeyController(Controller):
    path = "/api/v1/keys"
    dependencies = {
        "keys": Provide(provide_keys, sync_to_thread=False),
        "session": Provide(provide_session),
    }
    exception_handlers = {ServiceError: _service_error}
    tags = ["keys"]

    # --- own device ----------------------------------------------------------------------------
    @put("/device")
    async def upload(
        self, data: proto.UploadKeysBody, keys: Keys, session: Session
    ) -> proto.OpkCountReply:
        return await keys.upload(session, data)

    @get("/count")
    async def count(self, keys: Keys, session: Session) -> proto.OpkCountReply:
        return await keys.count(session)

    # --- device lists and bundles --------------------------------------------------------------
    @put("/devicelist")
    async def put_device_list(
        self, data: proto.PutDeviceListBody, keys: Keys, session: Session
    ) -> proto.DeviceListReply:
        return await keys.put_device_list(session, data)

    @get("/users/{user_id:str}/devicelist")
    async def device_list(
        self, keys: Keys, session: Session, user_id: UserIdPath
    ) -> proto.DeviceListReply:
        return await keys.device_list(session, user_id)

    @get("/users/{user_id:str}/bundles")
    async def bundles(
        self, keys: Keys, session: Session, user_id: UserIdPath
    ) -> proto.BundlesReply:
        return await keys.bundles(session, user_id)

    # --- key backup ----------------------------------------------------------------------------
    @post("/backup", status_code=201)
    async def create_backup(
        self, data: proto.CreateBackupBody, keys: Keys, session: Session
    ) -> proto.BackupVersionReply:
        return await keys.create_backup(session, data)

    @get("/backup")
    async def backup_version(self, keys: Keys, session: Session) -> proto.BackupVersionReply:
        return await keys.backup_version(session)

    @put("/backup/records")
    async def put_backup_records(
        self, data: proto.PutBackupRecordsBody, keys: Keys, session: Session
    ) -> proto.PutBackupRecordsReply:
        return await keys.put_backup_records(session, data)

    @get("/backup/records")
    async def backup_records(
        self,
        keys: Keys,
        session: Session,
        conversation_id: list[proto.Id16],
        version: Annotated[int | None, Parameter(ge=1)] = None,
    ) -> proto.BackupRecordsReply:
        return await keys.backup_records(session, version, conversation_id)
