"""One device's end-to-end encryption, driven: the async glue around the sans-IO
``parley.client.e2e`` that every shell (the CPython client and CLI, the browser) reuses, as
``parley.client.session`` is the one driver of the engine.

A shell gives the driver only I/O hooks:

* a key-directory caller ``keys(method, path, body, reply, params)`` (requests are built as data
  in ``parley.client.e2e.keys_api``; the caller raises ``KeyDirectoryError``);
* ``StateStore``: load and save the ``E2EState`` blob (``save_state`` durable when it returns);
* a ``ResultSink``: what became of stored entries (received, failed, waiting), our messages
  stored or refused by the server, and every other notification of the session;
* the engine ``Session`` (over the shell's transport and ``LocalStore``).

What it does, once for every shell::

    d = E2EDriver(session, keys.call, state_store, sink, user_id, device_id)
    await d.load()                  # the stored state, or a new device
    await d.start()                 # publish keys (first start), connect, catch up, re-scan
    local_id = await d.send_text(cid, "hi")     # queued; leaves only once encrypted
    await d.send_to_devices("bob", content)     # an encrypted to-device content
    d.on_to_device("call", handler)             # ... and receiving them by content type
    await d.close()

* Nothing is ever put into an envelope unencrypted: a content waits in ``E2EState.pending``
  until every key is there, and the state that advanced a chain is saved BEFORE the ciphertext
  is handed to the network; after a decryption it is saved before anything else happens.
* Key maintenance: the first start publishes the device list and a batch of one-time prekeys;
  afterwards ``identity.maintain_keys`` refills OPKs and rotates the signed prekey, when back
  online, after a PreKeyMessage used one of our OPKs, and when ``identity.keys_due_ms`` comes.
* Missing sender keys are requested with the backoff of ``groups.next_key_request_ms`` (one
  timer) and once more after every reconnect (``rearm_key_requests``).
* Entries stored but never handled (a stop between store and decrypt, a failure while offline)
  are re-scanned at start, when back online and after keys arrived.
* With a key backup enabled, new inbound keys are pushed after they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import msgspec

from parley.client import effects as fx
from parley.client.attachments import blob_ids_of_json
from parley.client.e2e import backup, device, directory, groups, identity, keys_api, pairwise
from parley.client.e2e import state as st_mod
from parley.client.e2e.keys_api import ApiCall, KeyDirectoryError
from parley.client.e2e.state import E2EState, PendingSend, SendStage
from parley.client.model import ConnectionState
from parley.client.session import RequestError, Session
from parley.client.tasks import stop_task
from parley.crypto import content as content_mod
from parley.crypto import provisioning
from parley.crypto.attachments import AttachmentPointer
from parley.crypto.backend import PWHASH_MEMLIMIT_MODERATE, PWHASH_OPSLIMIT_MODERATE
from parley.crypto.errors import CryptoError
from parley.crypto.keys import Rng
from parley.protocol import keys as kproto
from parley.protocol.ops import (
    Conversation,
    ConvGet,
    DirectOpen,
    GroupCreate,
    GroupInvite,
    GroupRename,
    ToDeviceMessage,
    ToDeviceSend,
)
from parley.protocol.records import (
    ConvEntry,
    ConversationInfo,
    Membership,
    MembershipAction,
    Message,
    RefKind,
)
from parley.protocol.types import Role

T = TypeVar("T")

OP_TIMEOUT_S = 15.0
"""Bound of every request the driver makes over the session."""

WORKER_STOP_S = 3.0
"""``close()`` waits at most this long for the worker to end after cancelling it."""

KEYS_RETRY_MS = 60_000
"""Key maintenance that failed (directory unreachable) is tried again after this long."""

FLUSH_RETRY_MS = 3_000
"""A message still queued while online (keys missing, a request failed) is tried again after
this long, and on every key that arrives."""

RESCAN_PAGE = 1000

Result = groups.Received | groups.Failed | st_mod.Waiting | None
"""What the E2E layer made of one entry (None: not a message, or a duplicate)."""


class EncryptionNotReady(Exception):
    """The device's keys are not published yet: nothing can be sent (never in plaintext)."""


class KeyCaller(Protocol):
    """The shell's key-directory caller (``keys_api`` builds the arguments)."""

    def __call__(
        self,
        method: str,
        path: str,
        body: object,
        reply: type[T],
        params: list[tuple[str, str]] | None = None,
    ) -> Awaitable[T]: ...


class StateStore(Protocol):
    """Where the E2E state blob rests (sealed or not: the shell's choice)."""

    async def load_state(self) -> bytes | None:
        """The last saved blob; None: a new device."""
        ...

    async def save_state(self, blob: bytes) -> None:
        """Replace the blob atomically; durable when this returns."""
        ...


@dataclass(frozen=True)
class Handled:
    """One stored entry and what the E2E layer made of it. ``entry`` is None for a message
    that waited for its key and decrypted later (``result`` names it)."""

    entry: ConvEntry | None
    result: Result


ToDeviceHandler = Callable[[str, int, content_mod.Content], Awaitable[None] | None]
"""``(sender, sender_device, content)`` of a decrypted to-device content."""


class ResultSink:
    """What the driver tells its shell. Every method is a no-op here: a shell overrides the
    ones it shows. ``entries`` and ``handled_seqs`` are called with the driver's lock held:
    they must not call the driver's public methods (they may read ``driver.st``)."""

    async def entries(self, conversation_id: bytes, batch: Sequence[Handled]) -> None:
        """A batch of one conversation's entries (ascending), or of retried waiting ones."""

    async def handled_seqs(self, conversation_id: bytes) -> set[int]:
        """The seqs ``entries`` already recorded (the re-scan hands the others again). A shell
        that records nothing returns everything it was given or re-scans are repeated."""
        return set()

    async def sent(self, p: PendingSend, n: fx.MessageSent) -> None:
        """Our message ``p`` is stored by the server at ``n.seq``."""

    async def send_failed(self, p: PendingSend, n: fx.MessageFailed) -> None:
        """The server refused ``p`` for good (it left the queue)."""

    async def noted(self, info: ConversationInfo) -> None:
        """A conversation the driver looked up or created (server info)."""

    async def notification(self, n: fx.Notification) -> None:
        """Every session notification, after the driver handled it (in order, one worker)."""

    def outgoing_changed(self, conversation_id: bytes | None) -> None:
        """The send queue changed (queued, advanced, left)."""

    def trust_changed(self) -> None:
        """Keys published, a device list changed, notices."""

    def error(self, exc: BaseException) -> None:
        """A handler failed (the driver goes on)."""


class _Rescan:
    """Worker job: look for stored entries the E2E layer never handled."""


_RESCAN = _Rescan()


def _wall_ms() -> int:
    return int(time.time() * 1000)


class E2EDriver:
    def __init__(
        self,
        session: Session,
        keys: KeyCaller,
        state: StateStore,
        sink: ResultSink,
        user_id: str,
        device_id: int,
        *,
        aik_seed: bytes | None = None,
        rng: Rng | None = None,
        wall_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        self.session = session
        self.store = session.store
        self.keys = keys
        self.state = state
        self.sink = sink
        self.user_id = user_id
        self.device_id = device_id
        self._aik_seed = aik_seed
        self._rng = rng
        self.now = wall_ms
        self.st: E2EState = identity.new_device(
            user_id, device_id, aik_seed=aik_seed, now=wall_ms(), rng=rng
        )
        self.fresh = True
        """True when no state was stored: this run created the device."""
        self.link_needed = False
        """The account already has devices: this one must be linked (409 on publish)."""
        self.errors: list[BaseException] = []
        self.lock = asyncio.Lock()
        self._saved: bytes | None = None
        # None: the timer fired (see _schedule_wake)
        self._inbox: asyncio.Queue[fx.Notification | _Rescan | None] = asyncio.Queue()
        self._timer: asyncio.TimerHandle | None = None
        self._keys_not_before = 0
        self._flush_at: int | None = None
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        self._handlers: dict[str, ToDeviceHandler] = {}
        self._process_td = asyncio.Event()
        self._process_td.set()

    # --- state -----------------------------------------------------------------------------
    def adopt_blob(self, blob: bytes | None) -> None:
        """Take a stored state (None: keep the new device made in ``__init__``)."""
        if blob is not None:
            self.st = st_mod.loads(blob)
            self._saved = blob
            self.fresh = False

    async def load(self) -> None:
        self.adopt_blob(await self.state.load_state())

    async def save(self) -> None:
        """Commit the state (BEFORE anything it produced leaves the device). A state equal to
        the one last written is not written again."""
        blob = self.unsaved()
        if blob is not None:
            await self.state.save_state(blob)
            self._saved = blob

    def unsaved(self) -> bytes | None:
        """The state's blob if it differs from the one last saved (else None)."""
        blob = st_mod.dumps(self.st)
        return None if blob == self._saved else blob

    def mark_saved(self, blob: bytes) -> None:
        """A shell saved ``blob`` itself (synchronously)."""
        self._saved = blob

    def new_id(self) -> str:
        """A fresh content id (from the driver's rng)."""
        return pairwise.new_id(self._rng)

    @property
    def ready(self) -> bool:
        """Our device list is published: sending is possible."""
        return self.st.own.published_devlist

    # --- key directory ---------------------------------------------------------------------
    async def _call(self, req: ApiCall[T]) -> T:
        return await self.keys(req.method, req.path, req.body, req.reply, req.params)

    async def publish_keys(self) -> None:
        """First start of this device (or after linking): account key (first device), the
        device list with this device, a batch of prekeys. ``ready`` only once the server took
        the list (a crash before leaves it unpublished). A further device of an account gets
        409 (``account_key_changed``): it must be linked (``link_needed``)."""
        async with self.lock:
            await self._publish_keys()

    async def _publish_keys(self) -> None:
        if self.st.own.aik_seed is None:
            identity.create_account_key(self.st, self._rng)
        if self.st.own.published_devlist:
            return
        body = identity.devlist_with_self(self.st, self.now())
        self.st.own.published_devlist = False  # until the server took it
        await self.save()
        try:
            await self._call(keys_api.put_device_list(body))
        except KeyDirectoryError as e:
            self.link_needed = e.status == 409
            raise
        self.link_needed = False
        self.st.own.published_devlist = True
        new = identity.new_opks(self.st, kproto.OPK_LOW_WATER * 2, self._rng)
        self.st.own.upload_pending = True  # maintain_keys uploads if the PUT below fails
        await self.save()  # private halves stored before the public ones are published
        await self._call(keys_api.upload_keys(identity.upload_body(self.st, new)))
        identity.uploaded(self.st)
        self.st.own.opks_checked_ms = self.now()
        await self.save()
        self.sink.trust_changed()

    async def maintain_keys(self) -> kproto.OpkCountReply:
        """Look at our OPK count on the server; rotate the SPK / upload a batch of OPKs when
        due (``identity.maintain_keys``). Returns the count the server holds now."""
        async with self.lock:
            count = await self._call(keys_api.opk_count())
            body = identity.maintain_keys(self.st, self.now(), count.count, self._rng)
            await self.save()  # private halves stored before the public ones are published
            if body is None:
                return count
            reply = await self._call(keys_api.upload_keys(body))
            identity.uploaded(self.st)
            await self.save()
            return reply

    async def _maintain_keys_quietly(self) -> None:
        if not self.ready:
            # nothing published to maintain yet (a new or an unlinked device): look again in a
            # minute, or the timer would fire at once, again and again
            self._keys_not_before = self.now() + KEYS_RETRY_MS
            return
        try:
            await self.maintain_keys()
        except KeyDirectoryError:
            # the directory unreachable: try again in a minute (not in a tight timer loop)
            self._keys_not_before = self.now() + KEYS_RETRY_MS

    def keys_due_ms(self) -> int:
        return max(identity.keys_due_ms(self.st), self._keys_not_before)

    async def refresh_devlist(self, user_id: str) -> list[st_mod.Notice]:
        """Fetch and verify ``user_id``'s device list (anti-rollback, TOFU, key changes)."""
        try:
            reply = await self._call(keys_api.device_list(user_id))
        except KeyDirectoryError as e:
            if e.status == 404:
                return []
            raise
        notices = directory.accept_device_list(self.st, reply, self.now())
        await self.save()
        if notices:
            self.sink.trust_changed()
        return notices

    async def _ensure_sessions(self, devices: list[tuple[str, int]]) -> None:
        """Pairwise sessions with ``devices`` (verified bundles, X3DH)."""
        missing = [d for d in devices if not pairwise.has_session(self.st, *d)]
        for user in sorted({u for u, _ in missing}):
            reply = await self._call(keys_api.bundles(user))
            want = {d for u, d in missing if u == user}
            for b in reply.bundles:
                if b.device_id not in want:
                    continue
                try:
                    vb = directory.verify_bundle(self.st, b)
                except CryptoError:
                    continue  # not verifiable: no session, the message keeps waiting
                pairwise.initiate(self.st, vb, self.now(), self._rng)
        await self.save()

    async def remove_device(self, device_id: int) -> None:
        """Publish our device list without ``device_id``: it gets no new keys from now on."""
        async with self.lock:
            await self.refresh_devlist(self.user_id)  # build on the newest verified version
            body = identity.devlist_without(self.st, device_id, self.now())
            await self.save()
            await self._call(keys_api.put_device_list(body))
        self.sink.trust_changed()

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self, *, publish_first: bool = False) -> None:
        """Start the worker and the session, catch up on stored to-device items and re-scan
        stored entries never handled. Keys not yet published are published: before connecting
        with ``publish_first`` (its errors are raised), else after (a failure is retried when
        back online; ``link_needed`` says why)."""
        if publish_first:
            await self.publish_keys()
        self.session.add_listener(self._inbox.put_nowait)
        self._worker = asyncio.ensure_future(self._work())
        await self.session.start()
        if not publish_first:
            with contextlib.suppress(KeyDirectoryError):
                await self.publish_keys()
        await self._catch_up_to_device()
        self._inbox.put_nowait(_RESCAN)

    async def close(self) -> None:
        """Stop the worker and the session; save. Bounded: the worker is cancelled (again and
        again, in case something inside swallowed a cancellation) for at most
        ``WORKER_STOP_S``, then abandoned; it also leaves its loop by itself once closing."""
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        if self._worker is not None:
            self._inbox.put_nowait(None)  # wakes a worker whose cancellation got lost
            await stop_task(self._worker, WORKER_STOP_S)
        await self.session.stop()
        await self.save()

    def hold_to_device(self, hold: bool) -> None:
        """Tests: hold to-device processing (keys arrive 'late'); stored items are kept."""
        if hold:
            self._process_td.clear()
        else:
            self._process_td.set()
            self._inbox.put_nowait(fx.ToDeviceStored(()))

    async def to_device_pending(self) -> bool:
        """Stored to-device items (keys among them) the E2E layer has not processed yet."""
        return bool(await self.store.to_device_after(self.st.to_device_done))

    # --- conversations ---------------------------------------------------------------------
    async def note(self, info: ConversationInfo) -> None:
        """Server info of a conversation we are in: our E2E view (direct: its members)."""
        async with self.lock:
            await self._note(info)

    async def _note(self, info: ConversationInfo) -> None:
        creator = next((m.user_id for m in info.members if m.role == Role.OWNER), "")
        members = [m.user_id for m in info.members]
        groups.note_conversation(self.st, info.conversation_id, info.kind.value, members, creator)
        await self.save()
        await self.sink.noted(info)

    async def _know(self, cid: bytes) -> None:
        if groups.view(self.st, cid) is None:
            r = await self.session.request(ConvGet(conversation_id=cid), OP_TIMEOUT_S)
            assert isinstance(r, Conversation)
            await self._note(r.info)

    async def info(self, cid: bytes) -> ConversationInfo:
        r = await self.session.request(ConvGet(conversation_id=cid), OP_TIMEOUT_S)
        assert isinstance(r, Conversation)
        return r.info

    async def open_direct(self, user_id: str) -> bytes:
        r = await self.session.request(DirectOpen(user_id=user_id), OP_TIMEOUT_S)
        assert isinstance(r, Conversation)
        await self.note(r.info)
        return r.info.conversation_id

    async def create_group(self, members: list[str], name: str) -> bytes:
        """Server routing list + our E2E membership view; the name travels only inside the
        encrypted ``group_update`` content (the server's ``meta`` stays empty)."""
        self._require_ready()
        r = await self.session.request(GroupCreate(members=members, meta=b""), OP_TIMEOUT_S)
        assert isinstance(r, Conversation)
        cid = r.info.conversation_id
        # Invited users (not yet members) enter the view only once they accept (_add_members).
        members = [u for u in members if u not in r.invited]
        async with self.lock:
            await self._note(r.info)
            gu = groups.set_group_view(self.st, cid, members, [], name, self._rng)
            self._queue(cid, msgspec.structs.replace(gu, ts=self.now()))
            await self.save()
        await self.flush()
        return cid

    async def invite(self, cid: bytes, user_ids: list[str]) -> None:
        """Server routing list, then (an admin) the next membership view."""
        self._require_ready()
        r = await self.session.request(GroupInvite(conversation_id=cid, user_ids=user_ids))
        if isinstance(r, Conversation):  # the invited join the view when they accept
            user_ids = [u for u in user_ids if u not in r.invited]
        async with self.lock:
            v = groups.view(self.st, cid)
            if v is not None and user_ids:
                members = sorted(set(v.members) | set(user_ids))
                gu = groups.set_group_view(self.st, cid, members, v.admins, v.name, self._rng)
                self._queue(cid, msgspec.structs.replace(gu, ts=self.now()))
                await self.save()
        await self.flush()

    # --- device linking (the shell talks to the provisioning relay) -------------------------
    async def seal_link(self, e_pub: bytes, link_token: str) -> bytes:
        """Existing device: the sealed box for a new device of ours (its link code gave
        ``e_pub``; ``link_token`` is minted by the relay for our user)."""
        async with self.lock:
            await self.refresh_devlist(self.user_id)
            return identity.seal_link(self.st, e_pub, link_token)

    async def adopt_link(self, res: provisioning.ProvisionResult) -> None:
        """New device (signed in, not yet linked): take the account key and device list from
        the existing device, then publish the next device list with this device and its keys
        (``ready``; ``link_needed`` clears). The old history comes from key requests answered
        by the existing device, or from a backup."""
        async with self.lock:
            identity.adopt_link(self.st, res)
            await self.save()
        await self.publish_keys()

    async def rename(self, cid: bytes, name: str) -> None:
        """The server first (it checks the caller's role and records the rename; its ``meta``
        stays empty), then the new name inside the encrypted ``group_update``."""
        self._require_ready()
        await self.session.request(GroupRename(conversation_id=cid, meta=b""), OP_TIMEOUT_S)
        async with self.lock:
            v = groups.view(self.st, cid)
            if v is not None:
                gu = groups.set_group_view(self.st, cid, v.members, v.admins, name, self._rng)
                self._queue(cid, msgspec.structs.replace(gu, ts=self.now()))
                await self.save()
        await self.flush()

    def _add_members(self, cid: bytes, joined: set[str]) -> bool:
        """Invitees accepted (a Membership entry of their own joining): an admin publishes the
        next membership view with them. True when a group update was queued."""
        v = groups.view(self.st, cid)
        if not joined or v is None or v.kind != "group" or joined <= set(v.members):
            return False
        if self.user_id not in v.admins:
            return False
        if v.creator != self.user_id and v.creator in v.admins:
            return False  # the creator's update is the one a joiner can accept (docs/imv1.md §7.5)
        members = sorted(set(v.members) | joined)
        gu = groups.set_group_view(self.st, cid, members, v.admins, v.name, self._rng)
        self._queue(cid, msgspec.structs.replace(gu, ts=self.now()))
        return True

    def _drop_members(self, cid: bytes, gone: set[str]) -> bool:
        """Someone left or was removed: an admin publishes the new membership view (which
        also rotates our sender key). True when a group update was queued."""
        v = groups.view(self.st, cid)
        if not gone or v is None or v.kind != "group" or not gone & set(v.members):
            return False
        if self.user_id not in v.admins:
            return False
        members = [u for u in v.members if u not in gone]
        admins = [u for u in v.admins if u not in gone]
        gu = groups.set_group_view(self.st, cid, members, admins, v.name, self._rng)
        self._queue(cid, msgspec.structs.replace(gu, ts=self.now()))
        return True

    # --- sending ---------------------------------------------------------------------------
    def _require_ready(self) -> None:
        if not self.ready:
            raise EncryptionNotReady("encryption not ready")

    def _queue(
        self,
        cid: bytes,
        c: content_mod.Content,
        reply_to: int = 0,
        mentions: Sequence[str] = (),
        ref_kind: RefKind = RefKind.REPLY,
    ) -> PendingSend:
        p = device.queue(self.st, cid, c, self.now())
        p.reply_to, p.mentions = reply_to, list(mentions)
        if reply_to and ref_kind is not RefKind.REPLY:
            p.ref_kind = ref_kind.value
        return p

    async def send_text(
        self, cid: bytes, text: str, *, reply_to: int = 0, mentions: Sequence[str] = ()
    ) -> str:
        c = content_mod.Text(id=self.new_id(), ts=self.now(), body=text)
        return await self.send_content(cid, c, reply_to=reply_to, mentions=mentions)

    async def send_attachment(self, cid: bytes, pointer: AttachmentPointer, caption: str) -> str:
        c = content_mod.Att(id=self.new_id(), ts=self.now(), att=pointer,
                            caption=caption)  # fmt: skip
        return await self.send_content(cid, c)

    async def send_content(
        self,
        cid: bytes,
        c: content_mod.Content,
        *,
        reply_to: int = 0,
        mentions: Sequence[str] = (),
        ref_kind: RefKind = RefKind.REPLY,
    ) -> str:
        """Queue ``c`` (raises SendingBlocked after a verified contact's key changed,
        EncryptionNotReady before our keys are published) and try to send. Returns the local
        id; the message waits while keys are missing. ``reply_to``/``mentions``: routing
        metadata the server sees (the reply itself is inside the envelope); ``ref_kind``: what
        ``reply_to`` is (a reply, or an edit of / a reaction to that message)."""
        self._require_ready()
        async with self.lock:
            await self._know(cid)
            p = self._queue(cid, c, reply_to, mentions, ref_kind)
            await self.save()
        self.sink.outgoing_changed(cid)
        await self.flush()
        return p.local_id

    async def flush(self) -> None:
        """Push every queued message as far as it can go (see ``SendStage``); a failure leaves
        it at its stage, tried again on keys, when back online or after ``FLUSH_RETRY_MS``."""
        async with self.lock:
            for p in list(self.st.pending):
                with contextlib.suppress(KeyDirectoryError, CryptoError, groups.MissingKeys,
                                         RequestError, TimeoutError):  # fmt: skip
                    await self._advance(p)
            stuck = any(p.stage is not SendStage.QUEUED for p in self.st.pending)
            self._flush_at = self.now() + FLUSH_RETRY_MS if stuck else None
        self.sink.outgoing_changed(None)

    async def _advance(self, p: PendingSend) -> None:
        if p.stage == SendStage.WAITING:
            await self._refresh_members(p.conversation_id)
            await self._ensure_sessions(groups.target_devices(self.st, p.conversation_id))
            try:
                device.prepare(self.st, p, self.now(), self._rng)
            except groups.MissingKeys as e:
                p.reason = str(e)
                await self.save()
                raise
            await self.save()  # chain advanced: durable before the ciphertext leaves
        if p.stage == SendStage.ENCRYPTED:
            if p.to_device:
                await self.session.request(ToDeviceSend(messages=[
                    ToDeviceMessage(t.user_id, t.device_id, t.body) for t in p.to_device
                ]), OP_TIMEOUT_S)  # fmt: skip
            p.stage, p.to_device = SendStage.SKDM_SENT, []
            await self.save()
        if p.stage == SendStage.SKDM_SENT:
            # the client_msg_id is the local id: the engine's outbox holds it durably once
            # send_message returns; a crash before QUEUED is saved re-queues the same id,
            # which the outbox and the server deduplicate
            p.client_msg_id = p.local_id
            await self.session.send_message(
                p.conversation_id, p.envelope, track=False, client_msg_id=p.local_id,
                created_ms=p.created_ms, ref_seq=p.reply_to or None,
                ref_kind=(RefKind(p.ref_kind) if p.ref_kind else RefKind.REPLY)
                if p.reply_to else None, mentions=p.mentions,
                blobs=blob_ids_of_json(p.content),
            )  # fmt: skip
            p.stage = SendStage.QUEUED
            await self.save()

    async def _refresh_members(self, cid: bytes) -> None:
        v = groups.view(self.st, cid)
        for u in sorted(set(v.members if v else []) | {self.user_id}):
            await self.refresh_devlist(u)

    # --- to-device contents for other features ---------------------------------------------
    async def send_to_devices(
        self, user_id: str, content: content_mod.Content, devices: Sequence[int] | None = None
    ) -> int:
        """Encrypt ``content`` pairwise for ``user_id``'s devices (all in their verified
        device list, or only ``devices``) and send it as to-device messages. Returns how many
        devices it went to (0: none known; the directory is asked first)."""
        async with self.lock:
            await self.refresh_devlist(user_id)
            c = self.st.contacts.get(user_id)
            known = sorted(c.devices) if c is not None else []
            targets = [d for d in known if devices is None or d in devices]
            if user_id == self.user_id:
                targets = [d for d in targets if d != self.device_id]
            return await self._send_pairwise([(user_id, d, content) for d in targets])

    def on_to_device(self, content_type: str, handler: ToDeviceHandler) -> None:
        """Call ``handler(sender, sender_device, content)`` for every decrypted to-device
        content of this type (its tag, e.g. ``"call"``) the E2E layer does not consume itself.
        It runs in the driver's worker, the state already saved; it must not block for long."""
        self._handlers[content_type] = handler

    async def _send_pairwise(self, msgs: list[tuple[str, int, content_mod.Content]]) -> int:
        if not msgs:
            return 0
        with contextlib.suppress(KeyDirectoryError):
            await self._ensure_sessions([(u, d) for u, d, _ in msgs])
        out = []
        for u, d, c in msgs:
            with contextlib.suppress(CryptoError):
                t = pairwise.encrypt(self.st, u, d, c, self.now())
                out.append(ToDeviceMessage(t.user_id, t.device_id, t.body))
        await self.save()  # ratchets advanced: durable before sending
        if out:
            await self.session.request(ToDeviceSend(messages=out), OP_TIMEOUT_S)
        return len(out)

    # --- trust -----------------------------------------------------------------------------
    def notices(self, user_id: str | None = None) -> list[st_mod.Notice]:
        return [n for n in self.st.notices if user_id is None or n.user_id == user_id]

    def safety_number(self, user_id: str) -> str:
        return directory.safety_number(self.st, user_id)

    async def mark_verified(self, user_id: str) -> None:
        directory.mark_verified(self.st, user_id)
        await self.save()
        self.sink.trust_changed()

    async def accept_key_change(self, user_id: str) -> None:
        directory.accept_key_change(self.st, user_id)
        await self.save()
        self.sink.trust_changed()

    # --- backup ----------------------------------------------------------------------------
    async def create_backup(
        self,
        *,
        passphrase: str | None = None,
        opslimit: int | None = None,
        memlimit: int | None = None,
    ) -> str:
        """New backup version; returns the recovery key text (or "" for a passphrase)."""
        async with self.lock:
            if passphrase is not None:
                ops = opslimit if opslimit is not None else PWHASH_OPSLIMIT_MODERATE
                mem = memlimit if memlimit is not None else PWHASH_MEMLIMIT_MODERATE
                bk, salt = backup.passphrase_key(
                    passphrase, opslimit=ops, memlimit=mem, rng=self._rng
                )
                body = backup.create_body(bk, salt=salt, opslimit=ops, memlimit=mem)
                text = ""
            else:
                bk, text = backup.new_recovery_key(self._rng)
                body = backup.create_body(bk, rng=self._rng)
            reply = await self._call(keys_api.create_backup(body))
            backup.enable(self.st, reply.version, bk)
            await self.save()
            await self._push_backup()
        return text

    async def _push_backup(self) -> None:
        while (body := backup.records_to_push(self.st)) is not None:
            await self._call(keys_api.put_backup_records(body))
            backup.pushed(self.st, body)
            await self.save()

    async def restore_backup(
        self,
        conversation_ids: list[bytes],
        *,
        recovery_key: str | None = None,
        passphrase: str | None = None,
    ) -> int:
        """Import backed-up keys for these conversations; returns the number of states."""
        async with self.lock:
            ver = await self._call(keys_api.backup_version())
            bk = backup.key_from_reply(ver, recovery_key=recovery_key, passphrase=passphrase)
            recs = await self._call(keys_api.backup_records(conversation_ids))
            n = backup.restore(self.st, bk, recs.records)
            backup.enable(self.st, ver.version, bk)
            await self.save()
            await self._retry_waiting()
        return n

    # --- the worker ------------------------------------------------------------------------
    async def _work(self) -> None:
        # ``while not closing``: even if a cancellation is lost inside a handler, the worker
        # ends after it (close() also queues a wake-up), so close() never waits on it forever
        while not self._closing:
            n = await self._inbox.get()
            if self._closing:
                return
            try:
                await self._handle(n)
                if isinstance(n, fx.Notification):
                    await self.sink.notification(n)
            except Exception as exc:  # keep processing; surfaced through .errors and the sink
                self.errors.append(exc)
                self.sink.error(exc)
            self._schedule_wake()

    def _schedule_wake(self) -> None:
        """(Re)arm the one timer for the next time the driver wants to act: a key request
        (``groups.next_key_request_ms``), key maintenance (``identity.keys_due_ms``) or a
        queued message to try again; when it fires, the worker does what is due."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._closing:
            return
        due = self.keys_due_ms()
        for t in (groups.next_key_request_ms(self.st), self._flush_at):
            if t is not None:
                due = min(due, t)
        delay = max(due - self.now(), 0) / 1000
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay, self._inbox.put_nowait, None)

    async def _due(self) -> None:
        """The timer fired: whatever is due now."""
        now = self.now()
        if now >= self.keys_due_ms():
            await self._maintain_keys_quietly()
        await self._send_due_key_requests()
        if self._flush_at is not None and now >= self._flush_at:
            self._flush_at = None
            if self.session.state is ConnectionState.ONLINE:
                await self.flush()

    async def _send_due_key_requests(self) -> None:
        async with self.lock:
            reqs = groups.key_requests(self.st, self.now(), rng=self._rng)
            await self.save()
            # offline or a slow directory: the backoff asks again later
            with contextlib.suppress(RequestError, KeyDirectoryError, TimeoutError):
                await self._send_pairwise(reqs)

    async def _handle(self, n: fx.Notification | _Rescan | None) -> None:
        if isinstance(n, _Rescan):
            await self._rescan()
        elif n is None:
            await self._due()
        elif isinstance(n, fx.ToDeviceStored):
            await self._catch_up_to_device()
        elif isinstance(n, fx.EntriesStored):
            entries = await self.store.entries(
                n.conversation_id, after=n.first - 1, limit=n.last - n.first + 1
            )
            await self._decrypt_entries(n.conversation_id, entries)
        elif isinstance(n, fx.MessageSent | fx.MessageFailed):
            await self._on_send_result(n)
        elif isinstance(n, fx.ConnectionChanged) and n.state is ConnectionState.ONLINE:
            await self._on_online()

    async def _on_online(self) -> None:
        if not self.ready:
            with contextlib.suppress(KeyDirectoryError):
                await self.publish_keys()
        await self._catch_up_to_device()
        await self.flush()
        async with self.lock:
            groups.rearm_key_requests(self.st)  # chains the backoff gave up on: once more
        await self._send_due_key_requests()
        await self._maintain_keys_quietly()
        await self._rescan()  # entries whose handling failed while offline

    async def _on_send_result(self, n: fx.MessageSent | fx.MessageFailed) -> None:
        async with self.lock:
            done = [p for p in self.st.pending if p.client_msg_id == n.client_msg_id]
            for p in done:
                self.st.pending.remove(p)
            await self.save()
        for p in done:
            if isinstance(n, fx.MessageSent):
                await self.sink.sent(p, n)
            else:
                await self.sink.send_failed(p, n)
        if done:
            self.sink.outgoing_changed(n.conversation_id)

    # --- receiving -------------------------------------------------------------------------
    async def _catch_up_to_device(self) -> None:
        if not self._process_td.is_set():
            return
        apps: list[tuple[str, int, content_mod.Content]] = []
        async with self.lock:
            items = await self.store.to_device_after(self.st.to_device_done)
            # a PreKeyMessage used one of our OPKs: look whether a refill is due
            prekey_msgs = any(it.body[:1] == b"\x03" for it in items)
            replies: list[tuple[str, int, content_mod.Content]] = []
            keys = resend = False
            for it in items:
                c = self.st.contacts.get(it.sender)
                if c is None or it.sender_device not in c.devices:
                    with contextlib.suppress(KeyDirectoryError, CryptoError):
                        await self.refresh_devlist(it.sender)
                res = device.handle_to_device(self.st, it.sender, it.sender_device, it.body,
                                              it.ts, self.now())  # fmt: skip
                self.st.to_device_done = it.seq
                await self.save()  # after decryption, before anything else (ack happened)
                replies += res.replies
                keys |= res.keys_changed
                resend |= res.resend_skdms
                if res.other is not None:
                    apps.append((it.sender, it.sender_device, res.other))
                if res.reset is not None:
                    with contextlib.suppress(KeyDirectoryError, CryptoError, RequestError,
                                             TimeoutError):  # fmt: skip
                        await self._reset(res.reset)
            with contextlib.suppress(RequestError, TimeoutError):
                await self._send_pairwise(replies)
            if keys:
                await self._retry_waiting()
                self._inbox.put_nowait(_RESCAN)  # after this batch: entries never handled
                if self.st.backup is not None:
                    with contextlib.suppress(KeyDirectoryError):
                        await self._push_backup()
        for sender, dev, content in apps:
            await self._dispatch(sender, dev, content)
        if resend or keys or items:
            await self.flush()
        if prekey_msgs:
            await self._maintain_keys_quietly()

    async def _dispatch(self, sender: str, dev: int, content: content_mod.Content) -> None:
        tag = type(content).__struct_config__.tag
        handler = self._handlers.get(str(tag))
        if handler is None:
            return
        try:
            out = handler(sender, dev, content)
            if out is not None:
                await out
        except Exception as exc:  # a feature's bug must not stop key handling
            self.errors.append(exc)
            self.sink.error(exc)

    async def _reset(self, r: pairwise.ResetNeeded) -> None:
        self.st.sessions.pop(st_mod.dev_key(r.user_id, r.device_id), None)
        await self._ensure_sessions([(r.user_id, r.device_id)])
        derr = device.derr_content(r, self.now(), self._rng)
        await self._send_pairwise([(r.user_id, r.device_id, derr)])

    async def _decrypt_entries(
        self, cid: bytes, entries: Sequence[ConvEntry], *, replay_is_failure: bool = False
    ) -> None:
        """``replay_is_failure``: an entry never handled that decrypts as a duplicate is a
        replay of an earlier message; say so instead of scanning it again forever."""
        gone: set[str] = set()
        joined: set[str] = set()
        async with self.lock:
            await self._know(cid)
            batch: list[Handled] = []
            for e in entries:
                b = e.body
                r: Result = None
                if isinstance(b, Message) and e.sender_device is not None:
                    r = groups.decrypt_entry(self.st, cid, e.seq, e.sender, e.sender_device,
                                             e.ts, b.envelope)  # fmt: skip
                    if r is None and replay_is_failure:
                        r = groups.Failed(cid, e.seq, e.sender, e.sender_device, e.ts,
                                          "DuplicateMessage")  # fmt: skip
                elif isinstance(b, Membership):
                    if b.action == MembershipAction.LEFT:
                        gone |= {b.actor, *b.targets}
                    elif b.action == MembershipAction.REMOVED:
                        gone |= set(b.targets)
                    elif b.action == MembershipAction.JOINED and b.targets == [b.actor]:
                        joined.add(b.actor)  # accepted an invitation
                batch.append(Handled(e, r))
            await self.save()
            await self.sink.entries(cid, batch)
            reqs = groups.key_requests(self.st, self.now(), rng=self._rng)
            await self.save()
            with contextlib.suppress(RequestError, TimeoutError):
                await self._send_pairwise(reqs)
            rekey = self._drop_members(cid, gone - {self.user_id})
            rekey = self._add_members(cid, joined - {self.user_id}) or rekey
            if rekey:
                await self.save()
        if rekey:
            await self.flush()

    async def _rescan(self) -> None:
        """Stored entries the E2E layer never handled: the local store saves an entry (and
        moves its cursor) BEFORE the worker decrypts it, so a process that ended in between,
        or a handler that failed (e.g. offline), left them behind."""
        # every conversation with stored entries has a cursor (the engine's copy: reading the
        # store's would race its writes)
        for cid in sorted(self.session.engine.cursors.conversations):
            async with self.lock:
                have = await self.sink.handled_seqs(cid)
            missing: list[ConvEntry] = []
            after = 0
            while page := await self.store.entries(cid, after=after, limit=RESCAN_PAGE):
                missing += [e for e in page if isinstance(e.body, Message)
                            and e.sender_device is not None and e.seq not in have]  # fmt: skip
                after = page[-1].seq
            if missing:
                # offline (an unknown conversation needs ConvGet): the next "online" rescans
                with contextlib.suppress(RequestError, TimeoutError):
                    await self._decrypt_entries(cid, missing, replay_is_failure=True)

    async def _retry_waiting(self) -> None:
        """Messages waiting for a key that may have arrived (lock held)."""
        by_cid: dict[bytes, list[Handled]] = {}
        for r in groups.retry_waiting(self.st):
            by_cid.setdefault(r.conversation_id, []).append(Handled(None, r))
        await self.save()
        for cid, batch in by_cid.items():
            await self.sink.entries(cid, batch)

    async def retry_requests(self) -> None:
        """Send key requests again for messages still waiting (ignoring the backoff)."""
        async with self.lock:
            reqs = groups.key_requests(self.st, self.now(), min_interval_ms=0, rng=self._rng)
            await self.save()
            await self._send_pairwise(reqs)
