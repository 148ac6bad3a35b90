"""Conversation messages with Sender Keys (docs/imv1.md §7, §P.1, §P.3).

Outbound: one sender key per conversation; before the first message with a distribution, an
SKDM goes pairwise to every device of every member in OUR membership view and to our own other
devices (only devices of verified device lists). A membership/device/AIK change or the
§P.1 count/age limits (direct: 100 msgs / 24 h; group: 1000 / 7 d) rotate it. We keep an
inbound copy of our own key, so our own messages decrypt like anyone's (and other own devices
can be forwarded them).

Inbound: states per (conversation, sender device). A message with an unknown key is kept as
``Waiting`` and triggers ``skdm_req`` to the sender device and ``key_req`` to our own other
devices; any key that arrives later (SKDM, key_fwd, backup) retries the waiting messages.
An earlier-iteration copy of a known chain is merged only if it provably ratchets into the
known one (so history can be filled in without trusting the forwarder with a rewind).
"""

from __future__ import annotations

from dataclasses import dataclass

from parley.client.e2e import pairwise
from parley.client.e2e.state import (
    ConversationView,
    E2EState,
    KeyRequest,
    OutboundGroup,
    ToDeviceOut,
    Waiting,
    dev_key,
    inbound_key,
)
from parley.crypto import content as content_mod
from parley.crypto import sender_keys as sk
from parley.crypto.b64 import b64d, b64e
from parley.crypto.constants import MAX_GROUP_SKIP, MAX_GROUP_STORED_KEYS, MAX_SENDER_KEY_STATES
from parley.crypto.errors import CryptoError, DuplicateMessage, NoSession
from parley.crypto.kdf import ct_eq
from parley.crypto.keys import Rng
from parley.crypto.wire import parse_group_header


class MissingKeys(Exception):
    """Keys are missing to send in this conversation: device lists of ``users`` or sessions
    with ``devices``. The message stays queued ("waiting for keys"); nothing was encrypted."""

    def __init__(self, users: list[str], devices: list[tuple[str, int]], why: str) -> None:
        super().__init__(why)
        self.users = users
        self.devices = devices


@dataclass(frozen=True)
class Received:
    """A decrypted conversation message (sender = the key that decrypted it)."""

    conversation_id: bytes
    seq: int
    sender: str
    sender_device: int
    ts: int
    content: content_mod.Content


@dataclass(frozen=True)
class Failed:
    """A message that can never decrypt (bad signature, malformed): shown, not retried."""

    conversation_id: bytes
    seq: int
    sender: str
    sender_device: int
    ts: int
    reason: str


def cid_key(cid: bytes) -> str:
    return b64e(cid)


# --- membership view ---------------------------------------------------------------------------


def view(st: E2EState, cid: bytes) -> ConversationView | None:
    return st.conversations.get(cid_key(cid))


def note_conversation(
    st: E2EState, cid: bytes, kind: str, members: list[str], creator: str
) -> ConversationView:
    """First sight of a conversation (server info). Direct: the two members ARE the view.
    Group: empty until a ``group_update`` (epoch 1 from ``creator``, later from an admin)."""
    v = view(st, cid)
    if v is None:
        v = ConversationView(conversation_id=cid, kind=kind, creator=creator)
        if kind == "direct":
            v.members = sorted(members)
        st.conversations[cid_key(cid)] = v
    return v


def set_group_view(
    st: E2EState,
    cid: bytes,
    members: list[str],
    admins: list[str],
    name: str,
    rng: Rng | None = None,
) -> content_mod.GroupUpdate:
    """Our own membership change (we must be an admin, or the creator at epoch 0): returns
    the ``group_update`` content to send. Removing a member rotates our sender key."""
    v = view(st, cid)
    if v is None or v.kind != "group":
        raise ValueError("unknown group")
    me = st.own.user_id
    if not (me in v.admins or (v.epoch == 0 and v.creator == me)):
        raise PermissionError("only an admin changes the membership view")
    gu = content_mod.GroupUpdate(
        id=pairwise.new_id(rng), ts=0, g=b64e(cid), epoch=v.epoch + 1,
        members=sorted(set(members) | {me}), admins=sorted(set(admins) | {me}), name=name,
    )  # fmt: skip
    _apply_view(st, v, gu)
    return gu


def _apply_view(st: E2EState, v: ConversationView, gu: content_mod.GroupUpdate) -> None:
    removed = set(v.members) - set(gu.members)
    v.members, v.admins, v.epoch, v.name = list(gu.members), list(gu.admins), gu.epoch, gu.name
    if removed:
        og = st.outbound.get(cid_key(v.conversation_id))
        if og is not None:
            og.rotate = True
        for k in [k for k in st.inbound if k.startswith(cid_key(v.conversation_id) + "/")]:
            if k.split("/")[1] in removed:
                del st.inbound[k]


def apply_group_update(st: E2EState, cid: bytes, sender: str, gu: content_mod.GroupUpdate) -> bool:
    """§7.5: accepted iff for this conversation, epoch = current + 1 and the sender is an admin
    of the current view (epoch 1: the creator). A view that has seen no update yet (epoch 0: we
    joined after the start, e.g. by accepting an invitation) takes the creator's update of any
    later epoch that lists us as a member: the same trust as for epoch 1."""
    v = view(st, cid)
    if v is None or v.kind != "group" or b64d(gu.g, 16) != cid:
        return False
    joining = v.epoch == 0 and gu.epoch > 1 and st.own.user_id in gu.members
    if gu.epoch != v.epoch + 1 and not joining:
        return False
    allowed = sender in v.admins if v.epoch else sender == v.creator
    if not allowed or sender not in gu.admins:
        return False
    _apply_view(st, v, gu)
    return True


# --- outbound ----------------------------------------------------------------------------------


def target_devices(st: E2EState, cid: bytes) -> list[tuple[str, int]]:
    """Every device of every member in our view plus our own other devices (verified lists)."""
    v = view(st, cid)
    if v is None:
        return []
    me = (st.own.user_id, st.own.device_id)
    out: list[tuple[str, int]] = []
    for u in sorted(set(v.members) | {st.own.user_id}):
        c = st.contacts.get(u)
        for d in sorted(c.devices) if c is not None else []:
            if (u, d) != me:
                out.append((u, d))
    return out


def missing_users(st: E2EState, cid: bytes) -> list[str]:
    """Members (and ourselves) without a verified device list: sending must wait."""
    v = view(st, cid)
    if v is None:
        return []
    return [
        u
        for u in sorted(set(v.members) | {st.own.user_id})
        if (c := st.contacts.get(u)) is None or c.devlist is None
    ]


def _create_outbound(st: E2EState, cid: bytes, now: int, rng: Rng | None) -> OutboundGroup:
    v = view(st, cid)
    og = st.outbound.setdefault(cid_key(cid), OutboundGroup())
    og.key = sk.OutboundSenderKey.create(cid, direct=v is not None and v.kind == "direct",
                                         now=now, rng=rng)  # fmt: skip
    og.rotate = False
    og.given[b64e(og.key.distribution_id)] = {}
    install(st, cid, st.own.user_id, st.own.device_id, sk.parse_skdm(og.key.skdm()))
    return og


def encrypt_message(
    st: E2EState, cid: bytes, c: content_mod.Content, now: int, rng: Rng | None = None
) -> tuple[list[ToDeviceOut], bytes]:
    """-> (SKDM to-device messages to send FIRST, the GroupMessage envelope). Mutates the
    state (sessions, sender key): persist it before anything leaves. Raises MissingKeys
    (nothing changed) when a device list or a pairwise session is missing."""
    v = view(st, cid)
    if v is None or not v.members:
        raise MissingKeys([], [], "no membership view for this conversation yet")
    if st.own.user_id not in v.members:
        raise PermissionError("not a member of this conversation")
    users = missing_users(st, cid)
    if users:
        raise MissingKeys(users, [], "device lists missing")
    og = st.outbound.get(cid_key(cid))
    fresh = og is None or og.key is None or og.rotate or og.key.needs_rotation(now)
    targets = target_devices(st, cid)
    given = {} if fresh or og is None or og.key is None else og.given[b64e(og.key.distribution_id)]
    need = [t for t in targets if dev_key(*t) not in given]
    no_session = [t for t in need if not pairwise.has_session(st, *t)]
    if no_session:
        raise MissingKeys([], no_session, "pairwise sessions missing")
    if fresh:
        og = _create_outbound(st, cid, now, rng)
    assert og is not None and og.key is not None
    key = og.key
    skdm = b64e(key.skdm())
    out = []
    g = og.given[b64e(key.distribution_id)]
    for u, d in need:
        msg = content_mod.Skdm(id=pairwise.new_id(rng), ts=now, skdm=skdm)
        out.append(pairwise.encrypt(st, u, d, msg, now))
        g[dev_key(u, d)] = key.iteration
    envelope = sk.encrypt(key, content_mod.encode(c), now=now)
    return out, envelope


# --- inbound -----------------------------------------------------------------------------------


def install(st: E2EState, cid: bytes, sender: str, device: int, skdm: sk.SKDM) -> bool:
    """Install or extend backwards an inbound state. Returns True if anything changed."""
    if skdm.group_id != cid:
        return False
    k = inbound_key(cid, sender, device)
    rec = st.inbound.setdefault(k, sk.SenderKeyRecord())
    changed = merge_state(rec, sk.InboundSenderKey.from_skdm(skdm))
    if changed and st.backup is not None and k not in st.backup_dirty:
        st.backup_dirty.append(k)
    return changed


def merge_state(rec: sk.SenderKeyRecord, new: sk.InboundSenderKey) -> bool:
    ex = rec.find(new.distribution_id, new.chain_id)
    if ex is None:
        rec.states.append(new)
        del rec.states[:-MAX_SENDER_KEY_STATES]
        return True
    gap = ex.first_iteration - new.first_iteration
    if gap <= 0 or gap > MAX_GROUP_SKIP or new.group_id != ex.group_id:
        return False
    if not ct_eq(new.ssk_pub, ex.ssk_pub):
        return False
    ck = new.first_ck
    seeds: dict[int, bytes] = {}
    for i in range(new.first_iteration, ex.first_iteration):
        seeds[i] = sk.message_seed(ck)
        ck = sk.next_chain_key(ck)
    if not ct_eq(ck, ex.first_ck):
        return False  # not the same chain: ignore
    merged = {**seeds, **ex.skipped}
    while len(merged) > MAX_GROUP_STORED_KEYS:
        del merged[next(iter(merged))]
    ex.skipped = merged
    ex.first_iteration, ex.first_ck = new.first_iteration, new.first_ck
    return True


def decrypt_entry(
    st: E2EState, cid: bytes, seq: int, sender: str, device: int, ts: int, envelope: bytes
) -> Received | Waiting | Failed | None:
    """Decrypt one conversation entry. ``Waiting`` is also stored in ``st.waiting``.
    None: a duplicate (already decrypted)."""
    try:
        hdr = parse_group_header(envelope)
    except CryptoError:
        return Failed(cid, seq, sender, device, ts, "malformed")
    rec = st.inbound.get(inbound_key(cid, sender, device))
    wk = f"{cid_key(cid)}/{seq}"
    try:
        if rec is None:
            raise NoSession("no sender key")
        known = rec.find(hdr.distribution_id, hdr.chain_id)
        if known is not None and hdr.iteration < known.first_iteration:
            # we hold this chain only from a LATER iteration (e.g. the sender answered an
            # skdm_req with its current one): the key is missing, not used up. A key_fwd or
            # backup from an earlier iteration extends the state backwards (merge_state).
            raise NoSession("sender key known only from a later iteration")
        pt = sk.decrypt(rec, envelope)
        c = content_mod.decode(pt, group=True)
    except NoSession:
        w = Waiting(cid, seq, sender, device, ts, envelope, hdr.distribution_id,
                    hdr.chain_id, hdr.iteration)  # fmt: skip
        return st.waiting.setdefault(wk, w)
    except DuplicateMessage:
        if st.waiting.pop(wk, None) is not None:
            # a waiting entry whose iteration was used by another entry (a replay): it can
            # never decrypt; say so instead of leaving it "waiting" with nothing retrying it
            return Failed(cid, seq, sender, device, ts, "DuplicateMessage")
        return None
    except CryptoError as e:
        st.waiting.pop(wk, None)
        return Failed(cid, seq, sender, device, ts, type(e).__name__)
    st.waiting.pop(wk, None)
    if isinstance(c, content_mod.GroupUpdate):
        apply_group_update(st, cid, sender, c)
    return Received(cid, seq, sender, device, ts, c)


def retry_waiting(st: E2EState) -> list[Received | Failed]:
    """Retry every waiting message whose key may have arrived (in seq order)."""
    out: list[Received | Failed] = []
    for w in sorted(st.waiting.values(), key=lambda w: (w.conversation_id, w.seq)):
        rec = st.inbound.get(inbound_key(w.conversation_id, w.sender, w.sender_device))
        known = rec.find(w.distribution_id, w.chain_id) if rec is not None else None
        if known is None or w.iteration < known.first_iteration:
            continue
        r = decrypt_entry(st, w.conversation_id, w.seq, w.sender, w.sender_device, w.ts,
                          w.envelope)  # fmt: skip
        if isinstance(r, Received | Failed):
            out.append(r)
    return out


KEY_REQUEST_FIRST_RETRY_MS = 2_000
"""A chain still waiting is asked about again after 2 s, then 4 s, 8 s, ... (per chain)."""
KEY_REQUEST_MAX_RETRY_MS = 10 * 60_000
"""The backoff is capped at 10 minutes ..."""
KEY_REQUEST_ATTEMPTS = 12
"""... and the timer gives up after this many requests (~1 h); ``rearm_key_requests`` (on
reconnect) allows one more each time, so a waiting message is never dropped for good."""

_Chain = tuple[bytes, str, int, bytes, int]


def _chain(w: Waiting) -> _Chain:
    return (w.conversation_id, w.sender, w.sender_device, w.distribution_id, w.chain_id)


def _chains(st: E2EState) -> dict[_Chain, list[Waiting]]:
    """Waiting messages grouped by sender key chain, in (conversation, seq) order."""
    out: dict[_Chain, list[Waiting]] = {}
    for w in sorted(st.waiting.values(), key=lambda w: (w.conversation_id, w.seq)):
        out.setdefault(_chain(w), []).append(w)
    return out


def _retry_delay(attempts: int) -> int:
    return min(KEY_REQUEST_FIRST_RETRY_MS << max(attempts - 1, 0), KEY_REQUEST_MAX_RETRY_MS)


def _due_ms(ws: list[Waiting]) -> int | None:
    """When this chain should be asked about (next), None: the timer gave up on it."""
    requested = max(w.requested_ms for w in ws)
    attempts = max(w.attempts for w in ws)
    if requested == 0:
        return 0
    if attempts >= KEY_REQUEST_ATTEMPTS:
        return None
    return requested + _retry_delay(attempts)


def next_key_request_ms(st: E2EState) -> int | None:
    """Wall time (ms) at which ``key_requests`` has something to send again; None: nothing
    is scheduled. The shell sets a timer for it and calls ``key_requests`` when it fires."""
    due = [t for ws in _chains(st).values() if (t := _due_ms(ws)) is not None]
    return min(due) if due else None


def rearm_key_requests(st: E2EState) -> None:
    """One more request for chains the backoff gave up on (call after a reconnect)."""
    for ws in _chains(st).values():
        if max(w.attempts for w in ws) >= KEY_REQUEST_ATTEMPTS:
            for w in ws:
                w.attempts, w.requested_ms = KEY_REQUEST_ATTEMPTS - 1, 0


def key_requests(
    st: E2EState, now: int, min_interval_ms: int | None = None, rng: Rng | None = None
) -> list[tuple[str, int, content_mod.Content]]:
    """skdm_req to each waiting message's sender device and key_req to our own other devices.
    -> [(user, device, content)] to send pairwise. A request can go unanswered (the other
    device is offline, does not know us yet, has no key yet), so each chain is asked again on
    a backoff (``next_key_request_ms``); ``min_interval_ms`` instead asks every chain not
    asked within that interval (0: all now, e.g. a manual retry)."""
    out: list[tuple[str, int, content_mod.Content]] = []
    own = st.contacts.get(st.own.user_id)
    own_devices = [d for d in (own.devices if own else {}) if d != st.own.device_id]
    for chain, ws in _chains(st).items():
        if min_interval_ms is None:
            due = _due_ms(ws)
            if due is None or now < due:
                continue
            attempts = max(w.attempts for w in ws) + 1
        else:
            requested = max(w.requested_ms for w in ws)
            if requested and now - requested < min_interval_ms:
                continue
            attempts = 1  # an explicit retry restarts the backoff
        for x in ws:
            x.requested_ms, x.attempts = now, attempts
        cid, sender, sender_device, dist, chain_id = chain
        first = min(x.iteration for x in ws)
        rk = f"{cid_key(cid)}/{b64e(dist)}/{chain_id}"
        st.key_requests[rk] = KeyRequest(cid, sender, sender_device)
        if (sender, sender_device) != (st.own.user_id, st.own.device_id):
            req = content_mod.SkdmReq(id=pairwise.new_id(rng), ts=now, g=cid_key(cid),
                                      dist=b64e(dist))  # fmt: skip
            out.append((sender, sender_device, req))
        for d in own_devices:
            kr = content_mod.KeyReq(
                id=pairwise.new_id(rng), ts=now, group_id=cid_key(cid), distribution_id=b64e(dist),
                chain_id=chain_id, from_iteration=first,
            )  # fmt: skip
            out.append((st.own.user_id, d, kr))
    return out


def answer_skdm_req(
    st: E2EState,
    user: str,
    device: int,
    req: content_mod.SkdmReq,
    now: int,
    rng: Rng | None = None,
) -> content_mod.Content | None:
    """The requester gets our key from the iteration it was given (or the current one if it is
    a device of a member that never got it): never earlier. None: not entitled."""
    cid = b64d(req.g, 16)
    v = view(st, cid)
    c = st.contacts.get(user)
    if v is None or c is None or device not in c.devices:
        return None
    if user not in v.members and user != st.own.user_id:
        return None
    og = st.outbound.get(cid_key(cid))
    if og is None:
        return None
    dist = b64d(req.dist, 16)
    given = og.given.get(b64e(dist), {})
    it = given.get(dev_key(user, device))
    own = st.inbound.get(inbound_key(cid, st.own.user_id, st.own.device_id))
    if it is None:
        if og.key is None or og.key.distribution_id != dist or og.rotate:
            return None
        it = og.key.iteration
        given[dev_key(user, device)] = it
    if own is None:
        return None
    for state in own.states:
        if state.distribution_id == dist:
            try:
                skdm = state.skdm_at(max(it, state.first_iteration))
            except CryptoError:
                return None
            return content_mod.Skdm(id=pairwise.new_id(rng), ts=now, skdm=b64e(skdm.encode()))
    return None


def answer_key_req(
    st: E2EState,
    user: str,
    device: int,
    req: content_mod.KeyReq,
    now: int,
    rng: Rng | None = None,
) -> content_mod.Content | None:
    """§P.3: only to our OWN devices in our verified device list."""
    own = st.contacts.get(st.own.user_id)
    if user != st.own.user_id or own is None or device not in own.devices:
        return None
    if device == st.own.device_id:
        return None
    cid = b64d(req.group_id, 16)
    dist = b64d(req.distribution_id, 16)
    prefix = cid_key(cid) + "/"
    for k, rec in st.inbound.items():
        if not k.startswith(prefix):
            continue
        state = rec.find(dist, req.chain_id)
        if state is None:
            continue
        try:
            skdm = state.skdm_at(max(req.from_iteration, state.first_iteration))
        except CryptoError:
            return None
        return content_mod.KeyFwd(id=pairwise.new_id(rng), ts=now, skdm=b64e(skdm.encode()))
    return None


def accept_key_fwd(st: E2EState, user: str, device: int, fwd: content_mod.KeyFwd) -> bool:
    """A forwarded key from one of our own devices, for a chain we asked about."""
    own = st.contacts.get(st.own.user_id)
    if user != st.own.user_id or own is None or device not in own.devices:
        return False
    skdm = sk.parse_skdm(b64d(fwd.skdm))
    rk = f"{cid_key(skdm.group_id)}/{b64e(skdm.distribution_id)}/{skdm.chain_id}"
    req = st.key_requests.get(rk)
    if req is None:
        return False
    return install(st, req.conversation_id, req.sender, req.sender_device, skdm)
