"""Key directory over real HTTP against the real server, with real keys from parley.crypto.

Every bundle a test receives goes through the client checks of ``parley.crypto.bundle``.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest

from parley.crypto import backup, devicelist
from parley.crypto.b64 import b64d, b64e
from parley.crypto.bundle import verify_bundle
from parley.crypto.constants import DEVLIST_DOMAIN
from parley.crypto.keys import Ed25519KeyPair, OneTimePreKey, SignedPreKey, enc_ed
from tests.support.accounts import Login, login, new_user
from tests.support.server import ServerProcess

TIMEOUT = httpx.Timeout(15.0)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]


@dataclass
class Device:
    """One logged-in device with real IMv1 keys."""

    login: Login
    ik: Ed25519KeyPair = field(default_factory=Ed25519KeyPair.generate)
    spk: SignedPreKey | None = None
    opks: list[OneTimePreKey] = field(default_factory=list)
    next_opk: int = 1

    def __post_init__(self) -> None:
        self.spk = SignedPreKey.generate(self.ik, 1)

    @property
    def id(self) -> int:
        return self.login.device_id

    def new_opks(self, n: int) -> list[OneTimePreKey]:
        out = [OneTimePreKey.generate(self.next_opk + i) for i in range(n)]
        self.next_opk += n
        self.opks += out
        return out

    def upload_body(self, opks: list[OneTimePreKey]) -> dict[str, Any]:
        assert self.spk is not None
        return {
            "ik": b64e(self.ik.pub),
            "spk": {"id": self.spk.id, "pub": b64e(self.spk.pub), "sig": b64e(self.spk.sig)},
            "opks": [{"id": o.id, "pub": b64e(o.pub)} for o in opks],
        }


class Api:
    def __init__(self, server: ServerProcess) -> None:
        self.url = f"{server.http_url}/api/v1/keys"

    def upload(self, dev: Device, n_opks: int = 0) -> httpx.Response:
        body = dev.upload_body(dev.new_opks(n_opks))
        return httpx.put(
            f"{self.url}/device", json=body, headers=_auth(dev.login.token), timeout=TIMEOUT
        )

    def publish(
        self, who: Login, aik: Ed25519KeyPair, devices: list[Device], version: int
    ) -> httpx.Response:
        dl = devicelist.DeviceList(
            who.user_id,
            version,
            int(time.time() * 1000),
            tuple(devicelist.Device(d.id, d.ik.pub) for d in devices),
        )
        data, sig = devicelist.sign(dl, aik)
        return self.put_list(who, aik, data, sig)

    def put_list(self, who: Login, aik: Ed25519KeyPair, data: bytes, sig: bytes) -> httpx.Response:
        body = {"aik": b64e(aik.pub), "devlist": b64e(data), "devlist_sig": b64e(sig)}
        return httpx.put(
            f"{self.url}/devicelist", json=body, headers=_auth(who.token), timeout=TIMEOUT
        )

    def bundles(self, caller: Login, user_id: str) -> httpx.Response:
        return httpx.get(
            f"{self.url}/users/{user_id}/bundles", headers=_auth(caller.token), timeout=TIMEOUT
        )

    def count(self, dev: Login) -> dict[str, Any]:
        r = httpx.get(f"{self.url}/count", headers=_auth(dev.token), timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


@pytest.fixture
def api(server: ServerProcess) -> Api:
    return Api(server)


def _setup(
    api: Api, server: ServerProcess, n_devices: int, n_opks: int
) -> tuple[list[Device], Ed25519KeyPair]:
    """A fresh user whose devices uploaded keys and who published a device list (version 1)."""
    devs = [Device(lg) for lg in new_user(server.http_url, "keys", devices=n_devices)]
    for d in devs:
        r = api.upload(d, n_opks)
        assert r.status_code == 200, r.text
        assert r.json() == {"count": n_opks, "low": n_opks < 25}
    aik = Ed25519KeyPair.generate()
    r = api.publish(devs[0].login, aik, devs, 1)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 1
    return devs, aik


def _verified(bundle: dict[str, Any], aik: Ed25519KeyPair) -> devicelist.DeviceList:
    """Runs the four client checks of docs/imv1.md §3.4 (TOFU, nothing stored yet)."""
    vb = verify_bundle(
        msgspec.json.encode(bundle),
        user_id=bundle["user_id"],
        device_id=bundle["device_id"],
        pinned_aik=None,
        stored_devlist=None,
    )
    assert vb.aik_pub == aik.pub
    return vb.devlist


def _healthy(server: ServerProcess) -> None:
    assert httpx.get(f"{server.http_url}/healthz", timeout=TIMEOUT).status_code == 200


# --- upload and bundles ------------------------------------------------------------------------


def test_upload_then_another_user_fetches_verified_bundles(api: Api, server: ServerProcess) -> None:
    alice, aik = _setup(api, server, n_devices=2, n_opks=30)
    (bob,) = new_user(server.http_url, "bob")
    r = api.bundles(bob, alice[0].login.user_id)
    assert r.status_code == 200, r.text
    bundles = r.json()["bundles"]
    assert [b["device_id"] for b in bundles] == sorted(d.id for d in alice)
    for b, dev in zip(bundles, sorted(alice, key=lambda d: d.id), strict=True):
        dl = _verified(b, aik)
        assert dl.contains(dev.id, dev.ik.pub) and dl.version == 1
        assert b["ik"] == b64e(dev.ik.pub)
        assert b["opk"] == {"id": dev.opks[0].id, "pub": b64e(dev.opks[0].pub)}
    # one OPK per device went out, and the owner sees its count go down
    assert api.count(alice[0].login) == {"count": 29, "low": False}
    # a refill is reported back
    assert api.upload(alice[0], 10).json() == {"count": 39, "low": False}
    # the current device list is public to any signed-in user
    got = httpx.get(
        f"{api.url}/users/{alice[0].login.user_id}/devicelist",
        headers=_auth(bob.token),
        timeout=TIMEOUT,
    )
    assert got.status_code == 200 and got.json()["aik"] == b64e(aik.pub)
    assert got.json()["devlist"] == bundles[0]["devlist"]


def test_opk_exhaustion_gives_null_and_low_count(api: Api, server: ServerProcess) -> None:
    (alice,), aik = _setup(api, server, n_devices=1, n_opks=2)
    (bob,) = new_user(server.http_url, "bob")
    seen = []
    for _ in range(3):
        (b,) = api.bundles(bob, alice.login.user_id).json()["bundles"]
        _verified(b, aik)  # a bundle without an OPK still passes the checks
        seen.append(None if b["opk"] is None else b["opk"]["id"])
    assert seen == [1, 2, None]
    assert api.count(alice.login) == {"count": 0, "low": True}


def test_concurrent_fetches_never_share_an_opk(api: Api, server: ServerProcess) -> None:
    (alice,), _ = _setup(api, server, n_devices=1, n_opks=10)
    (bob,) = new_user(server.http_url, "bob")

    async def fetch_all() -> list[int | None]:
        async with httpx.AsyncClient(timeout=TIMEOUT, headers=_auth(bob.token)) as c:
            url = f"{api.url}/users/{alice.login.user_id}/bundles"
            rs = await asyncio.gather(*(c.get(url) for _ in range(25)))
        out = []
        for r in rs:
            assert r.status_code == 200, r.text
            opk = r.json()["bundles"][0]["opk"]
            out.append(None if opk is None else opk["id"])
        return out

    ids = asyncio.run(asyncio.wait_for(fetch_all(), 60))
    handed = [i for i in ids if i is not None]
    assert sorted(handed) == list(range(1, 11))  # each key exactly once
    assert ids.count(None) == 15


def test_unknown_user_and_user_without_list(api: Api, server: ServerProcess) -> None:
    (bob,) = new_user(server.http_url, "bob")
    _error(api.bundles(bob, "00000000-0000-4000-8000-000000000000"), 404, "unknown_user")
    (carol,) = new_user(server.http_url, "carol")
    r = api.bundles(bob, carol.user_id)
    assert r.status_code == 200 and r.json() == {"bundles": []}
    got = httpx.get(
        f"{api.url}/users/{carol.user_id}/devicelist", headers=_auth(bob.token), timeout=TIMEOUT
    )
    _error(got, 404, "not_found")


def test_revoked_device_is_left_out_of_bundles(api: Api, server: ServerProcess) -> None:
    alice, _ = _setup(api, server, n_devices=2, n_opks=3)
    r = httpx.delete(
        f"{server.http_url}/api/v1/devices/{alice[1].id}",
        headers=_auth(alice[0].login.token),
        timeout=TIMEOUT,
    )
    assert r.status_code == 204, r.text
    (bob,) = new_user(server.http_url, "bob")
    bundles = api.bundles(bob, alice[0].login.user_id).json()["bundles"]
    assert [b["device_id"] for b in bundles] == [alice[0].id]


# --- refused uploads -----------------------------------------------------------------------------


def test_bad_spk_signature_and_changed_ik_refused(api: Api, server: ServerProcess) -> None:
    (lg,) = new_user(server.http_url, "spk")
    dev = Device(lg)
    other = Ed25519KeyPair.generate()
    body = dev.upload_body(dev.new_opks(3))
    body["spk"]["sig"] = b64e(SignedPreKey.generate(other, 1).sig)  # signed by another key
    r = httpx.put(f"{api.url}/device", json=body, headers=_auth(lg.token), timeout=TIMEOUT)
    _error(r, 400, "bad_signature")
    assert api.count(lg)["count"] == 0  # nothing was stored
    assert api.upload(dev, 5).status_code == 200
    dev.ik = other  # a new IK under the same device id is a new device: refused
    dev.spk = SignedPreKey.generate(other, 2)
    _error(api.upload(dev, 1), 409, "identity_key_changed")
    assert api.count(lg)["count"] == 5


def test_upload_is_always_for_the_session_device(api: Api, server: ServerProcess) -> None:
    d1, d2 = new_user(server.http_url, "own", devices=2)
    dev = Device(d1)
    body = dev.upload_body(dev.new_opks(2)) | {"device_id": d2.device_id}
    r = httpx.put(f"{api.url}/device", json=body, headers=_auth(d1.token), timeout=TIMEOUT)
    _error(r, 400, "invalid")  # there is no such field
    r = httpx.put(
        f"{api.url}/devices/{d2.device_id}",
        json=dev.upload_body([]),
        headers=_auth(d1.token),
        timeout=TIMEOUT,
    )
    assert r.status_code in (404, 405)  # nor such a route
    assert api.upload(dev, 2).status_code == 200
    assert api.count(d1)["count"] == 2 and api.count(d2)["count"] == 0


def test_bad_bodies_are_invalid(api: Api, server: ServerProcess) -> None:
    (lg,) = new_user(server.http_url, "bad")
    dev = Device(lg)
    body = dev.upload_body(dev.new_opks(2))
    body["opks"][1]["id"] = body["opks"][0]["id"]
    r = httpx.put(f"{api.url}/device", json=body, headers=_auth(lg.token), timeout=TIMEOUT)
    _error(r, 400, "invalid")
    body = dev.upload_body(dev.new_opks(101))  # above OPK_BATCH
    r = httpx.put(f"{api.url}/device", json=body, headers=_auth(lg.token), timeout=TIMEOUT)
    _error(r, 400, "invalid")
    body = dev.upload_body([])
    body["ik"] = body["ik"][:-1] + "="
    r = httpx.put(f"{api.url}/device", json=body, headers=_auth(lg.token), timeout=TIMEOUT)
    _error(r, 400, "invalid")


def test_unauthenticated_is_401(api: Api, server: ServerProcess) -> None:
    (lg,) = new_user(server.http_url, "anon")
    dev = Device(lg)
    calls = [
        ("PUT", "/device", dev.upload_body([])),
        ("GET", "/count", None),
        ("PUT", "/devicelist", {"aik": "A" * 43, "devlist": "AA", "devlist_sig": "A" * 86}),
        ("GET", f"/users/{lg.user_id}/devicelist", None),
        ("GET", f"/users/{lg.user_id}/bundles", None),
        ("POST", "/backup", {"check": "A" * 76}),
        ("GET", "/backup", None),
        ("PUT", "/backup/records", {"version": 1, "records": []}),
        ("GET", "/backup/records?conversation_id=" + "A" * 22, None),
    ]
    for headers in ({}, _auth("not-a-token")):
        for method, path, body in calls:
            r = httpx.request(
                method, f"{api.url}{path}", json=body, headers=headers, timeout=TIMEOUT
            )
            _error(r, 401, "unauthorized")
    # a revoked device's token
    httpx.delete(f"{server.http_url}/api/v1/sessions/current", headers=_auth(lg.token))
    _error(api.upload(dev, 1), 401, "device_revoked")
    _healthy(server)


# --- signed device lists -------------------------------------------------------------------------


def test_device_list_rollback_and_key_checks(api: Api, server: ServerProcess) -> None:
    devs, aik = _setup(api, server, n_devices=2, n_opks=0)
    who = devs[0].login
    assert api.publish(who, aik, devs, 3).status_code == 200
    _error(api.publish(who, aik, devs, 2), 409, "devlist_rollback")
    _error(api.publish(who, aik, devs[:1], 3), 409, "devlist_rollback")  # same version, other list
    # an identical retry of the current list is fine
    cur = httpx.get(
        f"{api.url}/users/{who.user_id}/devicelist", headers=_auth(who.token), timeout=TIMEOUT
    ).json()
    r = httpx.put(
        f"{api.url}/devicelist",
        json={k: cur[k] for k in ("aik", "devlist", "devlist_sig")},
        headers=_auth(who.token),
        timeout=TIMEOUT,
    )
    assert r.status_code == 200 and r.json() == cur
    # another AIK is refused (no account reset path)
    _error(api.publish(who, Ed25519KeyPair.generate(), devs, 4), 409, "account_key_changed")
    # a signature that does not verify
    dl = devicelist.DeviceList(who.user_id, 4, 0, (devicelist.Device(devs[0].id, devs[0].ik.pub),))
    data, _ = devicelist.sign(dl, aik)
    _error(api.put_list(who, aik, data, Ed25519KeyPair.generate().sign(data)), 400, "bad_signature")
    # a list naming another IK than the device uploaded
    impostor = Device(devs[1].login)
    _error(api.publish(who, aik, [devs[0], impostor], 4), 409, "identity_key_changed")
    ok = api.publish(who, aik, devs[:1], 4)  # removing a device is a normal new version
    assert ok.status_code == 200 and ok.json()["version"] == 4
    # a device listed (before its first upload) with one IK cannot upload another
    late = Device(login(server.http_url, who.username, device="late"))
    listed_ik = Device(late.login)
    assert api.publish(who, aik, [devs[0], listed_ik], 5).status_code == 200
    _error(api.upload(late, 1), 409, "identity_key_changed")
    assert api.upload(listed_ik, 1).status_code == 200
    assert ok.status_code == 200 and ok.json()["version"] == 4
    _healthy(server)


def test_device_list_of_other_users_devices_refused(api: Api, server: ServerProcess) -> None:
    alice, aik = _setup(api, server, n_devices=2, n_opks=0)
    bob = [Device(lg) for lg in new_user(server.http_url, "bob", devices=3)]
    a = alice[0].login
    # a device id that exists only for bob
    _error(api.publish(a, aik, [*alice, bob[2]], 2), 400, "unknown_device")
    # bob's user id inside the list, sent by alice
    _error(_publish_as(api, a, aik, bob), 403, "forbidden")
    # a revoked device of alice
    r = httpx.delete(
        f"{server.http_url}/api/v1/devices/{alice[1].id}", headers=_auth(a.token), timeout=TIMEOUT
    )
    assert r.status_code == 204
    _error(api.publish(a, aik, alice, 2), 400, "unknown_device")
    assert api.publish(a, aik, alice[:1], 2).status_code == 200


def _publish_as(
    api: Api, sender: Login, aik: Ed25519KeyPair, devices: list[Device]
) -> httpx.Response:
    """``sender`` PUTs a list whose user_id is the devices' owner."""
    owner = devices[0].login.user_id
    dl = devicelist.DeviceList(
        owner, 1, 0, tuple(devicelist.Device(d.id, d.ik.pub) for d in devices)
    )
    data, sig = devicelist.sign(dl, aik)
    return api.put_list(sender, aik, data, sig)


def test_eleven_devices_refused_ten_accepted(api: Api, server: ServerProcess) -> None:
    devs = [Device(lg) for lg in new_user(server.http_url, "many", devices=11)]
    aik = Ed25519KeyPair.generate()
    who = devs[0].login
    assert api.publish(who, aik, devs[:10], 1).status_code == 200
    # DeviceList.encode refuses 11 devices, so build the bytes by hand (§3.3 layout)
    uid = who.user_id.encode()
    data = b"".join(
        [
            DEVLIST_DOMAIN,
            struct.pack(">H", len(uid)),
            uid,
            struct.pack(">QQH", 2, 0, 11),
            *(struct.pack(">I", d.id) + enc_ed(d.ik.pub) for d in sorted(devs, key=lambda d: d.id)),
        ]
    )
    _error(api.put_list(who, aik, data, aik.sign(data)), 400, "too_many_devices")


# --- key backup ------------------------------------------------------------------------------------


def test_backup_create_get_put_lowest_wins(api: Api, server: ServerProcess) -> None:
    (lg,) = new_user(server.http_url, "bk")
    h = _auth(lg.token)
    _error(httpx.get(f"{api.url}/backup", headers=h, timeout=TIMEOUT), 404, "not_found")
    bk = backup.generate_backup_key()
    ver = backup.make_version(bk, 1)
    r = httpx.post(f"{api.url}/backup", json={"check": b64e(ver.check)}, headers=h, timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["version"] == 1 and created["algorithm"] == "IMv1-backup-1"
    got = httpx.get(f"{api.url}/backup", headers=h, timeout=TIMEOUT).json()
    assert got == created
    # the stored check still tells the right key from a wrong one
    stored = backup.BackupVersion(version=got["version"], check=b64d(got["check"]))
    assert backup.key_matches(stored, bk)
    assert not backup.key_matches(stored, backup.generate_backup_key())

    conv, dist = os.urandom(16), os.urandom(16)

    def record(iteration: int, chain: int = 1, blob: bytes | None = None) -> dict[str, Any]:
        return {
            "conversation_id": b64e(conv),
            "sender_user_id": lg.user_id,
            "sender_device_id": 1,
            "distribution_id": b64e(dist),
            "chain_id": chain,
            "iteration": iteration,
            "blob": b64e(blob or os.urandom(150)),
        }

    def put(version: int, records: list[dict[str, Any]]) -> httpx.Response:
        return httpx.put(
            f"{api.url}/backup/records",
            json={"version": version, "records": records},
            headers=h,
            timeout=TIMEOUT,
        )

    def records(**params: Any) -> httpx.Response:
        return httpx.get(f"{api.url}/backup/records", params=params, headers=h, timeout=TIMEOUT)

    r40 = record(40)
    assert put(1, [r40, record(5, chain=2)]).json() == {"stored": 2, "kept": 0, "count": 2}
    r12 = record(12)
    assert put(1, [record(90), r12]).json() == {"stored": 1, "kept": 1, "count": 2}
    assert put(1, [record(12)]).json() == {"stored": 0, "kept": 1, "count": 2}  # a tie keeps
    got_recs = records(conversation_id=b64e(conv)).json()
    assert got_recs["version"] == 1
    by_chain = {x["chain_id"]: x for x in got_recs["records"]}
    assert by_chain[1] == r12 and by_chain[2]["iteration"] == 5
    assert records(conversation_id=b64e(os.urandom(16))).json()["records"] == []
    # limits
    _error(put(1, [record(1, blob=os.urandom(2049))]), 413, "too_large")
    assert put(1, [record(1, chain=3, blob=os.urandom(2048))]).json()["count"] == 3
    _error(records(conversation_id=[b64e(os.urandom(16)) for _ in range(101)]), 413, "too_large")
    _error(put(1, [record(1)] * 257), 400, "invalid")
    # a new version drops the old records; the old version is refused
    ver2 = backup.make_version(bk, 2, salt=os.urandom(16), opslimit=3, memlimit=65536 * 1024)
    r = httpx.post(
        f"{api.url}/backup",
        json={
            "check": b64e(ver2.check),
            "salt": b64e(ver2.salt or b""),
            "limits": {"opslimit": 3, "memlimit": 65536 * 1024},
        },
        headers=h,
        timeout=TIMEOUT,
    )
    assert r.status_code == 201 and r.json()["version"] == 2 and r.json()["count"] == 0
    assert r.json()["salt"] == b64e(ver2.salt or b"") and r.json()["limits"]["opslimit"] == 3
    _error(put(1, [record(1)]), 409, "backup_version_mismatch")
    _error(records(conversation_id=b64e(conv), version=1), 409, "backup_version_mismatch")
    assert records(conversation_id=b64e(conv)).json() == {"version": 2, "records": []}
    # backups are per user: another user sees none
    (other,) = new_user(server.http_url, "bk2")
    _error(
        httpx.get(f"{api.url}/backup", headers=_auth(other.token), timeout=TIMEOUT),
        404,
        "not_found",
    )
    _healthy(server)


def test_bundle_fetches_are_rate_limited_per_target(api: Api, server: ServerProcess) -> None:
    (alice,), _ = _setup(api, server, n_devices=1, n_opks=0)
    (carol,), _ = _setup(api, server, n_devices=1, n_opks=0)
    (bob,) = new_user(server.http_url, "bob")
    codes = [api.bundles(bob, alice.login.user_id).status_code for _ in range(61)]
    assert codes == [200] * 60 + [429]
    r = api.bundles(bob, alice.login.user_id)
    _error(r, 429, "rate_limited")
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert api.bundles(bob, carol.login.user_id).status_code == 200  # other targets still work


def test_protocol_limits_match_the_crypto_constants() -> None:
    """parley.protocol.keys stays msgspec-only, so it repeats these docs/imv1.md §2 values."""
    from parley.crypto import constants
    from parley.protocol import keys as proto

    assert proto.OPK_BATCH == constants.OPK_BATCH
    assert proto.OPK_LOW_WATER == constants.OPK_LOW_WATER
    assert proto.MAX_DEVICES == constants.MAX_DEVICES
    assert proto.BACKUP_ALGORITHM == constants.BACKUP_ALGORITHM
