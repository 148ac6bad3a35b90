"""Key bundles (docs/imv1.md §3.4): JSON form and the four client checks, in order."""

from __future__ import annotations

import msgspec

from parley.crypto import backend, devicelist
from parley.crypto.b64 import b64d, b64e
from parley.crypto.errors import BadSignature, KeyChanged, MalformedMessage, UntrustedIdentity
from parley.crypto.kdf import ct_eq
from parley.crypto.keys import enc_x


class SpkJson(msgspec.Struct, frozen=True):
    id: int
    pub: str
    sig: str


class OpkJson(msgspec.Struct, frozen=True):
    id: int
    pub: str


class BundleJson(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user_id: str
    device_id: int
    aik: str
    devlist: str
    devlist_sig: str
    ik: str
    spk: SpkJson
    opk: OpkJson | None


class VerifiedBundle(msgspec.Struct, frozen=True):
    user_id: str
    device_id: int
    aik_pub: bytes
    ik_pub: bytes
    spk_id: int
    spk_pub: bytes
    opk_id: int  # 0 = none
    opk_pub: bytes | None
    devlist: devicelist.DeviceList
    devlist_record: devicelist.StoredDeviceList
    tofu_pinned: bool  # True when check (1) pinned the AIK now (first contact)


def make_bundle(
    *,
    user_id: str,
    device_id: int,
    aik_pub: bytes,
    devlist_data: bytes,
    devlist_sig: bytes,
    ik_pub: bytes,
    spk_id: int,
    spk_pub: bytes,
    spk_sig: bytes,
    opk: tuple[int, bytes] | None,
) -> bytes:
    """Server-side / test helper: the bundle JSON."""
    b = BundleJson(
        user_id=user_id, device_id=device_id, aik=b64e(aik_pub), devlist=b64e(devlist_data),
        devlist_sig=b64e(devlist_sig), ik=b64e(ik_pub),
        spk=SpkJson(spk_id, b64e(spk_pub), b64e(spk_sig)),
        opk=None if opk is None else OpkJson(opk[0], b64e(opk[1])),
    )  # fmt: skip
    return msgspec.json.encode(b)


def parse_bundle(data: bytes | str) -> BundleJson:
    try:
        return msgspec.json.decode(data, type=BundleJson)
    except msgspec.ValidationError as e:
        raise MalformedMessage(f"bad bundle: {e}") from None
    except msgspec.DecodeError:
        raise MalformedMessage("bundle is not JSON") from None


def verify_bundle(
    bundle: BundleJson | bytes | str,
    *,
    user_id: str,
    device_id: int,
    pinned_aik: bytes | None,
    stored_devlist: devicelist.StoredDeviceList | None,
) -> VerifiedBundle:
    """The four checks of §3.4, in order; any failure raises and nothing is returned.

    (1) aik == pinned AIK (None pinned: TOFU, reported by ``tofu_pinned``; different:
        KeyChanged, the caller runs the §9.3 flow via safety.observe)
    (2) devlist_sig verifies under aik and the version is not a rollback
    (3) (device_id, ik) is in the device list
    (4) spk.sig verifies: Ed25519_verify(ik, EncX(spk.pub), spk.sig)
    """
    b = bundle if isinstance(bundle, BundleJson) else parse_bundle(bundle)
    if b.user_id != user_id or b.device_id != device_id:
        raise UntrustedIdentity("bundle is for another user or device")
    aik = b64d(b.aik, 32)
    ik = b64d(b.ik, 32)
    spk_pub = b64d(b.spk.pub, 32)
    spk_sig = b64d(b.spk.sig, 64)
    dl_data = b64d(b.devlist)
    dl_sig = b64d(b.devlist_sig, 64)
    opk_pub = None if b.opk is None else b64d(b.opk.pub, 32)
    if b.spk.id < 1 or b.spk.id >= 2**32 or (b.opk is not None and not 1 <= b.opk.id < 2**32):
        raise MalformedMessage("bad prekey id")
    # (1)
    if pinned_aik is not None and not ct_eq(pinned_aik, aik):
        raise KeyChanged("account identity key differs from the pinned one")
    # (2)
    dl, record = devicelist.accept(stored_devlist, dl_data, dl_sig, aik, user_id)
    # (3)
    if not dl.contains(device_id, ik):
        raise UntrustedIdentity("device is not in the signed device list")
    # (4)
    if not backend.ed25519_verify(spk_sig, enc_x(spk_pub), ik):
        raise BadSignature("signed prekey signature does not verify")
    return VerifiedBundle(
        user_id=user_id, device_id=device_id, aik_pub=aik, ik_pub=ik, spk_id=b.spk.id,
        spk_pub=spk_pub, opk_id=0 if b.opk is None else b.opk.id, opk_pub=opk_pub,
        devlist=dl, devlist_record=record, tofu_pinned=pinned_aik is None,
    )  # fmt: skip
