"""Attachments in the conversation: images inline (the blurred placeholder at once, then the
thumbnail, the full image in a lightbox on click), other files as cards with name, size and a
download button. Nothing is decrypted or shown before its size and digest check out
(``parley.client.attachments.open_blob``).

Decrypted blobs are cached: in memory for this page, and sealed (encrypted at rest, like the
rows) in IndexedDB within ``IDB_BUDGET`` bytes, least recently used first out.
"""

from __future__ import annotations

import base64
import contextlib
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import js  # type: ignore[import-not-found]
import msgspec
from pyodide.ffi import create_proxy, to_js  # type: ignore[import-not-found]
from pyodide.http import pyfetch  # type: ignore[import-not-found]

from parley.client import attachments as sansio
from parley.client.message_state import MessageState
from parley.crypto.attachments import AttachmentPointer
from parley.protocol.blobs import BlobDownload, BlobUrl
from parley_web import dom
from parley_web.attachments import human_size, opts
from parley_web.chats import Row, row_dec
from parley_web.i18n import t

if TYPE_CHECKING:
    from parley_web.ui import Ui

OP_TIMEOUT_S = 30.0
MEM_BUDGET = 64 * 1024 * 1024
IDB_BUDGET = 200 * 1024 * 1024
IDB_MAX_ITEM = 20 * 1024 * 1024
"""Larger files are not kept in IndexedDB (downloaded again when saved again)."""
INDEX_KEY = "att-cache-index"

_ptr_dec = msgspec.json.Decoder(AttachmentPointer)
_index_dec = msgspec.msgpack.Decoder(list[tuple[str, int]])


def pointer_of(row: Row) -> AttachmentPointer | None:
    raw = getattr(row, "att", "")
    if not raw or row.state != MessageState.DECRYPTED:
        return None
    try:
        return _ptr_dec.decode(raw)
    except msgspec.DecodeError:
        return None


class BlobCache:
    """Decrypted attachment bytes by blob id: memory (LRU) over sealed IndexedDB (LRU)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.mem: OrderedDict[str, bytes] = OrderedDict()
        self.mem_bytes = 0
        self.index: OrderedDict[str, int] | None = None  # persisted blob id -> size

    def put_mem(self, blob_id: str, data: bytes) -> None:
        if blob_id in self.mem:
            self.mem.move_to_end(blob_id)
            return
        self.mem[blob_id] = data
        self.mem_bytes += len(data)
        while self.mem_bytes > MEM_BUDGET and len(self.mem) > 1:
            _, old = self.mem.popitem(last=False)
            self.mem_bytes -= len(old)

    async def _load_index(self) -> OrderedDict[str, int]:
        if self.index is None:
            raw = await self.store.get_sealed(INDEX_KEY)
            items = _index_dec.decode(raw) if raw else []
            self.index = OrderedDict(items)
        return self.index

    async def get(self, blob_id: str) -> bytes | None:
        if blob_id in self.mem:
            self.mem.move_to_end(blob_id)
            return self.mem[blob_id]
        index = await self._load_index()
        if blob_id not in index:
            return None
        data = await self.store.get_sealed(f"att/{blob_id}")
        if not data:
            return None
        index.move_to_end(blob_id)
        self.put_mem(blob_id, data)
        return bytes(data)

    async def put(self, blob_id: str, data: bytes) -> None:
        self.put_mem(blob_id, data)
        if len(data) > IDB_MAX_ITEM:
            return
        index = await self._load_index()
        if blob_id in index:
            return
        await self.store.put_sealed(f"att/{blob_id}", data)
        index[blob_id] = len(data)
        while sum(index.values()) > IDB_BUDGET and len(index) > 1:
            old, _ = index.popitem(last=False)
            await self.store.put_sealed(f"att/{old}", b"")  # the store has no delete: emptied
        await self.store.put_sealed(INDEX_KEY, msgspec.msgpack.encode(list(index.items())))


class AttachmentView:
    """Watches the conversation's rows (a MutationObserver on ``#conv-rows``: the view needs no
    hook) and adds the attachment of every rendered row that has one."""

    def __init__(self, ui: Ui) -> None:
        self.ui = ui
        self.rows_el = dom.el("conv-rows")
        self.cache = BlobCache(ui.m.store)
        self.urls: dict[str, str] = {}  # blob id -> object URL of its decrypted bytes
        self.pointers: dict[tuple[bytes, int], AttachmentPointer | None] = {}
        self._scanning = False
        self._again = False
        self._listeners = dom.Listeners()
        self._listeners.on(self.rows_el, "click", self._on_click)
        stale = dom.el("att-lightbox")  # an earlier sign-in's
        if stale:
            stale.remove()
        self.lightbox = dom.h("div", "att-lightbox", id="att-lightbox")
        self.lightbox.hidden = True
        self.lightbox.appendChild(dom.h("img", "", id="att-lightbox-img", alt=""))
        js.document.body.appendChild(self.lightbox)
        self._listeners.on(self.lightbox, "click", lambda _e: self.close_lightbox())
        self._observer_fn = create_proxy(lambda _records, _obs: self.schedule())
        self.observer = js.MutationObserver.new(self._observer_fn)
        self.observer.observe(self.rows_el, opts({"childList": True}))

    def remember(self, blob_id: str, data: bytes) -> None:
        """Our own upload: shown without downloading it back."""
        self.cache.put_mem(blob_id, data)

    def learn(self, cid: bytes, row: Row) -> None:
        """A row just made (so its bubble needs no store read)."""
        self.pointers[(cid, row.seq)] = pointer_of(row)

    # --- rendering -------------------------------------------------------------------------
    def schedule(self) -> None:
        if self._scanning:
            self._again = True
            return
        self._scanning = True
        self.ui.spawn(self._scan_loop())

    async def _scan_loop(self) -> None:
        try:
            while True:
                self._again = False
                await self._scan()
                if not self._again:
                    break
        finally:
            self._scanning = False

    async def _scan(self) -> None:
        cid = self.ui.view.cid
        if cid is None:
            return
        nodes = self.rows_el.querySelectorAll("[data-seq]")
        seqs = [int(nodes.item(i).dataset.seq) for i in range(nodes.length)]
        unknown = [s for s in seqs if (cid, s) not in self.pointers]
        if unknown:
            for seq, raw in await self.ui.m.store.rows(cid, min(unknown), max(unknown)):
                with contextlib.suppress(msgspec.DecodeError):
                    row = row_dec.decode(raw)
                    # rows still waiting for their key are looked at again once decrypted
                    if row.state in (MessageState.DECRYPTED, MessageState.SYSTEM):
                        self.pointers[(cid, seq)] = pointer_of(row)
        if cid != self.ui.view.cid:
            return
        for s in seqs:
            p = self.pointers.get((cid, s))
            if p is not None:
                self._decorate(cid, s, p)

    def _decorate(self, cid: bytes, seq: int, p: AttachmentPointer) -> None:
        row = self.rows_el.querySelector(f'[data-seq="{seq}"]')
        # (a missing element is JS null: falsy, but not None)
        if not row or row.classList.contains(MessageState.RECALLED.value):
            return
        node = row.querySelector(".bubble") or row
        if node.querySelector(".att"):
            return
        text = node.querySelector(".text")
        if text and str(text.textContent) == attachment_label(p):
            text.remove()  # no caption: the card says it all
        el = self._element(cid, seq, p)
        first = node.querySelector(".text") or node.querySelector(".meta")
        node.insertBefore(el, first)

    def _element(self, cid: bytes, seq: int, p: AttachmentPointer) -> Any:
        if p.w and p.h and p.mime.startswith("image/"):
            box = dom.h("div", "att att-image", data_att_seq=str(seq), data_att_open="1")
            w = min(p.w, 260)
            box.style.width = f"{w}px"
            box.style.aspectRatio = f"{p.w} / {p.h}"
            img = dom.h("img", "att-thumb loading", alt=p.name or t("att.image"))
            ph = sansio.placeholder_bytes(p)
            if ph:
                img.src = "data:image/jpeg;base64," + base64.b64encode(ph).decode()
            box.appendChild(img)
            shown = p.preview or p
            url = self.urls.get(shown.id)
            if url is not None:
                img.src = url
                img.classList.remove("loading")
            else:
                self.ui.spawn(self._load_thumb(img, cid, shown))
            return box
        card = dom.h("div", "att att-file", data_att_seq=str(seq))
        card.appendChild(dom.h("span", "att-icon", "📄"))
        card.appendChild(dom.h("span", "att-name", p.name or t("att.file")))
        card.appendChild(dom.h("span", "att-size", human_size(p.size)))
        card.appendChild(
            dom.h(
                "button",
                "secondary small att-save",
                t("att.download"),
                type="button",
                data_att_save="1",
            )
        )
        card.appendChild(dom.h("span", "att-status"))
        return card

    async def _load_thumb(self, img: Any, cid: bytes, p: AttachmentPointer) -> None:
        with contextlib.suppress(Exception):
            url = await self.object_url(cid, p)
            img.src = url
            img.classList.remove("loading")

    # --- fetching --------------------------------------------------------------------------
    async def fetch(self, cid: bytes, p: AttachmentPointer) -> bytes:
        """The plaintext of ``p`` (cache first); raises on any failed check."""
        cached = await self.cache.get(p.id)
        if cached is not None:
            return cached
        got = await self.ui.m.session.request(
            BlobUrl(blob_id=p.id, conversation_id=cid), OP_TIMEOUT_S
        )
        assert isinstance(got, BlobDownload)
        d = got.download
        r = await pyfetch(d.url, method=d.method, headers=dict(d.headers))
        if not r.ok:
            raise ConnectionError(f"download failed ({r.status})")
        data = sansio.open_blob(p, await r.bytes())
        await self.cache.put(p.id, data)
        return data

    async def object_url(self, cid: bytes, p: AttachmentPointer) -> str:
        url = self.urls.get(p.id)
        if url is None:
            data = await self.fetch(cid, p)
            blob = js.Blob.new(to_js([to_js(data)]), opts({"type": p.mime}))
            url = self.urls[p.id] = str(js.URL.createObjectURL(blob))
        return url

    # --- actions ---------------------------------------------------------------------------
    def _on_click(self, event: Any) -> None:
        target = event.target
        box = target.closest("[data-att-seq]") if target else None
        cid = self.ui.view.cid
        if not box or cid is None:
            return
        p = self.pointers.get((cid, int(box.getAttribute("data-att-seq"))))
        if p is None:
            return
        if box.hasAttribute("data-att-open"):
            self.ui.spawn(self.open_lightbox(cid, p))
        elif target.closest("[data-att-save]"):
            self.ui.spawn(self.save(cid, p, box))

    async def open_lightbox(self, cid: bytes, p: AttachmentPointer) -> None:
        img = dom.el("att-lightbox-img")
        dom.show(self.lightbox, True)
        img.removeAttribute("src")
        img.alt = p.name or t("att.image")
        self.lightbox.dataset.state = "loading"
        try:
            img.src = await self.object_url(cid, p)
            self.lightbox.dataset.state = "shown"
        except Exception as exc:
            self.lightbox.dataset.state = "failed"
            img.alt = t("att.err.download", err=self.ui.error_text(exc))

    def close_lightbox(self) -> None:
        dom.show(self.lightbox, False)

    async def save(self, cid: bytes, p: AttachmentPointer, card: Any) -> None:
        status = card.querySelector(".att-status")
        status.textContent = t("att.downloading")
        try:
            url = await self.object_url(cid, p)
        except Exception as exc:
            status.textContent = t("att.err.download", err=self.ui.error_text(exc))
            return
        status.textContent = ""
        a = dom.h("a", "", href=url, download=p.name or "file")
        js.document.body.appendChild(a)
        a.click()
        a.remove()


def attachment_label(p: AttachmentPointer) -> str:
    """The text of an attachment row without a caption (also the chat list's last line)."""
    return f"📎 {p.name or ''}".rstrip()


def attachment_row(
    seq: int, sender: str, ts: int, device: int, att: AttachmentPointer, caption: str | None
) -> Row:
    """The view row of an attachment message: the caption (or a label) as text, the pointer
    (with its key: rows are sealed at rest) as JSON."""
    row = Row(seq, sender, ts, MessageState.DECRYPTED, caption or attachment_label(att), device)
    row.att = msgspec.json.encode(att).decode()
    return row
