"""Code and docs cite what ships with the product: the IMv1 spec is ``docs/imv1.md``, cited as
``docs/imv1.md §N`` (or linked as ``imv1.md#sN-M``), and every cited section exists. The team
handbook is not part of the repository, so its file names must not appear."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "docs" / "imv1.md"
SCANNED = ("shared", "server", "client", "web/parley_web", "tests", "bench", "browser_tests", "docs",
           "scripts", "docker", "README.md", "web/boot.js")  # fmt: skip
SUFFIXES = {".py", ".md", ".js", ".mjs", ".sh", ".toml", ".yaml", ".yml", ""}
HANDBOOK = re.compile(r"\b(?:CRYPTO|SERVER|BROWSER|INFRA|ARCHITECTURE|STYLE)\.md\b")
CITE = re.compile(r"imv1\.md ?§(P(?:\.\d+)?|\d+(?:\.\d+)?)")
LINK = re.compile(r"imv1\.md#(s[0-9P]+(?:-\d+)?)")


def _files() -> list[Path]:
    out: list[Path] = []
    for name in SCANNED:
        path = ROOT / name
        if path.is_file():
            out.append(path)
        elif path.is_dir():
            out.extend(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix in SUFFIXES
                and "node_modules" not in p.parts
                and "__pycache__" not in p.parts
            )
    return sorted(out)


def _anchors() -> set[str]:
    return set(re.findall(r'<a id="(s[0-9P]+(?:-\d+)?)"></a>', SPEC.read_text(encoding="utf-8")))


def test_the_spec_has_its_anchors() -> None:
    anchors = _anchors()
    for must in ("sP", "sP-1", "sP-6", "s0", "s2", "s3-5", "s4-2", "s7-3", "s9-3", "s10", "s13"):
        assert must in anchors


def test_citations_resolve_and_nothing_cites_the_handbook() -> None:
    anchors = _anchors()
    problems: list[str] = []
    files = _files()
    for path in files:
        if path == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        rel = path.relative_to(ROOT)
        problems += [f"{rel}: cites {m} (cite docs/ instead)" for m in HANDBOOK.findall(text)]
        cited = {"s" + n.replace(".", "-") for n in CITE.findall(text)} | set(LINK.findall(text))
        problems += [f"{rel}: no section {c} in docs/imv1.md" for c in sorted(cited - anchors)]
    assert len(files) > 100
    assert problems == []


def test_the_check_sees_a_bad_citation() -> None:
    assert HANDBOOK.findall("see CRYPTO.md §3.5") == ["CRYPTO.md"]
    assert CITE.findall("(docs/imv1.md §3.5, §P.1)") == ["3.5"]
    assert CITE.findall("docs/imv1.md §P.3") == ["P.3"]
    assert LINK.findall("[x](imv1.md#s7-5)") == ["s7-5"]
