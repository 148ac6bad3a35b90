"""Key backup of inbound sender-key states (docs/imv1.md §13, §P.4): what lets a new device
(or a reinstalled one) read history. Sessions are never backed up (§4.2).

The backup key BK is 32 random bytes shown once as a recovery key, or Argon2id of a
passphrase (salt and limits travel with the version record; tests pass MIN limits). Records
are sealed per inbound state at its EARLIEST known iteration; the server keeps the lowest.
"""

from __future__ import annotations

from parley.client.e2e import groups
from parley.client.e2e.state import BackupState, E2EState
from parley.crypto import backup as bk_mod
from parley.crypto.b64 import b64d, b64e
from parley.crypto.backend import PWHASH_MEMLIMIT_MODERATE, PWHASH_OPSLIMIT_MODERATE
from parley.crypto.constants import BACKUP_SALT_LEN
from parley.crypto.errors import CryptoError, DecryptionFailed
from parley.crypto.keys import Rng, rng_or_default
from parley.crypto.sender_keys import SKDM
from parley.protocol.keys import (
    BackupLimits,
    BackupRecordBody,
    BackupVersionReply,
    CreateBackupBody,
    PutBackupRecordsBody,
)


def new_recovery_key(rng: Rng | None = None) -> tuple[bytes, str]:
    """-> (BK, the recovery key text shown once to the user)."""
    bk = bk_mod.generate_backup_key(rng)
    return bk, bk_mod.format_recovery_key(bk)


def create_body(
    bk: bytes,
    *,
    salt: bytes | None = None,
    opslimit: int | None = None,
    memlimit: int | None = None,
    rng: Rng | None = None,
) -> CreateBackupBody:
    """POST /keys/backup body (``check`` lets a client tell a wrong key)."""
    rec = bk_mod.make_version(bk, 0, salt=salt, opslimit=opslimit, memlimit=memlimit, rng=rng)
    limits = None
    if opslimit is not None and memlimit is not None:
        limits = BackupLimits(opslimit=opslimit, memlimit=memlimit)
    return CreateBackupBody(
        check=b64e(rec.check), salt=None if salt is None else b64e(salt), limits=limits
    )


def passphrase_key(
    passphrase: str,
    *,
    salt: bytes | None = None,
    opslimit: int = PWHASH_OPSLIMIT_MODERATE,
    memlimit: int = PWHASH_MEMLIMIT_MODERATE,
    rng: Rng | None = None,
) -> tuple[bytes, bytes]:
    """-> (BK, salt). Production uses the MODERATE limits; tests inject the MIN ones."""
    salt = rng_or_default(rng)(BACKUP_SALT_LEN) if salt is None else salt
    return bk_mod.derive_backup_key(passphrase, salt, opslimit, memlimit), salt


def key_from_reply(
    reply: BackupVersionReply, *, recovery_key: str | None = None, passphrase: str | None = None
) -> bytes:
    """BK for an existing backup from the recovery key or passphrase; raises
    DecryptionFailed if it is not this backup's key."""
    if recovery_key is not None:
        bk = bk_mod.parse_recovery_key(recovery_key)
    elif passphrase is not None:
        if reply.salt is None or reply.limits is None:
            raise DecryptionFailed("this backup has no passphrase")
        bk = bk_mod.derive_backup_key(
            passphrase, b64d(reply.salt, BACKUP_SALT_LEN), reply.limits.opslimit,
            reply.limits.memlimit,
        )  # fmt: skip
    else:
        raise ValueError("recovery_key or passphrase")
    rec = bk_mod.BackupVersion(version=reply.version, check=b64d(reply.check),
                               algorithm=reply.algorithm)  # fmt: skip
    if not bk_mod.key_matches(rec, bk):
        raise DecryptionFailed("wrong recovery key or passphrase")
    return bk


def enable(st: E2EState, version: int, bk: bytes) -> None:
    """Back up from now on: every inbound state we hold becomes due for upload."""
    st.backup = BackupState(version=version, bk=bk)
    st.backup_dirty = sorted(st.inbound)


def _record_key(k: str, dist: bytes, chain_id: int) -> bk_mod.RecordKey:
    cid, user, dev = k.split("/")
    return bk_mod.RecordKey(cid, user, int(dev), dist, chain_id)


def records_to_push(st: E2EState, limit: int = 256) -> PutBackupRecordsBody | None:
    """The next PUT /keys/backup/records body (states not yet uploaded at their earliest
    iteration), or None. Call ``pushed`` after the server accepted it."""
    b = st.backup
    if b is None:
        return None
    out: list[BackupRecordBody] = []
    for k in list(st.backup_dirty):
        rec = st.inbound.get(k)
        before = len(out)
        for s in rec.states if rec is not None else []:
            rk = _record_key(k, s.distribution_id, s.chain_id)
            name = f"{k}/{b64e(s.distribution_id)}/{s.chain_id}"
            if b.uploaded.get(name, 2**33) <= s.first_iteration:
                continue
            r = bk_mod.encrypt_record(b.bk, rk, s)
            out.append(BackupRecordBody(
                conversation_id=rk.conversation_id, sender_user_id=rk.sender_user_id,
                sender_device_id=rk.sender_device_id, distribution_id=b64e(s.distribution_id),
                chain_id=s.chain_id, iteration=r.iteration, blob=b64e(r.blob),
            ))  # fmt: skip
            if len(out) >= limit:
                return PutBackupRecordsBody(version=b.version, records=out)
        if len(out) == before:
            st.backup_dirty.remove(k)  # nothing new to upload for this sender
    return PutBackupRecordsBody(version=b.version, records=out) if out else None


def pushed(st: E2EState, body: PutBackupRecordsBody) -> None:
    b = st.backup
    if b is None:
        return
    for r in body.records:
        name = f"{r.conversation_id}/{r.sender_user_id}/{r.sender_device_id}/" \
               f"{r.distribution_id}/{r.chain_id}"  # fmt: skip
        b.uploaded[name] = min(b.uploaded.get(name, 2**33), r.iteration)
    done = {f"{r.conversation_id}/{r.sender_user_id}/{r.sender_device_id}" for r in body.records}
    st.backup_dirty = [k for k in st.backup_dirty if k not in done]


def restore(st: E2EState, bk: bytes, records: list[BackupRecordBody]) -> int:
    """Import backed-up inbound states (merged, never rewinding a chain). -> states added."""
    n = 0
    for r in records:
        try:
            key = bk_mod.RecordKey(r.conversation_id, r.sender_user_id, r.sender_device_id,
                                   b64d(r.distribution_id, 16), r.chain_id)  # fmt: skip
            state = bk_mod.decrypt_record(
                bk, key, bk_mod.BackupRecord(key.encode(), r.iteration, b64d(r.blob))
            )
        except CryptoError:
            continue  # a record we cannot open is skipped, not fatal
        skdm = SKDM(state.group_id, state.distribution_id, state.chain_id, state.iteration,
                    state.ck, state.ssk_pub)  # fmt: skip
        cid = b64d(r.conversation_id, 16)
        if groups.install(st, cid, r.sender_user_id, r.sender_device_id, skdm):
            n += 1
    return n
