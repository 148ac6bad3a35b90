"""Serve the browser client built by ``scripts/build_web.py`` (web/dist/).

* ``/`` the HTML shell: small, ``Cache-Control: no-cache`` (revalidated by ETag), so a new build
  is picked up on the next load; it names content-hashed asset URLs.
* ``/assets/...`` content-hashed files: ``immutable`` for a year, served pre-compressed
  (``.br``/``.gz`` made at build time) when the request's ``Accept-Encoding`` allows.
* ``/sw.js`` the service worker at a stable URL (``no-cache``: browsers check it on each visit).

The page runs Python on the main thread, so no cross-origin isolation (COEP) is required; the
shell still sends ``Cross-Origin-Opener-Policy: same-origin`` and every asset
``Cross-Origin-Resource-Policy: same-origin`` (other sites cannot embed our code).
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath
from litestar.response import File

# Never rely on /etc/mime.types: a wasm served with the wrong type cannot be compiled streaming.
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/css", ".css")
mimetypes.add_type("application/json", ".json")
mimetypes.add_type("application/zip", ".zip")
mimetypes.add_type("application/zip", ".whl")

DEFAULT_DIST = Path(__file__).resolve().parents[2] / "web" / "dist"
IMMUTABLE = "public, max-age=31536000, immutable"
NOT_BUILT = (
    "The Parley web client is not built.\n"
    "Run: .venv/bin/python scripts/build_web.py\n"
    "(it writes web/dist/, or set PARLEY_WEB_DIST to a built directory)\n"
)
_COMMON = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
# The shell runs only our own scripts: no inline or eval'd code, wasm compile allowed, network
# only to this origin (XSS in a chat client means stolen keys).
CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
    "img-src 'self' data: blob:; connect-src 'self'; worker-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
# Preferred first; the suffix the build writes for each.
_ENCODINGS = (("br", ".br"), ("gzip", ".gz"))


def dist_dir() -> Path:
    """Where the built client lives: ``$PARLEY_WEB_DIST`` or the repo's web/dist."""
    env = os.environ.get("PARLEY_WEB_DIST")
    return Path(env) if env else DEFAULT_DIST


def accepted_encodings(header: str) -> set[str]:
    """Codings the client accepts (``q=0`` means refused), lower-cased."""
    accepted: set[str] = set()
    for part in header.split(","):
        token, _, params = part.strip().partition(";")
        token = token.strip().lower()
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if token and q > 0:
            accepted.add(token)
    return accepted


@dataclass
class _Cached:
    mtime_ns: int
    body: bytes
    etag: str


class WebAssets:
    """The built client on disk; small files (shell, sw.js) are cached until their mtime moves."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.assets = (root / "assets").resolve()
        self._cache: dict[str, _Cached] = {}

    def small_file(self, name: str) -> _Cached | None:
        path = self.root / name
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return None
        hit = self._cache.get(name)
        if hit is None or hit.mtime_ns != mtime:
            body = path.read_bytes()
            hit = _Cached(mtime, body, '"' + hashlib.sha256(body).hexdigest()[:20] + '"')
            self._cache[name] = hit
        return hit

    def asset_path(self, rel: str) -> Path | None:
        """The file for ``/assets/<rel>``, or None (no traversal, no hidden or temp files)."""
        parts = [p for p in rel.split("/") if p]
        if not parts or any(p.startswith(".") for p in parts) or parts[-1].endswith((".gz", ".br")):
            return None
        path = self.assets.joinpath(*parts).resolve()
        if not path.is_relative_to(self.assets) or not path.is_file():
            return None
        return path


def _revalidated(request: Request[Any, Any, Any], cached: _Cached, media_type: str,
                 headers: dict[str, str]) -> Response[bytes]:  # fmt: skip
    headers = {**_COMMON, "Cache-Control": "no-cache", "ETag": cached.etag, **headers}
    if request.headers.get("if-none-match") == cached.etag:
        return Response(b"", status_code=304, headers=headers, media_type=media_type)
    return Response(cached.body, headers=headers, media_type=media_type)


def web_routes(root: Path | None = None) -> list[HTTPRouteHandler]:
    """Route handlers for ``/``, ``/sw.js`` and ``/assets/{path}`` over a built web/dist."""
    web = WebAssets(root or dist_dir())

    @get("/", include_in_schema=False, sync_to_thread=False)
    def shell(request: Request[Any, Any, Any]) -> Response[bytes]:
        cached = web.small_file("index.html")
        if cached is None:
            return Response(
                NOT_BUILT.encode(),
                status_code=503,
                media_type="text/plain; charset=utf-8",
                headers={**_COMMON, "Cache-Control": "no-store", "Retry-After": "30"},
            )
        extra = {"Cross-Origin-Opener-Policy": "same-origin", "Content-Security-Policy": CSP}
        return _revalidated(request, cached, "text/html", extra)

    @get("/sw.js", include_in_schema=False, sync_to_thread=False)
    def service_worker(request: Request[Any, Any, Any]) -> Response[bytes]:
        cached = web.small_file("sw.js")
        if cached is None:
            return Response(
                b"web client not built\n",
                status_code=404,
                media_type="text/plain; charset=utf-8",
                headers={**_COMMON, "Cache-Control": "no-store"},
            )
        return _revalidated(request, cached, "text/javascript", {})

    @get("/assets/{rel:path}", include_in_schema=False, sync_to_thread=False)
    def asset(request: Request[Any, Any, Any], rel: FromPath[str]) -> Response[bytes] | File:
        path = web.asset_path(rel)
        if path is None:
            return Response(
                b"not found\n",
                status_code=404,
                media_type="text/plain; charset=utf-8",
                headers={**_COMMON, "Cache-Control": "no-store"},
            )
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        headers = {
            **_COMMON,
            "Cache-Control": IMMUTABLE,
            "Cross-Origin-Resource-Policy": "same-origin",
            "Vary": "Accept-Encoding",
        }
        body = path
        accepted = accepted_encodings(request.headers.get("accept-encoding", ""))
        for coding, suffix in _ENCODINGS:
            candidate = path.with_name(path.name + suffix)
            if coding in accepted and candidate.is_file():
                body = candidate
                headers["Content-Encoding"] = coding
                break
        return File(
            body,
            filename=path.name,
            media_type=media_type,
            headers=headers,
            content_disposition_type="inline",
            etag=None,
        )

    return [shell, service_worker, asset]
