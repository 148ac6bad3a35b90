"""Safety numbers, QR verification and TOFU trust states (docs/imv1.md §9)."""

from __future__ import annotations

import enum
import hashlib

import msgspec

from parley.crypto.constants import SN_ITERATIONS, SN_QR_LEN, SN_QR_VERSION, SN_VERSION
from parley.crypto.errors import KeyChanged, MalformedMessage, SendingBlocked
from parley.crypto.kdf import ct_eq
from parley.crypto.keys import enc_ed

_QR_A = b"\x08" + bytes((SN_QR_VERSION,)) + b"\x12\x22\x0a\x20"
_QR_B = b"\x1a\x22\x0a\x20"


def fingerprint_raw(key: bytes, stable_id: str) -> bytes:
    """libsignal NumericFingerprintGenerator over an already-encoded 33-byte key."""
    ident = stable_id.encode("utf-8")
    h = hashlib.sha512(SN_VERSION + key + ident + key).digest()
    for _ in range(SN_ITERATIONS - 1):
        h = hashlib.sha512(h + key).digest()
    return h


def fingerprint(aik_pub: bytes, user_id: str) -> bytes:
    """64-byte fingerprint of a user: key = EncEd(AIK_pub), id = user_id."""
    return fingerprint_raw(enc_ed(aik_pub), user_id)


def digits(fp: bytes) -> str:
    """30 digits: six 5-digit groups from fp[0:30]."""
    return "".join(f"{int.from_bytes(fp[5 * j : 5 * j + 5], 'big') % 100000:05d}" for j in range(6))


def safety_number(local_fp: bytes, remote_fp: bytes) -> str:
    """60 digits, the smaller 30-digit string first (same on both sides)."""
    a, b = digits(local_fp), digits(remote_fp)
    return a + b if a <= b else b + a


def display(number: str) -> str:
    """12 groups of 5 digits separated by spaces."""
    return " ".join(number[i : i + 5] for i in range(0, len(number), 5))


def qr_payload(local_fp: bytes, remote_fp: bytes) -> bytes:
    """74-byte CombinedFingerprints layout shown by the local device."""
    return _QR_A + local_fp[:32] + _QR_B + remote_fp[:32]


def scan_matches(scanned: bytes, local_fp: bytes, remote_fp: bytes) -> bool:
    """True iff the scanned payload (shown by the remote) mirrors our own view.

    Raises MalformedMessage for a wrong length, layout or version.
    """
    if len(scanned) != SN_QR_LEN:
        raise MalformedMessage("QR payload must be 74 bytes")
    if scanned[:6] != _QR_A or scanned[38:42] != _QR_B:
        raise MalformedMessage("QR payload version or layout mismatch")
    a = ct_eq(scanned[6:38], remote_fp[:32])
    b = ct_eq(scanned[42:74], local_fp[:32])
    return a and b


class TrustState(enum.Enum):
    UNVERIFIED = "unverified"
    VERIFIED = "verified"
    CHANGED_BLOCKED = "changed_blocked"  # AIK changed after VERIFIED (or strict mode)


class TrustEntry(msgspec.Struct):
    """Per-contact TOFU record (no secrets: public keys only)."""

    user_id: str
    aik_pub: bytes  # the pinned AIK
    state: TrustState = TrustState.UNVERIFIED
    verified_aik: bytes | None = None
    previous_aik: bytes | None = None  # kept while a change is pending acceptance
    changes: int = 0  # how many times a key change was observed


class Observation(enum.Enum):
    PINNED = "pinned"  # first contact (TOFU)
    SAME = "same"
    CHANGED = "changed"  # show "safety number changed" in every chat with that user


def observe(
    entry: TrustEntry | None, user_id: str, aik_pub: bytes, *, strict: bool = False
) -> tuple[TrustEntry, Observation]:
    """Feed an AIK seen for ``user_id`` (e.g. in a bundle). Returns the new entry.

    Does not mutate ``entry``. On CHANGED the caller inserts the notice in every chat and
    rotates its own sender keys for shared conversations (§7.5).
    """
    if len(aik_pub) != 32:
        raise MalformedMessage("AIK must be 32 bytes")
    if entry is None:
        return TrustEntry(user_id=user_id, aik_pub=aik_pub), Observation.PINNED
    if entry.user_id != user_id:
        raise ValueError("trust entry belongs to another user")
    if ct_eq(entry.aik_pub, aik_pub):
        return entry, Observation.SAME
    blocked = strict or entry.state in (TrustState.VERIFIED, TrustState.CHANGED_BLOCKED)
    new = TrustEntry(
        user_id=user_id,
        aik_pub=aik_pub,
        state=TrustState.CHANGED_BLOCKED if blocked else TrustState.UNVERIFIED,
        verified_aik=None,
        previous_aik=entry.aik_pub,
        changes=entry.changes + 1,
    )
    return new, Observation.CHANGED


def accept_change(entry: TrustEntry) -> TrustEntry:
    """User explicitly accepted the new safety number: CHANGED_BLOCKED -> UNVERIFIED."""
    return msgspec.structs.replace(entry, state=TrustState.UNVERIFIED, previous_aik=None)


def mark_verified(entry: TrustEntry, aik_pub: bytes) -> TrustEntry:
    """After a matching QR scan or digit comparison of THIS aik_pub."""
    if not ct_eq(entry.aik_pub, aik_pub):
        raise KeyChanged("cannot verify a key that is not the pinned one")
    return msgspec.structs.replace(
        entry, state=TrustState.VERIFIED, verified_aik=aik_pub, previous_aik=None
    )


def unverify(entry: TrustEntry) -> TrustEntry:
    return msgspec.structs.replace(entry, state=TrustState.UNVERIFIED, verified_aik=None)


def may_send(entry: TrustEntry) -> bool:
    return entry.state is not TrustState.CHANGED_BLOCKED


def require_may_send(entry: TrustEntry) -> None:
    if not may_send(entry):
        raise SendingBlocked("safety number changed: accept it before sending")
