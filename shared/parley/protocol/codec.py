"""msgpack codec for frames, with malformed input mapped to stable error codes.

Every way a frame can fail to decode ends as a ``FrameError`` carrying its final code: not
msgpack or not a frame (``bad_frame``), nested too deeply for the decoder (``bad_frame``; msgspec
raises ``RecursionError`` about 1,000 levels down), a field above its length limit
(``too_large``), any other wrong field (``invalid``), an unknown op (``unknown_op``), a string
that is not UTF-8 where msgspec raises ``UnicodeDecodeError`` (``bad_frame``).
"""

from __future__ import annotations

import re
from typing import Any, cast

import msgspec

from parley.protocol.errors import ErrorCode
from parley.protocol.frames import ClientFrame, ServerFrame
from parley.protocol.ops import OP_TAGS

_encoder = msgspec.msgpack.Encoder()
_client_decoder = msgspec.msgpack.Decoder(ClientFrame)
_server_decoder = msgspec.msgpack.Decoder(ServerFrame)


class _Probe(msgspec.Struct):
    """Just enough of a frame to answer a malformed request with its own id."""

    t: Any = None
    id: Any = None
    op: Any = None


_probe_decoder = msgspec.msgpack.Decoder(_Probe)

_LENGTH_LIMIT = re.compile(r"of length <= \d+")
"""msgspec's wording for a value above its ``max_length`` (e.g. an envelope over
MAX_ENVELOPE_BYTES): such a frame is ``too_large``, not ``invalid``."""

TOO_DEEP = "frame nests too deeply"
NOT_UTF8 = "a string in the frame is not UTF-8"


class FrameError(Exception):
    """A frame that could not be decoded. ``request_id`` is set when the frame carried one."""

    def __init__(self, code: ErrorCode, message: str, request_id: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


def encode(frame: msgspec.Struct) -> bytes:
    return _encoder.encode(frame)


def decode_server(data: bytes) -> ServerFrame:
    """Decode a server frame (client side). Raises FrameError."""
    try:
        return cast(ServerFrame, _server_decoder.decode(data))
    except msgspec.DecodeError as exc:
        raise FrameError(ErrorCode.BAD_FRAME, str(exc)) from None
    except RecursionError:
        raise FrameError(ErrorCode.BAD_FRAME, TOO_DEEP) from None
    except UnicodeDecodeError:
        raise FrameError(ErrorCode.BAD_FRAME, NOT_UTF8) from None


def decode_client(data: bytes) -> ClientFrame:
    """Decode a client frame (server side), classifying what is wrong with a bad one."""
    try:
        return cast(ClientFrame, _client_decoder.decode(data))
    except msgspec.ValidationError as exc:
        raise _classify(data, str(exc)) from None
    except msgspec.DecodeError:
        raise FrameError(ErrorCode.BAD_FRAME, "frame is not valid msgpack") from None
    except RecursionError:
        # The probe would recurse as deep: such a frame's id cannot be read, so no id.
        raise FrameError(ErrorCode.BAD_FRAME, TOO_DEEP) from None
    except UnicodeDecodeError:
        # msgspec raises it (not a DecodeError) for a tag string that is not UTF-8.
        raise FrameError(ErrorCode.BAD_FRAME, NOT_UTF8) from None


def _classify(data: bytes, detail: str) -> FrameError:
    try:
        probe = _probe_decoder.decode(data)
    except msgspec.DecodeError:
        return FrameError(ErrorCode.BAD_FRAME, "frame is not a msgpack map")
    except RecursionError:
        return FrameError(ErrorCode.BAD_FRAME, TOO_DEEP)
    except UnicodeDecodeError:
        return FrameError(ErrorCode.BAD_FRAME, NOT_UTF8)
    rid = probe.id if isinstance(probe.id, int) and 0 <= probe.id <= 2**53 else None
    if probe.t != "req":
        if probe.t in ("hello", "ping", "bye"):
            return FrameError(_invalid_or_too_large(detail), detail, rid)
        return FrameError(ErrorCode.BAD_FRAME, f"unknown frame type {str(probe.t)[:32]!r}", rid)
    if rid is None:
        return FrameError(ErrorCode.INVALID, "request without a valid id", None)
    tag = probe.op.get("t") if isinstance(probe.op, dict) else None
    if not isinstance(tag, str) or tag not in OP_TAGS:
        return FrameError(ErrorCode.UNKNOWN_OP, f"unknown op {str(tag)[:32]!r}", rid)
    return FrameError(_invalid_or_too_large(detail), detail, rid)


def _invalid_or_too_large(detail: str) -> ErrorCode:
    return ErrorCode.TOO_LARGE if _LENGTH_LIMIT.search(detail) else ErrorCode.INVALID
