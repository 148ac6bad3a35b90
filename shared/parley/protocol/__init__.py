"""Parley's wire protocol: msgspec Structs for every frame and body, the codec, error codes.

See docs/protocol.md for the prose version of this package.
"""

from parley.protocol import errors, frames, limits, ops, records, types
from parley.protocol.codec import FrameError, decode_client, decode_server, encode

__all__ = [
    "FrameError",
    "decode_client",
    "decode_server",
    "encode",
    "errors",
    "frames",
    "limits",
    "ops",
    "records",
    "types",
]
