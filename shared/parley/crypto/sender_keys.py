"""Sender Keys (docs/imv1.md §7) with Parley's rotation rules (§P.1, §P.3).

Every conversation message, 1:1 included, is ONE GroupMessage encrypted with the sender
device's outbound sender key. Receivers keep up to MAX_SENDER_KEY_STATES inbound states per
(sender device, conversation). Inbound decrypt verifies the signature FIRST and commits the
state only after the AEAD check passed.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
import struct

import msgspec

from parley.crypto import backend
from parley.crypto._secret import FrozenSecretStruct, SecretStruct
from parley.crypto.constants import (
    CK_MSG,
    CK_NEXT,
    DISTRIBUTION_ID_LEN,
    GROUP_HEADER_LEN,
    GROUP_ID_LEN,
    GROUP_MK_INFO,
    GROUP_SIG_LEN,
    MAX_GROUP_SKIP,
    MAX_GROUP_STORED_KEYS,
    MAX_SENDER_KEY_STATES,
    MAX_U32,
    MK_SALT,
    PROTOCOL_VERSION,
    SK_ROTATE_AGE,
    SK_ROTATE_AGE_DIRECT,
    SK_ROTATE_MSGS,
    SK_ROTATE_MSGS_DIRECT,
    SKDM_LEN,
)
from parley.crypto.errors import (
    BadSignature,
    CryptoError,
    DecryptionFailed,
    DuplicateMessage,
    MalformedMessage,
    NoSession,
    TooManySkipped,
)
from parley.crypto.kdf import hkdf
from parley.crypto.keys import Ed25519KeyPair, Rng, rng_or_default
from parley.crypto.wire import parse_group_header

_GH = struct.Struct(">B16s16sII")
_SKDM = struct.Struct(">B16s16sII32s32s")
_sha256 = hashlib.sha256
_digest = _hmac.digest


class RotationRequired(CryptoError):
    """The outbound sender key reached its message-count or age limit: rotate before sending."""


def message_seed(ck: bytes) -> bytes:
    return _digest(ck, CK_MSG, _sha256)


def next_chain_key(ck: bytes) -> bytes:
    return _digest(ck, CK_NEXT, _sha256)


def message_key_material(seed: bytes) -> tuple[bytes, bytes]:
    o = hkdf(seed, MK_SALT, GROUP_MK_INFO, 56)
    return o[:32], o[32:]


class OutboundSenderKey(SecretStruct):
    group_id: bytes
    distribution_id: bytes
    chain_id: int
    ck: bytes
    iteration: int
    ssk_seed: bytes
    ssk_pub: bytes
    ssk_sk64: bytes
    created_at: int
    msg_count: int = 0
    direct: bool = False  # 1:1 conversation: §P.1 rotation limits

    _public = ("group_id", "distribution_id", "chain_id", "iteration", "ssk_pub", "msg_count")

    @classmethod
    def create(
        cls,
        group_id: bytes,
        *,
        direct: bool,
        now: int,
        rng: Rng | None = None,
    ) -> OutboundSenderKey:
        r = rng_or_default(rng)
        return cls.from_parts(
            group_id,
            distribution_id=r(DISTRIBUTION_ID_LEN),
            chain_id=int.from_bytes(r(4), "big"),
            ck=r(32),
            signing_seed=r(32),
            direct=direct,
            now=now,
        )

    @classmethod
    def from_parts(
        cls,
        group_id: bytes,
        *,
        distribution_id: bytes,
        chain_id: int,
        ck: bytes,
        signing_seed: bytes,
        direct: bool,
        now: int,
        iteration: int = 0,
    ) -> OutboundSenderKey:
        if len(group_id) != GROUP_ID_LEN or len(distribution_id) != DISTRIBUTION_ID_LEN:
            raise MalformedMessage("bad group/distribution id length")
        if len(ck) != 32 or not 0 <= chain_id <= MAX_U32:
            raise MalformedMessage("bad chain key or chain id")
        ssk = Ed25519KeyPair.from_seed(signing_seed)
        return cls(
            group_id=group_id, distribution_id=distribution_id, chain_id=chain_id, ck=ck,
            iteration=iteration, ssk_seed=ssk.seed, ssk_pub=ssk.pub, ssk_sk64=ssk.sk64,
            created_at=now, direct=direct,
        )  # fmt: skip

    def needs_rotation(self, now: int) -> bool:
        max_msgs, max_age = (
            (SK_ROTATE_MSGS_DIRECT, SK_ROTATE_AGE_DIRECT)
            if self.direct
            else (SK_ROTATE_MSGS, SK_ROTATE_AGE)
        )
        return self.msg_count >= max_msgs or now - self.created_at >= max_age

    def skdm(self) -> bytes:
        """SKDM (105 B) carrying the CURRENT iteration and chain key (§7.4)."""
        return _SKDM.pack(
            PROTOCOL_VERSION, self.group_id, self.distribution_id, self.chain_id,
            self.iteration, self.ck, self.ssk_pub,
        )  # fmt: skip


def encrypt(out: OutboundSenderKey, plaintext: bytes, *, now: int) -> bytes:
    """-> GroupMessage = GH || ct || sig. Mutates ``out`` (persist it before sending).

    ``plaintext`` is the padded content (content.encode_content). Raises RotationRequired
    when the §P.1 / §2 limits are reached: create a new key and distribute SKDMs first.
    """
    if out.needs_rotation(now):
        raise RotationRequired("sender key must be rotated")
    if out.iteration >= MAX_U32:
        raise RotationRequired("sender key chain exhausted")
    ck = out.ck
    gh = _GH.pack(PROTOCOL_VERSION, out.group_id, out.distribution_id, out.chain_id, out.iteration)
    key, nonce = message_key_material(_digest(ck, CK_MSG, _sha256))
    ct = backend.aead_encrypt(plaintext, gh, nonce, key)
    body = gh + ct
    sig = backend.ed25519_sign(body, out.ssk_sk64)
    out.ck = _digest(ck, CK_NEXT, _sha256)
    out.iteration += 1
    out.msg_count += 1
    return body + sig


class SKDM(FrozenSecretStruct, frozen=True):
    group_id: bytes
    distribution_id: bytes
    chain_id: int
    iteration: int
    ck: bytes
    ssk_pub: bytes

    _public = ("group_id", "distribution_id", "chain_id", "iteration", "ssk_pub")

    def encode(self) -> bytes:
        return _SKDM.pack(
            PROTOCOL_VERSION, self.group_id, self.distribution_id, self.chain_id,
            self.iteration, self.ck, self.ssk_pub,
        )  # fmt: skip


def parse_skdm(data: bytes) -> SKDM:
    if len(data) != SKDM_LEN:
        raise MalformedMessage("SKDM must be 105 bytes")
    version, gid, dist, chain_id, it, ck, ssk = _SKDM.unpack(data)
    if version != PROTOCOL_VERSION:
        raise MalformedMessage("unsupported SKDM version")
    return SKDM(gid, dist, chain_id, it, ck, ssk)


class InboundSenderKey(SecretStruct):
    group_id: bytes
    distribution_id: bytes
    chain_id: int
    ck: bytes
    iteration: int
    ssk_pub: bytes
    # earliest known (iteration, chain key): lets this device forward keys to its own new
    # devices (§P.3) and back the state up at its earliest iteration (§13).
    first_iteration: int
    first_ck: bytes
    skipped: dict[int, bytes] = msgspec.field(default_factory=dict)  # iteration -> seed

    _public = ("group_id", "distribution_id", "chain_id", "iteration", "ssk_pub")

    @classmethod
    def from_skdm(cls, skdm: SKDM) -> InboundSenderKey:
        return cls(
            group_id=skdm.group_id, distribution_id=skdm.distribution_id,
            chain_id=skdm.chain_id, ck=skdm.ck, iteration=skdm.iteration,
            ssk_pub=skdm.ssk_pub, first_iteration=skdm.iteration, first_ck=skdm.ck,
        )  # fmt: skip

    def skdm_at(self, iteration: int) -> SKDM:
        """Chain key at ``iteration`` (>= first_iteration) for a ``key_fwd`` (§P.3)."""
        if iteration < self.first_iteration:
            raise NoSession("iteration is before the earliest known chain key")
        if iteration > self.iteration + MAX_GROUP_SKIP:
            raise TooManySkipped("iteration too far ahead")
        ck = self.first_ck
        for _ in range(iteration - self.first_iteration):
            ck = next_chain_key(ck)
        return SKDM(self.group_id, self.distribution_id, self.chain_id, iteration, ck, self.ssk_pub)


class SenderKeyRecord(SecretStruct):
    """All inbound states of ONE sender device in ONE conversation (newest last)."""

    states: list[InboundSenderKey] = msgspec.field(default_factory=list)

    _public = ()

    def find(self, distribution_id: bytes, chain_id: int) -> InboundSenderKey | None:
        for st in reversed(self.states):
            if st.chain_id == chain_id and st.distribution_id == distribution_id:
                return st
        return None

    def add_skdm(self, skdm: SKDM | bytes) -> bool:
        """Install a state from an SKDM (authenticated by the pairwise session it came on).

        Returns False (and changes nothing) if a state for (distribution_id, chain_id)
        exists: no rewinding. Keeps at most MAX_SENDER_KEY_STATES states (oldest evicted).
        """
        if isinstance(skdm, bytes):
            skdm = parse_skdm(skdm)
        if self.find(skdm.distribution_id, skdm.chain_id) is not None:
            return False
        self.states.append(InboundSenderKey.from_skdm(skdm))
        del self.states[:-MAX_SENDER_KEY_STATES]
        return True


def decrypt(record: SenderKeyRecord, message: bytes) -> bytes:
    """Decrypt a GroupMessage from the device that owns ``record``.

    Order (§7.3): find state -> verify signature FIRST -> group_id check -> iteration rules
    -> AEAD -> commit. Raises NoSession (unknown distribution: buffer and send skdm_req),
    BadSignature, DuplicateMessage, TooManySkipped, DecryptionFailed, MalformedMessage.
    """
    hdr = parse_group_header(message)
    st = record.find(hdr.distribution_id, hdr.chain_id)
    if st is None:
        raise NoSession("unknown sender key distribution")
    body = message[:-GROUP_SIG_LEN]
    if not backend.ed25519_verify(message[-GROUP_SIG_LEN:], body, st.ssk_pub):
        raise BadSignature("sender key signature does not verify")
    if hdr.group_id != st.group_id:
        raise MalformedMessage("group id does not match the sender key state")
    gh = body[:GROUP_HEADER_LEN]
    ct = body[GROUP_HEADER_LEN:]
    it = hdr.iteration
    if it < st.iteration:
        seed = st.skipped.get(it)
        if seed is None:
            raise DuplicateMessage("message already received")
        pt = _open(seed, ct, gh)
        del st.skipped[it]
        return pt
    if it - st.iteration > MAX_GROUP_SKIP:
        raise TooManySkipped("sender key iteration too far ahead")
    ck = st.ck
    new_seeds: dict[int, bytes] = {}
    for i in range(st.iteration, it):
        new_seeds[i] = _digest(ck, CK_MSG, _sha256)
        ck = _digest(ck, CK_NEXT, _sha256)
    pt = _open(_digest(ck, CK_MSG, _sha256), ct, gh)
    # commit
    if new_seeds:
        skipped = st.skipped
        skipped.update(new_seeds)
        excess = len(skipped) - MAX_GROUP_STORED_KEYS
        if excess > 0:
            for k in list(skipped)[:excess]:
                del skipped[k]
    st.ck = _digest(ck, CK_NEXT, _sha256)
    st.iteration = it + 1
    return pt


def _open(seed: bytes, ct: bytes, gh: bytes) -> bytes:
    key, nonce = message_key_material(seed)
    try:
        return backend.aead_decrypt(ct, gh, nonce, key)
    except CryptoError:
        raise DecryptionFailed("group message failed to authenticate") from None
