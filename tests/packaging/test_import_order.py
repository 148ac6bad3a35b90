"""boot.js imports the app module by module in the order scripts/import_order.py computes: every
module after the modules it imports at module level, lazy imports left out."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_order", ROOT / "scripts/import_order.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_order"] = module
    spec.loader.exec_module(module)
    return module


io = _load()

SOURCES = {
    "app/__init__.py": "",
    "app/main.py": (
        "from typing import TYPE_CHECKING\n"
        "import js\n"
        "from app import ui\n"
        "from .net import connect\n"
        "if TYPE_CHECKING:\n"
        "    from app import typing_only\n"
        "def later():\n"
        "    from app import lazy\n"
    ),
    "app/ui.py": "import parley.protocol.codec\n",
    "app/net.py": "from . import ui\ntry:\n    from app import fallback\nexcept ImportError:\n    pass\n",
    "app/fallback.py": "",
    "app/typing_only.py": "",
    "app/lazy.py": "",
    "parley/__init__.py": "",
    "parley/protocol/__init__.py": "from .codec import encode\n",
    "parley/protocol/codec.py": "import msgspec\n",
    "app/unused.py": "",
}


def test_dependencies_come_first_and_lazy_imports_stay_lazy() -> None:
    order = io.import_order(io.zip_modules(list(SOURCES.items())), ["app.main"])
    assert order[-1] == "app.main"
    for mod, deps in {
        "app.main": ["app", "app.ui", "app.net"],
        "app.ui": ["parley", "parley.protocol", "parley.protocol.codec"],
        "app.net": ["app.ui", "app.fallback"],
        "parley.protocol": ["parley.protocol.codec"],
    }.items():
        for dep in deps:
            assert order.index(dep) < order.index(mod), (dep, mod, order)
    # typing-only, function-level and unreachable modules are not imported at start-up
    assert not {"app.typing_only", "app.lazy", "app.unused"} & set(order)
    assert len(order) == len(set(order))


def test_the_real_app_lists_its_entry_point_last() -> None:
    spec = importlib.util.spec_from_file_location("build_web", ROOT / "scripts" / "build_web.py")
    assert spec is not None and spec.loader is not None
    build_web = importlib.util.module_from_spec(spec)
    sys.modules["build_web"] = build_web
    spec.loader.exec_module(build_web)
    order = build_web.startup_modules(build_web.python_zip_members())
    assert order[-1] == "parley_web.main"
    assert "parley.crypto.backend" in order and "parley_web.ui" in order
    assert "segno" not in order  # the QR code library is imported only when a link is shown
