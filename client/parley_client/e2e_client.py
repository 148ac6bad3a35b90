"""End-to-end encrypted messaging for the CPython client: the CPython shell of the one E2E
driver (``parley.client.e2e_driver``). It gives the driver its I/O (the key directory over
httpx, the E2E state in an ``E2EStorage``: a plain sqlite file by default, the CLI passes its
sealed one) and keeps what is the CLI's own: the decrypted timeline as ``MessageView`` rows,
waits for tests and commands, and device linking through the server's provisioning relay.

    e2e = E2EClient(http_url, login.user_id, login.device_id, login.token, tmp / "a.db")
    await e2e.start()                       # first device: creates the account key
    local_id = await e2e.send_text(cid, "hi")
    await e2e.wait_sent(local_id, 10)
    for m in await e2e.messages(cid): ...   # decrypted contents, or state WAITING

What the driver guarantees (nothing leaves unencrypted, the state is durable before the
ciphertext leaves, key maintenance, key-request backoff, re-scan of entries never handled) is
described in its module. Device linking: ``link_new_device`` on the new device, ``accept_link``
on an existing one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import httpx
import msgspec

from parley.client import effects as fx
from parley.client.e2e import device, directory, groups, identity
from parley.client.e2e import state as st_mod
from parley.client.e2e.keys_api import BASE, KeyDirectoryError
from parley.client.e2e.state import E2EState, PendingSend, SendStage
from parley.client.e2e_driver import E2EDriver, Handled, ResultSink
from parley.client.message_state import MessageState
from parley.crypto import content as content_mod
from parley.crypto import provisioning
from parley.crypto.attachments import AttachmentPointer
from parley.crypto.constants import PROV_TTL
from parley.crypto.keys import Rng
from parley.protocol import keys as kproto
from parley.protocol.provisioning import LinkLoginReply
from parley_client import linking
from parley_client.client import Client, RequestError
from parley_client.e2e_storage import E2EStorage, SqliteE2EStorage
from parley_client.store import SqliteLocalStore

__all__ = ["E2EClient", "KeyDirectoryError", "MessageView", "RequestError"]

T = TypeVar("T")


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


class _StateFile:
    """The driver's ``StateStore`` on an ``E2EStorage`` (synchronous sqlite underneath)."""

    def __init__(self, storage: E2EStorage) -> None:
        self.storage = storage

    async def load_state(self) -> bytes | None:
        return self.storage.load_state()

    async def save_state(self, blob: bytes) -> None:
        self.storage.save_state(blob)
        self.storage.sync()


class _Views(ResultSink):
    """What the driver reports, as the CLI keeps it: a ``MessageView`` per handled entry."""

    def __init__(self, owner: E2EClient) -> None:
        self.owner = owner

    async def entries(self, conversation_id: bytes, batch: Sequence[Handled]) -> None:
        storage = self.owner.storage
        for h in batch:
            r = h.result
            if isinstance(r, groups.Received):
                v = MessageView(r.seq, r.sender, r.sender_device, r.ts, MessageState.DECRYPTED,
                                r.content)  # fmt: skip
            elif isinstance(r, groups.Failed):
                v = MessageView(r.seq, r.sender, r.sender_device, r.ts, MessageState.FAILED)
            elif isinstance(r, st_mod.Waiting):
                v = MessageView(r.seq, r.sender, r.sender_device, r.ts, MessageState.WAITING)
            else:
                continue
            storage.put_view(conversation_id, v.seq, _venc.encode(v))
        storage.sync()
        self.owner.changed.set()

    async def handled_seqs(self, conversation_id: bytes) -> set[int]:
        return self.owner.storage.view_seqs(conversation_id)

    async def sent(self, p: PendingSend, n: fx.MessageSent) -> None:
        fut = self.owner.sent_future(p.local_id)
        if not fut.done():
            fut.set_result(n.seq)

    async def send_failed(self, p: PendingSend, n: fx.MessageFailed) -> None:
        fut = self.owner.sent_future(p.local_id)
        if not fut.done():
            fut.set_exception(RequestError(str(n.code), n.message))
            fut.exception()  # retrieved: nobody may be waiting

    def outgoing_changed(self, conversation_id: bytes | None) -> None:
        self.owner.changed.set()


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
        self._token = token
        ws_url = "ws" + self.http_url.removeprefix("http") + "/ws"
        self.client = Client(ws_url, token, db_path, store=local_store)
        self.http = httpx.AsyncClient(
            base_url=self.http_url + BASE,
            headers={"authorization": f"Bearer {token}"},
            timeout=10.0,
        )
        self.storage: E2EStorage = (
            storage if storage is not None else SqliteE2EStorage(str(db_path) + ".e2e")
        )
        self.changed = asyncio.Event()
        self._sent: dict[str, asyncio.Future[int]] = {}
        self.driver = E2EDriver(self.client.session, self._call, _StateFile(self.storage),
                                _Views(self), user_id, device_id, aik_seed=aik_seed,
                                rng=rng)  # fmt: skip
        self.driver.adopt_blob(self.storage.load_state())
        if not process_to_device:
            self.driver.hold_to_device(True)

    @property
    def st(self) -> E2EState:
        return self.driver.st

    @property
    def fresh(self) -> bool:
        """True when this run created the device's state (nothing was stored)."""
        return self.driver.fresh

    @property
    def errors(self) -> list[BaseException]:
        return self.driver.errors

    def save(self) -> None:
        """Commit the E2E state now (a state equal to the last one written is not written)."""
        blob = self.driver.unsaved()
        if blob is not None:
            self.storage.save_state(blob)
            self.driver.mark_saved(blob)
        self.storage.sync()

    def sent_future(self, local_id: str) -> asyncio.Future[int]:
        return self._sent.setdefault(local_id, asyncio.get_running_loop().create_future())

    # --- the key directory over HTTP (the driver's caller) ---------------------------------
    async def _call(
        self,
        method: str,
        path: str,
        body: object,
        reply: type[T],
        params: list[tuple[str, str]] | None = None,
    ) -> T:
        content = None if body is None else msgspec.json.encode(body)
        try:
            r = await self.http.request(method, path, content=content, params=tuple(params or ()),
                                        headers={"content-type": "application/json"})  # fmt: skip
        except httpx.HTTPError as exc:  # unreachable: not a reply
            raise KeyDirectoryError(0, f"{type(exc).__name__}: {exc}") from exc
        if r.status_code >= 400:
            raise KeyDirectoryError(r.status_code, r.text)
        return msgspec.json.decode(r.content, type=reply)

    async def maintain_keys(self) -> kproto.OpkCountReply:
        return await self.driver.maintain_keys()

    async def refresh_devlist(self, user_id: str) -> list[st_mod.Notice]:
        return await self.driver.refresh_devlist(user_id)

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Publish keys on the first start (errors raised), connect, process stored to-device
        items, re-scan stored entries never handled."""
        await self.driver.start(publish_first=True)

    async def close(self) -> None:
        """Stop the driver (bounded), the session, the stores."""
        await self.driver.close()
        await self.client.close()
        await self.http.aclose()
        self.save()
        self.storage.close()

    async def wait_online(self, timeout: float) -> None:
        await self.client.wait_online(timeout)

    # --- device linking through the server's relay (linking.py) ----------------------------
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
        identity.adopt_link(self.st, res)
        self.save()

    async def accept_link(self, code: str) -> None:
        """Existing device (after the user confirmed): seal the account key and our newest
        verified device list for the device showing ``code``, with a one-time link token the
        server mints for our user, and post it to the relay."""
        prov_id, e_pub = provisioning.parse_qr(code)
        api = linking.ProvisioningApi(self.http_url, self._token)
        try:
            token = await api.mint_token(prov_id)
            await api.answer(prov_id, await self.driver.seal_link(e_pub, token.link_token))
        finally:
            await api.aclose()

    async def remove_device(self, device_id: int) -> None:
        """Publish our device list without ``device_id``: it gets no new keys from now on."""
        await self.driver.remove_device(device_id)

    # --- conversations and sending ---------------------------------------------------------
    async def open_direct(self, user_id: str) -> bytes:
        return await self.driver.open_direct(user_id)

    async def create_group(self, members: list[str], name: str) -> bytes:
        return await self.driver.create_group(members, name)

    async def send_text(self, cid: bytes, text: str) -> str:
        return self._track(await self.driver.send_text(cid, text))

    async def send_attachment(self, cid: bytes, pointer: AttachmentPointer, caption: str) -> str:
        return self._track(await self.driver.send_attachment(cid, pointer, caption))

    async def send_content(self, cid: bytes, c: content_mod.Content) -> str:
        """Queue ``c`` (raises SendingBlocked after a verified contact's key changed) and try
        to send. Returns the local id; the message waits if keys are missing."""
        return self._track(await self.driver.send_content(cid, c))

    def _track(self, local_id: str) -> str:
        self.sent_future(local_id)
        return local_id

    async def wait_sent(self, local_id: str, timeout: float) -> int:
        """The seq of a message once the server stored it."""
        return await asyncio.wait_for(asyncio.shield(self.sent_future(local_id)), timeout)

    def pending_state(self, local_id: str) -> MessageState | None:
        for p in self.st.pending:
            if p.local_id == local_id:
                if p.stage == SendStage.WAITING:
                    return MessageState.WAITING_FOR_KEYS
                return MessageState.SENDING
        return None

    async def flush(self) -> None:
        await self.driver.flush()

    # --- trust -----------------------------------------------------------------------------
    def notices(self, user_id: str | None = None) -> list[st_mod.Notice]:
        return self.driver.notices(user_id)

    def safety_number(self, user_id: str) -> str:
        return self.driver.safety_number(user_id)

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
        return await self.driver.create_backup(passphrase=passphrase, opslimit=opslimit,
                                               memlimit=memlimit)  # fmt: skip

    async def restore_backup(
        self, conversation_ids: list[bytes], *, recovery_key: str | None = None,
        passphrase: str | None = None,
    ) -> int:  # fmt: skip
        """Import backed-up keys for these conversations; returns the number of states."""
        return await self.driver.restore_backup(conversation_ids, recovery_key=recovery_key,
                                                passphrase=passphrase)  # fmt: skip

    # --- receiving -------------------------------------------------------------------------
    def set_process_to_device(self, on: bool) -> None:
        """Tests: hold to-device processing (keys arrive 'late'); stored items are kept."""
        self.driver.hold_to_device(not on)

    async def to_device_pending(self) -> bool:
        """Stored to-device items (keys among them) the E2E layer has not processed yet."""
        return await self.driver.to_device_pending()

    async def retry_requests(self) -> None:
        """Send key requests again for messages still waiting (after the rate limit)."""
        await self.driver.retry_requests()

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
            self.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 0.2))
