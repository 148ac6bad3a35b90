"""The ``KeyDirectory`` interface: public E2E keys, signed device lists and key backups.

One interface, several engines (SQLite beside the ``Store`` now; others later). Engines do
storage and the atomic check-and-set rules that must not race (identity-key pinning, AIK
pinning, device-list anti-rollback, one-time prekeys handed out at most once, lowest backup
iteration wins); signature checks and authorization live in the service layer above
(``service/keys.py``). Everything stored is public or sealed by the client (docs/imv1.md §10).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import msgspec

from parley_server.store.base import StoreError

# --- failures (each one leaves the directory unchanged) ---------------------------------------


class IdentityKeyChanged(StoreError):
    """An upload names another IK than the one pinned for that device."""


class StaleSignedPreKey(StoreError):
    """A signed prekey with a lower id than the stored one, or the same id with other bytes."""


class PreKeyConflict(StoreError):
    """A one-time prekey id already stored for the device with another public key."""


class TooManyPreKeys(StoreError):
    """Storing the upload would exceed the per-device one-time prekey cap."""


class AccountKeyChanged(StoreError):
    """A device list signed by another AIK than the one pinned for the user."""


class DeviceListRollback(StoreError):
    """A device list whose version is not above the stored one (and is not the same list)."""


class NoBackup(StoreError):
    """The user has no backup version."""


class BackupVersionMismatch(StoreError):
    """Records for a backup version that is not the user's current one."""


class TooManyBackupRecords(StoreError):
    """Storing the records would exceed the per-user backup record cap."""


# --- rows --------------------------------------------------------------------------------------


class SignedPreKeyRow(msgspec.Struct, frozen=True):
    id: int
    pub: bytes
    sig: bytes


class OneTimePreKeyRow(msgspec.Struct, frozen=True):
    id: int
    pub: bytes


class DeviceKeysRow(msgspec.Struct, frozen=True):
    user_id: str
    device_id: int
    ik: bytes
    spk: SignedPreKeyRow
    opk_count: int


class DeviceListRow(msgspec.Struct, frozen=True):
    user_id: str
    aik: bytes
    version: int
    data: bytes
    sig: bytes


class BundleKeys(msgspec.Struct, frozen=True):
    """A device's keys for one bundle: ``opk`` was removed from the directory (or None)."""

    device_id: int
    ik: bytes
    spk: SignedPreKeyRow
    opk: OneTimePreKeyRow | None


class BackupVersionRow(msgspec.Struct, frozen=True):
    user_id: str
    version: int
    algorithm: str
    check: bytes
    salt: bytes | None
    opslimit: int | None
    memlimit: int | None
    created: int
    count: int


class BackupRecordRow(msgspec.Struct, frozen=True):
    conversation_id: bytes
    sender_user_id: str
    sender_device_id: int
    distribution_id: bytes
    chain_id: int
    iteration: int
    blob: bytes


class BackupPutResult(msgspec.Struct, frozen=True):
    stored: int
    kept: int
    count: int


class KeyDirectory(abc.ABC):
    """Public keys, device lists and backups. Every method is atomic."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Prepare storage (idempotent). Engines may also do it lazily on first use."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    # --- device keys ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def upload_keys(
        self,
        user_id: str,
        device_id: int,
        ik: bytes,
        spk: SignedPreKeyRow,
        opks: Sequence[OneTimePreKeyRow],
        max_stored: int,
        now: int,
    ) -> int:
        """Pin ``ik`` (first upload) or check it, store ``spk`` unless stale, add ``opks``
        (an id already stored with the same key is a no-op: retries are safe). Returns the
        device's one-time prekey count. Raises IdentityKeyChanged, StaleSignedPreKey,
        PreKeyConflict, TooManyPreKeys."""

    @abc.abstractmethod
    async def device_keys(self, user_id: str, device_id: int) -> DeviceKeysRow | None: ...

    @abc.abstractmethod
    async def opk_count(self, user_id: str, device_id: int) -> int:
        """0 for a device that never uploaded."""

    @abc.abstractmethod
    async def take_bundles(self, user_id: str, device_ids: Sequence[int]) -> list[BundleKeys]:
        """For each listed device that has uploaded keys: its keys, and ONE one-time prekey
        removed from the directory (None when exhausted). Ordered by device id."""

    # --- signed device lists -----------------------------------------------------------------
    @abc.abstractmethod
    async def device_list(self, user_id: str) -> DeviceListRow | None: ...

    @abc.abstractmethod
    async def put_device_list(self, row: DeviceListRow, now: int) -> DeviceListRow:
        """Store a (verified) list: pins ``row.aik`` on the user's first list; afterwards the AIK
        must match (AccountKeyChanged) and the version must increase (DeviceListRollback;
        re-putting the identical current list is a no-op). Returns the stored row."""

    # --- key backup ----------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_backup(
        self,
        user_id: str,
        algorithm: str,
        check: bytes,
        salt: bytes | None,
        opslimit: int | None,
        memlimit: int | None,
        now: int,
    ) -> BackupVersionRow:
        """A new version (previous + 1, or 1); the previous version's records are deleted."""

    @abc.abstractmethod
    async def backup_version(self, user_id: str) -> BackupVersionRow | None: ...

    @abc.abstractmethod
    async def put_backup_records(
        self, user_id: str, version: int, records: Sequence[BackupRecordRow], max_records: int
    ) -> BackupPutResult:
        """Per key keep the record with the lowest iteration (ties keep the stored one).
        Raises NoBackup, BackupVersionMismatch, TooManyBackupRecords."""

    @abc.abstractmethod
    async def backup_records(
        self, user_id: str, version: int, conversation_ids: Sequence[bytes]
    ) -> list[BackupRecordRow]:
        """Records of ``version`` for those conversations. Raises NoBackup,
        BackupVersionMismatch."""
