"""docs/imv1.md §2 and parley.crypto.constants agree: every constant of the spec's table that
the code defines has the value the spec states (numbers, durations, text constants)."""

from __future__ import annotations

import re
from pathlib import Path

import parley.crypto.constants as c

SPEC = Path(__file__).resolve().parents[1] / "docs" / "imv1.md"
UNITS = {"days": 86_400_000, "hours": 3_600_000, "hour": 3_600_000, "s": 1000}


def _table() -> list[tuple[list[str], str]]:
    text = SPEC.read_text(encoding="utf-8")
    section = text[text.index('<a id="s2"></a>') : text.index('<a id="s3"></a>')]
    rows = []
    for line in section.splitlines():
        cells = [x.strip() for x in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].startswith("`"):
            rows.append((re.findall(r"`([A-Z0-9_]+)`", cells[0]), cells[1]))
    return rows


def _values(cell: str) -> list[object] | None:
    """The value(s) of one table cell, or None when it is not a plain value."""
    if m := re.fullmatch(r'`"(.+)"` = `([0-9a-f]+)`', cell):
        return [bytes.fromhex(m.group(2))]
    if m := re.fullmatch(r"`0x([0-9A-Fa-f]{2})\*(\d+)`", cell):
        return [bytes.fromhex(m.group(1)) * int(m.group(2))]
    if m := re.fullmatch(r"`0x([0-9A-Fa-f]{4})` \(2 B\)", cell):
        return [bytes.fromhex(m.group(1))]
    out: list[object] = []
    for part in cell.split(" / "):
        part = part.replace(" messages", "").replace(" B", "").strip()
        if m := re.fullmatch(r"(\d[\d ]*)", part):
            out.append(int(m.group(1).replace(" ", "")))
        elif m := re.fullmatch(r"(\d+) (days|hours|hour|s)", part):
            out.append(int(m.group(1)) * UNITS[m.group(2)])
        elif m := re.fullmatch(r"`0x([0-9A-Fa-f]{2})`", part):
            out.append(int(m.group(1), 16))
        else:
            return None
    return out


def test_the_spec_table_matches_the_code() -> None:
    checked, mismatched = 0, []
    for names, cell in _table():
        values = _values(cell)
        if values is None or len(values) != len(names):
            continue
        for name, value in zip(names, values, strict=True):
            if not hasattr(c, name):
                continue
            code = getattr(c, name)
            if isinstance(value, bytes) and isinstance(code, str):
                code = code.encode()
            if isinstance(value, int) and isinstance(code, bytes) and len(code) == 1:
                code = code[0]
            checked += 1
            if code != value:
                mismatched.append(f"{name}: spec {value!r}, code {code!r}")
    assert mismatched == []
    assert checked >= 50
