"""HTTP bodies of the device-linking relay, ``/api/v1/provisioning`` (docs/imv1.md §3.5).

The new device N registers a random ``prov_id`` (no session), the existing device O (its
session) gets a one-time ``link_token`` for it and posts ``crypto_box_seal(ProvisionMessage,
E_pub)`` (the token inside); N fetches the sealed box and logs in with the token: a new device
of O's user, without the password. The server sees neither ``E_pub`` nor what the box holds.
``prov_id`` travels as 32 lowercase hex characters in the path.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from parley.protocol.keys import B64URL

PROV_ID_HEX = Annotated[str, Meta(pattern="^[0-9a-f]{32}$")]
LINK_TOKEN_MAX = 128
SEALED_MAX = 16_384
"""A ProvisionMessage is a few hundred bytes plus the device list (≤ MAX_DEVICES entries)."""


class RegisterProvisioningBody(msgspec.Struct, forbid_unknown_fields=True):
    prov_id: PROV_ID_HEX


class ProvisioningReply(msgspec.Struct):
    prov_id: str
    expires: int  # ms since the epoch; after it every use of prov_id fails with link_expired


class LinkTokenReply(msgspec.Struct):
    link_token: str  # one-time; put it inside the sealed ProvisionMessage, never in clear
    expires: int


class PutProvisionBody(msgspec.Struct, forbid_unknown_fields=True):
    sealed: Annotated[str, Meta(min_length=2, max_length=SEALED_MAX, pattern=B64URL)]
    """b64url(crypto_box_seal(...)), canonical, not empty."""


class ProvisionMessageReply(msgspec.Struct):
    """``sealed`` is None while the existing device has not answered yet (poll again)."""

    sealed: str | None
    expires: int


class LinkLoginReply(msgspec.Struct):
    """A ``LoginReply`` plus the username (the new device knows nothing of the account)."""

    user_id: str
    device_id: int
    token: str  # the new device's session token, as from POST /api/v1/sessions
    username: str


class LinkLoginBody(msgspec.Struct, forbid_unknown_fields=True):
    link_token: Annotated[str, Meta(min_length=1, max_length=LINK_TOKEN_MAX)]
    device_name: Annotated[str, Meta(min_length=1, max_length=64)]
