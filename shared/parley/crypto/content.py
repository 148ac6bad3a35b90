"""Content layer (docs/imv1.md §5, §P.3): typed content JSON, padded to PAD_BLOCK.

Sender identity is NEVER taken from content: it is whoever's session or sender key
decrypted it. Pairwise-only types arriving in a conversation (group) message are rejected.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from parley.crypto import backend
from parley.crypto.attachments import AttachmentPointer
from parley.crypto.b64 import b64d
from parley.crypto.constants import (
    DISTRIBUTION_ID_LEN,
    GROUP_ID_LEN,
    MAX_CONTENT_LEN,
    PAD_BLOCK,
    SKDM_LEN,
    THUMB_MAX,
)
from parley.crypto.errors import CryptoError, MalformedMessage

CALL_SIG_MAX = 40 * 1024


class _Base(
    msgspec.Struct, tag_field="t", omit_defaults=True, forbid_unknown_fields=True, kw_only=True
):
    id: str
    ts: int
    v: int = 1


class Text(_Base, tag="text"):
    body: str


class Att(_Base, tag="att"):
    att: AttachmentPointer
    caption: str | None = None


class Skdm(_Base, tag="skdm"):
    skdm: str


class SkdmReq(_Base, tag="skdm_req"):
    g: str
    dist: str


class Sync(_Base, tag="sync"):
    to: str
    content: Content


class Derr(_Base, tag="derr"):
    ratchet: str
    n: int
    orig_ts: int


class Reset(_Base, tag="reset"):
    pass


class GroupUpdate(_Base, tag="group_update"):
    g: str
    epoch: int
    members: list[str]
    admins: list[str]
    name: str


class Receipt(_Base, tag="receipt"):
    kind: Literal["delivered", "read"]
    ids: list[str]


class KeyReq(_Base, tag="key_req"):
    """§P.3: ask own devices for a missing sender key."""

    group_id: str
    distribution_id: str
    chain_id: int
    from_iteration: int


class KeyFwd(_Base, tag="key_fwd"):
    """§P.3: answer to key_req: an SKDM-format record with the chain key at that iteration."""

    skdm: str


class Call(_Base, tag="call"):
    """Call signalling between two devices (``parley.client.call_signal`` JSON): pairwise only,
    since SDP and ICE candidates carry IP addresses."""

    sig: str


class CallLog(_Base, tag="call_log"):
    """The chat entry a caller posts after a call: ``outcome`` is ``completed`` (with
    ``duration_ms``) or why it ended (``missed``, ``declined``, ``busy``, ``cancelled``,
    ``failed``, ``hung_up``)."""

    call: str
    video: bool
    outcome: str
    duration_ms: int = 0


Content = (
    Text
    | Att
    | Skdm
    | SkdmReq
    | Sync
    | Derr
    | Reset
    | GroupUpdate
    | Receipt
    | KeyReq
    | KeyFwd
    | Call
    | CallLog
)

PAIRWISE_ONLY = (Skdm, SkdmReq, Sync, Derr, Reset, KeyReq, KeyFwd, Call)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Content)


def validate(c: Content, *, _depth: int = 0) -> None:
    """Semantic checks msgspec's types cannot express. Raises MalformedMessage."""
    if c.v != 1:
        raise MalformedMessage("unsupported content version")
    b64d(c.id, 16)
    if c.ts < 0:
        raise MalformedMessage("negative timestamp")
    if isinstance(c, Skdm | KeyFwd):
        b64d(c.skdm, SKDM_LEN)
    elif isinstance(c, SkdmReq):
        b64d(c.g, GROUP_ID_LEN)
        b64d(c.dist, DISTRIBUTION_ID_LEN)
    elif isinstance(c, KeyReq):
        b64d(c.group_id, GROUP_ID_LEN)
        b64d(c.distribution_id, DISTRIBUTION_ID_LEN)
        if not 0 <= c.chain_id < 2**32 or not 0 <= c.from_iteration < 2**32:
            raise MalformedMessage("bad chain id or iteration")
    elif isinstance(c, Derr):
        b64d(c.ratchet, 32)
        if c.n < 0:
            raise MalformedMessage("bad counter")
    elif isinstance(c, GroupUpdate):
        b64d(c.g, GROUP_ID_LEN)
        if c.epoch < 0:
            raise MalformedMessage("bad epoch")
    elif isinstance(c, Receipt):
        for i in c.ids:
            b64d(i, 16)
    elif isinstance(c, Att):
        b64d(c.att.key, 32)
        b64d(c.att.digest, 32)
        if c.att.thumb is not None and len(b64d(c.att.thumb)) > THUMB_MAX:
            raise MalformedMessage("thumbnail too large")
        if c.att.size < 0 or c.att.blob_size < 0:
            raise MalformedMessage("bad attachment size")
        if (pv := c.att.preview) is not None:
            b64d(pv.key, 32)
            b64d(pv.digest, 32)
            if pv.preview is not None or pv.size < 0 or pv.blob_size < 0:
                raise MalformedMessage("bad attachment preview")
    elif isinstance(c, Call):
        if not c.sig or len(c.sig) > CALL_SIG_MAX:
            raise MalformedMessage("bad call signal size")
    elif isinstance(c, CallLog):
        if len(c.outcome) > 32 or c.duration_ms < 0 or len(c.call) > 64:
            raise MalformedMessage("bad call entry")
    elif isinstance(c, Sync):
        if isinstance(c.content, Sync) or _depth:
            raise MalformedMessage("sync must wrap one non-sync content")
        validate(c.content, _depth=1)


def encode(c: Content) -> bytes:
    """Content -> padded plaintext for ratchet/sender-key encryption."""
    validate(c)
    raw = _encoder.encode(c)
    if len(raw) > MAX_CONTENT_LEN:
        raise MalformedMessage("content too large: send it as an attachment")
    return backend.pad(raw, PAD_BLOCK)


def decode(padded: bytes, *, group: bool) -> Content:
    """Padded plaintext -> validated Content. ``group``: it came in a GroupMessage, where
    pairwise-only types are rejected."""
    if len(padded) % PAD_BLOCK:
        raise MalformedMessage("plaintext is not block padded")
    try:
        raw = backend.unpad(padded, PAD_BLOCK)
    except CryptoError:
        raise MalformedMessage("bad content padding") from None
    if len(raw) > MAX_CONTENT_LEN:
        raise MalformedMessage("content too large")
    try:
        c: Content = _decoder.decode(raw)
    except msgspec.ValidationError:
        # msgspec's message may quote content values: never put plaintext in exceptions
        raise MalformedMessage("invalid content") from None
    except msgspec.DecodeError:
        raise MalformedMessage("content is not JSON") from None
    validate(c)
    if group and isinstance(c, PAIRWISE_ONLY):
        raise MalformedMessage("pairwise-only content in a conversation message")
    return c
