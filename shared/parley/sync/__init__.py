"""Sequence sync, sans-IO: cursors, gap detection and range planning.

Pure state machines (no asyncio, sqlite or ``js``); they run unchanged on CPython and Pyodide.
The client engine (``parley.client``) feeds them and turns their actions into frames and
LocalStore writes.

Design (the rules every shell relies on):

* **Conversations** (``ConversationSync``). Each conversation has a ``cursor``: the highest seq
  of the head range the device holds *stored locally*, and a ``frontier``: the highest seq
  handed to the shell for storing (``frontier >= cursor``). A pushed entry is classified
  against the frontier: ``seq == frontier + 1`` is NEXT (stored at once), ``seq <= frontier``
  is a DUPLICATE (dropped), anything else is a GAP. A gap entry is kept in a small bounded
  buffer (``BUFFER_MAX``) and a forward range pull ``History(after_seq=frontier)`` is planned;
  when the pulled page arrives, the page and the buffered entries that became contiguous are
  handed on in one ``StoreRange``. At most one pull per conversation is in flight; after
  each page the plan is made again against the newest ``last_seq`` seen, so drops, reorders
  and duplicates all converge to exactly 1..N (see tests/sync).
* **Cursor advance only after storage.** ``StoreRange.cursor`` is the cursor value the shell
  writes *in the same transaction* as the entries; the in-memory cursor moves only when the
  shell calls ``range_stored(first, last)``. Ranges reported out of order are parked until they
  are contiguous. A crash between the two loses nothing: the entries are pulled again and the
  local insert is idempotent on (conversation, seq).
* **Lazy vs eager.** An *eager* conversation (CLI, bots, benchmarks) always pulls forward from
  its frontier until it holds everything. A *lazy* one (the browser) pulls only while it is in
  view: when it is at most one page behind it pulls forward; when it is further behind it pulls
  the *recent page* first (``History`` with neither bound) and the cursor jumps to its top; the
  hole below is history the UI loads on scroll with ``older(before_seq)`` (entries stored with
  ``cursor=None``: older pages never move the cursor). The UI finds the hole by reading its
  local entries. Pages are bounded by ``HISTORY_PAGE_MAX``.
* **Streams** (``StreamSync``): the per-user event timeline and the per-device to-device queue.
  A push is NEXT/DUPLICATE/GAP against the frontier as above; on a gap the engine re-runs
  ``Sync`` from the frontier (the stream is not buffered). A Sync page is authoritative: its
  items are accepted in order even across holes (to-device items may have expired). The
  to-device queue is acknowledged to the server (``ToDeviceAck``) only after the shell reports
  the items stored.
"""

from parley.sync.conversation import (
    BUFFER_MAX,
    Classification,
    ConversationSync,
    Pull,
    StoreRange,
    classify,
)
from parley.sync.streams import StreamSync

__all__ = [
    "BUFFER_MAX",
    "Classification",
    "ConversationSync",
    "Pull",
    "StoreRange",
    "StreamSync",
    "classify",
]
