"""The wire form of call signalling: what one device tells another about a 1:1 call.

A signal travels inside an IMv1 pairwise to-device content (``content.Call``, its ``sig`` field
holds the JSON below), so the server sees neither SDP nor ICE candidates (which carry IP
addresses). ``n`` numbers the signals one device sends within one call (1, 2, 3, ...): a
receiver drops any ``n`` not above the last one it took from that device (replay, reorder).

Offers only ever come from the caller (first offer and ICE restarts); the callee asks for a
restart with ``restart``. Voice and video calls negotiate the same transceivers; turning the
camera on or off (upgrade to video and back) replaces the track without renegotiation and is
announced with ``media``.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from parley.crypto.b64 import b64d
from parley.crypto.errors import CryptoError

CALL_ID_LEN = 16
MAX_SDP_LEN = 16 * 1024
MAX_CANDIDATES = 32
MAX_CANDIDATE_LEN = 1024
MAX_MID_LEN = 64
MAX_SIGNAL_LEN = 40 * 1024


class HangupReason(StrEnum):
    """Why a device ends a call, as told to the peer."""

    HUNG_UP = "hung_up"
    DECLINED = "declined"
    BUSY = "busy"
    MISSED = "missed"
    CANCELLED = "cancelled"
    ANSWERED_ELSEWHERE = "answered_elsewhere"
    FAILED = "failed"
    GLARE = "glare"


class _Sig(msgspec.Struct, tag_field="k", forbid_unknown_fields=True, kw_only=True):
    call: str
    n: int


class Invite(_Sig, tag="invite"):
    """Ring every device of the callee. ``video``: the caller wants a video call."""

    video: bool


class Accept(_Sig, tag="accept"):
    """One callee device answered; the caller selects the first and sends it the offer."""

    video: bool


class Offer(_Sig, tag="offer"):
    sdp: str
    restart: bool = False


class Answer(_Sig, tag="answer"):
    sdp: str


class Candidate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    candidate: str
    mid: str | None = None
    mline: int | None = None


class Ice(_Sig, tag="ice"):
    candidates: list[Candidate]


class Restart(_Sig, tag="restart"):
    """The callee saw its network change or ICE fail: the caller should restart ICE."""


class Media(_Sig, tag="media"):
    """The sender's microphone / camera state, for the peer's UI."""

    muted: bool
    video: bool


class Hangup(_Sig, tag="hangup"):
    reason: HangupReason


Signal = Invite | Accept | Offer | Answer | Ice | Restart | Media | Hangup

_decoder = msgspec.json.Decoder(Signal)
_encoder = msgspec.json.Encoder()


class MalformedSignal(Exception):
    """Not a call signal we accept; the message never quotes the input."""


def validate(s: Signal) -> None:
    try:
        b64d(s.call, CALL_ID_LEN)
    except CryptoError:
        raise MalformedSignal("bad call id") from None
    if not 1 <= s.n < 2**31:
        raise MalformedSignal("bad counter")
    if isinstance(s, Offer | Answer):
        if not s.sdp or len(s.sdp) > MAX_SDP_LEN:
            raise MalformedSignal("bad sdp size")
    elif isinstance(s, Ice):
        if not 1 <= len(s.candidates) <= MAX_CANDIDATES:
            raise MalformedSignal("bad candidate count")
        for c in s.candidates:
            if len(c.candidate) > MAX_CANDIDATE_LEN or len(c.mid or "") > MAX_MID_LEN:
                raise MalformedSignal("candidate too long")
            if c.mline is not None and not 0 <= c.mline < 64:
                raise MalformedSignal("bad m-line index")


def encode(s: Signal) -> str:
    validate(s)
    return _encoder.encode(s).decode()


def decode(text: str) -> Signal:
    """Raises MalformedSignal for anything that is not one valid signal."""
    if len(text) > MAX_SIGNAL_LEN:
        raise MalformedSignal("signal too large")
    try:
        s: Signal = _decoder.decode(text)
    except (msgspec.ValidationError, msgspec.DecodeError):
        raise MalformedSignal("invalid signal") from None
    validate(s)
    return s
