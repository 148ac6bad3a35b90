"""The CPython shell of ``parley.client``: WebSocket transport, sqlite LocalStore, HTTP
accounts helper and the ``Client`` façade the CLI and benchmarks drive."""

from parley_server.cpython_client.accounts import AccountError, HttpAccounts
from parley_server.cpython_client.client import Client
from parley_server.cpython_client.store import SqliteLocalStore
from parley_server.cpython_client.transport import WebSocketTransport, connector

__all__ = [
    "AccountError",
    "Client",
    "HttpAccounts",
    "SqliteLocalStore",
    "WebSocketTransport",
    "connector",
]
