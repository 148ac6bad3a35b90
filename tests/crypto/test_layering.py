"""Layering rules: primitives only through parley.crypto.backend; sans-IO."""

from __future__ import annotations

import ast
from pathlib import Path

import parley.crypto
from parley.crypto import backend

PKG = Path(parley.crypto.__file__).parent
BACKEND_IMPLS = {"_nacl.py", "_sodiumjs.py"}
FORBIDDEN = {
    "nacl",
    "socket",
    "asyncio",
    "sqlite3",
    "urllib",
    "http",
    "subprocess",
    "js",
    "pyodide",
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_backend_touches_primitive_libraries() -> None:
    checked = 0
    for path in sorted(PKG.glob("*.py")):
        if path.name in BACKEND_IMPLS:
            continue
        checked += 1
        for name in _imports(path):
            top = name.split(".")[0]
            assert top not in FORBIDDEN, f"{path.name} imports {name}"
            if name.startswith("parley.crypto._") and path.name != "backend.py":
                assert name in ("parley.crypto._secret",), f"{path.name} imports {name}"
    assert checked >= 15


def test_backend_exports_the_contract() -> None:
    for name in [
        "random_bytes",
        "x25519",
        "x25519_base",
        "ed25519_seed_keypair",
        "ed25519_sign",
        "ed25519_verify",
        "ed25519_pk_to_x25519",
        "ed25519_sk_to_x25519",
        "aead_encrypt",
        "aead_decrypt",
        "box_keypair",
        "box_seal",
        "box_seal_open",
        "pad",
        "unpad",
        "pwhash_argon2id",
        "ss_init_push",
        "ss_push",
        "ss_init_pull",
        "ss_pull",
        "PWHASH_OPSLIMIT_MODERATE",
        "PWHASH_MEMLIMIT_MODERATE",
        "PWHASH_OPSLIMIT_MIN",
        "PWHASH_MEMLIMIT_MIN",
        "SS_TAG_MESSAGE",
        "SS_TAG_FINAL",
        "NAME",
    ]:
        assert hasattr(backend, name), name
    assert backend.SS_HEADER_BYTES == 24 and backend.SS_ABYTES == 17
    assert backend.NAME in ("pynacl", "libsodium.js")
