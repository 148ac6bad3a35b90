"""The E2E client on a sealed profile: ``E2EClient`` with its two stores (the local store and
the E2E state with the decrypted timeline) in memory and sealed into the profile (``store.bin``,
``e2e.bin``), never in plain files.
"""

from __future__ import annotations

import time

from parley_client.cli.errors import CliError
from parley_client.cli.http_api import AccountApi
from parley_client.cli.profile import Account, Profile, Secrets
from parley_client.cli.sealed_store import SealedE2EStorage, SealedLocalStore
from parley_client.e2e_client import E2EClient


def open_secure(profile: Profile, secrets: Secrets) -> E2EClient:
    """An ``E2EClient`` whose every byte at rest is sealed with the profile key. A new device
    of an account this profile held before starts with the kept account key (AIK)."""
    meta = profile.meta
    assert meta is not None
    account = profile.account()
    kept = account.aik_seed if account is not None and account.user_id == meta.user_id else None
    client = E2EClient(
        meta.server, meta.user_id, meta.device_id, secrets.token,
        storage=SealedE2EStorage(profile), local_store=SealedLocalStore(profile), aik_seed=kept,
    )  # fmt: skip
    if client.st.own.user_id != meta.user_id or client.st.own.device_id != meta.device_id:
        raise CliError("the profile's encryption state belongs to another device: log in again")
    return client


def needs_rejoin(client: E2EClient) -> bool:
    """A new device (state created this run) that holds a kept account key, not yet in our
    device list: ``rejoin`` before ``start``."""
    return (
        client.fresh
        and client.st.own.aik_seed is not None
        and not (client.st.own.published_devlist)
    )


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
