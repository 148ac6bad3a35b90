"""One side of a CPython <-> Pyodide conversation, driven line by line.

The same class runs in both runtimes: the test (``test_crosstalk.py``, CPython) keeps one
``Peer`` in-process and drives the other one in Pyodide on Node (``peer.mjs``) over a pipe,
one JSON object per line each way. Bytes travel as hex. Everything crypto goes through
``parley.crypto`` (signed device list + bundle checks, Sesame-style session management over
X3DH and the Double Ratchet, content layer with padding, Sender Keys, attachments, device linking, key backup), so each ciphertext is made by one
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

import msgspec

from parley.crypto import (
    attachments,
    backend,
    backup,
    bundle,
    content,
    devicelist,
    provisioning,
    sender_keys,
    sessions,
)
from parley.crypto.b64 import b64d, b64e
from parley.crypto.errors import DecryptionFailed
from parley.crypto.keys import Ed25519KeyPair, OneTimePreKey, SignedPreKey

h = bytes.fromhex
DEVICE_ID = 1
OPK_ID = 7


def _now() -> int:
    return int(time.time() * 1000)


def _text(body: str) -> bytes:
    return content.encode(content.Text(id=b64e(backend.random_bytes(16)), ts=_now(), body=body))


def _json(obj: msgspec.Struct) -> str:
    return msgspec.json.encode(obj).decode()


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
        self.prov: provisioning.ProvisioningRequest | None = None

    def _devlist(self) -> tuple[bytes, bytes]:
        dl = devicelist.DeviceList(
            self.user_id, 1, _now(), (devicelist.Device(DEVICE_ID, self.ik.pub),)
        )
        return devicelist.sign(dl, self.aik)

    # -- the ops (text in and out as str; bytes as hex) ------------------------------------
    def op_hello(self, user_id: str) -> dict[str, Any]:
        self.user_id = user_id
        return {"backend": backend.NAME, "platform": sys.platform}

    def op_bundle(self) -> str:
        """A key bundle JSON (§3.4) with a device list signed by the AIK; each call hands out
        the next one-time prekey, as the server would."""
        data, sig = self._devlist()
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
        sessions.initiate(self.devs[user_id], self.ik, self.bundles[user_id], now=_now())

    def op_send(self, user_id: str, text: str) -> list[Any]:
        """-> [envelope type (2 DR | 3 PreKey), body hex]."""
        etype, body = sessions.encrypt(self.devs[user_id], _text(text), now=_now())
        return [etype, body.hex()]

    def op_recv(self, user_id: str, etype: int, body: str) -> str:
        pt = sessions.decrypt(self.devs[user_id], self.ik, self.store, etype, h(body), now=_now())
        return _body(pt, group=False)

    def op_opk_ids(self) -> list[int]:
        return sorted(self.store.opks)

    def op_sk_create(self, group: str, user_id: str) -> list[Any]:
        """New outbound sender key for ``group``; its SKDM (``skdm`` content) is sent to
        ``user_id`` over the pairwise session -> [envelope type, body hex]."""
        out = sender_keys.OutboundSenderKey.create(h(group), direct=False, now=_now())
        self.outbound[group] = out
        c = content.Skdm(id=b64e(backend.random_bytes(16)), ts=_now(), skdm=b64e(out.skdm()))
        etype, body = sessions.encrypt(self.devs[user_id], content.encode(c), now=_now())
        return [etype, body.hex()]

    def op_sk_install(self, group: str, user_id: str, etype: int, body: str) -> bool:
        pt = sessions.decrypt(self.devs[user_id], self.ik, self.store, etype, h(body), now=_now())
        c = content.decode(pt, group=False)
        if not isinstance(c, content.Skdm):
            raise TypeError(f"expected skdm content, got {type(c).__name__}")
        skdm = sender_keys.parse_skdm(b64d(c.skdm))
        if skdm.group_id != h(group):
            raise ValueError("SKDM for another group")
        rec = self.inbound.setdefault(f"{group}/{user_id}", sender_keys.SenderKeyRecord())
        return rec.add_skdm(skdm)

    def op_sk_encrypt(self, group: str, text: str) -> str:
        return sender_keys.encrypt(self.outbound[group], _text(text), now=_now()).hex()

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

    # device linking (§3.5): the new device shows a QR code, the existing one seals to it
    def op_link_request(self) -> str:
        self.prov = provisioning.ProvisioningRequest.create(now=_now())
        return self.prov.qr_text()

    def op_link_seal(self, qr: str, link_token: str) -> str:
        _prov_id, e_pub = provisioning.parse_qr(qr)
        data, sig = self._devlist()
        return provisioning.seal(
            e_pub, user_id=self.user_id, aik=self.aik, devlist_data=data, devlist_sig=sig,
            link_token=link_token,
        ).hex()  # fmt: skip

    def op_link_open(self, sealed: str) -> dict[str, Any]:
        if self.prov is None:
            raise ValueError("no link request")
        res = provisioning.open_sealed(self.prov, h(sealed), now=_now())
        return {"user_id": res.user_id, "aik_pub": res.aik.pub.hex(),
                "link_token": res.link_token}  # fmt: skip

    # key backup (§13): passphrase-derived key, one sender-key state, its history
    def op_backup_export(self, passphrase: str, texts: list[str]) -> dict[str, Any]:
        out = sender_keys.OutboundSenderKey.create(
            backend.random_bytes(16), direct=True, now=_now()
        )
        rec = sender_keys.SenderKeyRecord()
        rec.add_skdm(out.skdm())
        msgs = [sender_keys.encrypt(out, _text(t), now=_now()).hex() for t in texts]
        salt = backend.random_bytes(16)
        ops, mem = backend.PWHASH_OPSLIMIT_MIN, backend.PWHASH_MEMLIMIT_MIN
        bk = backup.derive_backup_key(passphrase, salt, ops, mem)
        version = backup.make_version(bk, 1, salt=salt, opslimit=ops, memlimit=mem)
        st = rec.states[0]
        key = backup.RecordKey("conv", self.user_id, DEVICE_ID, st.distribution_id, st.chain_id)
        record = backup.encrypt_record(bk, key, st)
        return {"version": _json(version), "key": _json(key), "record": _json(record),
                "msgs": msgs}  # fmt: skip

    def op_backup_restore(
        self, passphrase: str, version: str, key: str, record: str, msgs: list[str]
    ) -> list[str]:
        v = msgspec.json.decode(version, type=backup.BackupVersion)
        if v.salt is None or v.opslimit is None or v.memlimit is None:
            raise ValueError("not a passphrase backup")
        bk = backup.derive_backup_key(passphrase, v.salt, v.opslimit, v.memlimit)
        if not backup.key_matches(v, bk):
            raise DecryptionFailed("wrong passphrase")
        st = backup.decrypt_record(
            bk,
            msgspec.json.decode(key, type=backup.RecordKey),
            msgspec.json.decode(record, type=backup.BackupRecord),
        )
        rec = sender_keys.SenderKeyRecord(states=[st])
        return [_body(sender_keys.decrypt(rec, h(m)), group=True) for m in msgs]

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
