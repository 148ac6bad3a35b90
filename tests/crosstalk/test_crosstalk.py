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


def flip(hexstr: str, index: int) -> str:
    b = bytearray(bytes.fromhex(hexstr))
    b[index] ^= 0x01
    return b.hex()


def test_conversation_across_runtimes(remote: tuple[str, Remote]) -> None:
    kind, bob = remote
    alice = Peer()  # this process: CPython, PyNaCl
    assert alice.op_hello("alice")["backend"] == "pynacl"
    hello = bob.call("hello", user_id="bob")
    assert hello["backend"] == EXPECTED_BACKEND[kind]

    # --- bundle checks + X3DH, CPython initiates ------------------------------------------
    pkm = alice.op_initiate("ab", "bob", bob.call("bundle"), "hi bob, from CPython")
    assert bob.call("accept", session="ab", msg=pkm) == "hi bob, from CPython"

    # --- Double Ratchet, both directions, several DH-ratchet steps --------------------------
    for i in range(3):
        r = bob.call("encrypt", session="ab", text=f"bob->alice {i} \u00e9\u263a")
        assert alice.op_decrypt("ab", r) == f"bob->alice {i} \u00e9\u263a"
        a = alice.op_encrypt("ab", f"alice->bob {i}")
        assert bob.call("decrypt", session="ab", msg=a) == f"alice->bob {i}"

    # out of order (skipped message keys) in both directions, across a ratchet step
    a1, a2, a3 = (alice.op_encrypt("ab", f"a{i}") for i in (1, 2, 3))
    assert bob.call("decrypt", session="ab", msg=a3) == "a3"
    b1, b2 = (bob.call("encrypt", session="ab", text=f"b{i}") for i in (1, 2))
    assert alice.op_decrypt("ab", b2) == "b2"
    assert bob.call("decrypt", session="ab", msg=a1) == "a1"
    assert alice.op_decrypt("ab", b1) == "b1"
    assert bob.call("decrypt", session="ab", msg=a2) == "a2"

    # replays and tampering are refused on both sides, and the sessions still work after.
    # (a2's chain is still Bob's current receiving chain: a replay from an OLDER chain is
    # reported as DecryptionFailed by ratchet.decrypt, in both runtimes alike.)
    with pytest.raises(RemoteError, match="DuplicateMessage"):
        bob.call("decrypt", session="ab", msg=a2)
    t = alice.op_encrypt("ab", "tampered")
    with pytest.raises(RemoteError, match="DecryptionFailed"):
        bob.call("decrypt", session="ab", msg=flip(t, 60))
    assert bob.call("decrypt", session="ab", msg=t) == "tampered"
    t = bob.call("encrypt", session="ab", text="tampered too")
    with pytest.raises(DecryptionFailed):
        alice.op_decrypt("ab", flip(t, 60))
    assert alice.op_decrypt("ab", t) == "tampered too"

    # a long message (several pad blocks)
    long_text = "x" * 5000
    assert bob.call("decrypt", session="ab", msg=alice.op_encrypt("ab", long_text)) == long_text

    # --- bundle checks + X3DH, the other runtime initiates --------------------------------
    pkm = bob.call("initiate", session="ba", user_id="alice", bundle_json=alice.op_bundle(),
                   text="hi alice")  # fmt: skip
    assert alice.op_accept("ba", pkm) == "hi alice"
    assert bob.call("decrypt", session="ba", msg=alice.op_encrypt("ba", "hi back")) == "hi back"
    assert alice.op_decrypt("ba", bob.call("encrypt", session="ba", text="two")) == "two"

    # --- Sender Keys: SKDMs over the pairwise session, group messages both ways ----------
    assert bob.call("sk_install", group=GROUP, session="ab", msg=alice.op_sk_create(GROUP, "ab"))
    assert alice.op_sk_install(GROUP, "ab", bob.call("sk_create", group=GROUP, session="ab"))

    for i in range(3):
        g = alice.op_sk_encrypt(GROUP, f"group from CPython {i}")
        got = bob.call("sk_decrypt", group=GROUP, session="ab", msg=g)
        assert got == f"group from CPython {i}"
        g = bob.call("sk_encrypt", group=GROUP, text=f"group from {kind} {i}")
        assert alice.op_sk_decrypt(GROUP, "ab", g) == f"group from {kind} {i}"

    # out of order (skipped iterations) both ways
    g1, g2, g3 = (alice.op_sk_encrypt(GROUP, f"g{i}") for i in (1, 2, 3))
    assert bob.call("sk_decrypt", group=GROUP, session="ab", msg=g3) == "g3"
    assert bob.call("sk_decrypt", group=GROUP, session="ab", msg=g1) == "g1"
    assert bob.call("sk_decrypt", group=GROUP, session="ab", msg=g2) == "g2"
    h1, h2 = (bob.call("sk_encrypt", group=GROUP, text=f"h{i}") for i in (1, 2))
    assert alice.op_sk_decrypt(GROUP, "ab", h2) == "h2"
    assert alice.op_sk_decrypt(GROUP, "ab", h1) == "h1"

    # a forged group message (broken signature) is refused by both sides
    g = alice.op_sk_encrypt(GROUP, "forged")
    with pytest.raises(RemoteError, match="BadSignature"):
        bob.call("sk_decrypt", group=GROUP, session="ab", msg=flip(g, 45))
    assert bob.call("sk_decrypt", group=GROUP, session="ab", msg=g) == "forged"
    g = bob.call("sk_encrypt", group=GROUP, text="forged too")
    with pytest.raises(BadSignature):
        alice.op_sk_decrypt(GROUP, "ab", flip(g, 45))
    assert alice.op_sk_decrypt(GROUP, "ab", g) == "forged too"

    # --- attachments (secretstream, several chunks) both ways -----------------------------
    data = bytes(range(256)) * 600  # 153,600 B: 3 chunks of 64 KiB
    att = alice.op_att_encrypt(data.hex())
    assert bob.call("att_decrypt", **att) == data.hex()
    att = bob.call("att_encrypt", data=data.hex())
    assert alice.op_att_decrypt(**att) == data.hex()
    att["blob"] = flip(att["blob"], 100)
    with pytest.raises(RemoteError, match="DecryptionFailed"):
        bob.call("att_decrypt", **att)
