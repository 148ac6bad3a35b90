"""Verifying what the key directory hands out (docs/imv1.md §3.3, §3.4, §9.3).

The server is not trusted to add devices or change keys: a device list is accepted only if it
verifies under the user's pinned AIK and is not a rollback; a bundle only if its device is in
that list. First contact pins the AIK (TOFU). An AIK change inserts a "key_changed" notice and,
if the contact was VERIFIED (or in strict mode), blocks sending until the user accepts. Device
changes delete sessions / inbound keys of removed devices and mark our sender keys of shared
conversations for rotation (§7.5).
"""

from __future__ import annotations

from parley.client.e2e.state import Contact, E2EState, Notice, dev_key, inbound_key
from parley.crypto import bundle as bundle_mod
from parley.crypto import devicelist, safety
from parley.crypto.b64 import b64d
from parley.crypto.errors import KeyChanged, SendingBlocked
from parley.crypto.kdf import ct_eq
from parley.protocol.keys import Bundle, DeviceListReply


def contact(st: E2EState, user_id: str) -> Contact:
    c = st.contacts.get(user_id)
    if c is None:
        c = st.contacts[user_id] = Contact(user_id=user_id)
    return c


def accept_device_list(st: E2EState, reply: DeviceListReply, now: int) -> list[Notice]:
    """Verify a fetched device list and apply its changes. Raises CryptoError on a bad
    signature or a rollback (nothing changes then), KeyChanged for our OWN AIK."""
    user_id = reply.user_id
    aik_pub = b64d(reply.aik, 32)
    data = b64d(reply.devlist)
    sig = b64d(reply.devlist_sig, 64)
    c = contact(st, user_id)
    notices: list[Notice] = []
    own = user_id == st.own.user_id
    if own:
        if st.own.aik_seed is None:
            raise KeyChanged("own device list before this device holds the account key")
        from parley.client.e2e.identity import aik

        if not ct_eq(aik(st).pub, aik_pub):
            raise KeyChanged("own account identity key differs")
        stored = c.devlist
    else:
        dl = devicelist.verify(data, sig, aik_pub, user_id=user_id)  # before touching trust
        entry, obs = safety.observe(c.trust, user_id, aik_pub, strict=st.strict)
        stored = c.devlist
        if obs is safety.Observation.CHANGED:
            notices.append(Notice(user_id, "key_changed", now))
            stored = None  # a new AIK starts a new version history
            _forget_devices(st, user_id, list(c.devices), now)
            c.devices = {}
        c.trust = entry
    dl, rec = devicelist.accept(stored, data, sig, aik_pub, user_id)
    new = {d.device_id: d.ik_pub for d in dl.devices}
    old = dict(c.devices)
    gone = [d for d, k in old.items() if d not in new or not ct_eq(new[d], k)]
    added = [d for d, k in new.items() if d not in old or not ct_eq(old[d], k)]
    _forget_devices(st, user_id, gone, now)
    for d in gone:
        notices.append(Notice(user_id, "device_removed", now, d))
    if old or not own:
        for d in added:
            if c.devlist is not None:  # not at first sight
                notices.append(Notice(user_id, "device_added", now, d))
    c.devlist = rec
    c.devices = new
    st.notices.extend(notices)
    return notices


def _forget_devices(st: E2EState, user_id: str, device_ids: list[int], now: int) -> None:
    """§4.5 / §7.5: delete the devices' sessions and inbound sender keys; our own sender keys
    of every conversation shared with that user rotate before the next send."""
    if not device_ids:
        return
    for d in device_ids:
        st.sessions.pop(dev_key(user_id, d), None)
        if user_id == st.own.user_id and d == st.own.device_id:
            continue
        for k in [k for k in st.inbound if k.endswith(f"/{user_id}/{d}")]:
            del st.inbound[k]
    for cid, view in st.conversations.items():
        if user_id in view.members or user_id == st.own.user_id:
            og = st.outbound.get(cid)
            if og is not None and og.key is not None:
                og.rotate = True


def verify_bundle(st: E2EState, b: Bundle) -> bundle_mod.VerifiedBundle:
    """§3.4 checks against the pinned AIK and the stored device list. The device list must
    have been accepted first (``accept_device_list``): a pin never happens here."""
    c = contact(st, b.user_id)
    pinned = c.trust.aik_pub if c.trust is not None else None
    if b.user_id == st.own.user_id:
        from parley.client.e2e.identity import aik

        pinned = aik(st).pub
    if pinned is None:
        raise KeyChanged("no pinned account key: fetch the device list first")
    bj = bundle_mod.BundleJson(
        user_id=b.user_id, device_id=b.device_id, aik=b.aik, devlist=b.devlist,
        devlist_sig=b.devlist_sig, ik=b.ik,
        spk=bundle_mod.SpkJson(b.spk.id, b.spk.pub, b.spk.sig),
        opk=None if b.opk is None else bundle_mod.OpkJson(b.opk.id, b.opk.pub),
    )  # fmt: skip
    vb = bundle_mod.verify_bundle(
        bj, user_id=b.user_id, device_id=b.device_id, pinned_aik=pinned,
        stored_devlist=c.devlist,
    )  # fmt: skip
    known = c.devices.get(b.device_id)
    if known is None or not ct_eq(known, vb.ik_pub):
        raise KeyChanged("bundle device is not in the verified device list we hold")
    return vb


def may_send_to(st: E2EState, user_id: str) -> bool:
    c = st.contacts.get(user_id)
    return c is None or c.trust is None or safety.may_send(c.trust)


def require_may_send(st: E2EState, users: list[str]) -> None:
    blocked = [u for u in users if not may_send_to(st, u)]
    if blocked:
        raise SendingBlocked("safety number changed: accept it before sending")


def accept_key_change(st: E2EState, user_id: str) -> None:
    """The user accepted a changed safety number: sending is allowed again (UNVERIFIED)."""
    c = contact(st, user_id)
    if c.trust is not None:
        c.trust = safety.accept_change(c.trust)


def mark_verified(st: E2EState, user_id: str) -> None:
    """After a matching QR scan / digit comparison of the pinned AIK."""
    c = contact(st, user_id)
    if c.trust is None:
        raise KeyChanged("no pinned key to verify")
    c.trust = safety.mark_verified(c.trust, c.trust.aik_pub)


def safety_number(st: E2EState, user_id: str) -> str:
    from parley.client.e2e.identity import aik

    c = contact(st, user_id)
    if c.trust is None:
        raise KeyChanged("no pinned key")
    mine = safety.fingerprint(aik(st).pub, st.own.user_id)
    theirs = safety.fingerprint(c.trust.aik_pub, user_id)
    return safety.safety_number(mine, theirs)


__all__ = [
    "accept_device_list",
    "accept_key_change",
    "contact",
    "inbound_key",
    "mark_verified",
    "may_send_to",
    "require_may_send",
    "safety_number",
    "verify_bundle",
]
