"""Handling of incoming to-device messages and the send queue: the sans-IO glue between
``pairwise``, ``groups`` and ``directory`` that every shell (CPython, browser) reuses.

Nothing here performs I/O. Functions return what must be sent (pairwise contents, SKDMs,
envelopes) and the shell persists ``E2EState`` BEFORE sending any of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from parley.client.e2e import directory, groups, pairwise
from parley.client.e2e.state import E2EState, PendingSend, SendStage
from parley.crypto import content as content_mod
from parley.crypto import sender_keys as sk
from parley.crypto.b64 import b64d, b64e
from parley.crypto.errors import CryptoError
from parley.crypto.keys import Rng


@dataclass
class ToDeviceResult:
    """``replies``: contents to send pairwise (the shell creates missing sessions first);
    ``keys_changed``: a key arrived, retry waiting messages; ``reset``: run the §4.5 reset;
    ``other``: a decrypted content this layer does not consume itself."""

    replies: list[tuple[str, int, content_mod.Content]] = field(default_factory=list)
    keys_changed: bool = False
    reset: pairwise.ResetNeeded | None = None
    resend_skdms: bool = False
    other: content_mod.Content | None = None  # a content for another feature (e.g. calls)


def handle_to_device(
    st: E2EState, sender: str, device: int, body: bytes, ts: int, now: int
) -> ToDeviceResult:
    res = ToDeviceResult()
    try:
        c = pairwise.decrypt(st, sender, device, body, ts, now)
    except pairwise.ResetNeeded as r:
        res.reset = r
        return res
    if c is None:
        return res
    if isinstance(c, content_mod.Skdm):
        try:
            skdm = sk.parse_skdm(b64d(c.skdm))
        except CryptoError:
            return res
        res.keys_changed = groups.install(st, skdm.group_id, sender, device, skdm)
    elif isinstance(c, content_mod.SkdmReq):
        ans = groups.answer_skdm_req(st, sender, device, c, now)
        if ans is not None:
            res.replies.append((sender, device, ans))
    elif isinstance(c, content_mod.KeyReq):
        ans = groups.answer_key_req(st, sender, device, c, now)
        if ans is not None:
            res.replies.append((sender, device, ans))
    elif isinstance(c, content_mod.KeyFwd):
        try:
            res.keys_changed = groups.accept_key_fwd(st, sender, device, c)
        except CryptoError:
            return res
    elif isinstance(c, content_mod.Derr | content_mod.Reset):
        # the peer reset our session: the SKDMs it had may be gone with it; give them again
        # (from the iteration it was originally given, never earlier) on the new session
        for og in st.outbound.values():
            for given in og.given.values():
                given.pop(f"{sender}/{device}", None)
        res.resend_skdms = True
    else:
        res.other = c  # not the E2E layer's own: the shell hands it to whoever asked for it
    return res


def derr_content(r: pairwise.ResetNeeded, now: int, rng: Rng | None = None) -> content_mod.Content:
    return content_mod.Derr(id=pairwise.new_id(rng), ts=now, ratchet=b64e(r.ratchet), n=r.n,
                            orig_ts=r.ts)  # fmt: skip


def queue(st: E2EState, cid: bytes, c: content_mod.Content, now: int) -> PendingSend:
    """Put a content in the send queue ("waiting for keys" until ``prepare`` succeeds).
    Raises SendingBlocked if a member's safety number changed after VERIFIED (§9.3)."""
    v = groups.view(st, cid)
    if v is not None:
        directory.require_may_send(st, v.members)
    content_mod.encode(c)  # validate now, not at encryption time
    p = PendingSend(local_id=c.id, conversation_id=cid, content=_enc(c), created_ms=now)
    st.pending.append(p)
    return p


def prepare(st: E2EState, p: PendingSend, now: int, rng: Rng | None = None) -> None:
    """waiting -> encrypted: SKDMs and the envelope are made (state mutated: persist next).
    Raises groups.MissingKeys (still waiting) or SendingBlocked."""
    if p.stage != SendStage.WAITING:
        return
    v = groups.view(st, p.conversation_id)
    if v is not None:
        directory.require_may_send(st, v.members)
    c = _dec(p.content)
    out, env = groups.encrypt_message(st, p.conversation_id, c, now, rng)
    p.to_device, p.envelope, p.stage, p.reason = out, env, SendStage.ENCRYPTED, ""


def content_of(p: PendingSend) -> content_mod.Content:
    return _dec(p.content)


def _enc(c: content_mod.Content) -> bytes:
    import msgspec

    return msgspec.json.encode(c)


def _dec(b: bytes) -> content_mod.Content:
    import msgspec

    c: content_mod.Content = msgspec.json.decode(b, type=content_mod.Content)
    return c
