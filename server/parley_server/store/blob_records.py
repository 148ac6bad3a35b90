"""The attachment blob domain of the store: what each blob is, whose, and which messages carry it.

The object bytes live in a ``BlobStore`` (``parley_server.blobs``); these records decide who may
download a blob and when it is garbage. Deletion is crash-safe in two steps: a record is first
marked ``deleting`` (committed), then its object is deleted, then the record is forgotten; a
crash in between leaves a ``deleting`` record that the next GC pass finishes.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from parley_server.store.records import StoreError


class BlobState(StrEnum):
    PENDING = "pending"  # reserved by upload_begin; the object may or may not be stored yet
    COMMITTED = "committed"  # checked by upload_commit
    DELETING = "deleting"  # garbage: its object is being deleted


@dataclass(frozen=True, slots=True)
class BlobRow:
    blob_id: str
    owner: str
    size: int
    sha256: bytes
    md5: bytes | None
    kind: str
    state: BlobState
    created: int  # ms
    committed: int | None = None  # ms


class QuotaExceeded(StoreError):
    """The owner's pending and committed blobs would exceed the quota."""


class BlobRecords(abc.ABC):
    @abc.abstractmethod
    async def create(self, row: BlobRow, quota_bytes: int) -> None:
        """Record a pending blob, unless the owner's blobs would then exceed ``quota_bytes``
        (raises ``QuotaExceeded``; the check and the insert are one transaction)."""

    @abc.abstractmethod
    async def get(self, blob_id: str) -> BlobRow | None: ...

    @abc.abstractmethod
    async def used_bytes(self, owner: str) -> int:
        """Bytes of the owner's pending and committed blobs (what the quota counts)."""

    @abc.abstractmethod
    async def commit(self, blob_id: str, owner: str, now: int) -> bool:
        """pending -> committed, for the owner's blob only; False if it was not pending."""

    @abc.abstractmethod
    async def mark_deleting(self, blob_id: str, owner: str | None = None) -> bool:
        """pending/committed -> deleting (only the owner's if ``owner``); False if neither."""

    @abc.abstractmethod
    async def forget(self, blob_id: str) -> None:
        """Drop a ``deleting`` record and its references, once its object is gone."""

    @abc.abstractmethod
    async def usable(self, user_id: str, blob_ids: Sequence[str]) -> set[str]:
        """Those of ``blob_ids`` the user may put in a message: committed, and the user's own
        or readable by the user through a live message of a conversation they are in."""

    @abc.abstractmethod
    async def add_refs(self, conversation_id: bytes, seq: int, blob_ids: Sequence[str]) -> None:
        """Record that entry ``seq`` of the conversation carries these (committed) blobs."""

    @abc.abstractmethod
    async def readable(self, user_id: str, blob_id: str, conversation_id: bytes) -> BlobRow | None:
        """The blob if the user may download it through that conversation: it is committed and
        carried by a live (not recalled) message of it, the conversation is not disbanded and
        the user is a member; or the user uploaded it. None otherwise (no detail leaks)."""

    @abc.abstractmethod
    async def collect(self, pending_before: int, unsent_before: int, limit: int) -> list[str]:
        """Mark garbage ``deleting`` and return up to ``limit`` ``deleting`` ids to delete:
        pending blobs created before ``pending_before``; committed blobs no message ever
        carried, committed before ``unsent_before``; committed blobs every message of which
        was recalled or whose conversations were disbanded (at once: that is final)."""
