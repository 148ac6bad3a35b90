"""parley.client.social: folding edits/reactions/replies/recalls, the event-timeline state,
typing expiry and the typing sender."""

from __future__ import annotations

from parley.client.social import MessageFold, SocialState, TypingSender, count_unread
from parley.protocol.limits import TYPING_TTL_S
from parley.protocol.records import (
    BlockChanged,
    ContactAdded,
    ContactRemoved,
    ConvEntry,
    EntryBody,
    FriendRequestClosed,
    FriendRequestOpened,
    FriendRequestOutcome,
    Mentioned,
    Message,
    MessageRecalled,
    ReadPosition,
    Recalled,
    RefKind,
    UserEvent,
)
from parley.protocol.signals import PresenceSignal, PresenceState, ReceiptSignal, TypingSignal

CID = bytes(16)


def entry(seq: int, sender: str, body: EntryBody) -> ConvEntry:
    return ConvEntry(CID, seq, 1000 + seq, sender, 1, body)


def msg(ref: int | None = None, kind: RefKind | None = None) -> Message:
    return Message(envelope=b"e", ref_seq=ref, ref_kind=kind)


def test_fold_edits_reactions_replies_in_any_order() -> None:
    fold: MessageFold[str] = MessageFold()
    # an edit and a reaction arrive before their target
    fold.add(entry(3, "bob", msg(2, RefKind.EDIT)), "hello (edited)")
    fold.add(entry(4, "carol", msg(2, RefKind.REACTION)), "+1")
    fold.add(entry(2, "bob", msg()), "hello")
    fold.add(entry(5, "carol", msg(2, RefKind.EDIT)), "hijacked")  # not the sender: ignored
    fold.add(entry(6, "alice", msg(2, RefKind.REACTION)), "+1")
    fold.add(entry(7, "alice", msg(2, RefKind.REACTION)), "heart")  # alice changes hers
    fold.add(entry(8, "carol", msg(2, RefKind.REPLY)), "a reply")
    fold.add(entry(1, "x", Message(envelope=b"")), "first")
    first, second, reply = fold.ordered()
    assert (first.seq, second.seq, reply.seq) == (1, 2, 8)
    assert second.content == "hello (edited)" and second.edited
    assert second.reactions == {"+1": 1, "heart": 1}
    assert reply.reply_to == 2 and reply.content == "a reply"
    # withdrawing a reaction: an empty one
    fold.add(entry(9, "carol", msg(2, RefKind.REACTION)), "")
    assert fold.messages[2].reactions == {"heart": 1}


def test_fold_recall_hides_message_and_edit_and_uncounts_reaction() -> None:
    fold: MessageFold[str] = MessageFold()
    fold.add(entry(2, "bob", msg()), "secret")
    fold.add(entry(3, "bob", msg(2, RefKind.EDIT)), "secret v2")
    fold.add(entry(4, "carol", msg(2, RefKind.REACTION)), "+1")
    fold.add(entry(4, "carol", Recalled(by="carol", recalled_ts=5, ref_seq=2,
                                        ref_kind=RefKind.REACTION)), None)  # fmt: skip
    assert fold.messages[2].reactions == {}
    fold.add(entry(3, "bob", Recalled(by="bob", recalled_ts=5, ref_seq=2,
                                      ref_kind=RefKind.EDIT)), None)  # fmt: skip
    assert fold.messages[2].content == "secret" and not fold.messages[2].edited
    fold.add(entry(2, "bob", Recalled(by="bob", recalled_ts=5)), None)
    assert fold.messages[2].recalled and fold.messages[2].content is None


def test_social_state_from_events() -> None:
    s = SocialState()
    events = [
        FriendRequestOpened(user_id="bob", incoming=True, note="hi"),
        FriendRequestOpened(user_id="carol", incoming=False),
        FriendRequestClosed(user_id="bob", incoming=True, outcome=FriendRequestOutcome.ACCEPTED),
        ContactAdded(user_id="bob"),
        Mentioned(conversation_id=CID, seq=5, by="bob"),
        Mentioned(conversation_id=CID, seq=9, by="bob"),
        ReadPosition(conversation_id=CID, seq=6),
        BlockChanged(user_id="dave", blocked=True),
        MessageRecalled(conversation_id=CID, seq=9, by="bob", also=[10]),
    ]
    purge = s.apply_events(UserEvent(i, 0, b) for i, b in enumerate(events, 1))
    assert purge == [(CID, 9), (CID, 10)]
    assert s.contacts == {"bob"} and s.incoming == {} and s.outgoing == {"carol": ""}
    assert s.blocked == {"dave"} and s.read[CID] == 6 and s.mentions[CID] == []
    s.apply_events([UserEvent(20, 0, ContactRemoved(user_id="bob"))])
    assert s.contacts == set()


def test_signals_typing_expiry_receipts_presence() -> None:
    s = SocialState()
    s.apply_signal(TypingSignal(conversation_id=CID, user_id="bob", typing=True), now=10.0)
    assert s.typing_in(CID, 10.0 + TYPING_TTL_S - 0.1) == ["bob"]
    assert s.typing_in(CID, 10.0 + TYPING_TTL_S) == []
    s.apply_signal(TypingSignal(conversation_id=CID, user_id="bob", typing=True), now=20.0)
    s.apply_signal(TypingSignal(conversation_id=CID, user_id="bob", typing=False), now=21.0)
    assert s.typing_in(CID, 21.0) == []
    s.apply_signal(ReceiptSignal(conversation_id=CID, user_id="bob", seq=7), now=0)
    s.apply_signal(ReceiptSignal(conversation_id=CID, user_id="bob", seq=3), now=0)
    assert s.receipts[CID] == {"bob": 7}
    s.apply_signal(PresenceSignal(users=[PresenceState("bob", False, 123)]), now=0)
    assert s.presence["bob"].last_seen == 123


def test_typing_sender_refreshes_within_expiry() -> None:
    t = TypingSender()
    assert t.keystroke(CID, 0.0)
    assert not t.keystroke(CID, 1.0)
    assert t.keystroke(CID, t.refresh_s)
    assert t.refresh_s < TYPING_TTL_S
    assert t.stopped(CID) and not t.stopped(CID)


def test_count_unread_matches_server_rule() -> None:
    entries = [
        entry(1, "bob", msg()),
        entry(2, "me", msg()),
        entry(3, "bob", msg(1, RefKind.REACTION)),
        entry(4, "bob", msg(1, RefKind.REPLY)),
        entry(5, "bob", Recalled(by="bob", recalled_ts=1)),
    ]
    assert count_unread(entries, 0, "me") == 2
    assert count_unread(entries, 1, "me") == 1
