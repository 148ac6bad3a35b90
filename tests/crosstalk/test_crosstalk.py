"""One conversation across runtimes: CPython (PyNaCl) on one side, Pyodide (libsodium.js) on
the other, talking through a pipe to ``node tests/crosstalk/peer.mjs``.

Covered, in both directions: X3DH (each side initiates one session, with a one-time prekey),
Double Ratchet messages including DH-ratchet steps and out-of-order delivery, Sender Key
distribution (SKDM carried over the pairwise session) and group messages, out of order too,
plus rejection of a tampered message on each side.

The ``cpython`` parametrization runs the same peer under CPython: a baseline for the harness.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parley.crypto.errors import BadSignature, DecryptionFailed
from tests.crosstalk.peer import Peer

ROOT = Path(__file__).resolve().parents[2]
GROUP = bytes(range(16)).hex()
REMOTE_CMDS = {
    "pyodide": ["node", str(ROOT / "tests" / "crosstalk" / "peer.mjs")],
    "cpython": [sys.executable, "-m", "tests.crosstalk.peer"],
}
EXPECTED_BACKEND = {"pyodide": "libsodium.js", "cpython": "pynacl"}


class RemoteError(Exception):
    pass


class Remote:
    """The peer process; ``call`` sends one request line and reads one response line."""

    def __init__(self, cmd: list[str]) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "shared"), str(ROOT)])
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip

    def call(self, op: str, **args: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"peer exited (rc={self.proc.wait(timeout=10)}) during {op!r}")
        resp = json.loads(line)
        if "error" in resp:
            raise RemoteError(resp["error"])
        return resp["ok"]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(params=["pyodide", "cpython"])
def remote(request: pytest.FixtureRequest) -> Iterator[tuple[str, Remote]]:
    kind: str = request.param
    if kind == "pyodide" and shutil.which("node") is None:
        pytest.skip("node is not installed")
    r = Remote(REMOTE_CMDS[kind])
    try:
        yield kind, r
    finally:
        r.close()


def m(text: str) -> str:
    return text.encode().hex()


def txt(hexstr: str) -> str:
    return bytes.fromhex(hexstr).decode()


def flip(hexstr: str, index: int) -> str:
    b = bytearray(bytes.fromhex(hexstr))
    b[index] ^= 0x01
    return b.hex()


def test_conversation_across_runtimes(remote: tuple[str, Remote]) -> None:
    kind, bob = remote
    alice = Peer()  # this process: CPython, PyNaCl
    hello = bob.call("hello")
    assert hello["backend"] == EXPECTED_BACKEND[kind]
    assert alice.op_hello()["backend"] == "pynacl"

    # --- X3DH, CPython initiates ---------------------------------------------------------
    pkm = alice.op_initiate("ab", bob.call("bundle"), m("hi bob, from CPython"))
    assert txt(bob.call("accept", session="ab", msg=pkm)) == "hi bob, from CPython"

    # --- Double Ratchet, both directions, several DH-ratchet steps --------------------------
    for i in range(3):
        r = bob.call("encrypt", session="ab", pt=m(f"bob->alice {i}"))
        assert txt(alice.op_decrypt("ab", r)) == f"bob->alice {i}"
        a = alice.op_encrypt("ab", m(f"alice->bob {i}"))
        assert txt(bob.call("decrypt", session="ab", msg=a)) == f"alice->bob {i}"

    # out of order (skipped message keys) in both directions, across a ratchet step
    a1, a2, a3 = (alice.op_encrypt("ab", m(f"a{i}")) for i in (1, 2, 3))
    assert txt(bob.call("decrypt", session="ab", msg=a3)) == "a3"
    b1, b2 = (bob.call("encrypt", session="ab", pt=m(f"b{i}")) for i in (1, 2))
    assert txt(alice.op_decrypt("ab", b2)) == "b2"
    assert txt(bob.call("decrypt", session="ab", msg=a1)) == "a1"
    assert txt(alice.op_decrypt("ab", b1)) == "b1"
    assert txt(bob.call("decrypt", session="ab", msg=a2)) == "a2"

    # replays and tampering are refused on both sides, and the sessions still work after
    with pytest.raises(RemoteError, match="DuplicateMessage"):
        bob.call("decrypt", session="ab", msg=a2)
    t = alice.op_encrypt("ab", m("tampered"))
    with pytest.raises(RemoteError, match="DecryptionFailed"):
        bob.call("decrypt", session="ab", msg=flip(t, len(t) // 2 - 1))
    assert txt(bob.call("decrypt", session="ab", msg=t)) == "tampered"
    t = bob.call("encrypt", session="ab", pt=m("tampered too"))
    with pytest.raises(DecryptionFailed):
        alice.op_decrypt("ab", flip(t, 60))
    assert txt(alice.op_decrypt("ab", t)) == "tampered too"

    # --- X3DH, the other runtime initiates ------------------------------------------------
    pkm = bob.call("initiate", session="ba", bundle=alice.op_bundle(), pt=m("hi alice"))
    assert txt(alice.op_accept("ba", pkm)) == "hi alice"
    a = alice.op_encrypt("ba", m("hi back"))
    assert txt(bob.call("decrypt", session="ba", msg=a)) == "hi back"
    r = bob.call("encrypt", session="ba", pt=m("second"))
    assert txt(alice.op_decrypt("ba", r)) == "second"

    # --- Sender Keys: SKDMs over the pairwise session, group messages both ways ----------
    assert bob.call("sk_install", group=GROUP, session="ab", msg=alice.op_sk_create(GROUP, "ab"))
    assert alice.op_sk_install(GROUP, "ab", bob.call("sk_create", group=GROUP, session="ab"))

    for i in range(3):
        g = alice.op_sk_encrypt(GROUP, m(f"group from CPython {i}"))
        assert txt(bob.call("sk_decrypt", group=GROUP, session="ab", msg=g)) == (
            f"group from CPython {i}"
        )
        g = bob.call("sk_encrypt", group=GROUP, pt=m(f"group from {kind} {i}"))
        assert txt(alice.op_sk_decrypt(GROUP, "ab", g)) == f"group from {kind} {i}"

    # out of order (skipped iterations) both ways
    g1, g2, g3 = (alice.op_sk_encrypt(GROUP, m(f"g{i}")) for i in (1, 2, 3))
    assert txt(bob.call("sk_decrypt", group=GROUP, session="ab", msg=g3)) == "g3"
    assert txt(bob.call("sk_decrypt", group=GROUP, session="ab", msg=g1)) == "g1"
    assert txt(bob.call("sk_decrypt", group=GROUP, session="ab", msg=g2)) == "g2"
    h1, h2 = (bob.call("sk_encrypt", group=GROUP, pt=m(f"h{i}")) for i in (1, 2))
    assert txt(alice.op_sk_decrypt(GROUP, "ab", h2)) == "h2"
    assert txt(alice.op_sk_decrypt(GROUP, "ab", h1)) == "h1"

    # a forged group message (signature broken) is refused by both sides
    g = alice.op_sk_encrypt(GROUP, m("forged"))
    with pytest.raises(RemoteError, match="BadSignature"):
        bob.call("sk_decrypt", group=GROUP, session="ab", msg=flip(g, 45))
    assert txt(bob.call("sk_decrypt", group=GROUP, session="ab", msg=g)) == "forged"
    g = bob.call("sk_encrypt", group=GROUP, pt=m("forged too"))
    with pytest.raises(BadSignature):
        alice.op_sk_decrypt(GROUP, "ab", flip(g, len(g) // 2 - 1))
    assert txt(alice.op_sk_decrypt(GROUP, "ab", g)) == "forged too"
