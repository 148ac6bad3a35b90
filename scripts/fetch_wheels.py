"""Fetch the pinned Pyodide wheels listed in web/wheels.lock into web/.wheels/.

Each wheel is downloaded from PyPI with pip (for its platform) and checked against the pinned
sha256; a mismatch deletes the file and fails. Already-present, matching files are kept.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "web" / "wheels.lock"
DEST = ROOT / "web" / ".wheels"
EMSCRIPTEN = ["--platform", "pyemscripten_2026_0_wasm32", "--python-version", "3.14"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(roles: set[str]) -> int:
    DEST.mkdir(parents=True, exist_ok=True)
    for line in LOCK.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        role, req, digest, filename = line.split()
        if role not in roles:
            continue
        target = DEST / filename
        if target.exists() and sha256(target) == digest:
            continue
        extra = EMSCRIPTEN if "pyemscripten" in filename else []
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            *extra,
            req,
            "-d",
            str(DEST),
        ]
        subprocess.run(cmd, check=True)
        if not target.exists() or sha256(target) != digest:
            target.unlink(missing_ok=True)
            print(f"fetch_wheels: {filename}: sha256 mismatch or missing", file=sys.stderr)
            return 1
        print(f"fetch_wheels: {filename} ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(set(sys.argv[1:]) or {"browser", "test"}))
