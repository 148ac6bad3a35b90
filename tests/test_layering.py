"""The sans-IO boundary of the shared package, checked rather than promised.

``parley.protocol``, ``parley.sync``, the client engine (``parley.client``) and the E2E core
(``parley.client.e2e``, ``parley.crypto``) take input, time and randomness as arguments and
return output or effects. So none of their modules may import an event loop, a clock, a
random source, a database or the browser's FFI. The async drivers that run them live in
modules of their own, exempt by name: a module whose last name part ends in ``session`` or
``driver``, or one listed in ``DRIVERS``. A new driver either follows the naming rule or is
added to ``DRIVERS``. The crypto backend implementations are the platform bindings
(``tests/crypto/test_layering.py`` checks that only they touch the primitive libraries).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import parley

ROOT = Path(parley.__file__).parent
CORE_PACKAGES = ("protocol", "sync", "client", "crypto")
FORBIDDEN = frozenset(
    {
        "asyncio",
        "time",
        "secrets",
        "random",
        "sqlite3",
        "js",
        "pyodide",
        "socket",
        "subprocess",
        "threading",
        "importlib",
    }
)
DRIVER_SUFFIXES = ("session", "driver")
DRIVERS = frozenset({"parley.client.tasks"})
"""Async helpers of the drivers that do not follow the naming rule."""
PLATFORM_BINDINGS = frozenset({"parley.crypto._nacl", "parley.crypto._sodiumjs"})


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_driver(module: str) -> bool:
    return module in DRIVERS or module.rsplit(".", 1)[-1].endswith(DRIVER_SUFFIXES)


def _core_modules() -> list[tuple[str, Path]]:
    found = []
    for package in CORE_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = _module_name(path)
            if not is_driver(name) and name not in PLATFORM_BINDINGS:
                found.append((name, path))
    return found


def imported_modules(source: str, module: str) -> set[str]:
    """Every module ``source`` imports, anywhere in the file (function bodies included),
    relative imports resolved against ``module``; ``__import__("x")`` counts too."""
    names: set[str] = set()
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def violations(source: str, module: str) -> list[str]:
    out = []
    for name in sorted(imported_modules(source, module)):
        if name.split(".")[0] in FORBIDDEN:
            out.append(f"{module} imports {name}")
        elif name.startswith("parley.") and is_driver(name):
            out.append(f"{module} imports the driver {name}")
    return out


CORE = _core_modules()


def test_the_core_is_found() -> None:
    names = {name for name, _ in CORE}
    for must in (
        "parley.protocol.codec",
        "parley.sync.conversation",
        "parley.client.engine",
        "parley.client.e2e.pairwise",
        "parley.crypto.ratchet",
    ):
        assert must in names
    assert "parley.client.session" not in names
    assert len(CORE) >= 50


@pytest.mark.parametrize(("module", "path"), CORE, ids=[name for name, _ in CORE])
def test_core_module_is_sans_io(module: str, path: Path) -> None:
    assert violations(path.read_text(encoding="utf-8"), module) == []


@pytest.mark.parametrize(
    "source",
    [
        "import time",
        "import asyncio.tasks",
        "from random import random",
        "import secrets as s",
        "def f():\n    import sqlite3\n",
        "from js import document",
        "t = __import__('time')",
        "from parley.client import session",
        "from .session import Session",
    ],
)
def test_the_check_catches_a_planted_import(source: str) -> None:
    assert violations(source, "parley.client.engine")


def test_drivers_are_exempt_by_name_only() -> None:
    assert is_driver("parley.client.session")
    assert is_driver("parley.client.e2e_driver")
    assert is_driver("parley.client.tasks")
    assert not is_driver("parley.client.engine")
    assert not is_driver("parley.sync.streams")
