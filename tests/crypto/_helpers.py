"""Shared test helpers: users with AIK, devices with IK/SPK/OPKs, bundles, sessions."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field

import msgspec

from parley.crypto import bundle, devicelist, sessions
from parley.crypto.keys import Ed25519KeyPair, OneTimePreKey, SignedPreKey

NOW = 1_700_000_000_000


def det_rng(label: str) -> sessions.Rng:
    """Deterministic rng for reproducible tests (never used outside tests)."""
    counter = itertools.count()

    def rng(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(f"{label}:{next(counter)}".encode()).digest()
        return out[:n]

    return rng


@dataclass
class Device:
    device_id: int
    ik: Ed25519KeyPair
    store: sessions.PreKeyStore
    peers: dict[tuple[str, int], sessions.DeviceSessions] = field(default_factory=dict)


@dataclass
class User:
    user_id: str
    aik: Ed25519KeyPair
    devices: dict[int, Device]
    dl: devicelist.DeviceList
    dl_data: bytes = b""
    dl_sig: bytes = b""

    def publish(self) -> None:
        self.dl_data, self.dl_sig = devicelist.sign(self.dl, self.aik)

    def bundle_json(self, device_id: int, *, with_opk: bool = True) -> bytes:
        d = self.devices[device_id]
        spk = d.store.spks[d.store.current_spk_id]
        opk = None
        if with_opk and d.store.opks:
            o = next(iter(d.store.opks.values()))
            opk = (o.id, o.pub)
        return bundle.make_bundle(
            user_id=self.user_id, device_id=device_id, aik_pub=self.aik.pub,
            devlist_data=self.dl_data, devlist_sig=self.dl_sig, ik_pub=d.ik.pub,
            spk_id=spk.id, spk_pub=spk.pub, spk_sig=spk.sig, opk=opk,
        )  # fmt: skip


def make_device(device_id: int, n_opks: int = 3) -> Device:
    ik = Ed25519KeyPair.generate()
    store = sessions.PreKeyStore()
    store.add_spk(SignedPreKey.generate(ik, 1, now=NOW))
    store.add_opks([OneTimePreKey.generate(i + 1) for i in range(n_opks)])
    return Device(device_id, ik, store)


def make_user(user_id: str, n_devices: int = 1) -> User:
    aik = Ed25519KeyPair.generate()
    devs = {i + 1: make_device(i + 1) for i in range(n_devices)}
    dl = devicelist.DeviceList(
        user_id, 1, NOW, tuple(devicelist.Device(i, d.ik.pub) for i, d in devs.items())
    )
    u = User(user_id, aik, devs, dl)
    u.publish()
    return u


def peer_record(u: User, device_id: int) -> sessions.DeviceSessions:
    return sessions.DeviceSessions(u.user_id, device_id, u.devices[device_id].ik.pub)


def connect(a: User, a_dev: int, b: User, b_dev: int, *, with_opk: bool = True) -> None:
    """a's device initiates a session with b's device (after the bundle checks)."""
    vb = bundle.verify_bundle(
        b.bundle_json(b_dev, with_opk=with_opk), user_id=b.user_id, device_id=b_dev,
        pinned_aik=None, stored_devlist=None,
    )  # fmt: skip
    ad = a.devices[a_dev]
    rec = ad.peers.setdefault((b.user_id, b_dev), peer_record(b, b_dev))
    sessions.initiate(rec, ad.ik, vb, now=NOW)


def send(a: User, a_dev: int, b: User, b_dev: int, pt: bytes) -> tuple[int, bytes]:
    return sessions.encrypt(a.devices[a_dev].peers[(b.user_id, b_dev)], pt, now=NOW)


def receive(b: User, b_dev: int, a: User, a_dev: int, env: tuple[int, bytes]) -> bytes:
    bd = b.devices[b_dev]
    rec = bd.peers.setdefault((a.user_id, a_dev), peer_record(a, a_dev))
    return sessions.decrypt(rec, bd.ik, bd.store, env[0], env[1], now=NOW)


def snapshot(obj: object) -> bytes:
    return msgspec.msgpack.encode(obj)
