"""One conversation across runtimes: CPython (PyNaCl) on one side, Pyodide (libsodium.js) on
the other, talking through a pipe to ``node tests/crosstalk/peer.mjs``.

Covered, in both directions: bundle checks (signed device list, SPK signature, TOFU), X3DH
through ``parley.crypto.sessions`` (each side initiates one session, with a one-time prekey;
PreKeyMessages until answered; an in-flight message on an archived session), Double Ratchet
messages with DH-ratchet steps and out-of-order delivery, the content layer (padding),
Sender Key distribution (``skdm`` content over the pairwise session) and group messages,
attachments (secretstream), device linking (sealed box), key backup (Argon2id + AEAD), and
rejection of replayed, tampered or forged messages.

The ``cpython`` parametrization runs the same peer under CPython: a baseline for the harness.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parley.crypto.errors import BadSignature, NoSession
from tests.crosstalk.peer import Peer

ROOT = Path(__file__).resolve().parents[2]
GROUP = bytes(range(16)).hex()
REMOTE_CMDS = {
    "pyodide": ["node", str(ROOT / "tests" / "crosstalk" / "peer.mjs")],
    "cpython": [sys.executable, "-m", "tests.crosstalk.peer"],
}
CALL_TIMEOUT = 120  # seconds; the first call includes Pyodide's boot (2-8 s)
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
        # One request in flight at a time, so nothing is buffered ahead: select() on the pipe
        # is a reliable guard against a hung peer.
        ready, _, _ = select.select([self.proc.stdout], [], [], CALL_TIMEOUT)
        if not ready:
            self.proc.kill()
            raise RuntimeError(f"peer did not answer {op!r} within {CALL_TIMEOUT} s")
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


@pytest.fixture(scope="module", params=["pyodide", "cpython"])
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

    def to_bob(env: list[Any]) -> str:
        text: str = bob.call("recv", user_id="alice", etype=env[0], body=env[1])
        return text

    def from_bob(text: str) -> list[Any]:
        env: list[Any] = bob.call("send", user_id="alice", text=text)
        return env

    # --- bundles: device list signed by the AIK, SPK signature, TOFU pin (§3.4) ----------
    assert alice.op_learn("bob", bob.call("bundle")) is True
    assert bob.call("learn", user_id="alice", bundle_json=alice.op_bundle()) is True

    # --- X3DH, CPython initiates; unanswered, every message is a PreKeyMessage (type 3) ---
    alice.op_initiate("bob")
    e1, e2 = alice.op_send("bob", "hi bob, from CPython"), alice.op_send("bob", "still there?")
    assert e1[0] == e2[0] == 3
    assert to_bob(e2) == "still there?"  # out of order, and the second one first
    assert to_bob(e1) == "hi bob, from CPython"
    assert bob.call("opk_ids") == [8]  # Alice's X3DH used (and Bob erased) one-time prekey 7

    r = from_bob("hello alice \u00e9\u263a")
    assert r[0] == 2
    assert alice.op_recv("bob", *r) == "hello alice \u00e9\u263a"
    a = alice.op_send("bob", "answered: now plain DR messages")
    assert a[0] == 2
    assert to_bob(a) == "answered: now plain DR messages"

    # --- Double Ratchet, both directions, several DH-ratchet steps --------------------------
    for i in range(3):
        assert alice.op_recv("bob", *from_bob(f"bob->alice {i}")) == f"bob->alice {i}"
        assert to_bob(alice.op_send("bob", f"alice->bob {i}")) == f"alice->bob {i}"

    # out of order (skipped message keys) in both directions, across a ratchet step
    a1, a2, a3 = (alice.op_send("bob", f"a{i}") for i in (1, 2, 3))
    assert to_bob(a3) == "a3"
    b1, b2 = from_bob("b1"), from_bob("b2")
    assert alice.op_recv("bob", *b2) == "b2"
    assert to_bob(a1) == "a1"
    assert alice.op_recv("bob", *b1) == "b1"
    assert to_bob(a2) == "a2"

    # replays and tampering are refused on both sides; the sessions still work after
    with pytest.raises(RemoteError, match="DuplicateMessage"):
        to_bob(a2)
    t = alice.op_send("bob", "tampered")
    with pytest.raises(RemoteError, match="NoSession"):
        to_bob([t[0], flip(t[1], 60)])
    assert to_bob(t) == "tampered"
    t = from_bob("tampered too")
    with pytest.raises(NoSession):
        alice.op_recv("bob", t[0], flip(t[1], 60))
    assert alice.op_recv("bob", *t) == "tampered too"

    long_text = "x" * 5000  # several pad blocks
    assert to_bob(alice.op_send("bob", long_text)) == long_text

    # --- X3DH, the other runtime initiates a new session (a reset) -------------------------
    in_flight = from_bob("sent on the old session")
    bob.call("initiate", user_id="alice", bundle_json=alice.op_bundle())  # OPK 8 of Alice
    n1 = from_bob("hi alice, new session")
    assert n1[0] == 3
    assert alice.op_recv("bob", *n1) == "hi alice, new session"
    assert alice.op_opk_ids() == [7]
    assert alice.op_recv("bob", *in_flight) == "sent on the old session"  # archived session
    assert to_bob(alice.op_send("bob", "got both")) == "got both"
    assert alice.op_recv("bob", *from_bob("good")) == "good"

    # --- Sender Keys: SKDMs over the pairwise sessions, group messages both ways ----------
    skdm = alice.op_sk_create(GROUP, "bob")
    assert bob.call("sk_install", group=GROUP, user_id="alice", etype=skdm[0], body=skdm[1])
    skdm = bob.call("sk_create", group=GROUP, user_id="alice")
    assert alice.op_sk_install(GROUP, "bob", *skdm)

    def g_to_bob(msg: str) -> str:
        text: str = bob.call("sk_decrypt", group=GROUP, user_id="alice", msg=msg)
        return text

    for i in range(3):
        assert g_to_bob(alice.op_sk_encrypt(GROUP, f"group from CPython {i}")) == (
            f"group from CPython {i}"
        )
        g = bob.call("sk_encrypt", group=GROUP, text=f"group from {kind} {i}")
        assert alice.op_sk_decrypt(GROUP, "bob", g) == f"group from {kind} {i}"

    # out of order (skipped iterations) both ways
    g1, g2, g3 = (alice.op_sk_encrypt(GROUP, f"g{i}") for i in (1, 2, 3))
    assert g_to_bob(g3) == "g3"
    assert g_to_bob(g1) == "g1"
    assert g_to_bob(g2) == "g2"
    with pytest.raises(RemoteError, match="DuplicateMessage"):
        g_to_bob(g2)
    h1, h2 = (bob.call("sk_encrypt", group=GROUP, text=f"h{i}") for i in (1, 2))
    assert alice.op_sk_decrypt(GROUP, "bob", h2) == "h2"
    assert alice.op_sk_decrypt(GROUP, "bob", h1) == "h1"

    # a forged group message (broken signature) is refused by both sides
    g = alice.op_sk_encrypt(GROUP, "forged")
    with pytest.raises(RemoteError, match="BadSignature"):
        g_to_bob(flip(g, 45))
    assert g_to_bob(g) == "forged"
    g = bob.call("sk_encrypt", group=GROUP, text="forged too")
    with pytest.raises(BadSignature):
        alice.op_sk_decrypt(GROUP, "bob", flip(g, 45))
    assert alice.op_sk_decrypt(GROUP, "bob", g) == "forged too"

    # --- attachments (secretstream, several chunks) both ways -----------------------------
    data = bytes(range(256)) * 600  # 153,600 B: 3 chunks of 64 KiB
    att = alice.op_att_encrypt(data.hex())
    assert bob.call("att_decrypt", **att) == data.hex()
    att = bob.call("att_encrypt", data=data.hex())
    assert alice.op_att_decrypt(**att) == data.hex()
    att["blob"] = flip(att["blob"], 100)
    with pytest.raises(RemoteError, match="DecryptionFailed"):
        bob.call("att_decrypt", **att)


def test_link_and_backup_across_runtimes(remote: tuple[str, Remote]) -> None:
    """Device linking (sealed box) and key backup (Argon2id + AEAD) made by one runtime and
    opened by the other: a CLI (CPython) device linking a browser, a backup restored there."""
    _, bob = remote
    alice = Peer()
    alice.op_hello("alice")
    bob.call("hello", user_id="bob")

    # the other runtime is the NEW device; CPython's existing device seals the secrets to it
    sealed = alice.op_link_seal(bob.call("link_request"), "token-1")
    got = bob.call("link_open", sealed=sealed)
    assert got == {"user_id": "alice", "aik_pub": alice.aik.pub.hex(), "link_token": "token-1"}
    with pytest.raises(RemoteError, match="DecryptionFailed"):
        bob.call("link_open", sealed=flip(sealed, 50))
    # and the other way round
    sealed = bob.call("link_seal", qr=alice.op_link_request(), link_token="token-2")
    got = alice.op_link_open(sealed)
    assert got["user_id"] == "bob"
    assert got["link_token"] == "token-2"

    texts = ["history 1", "history 2 \u263a", "history 3"]
    exp = alice.op_backup_export("correct horse", texts)
    assert bob.call("backup_restore", passphrase="correct horse", **exp) == texts
    with pytest.raises(RemoteError, match="wrong passphrase"):
        bob.call("backup_restore", passphrase="wrong horse", **exp)
    exp = bob.call("backup_export", passphrase="p\u00e4ss", texts=texts)
    assert alice.op_backup_restore("p\u00e4ss", **exp) == texts
