"""One side of a CPython <-> Pyodide conversation, driven line by line.

The same class runs in both runtimes: the test (``test_crosstalk.py``, CPython) keeps one
``Peer`` in-process and drives the other one in Pyodide on Node (``peer.mjs``) over a pipe,
one JSON object per line each way. Bytes travel as hex. Everything crypto goes through
``parley.crypto`` (signed device list + bundle checks, X3DH, Double Ratchet, wire formats,
content layer with padding, Sender Keys, attachments), so each ciphertext is made by one
backend (PyNaCl or libsodium.js) and opened by the other.

Request: ``{"op": name, ...args}``; response: ``{"ok": result}`` or
``{"error": "ExceptionClass: message"}``. Under CPython, ``python -m tests.crosstalk.peer``
serves the same protocol on stdin/stdout (a baseline for the harness itself).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from parley.crypto import (
    attachments,
    backend,
    bundle,
    content,
    devicelist,
    ratchet,
    sender_keys,
    x3dh,
)
from parley.crypto.b64 import b64d, b64e
from parley.crypto.keys import Ed25519KeyPair, OneTimePreKey, SignedPreKey, X25519KeyPair
from parley.crypto.wire import PreKeyMessage, parse_prekey_message

h = bytes.fromhex
DEVICE_ID = 1
OPK_ID = 7


def _now() -> int:
    return int(time.time() * 1000)


def _text(body: str) -> bytes:
    return content.encode(content.Text(id=b64e(backend.random_bytes(16)), ts=_now(), body=body))


def _body(padded: bytes, *, group: bool) -> str:
    c = content.decode(padded, group=group)
    if not isinstance(c, content.Text):
        raise TypeError(f"expected text content, got {type(c).__name__}")
    return c.body


class Peer:
    def __init__(self) -> None:
        self.user_id = ""
        self.aik = Ed25519KeyPair.generate()
        self.ik = Ed25519KeyPair.generate()
        self.spk = SignedPreKey.generate(self.ik, spk_id=1)
        self.opks = {OPK_ID: OneTimePreKey.generate(OPK_ID)}
        self.sessions: dict[str, ratchet.RatchetState] = {}
        self.outbound: dict[str, sender_keys.OutboundSenderKey] = {}
        self.inbound: dict[str, sender_keys.SenderKeyRecord] = {}

    # -- the ops (text in and out as str; bytes as hex) ------------------------------------
    def op_hello(self, user_id: str) -> dict[str, Any]:
        self.user_id = user_id
        return {"backend": backend.NAME, "platform": sys.platform}

    def op_bundle(self) -> str:
        """This device's key bundle JSON (§3.4), with a device list signed by the AIK."""
        dl = devicelist.DeviceList(
            self.user_id, 1, _now(), (devicelist.Device(DEVICE_ID, self.ik.pub),)
        )
        data, sig = devicelist.sign(dl, self.aik)
        return bundle.make_bundle(
            user_id=self.user_id, device_id=DEVICE_ID, aik_pub=self.aik.pub,
            devlist_data=data, devlist_sig=sig, ik_pub=self.ik.pub, spk_id=self.spk.id,
            spk_pub=self.spk.pub, spk_sig=self.spk.sig, opk=(OPK_ID, self.opks[OPK_ID].pub),
        ).decode()  # fmt: skip

    def op_initiate(self, session: str, user_id: str, bundle_json: str, text: str) -> str:
        """Verify the bundle (TOFU), X3DH as initiator, first message -> PreKeyMessage."""
        vb = bundle.verify_bundle(
            bundle_json, user_id=user_id, device_id=DEVICE_ID, pinned_aik=None,
            stored_devlist=None,
        )  # fmt: skip
        res = x3dh.initiate(self.ik, vb.ik_pub, vb.spk_pub, vb.opk_pub)
        st = ratchet.init_alice(res.sk, res.ad, vb.spk_pub)
        dr = ratchet.encrypt(st, _text(text))
        self.sessions[session] = st
        return PreKeyMessage(self.ik.pub, res.ek_pub, vb.spk_id, vb.opk_id, dr).encode().hex()

    def op_accept(self, session: str, msg: str) -> str:
        """X3DH as responder from a PreKeyMessage; returns the first text."""
        pk = parse_prekey_message(h(msg))
        if pk.spk_id != self.spk.id:
            raise ValueError("unknown signed prekey")
        opk = self.opks[pk.opk_id] if pk.opk_id else None
        res = x3dh.respond(self.ik, self.spk.priv, opk.priv if opk else None, pk.ik_a, pk.ek_a)
        st = ratchet.init_bob(res.sk, res.ad, X25519KeyPair.from_priv(self.spk.priv))
        text = _body(ratchet.decrypt(st, pk.dr_message), group=False)
        self.opks.pop(pk.opk_id, None)  # one-time: consumed only once the message verified
        self.sessions[session] = st
        return text

    def op_encrypt(self, session: str, text: str) -> str:
        return ratchet.encrypt(self.sessions[session], _text(text)).hex()

    def op_decrypt(self, session: str, msg: str) -> str:
        return _body(ratchet.decrypt(self.sessions[session], h(msg)), group=False)

    def op_sk_create(self, group: str, session: str) -> str:
        """New outbound sender key for ``group``; its SKDM (``skdm`` content) is sent over
        the pairwise session."""
        out = sender_keys.OutboundSenderKey.create(h(group), direct=False)
        self.outbound[group] = out
        c = content.Skdm(id=b64e(backend.random_bytes(16)), ts=_now(), skdm=b64e(out.skdm()))
        return ratchet.encrypt(self.sessions[session], content.encode(c)).hex()

    def op_sk_install(self, group: str, session: str, msg: str) -> bool:
        c = content.decode(ratchet.decrypt(self.sessions[session], h(msg)), group=False)
        if not isinstance(c, content.Skdm):
            raise TypeError(f"expected skdm content, got {type(c).__name__}")
        skdm = sender_keys.parse_skdm(b64d(c.skdm))
        if skdm.group_id != h(group):
            raise ValueError("SKDM for another group")
        rec = self.inbound.setdefault(f"{group}/{session}", sender_keys.SenderKeyRecord())
        return rec.add_skdm(skdm)

    def op_sk_encrypt(self, group: str, text: str) -> str:
        return sender_keys.encrypt(self.outbound[group], _text(text)).hex()

    def op_sk_decrypt(self, group: str, session: str, msg: str) -> str:
        padded = sender_keys.decrypt(self.inbound[f"{group}/{session}"], h(msg))
        return _body(padded, group=True)

    def op_att_encrypt(self, data: str) -> dict[str, Any]:
        ea = attachments.encrypt(h(data))
        return {"blob": ea.blob.hex(), "key": ea.key.hex(), "digest": ea.digest.hex(),
                "size": ea.size}  # fmt: skip

    def op_att_decrypt(self, blob: str, key: str, digest: str, size: int) -> str:
        raw = h(blob)
        return attachments.decrypt(
            raw, key=h(key), digest=h(digest), size=size, blob_size=len(raw)
        ).hex()

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
