"""Pairwise session management (docs/imv1.md §4.5, Sesame-style), per remote device.

Pairwise sessions carry to-device messages only (§P.2). One ``DeviceSessions`` record per
remote device holds the active session and up to ARCHIVED_SESSIONS_MAX archived ones; our
own private prekeys live in a ``PreKeyStore``. Every function either succeeds and updates
the records in place, or raises and leaves them unchanged (persist after success).
"""

from __future__ import annotations

import msgspec

from parley.crypto import ratchet, x3dh
from parley.crypto._secret import SecretStruct
from parley.crypto.bundle import VerifiedBundle
from parley.crypto.constants import (
    ARCHIVED_SESSIONS_MAX,
    MAX_UNACKED_SESSION_AGE,
    RESET_MIN_INTERVAL,
    SPK_RETENTION,
)
from parley.crypto.errors import (
    CryptoError,
    DuplicateMessage,
    MalformedMessage,
    NoSession,
    ReplayedPreKey,
    UnknownPreKey,
    UntrustedIdentity,
)
from parley.crypto.kdf import ct_eq
from parley.crypto.keys import Ed25519KeyPair, OneTimePreKey, Rng, SignedPreKey, X25519KeyPair
from parley.crypto.wire import (
    ENVELOPE_DR,
    ENVELOPE_PREKEY,
    PreKeyMessage,
    parse_dr_message,
    parse_prekey_message,
)


class SessionStale(CryptoError):
    """Our PreKey session was never answered for MAX_UNACKED_SESSION_AGE: run a new X3DH."""


class PendingPreKey(msgspec.Struct, frozen=True):
    """Initiator side: X3DH prefix repeated on every message until the peer answers."""

    spk_id: int
    opk_id: int


class Session(SecretStruct):
    ratchet: ratchet.RatchetState
    ik_a: bytes  # initiator's Ed25519 IK: (ik_a, ek_a) identifies the session (§4.1 step 0)
    ek_a: bytes
    initiator: bool
    created_at: int
    pending: PendingPreKey | None = None

    _public = ("initiator", "created_at", "pending")


class DeviceSessions(SecretStruct):
    user_id: str
    device_id: int
    remote_ik: bytes  # Ed25519 IK of the remote device (from its verified device list)
    active: Session | None = None
    archived: list[Session] = msgspec.field(default_factory=list)  # newest first
    last_reset_at: int | None = None

    _public = ("user_id", "device_id", "remote_ik")

    def archive_active(self) -> None:
        """Manual/automatic reset step: the active session becomes the newest archived one."""
        if self.active is not None:
            self.archived.insert(0, self.active)
            del self.archived[ARCHIVED_SESSIONS_MAX:]
            self.active = None

    def _promote(self, s: Session) -> None:
        if s is self.active:
            return
        self.archived = [a for a in self.archived if a is not s]
        self.archive_active()
        self.active = s

    def may_auto_reset(self, now: int) -> bool:
        """At most one automatic reset per RESET_MIN_INTERVAL per remote device."""
        return self.last_reset_at is None or now - self.last_reset_at >= RESET_MIN_INTERVAL

    def begin_auto_reset(self, now: int) -> bool:
        """If allowed: archive the active session, record the time, return True. The caller
        then fetches a fresh bundle, calls ``initiate`` and sends a ``derr`` content."""
        if not self.may_auto_reset(now):
            return False
        self.archive_active()
        self.last_reset_at = now
        return True


class PreKeyStore(SecretStruct):
    """Our device's private prekeys and the EK_A replay set per signed prekey."""

    spks: dict[int, SignedPreKey] = msgspec.field(default_factory=dict)
    current_spk_id: int = 0
    opks: dict[int, OneTimePreKey] = msgspec.field(default_factory=dict)
    seen_ek: dict[int, list[bytes]] = msgspec.field(default_factory=dict)  # spk_id -> EK_A

    _public = ("current_spk_id",)

    def add_spk(self, spk: SignedPreKey) -> None:
        self.spks[spk.id] = spk
        self.current_spk_id = spk.id

    def add_opks(self, opks: list[OneTimePreKey]) -> None:
        for o in opks:
            self.opks[o.id] = o

    def erase_expired_spks(self, now: int) -> list[int]:
        """Erase superseded SPKs older than SPK_RETENTION (and their seen-EK sets)."""
        gone = [
            i
            for i, s in self.spks.items()
            if i != self.current_spk_id and now - s.created_at > SPK_RETENTION
        ]
        for i in gone:
            del self.spks[i]
            self.seen_ek.pop(i, None)
        return gone


def initiate(
    dev: DeviceSessions,
    our_ik: Ed25519KeyPair,
    bundle: VerifiedBundle,
    *,
    now: int,
    rng: Rng | None = None,
    ek: X25519KeyPair | None = None,
    dh: X25519KeyPair | None = None,
) -> Session:
    """X3DH with a bundle that passed bundle.verify_bundle; the new session becomes active
    (a previous active one is archived). ``ek``/``dh`` are injectable for test vectors."""
    if bundle.user_id != dev.user_id or bundle.device_id != dev.device_id:
        raise UntrustedIdentity("bundle is for another device")
    if not ct_eq(bundle.ik_pub, dev.remote_ik):
        raise UntrustedIdentity("bundle IK differs from the device's verified IK")
    res = x3dh.initiate(our_ik, bundle.ik_pub, bundle.spk_pub, bundle.opk_pub, ek=ek, rng=rng)
    st = ratchet.init_alice(res.sk, res.ad, bundle.spk_pub, dh=dh, rng=rng)
    s = Session(
        ratchet=st, ik_a=our_ik.pub, ek_a=res.ek_pub, initiator=True, created_at=now,
        pending=PendingPreKey(bundle.spk_id, bundle.opk_id),
    )  # fmt: skip
    dev.archive_active()
    dev.active = s
    return s


def encrypt(dev: DeviceSessions, plaintext: bytes, *, now: int) -> tuple[int, bytes]:
    """Encrypt with the active session -> (envelope type 2|3, body). Persist ``dev`` before
    the body leaves the device."""
    s = dev.active
    if s is None:
        raise NoSession("no active session: run X3DH first")
    if s.pending is not None and now - s.created_at > MAX_UNACKED_SESSION_AGE:
        raise SessionStale("session never answered: archive it and run a fresh X3DH")
    body = ratchet.encrypt(s.ratchet, plaintext)
    if s.pending is None:
        return ENVELOPE_DR, body
    pkm = PreKeyMessage(s.ik_a, s.ek_a, s.pending.spk_id, s.pending.opk_id, body)
    return ENVELOPE_PREKEY, pkm.encode()


def decrypt(
    dev: DeviceSessions,
    our_ik: Ed25519KeyPair,
    store: PreKeyStore,
    envelope_type: int,
    body: bytes,
    *,
    now: int,
    rng: Rng | None = None,
) -> bytes:
    """Decrypt a to-device envelope from the server-asserted sender ``dev``.

    Raises DuplicateMessage (drop silently), or another CryptoError: the caller then decides
    on an automatic reset (``dev.begin_auto_reset``). Records unchanged on any error.
    """
    if envelope_type == ENVELOPE_DR:
        return _decrypt_existing(dev, _sessions(dev), body, now, rng)
    if envelope_type != ENVELOPE_PREKEY:
        raise MalformedMessage("not a pairwise envelope type")
    pkm = parse_prekey_message(body)
    # (0) repeated PreKeyMessage for a session we already have
    same = [s for s in _sessions(dev) if ct_eq(s.ek_a, pkm.ek_a) and ct_eq(s.ik_a, pkm.ik_a)]
    if same:
        return _decrypt_existing(dev, same, pkm.dr_message, now, rng)
    if not ct_eq(pkm.ik_a, dev.remote_ik):
        raise UntrustedIdentity("PreKeyMessage IK is not in the sender's verified device list")
    spk = store.spks.get(pkm.spk_id)
    if spk is None:
        raise UnknownPreKey("unknown signed prekey")
    opk = None
    if pkm.opk_id:
        opk = store.opks.get(pkm.opk_id)
        if opk is None:
            raise UnknownPreKey("unknown or used one-time prekey")
    seen = store.seen_ek.get(spk.id, [])
    if any(ct_eq(e, pkm.ek_a) for e in seen):
        raise ReplayedPreKey("ephemeral key already used with this signed prekey")
    res = x3dh.respond(our_ik, spk.priv, None if opk is None else opk.priv, pkm.ik_a, pkm.ek_a)
    st = ratchet.init_bob(res.sk, res.ad, X25519KeyPair(priv=spk.priv, pub=spk.pub))
    pt = ratchet.decrypt(st, pkm.dr_message, now=now, rng=rng)
    # success: commit everything
    s = Session(ratchet=st, ik_a=pkm.ik_a, ek_a=pkm.ek_a, initiator=False, created_at=now)
    dev.archive_active()
    dev.active = s
    if opk is not None:
        del store.opks[opk.id]
    store.seen_ek[spk.id] = [*seen, pkm.ek_a]
    return pt


def _sessions(dev: DeviceSessions) -> list[Session]:
    return ([dev.active] if dev.active is not None else []) + list(dev.archived)


def _decrypt_existing(
    dev: DeviceSessions, candidates: list[Session], msg: bytes, now: int, rng: Rng | None
) -> bytes:
    duplicate = False
    for s in candidates:
        try:
            pt = ratchet.decrypt(s.ratchet, msg, now=now, rng=rng)
        except DuplicateMessage:
            duplicate = True
            continue
        except MalformedMessage:
            raise
        except CryptoError:
            continue
        if s.initiator:
            s.pending = None  # the responder answered (Sesame §5.2)
        dev._promote(s)
        return pt
    if duplicate:
        raise DuplicateMessage("message already received")
    raise NoSession("no session could decrypt the message")


def remove_device(sessions: dict[int, DeviceSessions], device_id: int) -> None:
    """Device removed from a device list: delete all its sessions (active + archived)."""
    sessions.pop(device_id, None)


def derr_info(envelope_type: int, body: bytes) -> tuple[bytes, int]:
    """(ratchet public key, n) of an envelope that failed to decrypt: the ``ratchet`` and
    ``n`` fields of the ``derr`` content sent with the automatic reset (§4.5, §5)."""
    if envelope_type == ENVELOPE_PREKEY:
        body = parse_prekey_message(body).dr_message
    elif envelope_type != ENVELOPE_DR:
        raise MalformedMessage("not a pairwise envelope type")
    hdr, _, _ = parse_dr_message(body)
    return hdr.dh, hdr.n
