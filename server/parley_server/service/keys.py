"""Key directory service: device keys, signed device lists, bundles and key backup.

The server verifies what it can without any secret (signed prekey signatures under the
uploaded IK, device-list signatures under the user's pinned AIK, anti-rollback, the device
count, that listed devices are the user's live devices) so a buggy or hostile client cannot
publish garbage; clients still run every check themselves (docs/imv1.md §3.4), since the server is
not trusted with identity. Identity always comes from the session: a device uploads its own keys
and a user publishes its own list.
"""

from __future__ import annotations

import struct

from parley.crypto import devicelist, keys
from parley.crypto.b64 import b64d, b64e
from parley.crypto.constants import DEVLIST_DOMAIN
from parley.crypto.errors import BadSignature, CryptoError, UntrustedIdentity
from parley.protocol import keys as proto
from parley.protocol.errors import ErrorCode
from parley_server.logging import get_logger
from parley_server.service.context import Services, Session, now_ms
from parley_server.service.errors import ServiceError
from parley_server.service.ratelimit import SlidingWindow
from parley_server.store import keydir as kd
from parley_server.store.keydir import KeyDirectory

log = get_logger("parley.keys")

_ERRORS: dict[type[Exception], ErrorCode] = {
    kd.IdentityKeyChanged: ErrorCode.IDENTITY_KEY_CHANGED,
    kd.StaleSignedPreKey: ErrorCode.CONFLICT,
    kd.PreKeyConflict: ErrorCode.CONFLICT,
    kd.TooManyPreKeys: ErrorCode.TOO_LARGE,
    kd.AccountKeyChanged: ErrorCode.ACCOUNT_KEY_CHANGED,
    kd.DeviceListRollback: ErrorCode.DEVLIST_ROLLBACK,
    kd.NoBackup: ErrorCode.NOT_FOUND,
    kd.BackupVersionMismatch: ErrorCode.BACKUP_VERSION_MISMATCH,
    kd.TooManyBackupRecords: ErrorCode.TOO_LARGE,
}


def _service_error(exc: Exception) -> ServiceError:
    return ServiceError(_ERRORS[type(exc)], str(exc))


def _d(text: str, length: int | None, what: str) -> bytes:
    """Strict base64url decode; anything else is ``invalid``."""
    try:
        return b64d(text, length)
    except CryptoError:
        raise ServiceError(ErrorCode.INVALID, f"{what} is not canonical base64url") from None


def _declared_count(data: bytes) -> int | None:
    """The ``count`` field of an encoded device list, read before the strict parse so that a
    list that is too long gets its own code."""
    n = len(DEVLIST_DOMAIN)
    if len(data) < n + 2:
        return None
    pos = n + 2 + int.from_bytes(data[n : n + 2], "big") + 16
    if len(data) < pos + 2:
        return None
    return int(struct.unpack_from(">H", data, pos)[0])


BUNDLE_FETCHES_PER_TARGET = 60
"""Bundle fetches one user may make for one target user per ``BUNDLE_WINDOW_S``: each fetch
spends one-time prekeys, so this bounds how fast one account can drain someone's supply."""

BUNDLE_FETCHES_PER_CALLER = 1000
"""Bundle fetches one user may make in total per ``BUNDLE_WINDOW_S``."""

BUNDLE_WINDOW_S = 60.0


class Keys:
    def __init__(
        self,
        services: Services,
        directory: KeyDirectory,
        per_target: int = BUNDLE_FETCHES_PER_TARGET,
        per_caller: int = BUNDLE_FETCHES_PER_CALLER,
        window_s: float = BUNDLE_WINDOW_S,
    ) -> None:
        self.s = services
        self.kd = directory
        self._per_target = SlidingWindow(per_target, window_s)
        self._per_caller = SlidingWindow(per_caller, window_s)

    # --- device keys -----------------------------------------------------------------------------
    async def upload(self, session: Session, body: proto.UploadKeysBody) -> proto.OpkCountReply:
        ik = _d(body.ik, 32, "ik")
        spk = kd.SignedPreKeyRow(
            body.spk.id, _d(body.spk.pub, 32, "spk.pub"), _d(body.spk.sig, 64, "spk.sig")
        )
        opks = [kd.OneTimePreKeyRow(o.id, _d(o.pub, 32, "opk.pub")) for o in body.opks]
        if len({o.id for o in opks}) != len(opks):
            raise ServiceError(ErrorCode.INVALID, "one-time prekey ids must be unique")
        if not keys.verify_spk(ik, spk.pub, spk.sig):
            raise ServiceError(ErrorCode.BAD_SIGNATURE, "signed prekey signature does not verify")
        current = await self.kd.device_list(session.user_id)
        if current is not None:
            listed = devicelist.parse(current.data).ik_of(session.device_id)
            if listed is not None and listed != ik:
                raise ServiceError(
                    ErrorCode.IDENTITY_KEY_CHANGED,
                    "the device list names another identity key for this device",
                )
        try:
            count = await self.kd.upload_keys(
                session.user_id,
                session.device_id,
                ik,
                spk,
                opks,
                proto.OPK_MAX_STORED,
                now_ms(),
            )
        except (
            kd.IdentityKeyChanged,
            kd.StaleSignedPreKey,
            kd.PreKeyConflict,
            kd.TooManyPreKeys,
        ) as exc:
            raise _service_error(exc) from None
        log.info(
            "keys_uploaded",
            user_id=session.user_id,
            device_id=session.device_id,
            opks=len(opks),
            opk_count=count,
        )
        return proto.OpkCountReply(count=count, low=count < proto.OPK_LOW_WATER)

    async def count(self, session: Session) -> proto.OpkCountReply:
        n = await self.kd.opk_count(session.user_id, session.device_id)
        return proto.OpkCountReply(count=n, low=n < proto.OPK_LOW_WATER)

    # --- signed device lists -------------------------------------------------------------------
    async def put_device_list(
        self, session: Session, body: proto.PutDeviceListBody
    ) -> proto.DeviceListReply:
        aik = _d(body.aik, 32, "aik")
        data = _d(body.devlist, None, "devlist")
        sig = _d(body.devlist_sig, 64, "devlist_sig")
        declared = _declared_count(data)
        if declared is not None and declared > proto.MAX_DEVICES:
            raise ServiceError(
                ErrorCode.TOO_MANY_DEVICES, f"a device list holds at most {proto.MAX_DEVICES}"
            )
        try:
            dl = devicelist.verify(data, sig, aik, user_id=session.user_id)
        except BadSignature:
            raise ServiceError(
                ErrorCode.BAD_SIGNATURE, "device list signature does not verify"
            ) from None
        except UntrustedIdentity:
            raise ServiceError(ErrorCode.FORBIDDEN, "that is another user's device list") from None
        except CryptoError as exc:
            raise ServiceError(ErrorCode.INVALID, f"bad device list: {exc}") from None
        pinned = await self.kd.device_list(session.user_id)
        if pinned is not None and pinned.aik != aik:  # the engine checks again, atomically
            raise ServiceError(ErrorCode.ACCOUNT_KEY_CHANGED, "account key differs from pinned")
        live = {
            d.device_id for d in await self.s.store.list_devices(session.user_id) if not d.revoked
        }
        for d in dl.devices:
            if d.device_id not in live:
                raise ServiceError(
                    ErrorCode.UNKNOWN_DEVICE,
                    f"device {d.device_id} is not a current device of this account",
                )
            uploaded = await self.kd.device_keys(session.user_id, d.device_id)
            if uploaded is not None and uploaded.ik != d.ik_pub:
                raise ServiceError(
                    ErrorCode.IDENTITY_KEY_CHANGED,
                    f"device {d.device_id} uploaded another identity key",
                )
        row = kd.DeviceListRow(session.user_id, aik, dl.version, data, sig)
        try:
            stored = await self.kd.put_device_list(row, now_ms())
        except (kd.AccountKeyChanged, kd.DeviceListRollback) as exc:
            raise _service_error(exc) from None
        log.info("device_list_published", user_id=session.user_id, version=stored.version)
        return _dl_reply(stored)

    async def device_list(self, session: Session, user_id: str) -> proto.DeviceListReply:
        await self._user_exists(user_id)
        row = await self.kd.device_list(user_id)
        if row is None:
            raise ServiceError(ErrorCode.NOT_FOUND, "that user has no device list")
        return _dl_reply(row)

    # --- bundles ---------------------------------------------------------------------------------
    async def bundles(self, session: Session, user_id: str) -> proto.BundlesReply:
        """One bundle per listed, live device with keys; pops one OPK each (at most once)."""
        pair = f"{session.user_id} {user_id}"
        for window, key in ((self._per_target, pair), (self._per_caller, session.user_id)):
            wait = window.retry_after(key)
            if wait is not None:
                log.warning("bundles_rate_limited", user_id=session.user_id, target=user_id)
                raise ServiceError(ErrorCode.RATE_LIMITED, "too many bundle fetches", wait)
        self._per_target.hit(pair)
        self._per_caller.hit(session.user_id)
        await self._user_exists(user_id)
        row = await self.kd.device_list(user_id)
        if row is None:
            return proto.BundlesReply(bundles=[])
        dl = devicelist.parse(row.data)
        live = {d.device_id for d in await self.s.store.list_devices(user_id) if not d.revoked}
        wanted = [d.device_id for d in dl.devices if d.device_id in live]
        taken = await self.kd.take_bundles(user_id, wanted)
        aik, dl_b64, sig_b64 = b64e(row.aik), b64e(row.data), b64e(row.sig)
        out = [
            proto.Bundle(
                user_id=user_id,
                device_id=t.device_id,
                aik=aik,
                devlist=dl_b64,
                devlist_sig=sig_b64,
                ik=b64e(t.ik),
                spk=proto.BundleSpk(id=t.spk.id, pub=b64e(t.spk.pub), sig=b64e(t.spk.sig)),
                opk=None if t.opk is None else proto.BundleOpk(id=t.opk.id, pub=b64e(t.opk.pub)),
            )
            for t in taken
            if dl.contains(t.device_id, t.ik)  # an IK the list does not vouch for: leave out
        ]
        log.info(
            "bundles_fetched",
            user_id=session.user_id,
            target=user_id,
            bundles=len(out),
            opks=sum(b.opk is not None for b in out),
        )
        return proto.BundlesReply(bundles=out)

    async def _user_exists(self, user_id: str) -> None:
        if await self.s.store.get_user(user_id) is None:
            raise ServiceError(ErrorCode.UNKNOWN_USER, "no such user")

    # --- key backup ------------------------------------------------------------------------------
    async def create_backup(
        self, session: Session, body: proto.CreateBackupBody
    ) -> proto.BackupVersionReply:
        check = _d(body.check, None, "check")
        if not 40 <= len(check) <= 128:  # nonce 24 + tag 16 + the check constant
            raise ServiceError(ErrorCode.INVALID, "check must be 40..128 bytes")
        salt = None if body.salt is None else _d(body.salt, 16, "salt")
        if (salt is None) != (body.limits is None):
            raise ServiceError(ErrorCode.INVALID, "salt and limits go together")
        lim = body.limits
        row = await self.kd.create_backup(
            session.user_id,
            body.algorithm,
            check,
            salt,
            None if lim is None else lim.opslimit,
            None if lim is None else lim.memlimit,
            now_ms(),
        )
        log.info("backup_created", user_id=session.user_id, version=row.version)
        return _backup_reply(row)

    async def backup_version(self, session: Session) -> proto.BackupVersionReply:
        row = await self.kd.backup_version(session.user_id)
        if row is None:
            raise ServiceError(ErrorCode.NOT_FOUND, "no key backup")
        return _backup_reply(row)

    async def put_backup_records(
        self, session: Session, body: proto.PutBackupRecordsBody
    ) -> proto.PutBackupRecordsReply:
        rows = []
        for r in body.records:
            blob = _d(r.blob, None, "blob")
            if len(blob) > proto.BACKUP_BLOB_MAX:
                raise ServiceError(
                    ErrorCode.TOO_LARGE, f"a backup record is at most {proto.BACKUP_BLOB_MAX} B"
                )
            rows.append(
                kd.BackupRecordRow(
                    conversation_id=_d(r.conversation_id, 16, "conversation_id"),
                    sender_user_id=r.sender_user_id,
                    sender_device_id=r.sender_device_id,
                    distribution_id=_d(r.distribution_id, 16, "distribution_id"),
                    chain_id=r.chain_id,
                    iteration=r.iteration,
                    blob=blob,
                )
            )
        try:
            res = await self.kd.put_backup_records(
                session.user_id, body.version, rows, proto.BACKUP_RECORDS_PER_USER_MAX
            )
        except (kd.NoBackup, kd.BackupVersionMismatch, kd.TooManyBackupRecords) as exc:
            raise _service_error(exc) from None
        return proto.PutBackupRecordsReply(stored=res.stored, kept=res.kept, count=res.count)

    async def backup_records(
        self, session: Session, version: int | None, conversation_ids: list[str]
    ) -> proto.BackupRecordsReply:
        """Records of ``version`` (default: the current one) for those conversations."""
        if len(conversation_ids) > proto.BACKUP_CONVERSATIONS_MAX:
            raise ServiceError(
                ErrorCode.TOO_LARGE,
                f"at most {proto.BACKUP_CONVERSATIONS_MAX} conversations per request",
            )
        cids = [_d(c, 16, "conversation_id") for c in conversation_ids]
        if version is None:
            current = await self.kd.backup_version(session.user_id)
            if current is None:
                raise ServiceError(ErrorCode.NOT_FOUND, "no key backup")
            version = current.version
        try:
            rows = await self.kd.backup_records(session.user_id, version, cids)
        except (kd.NoBackup, kd.BackupVersionMismatch) as exc:
            raise _service_error(exc) from None
        return proto.BackupRecordsReply(
            version=version,
            records=[
                proto.BackupRecordBody(
                    conversation_id=b64e(r.conversation_id),
                    sender_user_id=r.sender_user_id,
                    sender_device_id=r.sender_device_id,
                    distribution_id=b64e(r.distribution_id),
                    chain_id=r.chain_id,
                    iteration=r.iteration,
                    blob=b64e(r.blob),
                )
                for r in rows
            ],
        )


def _dl_reply(row: kd.DeviceListRow) -> proto.DeviceListReply:
    return proto.DeviceListReply(
        user_id=row.user_id,
        aik=b64e(row.aik),
        devlist=b64e(row.data),
        devlist_sig=b64e(row.sig),
        version=row.version,
    )


def _backup_reply(row: kd.BackupVersionRow) -> proto.BackupVersionReply:
    limits = None
    if row.opslimit is not None and row.memlimit is not None:
        limits = proto.BackupLimits(opslimit=row.opslimit, memlimit=row.memlimit)
    return proto.BackupVersionReply(
        version=row.version,
        algorithm=row.algorithm,
        check=b64e(row.check),
        salt=None if row.salt is None else b64e(row.salt),
        limits=limits,
        count=row.count,
    )
