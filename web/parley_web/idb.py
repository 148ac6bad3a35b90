"""A thin async layer over IndexedDB for Python in Pyodide.

Requests are made through ``parley_glue`` (boot.js), which binds each request's events in JS
and hands back a Promise: Python never gives IndexedDB a callback, so there is no proxy to
leak. A transaction commits itself once it has no pending request and the page's code yields,
so every method here issues ALL its requests before its first ``await`` (docs/browser.md,
"Pyodide runtime rules").
"""

from __future__ import annotations

from typing import Any

import parley_glue as glue  # type: ignore[import-not-found]
from pyodide.ffi import to_js  # type: ignore[import-not-found]

Key = str | Any  # a string, or a JS array built by ``key``


def key(a: str, seq: int) -> Any:
    """The compound key ``[a, seq]`` (conversation hex id, seq)."""
    return glue.key(a, seq)


def key_range(a: str, lo: float, hi: float) -> Any:
    return glue.range(a, lo, hi)


def u8(data: bytes) -> Any:
    return to_js(data)


class Db:
    """One open IndexedDB database whose object stores all use out-of-line keys."""

    VERSION = 1

    def __init__(self, name: str, handle: Any) -> None:
        self.name = name
        self.handle = handle

    @classmethod
    async def open(cls, name: str, stores: list[str]) -> Db:
        return cls(name, await glue.openDb(name, cls.VERSION, to_js(stores)))

    def tx(self, stores: list[str], mode: str = "readonly") -> Any:
        return self.handle.transaction(to_js(stores), mode)

    async def get(self, store: str, k: Key) -> bytes | None:
        value = await glue.req(self.tx([store]).objectStore(store).get(k))
        return None if value is None else bytes(value.to_bytes())

    async def get_raw(self, store: str, k: Key) -> Any:
        """A structured-clone value as is (e.g. a CryptoKey)."""
        return await glue.req(self.tx([store]).objectStore(store).get(k))

    async def get_all(self, store: str, query: Any = None, count: int | None = None) -> list[bytes]:
        os = self.tx([store]).objectStore(store)
        r = os.getAll(query) if count is None else os.getAll(query, count)
        values = await glue.req(r)
        return [bytes(v.to_bytes()) for v in values]

    async def get_all_with_keys(self, store: str, query: Any = None) -> list[tuple[Any, bytes]]:
        """``(key, value)`` pairs: both requests are issued before the first await."""
        os = self.tx([store]).objectStore(store)
        # both promises exist (their handlers bound) before the first await
        keys_p, values_p = glue.req(os.getAllKeys(query)), glue.req(os.getAll(query))
        keys = (await keys_p).to_py()
        values = await values_p
        return [(k, bytes(v.to_bytes())) for k, v in zip(keys, values, strict=True)]

    async def put(self, store: str, k: Key, value: Any) -> None:
        """One value in one transaction (bytes are copied into a Uint8Array)."""
        tx = self.tx([store], "readwrite")
        tx.objectStore(store).put(u8(value) if isinstance(value, bytes) else value, k)
        await glue.done(tx)

    async def delete(self, store: str, k: Key) -> None:
        tx = self.tx([store], "readwrite")
        tx.objectStore(store).delete(k)
        await glue.done(tx)

    async def seqs(self, store: str, a: str) -> list[int]:
        """The seqs stored under ``[a, *]``, ascending (one typed array across the FFI)."""
        arr = await glue.seqs(self.handle, store, a)
        return [int(s) for s in arr.to_py().tolist()]

    async def count(self, store: str, query: Any = None) -> int:
        return int(await glue.req(self.tx([store]).objectStore(store).count(query)))

    def close(self) -> None:
        self.handle.close()


async def delete_database(name: str) -> None:
    await glue.deleteDb(name)


async def done(tx: Any) -> None:
    await glue.done(tx)


def add_ignore(store: Any, value: bytes, k: Key) -> None:
    """Insert unless the key exists (without aborting the transaction)."""
    glue.addIgnore(store, u8(value), k)
