"""The key directory's HTTP API (``/api/v1/keys``) as data: each function returns the request
to make (method, path under ``/api/v1/keys``, JSON body, reply type, query) and performs none.

The E2E driver hands an ``ApiCall`` to whatever caller its shell gives it (httpx in CPython,
fetch in the browser); both have the shape ``call(method, path, body, reply, params)`` and raise
``KeyDirectoryError`` for a reply of 400 or more, or status 0 when the directory could not be
reached at all. Keeping the requests here means the paths and bodies exist once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import quote

from parley.crypto.b64 import b64e
from parley.protocol import keys as kp

T = TypeVar("T")

BASE = "/api/v1/keys"
"""Where the key directory is mounted; ``ApiCall.path`` is relative to it."""


class KeyDirectoryError(Exception):
    """The key directory answered ``status`` (>= 400), or was unreachable (status 0)."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"key directory {status}: {body[:200]}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class ApiCall(Generic[T]):
    method: str
    path: str
    body: object
    reply: type[T]
    params: list[tuple[str, str]] | None = None


def _user(user_id: str) -> str:
    return quote(user_id, safe="")


def upload_keys(body: kp.UploadKeysBody) -> ApiCall[kp.OpkCountReply]:
    """Our IK, current SPK and new OPKs (public halves)."""
    return ApiCall("PUT", "/device", body, kp.OpkCountReply)


def opk_count() -> ApiCall[kp.OpkCountReply]:
    """How many of our OPKs the server still holds."""
    return ApiCall("GET", "/count", None, kp.OpkCountReply)


def put_device_list(body: kp.PutDeviceListBody) -> ApiCall[kp.DeviceListReply]:
    return ApiCall("PUT", "/devicelist", body, kp.DeviceListReply)


def device_list(user_id: str) -> ApiCall[kp.DeviceListReply]:
    return ApiCall("GET", f"/users/{_user(user_id)}/devicelist", None, kp.DeviceListReply)


def bundles(user_id: str) -> ApiCall[kp.BundlesReply]:
    """One bundle per device of ``user_id`` (each claims one of its OPKs)."""
    return ApiCall("GET", f"/users/{_user(user_id)}/bundles", None, kp.BundlesReply)


def create_backup(body: kp.CreateBackupBody) -> ApiCall[kp.BackupVersionReply]:
    return ApiCall("POST", "/backup", body, kp.BackupVersionReply)


def backup_version() -> ApiCall[kp.BackupVersionReply]:
    return ApiCall("GET", "/backup", None, kp.BackupVersionReply)


def put_backup_records(body: kp.PutBackupRecordsBody) -> ApiCall[kp.PutBackupRecordsReply]:
    return ApiCall("PUT", "/backup/records", body, kp.PutBackupRecordsReply)


def backup_records(conversation_ids: list[bytes]) -> ApiCall[kp.BackupRecordsReply]:
    params = [("conversation_id", b64e(c)) for c in conversation_ids]
    return ApiCall("GET", "/backup/records", None, kp.BackupRecordsReply, params)
