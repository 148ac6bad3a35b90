"""Encryption at rest of everything secret this device keeps in IndexedDB.

Each profile (one account on one device) has a random 32-byte data key. Records are sealed with
it by ``parley.crypto.backend``'s AEAD (XChaCha20-Poly1305, random 24-byte nonce, the record's
key as associated data so a record cannot be moved to another slot).

The data key itself is stored twice, wrapped:

* under a key derived from the user's password with Argon2id (``pwhash_argon2id``; salt and
  limits stored beside it): signing in with the password always opens the profile;
* under a NON-EXTRACTABLE WebCrypto AES-GCM key kept in IndexedDB (``remember``): a reload opens
  the profile without the password, so cached chats show at once. Script can use that key
  while the page runs but can never read it out, so a copied IndexedDB export or a leaked
  backup of the profile's records is useless without this browser profile. Signing out deletes
  it (and the stored token); from then on only the password opens the profile.
"""

from __future__ import annotations

from typing import Any

import parley_glue as glue  # type: ignore[import-not-found]
from pyodide.ffi import to_js  # type: ignore[import-not-found]

from parley.crypto import backend

KEY_LEN = 32
NONCE_LEN = 24
SALT_LEN = 16
AES_IV_LEN = 12
# Argon2id at the "interactive" point: 64 MiB, 2 passes (0.1-0.18 s measured in Chromium wasm).
PW_OPSLIMIT = 2
PW_MEMLIMIT = 64 * 1024 * 1024


class VaultError(Exception):
    """A record or a wrapped key did not open (wrong password, damaged or moved record)."""


class Vault:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_LEN:
            raise ValueError("data key must be 32 bytes")
        self._key = key

    def seal(self, data: bytes, ad: bytes) -> bytes:
        nonce = backend.random_bytes(NONCE_LEN)
        return nonce + backend.aead_encrypt(data, ad, nonce, self._key)

    def open(self, blob: bytes, ad: bytes) -> bytes:
        try:
            return backend.aead_decrypt(blob[NONCE_LEN:], ad, blob[:NONCE_LEN], self._key)
        except Exception as exc:
            raise VaultError("record did not open") from exc

    @property
    def key(self) -> bytes:
        return self._key


def new_data_key() -> bytes:
    return backend.random_bytes(KEY_LEN)


def password_key(password: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return backend.pwhash_argon2id(KEY_LEN, password.encode(), salt, opslimit, memlimit)


def wrap_with_password(data_key: bytes, password: str, salt: bytes, ops: int, mem: int) -> bytes:
    return Vault(password_key(password, salt, ops, mem)).seal(data_key, b"parley/data-key")


def unwrap_with_password(blob: bytes, password: str, salt: bytes, ops: int, mem: int) -> bytes:
    return Vault(password_key(password, salt, ops, mem)).open(blob, b"parley/data-key")


async def new_device_key() -> Any:
    return await glue.deviceKey()


async def wrap_with_device(data_key: bytes, device_key: Any) -> bytes:
    iv = backend.random_bytes(AES_IV_LEN)
    ct = await glue.aesSeal(device_key, to_js(iv), to_js(data_key))
    return iv + bytes(ct.to_bytes())


async def unwrap_with_device(blob: bytes, device_key: Any) -> bytes:
    try:
        pt = await glue.aesOpen(device_key, to_js(blob[:AES_IV_LEN]), to_js(blob[AES_IV_LEN:]))
    except Exception as exc:
        raise VaultError("device key did not open the profile") from exc
    return bytes(pt.to_bytes())
