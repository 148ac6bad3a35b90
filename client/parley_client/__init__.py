"""The CPython shell of ``parley.client``: WebSocket transport, sqlite LocalStore, HTTP
accounts helper and the ``Client`` façade the CLI and benchmarks drive."""

from parley_client.accounts import AccountError, HttpAccounts
from parley_client.client import Client
from parley_client.store import SqliteLocalStore
from parley_client.transport import WebSocketTransport, connector

__all__ = [
    "AccountError",
    "Client",
    "HttpAccounts",
    "SqliteLocalStore",
    "WebSocketTransport",
    "connector",
]
