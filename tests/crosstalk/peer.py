"""One side of a CPython <-> Pyodide conversation, driven line by line.

The same class runs in both runtimes: the test (``test_crosstalk.py``, CPython) keeps one
``Peer`` in-process and drives the other one in Pyodide on Node (``peer.mjs``) over a pipe,
one JSON object per line each way. Bytes travel as hex. Everything crypto goes through
``parley.crypto`` (signed device list + bundle checks, Sesame-style session management over
X3DH and the Double Ratchet, content layer with padding, Sender Keys, attachments), so each ciphertext is made by one
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
    sender_keys,
    sessions,
)
from parley.crypto.b64 import b64d, b64e
from parley.crypto.keys import Ed25519KeyPair, OneTimePreKey, SignedPreKey

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
        self.store = sessions.PreKeyStore()
        self.store.add_spk(SignedPreKey.generate(self.ik, spk_id=1, now=_now()))
        self.store.add_opks([OneTimePreKey.generate(i) for i in (OPK_ID, OPK_ID + 1)])
        self.next_opk = OPK_ID
        self.bundles: dict[str, bundle.VerifiedBundle] = {}
        self.devs: dict[str, sessions.DeviceSessions] = {}
        self.outbound: dict[str, sender_keys.OutboundSenderKey] = {}
        self.inbound: dict[str, sender_keys.SenderKeyRecord] = {}

    # -- the ops (text in and out as str; bytes as hex) ------------------------------------
    def op_hello(self, user_id: str) -> dict[str, Any]:
        self.user_id = user_id
        return {"backend": backend.NAME, "platform": sys.platform}

    def op_bundle(self) -> str:
        """A key bundle JSON (§3.4) with a device list signed by the AIK; each call hands out
        the next one-time prekey, as the server would."""
        dl = devicelist.DeviceList(
            self.user_id, 1, _now(), (devicelist.Device(DEVICE_ID, self.ik.pub),)
        )
        data, sig = devicelist.sign(dl, self.aik)
        spk = self.store.spks[self.store.current_spk_id]
        opk = self.store.opks[self.next_opk]
        self.next_opk += 1
        return bundle.make_bundle(
            user_id=self.user_id, device_id=DEVICE_ID, aik_pub=self.aik.pub,
            devlist_data=data, devlist_sig=sig, ik_pub=self.ik.pub, spk_id=spk.id,
            spk_pub=spk.pub, spk_sig=spk.sig, opk=(opk.id, opk.pub),
        ).decode()  # fmt: skip

    def op_learn(self, user_id: str, bundle_json: str) -> bool:
        """Run the four bundle checks (TOFU) and set up the per-device session record."""
        vb = bundle.verify_bundle(
            bundle_json, user_id=user_id, device_id=DEVICE_ID, pinned_aik=None,
            stored_devlist=None,
        )  # fmt: skip
        self.bundles[user_id] = vb
        if user_id not in self.devs:
            self.devs[user_id] = sessions.DeviceSessions(user_id, DEVICE_ID, vb.ik_pub)
        return vb.tofu_pinned

    def op_initiate(self, user_id: str, bundle_json: str | None = None) -> None:
        """X3DH as initiator (the new session becomes active, a previous one is archived)."""
        if bundle_json is not None:
            self.op_learn(user_id, bundle_json)
        sessions.initiate(self.devs[user_id], self.ik, self.bundles[user_id])

    def op_send(self, user_id: str, text: str) -> list[Any]:
        """-> [envelope type (2 DR | 3 PreKey), body hex]."""
        etype, body = sessions.encrypt(self.devs[user_id], _text(text))
        return [etype, body.hex()]

    def op_recv(self, user_id: str, etype: int, body: str) -> str:
        pt = sessions.decrypt(self.devs[user_id], self.ik, self.store, etype, h(body))
        return _body(pt, group=False)

    def op_opk_ids(self) -> list[int]:
        return sorted(self.store.opks)

    def op_sk_create(self, group: str, user_id: str) -> list[Any]:
        """New outbound sender key for ``group``; its SKDM (``skdm`` content) is sent to
        ``user_id`` over the pairwise session -> [envelope type, body hex]."""
        out = sender_keys.OutboundSenderKey.create(h(group), direct=False)
        self.outbound[group] = out
        c = content.Skdm(id=b64e(backend.random_bytes(16)), ts=_now(), skdm=b64e(out.skdm()))
        etype, body = sessions.encrypt(self.devs[user_id], content.encode(c))
        return [etype, body.hex()]

    def op_sk_install(self, group: str, user_id: str, etype: int, body: str) -> bool:
        pt = sessions.decrypt(self.devs[user_id], self.ik, self.store, etype, h(body))
        c = content.decode(pt, group=False)
        if not isinstance(c, content.Skdm):
            raise TypeError(f"expected skdm content, got {type(c).__name__}")
        skdm = sender_keys.parse_skdm(b64d(c.skdm))
        if skdm.group_id != h(group):
            raise ValueError("SKDM for another group")
        rec = self.inbound.setdefault(f"{group}/{user_id}", sender_keys.SenderKeyRecord())
        return rec.add_skdm(skdm)

    def op_sk_encrypt(self, group: str, text: str) -> str:
        return sender_keys.encrypt(self.outbound[group], _text(text)).hex()

    def op_sk_decrypt(self, group: str, user_id: str, msg: str) -> str:
        padded = sender_keys.decrypt(self.inbound[f"{group}/{user_id}"], h(msg))
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
