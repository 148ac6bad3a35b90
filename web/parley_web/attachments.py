"""Sending files from the browser: the attach button, drag and drop, pasting an image, a
preview with an optional caption, the upload with a progress bar and a cancel button, and
errors in words (too large, quota, failed: retry).

The file is read, encrypted (``parley.client.attachments.prepare``: a fresh key per blob) and
PUT by an ``XMLHttpRequest`` straight to the granted URL (the Parley server itself for the
local blob store, else the S3 bucket), which reports upload progress and can be aborted. An
image also gets a thumbnail (longest edge 320 px, its own encrypted blob) and a 16 px blurred
placeholder inside the envelope; both are drawn on an ``OffscreenCanvas`` here, on the device.
Nothing leaves the page unencrypted.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import js  # type: ignore[import-not-found]
from pyodide.ffi import create_proxy, to_js  # type: ignore[import-not-found]

from parley.client import attachments as sansio
from parley.crypto.attachments import AttachmentPointer
from parley.protocol.blobs import BlobKind, UploadAbort, UploadCommit, UploadGrant
from parley_web import dom
from parley_web.i18n import t

if TYPE_CHECKING:
    from parley_web.ui import Ui

OP_TIMEOUT_S = 30.0
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


class Cancelled(Exception):
    """The user cancelled the upload."""


class UploadFailed(Exception):
    """The blob store refused the upload (``status``), or the network failed (0)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"upload failed ({status})")
        self.status = status


async def file_bytes(file: Any) -> bytes:
    buf = await file.arrayBuffer()
    return bytes(js.Uint8Array.new(buf).to_bytes())


def opts(d: dict[str, Any]) -> Any:
    return to_js(d, dict_converter=js.Object.fromEntries)


async def _jpeg(bitmap: Any, w: int, h: int, quality: float) -> bytes:
    canvas = js.OffscreenCanvas.new(w, h)
    canvas.getContext("2d").drawImage(bitmap, 0, 0, w, h)
    blob = await canvas.convertToBlob(opts({"type": "image/jpeg", "quality": quality}))
    return await file_bytes(blob)


async def image_parts(file: Any) -> tuple[int, int, bytes, bytes] | None:
    """(width, height, thumbnail JPEG, placeholder JPEG) of an image file; None if the browser
    cannot decode it (then it is sent as a plain file)."""
    try:
        bitmap = await js.createImageBitmap(file)
    except Exception:
        return None
    try:
        w, h = int(bitmap.width), int(bitmap.height)
        tw, th = sansio.fit(w, h, sansio.THUMB_EDGE)
        thumb = await _jpeg(bitmap, tw, th, 0.8)
        pw, ph = sansio.fit(w, h, sansio.PLACEHOLDER_EDGE)
        placeholder = await _jpeg(bitmap, pw, ph, 0.5)
        return w, h, thumb, placeholder
    finally:
        bitmap.close()


class Transfer:
    """One XMLHttpRequest PUT with progress events; ``cancel`` aborts it."""

    def __init__(self, on_progress: Any) -> None:
        self.on_progress = on_progress
        self.xhr: Any = None
        self.cancelled = False

    async def put(self, method: str, url: str, headers: dict[str, str], body: bytes) -> int:
        if self.cancelled:
            raise Cancelled()
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        xhr = self.xhr = js.XMLHttpRequest.new()
        xhr.open(method, url)
        for k, v in headers.items():
            xhr.setRequestHeader(k, v)

        def progress(e: Any) -> None:
            if e.lengthComputable:
                self.on_progress(int(e.loaded), int(e.total))

        def settle(result: int | BaseException) -> None:
            if fut.done():
                return
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)

        handlers = [
            (xhr.upload, "progress", progress),
            (xhr, "load", lambda _e: settle(int(xhr.status))),
            (xhr, "error", lambda _e: settle(UploadFailed(0))),
            (xhr, "abort", lambda _e: settle(Cancelled())),
        ]
        proxies = []
        for target, event, fn in handlers:
            p = create_proxy(fn)
            target.addEventListener(event, p)
            proxies.append((target, event, p))
        try:
            xhr.send(to_js(body))
            return await fut
        finally:
            for target, event, p in proxies:
                target.removeEventListener(event, p)
                p.destroy()
            self.xhr = None

    def cancel(self) -> None:
        self.cancelled = True
        if self.xhr is not None:
            self.xhr.abort()


async def upload(
    session: Any, data: bytes, kind: BlobKind, transfer: Transfer
) -> tuple[str, sansio.PreparedBlob]:
    """Encrypt, reserve, PUT and commit one blob; an unfinished upload is aborted."""
    prepared = sansio.prepare(data, kind)
    grant = await session.request(prepared.begin, OP_TIMEOUT_S)
    assert isinstance(grant, UploadGrant)
    up = grant.upload
    try:
        status = await transfer.put(up.method, up.url, dict(up.headers), prepared.blob)
        if status != 200:
            raise UploadFailed(status)
    except BaseException:
        with contextlib.suppress(Exception):
            await session.request(UploadAbort(blob_id=grant.blob_id), OP_TIMEOUT_S)
        raise
    await session.request(UploadCommit(blob_id=grant.blob_id), OP_TIMEOUT_S)
    return grant.blob_id, prepared


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


class Attacher:
    """The attach button, the staged file's preview panel, drag and drop and paste."""

    def __init__(self, ui: Ui) -> None:
        self.ui = ui
        form, text_input = dom.el("composer"), dom.el("composer-input")
        for stale in ("composer-attach", "composer-file", "att-panel"):  # an earlier sign-in's
            node = dom.el(stale)
            if node:
                node.remove()
        self.file: Any = None
        self.preview_url: str | None = None
        self.transfer: Transfer | None = None
        self._listeners = dom.Listeners()
        self.button = dom.h("button", "secondary attach", "📎", type="button", id="composer-attach")
        self.button.setAttribute("aria-label", t("att.attach"))
        self.input = dom.h("input", "", type="file", id="composer-file")
        self.input.hidden = True
        form.insertBefore(self.input, form.firstChild)
        form.insertBefore(self.button, form.firstChild)
        self.panel = self._make_panel()
        form.parentNode.insertBefore(self.panel, form)
        on = self._listeners.on
        on(self.button, "click", lambda _e: self.input.click())
        on(self.input, "change", self._on_pick)
        on(text_input, "paste", self._on_paste)
        for target in (dom.el("conv-scroll"), form):
            on(target, "dragover", self._on_dragover)
            on(target, "drop", self._on_drop)
        on(dom.el("att-send"), "click", lambda _e: self.ui.spawn(self.send()))
        on(dom.el("att-cancel"), "click", lambda _e: self.cancel())
        on(dom.el("att-retry"), "click", lambda _e: self.ui.spawn(self.send()))

    def _make_panel(self) -> Any:
        panel = dom.h("div", "att-panel", id="att-panel")
        panel.hidden = True
        panel.appendChild(dom.h("img", "att-preview", id="att-preview-img", alt=""))
        panel.appendChild(dom.h("div", "att-file-name", id="att-name"))
        panel.appendChild(dom.h("input", "att-caption", id="att-caption", type="text"))
        bar = dom.h("progress", "att-progress", id="att-progress", max="100", value="0")
        bar.hidden = True
        panel.appendChild(bar)
        row = dom.h("div", "att-actions")
        row.appendChild(dom.h("button", "", t("att.send"), type="button", id="att-send"))
        row.appendChild(
            dom.h("button", "secondary", t("att.cancel"), type="button", id="att-cancel")
        )
        retry = dom.h("button", "secondary", t("att.retry"), type="button", id="att-retry")
        retry.hidden = True
        row.appendChild(retry)
        panel.appendChild(row)
        panel.appendChild(dom.h("p", "message error", id="att-error", role="alert"))
        return panel

    # --- staging ---------------------------------------------------------------------------
    def stage(self, file: Any) -> None:
        """Show the file (an image as a preview) with a caption box; nothing is sent yet."""
        self.unstage()
        self.file = file
        dom.show(self.panel, True)
        dom.el("att-caption").placeholder = t("att.caption")
        dom.el("att-send").textContent = t("att.send")
        dom.el("att-cancel").textContent = t("att.cancel")
        dom.el("att-retry").textContent = t("att.retry")
        dom.el("att-name").textContent = f"{file.name} · {human_size(int(file.size))}"
        img = dom.el("att-preview-img")
        if str(file.type) in IMAGE_TYPES:
            self.preview_url = str(js.URL.createObjectURL(file))
            img.src = self.preview_url
            dom.show(img, True)
        else:
            dom.show(img, False)
        dom.el("att-caption").focus()

    def unstage(self) -> None:
        self.file = None
        self.transfer = None
        if self.preview_url is not None:
            js.URL.revokeObjectURL(self.preview_url)
            self.preview_url = None
        dom.show(self.panel, False)
        dom.el("att-caption").value = ""
        dom.el("att-error").textContent = ""
        dom.show(dom.el("att-retry"), False)
        dom.show(dom.el("att-progress"), False)
        dom.el("att-send").disabled = False

    def cancel(self) -> None:
        if self.transfer is not None:
            self.transfer.cancel()  # send() sees Cancelled and unstages
        else:
            self.unstage()

    def _on_pick(self, _event: Any) -> None:
        files = self.input.files
        if files.length:
            self.stage(files.item(0))
        self.input.value = ""

    def _on_paste(self, event: Any) -> None:
        data = event.clipboardData
        if data and data.files.length:
            event.preventDefault()
            self.stage(data.files.item(0))

    def _on_dragover(self, event: Any) -> None:
        event.preventDefault()

    def _on_drop(self, event: Any) -> None:
        event.preventDefault()
        files = event.dataTransfer.files if event.dataTransfer else None
        if files and files.length and self.ui.view.cid is not None:
            self.stage(files.item(0))

    # --- sending ---------------------------------------------------------------------------
    def _progress(self, done: int, total: int) -> None:
        bar = dom.el("att-progress")
        bar.value = str(int(done * 100 / total)) if total else "0"

    async def send(self) -> None:
        file, cid = self.file, self.ui.view.cid
        if file is None or cid is None or self.transfer is not None:
            return
        caption = str(dom.el("att-caption").value).strip()
        err = dom.el("att-error")
        err.textContent = ""
        dom.show(dom.el("att-retry"), False)
        dom.el("att-send").disabled = True
        bar = dom.el("att-progress")
        bar.value = "0"
        dom.show(bar, True)
        transfer = self.transfer = Transfer(self._progress)
        try:
            pointer = await self._upload(file, transfer)
            await self.ui.m.send_attachment(cid, pointer, caption)
        except Cancelled:
            self.unstage()
            self.ui.composer.say(t("att.cancelled"))
            return
        except Exception as exc:
            self.transfer = None
            dom.el("att-send").disabled = False
            dom.show(bar, False)
            err.textContent = self._error_text(exc)
            dom.show(dom.el("att-retry"), True)
            return
        self.unstage()
        self.ui.view.render_outgoing()

    async def _upload(self, file: Any, transfer: Transfer) -> AttachmentPointer:
        data = await file_bytes(file)
        session = self.ui.m.session
        mime = str(file.type) or "application/octet-stream"
        name = str(file.name) or None
        parts = await image_parts(file) if mime in IMAGE_TYPES else None
        if parts is None:
            blob_id, prepared = await upload(session, data, BlobKind.FILE, transfer)
            pointer = sansio.pointer(blob_id, prepared, mime=mime, name=name)
        else:
            w, h, thumb, placeholder = parts
            tid, tprep = await upload(session, thumb, BlobKind.THUMB, Transfer(lambda *_: None))
            preview = sansio.pointer(tid, tprep, mime="image/jpeg", width=w, height=h)
            blob_id, prepared = await upload(session, data, BlobKind.IMAGE, transfer)
            pointer = sansio.pointer(
                blob_id, prepared, mime=mime, name=name, width=w, height=h,
                placeholder=placeholder, preview=preview,
            )  # fmt: skip
            self.ui.att_view.remember(tid, thumb)
        self.ui.att_view.remember(blob_id, data)
        return pointer

    def _error_text(self, exc: BaseException) -> str:
        code = getattr(exc, "code", None)
        if code in ("too_large", "quota_exceeded"):
            return t(f"att.err.{code}")
        if isinstance(exc, UploadFailed):
            return t("att.err.failed")
        return t("att.err.other", err=self.ui.error_text(exc))
