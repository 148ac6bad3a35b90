"""Signed device list (docs/imv1.md §3.3) with anti-rollback."""

from __future__ import annotations

import struct

import msgspec

from parley.crypto import backend
from parley.crypto.constants import DEVLIST_DOMAIN, KT_ED25519, MAX_DEVICE_ID, MAX_DEVICES
from parley.crypto.errors import BadSignature, MalformedMessage, Rollback, UntrustedIdentity
from parley.crypto.kdf import ct_eq
from parley.crypto.keys import Ed25519KeyPair, enc_ed

_VER_TS_COUNT = struct.Struct(">QQH")
_ENTRY = struct.Struct(">IB32s")


class Device(msgspec.Struct, frozen=True):
    device_id: int
    ik_pub: bytes


class DeviceList(msgspec.Struct, frozen=True):
    user_id: str
    version: int
    timestamp_ms: int
    devices: tuple[Device, ...]

    def encode(self) -> bytes:
        devs = sorted(self.devices, key=lambda d: d.device_id)
        _validate(self.user_id, self.version, devs)
        uid = self.user_id.encode("utf-8")
        out = [
            DEVLIST_DOMAIN,
            len(uid).to_bytes(2, "big"),
            uid,
            _VER_TS_COUNT.pack(self.version, self.timestamp_ms, len(devs)),
        ]
        out += [d.device_id.to_bytes(4, "big") + enc_ed(d.ik_pub) for d in devs]
        return b"".join(out)

    def ik_of(self, device_id: int) -> bytes | None:
        for d in self.devices:
            if d.device_id == device_id:
                return d.ik_pub
        return None

    def contains(self, device_id: int, ik_pub: bytes) -> bool:
        ik = self.ik_of(device_id)
        return ik is not None and ct_eq(ik, ik_pub)


def _validate(user_id: str, version: int, devs: list[Device]) -> None:
    if not user_id or len(user_id.encode("utf-8")) > 0xFFFF:
        raise MalformedMessage("bad user id")
    if not 1 <= version < 2**64:
        raise MalformedMessage("device list version must be >= 1")
    if len(devs) > MAX_DEVICES:
        raise MalformedMessage("too many devices")
    ids = [d.device_id for d in devs]
    if len(set(ids)) != len(ids):
        raise MalformedMessage("duplicate device id")
    for d in devs:
        if not 1 <= d.device_id <= MAX_DEVICE_ID or len(d.ik_pub) != 32:
            raise MalformedMessage("bad device entry")


def sign(dl: DeviceList, aik: Ed25519KeyPair) -> tuple[bytes, bytes]:
    """-> (DL bytes, DL_sig)."""
    data = dl.encode()
    return data, aik.sign(data)


def parse(data: bytes) -> DeviceList:
    """Strict parse: canonical encoding only (sorted, unique, in range, no trailing bytes)."""
    n = len(DEVLIST_DOMAIN)
    if len(data) < n + 2 or data[:n] != DEVLIST_DOMAIN:
        raise MalformedMessage("not a device list")
    ulen = int.from_bytes(data[n : n + 2], "big")
    pos = n + 2 + ulen
    if len(data) < pos + _VER_TS_COUNT.size:
        raise MalformedMessage("device list truncated")
    try:
        user_id = data[n + 2 : pos].decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedMessage("bad user id") from None
    version, ts, count = _VER_TS_COUNT.unpack_from(data, pos)
    pos += _VER_TS_COUNT.size
    if count > MAX_DEVICES or len(data) != pos + count * _ENTRY.size:
        raise MalformedMessage("bad device count or length")
    devs = []
    for _ in range(count):
        did, kt, ik = _ENTRY.unpack_from(data, pos)
        pos += _ENTRY.size
        if kt != KT_ED25519:
            raise MalformedMessage("bad key type in device list")
        devs.append(Device(did, ik))
    if [d.device_id for d in devs] != sorted({d.device_id for d in devs}):
        raise MalformedMessage("devices not sorted by unique id")
    _validate(user_id, version, devs)
    return DeviceList(user_id, version, ts, tuple(devs))


def verify(data: bytes, sig: bytes, aik_pub: bytes, *, user_id: str | None = None) -> DeviceList:
    """Verify DL_sig under ``aik_pub`` (signature first), then parse."""
    if not backend.ed25519_verify(sig, data, aik_pub):
        raise BadSignature("device list signature does not verify")
    dl = parse(data)
    if user_id is not None and dl.user_id != user_id:
        raise UntrustedIdentity("device list belongs to another user")
    return dl


class StoredDeviceList(msgspec.Struct, frozen=True):
    """Highest verified device list per user (what the anti-rollback check compares to)."""

    user_id: str
    version: int
    data: bytes
    sig: bytes


def check_rollback(stored: StoredDeviceList | None, dl: DeviceList, data: bytes) -> bool:
    """Anti-rollback. Returns True if ``dl`` is newer (store it), False if identical to the
    stored one; raises Rollback for a lower version or the same version with other content."""
    if stored is None:
        return True
    if dl.version > stored.version:
        return True
    if dl.version == stored.version and ct_eq(data, stored.data):
        return False
    raise Rollback("device list version is not newer than the stored one")


def accept(
    stored: StoredDeviceList | None,
    data: bytes,
    sig: bytes,
    aik_pub: bytes,
    user_id: str,
) -> tuple[DeviceList, StoredDeviceList]:
    """Verify + anti-rollback. Returns (list, record to store). Raises on any failure."""
    dl = verify(data, sig, aik_pub, user_id=user_id)
    if stored is not None and stored.user_id != user_id:
        raise ValueError("stored device list belongs to another user")
    newer = check_rollback(stored, dl, data)
    if not newer and stored is not None:
        return dl, stored
    return dl, StoredDeviceList(user_id=user_id, version=dl.version, data=data, sig=sig)


def with_device(dl: DeviceList, device_id: int, ik_pub: bytes, now_ms: int) -> DeviceList:
    """Next version of ``dl`` including (device_id, ik_pub) (device linking, §3.5 step 3)."""
    devs = [d for d in dl.devices if d.device_id != device_id] + [Device(device_id, ik_pub)]
    devs.sort(key=lambda d: d.device_id)
    if len(devs) > MAX_DEVICES:
        raise MalformedMessage("too many devices")
    return DeviceList(dl.user_id, dl.version + 1, now_ms, tuple(devs))


def without_device(dl: DeviceList, device_id: int, now_ms: int) -> DeviceList:
    """Next version of ``dl`` without ``device_id`` (device removal)."""
    devs = tuple(d for d in dl.devices if d.device_id != device_id)
    return DeviceList(dl.user_id, dl.version + 1, now_ms, devs)
