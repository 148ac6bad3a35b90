"""The profile directory: who is logged in where, and every secret sealed at rest.

Layout (directory 0700, every file 0600, written atomically)::

    profile.json   public metadata: server, username, user_id, device_id, KDF parameters,
                   and a key check. No secret, no message text.
    profile.key    only with --no-profile-passphrase: the random profile key (then the
                   secrets are protected by file permissions alone)
    secrets.bin    sealed: the session token
    store.bin      sealed: the local store (sqlite image: entries, cursors, outbox)
    account.bin    sealed: the account identity key (AIK) seed, kept by 'logout' so a later
                   login of the same account on this profile keeps its identity
    e2e.bin        sealed: the end-to-end state (identity keys, sessions, sender keys) and
                   the decrypted timeline
    names.bin      sealed: user ids -> usernames this profile has learned
    lock           empty; flock'ed by the one parley process using the profile

"Sealed" = XChaCha20-Poly1305 under the profile key, with the file's name as associated data
(a sealed file cannot be swapped for another). The profile key is Argon2id(passphrase, salt)
unless the user opted out at login.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no profile lock
    fcntl = None  # type: ignore[assignment]

import click
import msgspec

from parley.crypto import backend
from parley.crypto.errors import CryptoError
from parley_client.cli.errors import CliError

FORMAT = 1
KEY_LEN = 32
SALT_LEN = 16
_NONCE_LEN = 24
_MAGIC = b"PRLYPRF1"
_CHECK = b"parley profile key check v1"

PASSPHRASE_ENV = "PARLEY_PROFILE_PASSPHRASE"
KDF_ENV = "PARLEY_PROFILE_KDF"
# name -> (opslimit, memlimit). "interactive" is libsodium's interactive pair (2, 64 MiB).
KDF_LIMITS: dict[str, tuple[int, int]] = {
    "min": (backend.PWHASH_OPSLIMIT_MIN, backend.PWHASH_MEMLIMIT_MIN),
    "interactive": (2, 64 * 1024 * 1024),
    "moderate": (backend.PWHASH_OPSLIMIT_MODERATE, backend.PWHASH_MEMLIMIT_MODERATE),
}
DEFAULT_KDF = "interactive"

SECRETS = "secrets.bin"
STORE = "store.bin"
E2E = "e2e.bin"
NAMES = "names.bin"
ACCOUNT = "account.bin"
_META = "profile.json"
_KEYFILE = "profile.key"
_LOCK = "lock"
LOCK_WAIT_S = 10.0
LOCK_WAIT_ENV = "PARLEY_PROFILE_LOCK_WAIT"


def default_dir() -> str:
    """The per-user config dir (``~/.config/parley`` on Linux, the platform's elsewhere)."""
    return click.get_app_dir("parley")


class ProfileMeta(msgspec.Struct):
    server: str
    username: str
    user_id: str
    device_id: int
    device_name: str
    protection: str  # "passphrase" | "file"
    salt: bytes = b""
    opslimit: int = 0
    memlimit: int = 0
    check: bytes = b""
    logged_in: bool = True
    format: int = FORMAT


class Secrets(msgspec.Struct):
    token: str


class Account(msgspec.Struct):
    """The account identity kept across logout (sealed in ``account.bin``)."""

    user_id: str
    aik_seed: bytes


class Profile:
    """One profile directory. ``key`` is None until ``unlock``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.key: bytes | None = None
        self.meta: ProfileMeta | None = None
        self._lock_fd: int | None = None

    def lock(self, wait_s: float | None = None) -> None:
        """One process per profile, held until exit: two processes would each write back their
        own copy of the E2E state, and the last writer would roll the other's chains back
        (a sender-key iteration could then be used twice)."""
        if self._lock_fd is not None or fcntl is None:
            return
        self._ensure_dir()
        if wait_s is None:
            try:
                wait_s = float(os.environ.get(LOCK_WAIT_ENV, LOCK_WAIT_S))
            except ValueError:
                raise CliError(f"{LOCK_WAIT_ENV} must be a number of seconds", 2) from None
        fd = os.open(self.path / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise CliError(
                        f"the profile {self.path} is in use by another parley command "
                        "(e.g. 'watch'); wait for it to end or stop it"
                    ) from None
                time.sleep(0.1)
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    # --- metadata ------------------------------------------------------------------------
    def exists(self) -> bool:
        return (self.path / _META).is_file()

    def load_meta(self) -> ProfileMeta:
        try:
            data = (self.path / _META).read_bytes()
        except FileNotFoundError:
            raise CliError(
                f"not logged in (no profile in {self.path}): run 'parley login USERNAME'"
            ) from None
        try:
            self.meta = msgspec.json.decode(data, type=ProfileMeta)
        except msgspec.DecodeError:
            raise CliError(f"the profile in {self.path} is damaged: log in again") from None
        if self.meta.format != FORMAT:
            raise CliError(f"the profile in {self.path} has an unknown format")
        return self.meta

    def create(self, meta: ProfileMeta, passphrase: str | None, kdf: str) -> None:
        """Start a fresh profile (any previous one is wiped) and derive its key."""
        self.wipe()
        self._ensure_dir()
        if passphrase is None:
            key = backend.random_bytes(KEY_LEN)
            self._write(_KEYFILE, key)
            meta.protection = "file"
        else:
            ops, mem = KDF_LIMITS[kdf]
            meta.protection = "passphrase"
            meta.salt = backend.random_bytes(SALT_LEN)
            meta.opslimit, meta.memlimit = ops, mem
            key = _derive(passphrase, meta)
        self.key = key
        meta.check = self._seal_with(key, _META, _CHECK)
        self.meta = meta
        self._write(_META, msgspec.json.encode(meta))

    def unlock(self, passphrase: str | None = None, *, logged_out_ok: bool = False) -> ProfileMeta:
        """Load the metadata and the profile key (prompting for the passphrase if needed)."""
        meta = self.load_meta()
        if not meta.logged_in and not logged_out_ok:
            raise CliError(f"not logged in (profile {self.path}): run 'parley login USERNAME'")
        if meta.protection == "file":
            try:
                key = (self.path / _KEYFILE).read_bytes()
            except FileNotFoundError:
                raise CliError(f"the profile key file in {self.path} is missing") from None
        else:
            if passphrase is None:
                passphrase = read_passphrase(confirm=False)
            key = _derive(passphrase, meta)
        try:
            ok = self._open_with(key, _META, meta.check) == _CHECK
        except CliError:
            ok = False
        if not ok:
            raise CliError("wrong profile passphrase")
        self.key = key
        return meta

    # --- sealed files --------------------------------------------------------------------
    def seal(self, name: str, data: bytes) -> None:
        self._write(name, self._seal_with(self._need_key(), name, data))

    def unseal(self, name: str) -> bytes | None:
        """The plaintext of a sealed file, or None when it does not exist."""
        try:
            blob = (self.path / name).read_bytes()
        except FileNotFoundError:
            return None
        return self._open_with(self._need_key(), name, blob)

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path / name).unlink()

    def secrets(self) -> Secrets:
        data = self.unseal(SECRETS)
        if data is None:
            raise CliError("not logged in: run 'parley login USERNAME'")
        return msgspec.msgpack.decode(data, type=Secrets)

    def save_secrets(self, secrets: Secrets) -> None:
        self.seal(SECRETS, msgspec.msgpack.encode(secrets))

    def account(self) -> Account | None:
        data = self.unseal(ACCOUNT)
        return None if data is None else msgspec.msgpack.decode(data, type=Account)

    def save_account(self, account: Account) -> None:
        self.seal(ACCOUNT, msgspec.msgpack.encode(account))

    def log_out(self) -> None:
        """Drop the session, local store and device state; keep the profile key parameters and
        the sealed account key (``account.bin``) for a later login of the same account."""
        for name in (SECRETS, STORE, E2E):
            self.remove(name)
        meta = self.meta or self.load_meta()
        meta.logged_in = False
        self._write(_META, msgspec.json.encode(meta))

    def relogin(self, meta: ProfileMeta) -> None:
        """Reuse this unlocked profile's key for a new login (same account)."""
        old = self.meta
        assert old is not None and self.key is not None
        meta.protection, meta.salt, meta.check = old.protection, old.salt, old.check
        meta.opslimit, meta.memlimit = old.opslimit, old.memlimit
        meta.logged_in = True
        self.meta = meta
        self._write(_META, msgspec.json.encode(meta))

    def wipe(self) -> None:
        """Delete every file this module writes (the directory itself stays)."""
        for name in (_META, _KEYFILE, SECRETS, STORE, E2E, NAMES, ACCOUNT):
            self.remove(name)
        for leftover in self.path.glob("*.tmp") if self.path.is_dir() else ():
            leftover.unlink()

    # --- internals -----------------------------------------------------------------------
    def _need_key(self) -> bytes:
        if self.key is None:
            raise RuntimeError("profile is locked")
        return self.key

    def _seal_with(self, key: bytes, name: str, data: bytes) -> bytes:
        nonce = backend.random_bytes(_NONCE_LEN)
        return _MAGIC + nonce + backend.aead_encrypt(data, _MAGIC + name.encode(), nonce, key)

    def _open_with(self, key: bytes, name: str, blob: bytes) -> bytes:
        head = len(_MAGIC)
        if blob[:head] != _MAGIC or len(blob) < head + _NONCE_LEN:
            raise CliError(f"{name} in the profile is damaged: log in again")
        nonce = blob[head : head + _NONCE_LEN]
        try:
            return backend.aead_decrypt(
                blob[head + _NONCE_LEN :], _MAGIC + name.encode(), nonce, key
            )
        except CryptoError:
            raise CliError(f"{name} in the profile cannot be decrypted: log in again") from None

    def _ensure_dir(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path, 0o700)

    def _write(self, name: str, data: bytes) -> None:
        """Atomic 0600 write: temp file, fsync, rename."""
        self._ensure_dir()
        tmp = self.path / f"{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path / name)


def _derive(passphrase: str, meta: ProfileMeta) -> bytes:
    if len(meta.salt) != SALT_LEN or meta.opslimit <= 0 or meta.memlimit <= 0:
        raise CliError("the profile's key parameters are damaged: log in again")
    return backend.pwhash_argon2id(
        KEY_LEN, passphrase.encode("utf-8"), meta.salt, meta.opslimit, meta.memlimit
    )


def kdf_choice() -> str:
    name = os.environ.get(KDF_ENV, DEFAULT_KDF).strip().lower() or DEFAULT_KDF
    if name not in KDF_LIMITS:
        raise CliError(f"{KDF_ENV} must be one of: {', '.join(KDF_LIMITS)}", 2)
    return name


def read_passphrase(*, confirm: bool) -> str:
    """From PARLEY_PROFILE_PASSPHRASE, else prompted (hidden; twice when ``confirm``)."""
    env = os.environ.get(PASSPHRASE_ENV)
    if env is not None:
        if not env:
            raise CliError(f"{PASSPHRASE_ENV} is set but empty")
        return env
    from parley_client.cli.prompts import secret

    return secret("Profile passphrase", confirm=confirm, hint=PASSPHRASE_ENV)
