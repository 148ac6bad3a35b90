"""Wire formats (docs/imv1.md §4.3, §7.3): DRMessage, PreKeyMessage, GroupMessage framing.

``parse_group_header`` is what the server uses to validate a conversation message's framing
(it checks structure only: it cannot and does not verify signatures or decrypt).
"""

from __future__ import annotations

import struct

import msgspec

from parley.crypto.constants import (
    AEAD_TAG_LEN,
    DISTRIBUTION_ID_LEN,
    DR_HEADER_LEN,
    GROUP_HEADER_LEN,
    GROUP_ID_LEN,
    GROUP_MIN_CT_LEN,
    GROUP_SIG_LEN,
    PREKEY_PREFIX_LEN,
    PROTOCOL_VERSION,
)
from parley.crypto.errors import MalformedMessage

_U32 = struct.Struct(">I")
_HDR = struct.Struct(">B32sII")
_PREFIX = struct.Struct(">B32s32sII")
_GH = struct.Struct(">B16s16sII")

ENVELOPE_DR = 2
ENVELOPE_PREKEY = 3
ENVELOPE_GROUP = 7


class DRHeader(msgspec.Struct, frozen=True):
    dh: bytes
    pn: int
    n: int

    def encode(self) -> bytes:
        return _HDR.pack(PROTOCOL_VERSION, self.dh, self.pn, self.n)


def encode_header(dh: bytes, pn: int, n: int) -> bytes:
    return _HDR.pack(PROTOCOL_VERSION, dh, pn, n)


def parse_dr_message(data: bytes) -> tuple[DRHeader, bytes, bytes]:
    """DRMessage -> (header, raw 41-byte header, ciphertext)."""
    if len(data) < DR_HEADER_LEN + AEAD_TAG_LEN:
        raise MalformedMessage("DRMessage too short")
    version, dh, pn, n = _HDR.unpack_from(data)
    if version != PROTOCOL_VERSION:
        raise MalformedMessage("unsupported DRMessage version")
    return DRHeader(dh, pn, n), bytes(data[:DR_HEADER_LEN]), bytes(data[DR_HEADER_LEN:])


class PreKeyMessage(msgspec.Struct, frozen=True):
    ik_a: bytes
    ek_a: bytes
    spk_id: int
    opk_id: int  # 0 = none
    dr_message: bytes

    def encode(self) -> bytes:
        return (
            _PREFIX.pack(PROTOCOL_VERSION, self.ik_a, self.ek_a, self.spk_id, self.opk_id)
            + self.dr_message
        )


def parse_prekey_message(data: bytes) -> PreKeyMessage:
    if len(data) < PREKEY_PREFIX_LEN + DR_HEADER_LEN + AEAD_TAG_LEN:
        raise MalformedMessage("PreKeyMessage too short")
    version, ik, ek, spk_id, opk_id = _PREFIX.unpack_from(data)
    if version != PROTOCOL_VERSION:
        raise MalformedMessage("unsupported PreKeyMessage version")
    if spk_id == 0:
        raise MalformedMessage("PreKeyMessage without signed prekey id")
    if ek[31] & 0x80:
        # X25519 ignores bit 255, so a flipped top bit would give the same shared secret and
        # slip past the seen-EK replay check (§4.1). Honest keys never have it set.
        raise MalformedMessage("non-canonical ephemeral key")
    return PreKeyMessage(ik, ek, spk_id, opk_id, bytes(data[PREKEY_PREFIX_LEN:]))


class GroupHeader(msgspec.Struct, frozen=True):
    group_id: bytes
    distribution_id: bytes
    chain_id: int
    iteration: int

    def encode(self) -> bytes:
        return _GH.pack(
            PROTOCOL_VERSION, self.group_id, self.distribution_id, self.chain_id, self.iteration
        )


def encode_group_header(group_id: bytes, distribution_id: bytes, chain_id: int, it: int) -> bytes:
    if len(group_id) != GROUP_ID_LEN or len(distribution_id) != DISTRIBUTION_ID_LEN:
        raise MalformedMessage("bad group/distribution id length")
    return _GH.pack(PROTOCOL_VERSION, group_id, distribution_id, chain_id, it)


def parse_group_header(data: bytes) -> GroupHeader:
    """Validate GroupMessage framing: version 0x01, 41-byte header, >=16 B ct, 64 B sig.

    Raises MalformedMessage. Usable by the server (no keys needed).
    """
    if len(data) < GROUP_HEADER_LEN + GROUP_MIN_CT_LEN + GROUP_SIG_LEN:
        raise MalformedMessage("GroupMessage too short")
    version, gid, dist, chain_id, it = _GH.unpack_from(data)
    if version != PROTOCOL_VERSION:
        raise MalformedMessage("unsupported GroupMessage version")
    return GroupHeader(gid, dist, chain_id, it)


def split_group_message(data: bytes) -> tuple[GroupHeader, bytes, bytes, bytes]:
    """GroupMessage -> (header, raw header bytes, ciphertext, signature)."""
    hdr = parse_group_header(data)
    return (
        hdr,
        bytes(data[:GROUP_HEADER_LEN]),
        bytes(data[GROUP_HEADER_LEN:-GROUP_SIG_LEN]),
        bytes(data[-GROUP_SIG_LEN:]),
    )


def u32(x: int) -> bytes:
    return _U32.pack(x)
