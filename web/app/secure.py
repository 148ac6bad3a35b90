"""End-to-end encrypted messaging in the browser: the I/O glue around ``parley.client.e2e``.

The same flow as the CPython reference (``parley_client.e2e_client``), over the
browser's edges: the key directory through fetch (``keydir``), to-device and conversation
entries through the engine ``Session`` over the WebSocket, and the E2E state, decrypted rows and
chat summaries SEALED in IndexedDB (``local_store``).

Nothing is ever put into an envelope unencrypted: ``send_text`` queues a content; it is
encrypted only once every key is there (else it stays "waiting for keys" and is retried), and
the E2E state that advanced a chain is committed to IndexedDB BEFORE the ciphertext is handed to
the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import msgspec

from app.chats import Chat, Outgoing, Ref, Row, chat_dec, row_dec, row_enc
from app.keydir import KeyDirectory, KeyDirectoryError
from app.local_store import WebStore
from parley.client import effects as fx
from parley.client.e2e import device, directory, groups, identity, pairwise
from parley.client.e2e import state as st_mod
from parley.client.e2e.state import E2EState, PendingSend
from parley.client.model import ConnectionState
from parley.client.session import RequestError, Session
from parley.crypto import content as content_mod
from parley.crypto.errors import CryptoError
from parley.protocol import keys as kproto
from parley.protocol.ops import (
    Conversation,
    ConversationPage,
    ConvGet,
    ConvList,
    DirectOpen,
    GroupCreate,
    GroupInvite,
    GroupLeave,
    ToDeviceMessage,
    ToDeviceSend,
)
from parley.protocol.records import (
    ConversationInfo,
    Membership,
    MembershipAction,
    Message,
    MessageRecalled,
    Recalled,
    RefKind,
)
from parley.protocol.social import ReadMark, Recall, RecallDone
from parley.protocol.types import Role

REQUEST_RETRY_S = 2.0
OP_TIMEOUT_S = 15.0

Listener = Callable[[str, bytes | None], None]
"""``(what, conversation_id)``: ``chats``, ``rows``, ``members``, ``outgoing``, ``trust``."""


def now_ms() -> int:
    return int(time.time() * 1000)


class EncryptionNotReady(Exception):
    """The device's keys are not published yet: nothing can be sent (never in plaintext)."""


class Messenger:
    def __init__(
        self, store: WebStore, session: Session, keydir: KeyDirectory, user_id: str, device_id: int
    ) -> None:
        self.store = store
        self.session = session
        self.keys = keydir
        self.user_id = user_id
        self.device_id = device_id
        self.st: E2EState = identity.new_device(user_id, device_id, aik_seed=None, now=now_ms())
        self.chats: dict[bytes, Chat] = {}
        self.names: dict[str, str] = {}
        self.failed: dict[str, Outgoing] = {}
        self._failed_cid: dict[str, bytes] = {}
        self._read_marked: dict[bytes, int] = {}
        self.refs: dict[str, Ref] = {}  # local_id -> reply/mentions of a pending message
        self.open_cid: bytes | None = None
        self.ready = False  # keys published: sending possible
        self.link_needed = False  # a second device of the account, not linked
        self.errors: list[BaseException] = []
        self._listeners: list[Listener] = []
        self._lock = asyncio.Lock()
        self._inbox: asyncio.Queue[fx.Notification] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    # --- persistence -----------------------------------------------------------------------
    async def load(self) -> None:
        """Everything cached on this device (before any network: the chat list shows now)."""
        raw = await self.store.get_sealed("e2e")
        if raw is not None:
            self.st = st_mod.loads(raw)
        names = await self.store.get_sealed("names")
        if names is not None:
            self.names = msgspec.msgpack.decode(names, type=dict[str, str])
        refs = await self.store.get_sealed("refs")
        if refs is not None:
            self.refs = msgspec.msgpack.decode(refs, type=dict[str, Ref])
        for blob in await self.store.all_convs():
            try:
                c = chat_dec.decode(blob)
            except msgspec.DecodeError:  # a summary is a cache: rebuilt from the server's list
                continue
            self.chats[c.cid] = c

    async def save(self) -> None:
        """Commit the E2E state (BEFORE anything it produced leaves the device)."""
        await self.store.put_sealed("e2e", st_mod.dumps(self.st))

    async def _save_refs(self) -> None:
        await self.store.put_sealed("refs", msgspec.msgpack.encode(self.refs))

    async def _save_chat(self, c: Chat) -> None:
        self.chats[c.cid] = c
        await self.store.put_conv(c.cid, row_enc.encode(c))

    async def remember_names(self, pairs: dict[str, str]) -> None:
        fresh = {k: v for k, v in pairs.items() if self.names.get(k) != v}
        if fresh:
            self.names.update(fresh)
            await self.store.put_sealed("names", msgspec.msgpack.encode(self.names))
            self._emit("chats", None)

    def on_change(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def _emit(self, what: str, cid: bytes | None) -> None:
        for fn in self._listeners:
            try:
                fn(what, cid)
            except Exception as exc:  # a UI bug must not stop message processing
                self.errors.append(exc)

    # --- key directory ---------------------------------------------------------------------
    async def publish_keys(self) -> None:
        """First start of this device: account key (first device), device list, prekeys.
        ``ready`` only once the server took both (the state's own "published" flag is set
        before the upload). A second device of an account gets 409 account_key_changed:
        it needs linking from a device that holds the account key (``link_needed``)."""
        if await self.store.get_sealed("keys_published") == b"1":
            self.ready = True
            return
        if self.st.own.aik_seed is None:
            identity.create_account_key(self.st)
        body = identity.devlist_with_self(self.st, now_ms())
        await self.save()
        try:
            await self.keys.call("PUT", "/devicelist", body, kproto.DeviceListReply)
        except KeyDirectoryError as e:
            self.link_needed = e.status == 409
            raise
        new = identity.new_opks(self.st, kproto.OPK_LOW_WATER * 2)
        await self.save()  # private halves stored before the public ones are published
        await self.keys.call(
            "PUT", "/device", identity.upload_body(self.st, new), kproto.OpkCountReply
        )
        await self.save()
        await self.store.put_sealed("keys_published", b"1")
        self.ready = True
        self._emit("trust", None)

    async def refresh_devlist(self, user_id: str) -> list[st_mod.Notice]:
        try:
            reply = await self.keys.call(
                "GET", f"/users/{user_id}/devicelist", None, kproto.DeviceListReply
            )
        except KeyDirectoryError as e:
            if e.status == 404:
                return []
            raise
        notices = directory.accept_device_list(self.st, reply, now_ms())
        await self.save()
        if notices:
            self._emit("trust", None)
        return notices

    async def _ensure_sessions(self, devices: list[tuple[str, int]]) -> None:
        missing = [d for d in devices if not pairwise.has_session(self.st, *d)]
        for user in sorted({u for u, _ in missing}):
            reply = await self.keys.call("GET", f"/users/{user}/bundles", None, kproto.BundlesReply)
            want = {d for u, d in missing if u == user}
            for b in reply.bundles:
                if b.device_id not in want:
                    continue
                try:
                    vb = directory.verify_bundle(self.st, b)
                except CryptoError:
                    continue
                pairwise.initiate(self.st, vb, now_ms())
        await self.save()

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the session (cached state first); publishing keys may wait for the network."""
        self.session.add_listener(self._inbox.put_nowait)
        self._worker = asyncio.ensure_future(self._work())
        await self.session.start()
        with contextlib.suppress(KeyDirectoryError):
            await self.publish_keys()

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._worker
        await self.session.stop()
        await self.save()
        await self.store.close()

    # --- conversations ---------------------------------------------------------------------
    def title(self, cid: bytes) -> str:
        v = groups.view(self.st, cid)
        c = self.chats.get(cid)
        if c is not None and c.kind == "group":
            return (v.name if v is not None and v.name else "") or "…"
        members = (v.members if v is not None else []) or (c.members if c else [])
        others = [m for m in members if m != self.user_id]
        return ", ".join(self.name(m) for m in others) or "…"

    def name(self, user_id: str) -> str:
        return self.names.get(user_id, user_id[:8])

    async def _note(self, info: ConversationInfo) -> Chat:
        creator = next((m.user_id for m in info.members if m.role == Role.OWNER), "")
        members = [m.user_id for m in info.members]
        groups.note_conversation(self.st, info.conversation_id, info.kind.value, members, creator)
        await self.save()
        c = self.chats.get(info.conversation_id) or Chat(info.conversation_id, info.kind.value)
        c.members = members
        c.left = False
        await self._save_chat(c)
        self._emit("chats", info.conversation_id)
        return c

    async def _know(self, cid: bytes) -> None:
        if groups.view(self.st, cid) is None:
            r = await self.session.request(ConvGet(conversation_id=cid), OP_TIMEOUT_S)
            assert isinstance(r, Conversation)
            await self._note(r.info)

    async def info(self, cid: bytes) -> ConversationInfo:
        r = await self.session.request(ConvGet(conversation_id=cid), OP_TIMEOUT_S)
        assert isinstance(r, Conversation)
        return r.info

    async def refresh_conversations(self) -> None:
        """Every conversation we are in (server routing lists) into the chat list."""
        after: bytes | None = None
        for _ in range(50):  # bounded: 50 pages of 200
            page = await self.session.request(ConvList(after=after), OP_TIMEOUT_S)
            assert isinstance(page, ConversationPage)
            async with self._lock:
                for info in page.conversations:
                    await self._note(info)
            if page.next is None:
                break
            after = page.next

    async def open_direct(self, user_id: str) -> bytes:
        r = await self.session.request(DirectOpen(user_id=user_id), OP_TIMEOUT_S)
        assert isinstance(r, Conversation)
        async with self._lock:
            await self._note(r.info)
        return r.info.conversation_id

    async def create_group(self, members: list[str], name: str) -> bytes:
        """Server routing list + our E2E view; the name travels only inside the encrypted
        ``group_update`` content (the server's ``meta`` stays empty)."""
        self._require_ready()
        r = await self.session.request(GroupCreate(members=members, meta=b""), OP_TIMEOUT_S)
        assert isinstance(r, Conversation)
        cid = r.info.conversation_id
        async with self._lock:
            await self._note(r.info)
            gu = groups.set_group_view(self.st, cid, members, [], name)
            device.queue(self.st, cid, msgspec.structs.replace(gu, ts=now_ms()), now_ms())
            await self.save()
        await self.flush()
        return cid

    async def invite(self, cid: bytes, user_ids: list[str]) -> None:
        self._require_ready()
        await self.session.request(GroupInvite(conversation_id=cid, user_ids=user_ids))
        async with self._lock:
            v = groups.view(self.st, cid)
            if v is not None:
                gu = groups.set_group_view(
                    self.st, cid, sorted(set(v.members) | set(user_ids)), v.admins, v.name
                )
                device.queue(self.st, cid, msgspec.structs.replace(gu, ts=now_ms()), now_ms())
                await self.save()
        await self.flush()

    async def leave(self, cid: bytes) -> None:
        await self.session.request(GroupLeave(conversation_id=cid), OP_TIMEOUT_S)
        c = self.chats.get(cid)
        if c is not None:
            c.left = True
            await self._save_chat(c)
        self._emit("chats", cid)

    # --- sending ---------------------------------------------------------------------------
    def _require_ready(self) -> None:
        if not self.ready:
            raise EncryptionNotReady("encryption not ready")

    async def send_text(self, cid: bytes, text: str, ref: Ref | None = None) -> str:
        """Queue a text (a reply and mentions in ``ref``); it leaves once encrypted."""
        self._require_ready()
        c = content_mod.Text(id=pairwise.new_id(), ts=now_ms(), body=text)
        async with self._lock:
            await self._know(cid)
            p = device.queue(self.st, cid, c, now_ms())
            if ref is not None and (ref.reply_to or ref.mentions):
                self.refs[p.local_id] = ref
                await self._save_refs()
            await self.save()
        self._emit("outgoing", cid)
        await self.flush()
        return p.local_id

    async def retry(self, local_id: str) -> str | None:
        """A failed message, again (a new id: the server refused the old one for good)."""
        out = self.failed.pop(local_id, None)
        cid = self._failed_cid.pop(local_id, None)
        if out is None or cid is None:
            return None
        return await self.send_text(cid, out.text)

    def outgoing(self, cid: bytes) -> list[Outgoing]:
        out = []
        for p in self.st.pending:
            if p.conversation_id != cid:
                continue
            c = device.content_of(p)
            if not isinstance(c, content_mod.Text):
                continue
            # "waiting for keys" only when keys are known to be missing (not merely offline)
            state = "waiting_for_keys" if p.stage == "waiting" and p.reason else "sending"
            out.append(Outgoing(p.local_id, c.body, p.created_ms, state, p.reason))
        out += [o for lid, o in self.failed.items() if self._failed_cid.get(lid) == cid]
        return sorted(out, key=lambda o: o.ts)

    async def flush(self) -> None:
        async with self._lock:
            for p in list(self.st.pending):
                # each failure leaves the message queued at its stage; retried when online
                with contextlib.suppress(
                    KeyDirectoryError, CryptoError, groups.MissingKeys, RequestError, TimeoutError
                ):
                    await self._advance(p)
        self._emit("outgoing", None)

    async def _advance(self, p: PendingSend) -> None:
        if p.stage == "waiting":
            await self._refresh_members(p.conversation_id)
            await self._ensure_sessions(groups.target_devices(self.st, p.conversation_id))
            try:
                device.prepare(self.st, p, now_ms())
            except groups.MissingKeys as e:
                p.reason = str(e)
                await self.save()
                raise
            await self.save()  # chain advanced: durable before the ciphertext leaves
        if p.stage == "encrypted":
            if p.to_device:
                await self.session.request(ToDeviceSend(messages=[
                    ToDeviceMessage(t.user_id, t.device_id, t.body) for t in p.to_device
                ]), OP_TIMEOUT_S)  # fmt: skip
            p.stage, p.to_device = "skdm_sent", []
            await self.save()
        if p.stage == "skdm_sent":
            # the client_msg_id is the local id: a retry after a crash is deduplicated
            # (the engine persists it in its outbox first: a crash before the save below
            # re-sends the same id from this stage, which the outbox and the server dedupe)
            ref = self.refs.get(p.local_id) or Ref()
            p.client_msg_id = p.local_id
            await self.session.send_message(
                p.conversation_id, p.envelope, track=False, client_msg_id=p.local_id,
                created_ms=p.created_ms, ref_seq=ref.reply_to or None,
                ref_kind=RefKind.REPLY if ref.reply_to else None, mentions=ref.mentions,
            )  # fmt: skip
            p.stage = "queued"
            await self.save()

    async def _refresh_members(self, cid: bytes) -> None:
        v = groups.view(self.st, cid)
        for u in sorted(set(v.members if v else []) | {self.user_id}):
            await self.refresh_devlist(u)

    async def remove_device(self, device_id: int) -> None:
        """Publish our device list without ``device_id`` (it gets no new keys from now on)."""
        async with self._lock:
            await self.refresh_devlist(self.user_id)  # build on the newest verified version
            body = identity.devlist_without(self.st, device_id, now_ms())
            await self.save()
            await self.keys.call("PUT", "/devicelist", body, kproto.DeviceListReply)
            await self.save()

    # --- trust -----------------------------------------------------------------------------
    def safety_number(self, user_id: str) -> str:
        return directory.safety_number(self.st, user_id)

    async def mark_verified(self, user_id: str) -> None:
        directory.mark_verified(self.st, user_id)
        await self.save()

    # --- receiving -------------------------------------------------------------------------
    async def _work(self) -> None:
        while True:
            try:
                n = await asyncio.wait_for(self._inbox.get(), REQUEST_RETRY_S)
            except TimeoutError:
                if self.st.waiting:  # never "unable to decrypt" forever: ask again
                    with contextlib.suppress(KeyDirectoryError, CryptoError, RequestError):
                        await self.retry_requests(int(REQUEST_RETRY_S * 1000))
                if self.st.pending and self.session.state is ConnectionState.ONLINE:
                    await self.flush()
                continue
            try:
                await self._handle(n)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep processing; visible in the console
                self.errors.append(exc)
                import js  # type: ignore[import-not-found]

                js.console.warn(f"e2e: {exc!r}")

    async def _handle(self, n: fx.Notification) -> None:
        if isinstance(n, fx.ToDeviceStored):
            await self._catch_up_to_device()
        elif isinstance(n, fx.EntriesStored):
            await self._on_entries(n.conversation_id, n.first, n.last)
        elif isinstance(n, fx.MessageSent):
            await self._on_sent(n)
        elif isinstance(n, fx.MessageFailed):
            async with self._lock:
                for p in list(self.st.pending):
                    if p.client_msg_id == n.client_msg_id:
                        self.st.pending.remove(p)
                        c = device.content_of(p)
                        text = c.body if isinstance(c, content_mod.Text) else ""
                        self.failed[p.local_id] = Outgoing(
                            p.local_id, text, p.created_ms, "failed", n.code
                        )
                        self._failed_cid[p.local_id] = p.conversation_id
                await self.save()
            self._emit("outgoing", n.conversation_id)
        elif isinstance(n, fx.EventsStored):
            for e in n.events:
                if isinstance(e.body, MessageRecalled):
                    b = e.body
                    await self._mark_recalled(b.conversation_id, [b.seq, *b.also])
        elif isinstance(n, fx.ConversationAdded):
            async with self._lock:  # also a re-invite to a chat we had left: note it again
                await self._note(await self.info(n.conversation_id))
        elif isinstance(n, fx.ConversationRemoved):
            chat = self.chats.get(n.conversation_id)
            if chat is not None:
                chat.left = True
                await self._save_chat(chat)
                self._emit("chats", n.conversation_id)
        elif isinstance(n, fx.ConnectionChanged) and n.state is ConnectionState.ONLINE:
            if not self.ready:
                with contextlib.suppress(KeyDirectoryError):
                    await self.publish_keys()
            with contextlib.suppress(RequestError):
                await self.refresh_conversations()
            await self._catch_up_to_device()
            await self.flush()

    async def _on_sent(self, n: fx.MessageSent) -> None:
        async with self._lock:
            for p in list(self.st.pending):
                if p.client_msg_id == n.client_msg_id:
                    self.st.pending.remove(p)
                    c = device.content_of(p)
                    ref = self.refs.pop(p.local_id, None)
                    if ref is not None:
                        await self._save_refs()
                    if isinstance(c, content_mod.Text):
                        row = Row(n.seq, self.user_id, n.ts, "decrypted", c.body, self.device_id)
                        row.quote = ref.quote if ref is not None else ""
                        await self.store.put_rows(n.conversation_id, [(n.seq, row_enc.encode(row))])
                        await self._bump_chat(n.conversation_id, [row])
            await self.save()
        self._emit("rows", n.conversation_id)
        self._emit("outgoing", n.conversation_id)

    async def _catch_up_to_device(self) -> None:
        async with self._lock:
            items = await self.store.to_device_after(self.st.to_device_done)
            replies: list[tuple[str, int, content_mod.Content]] = []
            keys = resend = False
            for it in items:
                known = it.sender in self.st.contacts and \
                    it.sender_device in self.st.contacts[it.sender].devices  # fmt: skip
                if not known:
                    with contextlib.suppress(KeyDirectoryError, CryptoError):
                        await self.refresh_devlist(it.sender)
                res = device.handle_to_device(
                    self.st, it.sender, it.sender_device, it.body, it.ts, now_ms()
                )
                self.st.to_device_done = it.seq
                await self.save()
                replies += res.replies
                keys |= res.keys_changed
                resend |= res.resend_skdms
                if res.reset is not None:
                    with contextlib.suppress(KeyDirectoryError, CryptoError):
                        await self._reset(res.reset)
            await self._send_pairwise(replies)
            if keys:
                await self._retry_waiting()
        if resend or keys or items:
            await self.flush()

    async def _reset(self, r: pairwise.ResetNeeded) -> None:
        self.st.sessions.pop(st_mod.dev_key(r.user_id, r.device_id), None)
        await self._ensure_sessions([(r.user_id, r.device_id)])
        await self._send_pairwise([(r.user_id, r.device_id, device.derr_content(r, now_ms()))])

    async def _send_pairwise(self, msgs: list[tuple[str, int, content_mod.Content]]) -> None:
        if not msgs:
            return
        with contextlib.suppress(KeyDirectoryError):
            await self._ensure_sessions([(u, d) for u, d, _ in msgs])
        out = []
        for u, d, c in msgs:
            with contextlib.suppress(CryptoError):
                t = pairwise.encrypt(self.st, u, d, c, now_ms())
                out.append(ToDeviceMessage(t.user_id, t.device_id, t.body))
        await self.save()  # ratchets advanced: durable before sending
        if out:
            await self.session.request(ToDeviceSend(messages=out), OP_TIMEOUT_S)

    async def _on_entries(self, cid: bytes, first: int, last: int) -> None:
        entries = await self.store.entries(cid, after=first - 1, limit=last - first + 1)
        rows: list[Row] = []
        gone: set[str] = set()
        membership = False
        async with self._lock:
            await self._know(cid)
            for e in entries:
                b = e.body
                if isinstance(b, Membership):
                    membership = True
                    named = [b.actor] if b.action == MembershipAction.CREATED else b.targets
                    who = ", ".join(self.name(u) for u in named) or self.name(b.actor)
                    rows.append(Row(e.seq, b.actor, e.ts, "system", f"{b.action.value}:{who}"))
                    if b.action == MembershipAction.LEFT:
                        gone |= {b.actor, *b.targets}
                    elif b.action == MembershipAction.REMOVED:
                        gone |= set(b.targets)
                    continue
                if isinstance(b, Recalled):
                    rows.append(Row(e.seq, e.sender, e.ts, "recalled"))
                    continue
                if not isinstance(b, Message) or e.sender_device is None:
                    continue
                if e.sender == self.user_id and e.sender_device == self.device_id:
                    continue  # our own: its row was written when the server stored it
                r = groups.decrypt_entry(
                    self.st, cid, e.seq, e.sender, e.sender_device, e.ts, b.envelope
                )
                row = self._row_of(r)
                if row is not None:
                    row.mentions_me = self.user_id in b.mentions
                    if b.ref_kind == RefKind.REPLY and b.ref_seq is not None:
                        row.quote = await self._quote(cid, b.ref_seq, rows)
                    rows.append(row)
            await self.save()
            await self._store_rows(cid, rows)
            reqs = groups.key_requests(self.st, now_ms())
            await self.save()
            await self._send_pairwise(reqs)
            rekey = self._drop_members(cid, gone - {self.user_id})
        if membership:
            self._emit("members", cid)
        if rekey:
            await self.flush()

    async def _quote(self, cid: bytes, seq: int, batch: list[Row]) -> str:
        """The start of the text a reply answers (from this batch or the stored rows)."""
        found = [r for r in batch if r.seq == seq]
        if not found:
            found = [row_dec.decode(b) for _, b in await self.store.rows(cid, seq, seq)]
        return found[0].text[:80] if found and found[0].state == "decrypted" else "…"

    def _drop_members(self, cid: bytes, gone: set[str]) -> bool:
        """Someone left or was removed: an admin publishes the new membership view (§7.5,
        which also rotates our sender key). Returns True when a group update was queued."""
        v = groups.view(self.st, cid)
        if not gone or v is None or v.kind != "group" or not gone & set(v.members):
            return False
        if self.user_id not in v.admins:
            return False
        members = [u for u in v.members if u not in gone]
        admins = [u for u in v.admins if u not in gone]
        gu = groups.set_group_view(self.st, cid, members, admins, v.name)
        device.queue(self.st, cid, msgspec.structs.replace(gu, ts=now_ms()), now_ms())
        return True

    def _row_of(self, r: groups.Received | groups.Failed | st_mod.Waiting | None) -> Row | None:
        if isinstance(r, groups.Received):
            c = r.content
            if isinstance(c, content_mod.Text):
                return Row(r.seq, r.sender, r.ts, "decrypted", c.body, r.sender_device)
            if isinstance(c, content_mod.GroupUpdate):
                self._emit("chats", r.conversation_id)
                return Row(r.seq, r.sender, r.ts, "system", f"group_update:{c.name}")
            return None
        if isinstance(r, groups.Failed):
            return Row(r.seq, r.sender, r.ts, "failed", "", r.sender_device)
        if isinstance(r, st_mod.Waiting):
            return Row(r.seq, r.sender, r.ts, "waiting", "", r.sender_device)
        return None

    async def _store_rows(self, cid: bytes, rows: list[Row]) -> None:
        if not rows:
            return
        await self.store.put_rows(cid, [(r.seq, row_enc.encode(r)) for r in rows])
        await self._bump_chat(cid, rows)
        self._emit("rows", cid)

    async def _bump_chat(self, cid: bytes, rows: list[Row]) -> None:
        c = self.chats.get(cid) or Chat(cid, "direct")
        for r in rows:
            if r.seq <= c.read_seq and r.state != "decrypted":
                continue
            if r.seq >= c.last_seq and r.state in ("decrypted", "waiting", "recalled"):
                c.last_seq, c.last_ts = r.seq, r.ts
                c.last_text = r.text if r.state == "decrypted" else ""
                c.last_state = r.state
            if r.sender != self.user_id and r.seq > c.read_seq and r.state != "system":
                if cid == self.open_cid:
                    c.read_seq = max(c.read_seq, r.seq)
                else:
                    c.unread += 1
        await self._save_chat(c)
        self._emit("chats", cid)

    async def mark_read(self, cid: bytes) -> None:
        c = self.chats.get(cid)
        if c is not None and (c.unread or c.read_seq < c.last_seq):
            c.unread = 0
            c.read_seq = max(c.read_seq, c.last_seq)
            await self._save_chat(c)
            self._emit("chats", cid)

    async def _retry_waiting(self) -> None:
        by_cid: dict[bytes, list[Row]] = {}
        for r in groups.retry_waiting(self.st):
            row = self._row_of(r)
            if row is not None:
                by_cid.setdefault(r.conversation_id, []).append(row)
        await self.save()
        for cid, rows in by_cid.items():
            await self._store_rows(cid, rows)

    async def retry_requests(self, min_interval_ms: int = 0) -> None:
        async with self._lock:
            reqs = groups.key_requests(self.st, now_ms(), min_interval_ms=min_interval_ms)
            await self.save()
            await self._send_pairwise(reqs)

    # --- recall and read marks -------------------------------------------------------------
    async def recall(self, cid: bytes, seq: int) -> None:
        """Turn our message into a tombstone everywhere (raises RequestError, e.g. too_late)."""
        r = await self.session.request(Recall(conversation_id=cid, seq=seq), OP_TIMEOUT_S)
        assert isinstance(r, RecallDone)
        await self._mark_recalled(cid, [r.seq, *r.also])

    async def _mark_recalled(self, cid: bytes, seqs: list[int]) -> None:
        """Purge the plaintext of recalled rows (even in a chat never opened)."""
        have = {
            seq: row_dec.decode(b) for seq, b in await self.store.rows(cid, min(seqs), max(seqs))
        }
        rows = [Row(seq, have[seq].sender, have[seq].ts, "recalled") for seq in seqs if seq in have]
        if not rows:
            return
        await self.store.put_rows(cid, [(r.seq, row_enc.encode(r)) for r in rows])
        c = self.chats.get(cid)
        if c is not None and c.last_seq in seqs:
            c.last_text, c.last_state = "", "recalled"
            await self._save_chat(c)
        self._emit("chats", cid)
        self._emit("rows", cid)

    async def send_read_mark(self, cid: bytes) -> None:
        """Tell the server (and so our other devices and, with receipts on, the others)."""
        c = self.chats.get(cid)
        if c is None or c.last_seq <= self._read_marked.get(cid, 0):
            return
        self._read_marked[cid] = c.last_seq
        with contextlib.suppress(RequestError, TimeoutError):
            await self.session.request(ReadMark(conversation_id=cid, seq=c.last_seq), OP_TIMEOUT_S)

    # --- reading ---------------------------------------------------------------------------
    async def row_seqs(self, cid: bytes) -> list[int]:
        return await self.store.row_seqs(cid)

    async def rows(self, cid: bytes, lo: int, hi: int) -> list[Row]:
        return [row_dec.decode(b) for _, b in await self.store.rows(cid, lo, hi)]
