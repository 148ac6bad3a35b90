"""Profiles: which accounts this browser holds, and how each one's data key is unlocked
(see ``vault`` for the scheme). Kept in the small database ``parley-profiles``:

* ``profiles`` username → msgpack ``Profile`` (ids, Argon2id salt/limits, the data key wrapped
  by the password and, while remembered, by the device key; the session token SEALED);
* ``device_keys`` username → the non-extractable CryptoKey (structured clone);
* ``current`` "current" → the username a reload resumes.
"""

from __future__ import annotations

import msgspec

from parley.crypto import backend
from parley_web import idb, vault
from parley_web.local_store import db_name

DB = "parley-profiles"
STORES = ["profiles", "device_keys", "current"]


class Profile(msgspec.Struct):
    username: str
    user_id: str
    device_id: int
    db: str
    salt: bytes
    opslimit: int
    memlimit: int
    pw_wrapped: bytes
    dev_wrapped: bytes = b""
    token_sealed: bytes = b""


_dec = msgspec.msgpack.Decoder(Profile)


async def _db() -> idb.Db:
    return await idb.Db.open(DB, STORES)


async def find(username: str) -> Profile | None:
    db = await _db()
    try:
        raw = await db.get("profiles", username)
        return None if raw is None else _dec.decode(raw)
    finally:
        db.close()


async def _save(db: idb.Db, p: Profile) -> None:
    await db.put("profiles", p.username, msgspec.msgpack.encode(p))


def token_of(p: Profile, data_key: bytes) -> str:
    return vault.Vault(data_key).open(p.token_sealed, b"parley/token").decode()


async def create(
    username: str, user_id: str, device_id: int, token: str, password: str
) -> tuple[Profile, bytes]:
    """A new profile (new device): fresh data key, wrapped by the password, remembered."""
    key = vault.new_data_key()
    salt = backend.random_bytes(vault.SALT_LEN)
    ops, mem = vault.PW_OPSLIMIT, vault.PW_MEMLIMIT
    p = Profile(
        username=username, user_id=user_id, device_id=device_id, db=db_name(user_id, device_id),
        salt=salt, opslimit=ops, memlimit=mem,
        pw_wrapped=vault.wrap_with_password(key, password, salt, ops, mem),
        token_sealed=vault.Vault(key).seal(token.encode(), b"parley/token"),
    )  # fmt: skip
    old = await find(username)
    if old is not None and old.db != p.db:
        await idb.delete_database(old.db)  # a profile replaced by a new device's
    await remember(p, key)
    return p, key


def unlock(p: Profile, password: str) -> bytes:
    """The data key, from the password (raises ``vault.VaultError`` if it is wrong)."""
    return vault.unwrap_with_password(p.pw_wrapped, password, p.salt, p.opslimit, p.memlimit)


async def remember(p: Profile, data_key: bytes) -> None:
    """Let a reload open this profile without the password (non-extractable device key)."""
    db = await _db()
    try:
        dk = await vault.new_device_key()
        p.dev_wrapped = await vault.wrap_with_device(data_key, dk)
        tx = db.tx(["profiles", "device_keys", "current"], "readwrite")
        tx.objectStore("profiles").put(idb.u8(msgspec.msgpack.encode(p)), p.username)
        tx.objectStore("device_keys").put(dk, p.username)
        tx.objectStore("current").put(p.username, "current")
        await idb.done(tx)
    finally:
        db.close()


async def resume() -> tuple[Profile, bytes] | None:
    """The remembered profile and its data key, or None (then the sign-in form)."""
    db = await _db()
    try:
        username = await db.get_raw("current", "current")
        if username is None:
            return None
        raw = await db.get("profiles", str(username))
        dk = await db.get_raw("device_keys", str(username))
        if raw is None or dk is None:
            return None
        p = _dec.decode(raw)
        try:
            return p, await vault.unwrap_with_device(p.dev_wrapped, dk)
        except vault.VaultError:
            return None
    finally:
        db.close()


async def forget(username: str) -> None:
    """Sign out: drop the device key, the token and the resume pointer (data stays sealed)."""
    db = await _db()
    try:
        raw = await db.get("profiles", username)
        tx = db.tx(["profiles", "device_keys", "current"], "readwrite")
        if raw is not None:
            p = _dec.decode(raw)
            p.dev_wrapped, p.token_sealed = b"", b""
            tx.objectStore("profiles").put(idb.u8(msgspec.msgpack.encode(p)), username)
        tx.objectStore("device_keys").delete(username)
        tx.objectStore("current").delete("current")
        await idb.done(tx)
    finally:
        db.close()
