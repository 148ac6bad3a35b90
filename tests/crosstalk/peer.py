"""One side of a CPython <-> Pyodide conversation, driven line by line.

The same class runs in both runtimes: the test (``test_crosstalk.py``, CPython) keeps one
``Peer`` in-process and drives the other one in Pyodide on Node (``peer.mjs``) over a pipe,
one JSON object per line each way. Bytes travel as hex. Everything crypto goes through
``parley.crypto`` (X3DH, Double Ratchet, wire formats, Sender Keys), so each ciphertext is
made by one backend (PyNaCl or libsodium.js) and opened by the other.

Request: ``{"op": name, ...args}``; response: ``{"ok": result}`` or
``{"error": "ExceptionClass: message"}``. Under CPython, ``python -m tests.crosstalk.peer``
serves the same protocol on stdin/stdout (a baseline for the harness itself).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from parley.crypto import backend, ratchet, sender_keys, x3dh
from parley.crypto.keys import (
    Ed25519KeyPair,
    OneTimePreKey,
    SignedPreKey,
    X25519KeyPair,
    verify_spk,
)
from parley.crypto.wire import PreKeyMessage, parse_prekey_message

h = bytes.fromhex


class Peer:
    def __init__(self) -> None:
        self.ik = Ed25519KeyPair.generate()
        self.spk = SignedPreKey.generate(self.ik, spk_id=1)
        self.opks = {7: OneTimePreKey.generate(7)}
        self.sessions: dict[str, ratchet.RatchetState] = {}
        self.outbound: dict[str, sender_keys.OutboundSenderKey] = {}
        self.inbound: dict[str, sender_keys.SenderKeyRecord] = {}

    # -- the ops ---------------------------------------------------------------------------
    def op_hello(self) -> dict[str, Any]:
        return {"backend": backend.NAME, "platform": sys.platform}

    def op_bundle(self) -> dict[str, Any]:
        opk = self.opks[7]
        return {
            "ik": self.ik.pub.hex(),
            "spk_id": self.spk.id,
            "spk": self.spk.pub.hex(),
            "spk_sig": self.spk.sig.hex(),
            "opk_id": opk.id,
            "opk": opk.pub.hex(),
        }

    def op_initiate(self, session: str, bundle: dict[str, Any], pt: str) -> str:
        """X3DH as initiator against ``bundle``, then the first DR message -> PreKeyMessage."""
        ik_b, spk_b, opk_b = h(bundle["ik"]), h(bundle["spk"]), h(bundle["opk"])
        if not verify_spk(ik_b, spk_b, h(bundle["spk_sig"])):
            raise ValueError("bundle signature does not verify")
        res = x3dh.initiate(self.ik, ik_b, spk_b, opk_b)
        st = ratchet.init_alice(res.sk, res.ad, spk_b)
        self.sessions[session] = st
        dr = ratchet.encrypt(st, h(pt))
        msg = PreKeyMessage(self.ik.pub, res.ek_pub, bundle["spk_id"], bundle["opk_id"], dr)
        return msg.encode().hex()

    def op_accept(self, session: str, msg: str) -> str:
        """X3DH as responder from a PreKeyMessage; returns the first plaintext."""
        pk = parse_prekey_message(h(msg))
        if pk.spk_id != self.spk.id:
            raise ValueError("unknown signed prekey")
        opk = self.opks.pop(pk.opk_id) if pk.opk_id else None
        res = x3dh.respond(self.ik, self.spk.priv, opk.priv if opk else None, pk.ik_a, pk.ek_a)
        st = ratchet.init_bob(res.sk, res.ad, X25519KeyPair.from_priv(self.spk.priv))
        pt = ratchet.decrypt(st, pk.dr_message)
        self.sessions[session] = st
        return pt.hex()

    def op_encrypt(self, session: str, pt: str) -> str:
        return ratchet.encrypt(self.sessions[session], h(pt)).hex()

    def op_decrypt(self, session: str, msg: str) -> str:
        return ratchet.decrypt(self.sessions[session], h(msg)).hex()

    def op_sk_create(self, group: str, session: str) -> str:
        """New outbound sender key for ``group``; its SKDM sent over the pairwise session."""
        out = sender_keys.OutboundSenderKey.create(h(group), direct=False)
        self.outbound[group] = out
        return ratchet.encrypt(self.sessions[session], out.skdm()).hex()

    def op_sk_install(self, group: str, session: str, msg: str) -> bool:
        skdm = ratchet.decrypt(self.sessions[session], h(msg))
        rec = self.inbound.setdefault(f"{group}/{session}", sender_keys.SenderKeyRecord())
        parsed = sender_keys.parse_skdm(skdm)
        if parsed.group_id != h(group):
            raise ValueError("SKDM for another group")
        return rec.add_skdm(parsed)

    def op_sk_encrypt(self, group: str, pt: str) -> str:
        return sender_keys.encrypt(self.outbound[group], h(pt)).hex()

    def op_sk_decrypt(self, group: str, session: str, msg: str) -> str:
        return sender_keys.decrypt(self.inbound[f"{group}/{session}"], h(msg)).hex()

    # -- the pipe protocol -----------------------------------------------------------------
    def handle(self, line: str) -> str:
        try:
            req = json.loads(line)
            op = getattr(self, "op_" + req.pop("op"))
            return json.dumps({"ok": op(**req)})
        except Exception as e:  # reported to the driver, which decides
            return json.dumps({"error": f"{type(e).__name__}: {e}"})


def main() -> None:
    peer = Peer()
    for line in sys.stdin:
        if line.strip():
            sys.stdout.write(peer.handle(line) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
