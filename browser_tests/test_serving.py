"""How the server serves the built client: cache headers, encodings, MIME types, the 503."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from litestar import Litestar
from litestar.testing import TestClient

from parley_server.webassets import IMMUTABLE, accepted_encodings, web_routes


def _manifest(web_dist: Path) -> dict[str, str]:
    assets: dict[str, str] = json.loads((web_dist / "manifest.json").read_text())["assets"]
    return assets


def test_shell_is_no_cache_and_names_hashed_assets(base_url: str, web_dist: Path) -> None:
    r = httpx.get(base_url + "/", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-cache"
    assert "script-src 'self' 'wasm-unsafe-eval';" in r.headers["content-security-policy"]
    assets = _manifest(web_dist)
    for name in ("boot.js", "style.css", "pyodide.asm.wasm", "app.zip"):
        assert assets[name] in r.text
    again = httpx.get(base_url + "/", headers={"If-None-Match": r.headers["etag"]}, timeout=10)
    assert again.status_code == 304


def test_service_worker_at_stable_url(base_url: str) -> None:
    r = httpx.get(base_url + "/sw.js", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["cache-control"] == "no-cache"
    assert "{{" not in r.text


def test_assets_immutable_compressed_typed(base_url: str, web_dist: Path) -> None:
    assets = _manifest(web_dist)
    wasm = assets["pyodide.asm.wasm"]
    plain = (web_dist / wasm.removeprefix("/")).read_bytes()
    with httpx.Client(base_url=base_url, timeout=30) as client:
        raw = client.get(wasm, headers={"Accept-Encoding": "identity"})
        assert raw.headers["content-type"] == "application/wasm"
        assert raw.headers["cache-control"] == IMMUTABLE
        assert "content-encoding" not in raw.headers
        assert raw.content == plain
        gz = client.get(wasm, headers={"Accept-Encoding": "gzip"})
        assert gz.headers["content-encoding"] == "gzip"
        assert int(gz.headers["content-length"]) < len(plain) // 2
        assert gz.content == plain  # httpx decodes: the same bytes arrive
        assert "accept-encoding" in gz.headers["vary"].lower()
        refused = client.get(wasm, headers={"Accept-Encoding": "gzip;q=0"})
        assert "content-encoding" not in refused.headers
        for name in ("pyodide.mjs", "boot.js", "sodium.mjs"):
            assert client.get(assets[name]).headers["content-type"].startswith("text/javascript")
        assert client.get("/assets/nope-000000000000.js").status_code == 404
        assert client.get("/assets/../pyproject.toml").status_code == 404
        assert client.get(wasm + ".gz").status_code == 404  # variants only via negotiation


def test_accept_encoding_parsing() -> None:
    assert accepted_encodings("gzip, deflate, br, zstd") == {"gzip", "deflate", "br", "zstd"}
    assert accepted_encodings("br;q=0, gzip;q=0.5") == {"gzip"}
    assert accepted_encodings("") == set()
    assert accepted_encodings("GZIP;q=bogus") == set()


def test_missing_build_answers_503(tmp_path: Path) -> None:
    with TestClient(Litestar(route_handlers=web_routes(tmp_path / "nothing"))) as client:
        r = client.get("/")
        assert r.status_code == 503
        assert "scripts/build_web.py" in r.text
        assert client.get("/sw.js").status_code == 404
        assert client.get("/assets/boot.js").status_code == 404


def test_loopback_guard_classifies_hosts() -> None:
    """The guard every e2e context uses: only loopback (and in-page data/blob URLs) pass."""
    from browser_tests.conftest import is_local

    assert is_local("http://127.0.0.1:8000/assets/x.js")
    assert is_local("ws://localhost:1/ws")
    assert is_local("http://[::1]:8000/")
    assert is_local("data:,")
    assert not is_local("https://cdn.jsdelivr.net/pyodide/v0.28.0/full/msgspec.whl")
    assert not is_local("http://127.0.0.1.example.com/")
    assert not is_local("http://10.0.0.1/")
