"""The client engine, sans-IO, and the interfaces its shells implement.

* ``engine.ClientEngine``: the state machine (connection lifecycle, request correlation, the
  outbox with idempotent ids, sync via ``parley.sync``, heartbeat, backoff). Read its module
  docstring for the input methods.
* ``effects``: what the engine asks the shell to do (commands) and tells the UI (notifications).
* ``interfaces``: ``Transport`` and ``LocalStore`` Protocols (browser: WebSocket + IndexedDB;
  CPython: ``parley_client``).
* ``session.Session``: an async driver reusable by every shell (asyncio only; the engine itself
  never imports asyncio).
* ``e2e_driver.E2EDriver``: the async driver of the E2E layer (``parley.client.e2e``) over a
  ``Session``, the same for every shell (key directory, state and results through hooks).
* ``memory_store.MemoryLocalStore``: the reference LocalStore (tests, benchmarks, bots).
* ``backoff``: the jittered exponential reconnect schedule.
* ``model``: ``OutboxItem``, ``Cursors``, ``ConnectionState``.

End-to-end encryption sits above the engine: it sends whatever envelope bytes it is given and
stores entries as received; the E2E driver encrypts before ``send_message`` and decrypts on
``EntriesStored``.
"""

from parley.client.backoff import backoff_delay
from parley.client.engine import ClientEngine
from parley.client.interfaces import Connector, LocalStore, Transport, TransportClosed
from parley.client.model import ConnectionState, Cursors, OutboxItem

__all__ = [
    "ClientEngine",
    "ConnectionState",
    "Connector",
    "Cursors",
    "LocalStore",
    "OutboxItem",
    "Transport",
    "TransportClosed",
    "backoff_delay",
]
