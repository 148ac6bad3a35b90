"""Properties of the call state machine under random interleavings: two users with two devices
each call, answer, decline, hang up, lose their network and wait, while signals are delivered
in random order (held on the wire and released one at a time). Pure: also runs in Pyodide."""

from __future__ import annotations

from hypothesis import given, note, settings
from hypothesis import strategies as st

from parley.client import call as cm
from parley.client.call import CallState as S
from tests.calls.harness import Net, cid

DEVICES = [("alice", 1), ("alice", 2), ("bob", 1), ("bob", 2)]
PEER = {"alice": "bob", "bob": "alice"}

action = st.one_of(
    st.tuples(st.just("call"), st.integers(0, 3), st.integers(1, 6), st.booleans()),
    st.tuples(st.just("accept"), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("decline"), st.integers(0, 3)),
    st.tuples(st.just("hangup"), st.integers(0, 3)),
    st.tuples(st.just("connected"), st.integers(0, 3)),
    st.tuples(st.just("ice_failed"), st.integers(0, 3)),
    st.tuples(st.just("network"), st.integers(0, 3)),
    st.tuples(st.just("camera"), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("deliver"), st.integers(0, 50)),
    st.tuples(st.just("advance"), st.integers(0, 50_000)),
)


def _check(net: Net) -> None:
    by_call: dict[str, list[tuple[str, int]]] = {}
    for (u, d), dev in net.devs.items():
        c = dev.m.current
        if c is None or c.state == S.ENDED:
            continue
        assert (c.state == S.INCOMING) == (c.call_id in dev.ringing)
        assert c.peer == PEER[u]
        if c.state in (S.CONNECTED, S.RECONNECTING):
            by_call.setdefault(c.call_id, []).append((u, d))
    for members in by_call.values():
        # a call is connected on at most one device of each user (two callee devices may both
        # accept before the caller's choice arrives; only the selected one gets the offer)
        users = [u for u, _ in members]
        assert len(users) == len(set(users))


@settings(max_examples=300)
@given(st.lists(action, max_size=40))
def test_random_interleavings_keep_calls_one_to_one(actions: list[tuple[object, ...]]) -> None:
    net = Net(hold=True)
    for u, d in DEVICES:
        net.add(u, d)
    net.befriend("alice", "bob")
    placed = 0
    note(repr(actions))
    for a in actions:
        kind = a[0]
        if kind == "deliver":
            if net.wire:
                net.deliver_one(int(a[1]) % len(net.wire))  # type: ignore[call-overload]
        elif kind == "advance":
            net.advance(int(a[1]))  # type: ignore[call-overload]
        else:
            dev = net.devs[DEVICES[int(a[1])]]  # type: ignore[call-overload]
            m, now = dev.m, net.now
            if kind == "call":
                # call ids are random: unique, in an arbitrary order
                placed += 1
                call_id = cid(int(a[2]) * 1000 + placed)  # type: ignore[call-overload]
                peer = PEER[dev.user]
                net.run(dev, m.place(peer, net.devices_of(peer), bool(a[3]), call_id, now))
            elif kind == "accept":
                net.run(dev, m.accept(bool(a[2]), now))
            elif kind == "decline":
                net.run(dev, m.decline(now))
            elif kind == "hangup":
                net.run(dev, m.hangup(now))
            elif kind == "connected":
                # ICE can only connect once this device has the remote description
                if m.current is not None and m.current.remote_applied:
                    net.run(dev, m.ice_state("connected", now))
            elif kind == "ice_failed":
                net.run(dev, m.ice_state("failed", now))
            elif kind == "network":
                net.run(dev, m.network_changed(now))
            elif kind == "camera":
                net.run(dev, m.set_camera(bool(a[2]), now))
        _check(net)
    # let everything settle: all signals delivered, every timer fired
    net.deliver()
    for _ in range(4):
        net.advance(cm.RING_TIMEOUT_MS + cm.CONNECT_TIMEOUT_MS)
        net.deliver()
    for dev in net.devs.values():
        net.run(dev, dev.m.hangup(net.now))
    net.deliver()
    for dev in net.devs.values():
        assert dev.state in (S.IDLE, S.ENDED)
        assert dev.ringing == set() and dev.media == set()
        assert dev.m.next_deadline() is None
    # each entry is posted once, by the device that placed the call
    posted = [(e.call_id, d.user, d.device) for d in net.devs.values() for e in d.entries]
    assert len({p[0] for p in posted}) == len(posted)


@settings(max_examples=200)
@given(st.integers(1, 2**64), st.integers(1, 2**64), st.permutations(range(4)))
def test_glare_always_ends_in_one_call(x: int, y: int, order: list[int]) -> None:
    if x == y:
        return
    net = Net(hold=True)
    for u, d in DEVICES:
        net.add(u, d)
    net.befriend("alice", "bob")
    a1, b1 = net.devs[("alice", 1)], net.devs[("bob", 1)]
    net.call(a1, "bob", call_id=cid(x))
    net.call(b1, "alice", call_id=cid(y))
    # the four invites in any order, then everything else in order
    invites = list(net.wire)
    net.wire = [invites[i] for i in order]
    net.hold = False
    net.deliver()
    net.connect(a1, b1)
    assert a1.state == b1.state == S.CONNECTED
    assert a1.m.current is not None and b1.m.current is not None
    assert a1.m.current.call_id == b1.m.current.call_id == max(cid(x), cid(y))
    for d in (net.devs[("alice", 2)], net.devs[("bob", 2)]):
        assert d.ringing == set() and d.state == S.ENDED
