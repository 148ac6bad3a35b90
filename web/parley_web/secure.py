"""End-to-end encrypted messaging in the browser: the browser shell of the one E2E driver
(``parley.client.e2e_driver``), which the CPython client shares.

The driver does the E2E work (key publishing and maintenance: OPK refill, SPK rotation; the
key-request backoff; the re-scan of entries stored but never decrypted; key backup; to-device
messages). This shell gives it the browser's edges (the key directory through fetch,
``keydir``; the E2E state SEALED in IndexedDB, ``local_store``) and keeps what is the browser's
own: decrypted rows and chat summaries (sealed too), names, our failed sends, read marks and
recall, and the change events the UI listens to.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import msgspec

from parley.client import effects as fx
from parley.client.e2e import device, groups
from parley.client.e2e import state as st_mod
from parley.client.e2e.state import E2EState, PendingSend, SendStage
from parley.client.e2e_driver import (
    OP_TIMEOUT_S,
    E2EDriver,
    EncryptionNotReady,
    Handled,
    ResultSink,
)
from parley.client.message_state import MessageState
from parley.client.model import ConnectionState
from parley.client.session import RequestError, Session
from parley.crypto import content as content_mod
from parley.crypto.attachments import AttachmentPointer
from parley.protocol.ops import ConversationPage, ConvList, GroupLeave
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
from parley_web import edits
from parley_web.attachment_view import attachment_row
from parley_web.chats import Chat, Outgoing, Ref, Row, chat_dec, row_dec, row_enc
from parley_web.keydir import KeyDirectory
from parley_web.local_store import WebStore

__all__ = ["EncryptionNotReady", "Messenger"]

Listener = Callable[[str, bytes | None], None]
"""``(what, conversation_id)``: ``chats``, ``rows``, ``members``, ``outgoing``, ``trust``."""

DUPLICATE = "DuplicateMessage"
PUBLISHED = "keys_published"
"""Sealed record: the server took this device's list and keys."""


class _SealedState:
    """The driver's ``StateStore``: the E2E state as one sealed IndexedDB record."""

    def __init__(self, store: WebStore) -> None:
        self.store = store

    async def load_state(self) -> bytes | None:
        return await self.store.get_sealed("e2e")

    async def save_state(self, blob: bytes) -> None:
        await self.store.put_sealed("e2e", blob)


class Messenger(ResultSink):
    def __init__(
        self, store: WebStore, session: Session, keydir: KeyDirectory, user_id: str, device_id: int
    ) -> None:
        self.store = store
        self.session = session
        self.user_id = user_id
        self.device_id = device_id
        self.driver = E2EDriver(session, keydir.call, _SealedState(store), self, user_id,
                                device_id)  # fmt: skip
        self.chats: dict[bytes, Chat] = {}
        self.names: dict[str, str] = {}
        self.failed: dict[str, Outgoing] = {}
        self._failed_cid: dict[str, bytes] = {}
        self._read_marked: dict[bytes, int] = {}
        self.refs: dict[str, Ref] = {}  # local_id -> the quote of a pending reply
        self.open_cid: bytes | None = None
        self._listeners: list[Listener] = []
        self._published = False
        self.folds = edits.Folds(self)  # edits and reactions, folded into their target rows

    @property
    def st(self) -> E2EState:
        return self.driver.st

    @property
    def ready(self) -> bool:
        """Keys published: sending possible."""
        return self.driver.ready

    @property
    def link_needed(self) -> bool:
        """A further device of the account, not linked."""
        return self.driver.link_needed

    @property
    def errors(self) -> list[BaseException]:
        return self.driver.errors

    # --- persistence -----------------------------------------------------------------------
    async def load(self) -> None:
        """Everything cached on this device (before any network: the chat list shows now)."""
        await self.driver.load()
        self._published = await self.store.get_sealed(PUBLISHED) is not None
        if self.st.own.published_devlist and not self._published:
            # written by a version that set the flag before the server took the list (a second
            # device got 409 then): publish again, the driver finds out
            self.st.own.published_devlist = False
        names = await self.store.get_sealed("names")
        if names is not None:
            self.names = msgspec.msgpack.decode(names, type=dict[str, str])
        refs = await self.store.get_sealed("refs")
        if refs is not None:
            self.refs = msgspec.msgpack.decode(refs, type=dict[str, Ref])
        await self.folds.load()
        for blob in await self.store.all_convs():
            try:
                c = chat_dec.decode(blob)
            except msgspec.DecodeError:  # a summary is a cache: rebuilt from the server's list
                continue
            self.chats[c.cid] = c

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

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start from the cached state; publishing keys may wait for the network."""
        await self.driver.start()
        await self._note_published()

    async def _note_published(self) -> None:
        """Remember that the server took our device list (see ``load``)."""
        if self.ready and not self._published:
            await self.store.put_sealed(PUBLISHED, b"1")
            self._published = True

    async def close(self) -> None:
        await self.driver.close()
        await self.store.close()

    async def refresh_devlist(self, user_id: str) -> list[st_mod.Notice]:
        async with self.driver.lock:
            return await self.driver.refresh_devlist(user_id)

    async def remove_device(self, device_id: int) -> None:
        """Publish our device list without ``device_id`` (it gets no new keys from now on)."""
        await self.driver.remove_device(device_id)

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

    async def info(self, cid: bytes) -> ConversationInfo:
        return await self.driver.info(cid)

    async def refresh_conversations(self) -> None:
        """Every conversation we are in (server routing lists) into the chat list."""
        after: bytes | None = None
        for _ in range(50):  # bounded: 50 pages of 200
            page = await self.session.request(ConvList(after=after), OP_TIMEOUT_S)
            assert isinstance(page, ConversationPage)
            for info in page.conversations:
                await self.driver.note(info)
            if page.next is None:
                break
            after = page.next

    async def open_direct(self, user_id: str) -> bytes:
        return await self.driver.open_direct(user_id)

    async def create_group(self, members: list[str], name: str) -> bytes:
        """Server routing list + our E2E view; the name travels only inside the encrypted
        ``group_update`` content (the server's ``meta`` stays empty)."""
        return await self.driver.create_group(members, name)

    async def invite(self, cid: bytes, user_ids: list[str]) -> None:
        await self.driver.invite(cid, user_ids)

    async def leave(self, cid: bytes) -> None:
        await self.session.request(GroupLeave(conversation_id=cid), OP_TIMEOUT_S)
        c = self.chats.get(cid)
        if c is not None:
            c.left = True
            await self._save_chat(c)
        self._emit("chats", cid)

    # --- sending ---------------------------------------------------------------------------
    async def send_text(self, cid: bytes, text: str, ref: Ref | None = None) -> str:
        """Queue a text (a reply and mentions in ``ref``); it leaves once encrypted."""
        if not self.ready:
            raise EncryptionNotReady("encryption not ready")
        c = content_mod.Text(id=self.driver.new_id(), ts=self.driver.now(), body=text)
        if ref is not None and ref.reply_to:
            self.refs[c.id] = ref  # the quote for our own row once the server stored it
            await self._save_refs()
        mentions = ref.mentions if ref is not None else []
        reply_to = ref.reply_to if ref is not None else 0
        kind = RefKind(ref.kind) if ref is not None and ref.kind else RefKind.REPLY
        return await self.driver.send_content(
            cid, c, reply_to=reply_to, mentions=mentions, ref_kind=kind
        )

    async def send_attachment(self, cid: bytes, pointer: AttachmentPointer, caption: str) -> str:
        """Queue an attachment message (the blob is already uploaded and committed)."""
        if not self.ready:
            raise EncryptionNotReady("encryption not ready")
        return await self.driver.send_attachment(cid, pointer, caption or "")

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
            if p.conversation_id != cid or p.ref_kind:  # an edit/reaction: shown on its target
                continue
            c = device.content_of(p)
            if not isinstance(c, content_mod.Text):
                continue
            # "waiting for keys" only when keys are known to be missing (not merely offline)
            waiting = p.stage == SendStage.WAITING and p.reason
            state = MessageState.WAITING_FOR_KEYS if waiting else MessageState.SENDING
            out.append(Outgoing(p.local_id, c.body, p.created_ms, state, p.reason))
        out += [o for lid, o in self.failed.items() if self._failed_cid.get(lid) == cid]
        return sorted(out, key=lambda o: o.ts)

    async def flush(self) -> None:
        await self.driver.flush()

    # --- trust -----------------------------------------------------------------------------
    def safety_number(self, user_id: str) -> str:
        return self.driver.safety_number(user_id)

    async def mark_verified(self, user_id: str) -> None:
        await self.driver.mark_verified(user_id)

    # --- what the driver reports (ResultSink) ----------------------------------------------
    async def entries(self, conversation_id: bytes, batch: Sequence[Handled]) -> None:
        cid = conversation_id
        rows: list[Row] = []
        membership = False
        for h in batch:
            e = h.entry
            b = e.body if e is not None else None
            if await self.folds.entry(cid, e, h.result):
                continue  # an edit or reaction: folded into the message it points at
            if e is not None and isinstance(b, Membership):
                membership = True
                named = [b.actor] if b.action == MembershipAction.CREATED else b.targets
                who = ", ".join(self.name(u) for u in named) or self.name(b.actor)
                rows.append(Row(e.seq, b.actor, e.ts, MessageState.SYSTEM,
                                f"{b.action.value}:{who}"))  # fmt: skip
                continue
            if e is not None and isinstance(b, Recalled):
                rows.append(Row(e.seq, e.sender, e.ts, MessageState.RECALLED))
                continue
            row = self._row_of(h.result)
            if row is None:
                continue
            if isinstance(b, Message):
                row.mentions_me = self.user_id in b.mentions
                if b.ref_kind == RefKind.REPLY and b.ref_seq is not None:
                    row.quote = await self._quote(cid, b.ref_seq, rows)
            rows.append(row)
        await self._store_rows(cid, rows)
        if membership:
            self._emit("members", cid)

    async def handled_seqs(self, conversation_id: bytes) -> set[int]:
        rows = set(await self.store.row_seqs(conversation_id))
        return rows | self.folds.done.get(conversation_id, set())

    async def sent(self, p: PendingSend, n: fx.MessageSent) -> None:
        c = device.content_of(p)
        ref = self.refs.pop(p.local_id, None)
        if ref is not None:
            await self._save_refs()
        if p.ref_kind and isinstance(c, content_mod.Text):
            await self.folds.ours(n.conversation_id, p.ref_kind, p.reply_to, n.seq, c.body)
        elif isinstance(c, content_mod.Text):
            row = Row(n.seq, self.user_id, n.ts, MessageState.DECRYPTED, c.body, self.device_id)
            row.quote = ref.quote if ref is not None else ""
            await self.store.put_rows(n.conversation_id, [(n.seq, row_enc.encode(row))])
            await self._bump_chat(n.conversation_id, [row])
        if isinstance(c, content_mod.Att):
            row = attachment_row(n.seq, self.user_id, n.ts, self.device_id, c.att, c.caption)
            await self.store.put_rows(n.conversation_id, [(n.seq, row_enc.encode(row))])
            await self._bump_chat(n.conversation_id, [row])
        self._emit("rows", n.conversation_id)

    async def send_failed(self, p: PendingSend, n: fx.MessageFailed) -> None:
        c = device.content_of(p)
        text = c.body if isinstance(c, content_mod.Text) else ""
        self.failed[p.local_id] = Outgoing(p.local_id, text, p.created_ms, MessageState.FAILED,
                                           n.code)  # fmt: skip
        self._failed_cid[p.local_id] = p.conversation_id

    async def noted(self, info: ConversationInfo) -> None:
        cid = info.conversation_id
        c = self.chats.get(cid) or Chat(cid, info.kind.value)
        c.members = [m.user_id for m in info.members]
        c.left = False
        await self._save_chat(c)
        self._emit("chats", cid)

    async def notification(self, n: fx.Notification) -> None:
        await self._note_published()
        if isinstance(n, fx.EventsStored):
            for e in n.events:
                if isinstance(e.body, MessageRecalled):
                    b = e.body
                    await self._mark_recalled(b.conversation_id, [b.seq, *b.also])
        elif isinstance(n, fx.ConversationAdded):
            # also a re-invite to a chat we had left: note it again
            await self.driver.note(await self.driver.info(n.conversation_id))
        elif isinstance(n, fx.ConversationRemoved):
            chat = self.chats.get(n.conversation_id)
            if chat is not None:
                chat.left = True
                await self._save_chat(chat)
                self._emit("chats", n.conversation_id)
        elif isinstance(n, fx.ConnectionChanged) and n.state is ConnectionState.ONLINE:
            with contextlib.suppress(RequestError, TimeoutError):
                await self.refresh_conversations()

    def outgoing_changed(self, conversation_id: bytes | None) -> None:
        self._emit("outgoing", conversation_id)

    def trust_changed(self) -> None:
        self._emit("trust", None)

    def error(self, exc: BaseException) -> None:
        import js  # type: ignore[import-not-found]

        js.console.warn(f"e2e: {exc!r}")

    # --- rows and chat summaries -----------------------------------------------------------
    async def _quote(self, cid: bytes, seq: int, batch: list[Row]) -> str:
        """The start of the text a reply answers (from this batch or the stored rows)."""
        found = [r for r in batch if r.seq == seq]
        if not found:
            found = [row_dec.decode(b) for _, b in await self.store.rows(cid, seq, seq)]
        ok = found and found[0].state == MessageState.DECRYPTED
        return found[0].text[:80] if ok else "…"

    def _row_of(self, r: groups.Received | groups.Failed | st_mod.Waiting | None) -> Row | None:
        if isinstance(r, groups.Received):
            c = r.content
            if isinstance(c, content_mod.Text):
                return Row(r.seq, r.sender, r.ts, MessageState.DECRYPTED, c.body, r.sender_device)
            if isinstance(c, content_mod.Att):
                return attachment_row(r.seq, r.sender, r.ts, r.sender_device, c.att, c.caption)
            if isinstance(c, content_mod.GroupUpdate):
                self._emit("chats", r.conversation_id)
                return Row(r.seq, r.sender, r.ts, MessageState.SYSTEM, f"group_update:{c.name}")
            if isinstance(c, content_mod.CallLog):
                from parley_web.calls import call_row

                return Row(r.seq, r.sender, r.ts, MessageState.SYSTEM, call_row(c))
            return None
        if isinstance(r, groups.Failed):
            if r.reason == DUPLICATE:
                return None  # decrypted before (a re-scan found no row): nothing new to show
            return Row(r.seq, r.sender, r.ts, MessageState.FAILED, "", r.sender_device)
        if isinstance(r, st_mod.Waiting):
            return Row(r.seq, r.sender, r.ts, MessageState.WAITING, "", r.sender_device)
        return None

    async def _store_rows(self, cid: bytes, rows: list[Row]) -> None:
        if not rows:
            return
        await self.store.put_rows(cid, [(r.seq, row_enc.encode(r)) for r in rows])
        await self._bump_chat(cid, rows)
        self._emit("rows", cid)

    async def _bump_chat(self, cid: bytes, rows: list[Row]) -> None:
        c = self.chats.get(cid) or Chat(cid, "direct")
        shown = (MessageState.DECRYPTED, MessageState.WAITING, MessageState.RECALLED)
        for r in rows:
            if r.seq <= c.read_seq and r.state != MessageState.DECRYPTED:
                continue
            if r.seq >= c.last_seq and r.state in shown:
                c.last_seq, c.last_ts = r.seq, r.ts
                c.last_text = r.text if r.state == MessageState.DECRYPTED else ""
                c.last_state = r.state
            if r.sender != self.user_id and r.seq > c.read_seq and r.state != MessageState.SYSTEM:
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

    async def retry_requests(self) -> None:
        await self.driver.retry_requests()

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
        rows = [
            Row(seq, have[seq].sender, have[seq].ts, MessageState.RECALLED)
            for seq in seqs
            if seq in have
        ]
        if not rows:
            return
        await self.store.put_rows(cid, [(r.seq, row_enc.encode(r)) for r in rows])
        c = self.chats.get(cid)
        if c is not None and c.last_seq in seqs:
            c.last_text, c.last_state = "", MessageState.RECALLED
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
