"""Build the browser client's assets into web/dist/ (one step, idempotent, fast when unchanged).

Layout of the output (served by ``parley_server.webassets``):

    web/dist/index.html            the HTML shell, hashed asset URLs filled in
    web/dist/sw.js                 the service worker, with the precache list and build version
    web/dist/manifest.json         logical name -> URL, the precache list, the build version
    web/dist/assets/<group>-<h>/   content-hashed directories (files inside keep their names,
                                   because Pyodide and the libsodium wrapper find siblings by name)
    web/dist/assets/<name>-<h>.<ext>  content-hashed single files
    every asset > 1 KiB also as .gz (and .br when the ``brotli`` module is installed)

A content-hashed path never changes meaning, so an output that already exists is reused as is:
a rebuild with nothing changed only hashes the inputs. Stale outputs are removed at the end.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))  # the sibling build modules below

from import_order import import_order, zip_modules  # noqa: E402

WEB = ROOT / "web"
NODE_MODULES = WEB / "node_modules"
DIST = WEB / "dist"
ASSETS = DIST / "assets"
WHEELS = WEB / ".wheels"
SHARED = ROOT / "shared" / "parley"
APP = WEB / "parley_web"
SNAPSHOTS = WEB / ".snapshot"  # made once per Pyodide build (scripts/make_snapshot.mjs)
NPM_STAMP = NODE_MODULES / ".parley-lock-sha256"

PYODIDE_CORE = (
    "pyodide.mjs",
    "pyodide.asm.mjs",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
)
COMPRESS_MIN = 1024
ZIP_EPOCH = (2020, 1, 1, 0, 0, 0)

try:  # optional: brotli beats gzip by ~20 % on the wasm; browsers send br only over HTTPS/localhost
    import brotli as _brotli  # type: ignore[import-untyped,unused-ignore]
except ImportError:  # pragma: no cover - depends on the environment
    _brotli = None


def log(msg: str) -> None:
    print(f"build_web: {msg}", flush=True)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Group:
    """A set of files published together under one content-hashed directory."""

    name: str
    files: dict[str, bytes] = field(default_factory=dict)

    def digest(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + sha256(self.files[name]).encode() + b"\n")
        return h.hexdigest()[:12]


def ensure_node_modules() -> None:
    """``npm ci`` when node_modules is missing or was installed from another package-lock."""
    lock_sha = sha256((WEB / "package-lock.json").read_bytes())
    if NPM_STAMP.exists() and NPM_STAMP.read_text().strip() == lock_sha:
        return
    log("npm ci (node_modules missing or stale)")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(WEB)], check=True)
    NPM_STAMP.write_text(lock_sha + "\n")


def fetch_wheels() -> Path:
    """Fetch the pinned browser wheels (scripts/fetch_wheels.py) and return the msgspec wheel."""
    spec = importlib.util.spec_from_file_location("fetch_wheels", ROOT / "scripts/fetch_wheels.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if module.main({"browser"}) != 0:
        raise SystemExit("build_web: fetching wheels failed")
    for line in (WEB / "wheels.lock").read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "browser" and parts[1].startswith("msgspec=="):
            return WHEELS / parts[3]
    raise SystemExit("build_web: no browser msgspec wheel in web/wheels.lock")


def pyodide_group(wheel: Path) -> Group:
    """Pyodide core plus our msgspec wheel, with the lock patched to name that wheel.

    Pyodide fetches lock entries with an SRI check built from ``sha256``: the lock must carry
    the real digest of the file we serve or Chromium blocks it.
    """
    src = NODE_MODULES / "pyodide"
    group = Group("pyodide", {name: (src / name).read_bytes() for name in PYODIDE_CORE})
    lock = json.loads((src / "pyodide-lock.json").read_bytes())
    data = wheel.read_bytes()
    entry = lock["packages"]["msgspec"]
    entry["file_name"] = wheel.name
    entry["version"] = wheel.name.split("-")[1]
    entry["sha256"] = sha256(data)
    group.files["pyodide-lock.json"] = json.dumps(lock, separators=(",", ":")).encode()
    group.files[wheel.name] = data
    return group


def python_snapshot() -> tuple[bytes, dict[str, bytes]]:
    """A memory snapshot of the bare interpreter, made with Node from the very Pyodide files we
    ship, and its compressed variants. Making one is not deterministic (heap addresses, hash
    seed), so it is made once per Pyodide build and kept in web/.snapshot/: rebuilds then publish
    the same bytes and hash. Its brotli is the slow kind (about 40 s, once): 4.1 MB on the wire
    for every first visit, against 4.8 MB at the default level."""
    src = NODE_MODULES / "pyodide"
    key = sha256(b"".join((src / name).read_bytes() for name in PYODIDE_CORE))[:16]
    cached = SNAPSHOTS / f"{key}.bin"
    if not cached.exists():
        log("making the Python memory snapshot (node scripts/make_snapshot.mjs)")
        SNAPSHOTS.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.tmp{os.getpid()}")
        script = ROOT / "scripts" / "make_snapshot.mjs"
        subprocess.run(["node", str(script), str(src), str(tmp)], check=True)
        tmp.replace(cached)
        for old in SNAPSHOTS.iterdir():
            if not old.name.startswith(key):
                old.unlink()
    data = cached.read_bytes()
    makers: dict[str, Callable[[bytes], bytes]] = {
        ".gz": lambda d: gzip.compress(d, compresslevel=9, mtime=0)
    }
    if _brotli is not None:
        makers[".br"] = lambda d: bytes(_brotli.compress(d, quality=11, lgwin=24))
    variants = {}
    for suffix, make in makers.items():  # compressed once, like the snapshot itself
        path = cached.with_name(cached.name + suffix)
        if not path.exists():
            write_atomic(path, make(data))
        variants[suffix] = path.read_bytes()
    return data, variants


def sodium_group() -> Group:
    """libsodium-wrappers-sumo ESM with its bare ``"libsodium-sumo"`` import made relative."""
    wrappers = NODE_MODULES / "libsodium-wrappers-sumo/dist/modules-sumo-esm/libsodium-wrappers.mjs"
    core = NODE_MODULES / "libsodium-sumo/dist/modules-sumo-esm/libsodium-sumo.mjs"
    text = wrappers.read_bytes()
    patched = text.replace(b'from"libsodium-sumo"', b'from"./libsodium-sumo.mjs"')
    patched = patched.replace(b"from 'libsodium-sumo'", b"from './libsodium-sumo.mjs'")
    patched = patched.replace(b'from "libsodium-sumo"', b'from "./libsodium-sumo.mjs"')
    if patched == text:
        raise SystemExit("build_web: libsodium wrapper import of 'libsodium-sumo' not found")
    return Group(
        "sodium", {"libsodium-wrappers.mjs": patched, "libsodium-sumo.mjs": core.read_bytes()}
    )


# What boot.js imports, module by module, before it calls ``parley_web.main.start()``: the contract,
# the libsodium.js backend (imported by name: nothing imports it statically) and the app.
STARTUP_ROOTS = ["parley.protocol", "parley.crypto.backend", "parley_web.main"]


def python_zip_members() -> list[tuple[str, Path]]:
    """The shared ``parley`` package (minus the PyNaCl backend) and the web ``app`` package."""
    members: list[tuple[str, Path]] = []
    for path in sorted(SHARED.rglob("*")):
        rel = path.relative_to(SHARED)
        wanted = path.suffix in (".py", ".typed") and path.name != "_nacl.py"
        if wanted and path.is_file() and "__pycache__" not in rel.parts:
            members.append((f"parley/{rel.as_posix()}", path))
    for path in sorted(APP.glob("*.py")):
        members.append((f"parley_web/{path.name}", path))
    # segno (pure Python, pinned in pyproject's server extra): the QR code of a device link
    # code; imported only when a link is shown
    import segno

    for path in sorted(Path(segno.__file__).parent.glob("*.py")):
        if path.name != "cli.py":
            members.append((f"segno/{path.name}", path))
    return members


def startup_modules(members: list[tuple[str, Path]]) -> list[str]:
    """The app's modules in the order boot.js imports them (scripts/import_order.py)."""
    sources = zip_modules([(arc, path.read_text()) for arc, path in members])
    return import_order(sources, STARTUP_ROOTS)


def python_zip(members: list[tuple[str, Path]]) -> bytes:
    """Deterministic (sorted names, fixed timestamps) so unchanged sources give the same hash."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for arcname, path in members:
            info = zipfile.ZipInfo(arcname, ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)


def compressed_variants(data: bytes) -> dict[str, bytes]:
    """Pre-compressed bodies worth serving (at least 10 % smaller than the original)."""
    out: dict[str, bytes] = {}
    if len(data) < COMPRESS_MIN:
        return out
    gz = gzip.compress(data, compresslevel=9, mtime=0)
    if len(gz) < 0.9 * len(data):
        out[".gz"] = gz
    if _brotli is not None:
        br = _brotli.compress(data, quality=11 if len(data) < 4_000_000 else 9)
        if len(br) < 0.9 * len(data):
            out[".br"] = br
    return out


def publish_group(group: Group) -> str:
    """Write the group under assets/<name>-<hash>/ unless it already exists. Returns the dir."""
    dirname = f"{group.name}-{group.digest()}"
    final = ASSETS / dirname
    if final.exists():
        log(f"{dirname}/ up to date")
        return dirname
    tmp = ASSETS / f".{dirname}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    started = time.monotonic()
    for name, data in sorted(group.files.items()):
        (tmp / name).write_bytes(data)
        for suffix, body in compressed_variants(data).items():
            (tmp / (name + suffix)).write_bytes(body)
    tmp.rename(final)
    log(f"{dirname}/ written ({len(group.files)} files, {time.monotonic() - started:.1f} s)")
    return dirname


def publish_file(stem: str, ext: str, data: bytes, variants: dict[str, bytes] | None = None) -> str:
    """Write assets/<stem>-<hash><ext> (plus compressed variants) unless present."""
    name = f"{stem}-{sha256(data)[:12]}{ext}"
    target = ASSETS / name
    if not target.exists():
        for suffix, body in (compressed_variants(data) if variants is None else variants).items():
            write_atomic(ASSETS / (name + suffix), body)
        write_atomic(target, data)
        log(f"{name} written")
    return name


def render(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    if "{{" in template:
        raise SystemExit(
            f"build_web: unfilled placeholder near {template[template.index('{{') :][:40]!r}"
        )
    return template


def build() -> dict[str, object]:
    started = time.monotonic()
    ensure_node_modules()
    wheel = fetch_wheels()
    ASSETS.mkdir(parents=True, exist_ok=True)

    py_dir = publish_group(pyodide_group(wheel))
    sodium_dir = publish_group(sodium_group())
    members = python_zip_members()
    app_zip = publish_file("parley-app", ".zip", python_zip(members))
    snapshot = publish_file("python-snapshot", ".bin", *python_snapshot())
    boot_js = publish_file("boot", ".js", (WEB / "boot.js").read_bytes())
    style_css = publish_file("style", ".css", (WEB / "style.css").read_bytes())

    url = "/assets/"
    assets = {
        "pyodide/": f"{url}{py_dir}/",
        "pyodide.mjs": f"{url}{py_dir}/pyodide.mjs",
        "pyodide.asm.mjs": f"{url}{py_dir}/pyodide.asm.mjs",
        "pyodide.asm.wasm": f"{url}{py_dir}/pyodide.asm.wasm",
        "python_stdlib.zip": f"{url}{py_dir}/python_stdlib.zip",
        "pyodide-lock.json": f"{url}{py_dir}/pyodide-lock.json",
        "msgspec.whl": f"{url}{py_dir}/{wheel.name}",
        "sodium.mjs": f"{url}{sodium_dir}/libsodium-wrappers.mjs",
        "libsodium-sumo.mjs": f"{url}{sodium_dir}/libsodium-sumo.mjs",
        "app.zip": f"{url}{app_zip}",
        "python-snapshot.bin": f"{url}{snapshot}",
        "boot.js": f"{url}{boot_js}",
        "style.css": f"{url}{style_css}",
    }
    precache = sorted(v for k, v in assets.items() if not k.endswith("/"))
    version = sha256("\n".join(precache).encode())[:12]
    boot_config = {
        "version": version,
        "pyodide": assets["pyodide/"],
        "pyodideModule": assets["pyodide.mjs"],
        "sodium": assets["sodium.mjs"],
        "app": assets["app.zip"],
        "snapshot": assets["python-snapshot.bin"],
        "modules": startup_modules(members),
        "sw": "/sw.js",
    }
    shell = render(
        (WEB / "index.html").read_text(),
        {
            "style": assets["style.css"],
            "boot": assets["boot.js"],
            "pyodide_mjs": assets["pyodide.mjs"],
            "pyodide_asm_mjs": assets["pyodide.asm.mjs"],
            "pyodide_wasm": assets["pyodide.asm.wasm"],
            "stdlib": assets["python_stdlib.zip"],
            "lock": assets["pyodide-lock.json"],
            "msgspec": assets["msgspec.whl"],
            "sodium": assets["sodium.mjs"],
            "libsodium": assets["libsodium-sumo.mjs"],
            "app_zip": assets["app.zip"],
            "snapshot": assets["python-snapshot.bin"],
            "config": json.dumps(boot_config).replace("</", "<\\/"),
        },
    )
    sw = render(
        (WEB / "sw.js").read_text(),
        {"version": version, "precache": json.dumps(precache)},
    )
    manifest: dict[str, object] = {"version": version, "assets": assets, "precache": precache}
    write_atomic(DIST / "index.html", shell.encode())
    write_atomic(DIST / "sw.js", sw.encode())
    write_atomic(DIST / "manifest.json", json.dumps(manifest, indent=2).encode() + b"\n")
    prune({py_dir, sodium_dir, app_zip, snapshot, boot_js, style_css})
    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    log(
        f"done in {time.monotonic() - started:.1f} s: version {version}, {total / 1e6:.1f} MB in {ASSETS}"
    )
    return manifest


def prune(keep: set[str]) -> None:
    """Remove outputs of earlier builds (anything in assets/ not produced by this one)."""
    for path in ASSETS.iterdir():
        base = path.name
        for suffix in (".gz", ".br"):
            base = base.removesuffix(suffix)
        if base not in keep:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            log(f"removed stale {path.name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="delete web/dist first")
    args = parser.parse_args(argv)
    if args.clean:
        shutil.rmtree(DIST, ignore_errors=True)
    build()
    return 0


if __name__ == "__main__":
    sys.exit(main())
