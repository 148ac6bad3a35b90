"""End-to-end encrypted messaging for the CPython client: the I/O glue around
``parley.client.e2e`` (key directory over HTTP, to-device and conversation entries through the
E2E layer, the E2E state and the decrypted timeline in an ``E2EStorage``: a plain sqlite file
by default, the CLI passes its sealed one).

    e2e = E2EClient(http_url, login.user_id, login.device_id, login.token, tmp / "a.db")
    await e2e.start()                       # first device: creates the account key
    local_id = await e2e.send_text(cid, "hi")
    await e2e.wait_sent(local_id, 10)
    for m in await e2e.messages(cid): ...   # decrypted contents, or state "waiting"

Nothing is ever put into an envelope unencrypted: ``send_*`` queue a content; it is encrypted
only once every key is there (else it stays ``waiting_for_keys`` and is retried), and the E2E
state that advanced a chain is committed to disk BEFORE the ciphertext is handed to the
network. Entries stored but never handled (a stop between store and decrypt) are re-scanned
at start, when back online and after keys arrive. Device linking goes through the server's
provisioning relay (``link_new_device`` on the new device, ``accept_link`` on an existing one).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import httpx
import msgspec

from parley.client import effects as fx
from parley.client.e2e import backup, device, directory, groups, identity, pairwise
from parley.client.e2e import state as st_mod
from parley.client.e2e.state import E2EState, PendingSend, SendStage
from parley.client.message_state import MessageState
from parley.client.model import ConnectionState
from parley.client.tasks import stop_task
from parley.crypto import content as content_mod
from parley.crypto import devicelist, provisioning
from parley.crypto.attachments import AttachmentPointer
from parley.crypto.b64 import b64e
from parley.crypto.backend import PWHASH_MEMLIMIT_MODERATE, PWHASH_OPSLIMIT_MODERATE
from parley.crypto.constants import PROV_TTL
from parley.crypto.errors import CryptoError
from parley.crypto.keys import Rng
from parley.protocol import keys as kproto
from parley.protocol.ops import (
    Conversation,
    ConvGet,
    ToDeviceMessage,
    ToDeviceSend,
)
from parley.protocol.provisioning import LinkLoginReply
from parley.protocol.records import ConvEntry, ConversationInfo, Message, ToDeviceItem
from parley.protocol.types import Role
from parley_client import linking
from parley_client.client import Client, RequestError
from parley_client.e2e_storage import E2EStorage, SqliteE2EStorage
from parley_client.store import SqliteLocalStore

T = TypeVar("T")

WORKER_STOP_S = 3.0
"""``close()`` waits at most this long for the worker to end after cancelling it."""

KEYS_RETRY_MS = 60_000
"""Key maintenance that failed (directory unreachable) is tried again after this long."""


class KeyDirectoryError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"key directory {status}: {body[:200]}")
        self.status = status


class MessageView(msgspec.Struct):
    """One line of a conversation as the UI shows it. ``state``: ``DECRYPTED``, ``WAITING``
    (key not here yet), ``FAILED``, or for our own unsent ones ``WAITING_FOR_KEYS`` /
    ``SENDING``."""

    seq: int
    sender: str
    sender_device: int
    ts: int
    state: MessageState
    content: content_mod.Content | None = None
    local_id: str = ""


_views = msgspec.msgpack.Decoder(MessageView)
_venc = msgspec.msgpack.Encoder()


class _Rescan:
    """Worker job: look for stored entries the E2E layer never handled."""


_RESCAN = _Rescan()


def _now() -> int:
    return int(time.time() * 1000)


class E2EClient:
    """One device's E2E messaging. Storage: ``db_path`` gives the plain sqlite defaults (the
    local store at ``db_path``, the E2E state and views at ``db_path + ".e2e"``); or pass
    ``storage`` (E2E state and views) and ``local_store`` yourself (the CLI seals both).
    ``aik_seed``: a new device's state (none stored yet) starts with this account key."""

    def __init__(
        self,
        http_url: str,
        user_id: str,
        device_id: int,
        token: str,
        db_path: str | Path | None = None,
        *,
        storage: E2EStorage | None = None,
        local_store: SqliteLocalStore | None = None,
        aik_seed: bytes | None = None,
        rng: Rng | None = None,
        process_to_device: bool = True,
    ) -> None:
        if db_path is None and (storage is None or local_store is None):
            raise ValueError("give db_path, or both storage and local_store")
        self.http_url = http_url.rstrip("/")
        self.user_id = user_id
        self.device_id = device_id
        self._rng = rng
        self._token = token
        ws_url = "ws" + self.http_url.removeprefix("http") + "/ws"
        self.client = Client(ws_url, token, db_path, store=local_store)
        self.http = httpx.AsyncClient(
            base_url=self.http_url + "/api/v1/keys",
            headers={"authorization": f"Bearer {token}"},
            timeout=10.0,
        )
        self.storage: E2EStorage = (
            storage if storage is not None else SqliteE2EStorage(str(db_path) + ".e2e")
        )
        blob = self.storage.load_state()
        self._saved: bytes | None = blob
        self.fresh = blob is None
        """True when this run created the device's state (nothing was stored)."""
        self.st: E2EState = (
            st_mod.loads(blob)
            if blob is not None
            else identity.new_device(user_id, device_id, aik_seed=aik_seed, now=_now(), rng=rng)
        )
        self._lock = asyncio.Lock()
        # None = the E2E layer's timer fired (see _schedule_wake)
        self._inbox: asyncio.Queue[fx.Notification | _Rescan | None] = asyncio.Queue()
        self._timer: asyncio.TimerHandle | None = None
        self._keys_not_before = 0
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        self._process_td = asyncio.Event()
        if process_to_device:
            self._process_td.set()
        self._sent: dict[str, asyncio.Future[int]] = {}
        self._changed = asyncio.Event()
        self.errors: list[BaseException] = []

    # --- persistence -----------------------------------------------------------------------
    def save(self) -> None:
        """Commit the E2E state (BEFORE anything it produced leaves the device), durable when
        this returns (``E2EStorage.save_state``). A state equal to the one last written is not
        written again (many calls change nothing); views put since the last call are synced."""
        blob = st_mod.dumps(self.st)
        if self._saved != blob:
            self.storage.save_state(blob)
            self._saved = blob
        self.storage.sync()

    def _store_view(self, cid: bytes, v: MessageView) -> None:
        self.storage.put_view(cid, v.seq, _venc.encode(v))
        self._changed.set()

    # --- key directory (HTTP) --------------------------------------------------------------
    async def _call(self, method: str, path: str, body: object, reply: type[T], **kw: object) -> T:
        content = None if body is None else msgspec.json.encode(body)
        r = await self.http.request(
            method, path, content=content, headers={"content-type": "application/json"},
            **kw,  # type: ignore[arg-type]
        )  # fmt: skip
        if r.status_code >= 400:
            raise KeyDirectoryError(r.status_code, r.text)
        return msgspec.json.decode(r.content, type=reply)

    async def _upload_keys(self, opks: int = 0) -> kproto.OpkCountReply:
        new = identity.new_opks(self.st, opks, self._rng) if opks else []
        self.save()  # private halves stored before the public ones are published
        return await self._call(
            "PUT", "/device", identity.upload_body(self.st, new), kproto.OpkCountReply
        )

    async def maintain_keys(self) -> kproto.OpkCountReply:
        """Look at our OPK count on the server; rotate the SPK / upload a batch of OPKs when
        due (``identity.maintain_keys``). Returns the count the server holds now."""
        async with self._lock:
            count = await self._call("GET", "/count", None, kproto.OpkCountReply)
            body = identity.maintain_keys(self.st, _now(), count.count, self._rng)
            self.save()  # private halves stored before the public ones are published
            if body is None:
                return count
            reply = await self._call("PUT", "/device", body, kproto.OpkCountReply)
            identity.uploaded(self.st)
            self.save()
            return reply

    async def _maintain_keys_quietly(self) -> None:
        try:
            await self.maintain_keys()
        except (KeyDirectoryError, httpx.HTTPError):
            # the directory unreachable: try again in a minute (not in a tight timer loop)
            self._keys_not_before = _now() + KEYS_RETRY_MS

    def _keys_due_ms(self) -> int:
        return max(identity.keys_due_ms(self.st), self._keys_not_before)

    async def _publish_devlist(self, body: kproto.PutDeviceListBody) -> None:
        self.save()
        await self._call("PUT", "/devicelist", body, kproto.DeviceListReply)

    async def refresh_devlist(self, user_id: str) -> list[st_mod.Notice]:
        """Fetch and verify ``user_id``'s device list (anti-rollback, TOFU, key changes)."""
        try:
            reply = await self._call(
                "GET", f"/users/{user_id}/devicelist", None, kproto.DeviceListReply
            )
        except KeyDirectoryError as e:
            if e.status == 404:
                return []
            raise
        notices = directory.accept_device_list(self.st, reply, _now())
        self.save()
        return notices

    async def _ensure_sessions(self, devices: list[tuple[str, int]]) -> None:
        """Pairwise sessions with ``devices`` (verified bundles, X3DH)."""
        missing = [d for d in devices if not pairwise.has_session(self.st, *d)]
        for user in sorted({u for u, _ in missing}):
            reply = await self._call("GET", f"/users/{user}/bundles", None, kproto.BundlesReply)
            want = {d for u, d in missing if u == user}
            for b in reply.bundles:
                if b.device_id not in want:
                    continue
                try:
                    vb = directory.verify_bundle(self.st, b)
                except CryptoError:
                    continue  # not verifiable: no session, the message keeps waiting
                pairwise.initiate(self.st, vb, _now(), self._rng)
        self.save()

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """First device of an account (or restart): create/publish keys, connect, process;
        then re-scan stored entries the E2E layer never handled (see ``_rescan``)."""
        if self.st.own.aik_seed is None:
            identity.create_account_key(self.st, self._rng)
        if not self.st.own.published_devlist:
            await self._publish_devlist(identity.devlist_with_self(self.st, _now()))
            await self._upload_keys(opks=kproto.OPK_LOW_WATER * 2)
        self.client.session.add_listener(self._inbox.put_nowait)
        self._worker = asyncio.ensure_future(self._work())
        await self.client.start()
        await self._catch_up_to_device()
        self._inbox.put_nowait(_RESCAN)

    async def close(self) -> None:
        """Stop the worker, the session and the storage. Bounded: the worker is cancelled (again
        and again, in case something inside swallowed a cancellation) for at most
        ``WORKER_STOP_S``, then abandoned; it also leaves its loop by itself once closing."""
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        if self._worker is not None:
            self._inbox.put_nowait(None)  # wakes a worker whose cancellation got lost
            await stop_task(self._worker, WORKER_STOP_S)
        await self.client.close()
        await self.http.aclose()
        self.save()
        self.storage.close()

    async def wait_online(self, timeout: float) -> None:
        await self.client.wait_online(timeout)

    # --- device linking through the server's relay (§3.5, linking.py) ---------------------
    @classmethod
    async def link_new_device(
        cls,
        http_url: str,
        device_name: str,
        on_code: Callable[[str], Awaitable[None] | None],
        *,
        db_path: str | Path | None = None,
        open_storage: Callable[[LinkLoginReply], tuple[E2EStorage, SqliteLocalStore]] | None = None,
        timeout: float = PROV_TTL / 1000,
        rng: Rng | None = None,
        process_to_device: bool = True,
    ) -> E2EClient:
        """New device: show ``on_code``'s ``imlink:1:...`` text, wait (bounded) until an existing
        device accepts it, log in with the link token (no password) and return the client
        holding the account key and the verified device list (not started: ``start()``
        publishes the next device list, with this device, and uploads its keys).
        ``open_storage(login)``: where to keep this device's data (else ``db_path``)."""
        login, res = await linking.wait_linked(http_url, device_name, on_code, timeout=timeout,
                                               rng=rng)  # fmt: skip
        storage, local = open_storage(login) if open_storage is not None else (None, None)
        client = cls(
            http_url, login.user_id, login.device_id, login.token, db_path, storage=storage,
            local_store=local, aik_seed=res.aik.seed, rng=rng,
            process_to_device=process_to_device,
        )  # fmt: skip
        client.adopt_link(res)
        return client

    def adopt_link(self, res: provisioning.ProvisionResult) -> None:
        """New device: take the account key and the device list the existing device sealed."""
        if res.user_id != self.user_id:
            raise CryptoError("provisioned for another account")
        self.st.own.aik_seed = res.aik.seed
        c = identity.own_contact(self.st)
        _, c.devlist = devicelist.accept(None, res.devlist_data, res.devlist_sig, res.aik.pub,
                                         self.user_id)  # fmt: skip
        c.devices = {d.device_id: d.ik_pub for d in res.devlist.devices}
        self.st.own.published_devlist = False
        self.save()

    async def accept_link(self, code: str) -> None:
        """Existing device (after the user confirmed): seal the account key and our newest
        verified device list for the device showing ``code``, with a one-time link token the
        server mints for our user, and post it to the relay."""
        prov_id, e_pub = provisioning.parse_qr(code)
        async with self._lock:
            await self.refresh_devlist(self.user_id)
        c = self.st.contacts[self.user_id]
        if c.devlist is None:
            raise CryptoError("our own device list is not known yet")
        api = linking.ProvisioningApi(self.http_url, self._token)
        try:
            token = await api.mint_token(prov_id)
            sealed = provisioning.seal(
                e_pub, user_id=self.user_id, aik=identity.aik(self.st),
                devlist_data=c.devlist.data, devlist_sig=c.devlist.sig,
                link_token=token.link_token,
            )  # fmt: skip
            await api.answer(prov_id, sealed)
        finally:
            await api.aclose()

    async def remove_device(self, device_id: int) -> None:
        """Publish our device list without ``device_id``: it gets no new keys from now on."""
        async with self._lock:
            await self.refresh_devlist(self.user_id)  # build on the newest verified version
            await self._publish_devlist(identity.devlist_without(self.st, device_id, _now()))

    # --- conversations ---------------------------------------------------------------------
    async def _note(self, info: ConversationInfo) -> None:
        creator = next((m.user_id for m in info.members if m.role == Role.OWNER), "")
        groups.note_conversation(
            self.st, info.conversation_id, info.kind.value, [m.user_id for m in info.members],
            creator,
        )  # fmt: skip
        self.save()

    async def _know(self, cid: bytes) -> None:
        if groups.view(self.st, cid) is None:
            r = await self.client.request(ConvGet(conversation_id=cid), 15)
            assert isinstance(r, Conversation)
            await self._note(r.info)

    async def open_direct(self, user_id: str) -> bytes:
        info = await self.client.open_direct(user_id)
        async with self._lock:
            await self._note(info)
        return info.conversation_id

    async def create_group(self, members: list[str], name: str) -> bytes:
        """Server routing list + our E2E membership view; the name travels only inside the
        encrypted ``group_update`` content (the server's ``meta`` stays empty)."""
        info = await self.client.create_group(members, b"")
        async with self._lock:
            await self._note(info)
            gu = groups.set_group_view(self.st, info.conversation_id, members, [], name)
            gu = msgspec.structs.replace(gu, ts=_now())
            device.queue(self.st, info.conversation_id, gu, _now())
            self.save()
        await self.flush()
        return info.conversation_id

    # --- sending ---------------------------------------------------------------------------
    async def send_text(self, cid: bytes, text: str) -> str:
        c = content_mod.Text(id=pairwise.new_id(), ts=_now(), body=text)
        return await self.send_content(cid, c)

    async def send_attachment(self, cid: bytes, pointer: AttachmentPointer, caption: str) -> str:
        c = content_mod.Att(id=pairwise.new_id(), ts=_now(), att=pointer, caption=caption)
        return await self.send_content(cid, c)

    async def send_content(self, cid: bytes, c: content_mod.Content) -> str:
        """Queue ``c`` (raises SendingBlocked after a verified contact's key changed) and try
        to send. Returns the local id; the message waits if keys are missing."""
        async with self._lock:
            await self._know(cid)
            p = device.queue(self.st, cid, c, _now())
            self._sent[p.local_id] = asyncio.get_running_loop().create_future()
            self.save()
        await self.flush()
        return p.local_id

    async def wait_sent(self, local_id: str, timeout: float) -> int:
        """The seq of a message once the server stored it."""
        fut = self._sent.setdefault(local_id, asyncio.get_running_loop().create_future())
        return await asyncio.wait_for(asyncio.shield(fut), timeout)

    def pending_state(self, local_id: str) -> MessageState | None:
        for p in self.st.pending:
            if p.local_id == local_id:
                if p.stage == SendStage.WAITING:
                    return MessageState.WAITING_FOR_KEYS
                return MessageState.SENDING
        return None

    async def flush(self) -> None:
        """Push every queued message as far as it can go (see PendingSend stages)."""
        async with self._lock:
            for p in list(self.st.pending):
                with contextlib.suppress(KeyDirectoryError, CryptoError, groups.MissingKeys):
                    await self._advance(p)

    async def _advance(self, p: PendingSend) -> None:
        if p.stage == SendStage.WAITING:
            await self._refresh_members(p.conversation_id)
            targets = groups.target_devices(self.st, p.conversation_id)
            await self._ensure_sessions(targets)
            try:
                device.prepare(self.st, p, _now(), self._rng)
            except groups.MissingKeys as e:
                p.reason = str(e)
                self.save()
                raise
            self.save()  # chain advanced: durable before the ciphertext leaves
        if p.stage == SendStage.ENCRYPTED:
            if p.to_device:
                await self.client.request(ToDeviceSend(messages=[
                    ToDeviceMessage(t.user_id, t.device_id, t.body) for t in p.to_device
                ]), 15)  # fmt: skip
            p.stage, p.to_device = SendStage.SKDM_SENT, []
            self.save()
        if p.stage == SendStage.SKDM_SENT:
            # the client_msg_id is the local id: the engine's outbox holds it durably once
            # send_message returns; a crash before "queued" is saved re-queues the same id,
            # which the outbox and the server deduplicate
            p.client_msg_id = p.local_id
            await self.client.session.send_message(
                p.conversation_id, p.envelope, track=False, client_msg_id=p.local_id,
                created_ms=p.created_ms,
            )  # fmt: skip
            p.stage = SendStage.QUEUED
            self.save()

    async def _refresh_members(self, cid: bytes) -> None:
        v = groups.view(self.st, cid)
        users = sorted(set(v.members if v else []) | {self.user_id})
        for u in users:
            await self.refresh_devlist(u)

    # --- trust -----------------------------------------------------------------------------
    def notices(self, user_id: str | None = None) -> list[st_mod.Notice]:
        return [n for n in self.st.notices if user_id is None or n.user_id == user_id]

    def safety_number(self, user_id: str) -> str:
        return directory.safety_number(self.st, user_id)

    def mark_verified(self, user_id: str) -> None:
        directory.mark_verified(self.st, user_id)
        self.save()

    def accept_key_change(self, user_id: str) -> None:
        directory.accept_key_change(self.st, user_id)
        self.save()

    # --- backup ----------------------------------------------------------------------------
    async def create_backup(
        self,
        *,
        passphrase: str | None = None,
        opslimit: int | None = None,
        memlimit: int | None = None,
    ) -> str:
        """New backup version; returns the recovery key text (or "" for a passphrase)."""
        async with self._lock:
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
            reply = await self._call("POST", "/backup", body, kproto.BackupVersionReply)
            backup.enable(self.st, reply.version, bk)
            self.save()
            await self._push_backup()
        return text

    async def _push_backup(self) -> None:
        while (body := backup.records_to_push(self.st)) is not None:
            await self._call("PUT", "/backup/records", body, kproto.PutBackupRecordsReply)
            backup.pushed(self.st, body)
            self.save()

    async def restore_backup(
        self, conversation_ids: list[bytes], *, recovery_key: str | None = None,
        passphrase: str | None = None,
    ) -> int:  # fmt: skip
        """Import backed-up keys for these conversations; returns the number of states."""
        async with self._lock:
            ver = await self._call("GET", "/backup", None, kproto.BackupVersionReply)
            bk = backup.key_from_reply(ver, recovery_key=recovery_key, passphrase=passphrase)
            params = [("conversation_id", b64e(c)) for c in conversation_ids]
            recs = await self._call("GET", "/backup/records", None, kproto.BackupRecordsReply,
                                    params=params)  # fmt: skip
            n = backup.restore(self.st, bk, recs.records)
            backup.enable(self.st, ver.version, bk)
            self.save()
            self._retry_waiting()
        return n

    # --- receiving -------------------------------------------------------------------------
    def set_process_to_device(self, on: bool) -> None:
        """Tests: hold to-device processing (keys arrive 'late'); stored items are kept."""
        if on:
            self._process_td.set()
            self._inbox.put_nowait(fx.ToDeviceStored(()))
        else:
            self._process_td.clear()

    async def _work(self) -> None:
        # ``while not closing``: even if a cancellation is lost inside a handler, the worker
        # ends after it (close() also queues a wake-up), so close() never waits on it forever
        while not self._closing:
            n = await self._inbox.get()
            if self._closing:
                return
            try:
                await self._handle(n)
            except Exception as exc:  # keep processing; surfaced to tests via .errors
                self.errors.append(exc)
            self._schedule_wake()

    def _schedule_wake(self) -> None:
        """(Re)arm the one timer for the next time the E2E layer wants to act: a key request
        (``groups.next_key_request_ms``) or key maintenance (``identity.keys_due_ms``); when
        it fires, the worker does what is due."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = self._keys_due_ms()
        req = groups.next_key_request_ms(self.st)
        if req is not None:
            due = min(due, req)
        delay = max(due - _now(), 0) / 1000
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay, self._inbox.put_nowait, None)

    async def _send_due_key_requests(self) -> None:
        async with self._lock:
            reqs = groups.key_requests(self.st, _now())
            self.save()
            # offline or a slow directory: the backoff asks again later
            with contextlib.suppress(RequestError, KeyDirectoryError, TimeoutError):
                await self._send_pairwise(reqs)

    async def _handle(self, n: fx.Notification | _Rescan | None) -> None:
        if isinstance(n, _Rescan):
            await self._rescan()
        elif n is None:
            if _now() >= self._keys_due_ms():
                await self._maintain_keys_quietly()
            await self._send_due_key_requests()
        elif isinstance(n, fx.ToDeviceStored):
            await self._catch_up_to_device()
        elif isinstance(n, fx.EntriesStored):
            await self._on_entries(n.conversation_id, n.first, n.last)
        elif isinstance(n, fx.MessageSent):
            async with self._lock:
                for p in list(self.st.pending):
                    if p.client_msg_id == n.client_msg_id:
                        self.st.pending.remove(p)
                        self.save()
                fut = self._sent.get(n.client_msg_id)
                if fut is not None and not fut.done():
                    fut.set_result(n.seq)
        elif isinstance(n, fx.ConnectionChanged) and n.state is ConnectionState.ONLINE:
            await self.flush()
            groups.rearm_key_requests(self.st)  # chains the backoff gave up on: once more
            await self._send_due_key_requests()
            await self._maintain_keys_quietly()
            await self._rescan()  # entries whose handling failed while offline

    def to_device_pending(self) -> bool:
        """Stored to-device items (keys among them) the E2E layer has not processed yet."""
        row = self.client.store.db.execute("SELECT max(seq) FROM to_device").fetchone()
        return row[0] is not None and int(row[0]) > self.st.to_device_done

    async def _catch_up_to_device(self) -> None:
        if not self._process_td.is_set():
            return
        async with self._lock:
            rows = self.client.store.db.execute(
                "SELECT data FROM to_device WHERE seq > ? ORDER BY seq", (self.st.to_device_done,)
            ).fetchall()
            dec = msgspec.msgpack.Decoder(ToDeviceItem)
            items = [dec.decode(r[0]) for r in rows]
            # a PreKeyMessage used one of our OPKs: look whether a refill is due
            prekey_msgs = any(it.body[:1] == b"\x03" for it in items)
            replies: list[tuple[str, int, content_mod.Content]] = []
            keys = resend = False
            for it in items:
                sender_known = it.sender in self.st.contacts and \
                    it.sender_device in self.st.contacts[it.sender].devices  # fmt: skip
                if not sender_known:
                    with contextlib.suppress(KeyDirectoryError, CryptoError):
                        await self.refresh_devlist(it.sender)
                res = device.handle_to_device(self.st, it.sender, it.sender_device, it.body,
                                              it.ts, _now())  # fmt: skip
                self.st.to_device_done = it.seq
                self.save()  # after decryption, before anything else (ack already happened)
                replies += res.replies
                keys |= res.keys_changed
                resend |= res.resend_skdms
                if res.reset is not None:
                    with contextlib.suppress(KeyDirectoryError, CryptoError):
                        await self._reset(res.reset)
            await self._send_pairwise(replies)
            if keys:
                self._retry_waiting()
                self._inbox.put_nowait(_RESCAN)  # after this batch: entries never handled
                if self.st.backup is not None:
                    with contextlib.suppress(KeyDirectoryError):
                        await self._push_backup()
        if resend:
            await self.flush()
        if keys or items:
            await self.flush()
        if prekey_msgs:
            await self._maintain_keys_quietly()

    async def _reset(self, r: pairwise.ResetNeeded) -> None:
        self.st.sessions.pop(st_mod.dev_key(r.user_id, r.device_id), None)
        await self._ensure_sessions([(r.user_id, r.device_id)])
        await self._send_pairwise([(r.user_id, r.device_id, device.derr_content(r, _now()))])

    async def _send_pairwise(self, msgs: list[tuple[str, int, content_mod.Content]]) -> None:
        if not msgs:
            return
        with contextlib.suppress(KeyDirectoryError):
            await self._ensure_sessions([(u, d) for u, d, _ in msgs])
        out = []
        for u, d, c in msgs:
            with contextlib.suppress(CryptoError):
                t = pairwise.encrypt(self.st, u, d, c, _now())
                out.append(ToDeviceMessage(t.user_id, t.device_id, t.body))
        self.save()  # ratchets advanced: durable before sending
        if out:
            await self.client.request(ToDeviceSend(messages=out), 15)

    async def _on_entries(self, cid: bytes, first: int, last: int) -> None:
        entries: list[ConvEntry] = await self.client.store.entries(
            cid, after=first - 1, limit=last - first + 1
        )
        await self._decrypt_entries(cid, entries)

    async def _decrypt_entries(
        self, cid: bytes, entries: list[ConvEntry], *, replay_is_failure: bool = False
    ) -> None:
        """``replay_is_failure``: an entry without a view that decrypts as a duplicate is a
        replay of an earlier message; say so (a view) instead of scanning it again forever."""
        async with self._lock:
            await self._know(cid)
            for e in entries:
                if not isinstance(e.body, Message) or e.sender_device is None:
                    continue
                r = groups.decrypt_entry(self.st, cid, e.seq, e.sender, e.sender_device, e.ts,
                                         e.body.envelope)  # fmt: skip
                if r is None and replay_is_failure:
                    r = groups.Failed(cid, e.seq, e.sender, e.sender_device, e.ts,
                                      "DuplicateMessage")  # fmt: skip
                self._record(r)
            self.save()
            reqs = groups.key_requests(self.st, _now())
            self.save()
            await self._send_pairwise(reqs)

    async def _rescan(self) -> None:
        """Stored entries the E2E layer never handled (no view): the local store saves an entry
        (and moves its cursor) BEFORE the worker decrypts it, so a process that ended in
        between, or a handler that failed (e.g. offline), left them behind. Runs at start,
        when back online and after keys arrived."""
        store = self.client.store
        for cid in store.conversation_ids():
            have = self.storage.view_seqs(cid)
            missing: list[ConvEntry] = []
            after = 0
            while page := await store.entries(cid, after=after, limit=1000):
                missing += [e for e in page if isinstance(e.body, Message)
                            and e.sender_device is not None and e.seq not in have]  # fmt: skip
                after = page[-1].seq
            if missing:
                # offline (an unknown conversation needs ConvGet): the next "online" rescans
                with contextlib.suppress(RequestError, TimeoutError):
                    await self._decrypt_entries(cid, missing, replay_is_failure=True)

    def _record(self, r: groups.Received | groups.Failed | st_mod.Waiting | None) -> None:
        if isinstance(r, groups.Received):
            self._store_view(r.conversation_id, MessageView(
                r.seq, r.sender, r.sender_device, r.ts, MessageState.DECRYPTED, r.content))  # fmt: skip
        elif isinstance(r, groups.Failed):
            self._store_view(r.conversation_id, MessageView(
                r.seq, r.sender, r.sender_device, r.ts, MessageState.FAILED))  # fmt: skip
        elif isinstance(r, st_mod.Waiting):
            self._store_view(r.conversation_id, MessageView(
                r.seq, r.sender, r.sender_device, r.ts, MessageState.WAITING))  # fmt: skip

    def _retry_waiting(self) -> None:
        for r in groups.retry_waiting(self.st):
            self._record(r)
        self.save()

    async def retry_requests(self) -> None:
        """Send key requests again for messages still waiting (after the rate limit)."""
        async with self._lock:
            reqs = groups.key_requests(self.st, _now(), min_interval_ms=0)
            self.save()
            await self._send_pairwise(reqs)

    # --- reading ---------------------------------------------------------------------------
    async def messages(self, cid: bytes) -> list[MessageView]:
        """The conversation as decrypted so far (ascending seq), then our unsent ones."""
        out = [_views.decode(b) for b in self.storage.views(cid)]
        for p in self.st.pending:
            if p.conversation_id == cid:
                state = self.pending_state(p.local_id) or MessageState.SENDING
                out.append(MessageView(0, self.user_id, self.device_id, p.created_ms, state,
                                       device.content_of(p), p.local_id))  # fmt: skip
        return out

    async def texts(self, cid: bytes) -> list[str]:
        """Bodies of the decrypted text messages (tests and CLI)."""
        return [
            m.content.body
            for m in await self.messages(cid)
            if m.state is MessageState.DECRYPTED and isinstance(m.content, content_mod.Text)
        ]

    async def wait_for(
        self, pred: Callable[[list[MessageView]], bool], cid: bytes,
        timeout: float,
    ) -> list[MessageView]:  # fmt: skip
        """Wait (bounded) until ``pred(messages)`` holds; returns the messages."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msgs = await self.messages(cid)
            if pred(msgs):
                return msgs
            if self.errors:
                raise self.errors[0]
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"timed out; messages: {[(m.seq, m.state) for m in msgs]}")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.2))
