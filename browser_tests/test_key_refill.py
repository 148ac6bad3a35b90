"""A browser device refills its one-time prekeys: other users claim its bundles through the
key directory's HTTP API until none is left; once the device is back online (the E2E driver
looks at its OPK count then), bundles carry new OPKs again."""

from __future__ import annotations

import time

import httpx
from playwright.sync_api import expect

from browser_tests.conftest import Contexts
from browser_tests.ui import sign_up, wait_online
from parley.protocol.keys import OPK_BATCH, OPK_LOW_WATER
from tests.support.accounts import new_user, unique_name

REFILL_TIMEOUT_S = 60.0
CLAIMERS = 4


def test_a_browser_device_refills_its_opks(contexts: Contexts, base_url: str) -> None:
    name = unique_name("opk")
    actx = contexts.new()
    page = sign_up(actx, base_url, name)
    claimers = [new_user(base_url, "claimer")[0] for _ in range(CLAIMERS)]
    auth = [{"authorization": f"Bearer {c.token}"} for c in claimers]
    clients = [httpx.Client(base_url=base_url, headers=h, timeout=10.0) for h in auth]
    try:
        r = clients[0].get(f"/api/v1/users/{name}")
        r.raise_for_status()
        user_id = r.json()["user_id"]

        def claim(n: int) -> dict[str, object]:
            """One bundle of the browser's device (each claims one of its OPKs)."""
            r = clients[n % CLAIMERS].get(f"/api/v1/keys/users/{user_id}/bundles")
            r.raise_for_status()
            bundles = r.json()["bundles"]
            assert len(bundles) == 1, bundles  # the one browser device
            return bundles[0]  # type: ignore[no-any-return]

        # the device published its first batch on sign-up; others use it all up
        seen: list[int] = []
        for n in range(OPK_LOW_WATER * 2 + 1):  # bounded: the first batch is this size
            opk = claim(n)["opk"]
            if opk is None:
                break
            assert isinstance(opk, dict)
            seen.append(int(opk["id"]))
        assert len(seen) == OPK_LOW_WATER * 2, f"expected the first batch, got {len(seen)}"
        assert claim(0)["opk"] is None  # exhausted

        # back online after a network change: the device sees its count and uploads a batch
        actx.set_offline(True)
        expect(page.locator("#net")).to_be_visible(timeout=30_000)
        actx.set_offline(False)
        wait_online(page)
        deadline = time.monotonic() + REFILL_TIMEOUT_S
        fresh = None
        while fresh is None:
            assert time.monotonic() < deadline, "the browser device never refilled its OPKs"
            fresh = claim(1)["opk"]
            if fresh is None:
                page.wait_for_timeout(250)  # poll the directory (bounded by the deadline)
        assert isinstance(fresh, dict)
        assert int(fresh["id"]) > max(seen)  # a new OPK, not one handed out before
        left = [claim(n)["opk"] for n in range(OPK_BATCH - 1)]
        assert all(o is not None for o in left), "the refill was not a whole batch"
        assert contexts.errors == [], contexts.errors
    finally:
        for c in clients:
            c.close()
