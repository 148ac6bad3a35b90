"""Double Ratchet (Signal spec rev. 1 §3, docs/imv1.md §4.2), without header encryption.

State is a mutable msgspec Struct. ``decrypt`` is transactional: it works on a copy and
commits only after the AEAD check passed, so any failure leaves the state byte-identical.
The caller MUST persist the state after ``encrypt`` before sending, and after ``decrypt``
before acknowledging (§4.2 "Persistence").
"""

from __future__ import annotations

import msgspec

from parley.crypto import backend
from parley.crypto._secret import FrozenSecretStruct, SecretStruct
from parley.crypto.constants import (
    CK_MSG,
    CK_NEXT,
    MAX_SKIP,
    MAX_STORED_SKIPPED,
    MAX_U32,
    MK_INFO,
    MK_OKM_LEN,
    MK_SALT,
    RK_INFO,
    SKIPPED_KEY_TTL,
)
from parley.crypto.errors import (
    CryptoError,
    DecryptionFailed,
    DuplicateMessage,
    TooManySkipped,
)
from parley.crypto.kdf import hkdf, hmac_sha256
from parley.crypto.keys import Rng, X25519KeyPair
from parley.crypto.wire import encode_header, parse_dr_message

PREVIOUS_CHAINS_KEPT = 8


class SkippedKey(FrozenSecretStruct, frozen=True):
    mk: bytes
    stored_at: int

    _public = ("stored_at",)


class RatchetState(SecretStruct):
    dhs_priv: bytes
    dhs_pub: bytes
    dhr: bytes | None
    rk: bytes
    cks: bytes | None
    ckr: bytes | None
    ns: int
    nr: int
    pn: int
    ad: bytes
    # key: dh_pub(32) || u32(n); insertion order = FIFO age order (kept by msgpack round trip)
    skipped: dict[bytes, SkippedKey] = msgspec.field(default_factory=dict)
    # ratchet keys of the last PREVIOUS_CHAINS_KEPT receiving chains: a message on one of
    # them without a skipped key is a replay (duplicate), not a reason for a session reset
    previous_dhr: list[bytes] = msgspec.field(default_factory=list)

    _public = ("dhs_pub", "dhr", "ns", "nr", "pn")

    def copy(self) -> RatchetState:
        return msgspec.structs.replace(
            self, skipped=dict(self.skipped), previous_dhr=list(self.previous_dhr)
        )

    def _assign(self, other: RatchetState) -> None:
        for name in self.__struct_fields__:
            setattr(self, name, getattr(other, name))


def kdf_rk(rk: bytes, dh_out: bytes) -> tuple[bytes, bytes]:
    o = hkdf(dh_out, rk, RK_INFO, 64)
    return o[:32], o[32:]


def kdf_ck(ck: bytes) -> tuple[bytes, bytes]:
    """-> (next chain key, message key)."""
    return hmac_sha256(ck, CK_NEXT), hmac_sha256(ck, CK_MSG)


def message_key_material(mk: bytes) -> tuple[bytes, bytes]:
    """-> (AEAD key 32 B, nonce 24 B)."""
    o = hkdf(mk, MK_SALT, MK_INFO, MK_OKM_LEN)
    return o[:32], o[32:]


def _encrypt(mk: bytes, pt: bytes, ad: bytes) -> bytes:
    key, nonce = message_key_material(mk)
    return backend.aead_encrypt(pt, ad, nonce, key)


def _decrypt(mk: bytes, ct: bytes, ad: bytes) -> bytes:
    key, nonce = message_key_material(mk)
    try:
        return backend.aead_decrypt(ct, ad, nonce, key)
    except CryptoError:
        raise DecryptionFailed("message failed to authenticate") from None


def init_alice(
    sk: bytes,
    ad: bytes,
    bob_dh_pub: bytes,
    *,
    dh: X25519KeyPair | None = None,
    rng: Rng | None = None,
) -> RatchetState:
    """RatchetInitAlice(SK, SPK_B). ``dh`` is injectable for test vectors only."""
    if dh is None:
        dh = X25519KeyPair.generate(rng)
    rk, cks = kdf_rk(sk, backend.x25519(dh.priv, bob_dh_pub))
    return RatchetState(
        dhs_priv=dh.priv, dhs_pub=dh.pub, dhr=bob_dh_pub, rk=rk, cks=cks, ckr=None,
        ns=0, nr=0, pn=0, ad=ad,
    )  # fmt: skip


def init_bob(sk: bytes, ad: bytes, spk: X25519KeyPair) -> RatchetState:
    """RatchetInitBob(SK, SPK key pair)."""
    return RatchetState(
        dhs_priv=spk.priv, dhs_pub=spk.pub, dhr=None, rk=sk, cks=None, ckr=None,
        ns=0, nr=0, pn=0, ad=ad,
    )  # fmt: skip


def encrypt(state: RatchetState, plaintext: bytes) -> bytes:
    """RatchetEncrypt -> DRMessage bytes (header || ct). Mutates ``state``: persist it first."""
    if state.cks is None:
        raise CryptoError("no sending chain yet (responder must receive first)")
    if state.ns >= MAX_U32:
        raise CryptoError("sending chain exhausted")
    state.cks, mk = kdf_ck(state.cks)
    header = encode_header(state.dhs_pub, state.pn, state.ns)
    state.ns += 1
    return header + _encrypt(mk, plaintext, state.ad + header)


def decrypt(
    state: RatchetState,
    message: bytes,
    *,
    now: int,
    rng: Rng | None = None,
    dh: X25519KeyPair | None = None,
) -> bytes:
    """RatchetDecrypt, transactional. Raises DuplicateMessage for a replay on the current
    chain, TooManySkipped, DecryptionFailed, MalformedMessage; state unchanged on any error.

    ``dh`` (the key pair for a DH-ratchet step) is injectable for test vectors only.
    """
    hdr, raw_header, ct = parse_dr_message(message)
    ad = state.ad + raw_header
    skey = hdr.dh + raw_header[37:41]  # dh || u32(n)

    sk = state.skipped.get(skey)
    if sk is not None:
        if now - sk.stored_at > SKIPPED_KEY_TTL:
            raise DuplicateMessage("skipped message key expired")
        pt = _decrypt(sk.mk, ct, ad)
        del state.skipped[skey]
        return pt

    if hdr.dh == state.dhr and hdr.n < state.nr:
        raise DuplicateMessage("message already received")
    if hdr.dh in state.previous_dhr:
        raise DuplicateMessage("message from a finished chain already received or expired")

    st = state.copy()
    if hdr.dh != st.dhr:
        _skip(st, hdr.pn, now)
        _dh_ratchet(st, hdr.dh, dh if dh is not None else X25519KeyPair.generate(rng))
    _skip(st, hdr.n, now)
    assert st.ckr is not None
    st.ckr, mk = kdf_ck(st.ckr)
    st.nr += 1
    pt = _decrypt(mk, ct, ad)
    _expire(st, now)
    state._assign(st)
    return pt


def _skip(st: RatchetState, until: int, now: int) -> None:
    if st.nr + MAX_SKIP < until:
        raise TooManySkipped("too many skipped messages")
    if st.ckr is None or st.dhr is None:
        return
    ck = st.ckr
    prefix = st.dhr
    skipped = st.skipped
    nr = st.nr
    while nr < until:
        ck, mk = kdf_ck(ck)
        skipped[prefix + nr.to_bytes(4, "big")] = SkippedKey(mk, now)
        nr += 1
        if len(skipped) > MAX_STORED_SKIPPED:
            del skipped[next(iter(skipped))]
    st.ckr = ck
    st.nr = nr


def _dh_ratchet(st: RatchetState, dh_pub: bytes, new: X25519KeyPair) -> None:
    if st.dhr is not None:
        st.previous_dhr.append(st.dhr)
        del st.previous_dhr[:-PREVIOUS_CHAINS_KEPT]
    st.pn = st.ns
    st.ns = 0
    st.nr = 0
    st.dhr = dh_pub
    st.rk, st.ckr = kdf_rk(st.rk, backend.x25519(st.dhs_priv, dh_pub))
    st.dhs_priv, st.dhs_pub = new.priv, new.pub
    st.rk, st.cks = kdf_rk(st.rk, backend.x25519(new.priv, dh_pub))


def _expire(st: RatchetState, now: int) -> None:
    # FIFO order = age order: stop at the first key still within its TTL.
    while st.skipped:
        first = next(iter(st.skipped))
        if now - st.skipped[first].stored_at <= SKIPPED_KEY_TTL:
            break
        del st.skipped[first]
