"""The order in which the browser imports the app's modules, computed at build time.

Importing ``parley_web.main`` in one go is one main-thread task of 200-450 ms (every module of the app
and of the shared package, compiled and run back to back), and the page ignores input meanwhile.
boot.js instead imports the modules one at a time in this order and yields to the browser
between slices, so no slice is long. The order is a depth-first post-order over each module's
module-level imports, so every module's own dependencies are already imported when its turn
comes and each step compiles one file.

Only imports at module level count (not ``if TYPE_CHECKING:`` blocks, nor imports inside
functions, which stay lazy); only modules inside the app zip are listed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping


def _module_level(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            test = ast.unparse(node.test)
            if "TYPE_CHECKING" not in test:
                yield from _module_level(node.body)
                yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            yield from _module_level(node.body)


def _imports(name: str, source: str, is_package: bool, known: set[str]) -> list[str]:
    """The modules of ``known`` that module ``name`` imports at module level, in source order."""
    found: list[str] = []
    package = name if is_package else name.rpartition(".")[0]
    for node in _module_level(ast.parse(source).body):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            # ``from pkg import sub`` may name a submodule
            targets = [mod, *(f"{mod}.{alias.name}" for alias in node.names)]
        for target in targets:
            # ``import a.b.c`` imports a, a.b and a.b.c
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in known and prefix != name and prefix not in found:
                    found.append(prefix)
    return found


def import_order(sources: Mapping[str, tuple[str, bool]], roots: list[str]) -> list[str]:
    """Post-order of ``roots`` over ``sources`` (module name -> (source, is_package))."""
    known = set(sources)
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        source, is_package = sources[name]
        for dep in _imports(name, source, is_package, known):
            visit(dep)
        order.append(name)

    for root in roots:
        if root in known:
            visit(root)
    return order


def zip_modules(members: list[tuple[str, str]]) -> dict[str, tuple[str, bool]]:
    """Module name -> (source, is_package) for the ``.py`` members (arcname, source) of a zip."""
    out: dict[str, tuple[str, bool]] = {}
    for arcname, source in members:
        if not arcname.endswith(".py"):
            continue
        parts = arcname[:-3].split("/")
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        out[name] = (source, is_package)
    return out
