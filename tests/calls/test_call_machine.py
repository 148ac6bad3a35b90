"""The call state machine: every transition, glare, several devices, timeouts on a fake clock,
and bad input that must change nothing. Pure (runs in CPython and inside Pyodide)."""

from __future__ import annotations

import pytest

from parley.client import call as cm
from parley.client import call_signal as cs
from parley.client.call import CallState as S
from parley.client.call import EndReason as R
from tests.calls.harness import Dev, Net, cid


@pytest.fixture
def net() -> Net:
    n = Net()
    for u, d in (("alice", 1), ("bob", 1), ("bob", 2), ("carol", 1)):
        n.add(u, d)
    n.befriend("alice", "bob")
    n.befriend("carol", "bob")
    n.befriend("alice", "carol")
    return n


def devs(net: Net) -> tuple[Dev, Dev, Dev]:
    return net.devs[("alice", 1)], net.devs[("bob", 1)], net.devs[("bob", 2)]


def test_call_rings_every_device_and_answer_on_one_stops_the_others(net: Net) -> None:
    a, b1, b2 = devs(net)
    net.call(a, "bob", video=True)
    assert a.state == S.OUTGOING and a.media == {cid(1)}
    assert b1.state == b2.state == S.INCOMING
    assert b1.ringing == b2.ringing == {cid(1)}
    assert b1.m.current is not None and b1.m.current.video
    net.accept(b2, video=True)
    assert b2.ringing == set() and b2.media == {cid(1)}
    assert b1.state == S.ENDED and b1.reason == R.ANSWERED_ELSEWHERE and b1.ringing == set()
    assert b1.media == set()
    assert a.state == b2.state == S.CONNECTING
    assert b2.applied == [("offer", "v=0 offer alice/1 restart=False")]
    assert a.applied == [("answer", "v=0 answer bob")]
    net.connect(a, b2)
    assert a.state == b2.state == S.CONNECTED


def test_hang_up_ends_both_sides_and_the_caller_posts_the_entry(net: Net) -> None:
    a, _, b2 = devs(net)
    net.call(a, "bob")
    net.accept(b2)
    net.connect(a, b2)
    net.now += 192_000
    net.run(b2, b2.m.hangup(net.now))
    assert a.state == b2.state == S.ENDED
    assert a.reason == b2.reason == R.HUNG_UP
    assert a.media == b2.media == set()
    assert a.entries == [cm.PostEntry("bob", cid(1), False, "completed", 192_000)]
    assert b2.entries == []


def test_decline_on_one_device_ends_the_call_everywhere(net: Net) -> None:
    a, b1, b2 = devs(net)
    net.call(a, "bob", video=True)
    net.run(b1, b1.m.decline(net.now))
    assert a.reason == b1.reason == b2.reason == R.DECLINED
    assert b2.ringing == set()
    assert a.entries[0].outcome == "declined" and a.entries[0].video


def test_missed_after_45_s_on_both_sides(net: Net) -> None:
    a, b1, b2 = devs(net)
    net.call(a, "bob")
    net.advance(cm.RING_TIMEOUT_MS - 1)
    assert a.state == S.OUTGOING and b1.state == S.INCOMING
    net.advance(1)
    assert a.reason == b1.reason == b2.reason == R.MISSED
    assert b1.ringing == b2.ringing == set()
    assert [e.outcome for e in a.entries] == ["missed"]


def test_caller_cancels_while_ringing(net: Net) -> None:
    a, b1, b2 = devs(net)
    net.call(a, "bob")
    net.run(a, a.m.hangup(net.now))
    assert a.reason == b1.reason == b2.reason == R.CANCELLED
    assert b1.ringing == b2.ringing == set()


def test_busy_when_the_callee_is_in_another_call(net: Net) -> None:
    a, b1, b2 = devs(net)
    c = net.devs[("carol", 1)]
    net.call(c, "bob", call_id=cid(7))
    net.accept(b1)
    net.connect(c, b1)
    net.call(a, "bob", call_id=cid(8))
    # b1 answers busy; b2 had started ringing and stops
    assert a.reason == R.BUSY
    assert b2.reason == R.CANCELLED and b2.ringing == set()
    assert b1.state == S.CONNECTED and b1.m.current is not None
    assert b1.m.current.call_id == cid(7)
    assert "busy: in another call" in b1.ignored


def test_connect_timeout_fails_the_call(net: Net) -> None:
    a, b1, _ = devs(net)
    net.call(a, "bob")
    net.accept(b1)
    net.advance(cm.CONNECT_TIMEOUT_MS)
    assert a.reason == b1.reason == R.FAILED
    assert a.entries[0].outcome == "failed"


def test_ice_failed_while_connecting_fails_the_call(net: Net) -> None:
    a, b1, _ = devs(net)
    net.call(a, "bob")
    net.accept(b1)
    net.run(b1, b1.m.ice_state("failed", net.now))
    assert a.reason == b1.reason == R.FAILED


def test_network_change_restarts_ice_from_the_caller(net: Net) -> None:
    a, b1, _ = devs(net)
    net.call(a, "bob")
    net.accept(b1)
    net.connect(a, b1)
    net.run(a, a.m.network_changed(net.now))
    assert a.state == S.RECONNECTING
    assert b1.applied[-1] == ("offer", "v=0 offer alice/1 restart=True")
    net.connect(a, b1)
    assert a.state == b1.state == S.CONNECTED
    # the callee's network changes: it asks, the caller restarts
    net.run(b1, b1.m.network_changed(net.now))
    assert b1.state == S.RECONNECTING and a.state == S.RECONNECTING
    assert sum(1 for k, _ in b1.applied if k == "offer") == 3
    net.connect(a, b1)
    assert a.state == b1.state == S.CONNECTED


def test_ice_disconnect_while_connected_reconnects_or_fails_after_30_s(net: Net) -> None:
    a, b1, _ = devs(net)
    net.call(a, "bob")
    net.accept(b1)
    net.connect(a, b1)
    net.run(a, a.m.ice_state("disconnected", net.now))
    assert a.state == S.RECONNECTING
    net.advance(cm.CONNECT_TIMEOUT_MS)
    assert a.reason == b1.reason == R.FAILED
    # connected for a moment: the entry says it was a completed call
    assert a.entries[0].outcome == "completed"


@pytest.mark.parametrize("alice_wins", [True, False])
def test_glare_one_call_survives(net: Net, alice_wins: bool) -> None:
    a, b1, b2 = devs(net)
    a2 = net.add("alice", 2)
    net.hold = True
    ida, idb = (cid(9), cid(3)) if alice_wins else (cid(3), cid(9))
    net.call(a, "bob", call_id=ida)
    net.call(b1, "alice", video=True, call_id=idb)
    net.hold = False
    net.deliver()
    win = ida if alice_wins else idb
    winner, loser = (a, b1) if alice_wins else (b1, a)
    assert winner.state == loser.state == S.CONNECTING
    assert winner.m.current is not None and loser.m.current is not None
    assert winner.m.current.call_id == loser.m.current.call_id == win
    assert winner.m.current.outgoing and not loser.m.current.outgoing
    # the loser answered with its own choice of video
    assert loser.m.current.camera == (loser is b1)
    # the other devices of both users stop ringing
    assert b2.ringing == set() and a2.ringing == set()
    assert b2.state == S.ENDED and a2.state == S.ENDED
    net.connect(a, b1)
    assert a.state == b1.state == S.CONNECTED
    # only the surviving call gets an entry, posted by its caller
    net.run(a, a.m.hangup(net.now))
    assert [e.call_id for d in (a, b1) for e in d.entries] == [win]


def test_upgrade_to_video_and_back_mute_camera(net: Net) -> None:
    a, b1, _ = devs(net)
    net.call(a, "bob")
    net.accept(b1)
    net.connect(a, b1)
    fx = net.run(a, a.m.set_camera(True, net.now))
    assert cm.SetLocalMedia(cid(1), False, True) in fx
    assert b1.m.current is not None and b1.m.current.remote_video and b1.m.current.video
    net.run(b1, b1.m.set_camera(True, net.now))
    net.run(a, a.m.set_muted(True, net.now))
    assert b1.m.current.remote_muted
    net.run(a, a.m.set_camera(False, net.now))
    assert not b1.m.current.remote_video
    assert a.m.current is not None and not a.m.current.camera and a.m.current.remote_video
    net.run(a, a.m.hangup(net.now))
    assert a.entries[0].video  # it was a video call at some point


def test_candidates_wait_for_the_remote_description(net: Net) -> None:
    a, b1, _ = devs(net)
    net.auto_sdp = False
    net.call(a, "bob")
    net.accept(b1)
    # the callee gathers candidates only after the offer; here they race ahead of our answer
    cand = cs.Candidate(candidate="candidate:1 1 udp 1 127.0.0.1 5000 typ relay", mid="0")
    net.run(a, a.m.local_description("offer", "v=0 o", net.now))
    net.run(b1, b1.m.local_candidates([cand], net.now))
    assert a.candidates == []  # no answer applied yet: kept
    net.run(b1, b1.m.local_description("answer", "v=0 a", net.now))
    assert a.candidates == [cand]


def test_stranger_or_blocked_caller_makes_nothing_ring(net: Net) -> None:
    _, b1, b2 = devs(net)
    eve = net.add("eve", 1)
    net.call(eve, "bob")
    assert b1.state == b2.state == S.IDLE
    assert "invite from someone who is not a contact" in b1.ignored
    net.advance(cm.RING_TIMEOUT_MS)
    # the caller sees the same as an unanswered call
    assert eve.reason == R.MISSED


def test_undeliverable_invite_is_unavailable(net: Net) -> None:
    a, _, _ = devs(net)
    net.hold = True
    net.call(a, "bob")
    net.wire.clear()
    net.run(a, a.m.delivery_failed(cid(1), net.now))
    # refused by the server (a block, a stranger): it rings out like an unanswered call
    assert a.state == S.OUTGOING
    net.advance(cm.RING_TIMEOUT_MS)
    assert a.reason == R.UNAVAILABLE
    assert [e.outcome for e in a.entries] == ["missed"]
    a.entries.clear()
    fx = a.m.place("nobody", [], False, cid(2), net.now)
    assert a.reason == R.UNAVAILABLE and not any(isinstance(e, cm.SendSignal) for e in fx)
    assert a.entries == []  # no device at all: nothing was attempted


def test_stale_invite_does_not_ring(net: Net) -> None:
    _a, b1, _ = devs(net)
    s = cs.encode(cs.Invite(call=cid(5), n=1, video=False))
    fx = b1.m.on_signal("alice", 1, s, net.now - cm.RING_TIMEOUT_MS, net.now, contact=True)
    assert fx == [cm.Ignored("invite too old to ring")] and b1.state == S.IDLE
    # a late invite rings only for what is left of the 45 s
    net.run(b1, b1.m.on_signal("alice", 1, s, net.now - 40_000, net.now, contact=True))
    assert b1.state == S.INCOMING
    net.advance(5_000)
    assert b1.reason == R.MISSED


def test_nothing_to_act_on(net: Net) -> None:
    a, _b1, _ = devs(net)
    for fx in (a.m.accept(False, 0), a.m.decline(0), a.m.hangup(0), a.m.set_muted(True, 0),
               a.m.set_camera(True, 0), a.m.network_changed(0), a.m.ice_state("connected", 0),
               a.m.local_description("offer", "x", 0), a.m.local_candidates([], 0)):  # fmt: skip
        assert len(fx) == 1 and isinstance(fx[0], cm.Ignored)
    assert a.m.place("alice", [1], False, cid(1), 0) == [cm.Ignored("cannot call yourself")]
    net.call(a, "bob")
    assert a.m.place("bob", [1], False, cid(2), 0) == [cm.Ignored("already in a call")]
    assert a.m.tick(0) == [] and a.m.next_deadline() == net.now + cm.RING_TIMEOUT_MS
    net.run(a, a.m.hangup(net.now))
    a.m.dismiss()
    assert a.state == S.IDLE and a.m.next_deadline() is None


def test_a_second_call_from_the_same_caller_replaces_the_ringing_one(net: Net) -> None:
    a, b1, _ = devs(net)
    a2 = net.add("alice", 2)
    net.call(a, "bob", call_id=cid(1))
    net.call(a2, "bob", call_id=cid(2))
    assert b1.state == S.INCOMING and b1.m.current is not None
    assert b1.m.current.call_id == cid(2) and b1.ringing == {cid(2)}


# --- bad input never ends or takes over a call --------------------------------------------


def _connected(net: Net) -> tuple[Dev, Dev]:
    a, b1, _ = devs(net)
    net.call(a, "bob")
    net.accept(b1)
    net.connect(a, b1)
    return a, b1


def _snapshot(d: Dev) -> object:
    c = d.m.current
    assert c is not None
    return (c.state, c.call_id, c.selected, c.end_reason, c.remote_applied, len(d.applied))


def _feed(d: Dev, sender: str, device: int, text: str, now: int) -> list[cm.Effect]:
    return d.m.on_signal(sender, device, text, now, now, contact=True)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "{}",
        '{"k":"hangup","call":"x","n":1,"reason":"hung_up"}',
        '{"k":"hangup","call":"' + cid(1) + '","n":0,"reason":"hung_up"}',
        '{"k":"hangup","call":"' + cid(1) + '","n":99,"reason":"nope"}',
        '{"k":"offer","call":"' + cid(1) + '","n":99,"sdp":""}',
        '{"k":"offer","call":"' + cid(1) + '","n":99,"sdp":"' + "a" * 20_000 + '"}',
        '{"k":"ice","call":"' + cid(1) + '","n":99,"candidates":[]}',
        '{"k":"hangup","call":"' + cid(1) + '","n":99,"reason":"hung_up","extra":1}',
        "[" * 100_000,
    ],
)
def test_malformed_signal_is_ignored(net: Net, text: str) -> None:
    a, _b1 = _connected(net)
    before = _snapshot(a)
    fx = _feed(a, "bob", 1, text, net.now)
    assert len(fx) == 1 and isinstance(fx[0], cm.Ignored)
    assert fx[0].reason.startswith("malformed signal")
    assert _snapshot(a) == before


def test_replayed_and_out_of_order_signals_are_ignored(net: Net) -> None:
    a, b1 = _connected(net)
    before = _snapshot(a)
    # bob's answer (n=2 from b1: accept was 1) again, and an older number
    for n in (2, 1):
        s = cs.encode(cs.Answer(call=cid(1), n=n, sdp="v=0 evil"))
        assert _feed(a, "bob", 1, s, net.now) == [cm.Ignored("replayed or out-of-order signal")]
    hang = cs.encode(cs.Hangup(call=cid(1), n=1, reason=cs.HangupReason.HUNG_UP))
    assert _feed(a, "bob", 1, hang, net.now) == [cm.Ignored("replayed or out-of-order signal")]
    assert _snapshot(a) == before
    # a replayed invite of the ended call does not ring again
    net.run(a, a.m.hangup(net.now))
    inv = cs.encode(cs.Invite(call=cid(1), n=1, video=False))
    assert _feed(b1, "alice", 1, inv, net.now) == [cm.Ignored("invite of an ended call (replay)")]
    assert b1.state == S.ENDED
    b1.m.dismiss()
    assert _feed(b1, "alice", 1, inv, net.now) == [cm.Ignored("invite of an ended call (replay)")]
    assert b1.state == S.IDLE


def test_answer_with_no_offer_is_ignored(net: Net) -> None:
    a, b1, _ = devs(net)
    net.auto_sdp = False
    net.call(a, "bob")
    net.accept(b1)  # the caller has not made its offer yet
    s = cs.encode(cs.Answer(call=cid(1), n=50, sdp="v=0 early"))
    assert _feed(a, "bob", 1, s, net.now) == [cm.Ignored("answer with no offer")]
    assert a.applied == [] and a.state == S.CONNECTING
    # an answer sent to the callee, and an offer sent to the caller
    assert _feed(b1, "alice", 1, cs.encode(cs.Answer(call=cid(1), n=51, sdp="v=0")), net.now) \
        == [cm.Ignored("answer with no offer")]  # fmt: skip
    assert _feed(a, "bob", 1, cs.encode(cs.Offer(call=cid(1), n=52, sdp="v=0")), net.now) \
        == [cm.Ignored("offer from the callee")]  # fmt: skip


def test_another_calls_id_is_ignored(net: Net) -> None:
    a, _b1 = _connected(net)
    before = _snapshot(a)
    for sig in (
        cs.Hangup(call=cid(2), n=50, reason=cs.HangupReason.HUNG_UP),
        cs.Answer(call=cid(2), n=51, sdp="v=0"),
        cs.Accept(call=cid(2), n=52, video=True),
    ):
        fx = _feed(a, "bob", 1, cs.encode(sig), net.now)
        assert fx == [cm.Ignored("signal naming another call's id")]
    assert _snapshot(a) == before


def test_device_not_in_the_call_is_ignored(net: Net) -> None:
    a, _b1 = _connected(net)
    before = _snapshot(a)
    hang = cs.encode(cs.Hangup(call=cid(1), n=50, reason=cs.HangupReason.HUNG_UP))
    # bob's other device (told answered_elsewhere), an unknown device, another user
    assert _feed(a, "bob", 2, hang, net.now) == [
        cm.Ignored("signal from a device that was not selected")
    ]
    assert _feed(a, "bob", 9, hang, net.now) == [
        cm.Ignored("signal from a device that is not in the call")
    ]
    assert _feed(a, "carol", 1, hang, net.now) == [
        cm.Ignored("signal from a device that is not in the call")
    ]
    assert _feed(a, "alice", 1, hang, net.now) == [cm.Ignored("signal from our own account")]
    assert _snapshot(a) == before
    # a device that was never invited cannot accept a ringing call either
    c = net.devs[("carol", 1)]
    net.add("dan", 1)
    net.befriend("carol", "dan")
    net.call(c, "dan", call_id=cid(3))
    assert c.state == S.OUTGOING
    acc = cs.encode(cs.Accept(call=cid(3), n=50, video=True))
    assert _feed(c, "alice", 1, acc, net.now) == [
        cm.Ignored("signal from a device that is not in the call")
    ]
    assert _feed(c, "dan", 2, acc, net.now) == [
        cm.Ignored("signal from a device that is not in the call")
    ]
    assert c.state == S.OUTGOING


def test_signals_before_answer_are_ignored(net: Net) -> None:
    a, b1, _ = devs(net)
    net.call(a, "bob")
    offer = cs.encode(cs.Offer(call=cid(1), n=50, sdp="v=0"))
    assert _feed(b1, "alice", 1, offer, net.now) == [
        cm.Ignored("offer before the call was answered")
    ]
    hang = cs.encode(cs.Hangup(call=cid(1), n=51, reason=cs.HangupReason.HUNG_UP))
    assert _feed(a, "bob", 1, hang, net.now) == [cm.Ignored("hang-up of a ringing callee device")]
    assert a.state == S.OUTGOING and b1.state == S.INCOMING


def test_two_callee_devices_accept_at_once(net: Net) -> None:
    a, b1, b2 = devs(net)
    net.hold = True
    net.call(a, "bob")
    net.deliver()
    net.accept(b1)
    net.accept(b2)  # before the caller's answered_elsewhere reaches it
    net.hold = False
    net.deliver()
    assert a.m.current is not None and a.m.current.selected == 1
    assert b1.state == S.CONNECTING and b1.applied
    assert b2.state == S.ENDED and b2.reason == R.ANSWERED_ELSEWHERE and b2.media == set()
    # b2's late accept reached the caller after b1 was selected: ignored
    assert "signal from a device that was not selected" in a.ignored
