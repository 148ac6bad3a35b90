"""Sans-IO tests of parley.client.e2e: several devices' E2EState talk through plain Python
lists standing in for the key directory and the server queues (real crypto throughout)."""

from __future__ import annotations

import msgspec
import pytest

from parley.client.e2e import backup, device, directory, groups, identity, pairwise
from parley.client.e2e import state as st_mod
from parley.client.e2e.state import E2EState, SendStage
from parley.crypto import content as content_mod
from parley.crypto.b64 import b64e
from parley.crypto.backend import PWHASH_MEMLIMIT_MIN, PWHASH_OPSLIMIT_MIN
from parley.crypto.errors import DecryptionFailed, Rollback, SendingBlocked
from parley.protocol.keys import Bundle, BundleOpk, BundleSpk, DeviceListReply

NOW = 1_700_000_000_000
CID = bytes(range(16))


class Dev:
    """One device: its state plus what the key directory would hold for it."""

    def __init__(self, user: str, device_id: int, first: Dev | None = None) -> None:
        self.st = identity.new_device(user, device_id, aik_seed=None, now=NOW)
        if first is None:
            identity.create_account_key(self.st)
        else:
            self.st.own.aik_seed = first.st.own.aik_seed
            c = identity.own_contact(self.st)
            src = first.st.contacts[user]
            c.devlist, c.devices = src.devlist, dict(src.devices)
        self.dl = identity.devlist_with_self(self.st, NOW)
        self.opks = identity.new_opks(self.st, 5)

    @property
    def user(self) -> str:
        return self.st.own.user_id

    def devlist_reply(self) -> DeviceListReply:
        c = self.st.contacts[self.user]
        assert c.devlist is not None
        return DeviceListReply(self.user, self.dl.aik, b64e(c.devlist.data),
                               b64e(c.devlist.sig), c.devlist.version)  # fmt: skip

    def bundle(self) -> Bundle:
        spk = self.st.own.prekeys.spks[self.st.own.prekeys.current_spk_id]
        o = self.opks.pop()
        c = self.st.contacts[self.user]
        assert c.devlist is not None
        return Bundle(
            user_id=self.user, device_id=self.st.own.device_id, aik=self.dl.aik,
            devlist=b64e(c.devlist.data), devlist_sig=b64e(c.devlist.sig),
            ik=b64e(identity.ik(self.st).pub),
            spk=BundleSpk(spk.id, b64e(spk.pub), b64e(spk.sig)), opk=BundleOpk(o.id, b64e(o.pub)),
        )  # fmt: skip


def know(a: Dev, *others: Dev) -> None:
    for o in others:
        directory.accept_device_list(a.st, o.devlist_reply(), NOW)


def sessions_for(a: Dev, devs: dict[tuple[str, int], Dev]) -> None:
    for t in groups.target_devices(a.st, CID):
        if not pairwise.has_session(a.st, *t):
            pairwise.initiate(a.st, directory.verify_bundle(a.st, devs[t].bundle()), NOW)


def deliver(sender: Dev, tds: list[st_mod.ToDeviceOut], devs: dict[tuple[str, int], Dev]) -> None:
    for t in tds:
        r = device.handle_to_device(devs[(t.user_id, t.device_id)].st, sender.user,
                                    sender.st.own.device_id, t.body, NOW, NOW)  # fmt: skip
        assert r.reset is None


def roundtrip(st: E2EState) -> E2EState:
    return st_mod.loads(st_mod.dumps(st))


@pytest.fixture
def pair() -> tuple[Dev, Dev, dict[tuple[str, int], Dev]]:
    a, b = Dev("alice", 1), Dev("bob", 1)
    know(a, b)
    know(b, a)
    for d in (a, b):
        groups.note_conversation(d.st, CID, "direct", ["alice", "bob"], "")
    return a, b, {("alice", 1): a, ("bob", 1): b}


def text(body: str) -> content_mod.Text:
    return content_mod.Text(id=pairwise.new_id(), ts=NOW, body=body)


def test_state_roundtrips_through_msgpack(pair: tuple[Dev, Dev, dict]) -> None:  # type: ignore[type-arg]
    a, _b, devs = pair
    sessions_for(a, devs)
    _tds, _env = groups.encrypt_message(a.st, CID, text("x"), NOW)
    again = roundtrip(a.st)
    assert st_mod.dumps(again) == st_mod.dumps(a.st)
    assert msgspec.json.decode(msgspec.json.encode(again), type=E2EState) is not None


def test_missing_session_waits_and_nothing_is_encrypted(pair) -> None:  # type: ignore[no-untyped-def]
    a, _b, _devs = pair
    p = device.queue(a.st, CID, text("hold"), NOW)
    with pytest.raises(groups.MissingKeys) as e:
        device.prepare(a.st, p, NOW)
    assert e.value.devices == [("bob", 1)]
    assert p.stage is SendStage.WAITING and p.envelope == b"" and b"hold" not in st_mod.dumps(
        a.st).replace(p.content, b"")  # fmt: skip
    assert a.st.outbound == {}


def test_skdm_before_message_and_decrypt_out_of_order(pair) -> None:  # type: ignore[no-untyped-def]
    a, b, devs = pair
    sessions_for(a, devs)
    tds1, env1 = groups.encrypt_message(a.st, CID, text("one"), NOW)
    tds2, env2 = groups.encrypt_message(a.st, CID, text("two"), NOW)
    assert len(tds1) == 1 and tds2 == []  # SKDM once per distribution
    assert b"one" not in env1
    # the message arrives before its key: waiting, then decrypts
    w = groups.decrypt_entry(b.st, CID, 2, "alice", 1, NOW, env2)
    assert isinstance(w, st_mod.Waiting)
    reqs = groups.key_requests(b.st, NOW)
    assert [(u, d, type(c).__name__) for u, d, c in reqs] == [("alice", 1, "SkdmReq")]
    deliver(a, tds1, devs)
    got = groups.retry_waiting(b.st)
    assert [r.content.body for r in got if isinstance(r, groups.Received)] == ["two"]  # type: ignore[union-attr]
    r1 = groups.decrypt_entry(b.st, CID, 1, "alice", 1, NOW, env1)
    assert isinstance(r1, groups.Received) and r1.content.body == "one"  # type: ignore[union-attr]
    # our own message decrypts with our own inbound copy
    own = groups.decrypt_entry(a.st, CID, 1, "alice", 1, NOW, env1)
    assert isinstance(own, groups.Received)


def test_direct_rotation_by_count(pair) -> None:  # type: ignore[no-untyped-def]
    a, _b, devs = pair
    sessions_for(a, devs)
    dists = set()
    for i in range(101):
        _tds, env = groups.encrypt_message(a.st, CID, text(str(i)), NOW)
        dists.add(env[17:33])
    assert len(dists) == 2  # SK_ROTATE_MSGS_DIRECT = 100


def test_removed_device_gets_no_new_key(pair) -> None:  # type: ignore[no-untyped-def]
    a, b, devs = pair
    b2 = Dev("bob", 2, first=b)
    b.dl = identity.devlist_with_self(b.st, NOW)  # b re-signs (b2 published v2 in reality)
    b.st.contacts["bob"] = b2.st.contacts["bob"]
    devs[("bob", 2)] = b2
    know(a, b2)
    sessions_for(a, devs)
    tds, _ = groups.encrypt_message(a.st, CID, text("all"), NOW)
    assert {(t.user_id, t.device_id) for t in tds} == {("bob", 1), ("bob", 2)}
    old = b2.devlist_reply()
    b2.dl = identity.devlist_without(b2.st, 2, NOW + 1)
    notices = directory.accept_device_list(a.st, b2.devlist_reply(), NOW + 1)
    assert [n.kind for n in notices] == ["device_removed"]
    tds, _ = groups.encrypt_message(a.st, CID, text("not b2"), NOW + 1)
    assert {(t.user_id, t.device_id) for t in tds} == {("bob", 1)}  # rotated, b2 left out
    # b2 asking for the key gets nothing
    ask = content_mod.SkdmReq(id=pairwise.new_id(), ts=NOW, g=b64e(CID),
                              dist=b64e(a.st.outbound[b64e(CID)].key.distribution_id))  # type: ignore[union-attr]  # fmt: skip
    assert groups.answer_skdm_req(a.st, "bob", 2, ask, NOW) is None
    # and an old device list is refused (anti-rollback)
    with pytest.raises(Rollback):
        directory.accept_device_list(a.st, old, NOW + 2)


def test_key_change_notice_and_verified_blocks(pair) -> None:  # type: ignore[no-untyped-def]
    a, _b, _devs = pair
    directory.mark_verified(a.st, "bob")
    b_new = Dev("bob", 3)  # a new account key for bob
    notices = directory.accept_device_list(a.st, b_new.devlist_reply(), NOW)
    assert "key_changed" in [n.kind for n in notices]
    with pytest.raises(SendingBlocked):
        device.queue(a.st, CID, text("no"), NOW)
    directory.accept_key_change(a.st, "bob")
    device.queue(a.st, CID, text("yes"), NOW)
    # an UNVERIFIED contact's change: a notice, no block
    c_old, c_new = Dev("carol", 1), Dev("carol", 2)
    know(a, c_old)
    notices = directory.accept_device_list(a.st, c_new.devlist_reply(), NOW)
    assert [n.kind for n in notices if n.kind == "key_changed"] == ["key_changed"]
    assert directory.may_send_to(a.st, "carol")


def test_key_forwarding_only_to_own_verified_devices(pair) -> None:  # type: ignore[no-untyped-def]
    a, b, devs = pair
    sessions_for(a, devs)
    tds, env = groups.encrypt_message(a.st, CID, text("history"), NOW)
    deliver(a, tds, devs)
    b2 = Dev("bob", 2, first=b)
    b.st.contacts["bob"] = msgspec.structs.replace(b2.st.contacts["bob"])
    w = groups.decrypt_entry(b2.st, CID, 1, "alice", 1, NOW, env)
    assert isinstance(w, st_mod.Waiting)
    reqs = groups.key_requests(b2.st, NOW)
    kreq = [c for u, d, c in reqs if isinstance(c, content_mod.KeyReq)]
    assert len(kreq) == 1
    fwd = groups.answer_key_req(b.st, "bob", 2, kreq[0], NOW)  # type: ignore[arg-type]
    assert isinstance(fwd, content_mod.KeyFwd)
    assert groups.answer_key_req(b.st, "alice", 1, kreq[0], NOW) is None  # type: ignore[arg-type]
    assert groups.answer_key_req(b.st, "bob", 9, kreq[0], NOW) is None  # type: ignore[arg-type]
    assert groups.accept_key_fwd(b2.st, "bob", 1, fwd)
    got = groups.retry_waiting(b2.st)
    assert [r.content.body for r in got if isinstance(r, groups.Received)] == ["history"]  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["recovery", "passphrase"])
def test_backup_roundtrip_and_wrong_key(pair, mode: str) -> None:  # type: ignore[no-untyped-def]
    a, b, devs = pair
    sessions_for(a, devs)
    tds, env = groups.encrypt_message(a.st, CID, text("backed up"), NOW)
    deliver(a, tds, devs)
    groups.decrypt_entry(b.st, CID, 1, "alice", 1, NOW, env)  # advances b's state past 0
    if mode == "recovery":
        bk, shown = backup.new_recovery_key()
        body = backup.create_body(bk)
    else:
        bk, salt = backup.passphrase_key("pw", opslimit=PWHASH_OPSLIMIT_MIN,
                                         memlimit=PWHASH_MEMLIMIT_MIN)  # fmt: skip
        body = backup.create_body(bk, salt=salt, opslimit=PWHASH_OPSLIMIT_MIN,
                                  memlimit=PWHASH_MEMLIMIT_MIN)  # fmt: skip
    backup.enable(b.st, 1, bk)
    push = backup.records_to_push(b.st)
    assert push is not None and all(b"backed up" not in r.blob.encode() for r in push.records)
    backup.pushed(b.st, push)
    assert backup.records_to_push(b.st) is None
    from parley.protocol.keys import BackupVersionReply

    reply = BackupVersionReply(1, body.algorithm, body.check, body.salt, body.limits, 0)
    if mode == "recovery":
        key = backup.key_from_reply(reply, recovery_key=shown)
        with pytest.raises(DecryptionFailed):
            backup.key_from_reply(reply, recovery_key=backup.new_recovery_key()[1])
    else:
        key = backup.key_from_reply(reply, passphrase="pw")
        with pytest.raises(DecryptionFailed):
            backup.key_from_reply(reply, passphrase="not it")
    b2 = Dev("bob", 2, first=b)
    assert backup.restore(b2.st, key, push.records) >= 1
    r = groups.decrypt_entry(b2.st, CID, 1, "alice", 1, NOW, env)
    assert isinstance(r, groups.Received) and r.content.body == "backed up"  # type: ignore[union-attr]


def test_pairwise_only_content_in_a_group_message_is_refused(pair) -> None:  # type: ignore[no-untyped-def]
    a, b, devs = pair
    sessions_for(a, devs)
    bad = content_mod.Skdm(id=pairwise.new_id(), ts=NOW, skdm=b64e(bytes(105)))
    tds, env = groups.encrypt_message(a.st, CID, bad, NOW)
    deliver(a, tds, devs)
    r = groups.decrypt_entry(b.st, CID, 1, "alice", 1, NOW, env)
    assert isinstance(r, groups.Failed)


def _history_for_new_device(pair):  # type: ignore[no-untyped-def]
    """alice sent two messages (iterations 0, 1) before bob linked b2; b2 has them waiting."""
    a, b, devs = pair
    sessions_for(a, devs)
    tds, env0 = groups.encrypt_message(a.st, CID, text("old 0"), NOW)
    _, env1 = groups.encrypt_message(a.st, CID, text("old 1"), NOW)
    deliver(a, tds, devs)
    b2 = Dev("bob", 2, first=b)
    b.st.contacts["bob"] = msgspec.structs.replace(b2.st.contacts["bob"])
    for seq, env in ((2, env0), (3, env1)):
        assert isinstance(groups.decrypt_entry(b2.st, CID, seq, "alice", 1, NOW, env),
                          st_mod.Waiting)  # fmt: skip
    return a, b, b2


def test_later_skdm_does_not_drop_waiting_history(pair) -> None:  # type: ignore[no-untyped-def]
    """The flake of test_e2e_new_device_reads_history_by_key_forwarding: the sender answers
    b2's skdm_req with its CURRENT iteration before b1's key_fwd arrives. The earlier
    messages must stay waiting (key missing), not be taken for duplicates and dropped."""
    a, b, b2 = _history_for_new_device(pair)
    reqs = groups.key_requests(b2.st, NOW)
    kreq = [c for _, _, c in reqs if isinstance(c, content_mod.KeyReq)]
    assert len(kreq) == 1 and kreq[0].from_iteration == 0
    # alice's answer to the skdm_req: her own state from her current iteration (2)
    current = a.st.inbound[st_mod.inbound_key(CID, "alice", 1)].states[-1].skdm_at(2)
    assert groups.install(b2.st, CID, "alice", 1, current)
    assert groups.retry_waiting(b2.st) == []
    assert sorted(w.seq for w in b2.st.waiting.values()) == [2, 3]
    _, env2 = groups.encrypt_message(a.st, CID, text("new 2"), NOW)
    new = groups.decrypt_entry(b2.st, CID, 4, "alice", 1, NOW, env2)
    assert isinstance(new, groups.Received)
    # then b1's key_fwd from iteration 0 extends the state backwards: history decrypts
    fwd = groups.answer_key_req(b.st, "bob", 2, kreq[0], NOW)
    assert isinstance(fwd, content_mod.KeyFwd) and groups.accept_key_fwd(b2.st, "bob", 1, fwd)
    got = groups.retry_waiting(b2.st)
    assert [r.content.body for r in got if isinstance(r, groups.Received)] == ["old 0", "old 1"]  # type: ignore[union-attr]
    assert b2.st.waiting == {}


def test_waiting_replay_fails_instead_of_waiting_forever(pair) -> None:  # type: ignore[no-untyped-def]
    """A waiting entry whose iteration another entry used up (a replay) is reported failed."""
    a, b, devs = pair
    sessions_for(a, devs)
    tds, env = groups.encrypt_message(a.st, CID, text("once"), NOW)
    assert isinstance(groups.decrypt_entry(b.st, CID, 5, "alice", 1, NOW, env), st_mod.Waiting)
    deliver(a, tds, devs)
    assert isinstance(groups.decrypt_entry(b.st, CID, 2, "alice", 1, NOW, env), groups.Received)
    got = groups.retry_waiting(b.st)
    assert [(type(r).__name__, r.seq) for r in got] == [("Failed", 5)]
    assert b.st.waiting == {}


def test_key_requests_back_off_then_give_up_until_rearmed(pair) -> None:  # type: ignore[no-untyped-def]
    _a, _b, b2 = _history_for_new_device(pair)
    st = b2.st
    assert groups.next_key_request_ms(st) == 0  # never asked: due at once
    t, sent, last, gaps = NOW, 0, NOW, []
    while (due := groups.next_key_request_ms(st)) is not None:
        t = max(t, due)
        if sent:
            assert groups.key_requests(st, t - 1) == []  # not before it is due
            gaps.append(t - last)
        reqs = groups.key_requests(st, t)
        # one chain (alice/1): an skdm_req to alice, a key_req to our own bob/1
        assert sorted((u, d, type(c).__name__) for u, d, c in reqs) == [
            ("alice", 1, "SkdmReq"), ("bob", 1, "KeyReq")]  # fmt: skip
        sent, last = sent + 1, t
        assert sent <= groups.KEY_REQUEST_ATTEMPTS
    assert sent == groups.KEY_REQUEST_ATTEMPTS
    assert gaps[:3] == [2_000, 4_000, 8_000] and max(gaps) == groups.KEY_REQUEST_MAX_RETRY_MS
    assert groups.key_requests(st, t + 10 * groups.KEY_REQUEST_MAX_RETRY_MS) == []
    # a reconnect allows one more, an explicit retry always asks and restarts the backoff
    groups.rearm_key_requests(st)
    assert groups.next_key_request_ms(st) == 0 and len(groups.key_requests(st, t + 1)) == 2
    assert groups.next_key_request_ms(st) is None
    assert len(groups.key_requests(st, t + 2, min_interval_ms=0)) == 2
    assert groups.next_key_request_ms(st) == t + 2 + 2_000
    # the schedule survives a restart (state round trip)
    assert groups.next_key_request_ms(roundtrip(st)) == t + 2 + 2_000


def test_key_maintenance_refills_opks_and_rotates_the_spk() -> None:
    a = Dev("alice", 1)
    spk0 = a.st.own.prekeys.current_spk_id
    assert identity.maintain_keys(a.st, NOW, 25) is None  # not low, SPK fresh
    assert identity.keys_due_ms(a.st) == NOW + identity.OPK_CHECK_INTERVAL
    body = identity.maintain_keys(a.st, NOW + 1, 24)  # below OPK_LOW_WATER
    assert body is not None and len(body.opks) == 100 and body.spk.id == spk0
    assert all(o.id in a.st.own.prekeys.opks for o in body.opks)  # private halves kept
    # not confirmed uploaded: the next check uploads again (the same SPK, no new OPKs)
    again = identity.maintain_keys(a.st, NOW + 2, 124)
    assert again is not None and again.opks == [] and again.spk.id == spk0
    identity.uploaded(a.st)
    assert identity.maintain_keys(a.st, NOW + 3, 124) is None
    assert identity.maintain_keys(a.st, NOW + 4, 990) is None
    assert len(identity.maintain_keys(a.st, NOW + 5, 0).opks) == 100  # type: ignore[union-attr]
    identity.uploaded(a.st)
    # seven days on: a new SPK (the old private half stays for late PreKeyMessages)
    week = NOW + 7 * 24 * 3600 * 1000
    assert identity.keys_due_ms(a.st) == NOW + 5 + identity.OPK_CHECK_INTERVAL < week
    assert not identity.spk_due(a.st, week - 1) and identity.spk_due(a.st, week)
    rotated = identity.maintain_keys(a.st, week, 500)
    assert rotated is not None and rotated.opks == [] and rotated.spk.id == spk0 + 1
    assert spk0 in a.st.own.prekeys.spks
