"""The ``BlobStore`` interface: presigned, verified uploads and short-lived downloads.

A blob is stored under an opaque key the server chose (never a file name). An upload is granted
as a presigned request bound to that key, the exact size and the SHA-256 of the bytes, so the
store itself refuses any other bytes; ``stat`` lets the server check again before it marks the
blob committed. Engines are interchangeable: one contract suite (tests/contract/test_blobstore.py)
runs against every engine.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PresignedRequest:
    """An HTTP request a client may make without credentials of its own until ``expires_at``.

    ``url`` is absolute for an object store, or a path on the Parley server itself (begins with
    ``/``) for the local engine: clients resolve it against the server's base URL. Every header
    in ``headers`` must be sent exactly as given (they are part of the signature).
    """

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    expires_at: int = 0  # unix seconds


@dataclass(frozen=True, slots=True)
class BlobStat:
    """What the store knows of a stored object. ``md5``/``sha256`` are None when unknown."""

    size: int
    md5: bytes | None = None
    sha256: bytes | None = None


class BlobStore(abc.ABC):
    """Where encrypted attachment blobs are kept. All methods are safe on the event loop."""

    name: str = ""

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Prepare the store (create the directory or check the bucket)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    @abc.abstractmethod
    async def presign_put(
        self, key: str, size: int, sha256: bytes, expires_s: int, now_s: int
    ) -> PresignedRequest:
        """An upload of exactly ``size`` bytes whose SHA-256 is ``sha256`` to ``key``."""

    @abc.abstractmethod
    async def presign_get(self, key: str, expires_s: int, now_s: int) -> PresignedRequest:
        """A download of ``key``."""

    @abc.abstractmethod
    async def stat(self, key: str) -> BlobStat | None:
        """The stored object's size (and digests where the store has them); None if absent."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove ``key``; removing an absent key is not an error (deletion is retried)."""

    @abc.abstractmethod
    async def keys(self) -> list[str]:
        """Every stored key (for GC of objects the metadata no longer knows)."""
