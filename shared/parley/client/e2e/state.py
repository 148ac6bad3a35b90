"""Persistent end-to-end state of one device, as msgspec Structs (msgpack round trip).

Persistence rule (docs/imv1.md §4.2): any state that advances a chain (ratchet, outbound sender
key) MUST be durably stored before the ciphertext it produced leaves the device; after a
decryption, store before acknowledging. The shell saves ``E2EState`` after every call into
``parley.client.e2e`` that returns something to send, and before sending it.

Dict keys are strings (``dev_key``, ``inbound_key``, b64 ids) so the state also round-trips
through JSON. Plaintext contents appear here only in the local send queue (``PendingSend``):
never in anything the server receives.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

import msgspec

from parley.crypto.b64 import b64e
from parley.crypto.devicelist import StoredDeviceList
from parley.crypto.safety import TrustEntry
from parley.crypto.sender_keys import OutboundSenderKey, SenderKeyRecord
from parley.crypto.sessions import DeviceSessions, PreKeyStore


def dev_key(user_id: str, device_id: int) -> str:
    return f"{user_id}/{device_id}"


def inbound_key(conversation_id: bytes, user_id: str, device_id: int) -> str:
    return f"{b64e(conversation_id)}/{user_id}/{device_id}"


class Notice(msgspec.Struct, frozen=True):
    """Something the UI shows in chats with ``user_id``: ``key_changed`` (safety number
    changed), ``device_added`` (linked a new device), ``device_removed``."""

    user_id: str
    kind: str
    ts: int
    device_id: int = 0


class Contact(msgspec.Struct):
    """What we verified about another user (or ourselves): pinned AIK and device list."""

    user_id: str
    trust: TrustEntry | None = None
    devlist: StoredDeviceList | None = None
    devices: dict[int, bytes] = msgspec.field(default_factory=dict)  # device_id -> IK pub


class OutboundGroup(msgspec.Struct):
    """Our sender key in one conversation and who received it (dev_key -> iteration given).
    ``given`` keeps previous distributions too so an ``skdm_req`` for an older one can be
    answered from its own inbound copy, never earlier than what the device was given."""

    key: OutboundSenderKey | None = None
    given: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)  # dist b64 -> ...
    rotate: bool = False  # membership/device/AIK change: new key before the next send


class ConversationView(msgspec.Struct):
    """The client's own membership view (§7.5). Direct: the two users. Group: set by
    ``group_update`` contents (epoch rule), the server's list is routing only."""

    conversation_id: bytes
    kind: str  # "direct" | "group"
    members: list[str] = msgspec.field(default_factory=list)
    admins: list[str] = msgspec.field(default_factory=list)
    epoch: int = 0
    name: str = ""
    creator: str = ""  # owner per the server at first sight: may set epoch 1 (bootstrap)


class Waiting(msgspec.Struct):
    """A conversation message whose sender key is missing ("waiting for key", §P.3)."""

    conversation_id: bytes
    seq: int
    sender: str
    sender_device: int
    ts: int
    envelope: bytes
    distribution_id: bytes
    chain_id: int
    iteration: int
    requested_ms: int = 0  # last key request for its chain (0: not asked yet)
    attempts: int = 0  # key requests sent for its chain so far (the retry backoff)


class KeyRequest(msgspec.Struct, frozen=True):
    """What a key_fwd we asked for belongs to (key_fwd itself does not name the sender)."""

    conversation_id: bytes
    sender: str
    sender_device: int


class ToDeviceOut(msgspec.Struct, frozen=True):
    """A pairwise envelope to send: body = type byte (2|3) || envelope body."""

    user_id: str
    device_id: int
    body: bytes


class SendStage(StrEnum):
    """How far a ``PendingSend`` got; persisted as the plain string."""

    WAITING = "waiting"  # keys missing: NOTHING left the device
    ENCRYPTED = "encrypted"  # envelope + SKDMs made and state persisted
    SKDM_SENT = "skdm_sent"  # the SKDMs went out pairwise
    QUEUED = "queued"  # handed to the engine's outbox as ``client_msg_id``


class PendingSend(msgspec.Struct):
    """A content on its way out, at ``stage`` (see ``SendStage``)."""

    local_id: str
    conversation_id: bytes
    content: bytes  # content JSON (local only)
    created_ms: int
    stage: SendStage = SendStage.WAITING
    envelope: bytes = b""
    to_device: list[ToDeviceOut] = msgspec.field(default_factory=list)
    client_msg_id: str = ""
    seq: int = 0
    reason: str = ""
    reply_to: int = 0  # routing metadata the server sees: the seq this message answers
    mentions: list[str] = msgspec.field(default_factory=list)  # ... and the users it mentions
    ref_kind: str = ""  # with reply_to: "edit" / "reaction" (a RefKind); "" is a reply


class BackupState(msgspec.Struct):
    version: int
    bk: bytes
    uploaded: dict[str, int] = msgspec.field(default_factory=dict)  # record key -> iteration


class OwnDevice(msgspec.Struct):
    user_id: str
    device_id: int
    ik_seed: bytes
    aik_seed: bytes | None = None  # every linked device holds it (§3.1)
    prekeys: PreKeyStore = msgspec.field(default_factory=PreKeyStore)
    next_spk_id: int = 1
    next_opk_id: int = 1
    spk_rotated_ms: int = 0
    opks_checked_ms: int = 0  # last time the server's count of our OPKs was looked at
    upload_pending: bool = False  # a rotated SPK / new OPKs not confirmed uploaded yet
    published_devlist: bool = False


class E2EState(msgspec.Struct):
    own: OwnDevice
    contacts: dict[str, Contact] = msgspec.field(default_factory=dict)
    sessions: dict[str, DeviceSessions] = msgspec.field(default_factory=dict)
    conversations: dict[str, ConversationView] = msgspec.field(default_factory=dict)
    outbound: dict[str, OutboundGroup] = msgspec.field(default_factory=dict)
    inbound: dict[str, SenderKeyRecord] = msgspec.field(default_factory=dict)
    waiting: dict[str, Waiting] = msgspec.field(default_factory=dict)  # "cid/seq"
    key_requests: dict[str, KeyRequest] = msgspec.field(default_factory=dict)
    pending: list[PendingSend] = msgspec.field(default_factory=list)
    notices: list[Notice] = msgspec.field(default_factory=list)
    backup: BackupState | None = None
    backup_dirty: list[str] = msgspec.field(default_factory=list)  # inbound keys to upload
    to_device_done: int = 0  # highest to-device seq fully processed
    strict: bool = False  # §9.3 strict mode: block on every key change
    format: int = 1  # FORMAT_VERSION of the code that wrote it (``loads`` migrates older ones)


FORMAT_VERSION = 1
"""The persisted layout of ``E2EState``. A new field with a default needs nothing; anything
else (a renamed or retyped field, a changed meaning) bumps this and adds a step to
``MIGRATIONS``, so every state ever written still loads."""

Migration = Callable[[dict[str, Any]], dict[str, Any]]

MIGRATIONS: dict[int, Migration] = {}
"""``MIGRATIONS[v]`` turns a state of format ``v`` (as a plain msgpack map) into format
``v + 1``. Empty: format 1 is the first (states written before the field existed are 1)."""


class StateFormatError(ValueError):
    """The stored state is of a format this code cannot read (written by a newer version)."""


class _Format(msgspec.Struct):
    format: int = 1


_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(E2EState)
_head = msgspec.msgpack.Decoder(_Format)


def dumps(state: E2EState) -> bytes:
    state.format = FORMAT_VERSION
    return _enc.encode(state)


def loads(data: bytes, migrations: dict[int, Migration] | None = None) -> E2EState:
    """Decode a stored state, migrating it step by step from its format to FORMAT_VERSION."""
    steps = MIGRATIONS if migrations is None else migrations
    version = _head.decode(data).format
    if version > FORMAT_VERSION:
        raise StateFormatError(f"E2E state format {version} is newer than {FORMAT_VERSION}")
    if version == FORMAT_VERSION:
        return _dec.decode(data)
    raw: dict[str, Any] = msgspec.msgpack.decode(data)
    while version < FORMAT_VERSION:
        if version not in steps:
            raise StateFormatError(f"no migration from E2E state format {version}")
        raw = steps[version](raw)
        version += 1
        raw["format"] = version
    return _dec.decode(_enc.encode(raw))
