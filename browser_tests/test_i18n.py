"""The two languages hold the same keys and the same placeholders (no browser needed: the
string tables are plain Python)."""

from __future__ import annotations

import importlib.util
import string
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tables() -> tuple[dict[str, str], dict[str, str]]:
    spec = importlib.util.spec_from_file_location(
        "web_i18n", ROOT / "web" / "parley_web" / "i18n.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.EN, module.ZH


def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def test_same_keys_and_placeholders() -> None:
    en, zh = _tables()
    assert set(en) == set(zh)
    for key in en:
        assert _fields(en[key]) == _fields(zh[key]), key
        assert zh[key] != "" and en[key] != ""


def test_every_key_the_ui_uses_exists() -> None:
    """Keys written literally in the app and the shell (t("..."), data-i18n="...")."""
    import re

    en, _ = _tables()
    used: set[str] = set()
    app = [p for p in (ROOT / "web" / "parley_web").glob("*.py") if p.name != "i18n.py"]
    for path in [*app, ROOT / "web" / "index.html"]:
        text = path.read_text()
        used |= set(re.findall(r'\bt\("([a-z_.]+)"', text))
        used |= set(re.findall(r'data-i18n(?:-placeholder)?="([a-z_.]+)"', text))
    assert used, "found no keys: the patterns above are wrong"
    assert sorted(used - set(en)) == []


def test_every_error_code_has_a_readable_translation() -> None:
    """Every stable error code the server can answer shows as a sentence in both languages
    (``err.code.<code>``, used by parley_web/error_text.py), never as the raw server message."""
    from parley.protocol.errors import ErrorCode

    en, zh = _tables()
    missing = [c.value for c in ErrorCode if f"err.code.{c.value}" not in en]
    assert missing == []
    for c in ErrorCode:
        key = f"err.code.{c.value}"
        assert zh[key] != en[key], key  # translated, not copied
        assert f"{c.value}:" not in en[key] and en[key].endswith("."), key  # a sentence
