"""Conversation sync: gap detection, cursor discipline and convergence under hostile delivery.

A simulated server holds entries 1..N (growing during the run); pushes are delivered with
drops, duplicates and reorders; pulls are answered from the server's state; the "shell" stores
ranges in order or later. Whatever the interleaving, the client ends with exactly 1..N, stored
once each, and its cursor never passes an entry that was not stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from parley.protocol.ops import HistoryPage
from parley.protocol.records import ConvEntry, Message
from parley.sync import Classification, ConversationSync, Pull, StoreRange, classify

CONV = b"c" * 16
SETTINGS = settings(max_examples=50, deadline=None)


def entry(seq: int) -> ConvEntry:
    return ConvEntry(CONV, seq, 1000 + seq, "u1", 1, Message(seq.to_bytes(8, "big")))


@dataclass
class Server:
    n: int = 0

    def append(self) -> ConvEntry:
        self.n += 1
        return entry(self.n)

    def answer(self, pull: Pull) -> HistoryPage:
        if pull.before_seq is not None:
            hi = pull.before_seq - 1
            lo = max(1, hi - pull.limit + 1)
        elif pull.after_seq is not None:
            lo = pull.after_seq + 1
            hi = min(self.n, pull.after_seq + pull.limit)
        else:
            hi = self.n
            lo = max(1, hi - pull.limit + 1)
        entries = [entry(s) for s in range(lo, hi + 1)]
        more = (hi < self.n) if pull.before_seq is None else lo > 1
        return HistoryPage(entries=entries, last_seq=self.n, more=more)


@dataclass
class Shell:
    """The shell side: executes actions, stores ranges (maybe later), answers pulls later."""

    sync: ConversationSync
    server: Server
    stored: dict[int, ConvEntry] = field(default_factory=dict)
    writes: dict[int, int] = field(default_factory=dict)
    persisted_cursor: int = 0
    pulls: list[Pull] = field(default_factory=list)
    stores: list[StoreRange] = field(default_factory=list)

    def run(self, actions: list[Pull | StoreRange]) -> None:
        for a in actions:
            if isinstance(a, Pull):
                self.pulls.append(a)
            else:
                seqs = [e.seq for e in a.entries]
                assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "range not contiguous"
                self.stores.append(a)

    def store_one(self, index: int) -> None:
        r = self.stores.pop(index)
        for e in r.entries:  # one transaction: entries + cursor
            self.stored[e.seq] = e
            self.writes[e.seq] = self.writes.get(e.seq, 0) + 1
        if r.cursor is not None:
            self.persisted_cursor = max(self.persisted_cursor, r.cursor)
        self.sync.range_stored(r.first, r.last)
        self.check_cursor()

    def answer_one(self, index: int) -> None:
        pull = self.pulls.pop(index)
        self.run(self.sync.page_received(pull, self.server.answer(pull)))

    def contiguous_top(self) -> int:
        top = 0
        while top + 1 in self.stored:
            top += 1
        return top

    def check_cursor(self) -> None:
        # Eager: everything up to the cursor is stored, in memory and in the persisted copy.
        if self.sync.eager:
            assert self.sync.cursor <= self.contiguous_top()
            assert self.persisted_cursor <= self.contiguous_top()
        else:
            assert self.sync.cursor == 0 or self.sync.cursor in self.stored

    def drain(self) -> None:
        for _ in range(10_000):
            if self.stores:
                self.store_one(0)
            elif self.pulls:
                self.answer_one(0)
            else:
                return
        raise AssertionError("did not quiesce")


@st.composite
def scripts(draw: st.DrawFn) -> list[tuple[str, int]]:
    """A run: appends (each pushed 0..2 times, maybe later), pull answers and stores."""
    ops = st.one_of(
        st.tuples(st.just("append"), st.integers(0, 2)),
        st.tuples(st.just("deliver"), st.integers(0, 50)),
        st.tuples(st.just("answer"), st.integers(0, 5)),
        st.tuples(st.just("store"), st.integers(0, 5)),
        st.tuples(st.just("sync"), st.just(0)),
    )
    return draw(st.lists(ops, max_size=120))


def play(shell: Shell, script: list[tuple[str, int]], in_flight: list[ConvEntry]) -> None:
    for op, arg in script:
        if op == "append":
            e = shell.server.append()
            in_flight.extend([e] * arg)  # 0 copies = a dropped push, 2 = a duplicate
        elif op == "deliver" and in_flight:
            e = in_flight.pop(arg % len(in_flight))  # any order: reorders
            shell.run(shell.sync.push(e))
        elif op == "answer" and shell.pulls:
            shell.answer_one(arg % len(shell.pulls))
        elif op == "store" and shell.stores:
            # Stores complete in the order handed out: that is the StoreRange contract (the
            # session driver awaits each store). Completing a later range first could persist
            # a cursor past a hole (hypothesis found it), so the shell must not do that.
            shell.store_one(0)
        elif op == "sync":
            shell.run(shell.sync.server_last_seq(shell.server.n))
        shell.check_cursor()


@SETTINGS
@given(scripts(), st.integers(1, 7))
def test_eager_converges_to_exactly_the_servers_entries(
    script: list[tuple[str, int]], page: int
) -> None:
    server = Server()
    shell = Shell(ConversationSync(CONV, eager=True, page=page), server)
    in_flight: list[ConvEntry] = []
    play(shell, script, in_flight)
    for e in in_flight:  # late deliveries after everything
        shell.run(shell.sync.push(e))
    shell.run(shell.sync.server_last_seq(server.n))  # the resync of a reconnect
    shell.drain()
    assert sorted(shell.stored) == list(range(1, server.n + 1))
    assert all(v == 1 for v in shell.writes.values()), "an entry was stored twice"
    assert all(shell.stored[s] == entry(s) for s in shell.stored)
    assert shell.sync.cursor == server.n == shell.persisted_cursor
    assert not shell.sync.buffer


@SETTINGS
@given(scripts(), st.integers(1, 7))
def test_lazy_in_view_holds_recent_then_fills_older_on_demand(
    script: list[tuple[str, int]], page: int
) -> None:
    server = Server()
    sync = ConversationSync(CONV, eager=False, page=page)
    shell = Shell(sync, server)
    shell.run(sync.set_in_view(True))
    in_flight: list[ConvEntry] = []
    play(shell, script, in_flight)
    for e in in_flight:
        shell.run(sync.push(e))
    shell.run(sync.server_last_seq(server.n))
    shell.drain()
    assert sync.cursor == server.n
    assert server.n == 0 or server.n in shell.stored
    # The UI scrolls up: it asks for the page just before the highest missing seq.
    for _ in range(10_000):
        missing = [s for s in range(1, server.n + 1) if s not in shell.stored]
        if not missing:
            break
        top = missing[-1]
        lower = max((s for s in shell.stored if s < top), default=0)
        shell.run([sync.older(top + 1, min(page, top - lower))])
        shell.drain()
    assert sorted(shell.stored) == list(range(1, server.n + 1))
    assert all(v == 1 for v in shell.writes.values()), "an entry was stored twice"


@SETTINGS
@given(st.integers(0, 10**6), st.integers(0, 10**6))
def test_classify_is_exactly_against_last_plus_one(seq: int, last: int) -> None:
    kind = classify(seq, last)
    assert (kind is Classification.NEXT) == (seq == last + 1)
    assert (kind is Classification.GAP) == (seq > last + 1)
    assert (kind is Classification.DUPLICATE) == (seq <= last)


@SETTINGS
@given(st.integers(0, 50), st.integers(1, 120))
def test_push_plans_a_pull_exactly_on_a_gap(held: int, seq: int) -> None:
    sync = ConversationSync(CONV, cursor=held)
    actions = sync.push(entry(seq))
    pulls = [a for a in actions if isinstance(a, Pull)]
    stores = [a for a in actions if isinstance(a, StoreRange)]
    assert bool(pulls) == (seq > held + 1)
    assert bool(stores) == (seq == held + 1)
    if pulls:
        assert pulls[0].after_seq == held
        assert 1 <= pulls[0].limit <= seq - held - 1
    assert sync.cursor == held  # nothing moves before the shell says "stored"


def test_cursor_waits_for_range_stored_and_parks_out_of_order_reports() -> None:
    sync = ConversationSync(CONV)
    a = sync.push(entry(1))
    b = sync.push(entry(2))
    assert [type(x) for x in a + b] == [StoreRange, StoreRange]
    assert sync.cursor == 0 and sync.frontier == 2
    assert not sync.range_stored(2, 2)  # not contiguous yet: parked
    assert sync.cursor == 0
    assert sync.range_stored(1, 1)
    assert sync.cursor == 2


def test_duplicate_push_is_dropped() -> None:
    sync = ConversationSync(CONV)
    sync.push(entry(1))
    assert sync.push(entry(1)) == []


def test_one_pull_in_flight_and_buffered_entries_join_the_page() -> None:
    sync = ConversationSync(CONV, page=10)
    (pull,) = sync.push(entry(5))
    assert isinstance(pull, Pull) and pull.after_seq == 0 and pull.limit == 4
    assert sync.push(entry(7)) == []  # buffered; the pull in flight covers it
    server = Server(n=7)
    actions = sync.page_received(pull, server.answer(pull))
    store = actions[0]
    assert isinstance(store, StoreRange)
    assert [e.seq for e in store.entries] == [1, 2, 3, 4, 5]
    (again,) = actions[1:]
    assert isinstance(again, Pull) and again.after_seq == 5


def test_lazy_far_behind_pulls_the_recent_page_and_jumps_after_storage() -> None:
    sync = ConversationSync(CONV, cursor=3, eager=False, page=5)
    assert sync.server_last_seq(100) == []  # not in view: nothing pulled
    (pull,) = sync.set_in_view(True)
    assert isinstance(pull, Pull) and pull.after_seq is None and pull.before_seq is None
    (store,) = sync.page_received(pull, Server(n=100).answer(pull))
    assert isinstance(store, StoreRange)
    assert (store.first, store.last, store.cursor) == (96, 100, 100)
    assert sync.cursor == 3
    assert sync.range_stored(96, 100) and sync.cursor == 100
