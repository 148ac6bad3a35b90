"""Own keys: the account identity key (AIK), the device identity key (IK), signed and
one-time prekeys, and what this device publishes in the key directory (docs/imv1.md §3).

The first device of an account creates the AIK and device list version 1; a device linked
later receives the AIK seed through provisioning (§3.5) and publishes the next version with
itself added. SPKs rotate every SPK_ROTATION; OPKs are refilled by OPK_BATCH when the server
reports fewer than OPK_LOW_WATER (``maintain_keys``: the shell asks the server for the count on
connect, after inbound sessions were set up with our OPKs, and when ``keys_due_ms`` comes).
"""

from __future__ import annotations

from parley.client.e2e.state import Contact, E2EState, OwnDevice
from parley.crypto import devicelist, provisioning
from parley.crypto.b64 import b64e
from parley.crypto.constants import OPK_BATCH, OPK_LOW_WATER, SPK_ROTATION
from parley.crypto.errors import CryptoError
from parley.crypto.keys import Ed25519KeyPair, OneTimePreKey, Rng, SignedPreKey, rng_or_default
from parley.protocol.keys import (
    OPK_MAX_STORED,
    OneTimePreKeyBody,
    PutDeviceListBody,
    SignedPreKeyBody,
    UploadKeysBody,
)


def new_device(
    user_id: str, device_id: int, *, aik_seed: bytes | None, now: int, rng: Rng | None = None
) -> E2EState:
    """State of a fresh device. ``aik_seed`` None and ``create_account_key``: first device."""
    r = rng_or_default(rng)
    own = OwnDevice(user_id=user_id, device_id=device_id, ik_seed=r(32), aik_seed=aik_seed)
    st = E2EState(own=own)
    rotate_spk(st, now, rng=r)
    return st


def create_account_key(st: E2EState, rng: Rng | None = None) -> None:
    """First device of the account: a new AIK (only when none is held)."""
    if st.own.aik_seed is None:
        st.own.aik_seed = rng_or_default(rng)(32)


def ik(st: E2EState) -> Ed25519KeyPair:
    return Ed25519KeyPair.from_seed(st.own.ik_seed)


def aik(st: E2EState) -> Ed25519KeyPair:
    if st.own.aik_seed is None:
        raise ValueError("this device holds no account identity key yet")
    return Ed25519KeyPair.from_seed(st.own.aik_seed)


def rotate_spk(st: E2EState, now: int, rng: Rng | None = None) -> SignedPreKey:
    spk = SignedPreKey.generate(ik(st), st.own.next_spk_id, now, rng)
    st.own.next_spk_id += 1
    st.own.prekeys.add_spk(spk)
    st.own.spk_rotated_ms = now
    st.own.prekeys.erase_expired_spks(now)
    return spk


def spk_due(st: E2EState, now: int) -> bool:
    return now - st.own.spk_rotated_ms >= SPK_ROTATION


def new_opks(st: E2EState, n: int = OPK_BATCH, rng: Rng | None = None) -> list[OneTimePreKey]:
    """Generate ``n`` OPKs and keep their private halves (stored before they are uploaded)."""
    opks = [OneTimePreKey.generate(st.own.next_opk_id + i, rng) for i in range(n)]
    st.own.next_opk_id += n
    st.own.prekeys.add_opks(opks)
    return opks


OPK_CHECK_INTERVAL = 6 * 3600 * 1000
"""Ask the server for our OPK count at least this often (others fetching our bundles use
them up without us hearing of it until their first message)."""


def keys_due_ms(st: E2EState) -> int:
    """Wall time (ms) of the next key maintenance: the SPK's rotation or an OPK count check."""
    return min(st.own.spk_rotated_ms + SPK_ROTATION, st.own.opks_checked_ms + OPK_CHECK_INTERVAL)


def maintain_keys(
    st: E2EState, now: int, opk_count: int, rng: Rng | None = None
) -> UploadKeysBody | None:
    """Given the server's count of our OPKs: a new SPK when the current one is SPK_ROTATION
    old, a batch of OPKs when fewer than OPK_LOW_WATER are left. Returns the body to upload
    (the state holds the private halves: persist it BEFORE uploading) or None."""
    st.own.opks_checked_ms = now
    rotate = spk_due(st, now)
    n = min(OPK_BATCH, OPK_MAX_STORED - opk_count) if opk_count < OPK_LOW_WATER else 0
    if not rotate and n <= 0 and not st.own.upload_pending:
        return None
    if rotate:
        rotate_spk(st, now, rng)
    st.own.upload_pending = True  # until ``uploaded``: the new SPK must reach the server
    return upload_body(st, new_opks(st, n, rng) if n > 0 else [])


def uploaded(st: E2EState) -> None:
    """The server took the body ``maintain_keys`` returned."""
    st.own.upload_pending = False


def upload_body(st: E2EState, opks: list[OneTimePreKey]) -> UploadKeysBody:
    """PUT /keys/device body: IK, the current SPK and new OPKs (public halves only)."""
    spk = st.own.prekeys.spks[st.own.prekeys.current_spk_id]
    return UploadKeysBody(
        ik=b64e(ik(st).pub),
        spk=SignedPreKeyBody(id=spk.id, pub=b64e(spk.pub), sig=b64e(spk.sig)),
        opks=[OneTimePreKeyBody(id=o.id, pub=b64e(o.pub)) for o in opks],
    )


def own_contact(st: E2EState) -> Contact:
    c = st.contacts.get(st.own.user_id)
    if c is None:
        c = st.contacts[st.own.user_id] = Contact(user_id=st.own.user_id)
    return c


def _publish(st: E2EState, dl: devicelist.DeviceList) -> PutDeviceListBody:
    a = aik(st)
    data, sig = devicelist.sign(dl, a)
    c = own_contact(st)
    _, rec = devicelist.accept(c.devlist, data, sig, a.pub, st.own.user_id)
    c.devlist = rec
    c.devices = {d.device_id: d.ik_pub for d in dl.devices}
    st.own.published_devlist = True
    return PutDeviceListBody(aik=b64e(a.pub), devlist=b64e(data), devlist_sig=b64e(sig))


def devlist_with_self(st: E2EState, now: int) -> PutDeviceListBody:
    """The next device list including this device (version 1 on the first device)."""
    c = own_contact(st)
    me = ik(st).pub
    if c.devlist is None:
        dl = devicelist.DeviceList(
            st.own.user_id, 1, now, (devicelist.Device(st.own.device_id, me),)
        )
    else:
        dl = devicelist.with_device(devicelist.parse(c.devlist.data), st.own.device_id, me, now)
    return _publish(st, dl)


def devlist_without(st: E2EState, device_id: int, now: int) -> PutDeviceListBody:
    """Remove one of our own devices: the next version without it (any AIK holder may)."""
    c = own_contact(st)
    if c.devlist is None:
        raise ValueError("no own device list yet")
    return _publish(st, devicelist.without_device(devicelist.parse(c.devlist.data), device_id, now))


# --- device linking (docs/imv1.md §3.5; the relay's HTTP calls are the shell's) ---------------


def seal_link(st: E2EState, e_pub: bytes, link_token: str) -> bytes:
    """Existing device: our account key and newest verified device list, sealed for the new
    device's ephemeral key ``e_pub`` (from its link code) with the server's one-time token.
    Refresh our own device list first: the new device publishes the version after it."""
    c = st.contacts.get(st.own.user_id)
    if c is None or c.devlist is None:
        raise CryptoError("our own device list is not known yet")
    return provisioning.seal(
        e_pub,
        user_id=st.own.user_id,
        aik=aik(st),
        devlist_data=c.devlist.data,
        devlist_sig=c.devlist.sig,
        link_token=link_token,
    )


def adopt_link(st: E2EState, res: provisioning.ProvisionResult) -> None:
    """New device: take the account key and the device list the existing device sealed (its
    signature is checked against that key); the next device list, with this device in it, is
    then published like a first device's (``published_devlist`` is cleared)."""
    if res.user_id != st.own.user_id:
        raise CryptoError("provisioned for another account")
    st.own.aik_seed = res.aik.seed
    c = own_contact(st)
    _, c.devlist = devicelist.accept(
        None, res.devlist_data, res.devlist_sig, res.aik.pub, st.own.user_id
    )
    c.devices = {d.device_id: d.ik_pub for d in res.devlist.devices}
    st.own.published_devlist = False
