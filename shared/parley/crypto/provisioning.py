"""Device linking / provisioning (docs/imv1.md §3.5)."""

from __future__ import annotations

import msgspec

from parley.crypto import backend, devicelist
from parley.crypto._secret import FrozenSecretStruct
from parley.crypto.b64 import b64d, b64e
from parley.crypto.constants import PROV_ID_LEN, PROV_TTL
from parley.crypto.errors import CryptoError, DecryptionFailed, MalformedMessage
from parley.crypto.keys import Ed25519KeyPair, Rng, X25519KeyPair, rng_or_default

QR_PREFIX = "imlink:1:"


class ProvisioningRequest(FrozenSecretStruct, frozen=True):
    """New device N's side: ephemeral X25519 pair and prov_id (registered with the server)."""

    prov_id: bytes
    e_priv: bytes
    e_pub: bytes
    created_at: int

    _public = ("prov_id", "e_pub", "created_at")

    @classmethod
    def create(cls, *, now: int, rng: Rng | None = None) -> ProvisioningRequest:
        r = rng_or_default(rng)
        e = X25519KeyPair.generate(r)
        return cls(prov_id=r(PROV_ID_LEN), e_priv=e.priv, e_pub=e.pub, created_at=now)

    def qr_text(self) -> str:
        return QR_PREFIX + b64e(self.prov_id + self.e_pub)


def parse_qr(text: str) -> tuple[bytes, bytes]:
    """Existing device O: QR text -> (prov_id, E_pub)."""
    if not text.startswith(QR_PREFIX):
        raise MalformedMessage("not a Parley link code")
    raw = b64d(text[len(QR_PREFIX) :], PROV_ID_LEN + 32)
    return raw[:PROV_ID_LEN], raw[PROV_ID_LEN:]


class _ProvisionJson(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user_id: str
    aik_seed: str
    devlist: str
    devlist_sig: str
    link_token: str


class ProvisionResult(FrozenSecretStruct, frozen=True):
    user_id: str
    aik: Ed25519KeyPair
    devlist: devicelist.DeviceList
    devlist_data: bytes
    devlist_sig: bytes
    link_token: str

    _public = ("user_id", "devlist")


def seal(
    e_pub: bytes,
    *,
    user_id: str,
    aik: Ed25519KeyPair,
    devlist_data: bytes,
    devlist_sig: bytes,
    link_token: str,
) -> bytes:
    """O: crypto_box_seal(ProvisionMessage, E_pub) for the server to hold under prov_id."""
    msg = _ProvisionJson(
        user_id=user_id, aik_seed=b64e(aik.seed), devlist=b64e(devlist_data),
        devlist_sig=b64e(devlist_sig), link_token=link_token,
    )  # fmt: skip
    return backend.box_seal(msgspec.json.encode(msg), e_pub)


def open_sealed(req: ProvisioningRequest, sealed: bytes, *, now: int) -> ProvisionResult:
    """N: open the box, check the TTL and that the AIK from aik_seed verifies the DL."""
    if now - req.created_at > PROV_TTL:
        raise CryptoError("provisioning window expired")
    try:
        raw = backend.box_seal_open(sealed, req.e_pub, req.e_priv)
    except CryptoError:
        raise DecryptionFailed("provisioning message failed to open") from None
    try:
        m = msgspec.json.decode(raw, type=_ProvisionJson)
    except (msgspec.ValidationError, msgspec.DecodeError):
        raise MalformedMessage("bad provisioning message") from None
    aik = Ed25519KeyPair.from_seed(b64d(m.aik_seed, 32))
    data = b64d(m.devlist)
    sig = b64d(m.devlist_sig, 64)
    dl = devicelist.verify(data, sig, aik.pub, user_id=m.user_id)
    return ProvisionResult(
        user_id=m.user_id, aik=aik, devlist=dl, devlist_data=data, devlist_sig=sig,
        link_token=m.link_token,
    )  # fmt: skip
