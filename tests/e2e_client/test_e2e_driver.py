"""The E2E driver (``parley.client.e2e_driver``) with browser-shaped shells, in CPython and
inside Pyodide (``node tests/pyodide/run.mjs tests/e2e_client``): key publishing, OPK refill
and SPK rotation (also with no message arriving: the driver's own timer), the key-request
backoff, the re-scan of entries stored but never handled, and encrypted to-device contents
for other features. The key directory and the server are in-memory fakes
(``driver_support``); the crypto is real. Integration tests run the same driver against the
real server (``tests/integration/e2ee/``)."""

from __future__ import annotations

import asyncio

from parley.client.e2e import groups, identity
from parley.client.e2e import state as st_mod
from parley.client.e2e_driver import KEYS_RETRY_MS, EncryptionNotReady
from parley.client.memory_store import MemoryLocalStore
from parley.crypto import content as content_mod
from parley.crypto.constants import OPK_BATCH, OPK_LOW_WATER, SPK_ROTATION
from tests.e2e_client.driver_support import Device, MemoryState, World, until
from tests.e2e_client.virtual_loop import run


def test_first_start_publishes_the_device_and_a_batch_of_prekeys() -> None:
    async def main() -> None:
        w = World()
        a = Device(w, "alice")
        assert not a.driver.ready
        await a.start()
        assert a.driver.ready and a.driver.fresh
        assert w.directory.count("alice", 1) == OPK_LOW_WATER * 2
        assert "alice" in w.directory.devlists
        # the state was saved with the private halves of every published OPK
        assert a.state.blob is not None
        saved = st_mod.loads(a.state.blob)
        assert {o.id for o in w.directory.opks[("alice", 1)]} <= set(saved.own.prekeys.opks)
        await a.close()

    run(main())


def test_a_second_device_of_an_account_is_not_ready_and_needs_linking() -> None:
    async def main() -> None:
        w = World()
        a1 = await Device(w, "alice", 1).start()
        a2 = await Device(w, "alice", 2).start()  # its own new account key: 409
        assert not a2.driver.ready and a2.driver.link_needed
        # with nothing published there is nothing to maintain: its timer does not spin
        wakes = {"n": 0}
        handle = a2.driver._handle

        async def counted(n: object) -> None:
            wakes["n"] += n is None
            await handle(n)  # type: ignore[arg-type]

        a2.driver._handle = counted  # type: ignore[method-assign]
        await asyncio.sleep(600)
        assert wakes["n"] <= 600 / (KEYS_RETRY_MS / 1000) + 1
        try:
            await a2.driver.send_text(b"\x00" * 16, "hi")
            raise AssertionError("sent without published keys")
        except EncryptionNotReady:
            pass
        for d in (a1, a2):
            await d.close()

    run(main())


def test_two_devices_talk() -> None:
    async def main() -> None:
        w = World()
        a, b = await Device(w, "alice").start(), await Device(w, "bob").start()
        cid = await a.driver.open_direct("bob")
        await a.driver.send_text(cid, "hello bob")
        await until(lambda: b.sink.texts(cid) == ["hello bob"])
        await until(lambda: a.sink.sent_seqs == [1])
        await b.driver.send_text(cid, "hello alice")
        await until(lambda: "hello alice" in a.sink.texts(cid))
        assert not a.sink.errors and not b.sink.errors
        for d in (a, b):
            await d.close()

    run(main())


def _exhaust(w: World, user: str, device: int) -> int:
    """Others fetch our bundles until fewer than OPK_LOW_WATER OPKs are left."""
    while w.directory.count(user, device) >= OPK_LOW_WATER:
        w.directory.bundles(user)
    return w.directory.count(user, device)


def test_opks_are_refilled_after_a_prekey_message_used_one() -> None:
    async def main() -> None:
        w = World()
        a, b = await Device(w, "alice").start(), await Device(w, "bob").start()
        low = _exhaust(w, "alice", 1)
        assert low == OPK_LOW_WATER - 1
        cid = await b.driver.open_direct("alice")  # bob's X3DH claims one more of alice's
        await b.driver.send_text(cid, "uses an opk")
        await until(lambda: a.sink.texts(cid) == ["uses an opk"])
        await until(lambda: w.directory.count("alice", 1) == low - 1 + OPK_BATCH)
        assert not a.sink.errors
        for d in (a, b):
            await d.close()

    run(main())


def test_opks_are_refilled_by_the_periodic_check_with_no_message() -> None:
    async def main() -> None:
        w = World()
        a = await Device(w, "alice").start()
        low = _exhaust(w, "alice", 1)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        # nobody writes to alice: her driver's own timer looks at the count
        await until(lambda: w.directory.count("alice", 1) == low + OPK_BATCH, 24 * 3600)
        waited_h = (loop.time() - t0) / 3600
        assert waited_h <= identity.OPK_CHECK_INTERVAL / 3_600_000 + 1
        await a.close()

    run(main())


def test_the_signed_prekey_rotates_when_due() -> None:
    async def main() -> None:
        w = World()
        a = await Device(w, "alice").start()
        first = w.directory.spks[("alice", 1)].id
        await until(lambda: w.directory.spks[("alice", 1)].id != first,
                    SPK_ROTATION / 1000 + 24 * 3600)  # fmt: skip
        assert a.driver.st.own.prekeys.current_spk_id == w.directory.spks[("alice", 1)].id
        assert not a.driver.st.own.upload_pending
        # the old SPK's private half is kept a while (messages in flight may still use it)
        assert first in a.driver.st.own.prekeys.spks
        await a.close()

    run(main())


def test_key_maintenance_is_retried_after_the_directory_was_unreachable() -> None:
    async def main() -> None:
        w = World()
        a = await Device(w, "alice").start()
        real = a.driver.keys
        failing = True

        async def flaky(method: str, path: str, body: object, reply: type, params=None):  # type: ignore[no-untyped-def]
            if failing:
                from parley.client.e2e.keys_api import KeyDirectoryError

                raise KeyDirectoryError(0, "offline")
            return await real(method, path, body, reply, params)

        a.driver.keys = flaky
        low = _exhaust(w, "alice", 1)
        await a.driver._maintain_keys_quietly()  # what a PreKeyMessage would trigger
        assert w.directory.count("alice", 1) == low
        assert a.driver.keys_due_ms() >= a.driver.now() + KEYS_RETRY_MS - 1000
        failing = False
        await until(lambda: w.directory.count("alice", 1) == low + OPK_BATCH,
                    KEYS_RETRY_MS / 1000 + 60)  # fmt: skip
        await a.close()

    run(main())


def test_a_lost_key_is_requested_again_with_backoff_until_it_arrives() -> None:
    async def main() -> None:
        w = World()
        a, b = await Device(w, "alice").start(), await Device(w, "bob").start()
        cid = await b.driver.open_direct("alice")
        await b.driver.send_text(cid, "first")  # the pairwise sessions exist after this
        await until(lambda: a.sink.texts(cid) == ["first"])
        # from now on: alice's next to-device message to bob (the SKDM of her sender key) is
        # lost, and so are bob's first three key requests to alice
        lose = {("alice", "bob"): 1, ("bob", "alice"): 3}

        def drop(sender: str, _sd: int, user: str, _d: int) -> bool:
            if lose.get((sender, user), 0) > 0:
                lose[(sender, user)] -= 1
                return True
            return False

        w.drop_to_device = drop
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await a.driver.send_text(cid, "the key got lost")
        # bob shows it as waiting and asks alice (skdm_req) again and again, with the backoff
        # (2 s, 4 s, 8 s): the fourth request gets through, her answer carries the SKDM
        await until(lambda: b.sink.texts(cid) == ["first", "the key got lost"], 600)
        waited = loop.time() - t0
        assert lose == {("alice", "bob"): 0, ("bob", "alice"): 0}
        first = groups.KEY_REQUEST_FIRST_RETRY_MS / 1000
        assert first * (1 + 2 + 4) <= waited < first * (1 + 2 + 4 + 8) + 5
        assert not b.driver.st.waiting
        assert b.sink.history[-2:] == [(2, "waiting"), (2, "the key got lost")]
        for d in (a, b):
            await d.close()

    run(main())


def test_entries_stored_while_not_handled_are_rescanned_at_start() -> None:
    async def main() -> None:
        w = World()
        a = await Device(w, "alice").start()
        b_store, b_state = MemoryLocalStore(), MemoryState()
        b = await Device(w, "bob", store=b_store, state=b_state).start()
        await b.close()  # bob is gone: what arrives is stored (by his store), never handled
        b_off = w.session("bob", 1, b_store)  # the server keeps delivering into his store
        cid = await a.driver.open_direct("bob")
        for text in ("one", "two"):
            await a.driver.send_text(cid, text)
        await until(lambda: len(b_store.messages.get(cid, {})) == 2)
        assert b_store.to_device  # the SKDM is stored too
        w.sessions.remove(b_off)
        b2 = await Device(w, "bob", store=b_store, state=b_state).start()
        assert not b2.driver.fresh
        await until(lambda: b2.sink.texts(cid) == ["one", "two"])
        assert not await b2.driver.to_device_pending()
        for d in (a, b2):
            await d.close()

    run(main())


def test_encrypted_to_device_contents_for_other_features() -> None:
    async def main() -> None:
        w = World()
        a, b = await Device(w, "alice").start(), await Device(w, "bob").start()
        got: list[tuple[str, int, content_mod.Content]] = []
        b.driver.on_to_device("receipt", lambda u, d, c: got.append((u, d, c)))
        c = content_mod.Receipt(id=a.driver.new_id(), ts=a.driver.now(), kind="read",
                                ids=[a.driver.new_id()])  # fmt: skip
        assert await a.driver.send_to_devices("bob", c) == 1
        await until(lambda: len(got) == 1)
        assert got[0][:2] == ("alice", 1) and got[0][2] == c
        # a device never sends to itself; an unknown user has no devices
        assert await a.driver.send_to_devices("alice", c) == 0
        assert await a.driver.send_to_devices("nobody", c) == 0
        for d in (a, b):
            await d.close()

    run(main())


def test_saves_that_change_nothing_write_nothing() -> None:
    async def main() -> None:
        w = World()
        a = await Device(w, "alice").start()
        n = a.state.saves
        await a.driver.save()
        await a.driver.save()
        assert a.state.saves == n
        await a.close()

    run(main())
