"""The E2E client on a sealed profile: ``E2EClient`` with its stores moved into memory and
sealed into the profile (``store.bin``, ``e2e.bin``) instead of plain sqlite files.

``E2EClient`` opens its two sqlite files itself; we let it do that in a private temporary
directory, swap both databases for in-memory ones loaded from the sealed images, and delete the
directory before anything is stored (nothing secret ever touches it: the state is only loaded
there, never saved). Every ``save()`` re-seals the E2E image; the local store re-seals itself
per transaction.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from parley_server.cli_client.errors import CliError
from parley_server.cli_client.http_api import AccountApi
from parley_server.cli_client.profile import E2E, Account, Profile, Secrets
from parley_server.cli_client.sealed_store import SealedLocalStore

if TYPE_CHECKING:
    from parley_server.cpython_client.e2e_client import E2EClient

E2E_MISSING = (
    "end-to-end encryption is not available in this build (parley_server.cpython_client."
    "e2e_client is missing): refusing to send or read messages unencrypted"
)


def e2e_class() -> type[E2EClient]:
    """The E2E client class, or a one-line refusal when the layer is not there."""
    try:
        from parley_server.cpython_client.e2e_client import E2EClient
    except ImportError:
        raise CliError(E2E_MISSING) from None
    return E2EClient


def open_secure(profile: Profile, secrets: Secrets) -> E2EClient:
    """An ``E2EClient`` whose every byte at rest is sealed with the profile key."""
    from parley.client.e2e import identity
    from parley.client.e2e import state as st_mod

    base = e2e_class()
    meta = profile.meta
    assert meta is not None

    class SealedE2EClient(base):  # type: ignore[valid-type,misc]
        sealed_at = -1  # the db's total_changes when last sealed

        def save(self) -> None:
            super().save()
            if self.db.total_changes != self.sealed_at:  # state or a decrypted view changed
                profile.seal(E2E, self.db.serialize())
                self.sealed_at = self.db.total_changes

    tmp = Path(tempfile.mkdtemp(prefix="parley-cli-"))
    try:
        client = SealedE2EClient(
            meta.server, meta.user_id, meta.device_id, secrets.token, tmp / "bootstrap.db"
        )
        # Local store: sealed, in memory.
        client.client.store.db.close()
        store = SealedLocalStore(profile)
        client.client.store = store
        client.client.session.store = store
        # E2E state and decrypted timeline: sealed, in memory.
        fresh_schema = client.db.execute(
            "SELECT group_concat(sql, ';') FROM sqlite_master WHERE type = 'table'"
        ).fetchone()[0]
        client.db.close()
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        image = profile.unseal(E2E)
        if image is not None:
            db.deserialize(image)
            row = db.execute("SELECT v FROM e2e_state WHERE k = 'state'").fetchone()
            if row is not None:
                client.st = st_mod.loads(row[0])
        else:
            db.executescript(fresh_schema + ";")
            account = profile.account()
            if account is not None and account.user_id == meta.user_id:
                # a new device of an account this profile held before: same identity (AIK)
                client.st = identity.new_device(
                    meta.user_id, meta.device_id, aik_seed=account.aik_seed, now=now_ms()
                )
                client.cli_rejoin = True
        client.db = db
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if client.st.own.user_id != meta.user_id or client.st.own.device_id != meta.device_id:
        raise CliError("the profile's encryption state belongs to another device: log in again")
    return client


def now_ms() -> int:
    return int(time.time() * 1000)


async def rejoin(client: E2EClient, profile: Profile, secrets: Secrets) -> None:
    """Before the first start of a new device that holds a kept AIK: load our current device
    list (verified under that AIK) and drop devices the server no longer has, so the list
    ``start()`` publishes is the next version with this device added."""
    from parley.client.e2e import identity

    meta = profile.meta
    assert meta is not None
    await client.refresh_devlist(meta.user_id)
    alive = {d.device_id for d in await AccountApi(meta.server, secrets.token).devices()}
    own = client.st.contacts.get(meta.user_id)
    if own is not None and own.devlist is not None:
        for device_id in [d for d in own.devices if d not in alive]:
            identity.devlist_without(client.st, device_id, now_ms())
    client.st.own.published_devlist = False  # start() publishes the list with this device
    client.save()


def keep_account(client: E2EClient, profile: Profile) -> None:
    """Seal the AIK seed into ``account.bin`` (once) so logout does not lose the identity."""
    seed = client.st.own.aik_seed
    if seed is None:
        return
    kept = profile.account()
    if kept is None or kept.aik_seed != seed or kept.user_id != client.st.own.user_id:
        profile.save_account(Account(user_id=client.st.own.user_id, aik_seed=seed))
