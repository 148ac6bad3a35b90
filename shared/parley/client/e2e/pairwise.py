"""To-device messages over pairwise sessions (docs/imv1.md §4.5, §P.2), one per remote device.

Sessions are created only with devices of a verified device list (``directory``), so the
IK a PreKeyMessage claims must match that list. The to-device body on the wire is one type
byte (2 = DRMessage, 3 = PreKeyMessage) followed by the envelope. A decryption failure other
than a duplicate starts the automatic reset at most once per RESET_MIN_INTERVAL: the caller
fetches a fresh bundle, ``initiate``s and sends a ``derr`` content first.
"""

from __future__ import annotations

from parley.client.e2e.identity import ik
from parley.client.e2e.state import E2EState, ToDeviceOut, dev_key
from parley.crypto import content as content_mod
from parley.crypto import sessions
from parley.crypto.b64 import b64e
from parley.crypto.bundle import VerifiedBundle
from parley.crypto.errors import CryptoError, DuplicateMessage, MalformedMessage, NoSession
from parley.crypto.keys import Rng, rng_or_default


class ResetNeeded(Exception):
    """Decryption failed: fetch a bundle of (user_id, device_id), ``initiate`` and send
    ``derr`` (``ratchet``, ``n`` of the failed envelope, ``orig_ts``)."""

    def __init__(self, user_id: str, device_id: int, ratchet: bytes, n: int, ts: int) -> None:
        super().__init__("pairwise session reset needed")
        self.user_id = user_id
        self.device_id = device_id
        self.ratchet = ratchet
        self.n = n
        self.ts = ts


def has_session(st: E2EState, user_id: str, device_id: int) -> bool:
    d = st.sessions.get(dev_key(user_id, device_id))
    return d is not None and d.active is not None


def _device(st: E2EState, user_id: str, device_id: int) -> sessions.DeviceSessions:
    ikpub = st.contacts[user_id].devices.get(device_id) if user_id in st.contacts else None
    if ikpub is None:
        raise NoSession("device is not in the verified device list")
    k = dev_key(user_id, device_id)
    d = st.sessions.get(k)
    if d is None or d.remote_ik != ikpub:
        d = st.sessions[k] = sessions.DeviceSessions(user_id, device_id, ikpub)
    return d


def initiate(st: E2EState, vb: VerifiedBundle, now: int, rng: Rng | None = None) -> None:
    """X3DH with a verified bundle: the new session becomes active."""
    sessions.initiate(_device(st, vb.user_id, vb.device_id), ik(st), vb, now=now, rng=rng)


def encrypt(
    st: E2EState, user_id: str, device_id: int, c: content_mod.Content, now: int
) -> ToDeviceOut:
    """Encrypt one content for one device. Mutates the session: persist before sending."""
    d = _device(st, user_id, device_id)
    etype, body = sessions.encrypt(d, content_mod.encode(c), now=now)
    return ToDeviceOut(user_id, device_id, bytes((etype,)) + body)


def decrypt(
    st: E2EState, sender: str, sender_device: int, body: bytes, ts: int, now: int
) -> content_mod.Content | None:
    """Decrypt a to-device body from the server-asserted sender. None = drop (duplicate,
    unknown device, malformed). Raises ResetNeeded when a reset is due."""
    if len(body) < 2:
        return None
    etype, env = body[0], body[1:]
    try:
        d = _device(st, sender, sender_device)
    except NoSession:
        return None  # not in a verified device list: ignored (§3.3)
    try:
        pt = sessions.decrypt(d, ik(st), st.own.prekeys, etype, env, now=now)
    except DuplicateMessage:
        return None
    except MalformedMessage:
        return None
    except CryptoError:
        if not d.begin_auto_reset(now):
            return None
        try:
            ratchet, n = sessions.derr_info(etype, env)
        except CryptoError:
            return None
        raise ResetNeeded(sender, sender_device, ratchet, n, ts) from None
    try:
        return content_mod.decode(pt, group=False)
    except CryptoError:
        return None


def new_id(rng: Rng | None = None) -> str:
    """A fresh content id (16 random bytes) from the injected ``rng``."""
    return b64e(rng_or_default(rng)(16))
