"""Protocol constants shared by server and clients.

The server announces the limits it enforces in ``Welcome.limits``; these are the defaults.
"""

from __future__ import annotations

PROTOCOL_VERSION = 1
"""Bumped on any incompatible change of a frame; sent in ``Hello.v``."""

HELLO_TIMEOUT_S = 10.0
"""The first frame must be a ``Hello`` within this many seconds, else close 4008."""

HEARTBEAT_S = 25.0
"""Clients send ``Ping`` at least this often; the server closes idle sockets after 3x."""

MAX_FRAME_BYTES = 256 * 1024
"""Largest WebSocket message either side accepts; bigger frames close the socket with 1009."""

FRAME_HEADROOM = 4 * 1024
"""Bytes of a frame kept for the reply's own framing: the items of one page (history, sync)
take at most ``max_frame - FRAME_HEADROOM``, so every reply fits the frame limit that both
sides enforce. A page that would be larger stops early and says ``more``."""

MAX_ENVELOPE_BYTES = 96 * 1024
"""Largest conversation envelope (IMv1 GroupMessage). Content above 64 KiB goes as attachment."""

MAX_TO_DEVICE_BYTES = 64 * 1024
"""Largest single to-device envelope."""

MAX_TO_DEVICE_BATCH = 256
"""Most to-device envelopes in one ``ToDeviceSend``."""

MAX_META_BYTES = 4 * 1024
"""Largest opaque (client-encrypted) group metadata blob."""

MAX_GROUP_MEMBERS = 1000

HISTORY_PAGE_MAX = 500
"""Most conversation entries returned by one ``History`` request."""

SYNC_EVENTS_MAX = 500
SYNC_TO_DEVICE_MAX = 500
SYNC_CONVERSATIONS_MAX = 1000
"""Page bounds of one ``Sync`` reply."""

SEND_QUEUE_MAX = 1024
"""Frames queued to one connection before it counts as a slow consumer (close 4009)."""

SEND_QUEUE_MAX_BYTES = 4 * 1024 * 1024
"""Bytes queued to one connection before it counts as a slow consumer (close 4009): with
frames of at most ``MAX_FRAME_BYTES`` a socket that never reads holds at most this much."""

TO_DEVICE_TTL_S = 30 * 24 * 3600
"""Undelivered to-device envelopes expire after 30 days (docs/imv1.md §2 ``SERVER_QUEUE_TTL``)."""

CONVERSATION_ID_LEN = 16
"""A conversation id is 16 random bytes (a UUID); it is the IMv1 group_id."""

# --- social layer ---------------------------------------------------------------------------

MAX_MENTIONS = 50
"""Most mentioned users in one ``Send``."""

FRIEND_NOTE_MAX = 280
"""Longest note (characters) on a friend request."""

MAX_PENDING_REQUESTS = 100
"""Most outgoing friend requests a user may have pending at once."""

CONTACTS_PAGE_MAX = 1000
"""Most contacts / requests / blocked users returned by one listing."""

LOOKUP_RESULTS_MAX = 10
"""Most users one lookup by email or phone returns (neither is verified, so not unique)."""

EMAIL_MAX = 254
PHONE_DIGITS_MIN = 7
PHONE_DIGITS_MAX = 15

RECALL_WINDOW_S = 24 * 3600
"""A message may be recalled this long after it was sent (server setting ``recall_window_s``)."""

TYPING_TTL_S = 6.0
"""A typing indicator expires on the receiving client this long after its last refresh."""

TYPING_REFRESH_S = 2.0
"""The server forwards an unchanged ``typing: true`` at most this often per user and chat."""

TYPING_BURST = 10
"""Most typing ops per user and conversation per ``TYPING_TTL_S`` window (else rate_limited)."""

PRESENCE_COALESCE_S = 10.0
"""A watcher gets at most one presence update per watched user per this many seconds."""

UNREAD_CAP = 1000
"""Unread counts stop at this (a client shows "999+"): keeps sync cheap for huge backlogs."""
