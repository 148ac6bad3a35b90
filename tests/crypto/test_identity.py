"""Bundle checks (§3.4, in order), device lists (§3.3), provisioning (§3.5)."""

from __future__ import annotations

import json

import pytest
from _helpers import NOW, make_device, make_user

from parley.crypto import bundle, devicelist, provisioning
from parley.crypto.b64 import b64e
from parley.crypto.errors import (
    BadSignature,
    CryptoError,
    KeyChanged,
    MalformedMessage,
    Rollback,
    UntrustedIdentity,
)
from parley.crypto.keys import Ed25519KeyPair


def _verify(raw: bytes, **kw: object) -> bundle.VerifiedBundle:
    args: dict[str, object] = {
        "user_id": "bob",
        "device_id": 1,
        "pinned_aik": None,
        "stored_devlist": None,
    }
    args.update(kw)
    return bundle.verify_bundle(raw, **args)  # type: ignore[arg-type]


def _mutate(raw: bytes, **changes: object) -> bytes:
    d = json.loads(raw)
    for k, v in changes.items():
        if "." in k:
            a, b = k.split(".")
            d[a][b] = v
        else:
            d[k] = v
    return json.dumps(d).encode()


def test_bundle_ok_and_tofu() -> None:
    bob = make_user("bob")
    vb = _verify(bob.bundle_json(1))
    assert vb.tofu_pinned and vb.aik_pub == bob.aik.pub and vb.opk_id == 1
    vb2 = _verify(bob.bundle_json(1), pinned_aik=bob.aik.pub, stored_devlist=vb.devlist_record)
    assert not vb2.tofu_pinned


def test_check1_pinned_aik() -> None:
    bob = make_user("bob")
    with pytest.raises(KeyChanged):
        _verify(bob.bundle_json(1), pinned_aik=Ed25519KeyPair.generate().pub)


def test_check1_runs_before_check2() -> None:
    # both the AIK and the DL signature are wrong: the AIK check (1) must report first
    bob = make_user("bob")
    raw = _mutate(bob.bundle_json(1), devlist_sig=b64e(b"\0" * 64))
    with pytest.raises(KeyChanged):
        _verify(raw, pinned_aik=Ed25519KeyPair.generate().pub)
    with pytest.raises(BadSignature):
        _verify(raw)


def test_check2_devlist_signature_and_rollback() -> None:
    bob = make_user("bob")
    old = bob.bundle_json(1)
    first = _verify(old)
    bob.dl = devicelist.with_device(bob.dl, 2, make_device(2).ik.pub, NOW + 1)
    bob.publish()
    newer = _verify(bob.bundle_json(1), stored_devlist=first.devlist_record)
    with pytest.raises(Rollback):
        _verify(old, stored_devlist=newer.devlist_record)
    other = Ed25519KeyPair.generate()
    forged = _mutate(bob.bundle_json(1), aik=b64e(other.pub))
    with pytest.raises(BadSignature):
        _verify(forged)


def test_check3_device_in_list() -> None:
    bob = make_user("bob")
    intruder = make_device(1)
    raw = _mutate(bob.bundle_json(1), ik=b64e(intruder.ik.pub))
    with pytest.raises(UntrustedIdentity):
        _verify(raw)


def test_check3_before_check4() -> None:
    bob = make_user("bob")
    intruder = make_device(1)
    # intruder's IK with its own valid SPK signature: check (3) must still reject
    spk = intruder.store.spks[1]
    raw = _mutate(
        bob.bundle_json(1),
        ik=b64e(intruder.ik.pub),
        **{"spk.pub": b64e(spk.pub), "spk.sig": b64e(spk.sig)},
    )
    with pytest.raises(UntrustedIdentity):
        _verify(raw)


def test_check4_spk_signature() -> None:
    bob = make_user("bob")
    other_spk = make_device(9).store.spks[1]
    raw = _mutate(bob.bundle_json(1), **{"spk.pub": b64e(other_spk.pub)})
    with pytest.raises(BadSignature):
        _verify(raw)


def test_bundle_malformed() -> None:
    bob = make_user("bob")
    with pytest.raises(MalformedMessage):
        _verify(b"{not json")
    with pytest.raises(MalformedMessage):
        _verify(_mutate(bob.bundle_json(1), ik="AAAA"))
    with pytest.raises(UntrustedIdentity):
        _verify(bob.bundle_json(1), device_id=2)


def test_devicelist_anti_rollback() -> None:
    alice = make_user("alice", 2)
    dl1, rec1 = devicelist.accept(None, alice.dl_data, alice.dl_sig, alice.aik.pub, "alice")
    # same version, same content: fine, unchanged record
    assert devicelist.accept(rec1, alice.dl_data, alice.dl_sig, alice.aik.pub, "alice")[1] is rec1
    # same version, different content: rollback/equivocation
    other = devicelist.DeviceList("alice", 1, NOW + 5, dl1.devices[:1])
    d, s = devicelist.sign(other, alice.aik)
    with pytest.raises(Rollback):
        devicelist.accept(rec1, d, s, alice.aik.pub, "alice")
    # newer accepted, then the old one is a rollback
    v2 = devicelist.without_device(dl1, 2, NOW + 10)
    d2, s2 = devicelist.sign(v2, alice.aik)
    _, rec2 = devicelist.accept(rec1, d2, s2, alice.aik.pub, "alice")
    assert rec2.version == 2
    with pytest.raises(Rollback):
        devicelist.accept(rec2, alice.dl_data, alice.dl_sig, alice.aik.pub, "alice")
    # signature by another key, or for another user
    with pytest.raises(BadSignature):
        devicelist.accept(rec2, d2, s2, Ed25519KeyPair.generate().pub, "alice")
    with pytest.raises(UntrustedIdentity):
        devicelist.accept(None, d2, s2, alice.aik.pub, "bob")


def test_devicelist_limits_and_canonical_form() -> None:
    aik = Ed25519KeyPair.generate()
    devs = tuple(devicelist.Device(i, aik.pub) for i in range(1, 12))
    with pytest.raises(MalformedMessage):
        devicelist.DeviceList("u", 1, 0, devs).encode()
    dl = devicelist.DeviceList(
        "u", 1, 0, (devicelist.Device(2, aik.pub), devicelist.Device(1, aik.pub))
    )
    data = dl.encode()
    assert [d.device_id for d in devicelist.parse(data).devices] == [1, 2]
    swapped = data[:-74] + data[-37:] + data[-74:-37]
    with pytest.raises(MalformedMessage):
        devicelist.parse(swapped)
    with pytest.raises(MalformedMessage):
        devicelist.parse(data + b"\0")
    with pytest.raises(MalformedMessage):
        devicelist.DeviceList("u", 0, 0, ()).encode()


def test_provisioning_round_trip() -> None:
    alice = make_user("alice")
    req = provisioning.ProvisioningRequest.create(now=NOW)
    prov_id, e_pub = provisioning.parse_qr(req.qr_text())
    assert prov_id == req.prov_id and e_pub == req.e_pub
    sealed = provisioning.seal(
        e_pub, user_id="alice", aik=alice.aik, devlist_data=alice.dl_data,
        devlist_sig=alice.dl_sig, link_token="tok",
    )  # fmt: skip
    res = provisioning.open_sealed(req, sealed, now=NOW + 1000)
    assert res.aik.pub == alice.aik.pub and res.link_token == "tok"
    assert res.devlist == alice.dl
    # N publishes DL' with itself, signed with the AIK it received
    newdev = make_device(2)
    dl2 = devicelist.with_device(res.devlist, 2, newdev.ik.pub, NOW + 2000)
    d, s = devicelist.sign(dl2, res.aik)
    got, _ = devicelist.accept(None, d, s, alice.aik.pub, "alice")
    assert got.contains(2, newdev.ik.pub) and got.version == 2


def test_provisioning_rejections() -> None:
    alice = make_user("alice")
    req = provisioning.ProvisioningRequest.create(now=NOW)
    other = provisioning.ProvisioningRequest.create(now=NOW)
    sealed = provisioning.seal(
        req.e_pub, user_id="alice", aik=alice.aik, devlist_data=alice.dl_data,
        devlist_sig=alice.dl_sig, link_token="t",
    )  # fmt: skip
    with pytest.raises(CryptoError):
        provisioning.open_sealed(other, sealed, now=NOW)
    with pytest.raises(CryptoError):
        provisioning.open_sealed(req, sealed, now=NOW + 600_001)
    bad = provisioning.seal(
        req.e_pub, user_id="alice", aik=Ed25519KeyPair.generate(), devlist_data=alice.dl_data,
        devlist_sig=alice.dl_sig, link_token="t",
    )  # fmt: skip
    with pytest.raises(BadSignature):
        provisioning.open_sealed(req, bad, now=NOW)
    with pytest.raises(MalformedMessage):
        provisioning.parse_qr("imlink:2:abc")
